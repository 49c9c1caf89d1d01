import {
  type Bill,
  billOf,
  type CostSettings,
  DEFAULT_COST_SETTINGS,
  tracesPerMonth,
  type Usage,
  usageOf,
  withSettings,
} from './model.ts';
import { SECONDS_PER_MONTH } from './prices.ts';
import { TRANSITIONS_PER_STEP } from './step-functions.ts';

/*
 * The system's own counters: what each invocation of the ingest, the monitor and the reconcile did, added to
 * one counter item per hour (an atomic ADD: one write per invocation, never per record). GET /cost reads the
 * last 24 of them and prices what they count with the same model the benchmark prints.
 */

export const USAGE_COUNTERS = [
  'ingestInvocations',
  /** Snapshot notifications handled (each one host PUT and one ingest GET). */
  'ingestRecords',
  'ingestChanged',
  'ingestHeartbeats',
  'ingestMs',
  'monitorInvocations',
  'monitorGroups',
  /** DynamoDB requests of the ticks (the tick summary's reads). */
  'monitorReads',
  'monitorMs',
  'reconcilePlan',
  'reconcileApply',
  'reconcileCheck',
  'reconcileFinish',
  'reconcileRollback',
  'reconcileMs',
] as const;

export type UsageCounterName = (typeof USAGE_COUNTERS)[number];
export type UsageCounts = Partial<Record<UsageCounterName, number>>;

/** Adds to the counters of the hour `at` falls in. */
export interface UsageCounter {
  add(at: Date, counts: UsageCounts): Promise<void>;
}

export interface UsageReader {
  /** The counters of each hour from `from` (inclusive) to `to` (exclusive), hours without one left out. */
  hours(from: Date, to: Date): Promise<{ hour: string; counts: UsageCounts }[]>;
}

/** `2026-12-02T15`: the UTC hour, the counter item's id. */
export function hourOf(at: Date): string {
  return at.toISOString().slice(0, 13);
}

/** The hours a window covers, oldest first. */
export function hoursBetween(from: Date, to: Date): string[] {
  const hours: string[] = [];
  const start = Math.floor(from.getTime() / 3_600_000);
  const end = Math.ceil(to.getTime() / 3_600_000);
  for (let hour = start; hour < end; hour += 1) hours.push(hourOf(new Date(hour * 3_600_000)));
  return hours;
}

/** Only what counts: a counter of zero or nonsense is not written (an ADD of nothing still costs a write). */
export function cleanCounts(counts: UsageCounts): UsageCounts {
  const clean: UsageCounts = {};
  for (const name of USAGE_COUNTERS) {
    const value = counts[name];
    if (value !== undefined && Number.isFinite(value) && value > 0) clean[name] = value;
  }
  return clean;
}

export function sumCounts(all: readonly UsageCounts[]): UsageCounts {
  const total: UsageCounts = {};
  for (const counts of all)
    for (const name of USAGE_COUNTERS) {
      const value = counts[name];
      if (value !== undefined) total[name] = (total[name] ?? 0) + value;
    }
  return total;
}

const STEP_COUNTERS: Readonly<Record<string, UsageCounterName>> = {
  plan: 'reconcilePlan',
  apply: 'reconcileApply',
  check: 'reconcileCheck',
  finish: 'reconcileFinish',
  rollback: 'reconcileRollback',
};

/** One reconcile invocation: its step (each brings its share of state transitions) and its duration. */
export function reconcileStepCounts(step: unknown, ms: number): UsageCounts {
  const counter = typeof step === 'string' ? STEP_COUNTERS[step] : undefined;
  return { ...(counter ? { [counter]: 1 } : {}), reconcileMs: ms };
}

/**
 * Counts, and never fails the work it counts: a lost counter write only makes the estimate low, whereas a
 * thrown one would send a batch of snapshots back to the queue.
 */
export async function countUsage(
  counter: UsageCounter | undefined,
  at: Date,
  counts: UsageCounts,
  onError: (error: unknown) => void = (error) =>
    console.warn(JSON.stringify({ msg: 'usage counter not written', error: `${error}` })),
): Promise<void> {
  if (!counter) return;
  try {
    await counter.add(at, counts);
  } catch (error) {
    onError(error);
  }
}

export interface CountedWindow {
  counts: UsageCounts;
  /** Length of the window the counts cover. */
  hours: number;
  /** Registered hosts now: the inbox polls (the hosts' own requests) are priced from it and the settings. */
  hosts: number;
}

export interface Estimate {
  /** The counted window scaled to a month, priced. */
  monthly: Bill;
  /** What the counted window itself cost. */
  window: Bill;
  usage: Usage;
}

/**
 * The bill the counters imply. What the control plane counts replaces the model's figure for it: snapshots
 * (S3, SQS, DynamoDB), every invocation and its duration, monitor reads, reconcile steps (Step Functions
 * transitions and SNS from them). What only the hosts know (their inbox polls), what AWS does on its own (the
 * event source's pollers) and what is fixed (keys, metrics, alarms, dashboard) come from the settings.
 */
export function estimateFromCounts(
  window: CountedWindow,
  settings: CostSettings = DEFAULT_COST_SETTINGS,
): Estimate {
  const { counts, hours } = window;
  const perMonth = hours > 0 ? SECONDS_PER_MONTH / (hours * 3600) : 0;
  const c = (name: UsageCounterName) => (counts[name] ?? 0) * perMonth;
  const monthlyHosts = Math.max(0, window.hosts);
  const base = usageOf(withSettings({ hosts: monthlyHosts }, settings));
  const records = c('ingestRecords');
  const changed = c('ingestChanged');
  const heartbeats = c('ingestHeartbeats');
  const ingestInvocations = c('ingestInvocations');
  const monitorInvocations = c('monitorInvocations');
  const steps = {
    plan: c('reconcilePlan'),
    apply: c('reconcileApply'),
    check: c('reconcileCheck'),
    finish: c('reconcileFinish'),
    rollback: c('reconcileRollback'),
  };
  const reconcileInvocations = Object.values(steps).reduce((a, b) => a + b, 0);
  const transitions = Object.entries(steps).reduce(
    (sum, [step, n]) => sum + n * (TRANSITIONS_PER_STEP[step] ?? 0),
    0,
  );
  const apiInvocations = base['apigateway.requests'];
  const gbSeconds =
    (c('ingestMs') / 1000) * (settings.ingest.memoryMb / 1024) +
    (c('monitorMs') / 1000) * (settings.monitor.memoryMb / 1024) +
    (c('reconcileMs') / 1000) * (settings.rollouts.memoryMb / 1024) +
    apiInvocations * (settings.api.msPerRequest / 1000) * (settings.api.memoryMb / 1024);
  const counted = ingestInvocations + monitorInvocations + reconcileInvocations;
  const invocations = counted + apiInvocations;
  const obs = settings.observability;
  const logGb =
    (invocations * obs.logBytesPerInvocation + transitions * obs.logBytesPerTransition) / 1024 ** 3;
  // Hosts that received a state: about one per Apply step's wave share; without a finer counter, states sent
  // are taken from the model's ratio of hosts per Apply.
  const shape = settings.rollouts.shape;
  const hostsPerApply = settings.rollouts.hostsPerRollout / Math.max(1, shape.waves * shape.passes);
  const statesSent = steps.apply * hostsPerApply;
  const ingestShare = settings.ingest;
  const usage: Usage = {
    ...base,
    's3.put': records,
    's3.get': records,
    's3.storage':
      (records / (SECONDS_PER_MONTH / 86_400)) *
      settings.snapshots.retentionDays *
      (settings.snapshots.bytes / 1024 ** 3),
    'sqs.ingest': records + 2 * ingestInvocations,
    'sqs.inbox-deliveries': statesSent * 2,
    'lambda.invocations': invocations,
    'lambda.compute': gbSeconds,
    'dynamodb.wru':
      changed * ingestShare.wruPerChange +
      heartbeats * ingestShare.wruPerHeartbeat +
      statesSent * settings.rollouts.wruPerHost,
    'dynamodb.rru':
      records * ingestShare.rruPerSnapshot +
      c('monitorReads') +
      monitorInvocations * monthlyHosts * settings.monitor.rruPerHost +
      statesSent * settings.rollouts.rruPerHost,
    'dynamodb.usage-counters': counted * settings.usageCounterWritesPerInvocation,
    'dynamodb.storage': (changed * ingestShare.eventBytes) / 1024 ** 3,
    'sns.publishes': Math.ceil(statesSent / 10),
    'sfn.transitions': transitions,
    'scheduler.invocations': monitorInvocations,
    'logs.ingestion': logGb,
    'logs.storage': logGb * obs.logRetentionMonths,
    'xray.traces': tracesPerMonth(counted + apiInvocations, obs),
    'kms.sign': statesSent,
  };
  const monthly = billOf(usage);
  const fraction = perMonth > 0 ? 1 / perMonth : 0;
  const windowUsage = Object.fromEntries(
    Object.entries(usage).map(([id, quantity]) => [id, quantity * fraction]),
  ) as Usage;
  return { monthly, window: billOf(windowUsage), usage };
}
