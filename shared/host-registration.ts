import type { Decider } from './command/decider.ts';
import { runCommand, type StreamTarget } from './command/runner.ts';
import { ConflictError } from './errors.ts';
import { type HostEvent, hostStream } from './events.ts';
import {
  type HostCommand,
  type HostContext,
  type HostIdentity,
  type HostOutcome,
  type HostStreamState,
  hostDecider,
} from './hosts/host-decider.ts';
import { hostProjection } from './hosts/host-projection.ts';
import type { EventStore, HostRecord, HostStore, SecretCipher } from './ports.ts';

/**
 * Registering a host: the `HostRegistered` event, then the projection holding the host's secret encrypted.
 * The api (`POST /hosts`) and the reconcile (before it launches an EC2 host) both register through here.
 */

export type { HostIdentity } from './hosts/host-decider.ts';

export interface RegistrationDeps {
  events: EventStore;
  hosts: HostStore;
  cipher: SecretCipher;
}

/** ConflictError when the host exists (its event or its projection). */
export async function registerHost(
  deps: RegistrationDeps,
  host: HostIdentity,
  secret: string,
  now: Date,
): Promise<HostRecord> {
  // Encrypt before anything is written: a key failure then leaves no half-registered host behind.
  return register(deps, host, await deps.cipher.encrypt(secret, host.hostId), now);
}

export interface EnsuredRegistration {
  secret: string;
  outcome: 'registered' | 'reused' | 'repaired';
}

/**
 * For callers that must be safe to retry (a reconcile wave): an existing registration is reused and its
 * secret decrypted; a registration cut short between its two writes (the event without a projection) is
 * completed with a new secret, which nobody can hold yet because only this function hands it out.
 */
export async function ensureHostRegistered(
  deps: RegistrationDeps,
  host: HostIdentity,
  newSecret: () => string,
  now: Date,
): Promise<EnsuredRegistration> {
  const existing = await deps.hosts.get(host.hostId);
  // A retired host's secret is gone for good: its id is not handed out again.
  if (existing?.retired) throw new ConflictError(`host ${host.hostId} was retired`, { hostId: host.hostId });
  if (existing) return reused(deps, existing);

  const secret = newSecret();
  const secretCiphertext = await deps.cipher.encrypt(secret, host.hostId);
  try {
    await register(deps, host, secretCiphertext, now);
    return { secret, outcome: 'registered' };
  } catch (error) {
    if (!(error instanceof ConflictError)) throw error;
  }
  // The host exists. Another writer's projection wins; a stream without one gets it now, with our secret.
  const { outcome, state } = await runCommand(
    { events: deps.events, now: () => now },
    target(deps, host.hostId, secretCiphertext, completeRegistration),
    undefined,
  );
  return outcome === 'repaired' ? { secret, outcome } : reused(deps, state as HostRecord);
}

function target<C, R>(
  deps: RegistrationDeps,
  hostId: string,
  secretCiphertext: string,
  decider: Decider<HostStreamState, C, HostEvent, R, HostContext>,
): StreamTarget<HostStreamState, C, HostEvent, R, HostContext> {
  return {
    stream: hostStream(hostId),
    decider,
    // Creates the record, secret included, when the stream has a registration and no projection yet.
    projection: hostProjection(deps.hosts, hostId, { secretCiphertext }),
    context: () => ({}),
  };
}

async function register(
  deps: RegistrationDeps,
  host: HostIdentity,
  secretCiphertext: string,
  now: Date,
): Promise<HostRecord> {
  const command: HostCommand = { type: 'Register', host, at: now };
  const { state } = await runCommand<HostStreamState, HostCommand, HostEvent, HostOutcome, HostContext>(
    { events: deps.events, now: () => now },
    target(deps, host.hostId, secretCiphertext, hostDecider),
    command,
  );
  if (!state) throw new Error(`host ${host.hostId}: registered, yet its stream is empty`);
  return { ...state, secretCiphertext };
}

/**
 * Decides nothing: running it only catches the projection up with the stream, which creates a missing one.
 * Its outcome tells the two apart: a state loaded from a projection carries that projection's secret, one
 * folded from the stream alone carries none.
 */
const completeRegistration: Decider<
  HostStreamState,
  undefined,
  HostEvent,
  'repaired' | 'reused',
  HostContext
> = {
  initial: hostDecider.initial,
  versionOf: hostDecider.versionOf,
  evolve: hostDecider.evolve,
  decide(_command, state) {
    if (!state)
      throw new Error('registration conflicted, yet the host has neither a stream nor a projection');
    return { events: [], outcome: state.secretCiphertext ? 'reused' : 'repaired' };
  },
};

async function reused(deps: RegistrationDeps, record: HostRecord): Promise<EnsuredRegistration> {
  return { secret: await deps.cipher.decrypt(record.secretCiphertext, record.hostId), outcome: 'reused' };
}
