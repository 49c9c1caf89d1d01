/**
 * The host stream (`host#<id>`): what the host is (registered), what it reported (StateObserved), what it was
 * told (StateAssigned) and that its instance ended (InstanceTerminated). The state decided on is the host
 * projection itself, so the projection is exactly the fold of the stream.
 */
import type { Decider, Decision } from '../command/decider.ts';
import { emit } from '../command/decider.ts';
import { ConflictError, NotFoundError } from '../errors.ts';
import type { AssignedBy, HostEvent, InstanceTerminated, RecordedEvent } from '../events.ts';
import { evolve as evolveHostState, statusOf } from '../fold.ts';
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
  | { type: 'Assign'; state: DesiredHostState; by: AssignedBy; at: Date };

export type HostOutcome =
  | { kind: 'registered' }
  | { kind: 'observed'; verdict: Verdict | { kind: 'unknown-host' } }
  | { kind: 'terminated'; recorded: boolean }
  | { kind: 'assigned'; recorded: boolean };

/** What Observe needs beyond the state: the host's secret, decrypted by the caller from the projection. */
export interface HostContext {
  secret?: string;
}

export type HostStreamState = HostRecord | undefined;

/** Folds one event into the projection, keeping what the stream does not hold (the encrypted secret). */
export function evolveHost(record: HostStreamState, event: RecordedEvent<HostEvent>): HostRecord {
  const next = evolveHostState(record, event);
  const observed = event.type === 'StateObserved' ? event.data : undefined;
  return {
    ...record,
    ...next,
    status: statusOf(next),
    role: next.roles[0] as string,
    lastSeq: Math.max(record?.lastSeq ?? 0, next.lastChangeSeq),
    secretCiphertext: record?.secretCiphertext ?? '',
    ...(observed?.receivedAt ? { lastSeen: observed.receivedAt } : {}),
    ...(observed?.metrics ? { metrics: observed.metrics } : {}),
  };
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
    }
  },
};

function existing(state: HostStreamState): HostRecord {
  if (!state) throw new NotFoundError('host is not registered', {});
  return state;
}
