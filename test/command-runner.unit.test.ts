import { describe, expect, it } from 'vitest';
import { type Decider, emit } from '../shared/command/decider.ts';
import {
  type CommandDeps,
  loadStream,
  type Projection,
  runCommand,
  type Stored,
} from '../shared/command/runner.ts';
import type { Change } from '../shared/diff.ts';
import { ConflictError } from '../shared/errors.ts';
import { type HostEvent, hostStream, type NewEvent } from '../shared/events.ts';
import { hostDecider } from '../shared/hosts/host-decider.ts';
import { hostProjection } from '../shared/hosts/host-projection.ts';
import type { EventStore, HostRecord, ReadEventsOptions } from '../shared/ports.ts';
import type { RetryPolicy } from '../shared/retry.ts';
import { registeredHost } from './support/fixtures.ts';
import { MemoryEventStore, MemoryHostStore } from './support/memory-stores.ts';
import { expectEachWriterLandedOnce } from './support/racing-writers.ts';

const AT = new Date('2030-01-01T00:00:00.000Z');
const NO_WAIT: RetryPolicy = { attempts: 60, backoffMs: () => 0 };

/** A stream of numbered entries: the smallest decider that can race. */
interface Ledger {
  version: number;
  ids: string[];
}

interface AppendEntries {
  prefix: string;
  count: number;
}

function entry(eventId: string, seq: number): NewEvent {
  return {
    type: 'StateObserved',
    eventId,
    data: {
      seq,
      observedAt: AT.toISOString(),
      changes: [{ op: 'changed', path: '/status', old: 'booting', new: 'running' }],
    },
  };
}

function entries(prefix: string, count: number, firstSeq = 1): NewEvent[] {
  return Array.from({ length: count }, (_, index) =>
    entry(`${prefix}-${firstSeq + index}`, firstSeq + index),
  );
}

/** Its outcome is the version the decision was made on. */
const ledger: Decider<Ledger, AppendEntries, HostEvent, number, undefined> = {
  initial: { version: 0, ids: [] },
  versionOf: (state) => state.version,
  evolve: (state, event) => ({ version: event.version, ids: [...state.ids, event.eventId] }),
  decide: (command, state) => ({ events: entries(command.prefix, command.count), outcome: state.version }),
};

/** Reads and appends counted, so a test can tell what a command cost. */
class CountingEventStore implements EventStore {
  reads = 0;
  appends = 0;
  constructor(readonly inner: EventStore = new MemoryEventStore()) {}
  append: EventStore['append'] = (...args) => {
    this.appends += 1;
    return this.inner.append(...args);
  };
  read: EventStore['read'] = (stream: string, options?: ReadEventsOptions) => {
    this.reads += 1;
    return this.inner.read(stream, options);
  };
  currentVersion: EventStore['currentVersion'] = (stream) => this.inner.currentVersion(stream);
}

/** A ledger's projection behind a version guard that keeps the newest, counting its writes. */
function memoryProjection(initial?: Ledger): Projection<Ledger> & { stored?: Ledger; saves: number } {
  const projection = {
    stored: initial,
    saves: 0,
    async load(): Promise<Stored<Ledger> | undefined> {
      return (
        projection.stored && {
          state: structuredClone(projection.stored),
          revision: projection.stored.version,
        }
      );
    },
    async save(state: Ledger) {
      projection.saves += 1;
      if ((projection.stored?.version ?? 0) < state.version) projection.stored = structuredClone(state);
    },
  };
  return projection;
}

function deps(events: EventStore, retry: RetryPolicy = NO_WAIT): CommandDeps {
  return { events, now: () => AT, retry };
}

describe('runCommand', () => {
  async function concurrentWriters(writers: number, eventsEach: number) {
    const events = new MemoryEventStore();
    const stream = 'ledger#race';
    const projection = memoryProjection();
    const results = await Promise.all(
      Array.from({ length: writers }, (_, writer) =>
        runCommand(
          deps(events),
          { stream, decider: ledger, projection },
          {
            prefix: `w${writer}`,
            count: eventsEach,
          },
        ),
      ),
    );
    const ids = await expectEachWriterLandedOnce(events, stream, writers, eventsEach);
    const total = writers * eventsEach;
    // Whoever saved last, the projection is the newest state, never an older one over a newer.
    expect(projection.stored).toEqual({ version: total, ids });
    return results;
  }

  it('lets 16 racing writers of one event each land exactly once, with no version lost', async () => {
    const results = await concurrentWriters(16, 1);
    expect(results.some((result) => result.attempts > 1)).toBe(true);
  });

  it('lets 16 racing writers of five events each land exactly once, contiguously', async () => {
    await concurrentWriters(16, 5);
  });

  it('decides on the current version and appends at the next one, recorded at now', async () => {
    const events = new MemoryEventStore();
    const stream = 'ledger#current';
    await events.append(stream, 0, entries('e', 4), AT);
    const result = await runCommand(deps(events), { stream, decider: ledger }, { prefix: 'next', count: 1 });
    expect(result.outcome).toBe(4);
    expect(result.attempts).toBe(1);
    expect(result.appended).toEqual([
      { ...entry('next-1', 1), stream, version: 5, recordedAt: AT.toISOString() },
    ]);
    const [last] = (await events.read(stream, { direction: 'backward', limit: 1 })).events;
    expect(last).toMatchObject({ eventId: 'next-1', version: 5, recordedAt: AT.toISOString() });
  });

  it('appends nothing when the decision is to append nothing', async () => {
    const events = new CountingEventStore();
    const stream = 'ledger#nothing';
    await events.inner.append(stream, 0, entries('e', 2), AT);
    const seen: number[] = [];
    const quiet = {
      ...ledger,
      decide: (_: AppendEntries, state: Ledger) => {
        seen.push(state.version);
        return emit();
      },
    };
    const result = await runCommand(deps(events), { stream, decider: quiet }, { prefix: 'x', count: 1 });
    expect(result).toMatchObject({ appended: [], attempts: 1, state: { version: 2 } });
    expect(seen).toEqual([2]);
    expect(events.appends).toBe(0);
    expect(await events.currentVersion(stream)).toBe(2);
  });

  it('fails with the ConflictError once the attempts are used up', async () => {
    const events = new MemoryEventStore();
    const stream = 'ledger#rival';
    let decisions = 0;
    // A competitor that always gets in between our read and our write.
    const error = await runCommand(
      deps(events, { attempts: 3, backoffMs: () => 0 }),
      {
        stream,
        decider: ledger,
        context: async (state) => {
          decisions += 1;
          await events.append(stream, state.version, entries(`rival${decisions}`, 1), AT);
          return undefined;
        },
      },
      { prefix: 'mine', count: 1 },
    ).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConflictError);
    expect(decisions).toBe(3);
    expect(await events.currentVersion(stream)).toBe(3);
    expect((await events.read(stream)).events.map((event) => event.eventId)).toEqual([
      'rival1-1',
      'rival2-1',
      'rival3-1',
    ]);
  });

  it('does not retry a decider that refuses with a ConflictError of its own', async () => {
    const events = new CountingEventStore();
    let decisions = 0;
    const refusal = new ConflictError('the rollout is not paused', { rollout: 'r1' });
    const refusing = {
      ...ledger,
      decide: () => {
        decisions += 1;
        throw refusal;
      },
    };
    const error = await runCommand(
      deps(events),
      { stream: 'ledger#refused', decider: refusing },
      {
        prefix: 'x',
        count: 1,
      },
    ).catch((caught: unknown) => caught);
    expect(error).toBe(refusal);
    expect(decisions).toBe(1);
    expect(events.appends).toBe(0);
  });

  it('catches a projection up with what its stream holds beyond it, reading from its version on', async () => {
    const events = new CountingEventStore();
    const stream = 'ledger#behind';
    await events.inner.append(stream, 0, entries('e', 3), AT);
    const projection = memoryProjection({ version: 1, ids: ['e-1'] });
    const result = await runCommand(
      deps(events),
      { stream, decider: ledger, projection },
      {
        prefix: 'n',
        count: 1,
      },
    );
    expect(result.outcome).toBe(3);
    expect(projection.stored).toEqual({ version: 4, ids: ['e-1', 'e-2', 'e-3', 'n-1'] });
    expect(events.reads).toBe(1);
  });

  it('trusts the projection without reading the stream, yet decides again on the stream when it lost', async () => {
    const events = new CountingEventStore();
    const stream = 'ledger#trusted';
    const projection = memoryProjection({ version: 1, ids: ['e-1'] });
    await events.inner.append(stream, 0, entries('e', 1), AT);

    const current = await runCommand(
      deps(events),
      { stream, decider: ledger, projection, trustProjection: true },
      {
        prefix: 'a',
        count: 1,
      },
    );
    expect(current).toMatchObject({ outcome: 1, attempts: 1 });
    expect(events.reads).toBe(0);
    expect(events.appends).toBe(1);

    // Another writer appended without projecting (or crashed before it could): the append at 2 loses.
    await events.inner.append(stream, 2, entries('rival', 1), AT);
    events.reads = 0;
    const behind = await runCommand(
      deps(events),
      { stream, decider: ledger, projection, trustProjection: true },
      {
        prefix: 'b',
        count: 1,
      },
    );
    expect(behind).toMatchObject({ outcome: 3, attempts: 2 });
    expect(events.reads).toBe(1);
    expect(projection.stored).toEqual({ version: 4, ids: ['e-1', 'a-1', 'rival-1', 'b-1'] });
  });

  it('decides again when settle loses its race with a ConflictError', async () => {
    const events = new MemoryEventStore();
    const stream = 'ledger#settle';
    const settled: number[] = [];
    const quiet = {
      ...ledger,
      decide: (_: AppendEntries, state: Ledger) => ({ events: [], outcome: state.version }),
    };
    const result = await runCommand(
      deps(events),
      { stream, decider: quiet },
      { prefix: 'x', count: 1 },
      async ({ outcome }) => {
        settled.push(outcome);
        // The guarded write finds the state moved: somebody appended meanwhile.
        if (settled.length === 1) {
          await events.append(stream, 0, entries('rival', 1), AT);
          throw new ConflictError('moved');
        }
      },
    );
    expect(settled).toEqual([0, 1]);
    expect(result).toMatchObject({ outcome: 1, attempts: 2 });
  });

  it('lets a ConflictError of settle through once the attempts are used up', async () => {
    const events = new MemoryEventStore();
    let settles = 0;
    const error = await runCommand(
      deps(events, { attempts: 4, backoffMs: () => 0 }),
      { stream: 'ledger#settle-limit', decider: { ...ledger, decide: () => emit() } },
      { prefix: 'x', count: 1 },
      async () => {
        settles += 1;
        throw new ConflictError('always moved');
      },
    ).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConflictError);
    expect(settles).toBe(4);
  });
});

/**
 * Without transactions a multi-event append lands one put at a time, and its later puts may land first. Here the
 * first put and the last have landed; one more of the others lands before each read. currentVersion counts every
 * version the append claimed, as the DynamoDB store's does.
 */
class LandingEventStore extends CountingEventStore {
  /** Versions whose put failed because somebody else took them: the append is broken, half-written. */
  readonly broken: number[] = [];

  constructor(
    inner: EventStore,
    private readonly pending: { version: number; event: NewEvent }[],
    private readonly claimedUpTo: number,
  ) {
    super(inner);
  }

  async land(): Promise<void> {
    const next = this.pending.shift();
    if (!next) return;
    await this.inner.append('ledger#landing', next.version - 1, [next.event], AT).catch(() => {
      this.broken.push(next.version);
    });
  }

  override read: EventStore['read'] = async (stream, options) => {
    await this.land();
    this.reads += 1;
    return this.inner.read(stream, options);
  };

  override currentVersion: EventStore['currentVersion'] = async (stream) =>
    Math.max(this.claimedUpTo, await this.inner.currentVersion(stream));
}

describe('runCommand and appends still landing', () => {
  it('folds a stream only up to a hole in its versions', async () => {
    const inner = new MemoryEventStore();
    await inner.append('ledger#hole', 0, entries('e', 2), AT);
    await inner.append('ledger#hole', 3, [entry('e-4', 4)], AT);
    const { state, folded } = await loadStream(inner, { stream: 'ledger#hole', decider: ledger });
    expect(state).toEqual({ version: 2, ids: ['e-1', 'e-2'] });
    expect(folded).toBe(2);
  });

  it('does not append into the versions another writer claimed, and appends after them once they landed', async () => {
    const inner = new MemoryEventStore();
    const stream = 'ledger#landing';
    const [e1, e2, e3, e4, e5] = entries('e', 5) as [NewEvent, NewEvent, NewEvent, NewEvent, NewEvent];
    // The append of e-1…e-5 after e-1 and e-2: e-5 landed, e-3 and e-4 are on their way.
    await inner.append(stream, 0, [e1, e2], AT);
    await inner.append(stream, 4, [e5], AT);
    const events = new LandingEventStore(
      inner,
      [
        { version: 3, event: e3 },
        { version: 4, event: e4 },
      ],
      5,
    );

    const result = await runCommand(deps(events), { stream, decider: ledger }, { prefix: 'mine', count: 1 });
    await events.land();
    await events.land();

    expect(result).toMatchObject({ outcome: 5, attempts: 2 });
    expect(events.broken).toEqual([]);
    expect((await inner.read(stream)).events.map((event) => event.eventId)).toEqual([
      'e-1',
      'e-2',
      'e-3',
      'e-4',
      'e-5',
      'mine-1',
    ]);
  });

  it('pays no look at the claimed versions when it decides on the projection as stored', async () => {
    const events = new CountingEventStore();
    let looks = 0;
    const currentVersion = events.currentVersion;
    events.currentVersion = (stream) => {
      looks += 1;
      return currentVersion(stream);
    };
    const projection = memoryProjection({ version: 0, ids: [] });
    await runCommand(
      deps(events),
      { stream: 'ledger#looks', decider: ledger, projection },
      { prefix: 'a', count: 1 },
    );
    await runCommand(
      deps(events),
      { stream: 'ledger#looks', decider: ledger, projection, trustProjection: true },
      { prefix: 'b', count: 1 },
    );
    expect(looks).toBe(0);
    // Behind its stream: the events read beyond it might end inside an append, so it looks once.
    await events.inner.append('ledger#looks', 2, entries('rival', 1), AT);
    await runCommand(
      deps(events),
      { stream: 'ledger#looks', decider: ledger, projection },
      { prefix: 'c', count: 1 },
    );
    expect(looks).toBe(1);
  });
});

describe('runCommand on the host stream', () => {
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
  /** Decides nothing: what is left to do is catching the projection up. */
  const catchUpOnly = { ...hostDecider, decide: () => emit<HostEvent>() };

  it('folds every event beyond the projection into it, over as many pages as it takes', async () => {
    const events = new CountingEventStore();
    const hosts = new MemoryHostStore();
    const stream = hostStream('cr-1');
    await events.inner.append(stream, 0, [registered], AT);
    await hosts.create(registeredHost({ version: 1 }));
    // 2,500 events: three pages of the largest page the store hands out.
    for (let seq = 1; seq <= 2500; seq += 1) await events.inner.append(stream, seq, [observed(seq)], AT);

    const result = await runCommand(
      deps(events),
      { stream, decider: catchUpOnly, projection: hostProjection(hosts, 'cr-1') },
      undefined as never,
    );

    expect(events.reads).toBe(3);
    const record = (await hosts.get('cr-1')) as HostRecord;
    expect(result.state).toEqual(record);
    expect(record.version).toBe(2501);
    expect(record.lastChangeSeq).toBe(2500);
    expect(record.lastSeq).toBe(2500);
    expect(record.observed?.capacity.sessions).toBe(2500);
    // What the stream never holds survives the catch-up.
    expect(record.secretCiphertext).toBe('unused');
  });

  it('leaves the projection as it is when the stream has nothing newer', async () => {
    const events = new MemoryEventStore();
    const stream = hostStream('cr-1');
    await events.append(stream, 0, [registered], AT);
    const host = registeredHost({ version: 1 });
    const hosts = new MemoryHostStore();
    await hosts.create(host);
    let saves = 0;
    const projection = hostProjection(hosts, 'cr-1');
    const counted = {
      ...projection,
      save: (...args: Parameters<typeof projection.save>) => {
        saves += 1;
        return projection.save(...args);
      },
    };

    const result = await runCommand(
      deps(events),
      { stream, decider: catchUpOnly, projection: counted },
      undefined as never,
    );

    expect(result.state).toEqual(host);
    expect(saves).toBe(0);
    expect(await hosts.get('cr-1')).toEqual(host);
  });
});
