/*
 * Many writers racing on one stream, each appending a run of numbered entries: what the event store and the
 * command runner must guarantee, checked the same way against the in-memory store and DynamoDB.
 */
import { expect } from 'vitest';
import type { EventStore } from '../../shared/ports.ts';

/**
 * Every writer `w<n>` landed its entries exactly once, contiguously, and no version was lost or taken twice.
 * Returns the event ids in stream order.
 */
export async function expectEachWriterLandedOnce(
  events: EventStore,
  stream: string,
  writers: number,
  eventsEach: number,
): Promise<string[]> {
  const recorded = (await events.read(stream, { limit: 1000 })).events;
  const total = writers * eventsEach;
  expect(recorded.map((event) => event.version)).toEqual(
    Array.from({ length: total }, (_, index) => index + 1),
  );
  const ids = recorded.map((event) => event.eventId);
  expect(new Set(ids).size).toBe(total);
  for (let writer = 0; writer < writers; writer += 1) {
    const mine = recorded.filter((event) => event.eventId.startsWith(`w${writer}-`));
    expect(mine.map((event) => event.eventId)).toEqual(
      Array.from({ length: eventsEach }, (_, index) => `w${writer}-${index + 1}`),
    );
    // One writer's events stay together: nobody appends into a range another writer claimed.
    expect(mine.at(-1)?.version ?? 0).toBe((mine[0]?.version ?? 0) + eventsEach - 1);
  }
  expect(await events.currentVersion(stream)).toBe(total);
  return ids;
}
