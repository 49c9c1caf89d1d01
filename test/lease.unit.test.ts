import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  abandon,
  claim,
  type Lease,
  leaseSeconds,
  NO_LEASE,
  release,
  renew,
} from '../shared/reconcile/lease.ts';

const T0 = new Date('2026-12-01T10:00:00.000Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);
const TTL = 30;

function held(run: string, now = T0): Lease {
  const result = claim(NO_LEASE, run, now, TTL);
  if (result.kind !== 'held') throw new Error('expected the lease');
  return result.lease;
}

describe('the group lease: one reconcile at a time', () => {
  it('gives a free group to the first run that asks', () => {
    expect(claim(NO_LEASE, 'a', T0, TTL)).toEqual({
      kind: 'held',
      lease: { holder: 'a', until: at(TTL).toISOString(), issued: 0, served: 0 },
    });
  });

  it('queues a second run with a ticket, and gives it the same ticket when it asks again', () => {
    const first = claim(held('a'), 'b', at(1), TTL);
    expect(first).toMatchObject({ kind: 'queued', ticket: 1, holder: 'a' });
    if (first.kind !== 'queued') return;
    expect(claim(first.lease, 'b', at(2), TTL, 1)).toMatchObject({ kind: 'queued', ticket: 1 });
    expect(first.lease.issued).toBe(1);
  });

  it('makes the holder plan again when a ticket came in since it planned, and serves the ticket by that plan', () => {
    const queued = claim(held('a'), 'b', at(1), TTL);
    if (queued.kind !== 'queued') throw new Error('expected a ticket');
    const end = release(queued.lease, 'a', at(5), TTL);
    expect(end.kind).toBe('again');
    if (end.kind !== 'again') return;
    const replanned = claim(end.lease, 'a', at(6), TTL);
    expect(replanned).toMatchObject({ kind: 'held', lease: { served: 1 } });
    if (replanned.kind !== 'held') return;
    expect(claim(replanned.lease, 'b', at(7), TTL, queued.ticket)).toMatchObject({ kind: 'served' });
  });

  it('lets the holder go when nothing came in, and keeps it when the holder goes on anyway', () => {
    expect(release(held('a'), 'a', at(5), TTL)).toEqual({
      kind: 'released',
      lease: { issued: 0, served: 0 },
    });
    expect(release(held('a'), 'a', at(5), TTL, true)).toMatchObject({
      kind: 'again',
      lease: { holder: 'a' },
    });
  });

  it('hands the group to a waiter once the holder stopped renewing (its process died)', () => {
    const queued = claim(held('a'), 'b', at(1), TTL);
    if (queued.kind !== 'queued') throw new Error('expected a ticket');
    expect(claim(queued.lease, 'b', at(TTL + 1), TTL, queued.ticket)).toMatchObject({
      kind: 'held',
      lease: { holder: 'b', served: 1 },
    });
  });

  it('fails a renewal or a release of a run that was taken over', () => {
    const takenOver = claim(held('a'), 'b', at(TTL + 1), TTL);
    if (takenOver.kind !== 'held') throw new Error('expected a takeover');
    expect(renew(takenOver.lease, 'a', at(TTL + 2), TTL)).toEqual({ kind: 'lost', holder: 'b' });
    expect(release(takenOver.lease, 'a', at(TTL + 2), TTL)).toEqual({ kind: 'not-held' });
  });

  it('renews only past half the window', () => {
    expect(renew(held('a'), 'a', at(5), TTL)).toEqual({ kind: 'unchanged' });
    expect(renew(held('a'), 'a', at(20), TTL)).toMatchObject({
      kind: 'renewed',
      lease: { until: at(20 + TTL).toISOString() },
    });
  });

  it('abandons only its own hold', () => {
    expect(abandon(held('a'), 'b')).toBeUndefined();
    expect(abandon(held('a'), 'a')).toEqual({ issued: 0, served: 0 });
  });

  it('waits a few polls plus room for a slow invocation', () => {
    expect(leaseSeconds(1)).toBe(30);
    expect(leaseSeconds(15)).toBe(55);
  });

  type Step =
    | { kind: 'claim'; run: number; dt: number }
    | { kind: 'renew'; run: number; dt: number }
    | { kind: 'finish'; run: number; dt: number; goOn: boolean };

  const step: fc.Arbitrary<Step> = fc.oneof(
    fc.record({ kind: fc.constant('claim' as const), run: fc.nat(3), dt: fc.nat(20) }),
    fc.record({ kind: fc.constant('renew' as const), run: fc.nat(3), dt: fc.nat(20) }),
    fc.record({ kind: fc.constant('finish' as const), run: fc.nat(3), dt: fc.nat(20), goOn: fc.boolean() }),
  );

  it('never has two holders, and never forgets a ticket: each is served by a later plan or its run takes over', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        let lease = NO_LEASE;
        let clock = 0;
        const tickets = new Map<number, number>();
        const holding = new Set<number>();
        for (const s of steps) {
          clock += s.dt;
          const now = at(clock);
          const run = `r${s.run}`;
          if (s.kind === 'claim') {
            const result = claim(lease, run, now, TTL, tickets.get(s.run));
            lease = result.lease;
            if (result.kind === 'held') {
              for (const other of holding) if (other !== s.run) holding.delete(other);
              holding.add(s.run);
              tickets.delete(s.run);
              // Planning serves every ticket issued so far.
              expect(lease.served).toBe(lease.issued);
            } else if (result.kind === 'queued') tickets.set(s.run, result.ticket);
            else tickets.delete(s.run);
          } else if (s.kind === 'renew') {
            const result = renew(lease, run, now, TTL);
            if (result.kind === 'renewed') lease = result.lease;
          } else {
            const result = release(lease, run, now, TTL, s.goOn);
            if (result.kind === 'released') {
              // Released only when no ticket is waiting unserved.
              expect(result.lease.issued).toBe(result.lease.served);
              lease = result.lease;
              holding.delete(s.run);
            } else if (result.kind === 'again') lease = result.lease;
          }
          const live =
            lease.holder !== undefined &&
            lease.until !== undefined &&
            Date.parse(lease.until) > now.getTime();
          if (live) expect(lease.holder).toMatch(/^r\d$/);
          // A waiting ticket is never above what was issued.
          for (const ticket of tickets.values()) expect(ticket).toBeLessThanOrEqual(lease.issued);
        }
      }),
    );
  });
});
