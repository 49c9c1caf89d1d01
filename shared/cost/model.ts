import { type PriceTable, SECONDS_PER_MONTH, US_EAST_1 } from './prices.ts';
import { invocationsPerRun, type RunShape, transitionsPerRun } from './step-functions.ts';

/*
 * The whole bill, as a pure function of the settings: every request the system makes (or has made for it)
 * every month, counted from the settings and the per-request figures the benchmarks measured, then priced at
 * list prices with no free tier. Two steps, so the system's own estimate (GET /cost) can replace the parts
 * it counts itself: usageOf(settings) → Usage (quantities a month), billOf(usage) → priced line items.
 */

const DAYS_PER_MONTH = SECONDS_PER_MONTH / 86_400;
const GB = 1024 ** 3;

export interface CostSettings {
  hosts: number;
  /** Groups the monitor assesses each tick. */
  groups: number;
  snapshots: {
    /** The agent's FLEETFOLD_HEARTBEAT_SECONDS: an unchanged host posts this often. */
    heartbeatSeconds: number;
    /** Snapshots that change something (a state, a service, a load or session band), per host per day. */
    changesPerHostPerDay: number;
    bytes: number;
    /** The bucket's lifecycle expiry of snapshots/ (SnapshotBucket: 30 days). */
    retentionDays: number;
  };
  /** The agent's inbox loop (agent/inbox.ts). */
  inbox: {
    /** Long-poll wait, 20 s (the SQS maximum). */
    waitSeconds: number;
    /** FLEETFOLD_INBOX_IDLE_SECONDS: the pause after an empty long poll. */
    idleSeconds: number;
  };
  /** Measured by bench/requests-per-snapshot.ts on the real pipeline (dynalite, fauxqs). */
  ingest: {
    /** S3 notification + the receive and delete of its batch share: 1 + 2/batch. */
    sqsRequestsPerSnapshot: number;
    /** Batch size 10: a tenth of an invocation per snapshot. */
    invocationsPerSnapshot: number;
    /** Conditional append and projection write. */
    wruPerChange: number;
    /** The coalesced lastSeen write of a heartbeat. */
    wruPerHeartbeat: number;
    /** The projection read. */
    rruPerSnapshot: number;
    msPerInvocation: number;
    memoryMb: number;
    /** One event-log item: the StateObserved with the full observed state. */
    eventBytes: number;
    /** Lambda runs at least five pollers per SQS event source, each long-polling 20 s all the time, billed. */
    eventSourcePollers: number;
    pollerWaitSeconds: number;
  };
  /** Reconcile runs (rollouts, replacements, scaling), each over some hosts. */
  rollouts: {
    perDay: number;
    /** Hosts each run sends a desired state to. */
    hostsPerRollout: number;
    shape: RunShape;
    /** A desired state's envelope as published (SNS bills each 64 KB of a PublishBatch as one request). */
    stateBytes: number;
    msPerStep: number;
    memoryMb: number;
    /** DynamoDB per host a run acts on: its stream append, projection, plan and rollout documents. */
    wruPerHost: number;
    rruPerHost: number;
  };
  monitor: {
    tickSeconds: number;
    /** bench/monitor-tick.ts: about 2 DynamoDB requests per idle group (the group listing's share, its hosts). */
    requestsPerIdleGroup: number;
    /** Eventually consistent host listing: about 0.5 RRU per 4 KB, host records are ~1 KB. */
    rruPerHost: number;
    msPerTick: number;
    memoryMb: number;
  };
  /** One ADD UpdateItem per invocation of the ingest, the monitor and the reconcile (shared/cost/usage.ts). */
  usageCounterWritesPerInvocation: number;
  observability: {
    /** Lambda's JSON platform lines, a Powertools log line or two and the EMF metrics blob. */
    logBytesPerInvocation: number;
    /** The state machine logs at ALL without execution data: about two history events per state. */
    logBytesPerTransition: number;
    logRetentionMonths: number;
    /** Powertools metrics in namespace Fleetfold: one per name and dimension set. */
    customMetrics: number;
    /** Alarm metrics: each metric an alarm evaluates (a metric-math alarm pays for each it names). */
    alarmMetrics: number;
    /** Alarm metrics per host: an alarm over every inbox DLQ's own metric pays $0.10 per host. */
    alarmMetricsPerHost: number;
    dashboards: number;
    /** X-Ray's default rule traces the first request each second and 5 % of the rest. */
    xrayReservoirPerSecond: number;
    xrayFixedRate: number;
  };
  kms: {
    /** Host secrets (ingest, api, reconcile), host secret parameters, state signing (ECC). */
    keys: number;
    /** Each warm ingest instance decrypts a host's secret once (CachingCipher); instances are recycled. */
    secretDecryptsPerHostPerDay: number;
  };
  api: { requestsPerDay: number; msPerRequest: number; memoryMb: number };
}

export const DEFAULT_INBOX_WAIT_SECONDS = 20;
/** The default of FLEETFOLD_INBOX_IDLE_SECONDS on EC2: halves the inbox bill for a p99 delivery under 25 s. */
export const DEFAULT_INBOX_IDLE_SECONDS = 20;

export const DEFAULT_COST_SETTINGS: CostSettings = {
  hosts: 1000,
  groups: 10,
  // The workload the benchmarks have always priced: three changes an hour per host and the hourly heartbeat.
  snapshots: { heartbeatSeconds: 3600, changesPerHostPerDay: 72, bytes: 2048, retentionDays: 30 },
  inbox: { waitSeconds: DEFAULT_INBOX_WAIT_SECONDS, idleSeconds: DEFAULT_INBOX_IDLE_SECONDS },
  ingest: {
    sqsRequestsPerSnapshot: 1.2,
    invocationsPerSnapshot: 0.1,
    wruPerChange: 2,
    wruPerHeartbeat: 1,
    rruPerSnapshot: 1,
    // Measured ~50 ms on the emulators; AWS round trips are slower, so counted at three times that.
    msPerInvocation: 150,
    memoryMb: 256,
    eventBytes: 1536,
    eventSourcePollers: 5,
    pollerWaitSeconds: 20,
  },
  rollouts: {
    perDay: 2,
    hostsPerRollout: 1000,
    shape: { waves: 4, checksPerWave: 3, passes: 1 },
    stateBytes: 1024,
    msPerStep: 300,
    memoryMb: 512,
    wruPerHost: 4,
    rruPerHost: 2,
  },
  monitor: { tickSeconds: 60, requestsPerIdleGroup: 2.05, rruPerHost: 0.25, msPerTick: 200, memoryMb: 512 },
  usageCounterWritesPerInvocation: 1,
  observability: {
    logBytesPerInvocation: 2000,
    logBytesPerTransition: 700,
    logRetentionMonths: 1,
    customMetrics: 25,
    alarmMetrics: 14,
    alarmMetricsPerHost: 0,
    dashboards: 1,
    xrayReservoirPerSecond: 1,
    xrayFixedRate: 0.05,
  },
  kms: { keys: 3, secretDecryptsPerHostPerDay: 12 },
  api: { requestsPerDay: 1000, msPerRequest: 100, memoryMb: 256 },
};

/** What is billed, and the unit price of each line (per one unit of its quantity). */
export const LINE_ITEMS = {
  's3.put': {
    service: 'S3',
    label: 'snapshot PUTs (host)',
    unit: 'requests',
    price: (p) => p.s3PutPer1000 / 1e3,
  },
  's3.get': {
    service: 'S3',
    label: 'snapshot GETs (ingest)',
    unit: 'requests',
    price: (p) => p.s3GetPer1000 / 1e3,
  },
  's3.storage': {
    service: 'S3',
    label: 'snapshots kept',
    unit: 'GB-months',
    price: (p) => p.s3StandardPerGbMonth,
  },
  'sqs.ingest': {
    service: 'SQS',
    label: 'ingest queue: notifications, batch receives, deletes',
    unit: 'requests',
    price: (p) => p.sqsPerMillionRequests / 1e6,
  },
  'sqs.pollers': {
    service: 'SQS',
    label: "event source mapping's own long polls",
    unit: 'requests',
    price: (p) => p.sqsPerMillionRequests / 1e6,
  },
  'sqs.inbox-polls': {
    service: 'SQS',
    label: 'agent inbox receives (long polls)',
    unit: 'requests',
    price: (p) => p.sqsPerMillionRequests / 1e6,
  },
  'sqs.inbox-deliveries': {
    service: 'SQS',
    label: 'inbox deliveries and their deletes',
    unit: 'requests',
    price: (p) => p.sqsPerMillionRequests / 1e6,
  },
  'lambda.invocations': {
    service: 'Lambda',
    label: 'invocations (ingest, monitor, reconcile, api)',
    unit: 'invocations',
    price: (p) => p.lambdaPerMillionInvocations / 1e6,
  },
  'lambda.compute': {
    service: 'Lambda',
    label: 'compute (arm64)',
    unit: 'GB-seconds',
    price: (p) => p.lambdaPerGbSecond,
  },
  'dynamodb.wru': {
    service: 'DynamoDB',
    label: 'writes (event log, projections, documents)',
    unit: 'WRU',
    price: (p) => p.dynamoPerMillionWru / 1e6,
  },
  'dynamodb.rru': {
    service: 'DynamoDB',
    label: 'reads (ingest, monitor ticks, reconcile, api)',
    unit: 'RRU',
    price: (p) => p.dynamoPerMillionRru / 1e6,
  },
  'dynamodb.usage-counters': {
    service: 'DynamoDB',
    label: 'usage counter ADDs (one per invocation)',
    unit: 'WRU',
    price: (p) => p.dynamoPerMillionWru / 1e6,
  },
  'dynamodb.storage': {
    service: 'DynamoDB',
    label: 'event log added this month',
    unit: 'GB-months',
    price: (p) => p.dynamoStoragePerGbMonth,
  },
  'sns.publishes': {
    service: 'SNS',
    label: 'state PublishBatch requests',
    unit: 'requests',
    price: (p) => p.snsPerMillionPublishes / 1e6,
  },
  'sfn.transitions': {
    service: 'Step Functions',
    label: 'Standard state transitions',
    unit: 'transitions',
    price: (p) => p.stepFunctionsStandardPer1000Transitions / 1e3,
  },
  'scheduler.invocations': {
    service: 'EventBridge Scheduler',
    label: 'monitor ticks',
    unit: 'invocations',
    price: (p) => p.eventBridgeSchedulerPerMillionInvocations / 1e6,
  },
  'logs.ingestion': {
    service: 'CloudWatch',
    label: 'log ingestion (functions, state machine, API)',
    unit: 'GB',
    price: (p) => p.cloudWatchLogsIngestionPerGb,
  },
  'logs.storage': {
    service: 'CloudWatch',
    label: 'log storage',
    unit: 'GB-months',
    price: (p) => p.cloudWatchLogsStoragePerGbMonth,
  },
  'metrics.custom': {
    service: 'CloudWatch',
    label: 'custom metrics (Fleetfold namespace)',
    unit: 'metrics',
    price: (p) => p.cloudWatchCustomMetricPerMonth,
  },
  'alarms.metrics': {
    service: 'CloudWatch',
    label: 'alarm metrics',
    unit: 'alarm metrics',
    price: (p) => p.cloudWatchAlarmMetricPerMonth,
  },
  dashboards: {
    service: 'CloudWatch',
    label: 'dashboard',
    unit: 'dashboards',
    price: (p) => p.cloudWatchDashboardPerMonth,
  },
  'xray.traces': {
    service: 'X-Ray',
    label: 'traces recorded',
    unit: 'traces',
    price: (p) => p.xrayPerMillionTracesRecorded / 1e6,
  },
  'kms.keys': {
    service: 'KMS',
    label: 'customer managed keys',
    unit: 'keys',
    price: (p) => p.kmsPerKeyMonth,
  },
  'kms.symmetric': {
    service: 'KMS',
    label: 'host secret decrypts and encrypts',
    unit: 'requests',
    price: (p) => p.kmsPer10000Requests / 1e4,
  },
  'kms.sign': {
    service: 'KMS',
    label: 'desired-state signatures (ECC)',
    unit: 'requests',
    price: (p) => p.kmsAsymmetricPer10000Requests / 1e4,
  },
  'apigateway.requests': {
    service: 'API Gateway',
    label: 'operator API requests',
    unit: 'requests',
    price: (p) => p.apiGatewayRestPerMillionRequests / 1e6,
  },
} as const satisfies Record<
  string,
  { service: string; label: string; unit: string; price: (p: PriceTable) => number }
>;

export type LineId = keyof typeof LINE_ITEMS;
/** Quantities a month, by line. */
export type Usage = Record<LineId, number>;

export interface BillLine {
  id: LineId;
  service: string;
  label: string;
  quantity: number;
  unit: string;
  usd: number;
}

export interface Bill {
  lines: BillLine[];
  totalUsd: number;
  byService: Record<string, number>;
}

/** Receives of one agent's inbox loop a month: one per long poll plus its idle pause, back to back. */
export function inboxPollsPerHostPerMonth(inbox: CostSettings['inbox']): number {
  return SECONDS_PER_MONTH / (inbox.waitSeconds + inbox.idleSeconds);
}

/**
 * The delivery delay the idle pause adds, at quantile q, for a state published at a uniformly random moment:
 * during a long poll it is received at once; during a pause (a share idle/(wait+idle) of the time) it waits
 * for the rest of the pause, uniform on [0, idle). So P(delay > x) = (idle − x)/(wait + idle).
 */
export function inboxDelayQuantile(inbox: CostSettings['inbox'], q: number): number {
  const { waitSeconds, idleSeconds } = inbox;
  return Math.max(0, idleSeconds - (1 - q) * (waitSeconds + idleSeconds));
}

/** Traces X-Ray records for this many traced requests a month: a reservoir per second, a share of the rest. */
export function tracesPerMonth(requests: number, obs: CostSettings['observability']): number {
  const perSecond = requests / SECONDS_PER_MONTH;
  const reservoir = Math.min(perSecond, obs.xrayReservoirPerSecond);
  return SECONDS_PER_MONTH * (reservoir + (perSecond - reservoir) * obs.xrayFixedRate);
}

export function usageOf(settings: CostSettings): Usage {
  const { hosts, snapshots, ingest, rollouts, monitor, observability: obs, kms, api } = settings;
  const changes = hosts * snapshots.changesPerHostPerDay * DAYS_PER_MONTH;
  const heartbeats = (hosts * SECONDS_PER_MONTH) / snapshots.heartbeatSeconds;
  const posted = changes + heartbeats;
  const ingestInvocations = posted * ingest.invocationsPerSnapshot;

  const runs = rollouts.perDay * DAYS_PER_MONTH;
  const statesSent = runs * rollouts.hostsPerRollout;
  const reconcileInvocations = runs * invocationsPerRun(rollouts.shape);
  const transitions = runs * transitionsPerRun(rollouts.shape);
  const batches = Math.ceil(rollouts.hostsPerRollout / 10);
  const chunksPerBatch = Math.ceil((Math.min(10, rollouts.hostsPerRollout) * rollouts.stateBytes) / 65_536);

  const ticks = SECONDS_PER_MONTH / monitor.tickSeconds;
  const apiRequests = api.requestsPerDay * DAYS_PER_MONTH;
  const invocations = ingestInvocations + ticks + reconcileInvocations + apiRequests;
  const counted = ingestInvocations + ticks + reconcileInvocations;

  const gbSeconds =
    ingestInvocations * (ingest.msPerInvocation / 1000) * (ingest.memoryMb / 1024) +
    ticks * (monitor.msPerTick / 1000) * (monitor.memoryMb / 1024) +
    reconcileInvocations * (rollouts.msPerStep / 1000) * (rollouts.memoryMb / 1024) +
    apiRequests * (api.msPerRequest / 1000) * (api.memoryMb / 1024);

  const logBytes = invocations * obs.logBytesPerInvocation + transitions * obs.logBytesPerTransition;
  const traces = tracesPerMonth(ingestInvocations + ticks + runs + apiRequests, obs);

  return {
    's3.put': posted,
    's3.get': posted,
    's3.storage':
      (posted / DAYS_PER_MONTH) *
      Math.min(snapshots.retentionDays, DAYS_PER_MONTH * 12) *
      (snapshots.bytes / GB),
    'sqs.ingest': posted * ingest.sqsRequestsPerSnapshot,
    'sqs.pollers': (ingest.eventSourcePollers * SECONDS_PER_MONTH) / ingest.pollerWaitSeconds,
    'sqs.inbox-polls': hosts * inboxPollsPerHostPerMonth(settings.inbox),
    // SNS's delivery into the queue is counted as a send; the agent deletes what it applied.
    'sqs.inbox-deliveries': statesSent * 2,
    'lambda.invocations': invocations,
    'lambda.compute': gbSeconds,
    'dynamodb.wru':
      changes * ingest.wruPerChange + heartbeats * ingest.wruPerHeartbeat + statesSent * rollouts.wruPerHost,
    'dynamodb.rru':
      posted * ingest.rruPerSnapshot +
      ticks * (settings.groups * monitor.requestsPerIdleGroup + hosts * monitor.rruPerHost) +
      statesSent * rollouts.rruPerHost,
    'dynamodb.usage-counters': counted * settings.usageCounterWritesPerInvocation,
    'dynamodb.storage': (changes * ingest.eventBytes) / GB,
    'sns.publishes': runs * batches * chunksPerBatch,
    'sfn.transitions': transitions,
    'scheduler.invocations': ticks,
    'logs.ingestion': logBytes / GB,
    'logs.storage': (logBytes / GB) * obs.logRetentionMonths,
    'metrics.custom': obs.customMetrics,
    'alarms.metrics': obs.alarmMetrics + obs.alarmMetricsPerHost * hosts,
    dashboards: obs.dashboards,
    'xray.traces': traces,
    'kms.keys': kms.keys,
    'kms.symmetric': hosts * kms.secretDecryptsPerHostPerDay * DAYS_PER_MONTH,
    'kms.sign': statesSent,
    'apigateway.requests': apiRequests,
  };
}

export function billOf(usage: Usage, prices: PriceTable = US_EAST_1): Bill {
  const lines = (Object.keys(LINE_ITEMS) as LineId[]).map((id): BillLine => {
    const item = LINE_ITEMS[id];
    const quantity = usage[id];
    return {
      id,
      service: item.service,
      label: item.label,
      quantity,
      unit: item.unit,
      usd: quantity * item.price(prices),
    };
  });
  const byService: Record<string, number> = {};
  for (const line of lines) byService[line.service] = (byService[line.service] ?? 0) + line.usd;
  return { lines, totalUsd: lines.reduce((sum, line) => sum + line.usd, 0), byService };
}

/** The monthly bill at the given settings (defaults: DEFAULT_COST_SETTINGS) and prices. */
export function monthlyBill(
  settings: CostSettings = DEFAULT_COST_SETTINGS,
  prices: PriceTable = US_EAST_1,
): Bill {
  return billOf(usageOf(settings), prices);
}

/** Settings with some parts replaced (nested one level), e.g. `withSettings({ inbox: { idleSeconds: 0 } })`. */
export function withSettings(
  overrides: {
    [K in keyof CostSettings]?: CostSettings[K] extends object ? Partial<CostSettings[K]> : CostSettings[K];
  },
  base: CostSettings = DEFAULT_COST_SETTINGS,
): CostSettings {
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    const current = (base as unknown as Record<string, unknown>)[key];
    merged[key] =
      value !== null && typeof value === 'object' && typeof current === 'object'
        ? { ...current, ...value }
        : value;
  }
  return merged as unknown as CostSettings;
}
