import { NotFoundError } from '../../../shared/errors.ts';
import type { GroupDocument } from '../../../shared/groups/group-state.ts';
import type { Action, ActualHost, Rollout, RolloutOperation } from '../../../shared/groups/model.ts';
import type { DocumentStore } from '../../../shared/groups/ports.ts';
import type { HostRecord, HostStore } from '../../../shared/ports.ts';
import { leaseSeconds, renew } from '../../../shared/reconcile/lease.ts';
import { updateLease } from '../../../shared/reconcile/lease-store.ts';
import type { ServiceTarget } from '../../../shared/reconcile/rollout-progress.ts';
import type { PlanRef, ReconcileDeps } from './types.ts';

export type { GroupDocument };

const PAGE = 100;

export async function loadGroup(documents: DocumentStore, name: string): Promise<GroupDocument> {
  const document = await documents.get<GroupDocument>('group', name);
  if (!document) throw new NotFoundError(`group ${name} does not exist`, { group: name });
  return document.body;
}

export async function loadRollout(documents: DocumentStore, id: string | null): Promise<Rollout | undefined> {
  return id ? (await documents.get<Rollout>('rollout', id))?.body : undefined;
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
 * The planner's view of a host. A draining host's drain is dated from when the draining state was assigned
 * (the projection's observedAt moves with every snapshot, so a drain measured from it would never time out).
 */
export function toActualHost(record: HostRecord): ActualHost {
  const observed = record.observed;
  const assigned = record.assigned;
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
  const wanted = assigned?.state.services ?? {};
  const unhealthy = Object.entries(observed?.software ?? {}).some(
    ([service, instance]) => instance.status === 'failed' && service in wanted,
  );
  return {
    hostId: record.hostId,
    hostType: record.hostType,
    status: record.status,
    software,
    appliedStateVersion: observed?.appliedStateVersion ?? 0,
    assignedStateVersion: assigned?.state.stateVersion ?? 0,
    liveSessions: liveSessionsOf(record),
    load: record.metrics?.load ?? 0,
    ...(assigned?.state.mode === 'draining' ? { drainingSince: assigned.assignedAt } : {}),
    ...(address ? { address } : {}),
    ...(endpoints && Object.keys(endpoints).length > 0 ? { endpoints } : {}),
    ...(unhealthy ? { unhealthy } : {}),
  };
}

/**
 * The hosts of a wave a rollout of `service` is about: the ones whose new state (assigned, drained or
 * launched) runs the service. Load balancer updates and other repairs the same plan makes are not its hosts.
 */
export function rolloutHostsOfWave(
  actions: readonly Action[],
  service: string,
  operation: RolloutOperation = 'update',
): string[] {
  const hosts = new Set<string>();
  for (const action of actions) {
    if (action.kind !== 'assign' && action.kind !== 'drain' && action.kind !== 'launch') continue;
    // A removal's hosts are the ones it assigns a state without the service (or drains to do so).
    const ofIt =
      action.state.services[service] !== undefined || (operation === 'remove' && action.kind !== 'launch');
    if (ofIt) hosts.add(action.hostId);
  }
  return [...hosts].sort();
}

/** Where the plan moves the rollout's hosts: its target, or (reverting) back to what the group defines. */
export function targetOf(rollout: Rollout, group: GroupDocument, revert: boolean): ServiceTarget {
  const operation = rollout.operation ?? 'update';
  if (!revert) {
    return {
      service: rollout.service,
      ...(rollout.version === undefined ? {} : { version: rollout.version }),
      ...(rollout.config === undefined ? {} : { config: rollout.config }),
      ...(operation === 'stop' ? { stopped: true } : operation === 'start' ? { stopped: false } : {}),
      ...(operation === 'remove' ? { absent: true as const } : {}),
    };
  }
  const defined = Object.values(group.compiled.hostTypes).find((type) => type.services[rollout.service])
    ?.services[rollout.service];
  const version = rollout.previousVersion ?? defined?.version;
  // Only the keys the rollout set go back, to what they were when it was requested (else what the definition
  // says; a key it added stays: nothing defines it). A declared rollout's definition is already the new one.
  const before = rollout.from?.config ?? defined?.config;
  const config = Object.fromEntries(
    Object.keys(rollout.config ?? {}).flatMap((key) => {
      const value = before?.[key];
      return value === undefined ? [] : [[key, value] as const];
    }),
  );
  const stopped =
    operation === 'stop' || operation === 'start'
      ? { stopped: rollout.from?.stopped ?? operation === 'start' }
      : {};
  return {
    service: rollout.service,
    ...(version === undefined ? {} : { version }),
    ...(Object.keys(config).length > 0 ? { config } : {}),
    ...stopped,
  };
}

/**
 * The operation that puts a rollout's hosts back: a stop is undone by a start (and the other way round, as
 * the hosts were before), a removal by the service's previous spec, an update by an update.
 */
export function revertOperation(rollout: Rollout): RolloutOperation {
  switch (rollout.operation ?? 'update') {
    case 'stop':
    case 'start':
      return rollout.from?.stopped ? 'stop' : 'start';
    default:
      return 'update';
  }
}

/**
 * The hosts a rollout changed or began to change (drained included): what a revert must put back. The host
 * streams say it: every host whose latest assignment came from the rollout; the rollout's record adds the ones
 * it settled (a host replaced since is no longer among the records).
 */
export function touchedHosts(rollout: Rollout, records: readonly HostRecord[]): string[] {
  const touched = new Set([...rollout.hosts.done, ...rollout.hosts.failed]);
  for (const wave of rollout.waves)
    if (wave.status !== 'pending') for (const host of wave.hosts) touched.add(host);
  for (const record of records) if (record.assigned?.by.rolloutId === rollout.id) touched.add(record.hostId);
  return [...touched].sort();
}

/**
 * This run still holds the group: renews its lease when due. False when another run took the group over
 * (this one was presumed dead): it must change nothing more.
 */
export async function stillHolds(deps: ReconcileDeps, ref: PlanRef): Promise<boolean> {
  const now = deps.now();
  const ttl = leaseSeconds(ref.pollSeconds);
  const renewal = await updateLease(deps.documents, ref.group, now, (lease) =>
    renew(lease, ref.run, now, ttl),
  );
  return renewal.kind !== 'lost';
}
