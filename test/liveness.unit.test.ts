import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIVENESS, isOverdue, lostAfterSeconds, silentSeconds } from '../shared/hosts/liveness.ts';
import { judgeSnapshot } from '../shared/ingest.ts';
import { DEFAULT_BANDS } from '../shared/metrics.ts';
import type { HostRecord } from '../shared/ports.ts';
import { HOST_STATUSES } from '../shared/schemas.ts';
import { newHostSecret, signSnapshot } from '../shared/signing.ts';
import { machineState, registeredHost, unsignedSnapshot } from './support/fixtures.ts';

const REGISTERED = '2026-11-25T00:00:00.000Z';
const OBSERVED = '2026-11-25T01:00:00.000Z';
const SEEN = '2026-11-25T02:00:00.000Z';
const at = (iso: string, seconds: number) => new Date(Date.parse(iso) + seconds * 1000);
const POLICY = { ...DEFAULT_LIVENESS, graceSeconds: 0 };
const LIMIT = DEFAULT_LIVENESS.heartbeatSeconds * DEFAULT_LIVENESS.missedHeartbeats;

describe('silentSeconds', () => {
  it('counts from lastSeen, else the last observation, else the registration', () => {
    const now = at(SEEN, 30);
    expect(silentSeconds(registeredHost({ registeredAt: REGISTERED }), now)).toBe(2 * 3600 + 30);
    expect(silentSeconds(registeredHost({ registeredAt: REGISTERED, observedAt: OBSERVED }), now)).toBe(
      3600 + 30,
    );
    expect(
      silentSeconds(registeredHost({ registeredAt: REGISTERED, observedAt: OBSERVED, lastSeen: SEEN }), now),
    ).toBe(30);
  });
});

describe('isOverdue', () => {
  const running = registeredHost({ status: 'running', lastSeen: SEEN });

  it('matches the AWS agent heartbeat, three of them missed', () => {
    expect(DEFAULT_LIVENESS).toEqual({ heartbeatSeconds: 3600, missedHeartbeats: 3 });
  });

  it('is overdue only past heartbeatSeconds × missedHeartbeats of silence', () => {
    expect(isOverdue(running, at(SEEN, LIMIT), POLICY)).toBe(false);
    expect(isOverdue(running, at(SEEN, LIMIT + 1), POLICY)).toBe(true);
  });

  it('expects to hear from booting, running, draining and degraded hosts only', () => {
    const late = at(SEEN, LIMIT + 1);
    const overdue = HOST_STATUSES.filter((status) =>
      isOverdue(registeredHost({ status, lastSeen: SEEN }), late, POLICY),
    );
    expect(overdue).toEqual(['booting', 'running', 'draining', 'degraded']);
  });

  it('leaves a launched host that never reported to the boot timeout', () => {
    const pending = registeredHost({ status: 'pending', registeredAt: REGISTERED });
    expect(isOverdue(pending, at(REGISTERED, 10 * LIMIT), POLICY)).toBe(false);
  });

  it('is monotone in now: once overdue, a host stays overdue as time passes', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...HOST_STATUSES),
        fc.integer({ min: 0, max: 30 * 24 * 3600 }),
        fc.integer({ min: 0, max: 30 * 24 * 3600 }),
        fc.integer({ min: 1, max: 24 * 3600 }),
        fc.integer({ min: 1, max: 10 }),
        (status, first, later, heartbeatSeconds, missedHeartbeats) => {
          const policy = { heartbeatSeconds, missedHeartbeats, graceSeconds: 0 };
          const host = registeredHost({ status, lastSeen: SEEN });
          const earlier = at(SEEN, first);
          const afterwards = at(SEEN, first + later);
          if (isOverdue(host, earlier, policy)) expect(isOverdue(host, afterwards, policy)).toBe(true);
        },
      ),
    );
  });

  it('allows the grace on top of the missed heartbeats', () => {
    const liveness = { heartbeatSeconds: 10, missedHeartbeats: 3, graceSeconds: 60 };
    expect(lostAfterSeconds(liveness)).toBe(90);
    expect(isOverdue(running, at(SEEN, 90), liveness)).toBe(false);
    expect(isOverdue(running, at(SEEN, 91), liveness)).toBe(true);
  });
});

/*
 * The ingest rewrites an unchanged host's lastSeen at most once per coalescing window; the liveness check must
 * allow for that, or a host heartbeating every 10 s behind a 60 s window looks lost after 30 s (it did: the
 * demo replaced its whole fleet, layer by layer, a minute after it booted).
 */
describe('liveness through the ingest heartbeat coalescing', () => {
  const secret = newHostSecret();
  const state = machineState();

  /** Sends `beats` unchanged snapshots every heartbeatSeconds through the real judge; the record as stored. */
  function heartbeat(heartbeatSeconds: number, coalesceSeconds: number, beats: number) {
    const config = {
      clockSkewSeconds: 300,
      maxSnapshotBytes: 1 << 20,
      heartbeatCoalesceSeconds: coalesceSeconds,
      bands: DEFAULT_BANDS,
    };
    const judgeAt = (host: HostRecord, seq: number, at: Date) =>
      judgeSnapshot({
        snapshot: signSnapshot(secret, unsignedSnapshot(seq, at, state)),
        host,
        secret,
        receivedAt: at,
        now: at,
        eventId: `e${seq}`,
        config,
      });
    const start = Date.parse(SEEN);
    const first = judgeAt(registeredHost({ status: 'running', lastSeen: SEEN }), 1, new Date(start));
    if (first.kind !== 'changed') throw new Error(`first snapshot judged ${first.kind}`);
    let host: HostRecord = { ...first.next, status: 'running' };
    const records: { at: Date; host: HostRecord }[] = [];
    for (let beat = 1; beat <= beats; beat++) {
      const at = new Date(start + beat * heartbeatSeconds * 1000);
      const verdict = judgeAt(host, 1 + beat, at);
      if (verdict.kind !== 'heartbeat') throw new Error(`an unchanged snapshot judged ${verdict.kind}`);
      if (verdict.update) host = { ...host, ...verdict.update };
      records.push({ at, host });
    }
    return records;
  }

  it('never calls a host lost that heartbeats on time, whatever the window', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 600 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 3600 }),
        fc.integer({ min: 1, max: 40 }),
        (heartbeatSeconds, missedHeartbeats, coalesceSeconds, beats) => {
          const liveness = { heartbeatSeconds, missedHeartbeats, graceSeconds: coalesceSeconds };
          for (const { at, host } of heartbeat(heartbeatSeconds, coalesceSeconds, beats)) {
            // The worst moment: just before the next heartbeat arrives.
            const beforeNext = new Date(at.getTime() + heartbeatSeconds * 1000 - 1);
            expect(isOverdue(host, beforeNext, liveness)).toBe(false);
          }
        },
      ),
    );
  });

  it('without the grace, a 10 s heartbeat behind a 60 s window looks lost', () => {
    const beats = heartbeat(10, 60, 5);
    const last = beats.at(-1) as (typeof beats)[number];
    expect(
      isOverdue(last.host, last.at, { heartbeatSeconds: 10, missedHeartbeats: 3, graceSeconds: 0 }),
    ).toBe(true);
  });
});
