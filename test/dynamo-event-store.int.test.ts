import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConsumedCapacity } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamoClient, type RunningDynalite, startDynalite } from '../shared/adapters/dynalite.ts';
import { DynamoEventStore } from '../shared/adapters/dynamo-event-store.ts';
import { type Decider, emit } from '../shared/command/decider.ts';
import { runCommand } from '../shared/command/runner.ts';
import { ConflictError, ValidationError } from '../shared/errors.ts';
import type { HostEvent, NewEvent } from '../shared/events.ts';
import { expectEachWriterLandedOnce } from './support/racing-writers.ts';

let dynamo: RunningDynalite;
let raw: ReturnType<typeof dynamoClient>;
let store: DynamoEventStore;
const reports: { operation: string; consumed: ConsumedCapacity | undefined }[] = [];
const at = new Date('2025-01-02T03:04:05.000Z');
let streamCounter = 0;

beforeAll(async () => {
  dynamo = await startDynalite();
  raw = dynamoClient(dynamo.endpoint);
  store = new DynamoEventStore({
    client: raw,
    tableName: dynamo.tables.events,
    onCapacity: (operation, consumed) => reports.push({ operation, consumed }),
  });
});

afterAll(async () => {
  raw?.destroy();
  await dynamo?.stop();
});

function freshStream(): string {
  streamCounter += 1;
  return `host#h-${streamCounter}`;
}

function observed(eventId: string, seq: number): NewEvent {
  return {
    type: 'StateObserved',
    eventId,
    data: {
      seq,
      observedAt: at.toISOString(),
      changes: [{ op: 'changed', path: '/status', old: 'booting', new: 'running' }],
    },
  };
}

function events(prefix: string, count: number, firstSeq = 1): NewEvent[] {
  return Array.from({ length: count }, (_, index) =>
    observed(`${prefix}-${firstSeq + index}`, firstSeq + index),
  );
}

async function readAll(stream: string, options: { direction?: 'forward' | 'backward'; limit: number }) {
  const pages: number[][] = [];
  let cursor: string | undefined;
  do {
    const page = await store.read(stream, { ...options, ...(cursor ? { cursor } : {}) });
    pages.push(page.events.map((event) => event.version));
    cursor = page.next;
  } while (cursor);
  return pages;
}

describe('DynamoEventStore', () => {
  it('appends events as the next versions and reads them back as recorded', async () => {
    const stream = freshStream();
    const registered: NewEvent = {
      type: 'HostRegistered',
      eventId: 'register-1',
      data: { hostId: 'h', group: 'g', hostType: 't', roles: ['lb'], registeredAt: at.toISOString() },
    };
    expect(await store.append(stream, 0, [registered], at)).toBe(1);
    expect(await store.append(stream, 1, events('snap', 2), at)).toBe(3);

    const page = await store.read(stream);
    expect(page.next).toBeUndefined();
    expect(page.events).toStrictEqual([
      { ...registered, stream, version: 1, recordedAt: at.toISOString() },
      { ...observed('snap-1', 1), stream, version: 2, recordedAt: at.toISOString() },
      { ...observed('snap-2', 2), stream, version: 3, recordedAt: at.toISOString() },
    ]);
    expect(await store.currentVersion(stream)).toBe(3);
  });

  it('reports 0 as the version of an empty stream', async () => {
    expect(await store.currentVersion(freshStream())).toBe(0);
    expect(await store.read(freshStream())).toStrictEqual({ events: [] });
  });

  it('pages forward and backward with cursors, and the last page has no next', async () => {
    const stream = freshStream();
    let version = 0;
    for (let batch = 0; batch < 5; batch += 1) {
      version = await store.append(stream, version, events('e', 50, version + 1), at);
    }
    expect(version).toBe(250);
    const all = Array.from({ length: 250 }, (_, index) => index + 1);

    const forward = await readAll(stream, { limit: 100 });
    expect(forward.map((page) => page.length)).toEqual([100, 100, 50]);
    expect(forward.flat()).toEqual(all);

    const backward = await readAll(stream, { direction: 'backward', limit: 100 });
    expect(backward.map((page) => page.length)).toEqual([100, 100, 50]);
    expect(backward.flat()).toEqual([...all].reverse());

    // Exactly one page's worth: the store must not hand out a cursor to an empty page.
    const exact = await readAll(stream, { limit: 125 });
    expect(exact.map((page) => page.length)).toEqual([125, 125]);
  });

  it('reads a version range in both directions', async () => {
    const stream = freshStream();
    await store.append(stream, 0, events('e', 30), at);
    const range = await store.read(stream, { fromVersion: 10, toVersion: 20, limit: 4 });
    expect(range.events.map((event) => event.version)).toEqual([10, 11, 12, 13]);
    const rest = await store.read(stream, { fromVersion: 10, toVersion: 20, limit: 100, cursor: range.next });
    expect(rest.events.map((event) => event.version)).toEqual([14, 15, 16, 17, 18, 19, 20]);
    expect(rest.next).toBeUndefined();

    const back = await store.read(stream, {
      fromVersion: 10,
      toVersion: 20,
      direction: 'backward',
      limit: 3,
    });
    expect(back.events.map((event) => event.version)).toEqual([20, 19, 18]);
    const from25 = await store.read(stream, { fromVersion: 25 });
    expect(from25.events.map((event) => event.version)).toEqual([25, 26, 27, 28, 29, 30]);
    expect((await store.read(stream, { fromVersion: 20, toVersion: 10 })).events).toEqual([]);
  });

  it('rejects an append at a version that is taken', async () => {
    const stream = freshStream();
    await store.append(stream, 0, events('first', 2), at);
    const error = await store.append(stream, 1, events('late', 1), at).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as ConflictError).details).toEqual({ stream, version: 2 });
    expect(await store.currentVersion(stream)).toBe(2);
    expect((await store.read(stream)).events.map((event) => event.eventId)).toEqual(['first-1', 'first-2']);
  });

  it('rejects a garbage cursor, a cursor of another stream and a limit out of range', async () => {
    const stream = freshStream();
    await store.append(stream, 0, events('e', 3), at);
    const { next } = await store.read(stream, { limit: 1 });
    expect(next).toBeDefined();
    await expect(store.read(stream, { cursor: 'not a cursor!' })).rejects.toBeInstanceOf(ValidationError);
    await expect(
      store.read(stream, { cursor: Buffer.from('[1]').toString('base64url') }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(store.read(freshStream(), { cursor: next })).rejects.toBeInstanceOf(ValidationError);
    await expect(store.read(stream, { cursor: next, fromVersion: 3 })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(store.read(stream, { limit: 0 })).rejects.toBeInstanceOf(ValidationError);
    await expect(store.read(stream, { limit: 1001 })).rejects.toBeInstanceOf(ValidationError);
  });

  it('reports consumed capacity for writes and reads', async () => {
    reports.length = 0;
    const stream = freshStream();
    await store.append(stream, 0, events('e', 1), at);
    await store.read(stream);
    await store.append(stream, 0, events('x', 1), at).catch(() => undefined);
    expect(reports[0]).toEqual({
      operation: 'PutItem',
      consumed: { TableName: dynamo.tables.events, CapacityUnits: 1 },
    });
    expect(reports[1]?.operation).toBe('Query');
    expect(reports[1]?.consumed?.CapacityUnits).toBeGreaterThan(0);
    // A failed conditional write comes back without a capacity figure.
    expect(reports[2]).toEqual({ operation: 'PutItem', consumed: undefined });
  });

  it('counts the versions an unfinished multi-event append has claimed', async () => {
    const stream = freshStream();
    // The first event of a three-event append has landed, the other two are still on their way.
    const doc = DynamoDBDocumentClient.from(raw);
    await doc.send(
      new PutCommand({
        TableName: dynamo.tables.events,
        Item: { ...observed('a-1', 1), stream, version: 1, recordedAt: at.toISOString(), lastVersion: 3 },
      }),
    );
    expect(await store.currentVersion(stream)).toBe(3);
    expect((await store.read(stream)).events[0]).not.toHaveProperty('lastVersion');
  });
});

describe('runCommand on DynamoDB', () => {
  /** The smallest decider that can race: a stream of entries; its outcome is the version it decided on. */
  const ledger: Decider<number, { prefix: string; count: number }, HostEvent, number, undefined> = {
    initial: 0,
    versionOf: (version) => version,
    evolve: (_, event) => event.version,
    decide: (command, version) => ({ events: events(command.prefix, command.count), outcome: version }),
  };
  const deps = (attempts = 60) => ({ events: store, now: () => at, retry: { attempts, backoffMs: () => 0 } });

  async function concurrentWriters(writers: number, eventsEach: number) {
    const stream = freshStream();
    const outcomes = await Promise.all(
      Array.from({ length: writers }, (_, writer) =>
        runCommand(deps(), { stream, decider: ledger }, { prefix: `w${writer}`, count: eventsEach }),
      ),
    );
    await expectEachWriterLandedOnce(store, stream, writers, eventsEach);
    return outcomes;
  }

  it('lets 16 concurrent writers of one event each land exactly once, with no version lost', async () => {
    const outcomes = await concurrentWriters(16, 1);
    expect(outcomes.some((outcome) => outcome.attempts > 1)).toBe(true);
  });

  it('lets 16 concurrent writers of five events each land exactly once, contiguously', async () => {
    await concurrentWriters(16, 5);
  });

  it('appends nothing when the decision is to append nothing', async () => {
    const stream = freshStream();
    await store.append(stream, 0, events('e', 2), at);
    const seen: number[] = [];
    const quiet = {
      ...ledger,
      decide: (_: unknown, version: number) => {
        seen.push(version);
        return emit();
      },
    };
    const outcome = await runCommand(deps(), { stream, decider: quiet }, { prefix: 'x', count: 1 });
    expect(outcome).toMatchObject({ state: 2, appended: [], attempts: 1 });
    expect(seen).toEqual([2]);
    expect(await store.currentVersion(stream)).toBe(2);
  });

  it('fails with the ConflictError once the attempts are used up', async () => {
    const stream = freshStream();
    let decisions = 0;
    // A competitor that always gets in between our read and our write.
    const error = await runCommand(
      deps(3),
      {
        stream,
        decider: ledger,
        context: async (current) => {
          decisions += 1;
          await store.append(stream, current, events(`rival${decisions}`, 1), at);
          return undefined;
        },
      },
      { prefix: 'mine', count: 1 },
    ).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConflictError);
    expect(decisions).toBe(3);
    expect(await store.currentVersion(stream)).toBe(3);
  });

  it('passes the decision the current version', async () => {
    const stream = freshStream();
    await store.append(stream, 0, events('e', 4), at);
    const next = {
      ...ledger,
      decide: (_: unknown, version: number) => ({ events: events('next', 1, version + 1), outcome: version }),
    };
    const outcome = await runCommand(deps(), { stream, decider: next }, { prefix: 'next', count: 1 });
    expect(outcome.state).toBe(5);
    expect(outcome.outcome).toBe(4);
    const [last] = (await store.read(stream, { direction: 'backward', limit: 1 })).events;
    expect(last).toMatchObject({ eventId: 'next-5', version: 5, recordedAt: at.toISOString() });
  });
});

describe('startDynalite with a path', () => {
  it('keeps tables and events across a restart', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'fleetfold-dynalite-'));
    try {
      const first = await startDynalite({ path: folder });
      const firstClient = dynamoClient(first.endpoint);
      await new DynamoEventStore({ client: firstClient, tableName: first.tables.events }).append(
        'host#kept',
        0,
        events('kept', 2),
        at,
      );
      firstClient.destroy();
      await first.stop();

      const second = await startDynalite({ path: folder });
      const secondClient = dynamoClient(second.endpoint);
      try {
        const reopened = new DynamoEventStore({ client: secondClient, tableName: second.tables.events });
        expect(await reopened.currentVersion('host#kept')).toBe(2);
      } finally {
        secondClient.destroy();
        await second.stop();
      }
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
