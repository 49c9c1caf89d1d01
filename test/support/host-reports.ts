/*
 * A host reporting, as the ingest would record it: a StateObserved appended to the host's stream through the
 * command runner and folded into its projection. Test doubles of hosts report this way, so what the reconcile
 * reads is what the real write path produces.
 */
import { emit } from '../../shared/command/decider.ts';
import { runCommand } from '../../shared/command/runner.ts';
import { diff } from '../../shared/diff.ts';
import { type HostEvent, hostStream } from '../../shared/events.ts';
import { type HostStreamState, hostDecider } from '../../shared/hosts/host-decider.ts';
import { hostProjection } from '../../shared/hosts/host-projection.ts';
import type { Metrics, TrackedState } from '../../shared/metrics.ts';
import type { EventStore, HostRecord, HostStore } from '../../shared/ports.ts';

export interface ReportDeps {
  events: EventStore;
  hosts: HostStore;
  now?: () => Date;
}

const NO_METRICS: Metrics = { load: 0, sessions: { voice: 0, sms: 0, mms: 0, video: 0 } };

/** The state a host reports right after it booted. */
export function bootingState(
  record: Pick<HostRecord, 'group' | 'hostType' | 'roles' | 'hostId'>,
): TrackedState {
  return {
    status: 'booting',
    group: record.group,
    hostType: record.hostType,
    roles: record.roles,
    ips: { internal: `10.0.0.${record.hostId.length}` },
    capacity: { sessions: 100 },
    config: { values: {} },
    software: {},
    operational: { dataRefs: [], bands: { load: 0, sessions: { voice: 0, sms: 0, mms: 0, video: 0 } } },
    appliedStateVersion: 0,
  };
}

/**
 * The host reports `change(its last reported state)` (and these metrics): one StateObserved with the next
 * sequence number. Returns the projection after it.
 */
export async function report(
  deps: ReportDeps,
  hostId: string,
  change: (observed: TrackedState, record: HostRecord) => TrackedState,
  metrics: Metrics = NO_METRICS,
): Promise<HostRecord> {
  const now = deps.now ?? (() => new Date());
  const result = await runCommand(
    { events: deps.events, now },
    {
      stream: hostStream(hostId),
      decider: {
        ...hostDecider,
        decide: (_: undefined, state: HostStreamState) => {
          if (!state) throw new Error(`host ${hostId} is not registered`);
          const next = change(structuredClone(state.observed ?? bootingState(state)), state);
          const seq = state.lastSeq + 1;
          const at = now().toISOString();
          return emit<HostEvent>({
            type: 'StateObserved',
            eventId: `snapshots/${hostId}/${seq}.json`,
            data: { seq, observedAt: at, changes: diff(state.observed ?? {}, next), receivedAt: at, metrics },
          });
        },
      },
      projection: hostProjection(deps.hosts, hostId),
    },
    undefined,
  );
  if (!result.state) throw new Error(`host ${hostId} has no state`);
  return result.state;
}
