import { describe, expect, it } from 'vitest';
import type { Change } from '../shared/diff.ts';
import { hostStream, type NewEvent } from '../shared/events.ts';
import { caughtUpProjection } from '../shared/projection-catch-up.ts';
import { registeredHost } from './support/fixtures.ts';
import { MemoryEventStore } from './support/memory-stores.ts';

const AT = new Date('2030-01-01T00:00:00.000Z');

function observed(seq: number): NewEvent {
  const change: Change =
    seq === 1
      ? { op: 'added', path: '/capacity', new: { sessions: seq } }
      : { op: 'changed', path: '/capacity/sessions', old: seq - 1, new: seq };
  return {
    type: 'StateObserved',
    eventId: `snapshots/cr-1/${seq}.json`,
    data: { seq, observedAt: AT.toISOString(), changes: [change] },
  };
}

describe('catching a projection up with its stream', () => {
  it('folds in every event beyond the projection, over as many pages as it takes', async () => {
    const events = new MemoryEventStore();
    const stream = hostStream('cr-1');
    const registered: NewEvent = {
      type: 'HostRegistered',
      eventId: 'register.cr-1',
      data: {
        hostId: 'cr-1',
        group: 'demo',
        hostType: 'call-router',
        roles: ['call-router'],
        registeredAt: '',
      },
    };
    await events.append(stream, 0, [registered], AT);
    const behind = registeredHost({ version: 1 });
    // 250 events: three pages of the store's default 100.
    for (let seq = 1; seq <= 250; seq += 1) await events.append(stream, seq, [observed(seq)], AT);

    const record = await caughtUpProjection(events, behind);

    expect(record.version).toBe(251);
    expect(record.lastChangeSeq).toBe(250);
    expect(record.lastSeq).toBe(250);
    expect(record.observed?.capacity.sessions).toBe(250);
  });

  it('hands back the very projection when the stream has nothing newer', async () => {
    const events = new MemoryEventStore();
    const host = registeredHost({ version: 0 });
    expect(await caughtUpProjection(events, host)).toBe(host);
  });
});
