import type { EventBridgeEvent } from 'aws-lambda';
import { countUsage, type UsageCounter } from '../../shared/cost/usage.ts';
import { ConflictError } from '../../shared/errors.ts';
import type { ScalingDecidedData } from '../../shared/groups/events.ts';
import {
  clearAlarm,
  endScaleEpisode,
  raiseAlarm,
  recordScalingDecision,
  scaleGroup,
} from '../../shared/groups/group-service.ts';
import type { GroupDocument } from '../../shared/groups/group-state.ts';
import type {
  AlarmPublisher,
  DocumentStore,
  ReconcileStarter,
  StoredDocument,
} from '../../shared/groups/ports.ts';
import { type Assessment, assessGroup, willPlanAgain } from '../../shared/monitor/assess.ts';
import { livenessOf, ruleContext, rulesOf } from '../../shared/monitor/rule-context.ts';
import {
  assessScaling,
  demandHoursToRead,
  readDemandHours,
  type ScalingAssessment,
  scaledHostTypes,
} from '../../shared/monitor/scaling.ts';
import type { EventStore, HostRecord, HostStore } from '../../shared/ports.ts';
import type { Lease } from '../../shared/reconcile/lease.ts';
import { evaluateRules } from '../../shared/rules/evaluate.ts';
import type { RuleContext } from '../../shared/rules/types.ts';
import { DEMAND_HOUR_KIND, demandHourId } from '../../shared/scaling/demand-memory.ts';
import {
  type HostTypeMemory,
  SCALING_DOCUMENT_KIND,
  type ScalingDocument,
  sameContent,
  withDecisions,
} from '../../shared/scaling/scaling-document.ts';
import { METRICS, type MonitorActionKind, type Telemetry } from '../../shared/telemetry.ts';
import { mapLimited } from '../reconcile/steps/common.ts';

/*
 * The monitor: stateless, run by a schedule. Each tick reads every running group's document (its desired
 * state) and its hosts by the group index (the actual state), evaluates the group's rules and acts only when
 * something is due: it raises and clears the rules' alarms itself, and hands everything that changes hosts to
 * the reconcile (one start per group per tick at most). A group with nothing due costs its share of the group
 * listing and one listing of its hosts, and writes nothing. EC2's instance state changes come here too: an
 * instance of this stack that stops or ends gets its group reconciled at once, not at the next tick.
 */

/** Who launched an instance, from its tags: this stack's fleet adapter answers for its own instances only. */
export interface InstanceOwner {
  group: string;
  hostId?: string;
}

export interface InstanceDirectory {
  /** Undefined for an instance this stack did not launch (no fleetfold tags, or another stack's). */
  groupOfInstance(instanceId: string): Promise<InstanceOwner | undefined>;
}

export interface MonitorDeps {
  documents: DocumentStore;
  hosts: HostStore;
  /** The group streams alarms are raised and cleared on. */
  events: EventStore;
  reconcile: ReconcileStarter;
  now: () => Date;
  /** The schedule's period: a tick's reconcile starts are named after its time bucket, so a retry starts none twice. */
  tickSeconds: number;
  /** The ingest's heartbeat coalescing window: a host is lost only that much after its missed heartbeats. */
  heartbeatCoalesceSeconds: number;
  /** Tells people of the alarms raised; without it they are only in the group's stream and the alarm listing. */
  alarms?: AlarmPublisher;
  /** Needed for EC2 state-change events only. */
  instances?: InstanceDirectory;
  /** Groups assessed at once; default 8. */
  concurrency?: number;
  /** Structured log lines; default console.log of their JSON. */
  log?: (line: Record<string, unknown>) => void;
  /** Counts what each tick or instance event did (MonitorActions by kind); none: nothing is counted. */
  telemetry?: Telemetry;
  /** The hourly usage counters GET /cost prices: one ADD per invocation. */
  usage?: UsageCounter;
}

export interface TickSummary {
  kind: 'tick';
  /** Running groups assessed. */
  groups: number;
  /** Groups not running: listed, nothing more read. */
  skipped: number;
  /** Groups with a reconcile action due. */
  due: number;
  started: number;
  /** Due, but a run holding the group will plan again before it ends. */
  coalesced: number;
  alarmsRaised: number;
  alarmsCleared: number;
  /** Groups whose assessment failed (logged; the next tick tries again). */
  failed: number;
  /** Store requests the monitor made itself (alarm commands not included: they happen only on change). */
  reads: number;
  /** ScalingDecided appended (the autoscaler changed a host type's count). */
  scaled?: number;
  /** Scaling documents written (only when their content changed). */
  scalingWrites?: number;
  /** Hour documents of the predictor's demand written (one per scaled host type and hour). */
  demandHourWrites?: number;
}

export interface InstanceChangeOutcome {
  kind: 'ec2';
  instanceId: string;
  state: string;
  group?: string;
  executionId?: string;
  ignored?: string;
}

export type MonitorOutcome = TickSummary | InstanceChangeOutcome;

/** What EventBridge Scheduler sends (the input the schedule is given), or nothing at all. */
export interface MonitorTick {
  source?: string;
  /** The time the tick was scheduled for (`<aws.scheduler.scheduled-time>`): a retried tick names the same. */
  scheduledTime?: string;
}

export type InstanceStateChange = EventBridgeEvent<
  'EC2 Instance State-change Notification',
  { 'instance-id': string; state: string }
>;

export type MonitorEvent = MonitorTick | InstanceStateChange;

/** States in which an instance has stopped being its host, or soon will: its group needs a replacement. */
export const ENDING_STATES: ReadonlySet<string> = new Set([
  'stopping',
  'stopped',
  'shutting-down',
  'terminated',
]);

/** Groups per page of the listing: group documents carry their compiled definition, so pages stay moderate. */
const GROUP_PAGE = 100;
/** The most the host store returns in one page: one request lists a group of up to this many hosts. */
const HOST_PAGE = 100;
const DEFAULT_CONCURRENCY = 8;

export function createMonitorHandler(
  deps: MonitorDeps,
): (event: MonitorEvent | null | undefined) => Promise<MonitorOutcome> {
  const log = deps.log ?? ((line) => console.log(JSON.stringify(line)));
  return async (event) => {
    const startedMs = Date.now();
    const outcome = isInstanceStateChange(event)
      ? await onInstanceChange(deps, log, event)
      : await tick(deps, log, event ?? {});
    if (outcome.kind === 'tick') log({ msg: 'monitor tick', ...outcome });
    if (deps.telemetry) reportActions(deps.telemetry, outcome);
    await countUsage(deps.usage, deps.now(), {
      monitorInvocations: 1,
      ...(outcome.kind === 'tick' ? { monitorGroups: outcome.groups, monitorReads: outcome.reads } : {}),
      monitorMs: Date.now() - startedMs,
    });
    return outcome;
  };
}

/** What the monitor did, by kind: a tick with nothing due reports nothing. */
export function monitorActions(outcome: MonitorOutcome): Partial<Record<MonitorActionKind, number>> {
  if (outcome.kind === 'ec2') return outcome.executionId ? { 'instance-reconciled': 1 } : {};
  return {
    'reconcile-started': outcome.started,
    'reconcile-coalesced': outcome.coalesced,
    'alarm-raised': outcome.alarmsRaised,
    'alarm-cleared': outcome.alarmsCleared,
    'scaling-decided': outcome.scaled ?? 0,
  };
}

function reportActions(telemetry: Telemetry, outcome: MonitorOutcome): void {
  for (const [kind, count] of Object.entries(monitorActions(outcome)) as [MonitorActionKind, number][])
    if (count > 0) telemetry.count(METRICS.monitorActions, count, { kind });
}

function isInstanceStateChange(event: unknown): event is InstanceStateChange {
  const candidate = event as Partial<InstanceStateChange> | null | undefined;
  return (
    candidate?.source === 'aws.ec2' && candidate['detail-type'] === 'EC2 Instance State-change Notification'
  );
}

async function onInstanceChange(
  deps: MonitorDeps,
  log: NonNullable<MonitorDeps['log']>,
  event: InstanceStateChange,
): Promise<InstanceChangeOutcome> {
  const instanceId = String(event.detail?.['instance-id'] ?? '');
  const state = String(event.detail?.state ?? '');
  const outcome = { kind: 'ec2', instanceId, state } as const;
  if (!instanceId || !ENDING_STATES.has(state)) {
    const ignored = `state ${state || '(none)'} of ${instanceId || 'an unnamed instance'} needs no reconcile`;
    log({ msg: 'instance change ignored', instanceId, state, reason: ignored });
    return { ...outcome, ignored };
  }
  if (!deps.instances)
    throw new Error('the monitor was built without an instance directory: it cannot read EC2 events');
  const owner = await deps.instances.groupOfInstance(instanceId);
  if (!owner) {
    const ignored = `instance ${instanceId} was not launched by this stack`;
    log({ msg: 'instance change ignored', instanceId, state, reason: ignored });
    return { ...outcome, ignored };
  }
  const { executionId } = await deps.reconcile.start({
    group: owner.group,
    reason: `instance ${instanceId}${owner.hostId ? ` (host ${owner.hostId})` : ''} is ${state}`,
    dedupeKey: `ec2#${instanceId}#${state}`,
  });
  log({ msg: 'instance change reconciled', instanceId, state, group: owner.group, executionId });
  return { ...outcome, group: owner.group, executionId };
}

async function tick(
  deps: MonitorDeps,
  log: NonNullable<MonitorDeps['log']>,
  event: MonitorTick,
): Promise<TickSummary> {
  const now = deps.now();
  const bucket = timeBucket(event, now, deps.tickSeconds);
  const summary: TickSummary = {
    kind: 'tick',
    groups: 0,
    skipped: 0,
    due: 0,
    started: 0,
    coalesced: 0,
    alarmsRaised: 0,
    alarmsCleared: 0,
    failed: 0,
    reads: 0,
  };
  let cursor: string | undefined;
  do {
    const page = await deps.documents.list<GroupDocument>('group', GROUP_PAGE, cursor);
    summary.reads += 1;
    await mapLimited(page.documents, deps.concurrency ?? DEFAULT_CONCURRENCY, async (document) => {
      if (!document.body.running) {
        summary.skipped += 1;
        return;
      }
      summary.groups += 1;
      try {
        await monitorGroup(deps, document, now, bucket, summary);
      } catch (error) {
        // One broken group must not keep the others from being looked after; the next tick tries it again.
        summary.failed += 1;
        log({ msg: 'monitor failed on a group', group: document.id, error: `${error}` });
      }
    });
    cursor = page.next;
  } while (cursor !== undefined);
  return summary;
}

/** The scheduled time (else now) in whole ticks since the epoch: the same for every retry of one tick. */
export function timeBucket(event: MonitorTick, now: Date, tickSeconds: number): number {
  const scheduled = event.scheduledTime === undefined ? Number.NaN : Date.parse(event.scheduledTime);
  const at = Number.isFinite(scheduled) ? scheduled : now.getTime();
  return Math.floor(at / (Math.max(1, tickSeconds) * 1000));
}

async function monitorGroup(
  deps: MonitorDeps,
  document: StoredDocument<GroupDocument>,
  now: Date,
  bucket: number,
  summary: TickSummary,
): Promise<void> {
  const group = document.body;
  const name = document.id;
  const records = await listHosts(deps.hosts, name, summary);
  const context = ruleContext(group, records, now, livenessOf(group, deps.heartbeatCoalesceSeconds));
  const assessment = assessGroup(group, context, evaluateRules(rulesOf(group), context));
  await settleAlarms(deps, name, assessment, summary);
  const scaled = await settleScales(deps, name, assessment);
  const autoscaled = await settleScaling(deps, document, context, bucket, summary);
  const reasons = [assessment.reconcile?.reason, ...scaled, ...autoscaled].filter(
    (reason) => reason !== undefined,
  );
  if (reasons.length === 0) return;
  summary.due += 1;
  // Only a group with something due pays for the lease: an idle one reads nothing more.
  const lease = await deps.documents.get<Lease>('lease', name);
  summary.reads += 1;
  if (willPlanAgain(lease?.body, now)) {
    summary.coalesced += 1;
    return;
  }
  await deps.reconcile.start({
    group: name,
    reason: reasons.join('; '),
    dedupeKey: `monitor-${name}-${bucket}`,
  });
  summary.started += 1;
}

async function settleAlarms(
  deps: MonitorDeps,
  group: string,
  assessment: Assessment,
  summary: TickSummary,
): Promise<void> {
  const stream = {
    events: deps.events,
    documents: deps.documents,
    now: deps.now,
    ...(deps.alarms ? { alarms: deps.alarms } : {}),
  };
  for (const alarm of assessment.raise) {
    const { diagnose, ...raising } = alarm;
    // With the host store, raiseAlarm diagnoses the hosts the alarm names; only a `diagnose` rule asks for that.
    const { raised } = await raiseAlarm(diagnose ? { ...stream, hosts: deps.hosts } : stream, group, raising);
    if (raised) summary.alarmsRaised += 1;
  }
  for (const episode of assessment.clear) {
    const { cleared } = await clearAlarm(stream, group, episode);
    if (cleared) summary.alarmsCleared += 1;
  }
}

/** Records the rules' scale requests and ends the episodes of rules that stopped asking; says what changed. */
async function settleScales(deps: MonitorDeps, group: string, assessment: Assessment): Promise<string[]> {
  const stream = { events: deps.events, documents: deps.documents, now: deps.now };
  const changed: string[] = [];
  for (const request of assessment.scale ?? []) {
    const { scaled } = await scaleGroup(stream, group, request);
    if (scaled) changed.push(`${request.rule} scaled ${request.hostType} ${scaled.from}→${scaled.to}`);
  }
  for (const episode of assessment.endScales ?? []) await endScaleEpisode(stream, group, episode);
  return changed;
}

/**
 * The autoscaler's pass (shared/monitor/scaling.ts) for a group with scaled host types, at the tick's bucket
 * time (a retry decides at the same time, which the decider and the document both recognise): one read of the
 * group's scaling document; a ScalingDecided per host type whose count changes; the document written back only
 * when its content changed (a new recommendation or count, a new 5-minute demand bucket, a run aged out).
 * With the predictor on, a host type's first tick of an hour also writes the hour just over and reads the
 * hours its lookback weeks need (lookbackWeeks × 3 gets). Says what changed, for the reconcile's reason.
 */
async function settleScaling(
  deps: MonitorDeps,
  document: StoredDocument<GroupDocument>,
  context: RuleContext,
  bucket: number,
  summary: TickSummary,
): Promise<string[]> {
  const group = document.body;
  const name = document.id;
  if (scaledHostTypes(group).length === 0) return [];
  const at = bucket * Math.max(1, deps.tickSeconds) * 1000;
  const stored = await deps.documents.get<ScalingDocument>(SCALING_DOCUMENT_KIND, name);
  summary.reads += 1;
  const wanted = demandHoursToRead(group, stored?.body, at);
  const hours = await readDemandHours(deps.documents, name, wanted);
  summary.reads += wanted.length;
  const assessment = assessScaling(group, context.hosts, stored?.body, at, hours);
  // Before the scaling document, which then no longer holds them: a failed put fails the group's tick before
  // that, and the next tick finds the hour in its recent buckets still and writes it.
  await writeDemandHours(deps, name, assessment.demandHours, summary);
  const stream = { events: deps.events, documents: deps.documents, now: deps.now };
  const memories: Record<string, HostTypeMemory> = { ...assessment.document.hostTypes };
  const recorded: ScalingDecidedData[] = [];
  for (const decision of assessment.decisions) {
    const { recorded: appended } = await recordScalingDecision(stream, name, decision);
    if (appended) {
      recorded.push(decision);
      continue;
    }
    // Refused (a retried tick, or a count changed under it): remember nothing of a change that did not happen.
    const before = stored?.body.hostTypes[decision.hostType];
    if (before) memories[decision.hostType] = before;
    else delete memories[decision.hostType];
  }
  summary.scaled = (summary.scaled ?? 0) + recorded.length;
  const next: ScalingDocument = {
    hostTypes: memories,
    decisions: withDecisions(stored?.body.decisions ?? [], recorded),
  };
  if (!sameContent(stored?.body, next)) {
    try {
      await deps.documents.put(SCALING_DOCUMENT_KIND, name, next, stored?.version ?? 0, deps.now());
      summary.scalingWrites = (summary.scalingWrites ?? 0) + 1;
    } catch (error) {
      // Another tick wrote it first: its memory is as good as this one's, and the stream holds the decisions.
      if (!(error instanceof ConflictError)) throw error;
    }
  }
  return recorded.map(
    (decision) =>
      `autoscaler scaled ${decision.hostType} ${decision.from}→${decision.to} (${decision.boundBy})`,
  );
}

/** Puts each completed hour once (expectedVersion 0), with its expiry for the table's TTL. */
async function writeDemandHours(
  deps: MonitorDeps,
  group: string,
  written: ScalingAssessment['demandHours'],
  summary: TickSummary,
): Promise<void> {
  await Promise.all(
    written.map(async ({ hostType, hour }) => {
      try {
        await deps.documents.put(
          DEMAND_HOUR_KIND,
          demandHourId(group, hostType, hour.hour),
          hour,
          0,
          deps.now(),
          {
            expiresAt: new Date(hour.expiresAt),
          },
        );
        summary.demandHourWrites = (summary.demandHourWrites ?? 0) + 1;
      } catch (error) {
        // A retried or concurrent tick wrote the same hour from the same buckets.
        if (!(error instanceof ConflictError)) throw error;
      }
    }),
  );
}

/** The group's hosts by the group index, in pages as large as the store gives: most groups are one request. */
async function listHosts(hosts: HostStore, group: string, summary: TickSummary): Promise<HostRecord[]> {
  const all: HostRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await hosts.list({ group }, HOST_PAGE, cursor);
    summary.reads += 1;
    all.push(...page.hosts);
    cursor = page.next;
  } while (cursor !== undefined);
  return all;
}
