/**
 * What an operator needs beside an alarm to start looking: what the hosts concerned last reported, what they
 * were last told, and which services the failing one drags with it. Read once when the alarm is raised and
 * kept in its event, so the alarm still explains itself after the hosts are gone.
 *
 * The agent's apply-hook output is not in its snapshots (it only goes to the agent's own log), so a
 * diagnosis cannot carry it: the services' statuses say which hook failed, the host's log says why.
 */
import { hostStream, type RecordedEvent, type StateObserved } from '../events.ts';
import type { CompiledGroup } from '../groups/model.ts';
import type { EventStore, HostRecord, HostStore } from '../ports.ts';
import type { Diagnosis, HostDiagnosis } from './diagnosis-types.ts';

export type { Diagnosis, HostDiagnosis, SnapshotSummary } from './diagnosis-types.ts';

/** Enough hosts to see a pattern; an alarm over a hundred hosts would otherwise outgrow its message. */
export const MAX_DIAGNOSED_HOSTS = 5;
export const MAX_SNAPSHOTS_PER_HOST = 3;
/** A snapshot that changed everything (a first report) is cut to this many changes. */
export const MAX_CHANGES_PER_SNAPSHOT = 20;
/** Events read per page when looking back for a host's snapshots; two pages at most. */
const SNAPSHOT_PAGE = 10;

/** What `diagnose` reads of one host: its record and its last StateObserved events, newest first. */
export interface HostEvidence {
  hostId: string;
  record?: HostRecord;
  snapshots: readonly RecordedEvent<StateObserved>[];
}

/**
 * The services `service` takes down with it (whatever depends on it, transitively, breadth first) and the
 * ones it needs (what it depends on, transitively): where the cause may be, and what else will alarm.
 */
export function dependencyChain(group: CompiledGroup, service: string): string[] {
  const chain = [service];
  const seen = new Set(chain);
  const walk = (next: (name: string) => readonly string[]) => {
    const queue = [service];
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      for (const other of [...next(name)].sort()) {
        if (seen.has(other)) continue;
        seen.add(other);
        chain.push(other);
        queue.push(other);
      }
    }
  };
  walk((name) => group.dependents[name] ?? []);
  walk((name) =>
    Object.entries(group.dependents)
      .filter(([, dependents]) => dependents.includes(name))
      .map(([dependency]) => dependency),
  );
  return chain;
}

function hostDiagnosis(evidence: HostEvidence): HostDiagnosis {
  const { record } = evidence;
  const services = Object.fromEntries(
    Object.entries(record?.observed?.software ?? {}).map(([name, instance]) => [
      name,
      { status: instance.status, version: instance.version },
    ]),
  );
  const lastSnapshots = evidence.snapshots.slice(0, MAX_SNAPSHOTS_PER_HOST).map((event) => {
    const { seq, observedAt, changes } = event.data;
    const omitted = changes.length - MAX_CHANGES_PER_SNAPSHOT;
    return {
      seq,
      observedAt,
      changes: changes.slice(0, MAX_CHANGES_PER_SNAPSHOT),
      ...(omitted > 0 ? { omittedChanges: omitted } : {}),
    };
  });
  return {
    hostId: evidence.hostId,
    hostType: record?.hostType ?? 'unknown',
    status: record?.status ?? 'unknown',
    ...(record?.lastSeen !== undefined ? { lastSeen: record.lastSeen } : {}),
    services,
    lastSnapshots,
    ...(record?.assigned
      ? { assigned: { stateVersion: record.assigned.state.stateVersion, by: record.assigned.by } }
      : {}),
  };
}

/** The diagnosis of what was read. Pure. */
export function diagnosisOf(
  group: CompiledGroup,
  evidence: readonly HostEvidence[],
  service?: string,
  omittedHosts = 0,
): Diagnosis {
  const hosts = evidence.slice(0, MAX_DIAGNOSED_HOSTS).map(hostDiagnosis);
  const failing =
    service ??
    hosts
      .flatMap((host) => Object.entries(host.services).filter(([, instance]) => instance.status === 'failed'))
      .map(([name]) => name)
      .sort()[0];
  const omitted = omittedHosts + Math.max(0, evidence.length - MAX_DIAGNOSED_HOSTS);
  return {
    hosts,
    dependencyChain: failing === undefined ? [] : dependencyChain(group, failing),
    ...(failing !== undefined ? { service: failing } : {}),
    ...(omitted > 0 ? { omittedHosts: omitted } : {}),
  };
}

/** The host's last StateObserved events, newest first: at most two backward pages of its stream. */
async function lastSnapshots(events: EventStore, hostId: string): Promise<RecordedEvent<StateObserved>[]> {
  const found: RecordedEvent<StateObserved>[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 2 && found.length < MAX_SNAPSHOTS_PER_HOST; page += 1) {
    const read = await events.read(hostStream(hostId), {
      direction: 'backward',
      limit: SNAPSHOT_PAGE,
      ...(cursor !== undefined ? { cursor } : {}),
    });
    for (const event of read.events)
      if (event.type === 'StateObserved') found.push(event as RecordedEvent<StateObserved>);
    if (read.next === undefined) break;
    cursor = read.next;
  }
  return found.slice(0, MAX_SNAPSHOTS_PER_HOST);
}

/**
 * Reads and diagnoses the first MAX_DIAGNOSED_HOSTS of `hostIds`: per host its record (1 GetItem) and one or
 * two pages of its stream (1–2 Query), the hosts read in parallel.
 */
export async function diagnose(
  deps: { events: EventStore; hosts: HostStore },
  group: CompiledGroup,
  hostIds: readonly string[],
  service?: string,
): Promise<Diagnosis> {
  const chosen = [...new Set(hostIds)].slice(0, MAX_DIAGNOSED_HOSTS);
  const evidence = await Promise.all(
    chosen.map(async (hostId): Promise<HostEvidence> => {
      const record = await deps.hosts.get(hostId);
      const snapshots = record ? await lastSnapshots(deps.events, hostId) : [];
      return { hostId, ...(record ? { record } : {}), snapshots };
    }),
  );
  return diagnosisOf(group, evidence, service, new Set(hostIds).size - chosen.length);
}
