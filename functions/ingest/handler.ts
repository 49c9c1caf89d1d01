import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { runCommand } from '../../shared/command/runner.ts';
import { countUsage, type UsageCounter } from '../../shared/cost/usage.ts';
import { ConflictError, TooLargeError } from '../../shared/errors.ts';
import { hostStream } from '../../shared/events.ts';
import { evolve, type HostState, statusOf } from '../../shared/fold.ts';
import type { ReconcileStarter } from '../../shared/groups/ports.ts';
import { hostDecider, type UnknownHost } from '../../shared/hosts/host-decider.ts';
import { hostProjection } from '../../shared/hosts/host-projection.ts';
import {
  type IngestConfig,
  isVerdict,
  judgeStale,
  parseSnapshot,
  type Verdict,
} from '../../shared/ingest.ts';
import { parseSnapshotKey } from '../../shared/keys.ts';
import type { TrackedState } from '../../shared/metrics.ts';
import type {
  EventStore,
  HostRecord,
  HostStore,
  Rejection,
  SecretCipher,
  SnapshotStore,
} from '../../shared/ports.ts';
import type { RetryPolicy } from '../../shared/retry.ts';
import type { Snapshot } from '../../shared/schemas.ts';
import { jsonConsoleLog, type StructuredLog } from '../../shared/telemetry.ts';
import { arrivalsOf, type ObjectArrival } from './s3-event.ts';

export type { IngestConfig } from '../../shared/ingest.ts';

export interface IngestDeps {
  snapshots: SnapshotStore;
  hosts: HostStore;
  events: EventStore;
  /** Wrap in CachingCipher: a warm function should not decrypt a host's secret per snapshot. */
  cipher: SecretCipher;
  config: IngestConfig;
  now: () => Date;
  /** Receives one summary per batch (counts by outcome); index.ts turns it into CloudWatch metrics. */
  report?: (summary: BatchSummary) => void;
  /** Where warnings and errors go, each naming its SQS message and host; default a JSON console line. */
  log?: StructuredLog;
  /** Races on one host's stream (parallel batches, redeliveries); default: the runner's. */
  retry?: RetryPolicy;
  /** The hourly usage counters GET /cost prices: one ADD per batch. */
  usage?: UsageCounter;
  /**
   * Starts a reconcile of a group whose host reported itself or a service failed, so the replacement does not
   * wait for the monitor's next tick. Without it (benchmarks, tests) the monitor alone finds such hosts.
   */
  starter?: ReconcileStarter;
}

export type Outcome =
  | 'changed'
  | 'heartbeat'
  | 'coalesced'
  | 'duplicate'
  /** The object was gone: an earlier delivery of this notification already quarantined it. */
  | 'gone'
  | `rejected:${Rejection['reason']}`;

export interface BatchSummary {
  records: number;
  failed: number;
  outcomes: Partial<Record<Outcome, number>>;
}

export function createIngestHandler(deps: IngestDeps): (event: SQSEvent) => Promise<SQSBatchResponse> {
  return async (event) => {
    const startedMs = Date.now();
    const log = deps.log ?? jsonConsoleLog;
    const summary: BatchSummary = { records: event.Records.length, failed: 0, outcomes: {} };
    const failed = new Set<string>();
    const work: { record: SQSRecord; arrival: ObjectArrival }[] = [];
    for (const record of event.Records) {
      try {
        for (const arrival of arrivalsOf(record)) work.push({ record, arrival });
      } catch (error) {
        log('error', 'unreadable message', { messageId: record.messageId, error: `${error}` });
        failed.add(record.messageId);
      }
    }
    const failures = new Map<string, ReportedFailure>();
    // One host's snapshots in sequence order, different hosts in parallel: no needless races on a stream.
    await Promise.all(
      [...groupByHost(work).values()].map(async (items) => {
        for (const { record, arrival } of items) {
          try {
            const about = { messageId: record.messageId, key: arrival.key, hostId: hostOfKey(arrival.key) };
            const { outcome, failure } = await ingest(
              { ...deps, log: (l, m, f) => log(l, m, { ...about, ...f }) },
              arrival,
            );
            log('debug', 'snapshot judged', { ...about, outcome });
            summary.outcomes[outcome] = (summary.outcomes[outcome] ?? 0) + 1;
            if (failure) coalesce(failures, failure);
          } catch (error) {
            log('error', 'ingest failed', {
              messageId: record.messageId,
              key: arrival.key,
              hostId: hostOfKey(arrival.key),
              error: `${error}`,
            });
            failed.add(record.messageId);
          }
        }
      }),
    );
    if (deps.starter) await startReconciles(deps.starter, failures, log);
    summary.failed = failed.size;
    deps.report?.(summary);
    await countUsage(deps.usage, deps.now(), {
      ingestInvocations: 1,
      ingestRecords: summary.records,
      ingestChanged: summary.outcomes.changed,
      ingestHeartbeats: summary.outcomes.heartbeat,
      ingestMs: Date.now() - startedMs,
    });
    return { batchItemFailures: [...failed].map((itemIdentifier) => ({ itemIdentifier })) };
  };
}

function groupByHost(work: { record: SQSRecord; arrival: ObjectArrival }[]) {
  const groups = new Map<string, typeof work>();
  for (const item of work) {
    const host = hostOfKey(item.arrival.key);
    groups.set(host, [...(groups.get(host) ?? []), item]);
  }
  for (const items of groups.values()) items.sort((a, b) => seqOf(a.arrival.key) - seqOf(b.arrival.key));
  return groups;
}

/** `snapshots/<hostId>/<seq>.json` → the host id (empty for a key of another shape). */
function hostOfKey(key: string): string {
  return key.split('/')[1] ?? '';
}

function seqOf(key: string): number {
  return Number(/\/(\d+)\.json$/.exec(key)?.[1] ?? 0);
}

/** A recorded change that a reconcile should act on now: the host, or one of its services, failed. */
interface ReportedFailure {
  group: string;
  hostId: string;
  seq: number;
  /** Hosts of the group that reported a failure in this batch (this one included). */
  hosts: Set<string>;
}

/** One reconcile per group per batch: the run plans from the whole group's state, however many hosts failed. */
function coalesce(failures: Map<string, ReportedFailure>, failure: ReportedFailure): void {
  const known = failures.get(failure.group);
  if (!known) {
    failures.set(failure.group, failure);
    return;
  }
  const hosts = new Set([...known.hosts, ...failure.hosts]);
  const later =
    failure.seq > known.seq || (failure.seq === known.seq && failure.hostId > known.hostId) ? failure : known;
  failures.set(failure.group, { ...later, hosts });
}

/**
 * A failure to start is logged, never the batch's failure: the snapshots are recorded, and the monitor finds
 * the failed host on its next tick anyway. The dedupe key names the group and the latest snapshot involved
 * (its host too: sequence numbers are per host), so a batch delivered again starts no second run.
 */
async function startReconciles(
  starter: ReconcileStarter,
  failures: Map<string, ReportedFailure>,
  log: StructuredLog,
) {
  await Promise.all(
    [...failures.values()].map(async ({ group, hostId, seq, hosts }) => {
      const others = hosts.size - 1;
      const request = {
        group,
        reason: `host ${hostId} reported failed${others > 0 ? ` (and ${others} more)` : ''}`,
        dedupeKey: `ingest-${group}-${hostId}-${seq}`,
      };
      try {
        await starter.start(request);
      } catch (error) {
        log('error', 'could not start a reconcile', { ...request, hostId, error: `${error}` });
      }
    }),
  );
}

const BROKEN_SERVICE: ReadonlySet<string> = new Set(['failed', 'stopped']);

/**
 * Whether a recorded change brought news a reconcile acts on: the host turned failed, or a service it is told
 * to run turned failed or stopped while it is told to run. A lost host is already replaced: no news.
 */
export function reportsFailure(before: HostState | undefined, after: HostState): boolean {
  const status = statusOf(after);
  if (status === 'failed') return before === undefined || statusOf(before) !== 'failed';
  if (status === 'lost') return false;
  const desired = after.assigned?.state;
  if (desired?.mode !== 'running') return false;
  return Object.keys(desired.services).some((service) => {
    const now = after.observed?.software[service]?.status;
    const then = before?.observed?.software[service]?.status;
    return now !== undefined && BROKEN_SERVICE.has(now) && (then === undefined || !BROKEN_SERVICE.has(then));
  });
}

export async function ingestObject(deps: IngestDeps, arrival: ObjectArrival): Promise<Outcome> {
  return (await ingest(deps, arrival)).outcome;
}

async function ingest(
  deps: IngestDeps,
  arrival: ObjectArrival,
): Promise<{ outcome: Outcome; failure?: ReportedFailure }> {
  const change: RecordedChange = {};
  const outcome = await judgeObject(deps, arrival, change);
  if (outcome !== 'changed' || !change.after || !reportsFailure(change.before, change.after))
    return { outcome };
  const { group, hostId, lastChangeSeq } = change.after;
  return { outcome, failure: { group, hostId, seq: lastChangeSeq, hosts: new Set([hostId]) } };
}

/** The host's projection before and after the snapshot was decided on (after: only when something was decided). */
interface RecordedChange {
  before?: HostRecord;
  after?: HostRecord;
}

async function judgeObject(
  deps: IngestDeps,
  arrival: ObjectArrival,
  change: RecordedChange,
): Promise<Outcome> {
  const { config } = deps;
  const quarantine = async (rejection: Rejection): Promise<Outcome> => {
    await deps.snapshots.quarantine(arrival.key, { ...rejection, rejectedAt: deps.now().toISOString() });
    (deps.log ?? jsonConsoleLog)('warn', 'snapshot quarantined', { key: arrival.key, ...rejection });
    return `rejected:${rejection.reason}`;
  };

  let keyParts: { hostId: string; seq: number };
  try {
    keyParts = parseSnapshotKey(arrival.key);
  } catch (error) {
    return quarantine({ reason: 'bad-key', detail: (error as Error).message });
  }
  const tooLarge = (size: number) =>
    quarantine({
      reason: 'oversized',
      detail: `snapshot is ${size} bytes, the limit is ${config.maxSnapshotBytes}`,
    });
  if (arrival.size > config.maxSnapshotBytes) return tooLarge(arrival.size);

  let body: string;
  try {
    body = (await deps.snapshots.read(arrival.key, config.maxSnapshotBytes)).body;
  } catch (error) {
    if (error instanceof TooLargeError) return tooLarge(Number(error.details.size));
    if ((error as { name?: string }).name === 'NoSuchKey') return 'gone';
    throw error;
  }
  const parsed = parseSnapshot(body, keyParts.hostId, keyParts.seq);
  if (isVerdict(parsed)) return parsed.kind === 'rejected' ? quarantine(parsed.rejection) : 'duplicate';

  const { hostId } = keyParts;
  const { outcome, state } = await runCommand(
    { events: deps.events, now: deps.now, retry: deps.retry },
    {
      stream: hostStream(hostId),
      decider: hostDecider,
      projection: hostProjection(deps.hosts, hostId),
      // The projection is almost always current: a changed snapshot costs one read and two writes, and only
      // a lost race (the conditional append or the heartbeat's guard) pays for reading the stream.
      trustProjection: true,
      context: async (host) => {
        // The state the decision is made on (a retry's is the newer one): the "before" of what it records.
        change.before = host;
        return {
          secret: host?.secretCiphertext
            ? await deps.cipher.decrypt(host.secretCiphertext, hostId)
            : undefined,
        };
      },
    },
    {
      type: 'Observe',
      snapshot: parsed,
      key: arrival.key,
      receivedAt: arrival.eventTime,
      now: deps.now(),
      config,
    },
    async ({ outcome: decided }) => {
      const verdict = decided.kind === 'observed' ? decided.verdict : undefined;
      if (verdict?.kind !== 'heartbeat' || !verdict.update) return;
      if (!(await deps.hosts.touch(verdict.update)))
        throw new ConflictError(`the projection of host ${hostId} moved while judging ${arrival.key}`, {
          hostId,
        });
    },
  );
  if (outcome.kind !== 'observed') throw new Error(`Observe answered ${outcome.kind}`);
  change.after = state;
  let verdict: Verdict | UnknownHost = outcome.verdict;
  if (verdict.kind === 'stale') {
    verdict = judgeStale({
      snapshot: parsed,
      stateAtSeq: await stateAtSeq(deps.events, parsed),
      lastSeq: verdict.lastSeq,
      bands: config.bands,
    });
  }
  switch (verdict.kind) {
    case 'unknown-host':
      return quarantine({
        reason: 'unknown-host',
        detail: verdict.retiredAt
          ? `host ${hostId} was retired at ${verdict.retiredAt}: its secret was revoked`
          : `no host ${hostId} is registered`,
      });
    case 'rejected':
      return quarantine(verdict.rejection);
    case 'duplicate':
      return 'duplicate';
    case 'heartbeat':
      return verdict.update ? 'heartbeat' : 'coalesced';
    case 'changed':
      return 'changed';
    case 'stale':
      throw new Error(`judgeStale left ${arrival.key} stale`);
  }
}

/**
 * The host's tracked state as its log holds it at the snapshot's sequence: the fold up to the last
 * StateObserved at or below it. Observations are appended in sequence order, so the first one above ends it.
 * Only stale snapshots (redeliveries, replays) pay for this read.
 */
async function stateAtSeq(events: EventStore, snapshot: Snapshot): Promise<TrackedState | undefined> {
  let state: HostState | undefined;
  let cursor: string | undefined;
  do {
    const page = await events.read(hostStream(snapshot.hostId), { limit: 1000, cursor });
    for (const event of page.events) {
      if (event.type === 'StateObserved' && event.data.seq > snapshot.seq) return state?.observed;
      state = evolve(state, event);
    }
    cursor = page.next;
  } while (cursor !== undefined);
  return state?.observed;
}
