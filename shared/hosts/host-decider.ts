/**
 * The host stream (`host#<id>`): what the host is (registered), what it reported (StateObserved), what it was
 * told (StateAssigned), that its instance ended (InstanceTerminated), what the control plane judged of it
 * from the outside (HostLost, HostDegraded, HostRecovered) and that its registration ended (HostRetired).
 * The state decided on is the host projection itself, so the projection is exactly the fold of the stream.
 */
import type { Decider, Decision } from '../command/decider.ts';
import { emit } from '../command/decider.ts';
import { ConflictError, NotFoundError } from '../errors.ts';
import type {
  AssignedBy,
  HostDegraded,
  HostEvent,
  HostLost,
  InstanceTerminated,
  RecordedEvent,
} from '../events.ts';
import { evolve as evolveHostState, isTerminated, statusOf } from '../fold.ts';
import type { DesiredHostState } from '../groups/model.ts';
import { type IngestConfig, judgeSnapshot, type Verdict } from '../ingest.ts';
import type { HostRecord } from '../ports.ts';
import type { Snapshot } from '../schemas.ts';

export interface HostIdentity {
  hostId: string;
  group: string;
  hostType: string;
  roles: string[];
}

export type HostCommand =
  | { type: 'Register'; host: HostIdentity; at: Date }
  | {
      type: 'Observe';
      snapshot: Snapshot;
      /** The object key: the event id, so a redelivery is recognisable. */
      key: string;
      receivedAt: Date;
      now: Date;
      config: IngestConfig;
    }
  | { type: 'RecordTermination'; termination: Omit<InstanceTerminated['data'], 'at'>; at: Date }
  | { type: 'Assign'; state: DesiredHostState; by: AssignedBy; at: Date }
  | { type: 'MarkLost'; loss: Omit<HostLost['data'], 'at'>; at: Date }
  | { type: 'MarkDegraded'; degradation: Omit<HostDegraded['data'], 'at'>; at: Date }
  | { type: 'MarkRecovered'; at: Date }
  | { type: 'Retire'; reason: string; at: Date };

/** Why the ingest does not know a host: never registered (or no secret), or its registration ended. */
export type UnknownHost = { kind: 'unknown-host'; retiredAt?: string };

export type HostOutcome =
  | { kind: 'registered' }
  | { kind: 'observed'; verdict: Verdict | UnknownHost }
  | { kind: 'terminated'; recorded: boolean }
  | { kind: 'assigned'; recorded: boolean }
  | { kind: 'lost'; recorded: boolean }
  | { kind: 'degraded'; recorded: boolean }
  | { kind: 'recovered'; recorded: boolean }
  | { kind: 'retired'; recorded: boolean };

/** What Observe needs beyond the state: the host's secret, decrypted by the caller from the projection. */
export interface HostContext {
  secret?: string;
}

export type HostStreamState = HostRecord | undefined;

/**
 * Folds one event into the projection, keeping what the stream does not hold (the encrypted secret) until
 * the host is retired: then the secret is dropped, and with it every way to accept the host's snapshots.
 */
export function evolveHost(record: HostStreamState, event: RecordedEvent<HostEvent>): HostRecord {
  const next = evolveHostState(record, event);
  const observed = event.type === 'StateObserved' ? event.data : undefined;
  const folded: HostRecord = {
    ...record,
    ...next,
    status: statusOf(next),
    role: next.roles[0] as string,
    lastSeq: Math.max(record?.lastSeq ?? 0, next.lastChangeSeq),
    secretCiphertext: next.retired ? '' : (record?.secretCiphertext ?? ''),
    ...(observed?.receivedAt ? { lastSeen: observed.receivedAt } : {}),
    ...(observed?.metrics ? { metrics: observed.metrics } : {}),
  };
  // The fold drops what an event ended (a recovery ends a degradation); the record spread first must not keep it.
  if (!next.degradedBy) delete folded.degradedBy;
  return folded;
}

export const hostDecider: Decider<HostStreamState, HostCommand, HostEvent, HostOutcome, HostContext> = {
  initial: undefined,
  versionOf: (state) => state?.version ?? 0,
  evolve: evolveHost,
  decide(command, state, ctx): Decision<HostEvent, HostOutcome> {
    switch (command.type) {
      case 'Register':
        if (state) throw new ConflictError(`host ${state.hostId} exists`, { hostId: state.hostId });
        return {
          events: [
            {
              type: 'HostRegistered',
              eventId: `register#${command.host.hostId}`,
              data: { ...command.host, registeredAt: command.at.toISOString() },
            },
          ],
          outcome: { kind: 'registered' },
        };
      case 'Observe': {
        if (state?.retired)
          return {
            events: [],
            outcome: { kind: 'observed', verdict: { kind: 'unknown-host', retiredAt: state.retired.at } },
          };
        if (!state || ctx.secret === undefined)
          return { events: [], outcome: { kind: 'observed', verdict: { kind: 'unknown-host' } } };
        const verdict = judgeSnapshot({
          snapshot: command.snapshot,
          host: state,
          secret: ctx.secret,
          receivedAt: command.receivedAt,
          now: command.now,
          eventId: command.key,
          config: command.config,
        });
        return {
          events: verdict.kind === 'changed' ? [verdict.event] : [],
          outcome: { kind: 'observed', verdict },
        };
      }
      case 'RecordTermination': {
        const host = existing(state);
        const { instanceId } = command.termination;
        // Once per instance: a retried step, or two steps that saw the same end, record it once.
        if (host.terminated?.instanceId === instanceId)
          return { events: [], outcome: { kind: 'terminated', recorded: false } };
        return {
          events: [
            {
              type: 'InstanceTerminated',
              eventId: `${host.hostId}.terminated.${instanceId}`,
              data: { ...command.termination, at: command.at.toISOString() },
            },
          ],
          outcome: { kind: 'terminated', recorded: true },
        };
      }
      case 'Assign': {
        const host = existing(state);
        // Versions only move forward: a retried step assigns nothing twice and never moves a host back.
        const current = host.assigned?.state.stateVersion ?? 0;
        if (current >= command.state.stateVersion)
          return { events: [], outcome: { kind: 'assigned', recorded: false } };
        return {
          ...emit<HostEvent>({
            type: 'StateAssigned',
            eventId: `${host.hostId}.assigned.${command.state.stateVersion}`,
            data: { state: command.state, assignedAt: command.at.toISOString(), by: command.by },
          }),
          outcome: { kind: 'assigned', recorded: true },
        };
      }
      case 'MarkLost': {
        const host = existing(state);
        // Once: a host is lost at most once (it is replaced), and a host whose instance ended is not lost.
        if (host.lost || isTerminated(host))
          return { events: [], outcome: { kind: 'lost', recorded: false } };
        return {
          ...emit<HostEvent>({
            type: 'HostLost',
            eventId: `${host.hostId}.lost`,
            data: { ...command.loss, at: command.at.toISOString() },
          }),
          outcome: { kind: 'lost', recorded: true },
        };
      }
      case 'MarkDegraded': {
        const host = existing(state);
        const { dependency } = command.degradation;
        // A lost or ended host has worse news than a dependency; the same dependency again is no news.
        if (host.lost || isTerminated(host) || host.degradedBy?.dependency === dependency)
          return { events: [], outcome: { kind: 'degraded', recorded: false } };
        return {
          ...emit<HostEvent>({
            type: 'HostDegraded',
            // A host may be degraded by the same dependency again after it recovered: the version tells apart.
            eventId: `${host.hostId}.degraded.${dependency}.${host.version + 1}`,
            data: { ...command.degradation, at: command.at.toISOString() },
          }),
          outcome: { kind: 'degraded', recorded: true },
        };
      }
      case 'MarkRecovered': {
        const host = existing(state);
        if (!host.degradedBy) return { events: [], outcome: { kind: 'recovered', recorded: false } };
        return {
          ...emit<HostEvent>({
            type: 'HostRecovered',
            eventId: `${host.hostId}.recovered.${host.degradedBy.dependency}.${host.version + 1}`,
            data: { dependency: host.degradedBy.dependency, at: command.at.toISOString() },
          }),
          outcome: { kind: 'recovered', recorded: true },
        };
      }
      case 'Retire': {
        const host = existing(state);
        if (host.retired) return { events: [], outcome: { kind: 'retired', recorded: false } };
        return {
          ...emit<HostEvent>({
            type: 'HostRetired',
            eventId: `${host.hostId}.retired`,
            data: { reason: command.reason, at: command.at.toISOString() },
          }),
          outcome: { kind: 'retired', recorded: true },
        };
      }
    }
  },
};

function existing(state: HostStreamState): HostRecord {
  if (!state) throw new NotFoundError('host is not registered', {});
  return state;
}
