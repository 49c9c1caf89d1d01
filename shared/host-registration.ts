import { ConflictError } from './errors.ts';
import { hostStream, type NewEvent, type RecordedEvent } from './events.ts';
import { evolve, type HostState, statusOf } from './fold.ts';
import type { EventStore, HostRecord, HostStore, SecretCipher } from './ports.ts';

/**
 * Registering a host: the `HostRegistered` event, then the projection holding the host's secret encrypted.
 * The api (`POST /hosts`) and the reconcile (before it launches an EC2 host) both register through here.
 */

export interface RegistrationDeps {
  events: EventStore;
  hosts: HostStore;
  cipher: SecretCipher;
}

export interface HostIdentity {
  hostId: string;
  group: string;
  hostType: string;
  roles: string[];
}

/** ConflictError when the host exists (its event or its projection). */
export async function registerHost(
  deps: RegistrationDeps,
  host: HostIdentity,
  secret: string,
  now: Date,
): Promise<HostRecord> {
  // Encrypt before anything is written: a key failure then leaves no half-registered host behind.
  const secretCiphertext = await deps.cipher.encrypt(secret, host.hostId);
  const stream = hostStream(host.hostId);
  const registered: NewEvent = {
    type: 'HostRegistered',
    eventId: `register#${host.hostId}`,
    data: { ...host, registeredAt: now.toISOString() },
  };
  let version: number;
  try {
    version = await deps.events.append(stream, 0, [registered], now);
  } catch (error) {
    throw alreadyExists(error, host.hostId);
  }
  const recorded: RecordedEvent = { ...registered, stream, version, recordedAt: now.toISOString() };
  const record = projection(evolve(undefined, recorded), secretCiphertext);
  try {
    await deps.hosts.create(record);
  } catch (error) {
    throw alreadyExists(error, host.hostId);
  }
  return record;
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
  if (existing)
    return { secret: await deps.cipher.decrypt(existing.secretCiphertext, host.hostId), outcome: 'reused' };

  const secret = newSecret();
  try {
    await registerHost(deps, host, secret, now);
    return { secret, outcome: 'registered' };
  } catch (error) {
    if (!(error instanceof ConflictError)) throw error;
  }
  // Lost a race, or an earlier attempt stopped after the event: whichever projection exists now wins.
  const raced = await deps.hosts.get(host.hostId);
  if (raced)
    return { secret: await deps.cipher.decrypt(raced.secretCiphertext, host.hostId), outcome: 'reused' };

  const state = await foldStream(deps.events, host.hostId);
  if (!state) throw new Error(`host ${host.hostId}: registration conflicted, yet its stream is empty`);
  const record = projection(state, await deps.cipher.encrypt(secret, host.hostId));
  try {
    await deps.hosts.create(record);
  } catch (error) {
    if (!(error instanceof ConflictError)) throw error;
    const winner = await deps.hosts.get(host.hostId);
    if (!winner) throw error;
    return { secret: await deps.cipher.decrypt(winner.secretCiphertext, host.hostId), outcome: 'reused' };
  }
  return { secret, outcome: 'repaired' };
}

function projection(state: HostState, secretCiphertext: string): HostRecord {
  return {
    ...state,
    status: statusOf(state),
    role: state.roles[0] as string,
    // Snapshots are judged against lastSeq: a repaired projection must not accept ones already folded in.
    lastSeq: state.lastChangeSeq,
    secretCiphertext,
  };
}

async function foldStream(events: EventStore, hostId: string): Promise<HostState | undefined> {
  let state: HostState | undefined;
  let cursor: string | undefined;
  do {
    const page = await events.read(hostStream(hostId), { limit: 1000, ...(cursor ? { cursor } : {}) });
    for (const event of page.events) state = evolve(state, event);
    cursor = page.next;
  } while (cursor);
  return state;
}

function alreadyExists(error: unknown, hostId: string): unknown {
  return error instanceof ConflictError
    ? new ConflictError(`host ${hostId} exists`, { hostId }, { cause: error })
    : error;
}
