import { ConflictError, NotFoundError } from '../../../shared/errors.ts';
import type { NewEvent } from '../../../shared/events.ts';
import { type GroupEvent, groupStream } from '../../../shared/groups/events.ts';
import type {
  Action,
  ActualHost,
  CompiledGroup,
  DesiredHostState,
  GroupDefinition,
  Rollout,
} from '../../../shared/groups/model.ts';
import type { DocumentStore, StoredDocument } from '../../../shared/groups/ports.ts';
import type { EventStore, HostRecord, HostStore } from '../../../shared/ports.ts';

export interface GroupDocument {
  definition: GroupDefinition;
  compiled: CompiledGroup;
  running: boolean;
  definitionVersion: number;
}

export const FINAL_ROLLOUT_STATUSES: ReadonlySet<Rollout['status']> = new Set([
  'succeeded',
  'failed',
  'rolled-back',
  'aborted',
]);

const PAGE = 100;

export async function loadGroup(documents: DocumentStore, name: string): Promise<GroupDocument> {
  const document = await documents.get<GroupDocument>('group', name);
  if (!document) throw new NotFoundError(`group ${name} does not exist`, { group: name });
  return document.body;
}

export async function listGroupHosts(hosts: HostStore, group: string): Promise<HostRecord[]> {
  const all: HostRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await hosts.list({ group }, PAGE, cursor);
    all.push(...page.hosts);
    cursor = page.next;
  } while (cursor);
  return all;
}

/** Runs `task` over `items` with at most `limit` in flight: enough to hide latency, few enough not to throttle. */
export async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export function liveSessionsOf(record: HostRecord): number {
  const sessions = record.metrics?.sessions;
  return sessions ? Object.values(sessions).reduce((sum, count) => sum + count, 0) : 0;
}

/**
 * `assignedAt` is when the desired state was written: for a draining host that is when its drain began (the
 * projection's observedAt moves with every snapshot, so a drain measured from it would never time out).
 */
export function toActualHost(
  record: HostRecord,
  assigned: DesiredHostState | undefined,
  assignedAt?: string,
): ActualHost {
  const observed = record.observed;
  const software = Object.fromEntries(
    Object.entries(observed?.software ?? {}).map(([service, instance]) => [service, instance.version]),
  );
  const address = observed?.ips.internal;
  const endpoints = address
    ? Object.fromEntries(
        Object.entries(observed?.software ?? {})
          .filter(([, instance]) => instance.port !== undefined)
          .map(([service, instance]) => [service, `${address}:${instance.port}`]),
      )
    : undefined;
  return {
    hostId: record.hostId,
    hostType: record.hostType,
    status: record.status,
    software,
    appliedStateVersion: observed?.appliedStateVersion ?? 0,
    assignedStateVersion: assigned?.stateVersion ?? 0,
    liveSessions: liveSessionsOf(record),
    load: record.metrics?.load ?? 0,
    ...(assigned?.mode === 'draining' && assignedAt ? { drainingSince: assignedAt } : {}),
    ...(address ? { address } : {}),
    ...(endpoints && Object.keys(endpoints).length > 0 ? { endpoints } : {}),
  };
}

/**
 * Writes a host's desired state unless the store already holds this version or a newer one, so a retried
 * step writes nothing twice and never moves a host backwards.
 */
export async function writeDesired(
  documents: DocumentStore,
  state: DesiredHostState,
  at: Date,
): Promise<boolean> {
  const existing = await documents.get<DesiredHostState>('desired', state.hostId);
  if (existing && existing.body.stateVersion >= state.stateVersion) return false;
  await documents.put('desired', state.hostId, state, existing?.version ?? 0, at);
  return true;
}

/** Read-modify-write of a rollout with the document's version guard, deciding again when someone raced us. */
export async function updateRollout(
  documents: DocumentStore,
  rolloutId: string,
  at: Date,
  change: (rollout: Rollout) => Rollout | undefined,
): Promise<Rollout | undefined> {
  for (let attempt = 1; ; attempt += 1) {
    const document: StoredDocument<Rollout> | undefined = await documents.get<Rollout>('rollout', rolloutId);
    if (!document) throw new NotFoundError(`rollout ${rolloutId} does not exist`, { rolloutId });
    const next = change(structuredClone(document.body));
    if (!next) return document.body;
    try {
      await documents.put(
        'rollout',
        rolloutId,
        { ...next, updatedAt: at.toISOString() },
        document.version,
        at,
      );
      return next;
    } catch (error) {
      if (!(error instanceof ConflictError) || attempt >= 5) throw error;
    }
  }
}

/**
 * Appends events to a group's stream unless an event with the same id is already at its tail: a retried
 * step records its outcome once. Event ids are derived from the run, never random.
 */
export async function appendOnce(
  events: EventStore,
  group: string,
  newEvents: readonly NewEvent<GroupEvent>[],
  at: Date,
): Promise<void> {
  const stream = groupStream(group);
  for (let attempt = 1; ; attempt += 1) {
    const current = await events.currentVersion(stream);
    const tail = await events.read<GroupEvent>(stream, { direction: 'backward', limit: 50 });
    const seen = new Set(tail.events.map((event) => event.eventId));
    const missing = newEvents.filter((event) => !seen.has(event.eventId));
    if (missing.length === 0) return;
    try {
      await events.append<GroupEvent>(stream, current, missing, at);
      return;
    } catch (error) {
      if (!(error instanceof ConflictError) || attempt >= 5) throw error;
    }
  }
}

/**
 * The hosts of a wave a rollout of `service` is about: the ones whose new state (assigned, drained or
 * launched) runs the service. Load balancer updates and other repairs the same plan makes are not its hosts.
 */
export function rolloutHostsOfWave(actions: readonly Action[], service: string): string[] {
  const hosts = new Set<string>();
  for (const action of actions) {
    if (action.kind !== 'assign' && action.kind !== 'drain' && action.kind !== 'launch') continue;
    if (action.state.services[service]) hosts.add(action.hostId);
  }
  return [...hosts].sort();
}

/**
 * How long a run's word that it lives holds: a few convergence polls plus room for a slow or retried
 * invocation. A run renews it at every step, so resume can tell a run waiting at its check from one that is
 * over (see Rollout.runAliveUntil).
 */
export function runAliveWindowSeconds(pollSeconds: number): number {
  return Math.max(30, 3 * pollSeconds + 10);
}

export function runAliveUntil(now: Date, pollSeconds: number): string {
  return new Date(now.getTime() + runAliveWindowSeconds(pollSeconds) * 1000).toISOString();
}

/** Renewing only past half the window keeps a waiting run to one rollout write every few polls. */
export function needsRenewal(rollout: Rollout, now: Date, pollSeconds: number): boolean {
  if (!rollout.runAliveUntil) return true;
  const left = Date.parse(rollout.runAliveUntil) - now.getTime();
  return left < (runAliveWindowSeconds(pollSeconds) * 1000) / 2;
}
