import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { ConflictError, TooLargeError } from '../../shared/errors.ts';
import { hostStream } from '../../shared/events.ts';
import { type IngestConfig, isVerdict, judgeSnapshot, parseSnapshot } from '../../shared/ingest.ts';
import { parseSnapshotKey } from '../../shared/keys.ts';
import type {
  EventStore,
  HostRecord,
  HostStore,
  Rejection,
  SecretCipher,
  SnapshotStore,
} from '../../shared/ports.ts';
import { caughtUpProjection } from '../../shared/projection-catch-up.ts';
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

/** Races on one host's stream (parallel batches, redeliveries) are retried this many times before the SQS retry. */
const MAX_ATTEMPTS = 5;

export function createIngestHandler(deps: IngestDeps): (event: SQSEvent) => Promise<SQSBatchResponse> {
  return async (event) => {
    const summary: BatchSummary = { records: event.Records.length, failed: 0, outcomes: {} };
    const failed = new Set<string>();
    const work: { record: SQSRecord; arrival: ObjectArrival }[] = [];
    for (const record of event.Records) {
      try {
        for (const arrival of arrivalsOf(record)) work.push({ record, arrival });
      } catch (error) {
        console.error(
          JSON.stringify({ msg: 'unreadable message', messageId: record.messageId, error: `${error}` }),
        );
        failed.add(record.messageId);
      }
    }
    // One host's snapshots in sequence order, different hosts in parallel: no needless races on a stream.
    await Promise.all(
      [...groupByHost(work).values()].map(async (items) => {
        for (const { record, arrival } of items) {
          try {
            const outcome = await ingestObject(deps, arrival);
            summary.outcomes[outcome] = (summary.outcomes[outcome] ?? 0) + 1;
          } catch (error) {
            console.error(JSON.stringify({ msg: 'ingest failed', key: arrival.key, error: `${error}` }));
            failed.add(record.messageId);
          }
        }
      }),
    );
    summary.failed = failed.size;
    deps.report?.(summary);
    return { batchItemFailures: [...failed].map((itemIdentifier) => ({ itemIdentifier })) };
  };
}

function groupByHost(work: { record: SQSRecord; arrival: ObjectArrival }[]) {
  const groups = new Map<string, typeof work>();
  for (const item of work) {
    const host = item.arrival.key.split('/')[1] ?? '';
    groups.set(host, [...(groups.get(host) ?? []), item]);
  }
  for (const items of groups.values()) items.sort((a, b) => seqOf(a.arrival.key) - seqOf(b.arrival.key));
  return groups;
}

function seqOf(key: string): number {
  return Number(/\/(\d+)\.json$/.exec(key)?.[1] ?? 0);
}

export async function ingestObject(deps: IngestDeps, arrival: ObjectArrival): Promise<Outcome> {
  const { config } = deps;
  const quarantine = async (rejection: Rejection): Promise<Outcome> => {
    await deps.snapshots.quarantine(arrival.key, { ...rejection, rejectedAt: deps.now().toISOString() });
    console.warn(JSON.stringify({ msg: 'snapshot quarantined', key: arrival.key, ...rejection }));
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

  const stream = hostStream(keyParts.hostId);
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt += 1) {
    const host = await deps.hosts.get(keyParts.hostId);
    if (!host)
      return quarantine({ reason: 'unknown-host', detail: `no host ${keyParts.hostId} is registered` });
    const secret = await deps.cipher.decrypt(host.secretCiphertext, host.hostId);
    const verdict = judgeSnapshot({
      snapshot: parsed,
      host,
      secret,
      receivedAt: arrival.eventTime,
      now: deps.now(),
      eventId: arrival.key,
      config,
    });
    switch (verdict.kind) {
      case 'rejected':
        return quarantine(verdict.rejection);
      case 'duplicate':
        return 'duplicate';
      case 'heartbeat':
        if (!verdict.update) return 'coalesced';
        if (await deps.hosts.touch(verdict.update)) return 'heartbeat';
        break; // the state moved under us: judge again against the new projection
      case 'changed':
        try {
          await deps.events.append(stream, host.version, [verdict.event], deps.now());
        } catch (error) {
          if (!(error instanceof ConflictError)) throw error;
          await catchUpProjection(deps, host);
          break;
        }
        await deps.hosts.save(verdict.next);
        return 'changed';
    }
  }
  throw new ConflictError(`gave up on ${arrival.key} after ${MAX_ATTEMPTS} races on ${stream}`);
}

/** The stream is ahead of the projection: fold the missing events in and save it (see caughtUpProjection). */
async function catchUpProjection(deps: IngestDeps, host: HostRecord): Promise<void> {
  const record = await caughtUpProjection(deps.events, host);
  if (record !== host) await deps.hosts.save(record);
}
