/**
 * One reconcile acts on a group at a time, like a controller's work queue with one worker per key. The
 * worker holds the group's lease while it runs and renews it at every step; a trigger that arrives meanwhile
 * takes a ticket and waits. The holder serves every ticket issued before it plans (it plans from the state
 * the streams hold then), and plans again before it ends while tickets remain unserved: level-triggered, so
 * no trigger is lost and none starts a second actor. A holder that stopped renewing (its process died) loses
 * the lease when it expires, and the first waiter takes over. Pure: time comes in as an argument.
 */

export interface Lease {
  /** The run (execution) that holds the group, while `until` is in the future. */
  holder?: string;
  until?: string;
  /** Tickets issued so far (one per trigger that found the group held). */
  issued: number;
  /** Every ticket up to this one was issued before the holder's latest plan. */
  served: number;
}

export const NO_LEASE: Lease = { issued: 0, served: 0 };

export type Claim =
  /** The run holds the group now; it plans, and every ticket so far is served by that plan. */
  | { kind: 'held'; lease: Lease }
  /** Another run holds it: wait with this ticket and ask again. */
  | { kind: 'queued'; ticket: number; lease: Lease; holder: string; until: string }
  /** The ticket was served by the holder's plan: this trigger's work is done. */
  | { kind: 'served'; lease: Lease };

function heldBy(lease: Lease, now: Date): string | undefined {
  return lease.holder !== undefined && lease.until !== undefined && Date.parse(lease.until) > now.getTime()
    ? lease.holder
    : undefined;
}

function until(now: Date, ttlSeconds: number): string {
  return new Date(now.getTime() + ttlSeconds * 1000).toISOString();
}

/**
 * A run asks for the group. `ticket` is the one it was given before (it waits and asks again), so a waiting
 * run takes one ticket however often it asks.
 */
export function claim(lease: Lease, run: string, now: Date, ttlSeconds: number, ticket?: number): Claim {
  const holder = heldBy(lease, now);
  if (ticket !== undefined && lease.served >= ticket && holder !== run) return { kind: 'served', lease };
  if (holder === undefined || holder === run) {
    return {
      kind: 'held',
      lease: { holder: run, until: until(now, ttlSeconds), issued: lease.issued, served: lease.issued },
    };
  }
  if (ticket !== undefined) return { kind: 'queued', ticket, lease, holder, until: lease.until as string };
  const issued = lease.issued + 1;
  return {
    kind: 'queued',
    ticket: issued,
    lease: { ...lease, issued },
    holder,
    until: lease.until as string,
  };
}

export type Renewal =
  | { kind: 'renewed'; lease: Lease }
  | { kind: 'unchanged' }
  | { kind: 'lost'; holder?: string };

/** Renewing only past half the window keeps a waiting run to one lease write every few polls. */
export function renew(lease: Lease, run: string, now: Date, ttlSeconds: number): Renewal {
  const holder = heldBy(lease, now);
  if (holder !== undefined && holder !== run) return { kind: 'lost', holder };
  if (holder === undefined && lease.holder !== run) return { kind: 'lost' };
  const left = lease.until === undefined ? 0 : Date.parse(lease.until) - now.getTime();
  if (holder === run && left >= (ttlSeconds * 1000) / 2) return { kind: 'unchanged' };
  return { kind: 'renewed', lease: { ...lease, holder: run, until: until(now, ttlSeconds) } };
}

export type Release =
  /** Triggers came in since the holder planned: it keeps the lease and plans again. */
  | { kind: 'again'; lease: Lease }
  | { kind: 'released'; lease: Lease }
  /** The run no longer holds the group (it took too long and another took over): it leaves it alone. */
  | { kind: 'not-held' };

/** The end of a pass; `goOn` when the run plans again anyway (it keeps the lease then, renewed). */
export function release(lease: Lease, run: string, now: Date, ttlSeconds: number, goOn = false): Release {
  const holder = heldBy(lease, now);
  if (holder !== undefined && holder !== run) return { kind: 'not-held' };
  if (holder === undefined && lease.holder !== run) return { kind: 'not-held' };
  if (goOn || lease.issued > lease.served)
    return { kind: 'again', lease: { ...lease, holder: run, until: until(now, ttlSeconds) } };
  const { holder: _, until: __, ...rest } = lease;
  return { kind: 'released', lease: rest };
}

/**
 * How long a run's hold lasts without renewal: a few convergence polls plus room for a slow or retried
 * invocation. Runs renew at every step.
 */
/** A run that failed lets the group go at once, whoever waits: its waiters take over instead of a retry loop. */
export function abandon(lease: Lease, run: string): Lease | undefined {
  if (lease.holder !== run) return undefined;
  const { holder: _, until: __, ...rest } = lease;
  return rest;
}

export function leaseSeconds(pollSeconds: number): number {
  return Math.max(30, 3 * pollSeconds + 10);
}
