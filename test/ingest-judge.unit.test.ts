import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hostStream, type RecordedEvent } from '../shared/events.ts';
import { fold } from '../shared/fold.ts';
import { type IngestConfig, judgeSnapshot, judgeStale, parseSnapshot } from '../shared/ingest.ts';
import { DEFAULT_BANDS, splitMetrics } from '../shared/metrics.ts';
import type { HostRecord } from '../shared/ports.ts';
import { CHANNELS } from '../shared/schemas.ts';
import { newHostSecret, signSnapshot } from '../shared/signing.ts';
import { machineState, registeredHost, unsignedSnapshot } from './support/fixtures.ts';

const config: IngestConfig = {
  clockSkewSeconds: 300,
  maxSnapshotBytes: 1024 * 1024,
  heartbeatCoalesceSeconds: 60,
  bands: DEFAULT_BANDS,
};
const secret = newHostSecret();
const t0 = new Date('2026-11-25T10:00:00Z');

function judge(host: HostRecord, seq: number, state = machineState(), at = t0, signWith = secret) {
  const snapshot = signSnapshot(signWith, unsignedSnapshot(seq, at, state));
  return judgeSnapshot({ snapshot, host, secret, receivedAt: t0, now: t0, eventId: `k${seq}`, config });
}

/** Applies a verdict the way the ingest handler does, to reason about sequences of snapshots. */
function applyVerdict(host: HostRecord, verdict: ReturnType<typeof judge>): HostRecord {
  if (verdict.kind === 'changed') return verdict.next;
  if (verdict.kind === 'heartbeat' && verdict.update) return { ...host, ...verdict.update };
  return host;
}

describe('parseSnapshot', () => {
  it('rejects a body that is not JSON', () => {
    expect(parseSnapshot('{nope', 'cr-1', 1)).toMatchObject({ rejection: { reason: 'malformed' } });
  });

  it('rejects a body that is not a snapshot, naming the field', () => {
    const verdict = parseSnapshot(JSON.stringify({ hostId: 'cr-1', seq: 1 }), 'cr-1', 1);
    expect(verdict).toMatchObject({
      rejection: { reason: 'malformed', detail: expect.stringMatching(/signedAt/) },
    });
  });

  it("rejects a host reporting itself lost or degraded: those are the control plane's judgement", () => {
    for (const status of ['lost', 'degraded']) {
      const snapshot = { ...unsignedSnapshot(1, t0), signature: 'hmac-sha256=00' };
      const body = JSON.stringify({ ...snapshot, state: { ...snapshot.state, status } });
      expect(parseSnapshot(body, 'cr-1', 1)).toMatchObject({
        rejection: {
          reason: 'malformed',
          detail: `body is not a snapshot: state.status: "${status}" is the control plane's judgement of a host, never a status a host reports`,
        },
      });
    }
  });

  it('rejects a snapshot under another host prefix', () => {
    const body = JSON.stringify(signSnapshot(secret, unsignedSnapshot(3, t0)));
    expect(parseSnapshot(body, 'db-1', 3)).toMatchObject({ rejection: { reason: 'foreign' } });
    expect(parseSnapshot(body, 'cr-1', 4)).toMatchObject({ rejection: { reason: 'foreign' } });
  });
});

describe('judgeSnapshot', () => {
  it('turns the first snapshot into a StateObserved event and a projection at version 2', () => {
    const verdict = judge(registeredHost(), 1);
    expect(verdict.kind).toBe('changed');
    if (verdict.kind !== 'changed') return;
    expect(verdict.event).toMatchObject({ type: 'StateObserved', eventId: 'k1', data: { seq: 1 } });
    expect(verdict.next).toMatchObject({ version: 2, lastSeq: 1, status: 'running', metrics: { load: 0.2 } });
  });

  it("records a lost host's snapshot (its history) but keeps its status lost", () => {
    const loss = { at: t0.toISOString(), silentSeconds: 20_000, reason: 'silent' };
    const verdict = judge(registeredHost({ status: 'lost', lost: loss }), 1);
    expect(verdict).toMatchObject({
      kind: 'changed',
      event: { type: 'StateObserved' },
      next: { status: 'lost' },
    });
  });

  it('rejects a bad signature', () => {
    expect(judge(registeredHost(), 1, machineState(), t0, newHostSecret())).toMatchObject({
      rejection: { reason: 'bad-signature' },
    });
  });

  it('rejects a timestamp outside the window', () => {
    const late = new Date(t0.getTime() - 301_000);
    expect(judge(registeredHost(), 1, machineState(), late)).toMatchObject({
      rejection: { reason: 'clock-skew' },
    });
    expect(judge(registeredHost(), 1, machineState(), new Date(t0.getTime() - 299_000)).kind).toBe('changed');
  });

  it('rejects a sequence number below the last accepted one as a replay', () => {
    const host = registeredHost({ lastSeq: 5 });
    expect(judge(host, 4)).toEqual({ kind: 'stale', lastSeq: 5 });
    const atFour = splitMetrics(machineState({ status: 'draining' }), DEFAULT_BANDS).tracked;
    const snapshot = signSnapshot(secret, unsignedSnapshot(4, t0));
    expect(judgeStale({ snapshot, stateAtSeq: atFour, lastSeq: 5, bands: DEFAULT_BANDS })).toMatchObject({
      rejection: { reason: 'replayed' },
    });
  });

  it('treats the last accepted sequence number as a duplicate', () => {
    expect(judge(registeredHost({ lastSeq: 5 }), 5)).toEqual({ kind: 'duplicate' });
  });

  it('treats a redelivery of the last accepted snapshot long after as a duplicate, not clock skew', () => {
    const snapshot = signSnapshot(secret, unsignedSnapshot(5, t0));
    const host = registeredHost({ lastSeq: 5 });
    const days = new Date(t0.getTime() + 3 * 86_400_000);
    expect(
      judgeSnapshot({ snapshot, host, secret, receivedAt: days, now: days, eventId: 'k5', config }),
    ).toEqual({ kind: 'duplicate' });
  });

  it('calls a sequence below the last accepted stale before the clock check, after the signature check', () => {
    const host = registeredHost({ lastSeq: 5 });
    const days = new Date(t0.getTime() + 3 * 86_400_000);
    const judgeAt = (snapshot: ReturnType<typeof signSnapshot>) =>
      judgeSnapshot({ snapshot, host, secret, receivedAt: days, now: days, eventId: 'k3', config });
    expect(judgeAt(signSnapshot(secret, unsignedSnapshot(3, t0)))).toEqual({ kind: 'stale', lastSeq: 5 });
    expect(judgeAt(signSnapshot(newHostSecret(), unsignedSnapshot(3, t0)))).toMatchObject({
      rejection: { reason: 'bad-signature' },
    });
    const unsigned = { ...signSnapshot(secret, unsignedSnapshot(3, t0)), signature: 'hmac-sha256=00' };
    expect(judgeAt(unsigned)).toMatchObject({ rejection: { reason: 'bad-signature' } });
  });

  it('rejects a host reporting another group', () => {
    expect(judge(registeredHost(), 1, machineState({ group: 'other' }))).toMatchObject({
      rejection: { reason: 'foreign' },
    });
  });

  it('writes nothing to the log for an unchanged snapshot, and coalesces lastSeen', () => {
    const first = judge(registeredHost(), 1);
    if (first.kind !== 'changed') throw new Error('expected a change');
    const wiggle = machineState({
      operational: { load: 0.3, sessions: { voice: 4, sms: 0, mms: 0, video: 0 } },
    });
    expect(judge(first.next, 2, wiggle)).toEqual({ kind: 'heartbeat' });
    const stale = { ...first.next, lastSeen: new Date(t0.getTime() - 61_000).toISOString() };
    expect(judge(stale, 2, wiggle)).toMatchObject({
      kind: 'heartbeat',
      update: { lastSeq: 2, metrics: { load: 0.3 } },
    });
  });

  it('turns a band crossing into an event, a wiggle inside a band not', () => {
    const first = judge(registeredHost(), 1);
    if (first.kind !== 'changed') throw new Error('expected a change');
    const busy = machineState({
      operational: { load: 0.85, sessions: { voice: 3, sms: 0, mms: 0, video: 0 } },
    });
    const verdict = judge(first.next, 2, busy);
    expect(verdict).toMatchObject({
      kind: 'changed',
      event: { data: { changes: [{ op: 'changed', path: '/operational/bands/load', old: 0, new: 2 }] } },
    });
  });

  it('keeps the projection equal to the fold of the events it produced', () => {
    const states = fc.record({
      status: fc.constantFrom('booting', 'running', 'draining'),
      version: fc.constantFrom('1.0.0', '1.1.0'),
      load: fc.double({ min: 0, max: 1, noNaN: true }),
      voice: fc.nat(300),
    });
    fc.assert(
      fc.property(fc.array(states, { minLength: 1, maxLength: 12 }), (steps) => {
        let host = registeredHost();
        const events: RecordedEvent[] = [
          {
            type: 'HostRegistered',
            stream: hostStream('cr-1'),
            version: 1,
            eventId: 'r',
            recordedAt: t0.toISOString(),
            data: {
              hostId: 'cr-1',
              group: 'demo',
              hostType: 'call-router',
              roles: ['call-router'],
              registeredAt: t0.toISOString(),
            },
          },
        ];
        steps.forEach((step, index) => {
          const sessions = Object.fromEntries(CHANNELS.map((c) => [c, c === 'voice' ? step.voice : 0]));
          const state = machineState({
            status: step.status as 'running',
            software: { 'call-router': { version: step.version } },
            operational: { load: step.load, sessions: sessions as never },
          });
          const verdict = judge({ ...host, lastSeen: undefined }, index + 1, state);
          if (verdict.kind === 'changed') {
            events.push({
              ...verdict.event,
              stream: hostStream('cr-1'),
              version: host.version + 1,
              recordedAt: t0.toISOString(),
            });
          }
          host = applyVerdict(host, verdict);
        });
        const folded = fold(events);
        expect(folded?.version).toBe(host.version);
        expect(folded?.observed).toEqual(host.observed);
      }),
      { numRuns: 200 },
    );
  });
});

describe('judgeStale', () => {
  const bands = DEFAULT_BANDS;
  const tracked = (state = machineState()) => splitMetrics(state, bands).tracked;
  const stale = (seq: number, state = machineState()) =>
    signSnapshot(secret, unsignedSnapshot(seq, t0, state));

  it('calls an older snapshot that agrees with the log at its sequence a duplicate', () => {
    // The accepted change itself, or one accepted as a heartbeat of that state: both change nothing.
    expect(judgeStale({ snapshot: stale(3), stateAtSeq: tracked(), lastSeq: 5, bands })).toEqual({
      kind: 'duplicate',
    });
  });

  it('compares bands, not raw metrics: another load inside the same band is still a duplicate', () => {
    const wiggle = machineState({
      operational: { load: 0.3, sessions: { voice: 4, sms: 0, mms: 0, video: 0 } },
    });
    expect(judgeStale({ snapshot: stale(3, wiggle), stateAtSeq: tracked(), lastSeq: 5, bands })).toEqual({
      kind: 'duplicate',
    });
  });

  it('rejects an older snapshot that differs from the log at its sequence as a replay, naming the paths', () => {
    const other = machineState({ software: { 'call-router': { version: '0.0.1' } } });
    const verdict = judgeStale({ snapshot: stale(3, other), stateAtSeq: tracked(), lastSeq: 5, bands });
    expect(verdict).toMatchObject({
      kind: 'rejected',
      rejection: {
        reason: 'replayed',
        detail: expect.stringMatching(
          /sequence 3 is below the last accepted 5.*\/software\/call-router\/version/,
        ),
      },
    });
  });

  it('rejects an older snapshot from before anything was observed as a replay', () => {
    expect(judgeStale({ snapshot: stale(1), stateAtSeq: undefined, lastSeq: 5, bands })).toMatchObject({
      rejection: { reason: 'replayed' },
    });
  });

  it('rejects a band crossing the log does not hold at that sequence', () => {
    const busy = machineState({
      operational: { load: 0.9, sessions: { voice: 3, sms: 0, mms: 0, video: 0 } },
    });
    expect(judgeStale({ snapshot: stale(3, busy), stateAtSeq: tracked(), lastSeq: 5, bands })).toMatchObject({
      rejection: { reason: 'replayed', detail: expect.stringContaining('/operational/bands/load') },
    });
  });
});
