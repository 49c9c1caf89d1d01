/*
 * The autoscaler wired in (issue 9): the `scaling` block of a host type compiled with errors naming the field,
 * ScalingDecided on the group stream (capacity follows, a PUT keeps the scaled count clamped, a tick decides
 * once), and the monitor's scaling pass over memory stores: demand up scales out and starts a reconcile within
 * one tick, down only after the window, an idle tick writes nothing, a retried tick appends nothing twice.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import * as Responses from '../functions/api/response-schemas.ts';
import { scalingView } from '../functions/api/routes/scaling.ts';
import { createMonitorHandler, type MonitorDeps, type TickSummary } from '../functions/monitor/handler.ts';
import type { FleetfoldError } from '../shared/errors.ts';
import { compileGroup } from '../shared/groups/compile.ts';
import { type GroupEvent, groupStream, type ScalingDecidedData } from '../shared/groups/events.ts';
import { groupDecider } from '../shared/groups/group-decider.ts';
import { GroupService } from '../shared/groups/group-service.ts';
import type { GroupDocument } from '../shared/groups/group-state.ts';
import type { GroupDefinition, HostTypeDefinition } from '../shared/groups/model.ts';
import type { HostRecord } from '../shared/ports.ts';
import type { ScalingPolicyInput } from '../shared/scaling/policy-schema.ts';
import type { ScalingDocument } from '../shared/scaling/scaling-document.ts';
import {
  MemoryDocumentStore,
  MemoryEventStore,
  MemoryHostStore,
  RecordingReconcileStarter,
} from './support/memory-stores.ts';
import { convergedHosts, hostIdOf, RequestCounts, webGroupDefinition } from './support/monitor-fixtures.ts';

const T0 = new Date('2026-12-01T12:00:00.000Z');
const TICK_SECONDS = 60;
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

const SCALING: ScalingPolicyInput = {
  targets: { voice: 50 },
  stabilization: { scaleDownSeconds: 120 },
  bootSeconds: 5,
};

/** The web group with its web hosts scaled on voice between min and max. */
function scaledDefinition(
  name: string,
  web: Partial<HostTypeDefinition> = {},
  /** null: a host type without scaling. */
  scaling: ScalingPolicyInput | null = SCALING,
): GroupDefinition {
  const definition = webGroupDefinition(name);
  const { count: _, ...fixed } = definition.hostTypes.web as HostTypeDefinition;
  definition.hostTypes.web = {
    ...fixed,
    channels: ['voice'],
    min: 2,
    max: 6,
    ...(scaling === null ? {} : { scaling: scaling as HostTypeDefinition['scaling'] }),
    ...web,
  };
  return definition;
}

const errorsOf = (run: () => unknown) => {
  try {
    run();
  } catch (error) {
    return (error as FleetfoldError).details.errors as { path: string; message: string }[];
  }
  throw new Error('expected a ValidationError');
};

describe('the scaling block of a host type', () => {
  it('starts a scaled host type at count, else min', () => {
    expect(compileGroup(scaledDefinition('g'), 1).hostTypes.web?.desired).toBe(2);
    expect(compileGroup(scaledDefinition('g', { count: 3 }), 1).hostTypes.web?.desired).toBe(3);
  });

  it('needs min and max, naming the missing one', () => {
    const definition = scaledDefinition('g');
    delete definition.hostTypes.web?.max;
    expect(errorsOf(() => compileGroup(definition, 1))).toContainEqual({
      path: 'hostTypes.web.max',
      message: expect.stringContaining('is required with scaling'),
    });
  });

  it('names the field of a policy that contradicts its host type', () => {
    const definition = scaledDefinition('g', {}, { targets: { video: 5 }, schedule: [] });
    const errors = errorsOf(() => compileGroup(definition, 1));
    expect(errors.map((error) => error.path)).toContain('hostTypes.web.scaling.targets.video');
    const badShape = scaledDefinition('g', {}, { targets: { voice: -1 } });
    expect(errorsOf(() => compileGroup(badShape, 1)).map((error) => error.path)).toContain(
      'hostTypes.web.scaling.targets.voice',
    );
  });

  it('fills bootSeconds with its default of 120 s', () => {
    const compiled = compileGroup(scaledDefinition('g', {}, { targets: { voice: 50 } }), 1);
    expect(compiled.hostTypes.web?.scaling?.bootSeconds).toBe(120);
  });
});

/* ───────────── the write model ───────────── */

function decision(overrides: Partial<ScalingDecidedData> = {}): ScalingDecidedData {
  return {
    hostType: 'web',
    from: 2,
    to: 5,
    direction: 'up',
    recommendation: 5,
    recommendedBy: 'demand',
    boundBy: 'demand',
    inputs: {} as ScalingDecidedData['inputs'],
    at: T0.toISOString(),
    ...overrides,
  };
}

function services() {
  const events = new MemoryEventStore();
  const documents = new MemoryDocumentStore();
  const reconcile = new RecordingReconcileStarter();
  let now = T0;
  const service = new GroupService({ events, documents, reconcile, now: () => now, newId: () => 'x' });
  const stream = { events, documents, now: () => now };
  return {
    events,
    documents,
    service,
    stream,
    setNow: (next: Date) => {
      now = next;
    },
    desired: async (name: string) =>
      (await documents.get<GroupDocument>('group', name))?.body.compiled.hostTypes.web?.desired,
  };
}

describe('ScalingDecided', () => {
  it('sets the capacity like CapacityScaled, and a later definition keeps it clamped into min/max', async () => {
    const s = services();
    const { recordScalingDecision } = await import('../shared/groups/group-service.ts');
    await s.service.defineGroup('g', JSON.stringify(scaledDefinition('g')), 'json');
    expect(await recordScalingDecision(s.stream, 'g', decision())).toEqual({ recorded: true });
    expect(await s.desired('g')).toBe(5);

    // A PUT that only changes a version keeps the autoscaler's 5, not min 2.
    const bumped = scaledDefinition('g');
    (bumped.hostTypes.web as HostTypeDefinition).services.web = { version: '1.1.0', port: 8080 };
    await s.service.defineGroup('g', JSON.stringify(bumped), 'json');
    expect(await s.desired('g')).toBe(5);

    // A lower max clamps it.
    await s.service.defineGroup('g', JSON.stringify(scaledDefinition('g', { max: 4 })), 'json');
    expect(await s.desired('g')).toBe(4);

    // Without scaling the definition's count wins again.
    const fixed = scaledDefinition('g', { count: 3 }, null);
    await s.service.defineGroup('g', JSON.stringify(fixed), 'json');
    expect(await s.desired('g')).toBe(3);
  });

  it('records one decision per host type and tick, and none from a count that is no longer the one', () => {
    const definition = scaledDefinition('g');
    let state = groupDecider.initial;
    const apply = (command: Parameters<typeof groupDecider.decide>[0]) => {
      const { events } = groupDecider.decide(command, state, { name: 'g' });
      events.forEach((event, i) => {
        state = groupDecider.evolve(state, {
          ...event,
          stream: groupStream('g'),
          version: state.streamVersion + 1 + i,
          recordedAt: T0.toISOString(),
        } as Parameters<typeof groupDecider.evolve>[1]);
      });
      return [...events];
    };
    apply({ type: 'Define', definition, source: 'json', at: T0 });
    const first = apply({ type: 'DecideScaling', decision: decision() });
    expect(first.map((event) => event.eventId)).toEqual([`scaling#web#${T0.toISOString()}`]);
    // The same tick again (a retry): nothing, even from the new count.
    expect(apply({ type: 'DecideScaling', decision: decision({ from: 5, to: 6 }) })).toEqual([]);
    // A later tick whose decision was made from the old count: nothing.
    const later = at(60).toISOString();
    expect(apply({ type: 'DecideScaling', decision: decision({ at: later }) })).toEqual([]);
    // From the count as it is: recorded, clamped into max.
    const clamped = apply({ type: 'DecideScaling', decision: decision({ at: later, from: 5, to: 9 }) });
    expect(clamped.map((event) => (event.type === 'ScalingDecided' ? event.data.to : undefined))).toEqual([
      6,
    ]);
    expect(state.compiled?.hostTypes.web?.desired).toBe(6);
  });
});

/* ───────────── the monitor's scaling pass ───────────── */

interface Harness {
  counts: RequestCounts;
  events: MemoryEventStore;
  documents: MemoryDocumentStore;
  hosts: MemoryHostStore;
  reconcile: RecordingReconcileStarter;
  setNow(at: Date): void;
  tick(event?: { scheduledTime?: string }): Promise<TickSummary>;
  /** Every web host reports `voice` live sessions. */
  voice(sessions: number): Promise<void>;
  decisions(): Promise<ScalingDecidedData[]>;
  desired(): Promise<number | undefined>;
}

async function harness(scaling: ScalingPolicyInput = SCALING): Promise<Harness> {
  let now = T0;
  const counts = new RequestCounts();
  const events = new MemoryEventStore();
  const documents = new MemoryDocumentStore();
  const hosts = new MemoryHostStore();
  const reconcile = new RecordingReconcileStarter();
  const deps: MonitorDeps = {
    events: counts.wrap('events', events),
    documents: counts.wrap('documents', documents),
    hosts: counts.wrap('hosts', hosts),
    reconcile: counts.wrap('reconcile', reconcile),
    now: () => now,
    tickSeconds: TICK_SECONDS,
    heartbeatCoalesceSeconds: 0,
    log: () => {},
  };
  const handler = createMonitorHandler(deps);
  const service = new GroupService({
    events,
    documents,
    reconcile: new RecordingReconcileStarter(),
    now: () => now,
    newId: () => 'x',
  });
  await service.defineGroup('web', JSON.stringify(scaledDefinition('web', {}, scaling)), 'json');
  await service.startGroup('web');
  const document = await documents.get<GroupDocument>('group', 'web');
  // Heard from far into the test: liveness must not get in the way of the windows.
  for (const record of convergedHosts(document?.body.compiled as GroupDocument['compiled'], at(3600)))
    await hosts.create(record);
  const webHosts = [hostIdOf('web', 'web', 1), hostIdOf('web', 'web', 2)];
  return {
    counts,
    events,
    documents,
    hosts,
    reconcile,
    setNow: (next) => {
      now = next;
    },
    tick: async (event = {}) => (await handler(event)) as TickSummary,
    voice: async (sessions) => {
      for (const hostId of webHosts) {
        const record = (await hosts.get(hostId)) as HostRecord;
        record.metrics = { load: 0.2, sessions: { voice: sessions, sms: 0, mms: 0, video: 0 } };
        record.version += 1;
        await hosts.save(record);
      }
    },
    decisions: async () => {
      const page = await events.read<GroupEvent>(groupStream('web'), { limit: 1000 });
      return page.events.flatMap((event) => (event.type === 'ScalingDecided' ? [event.data] : []));
    },
    desired: async () =>
      (await documents.get<GroupDocument>('group', 'web'))?.body.compiled.hostTypes.web?.desired,
  };
}

describe('the monitor scaling pass', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await harness();
  });

  it('scales out within one tick of demand going up, and starts the reconcile once per tick', async () => {
    await h.voice(150); // 300 sessions at 50 a host: 6 hosts
    const summary = await h.tick();
    const [decided, ...more] = await h.decisions();
    expect(more).toEqual([]);
    expect(decided).toMatchObject({ hostType: 'web', from: 2, to: 6, direction: 'up', boundBy: 'demand' });
    expect(decided?.inputs).toMatchObject({ demand: { voice: 300 }, targets: { voice: 50 } });
    expect(await h.desired()).toBe(6);
    expect(summary).toMatchObject({ scaled: 1, started: 1 });
    expect(h.reconcile.requests.map((request) => request.reason)).toEqual([
      expect.stringContaining('autoscaler scaled web 2→6'),
    ]);
    // The scaling document keeps the decision for GET /groups/{name}/scaling.
    const stored = await h.documents.get<ScalingDocument>('scaling', 'web');
    expect(stored?.body.decisions).toEqual([decided]);
  });

  it('appends nothing twice and starts nothing twice when a tick is retried', async () => {
    await h.voice(150);
    const scheduledTime = T0.toISOString();
    await h.tick({ scheduledTime });
    h.setNow(at(20)); // the retry runs later, for the same scheduled time
    const retried = await h.tick({ scheduledTime });
    expect(await h.decisions()).toHaveLength(1);
    expect(retried.scaled ?? 0).toBe(0);
    expect(h.reconcile.runs).toBe(1);
  });

  it('scales in only once the scale-down window has passed', async () => {
    await h.voice(150);
    await h.tick();
    await h.voice(0);
    // A group younger than an hour is warming up: its 120 s window is doubled (one returned dip assumed).
    for (const seconds of [60, 120, 180, 240]) {
      h.setNow(at(seconds));
      await h.tick();
      expect(await h.desired()).toBe(6); // within the 240 s window, the highest recommendation (6) holds
    }
    h.setNow(at(300));
    await h.tick();
    const decisions = await h.decisions();
    expect(decisions.map((d) => [d.from, d.to, d.direction])).toEqual([
      [2, 6, 'up'],
      [6, 2, 'down'],
    ]);
    expect(await h.desired()).toBe(2);
  });

  it('writes nothing on a tick where nothing changed: three reads per idle scaled group', async () => {
    await h.voice(20); // 40 sessions: within min 2
    await h.tick(); // the first tick writes the memory: the first record and demand bucket
    h.counts.reset();
    h.setNow(at(60)); // the same 5-minute demand bucket
    const summary = await h.tick();
    expect(h.counts.writes()).toBe(0);
    expect(await h.decisions()).toEqual([]);
    expect(summary.reads).toBe(3); // the group listing, the group's hosts, its scaling document
    expect(h.counts.total()).toBe(3);
    // A new 5-minute bucket is one write of the scaling document, and nothing else.
    h.counts.reset();
    h.setNow(at(300));
    await h.tick();
    expect([...h.counts.counts].filter(([key]) => /put|append|save|create/.test(key))).toEqual([
      ['documents.put', 1],
    ]);
  });

  it('answers GET /groups/{name}/scaling in the shape the CLI renders', async () => {
    await h.voice(150);
    await h.tick();
    const group = (await h.documents.get<GroupDocument>('group', 'web'))?.body as GroupDocument;
    const records = (await h.hosts.list({ group: 'web' }, 100)).hosts;
    const stored = (await h.documents.get<ScalingDocument>('scaling', 'web'))?.body;
    const view = scalingView('web', group, records, stored, at(10));
    expect(Responses.GroupScaling.safeParse(view).success).toBe(true);
    expect(view.hostTypes.web).toMatchObject({
      current: { ready: 2, booting: 0, draining: 0, total: 2 },
      desired: 6,
      min: 2,
      max: 6,
      channels: ['voice'],
      demand: { voice: 300, sms: 0, mms: 0, video: 0 },
      lastDecision: { from: 2, to: 6 },
    });
    expect(view.decisions).toHaveLength(1);
  });
});

/* ───────────── the demo, and the memory's compression ───────────── */

describe('the demo group at rest', () => {
  it('stays at min 2 on both scaled host types with every agent at the top of its resting range', async () => {
    const { readFileSync } = await import('node:fs');
    const { parseGroupDefinition } = await import('../shared/groups/compile.ts');
    const { compileScalingPolicy } = await import('../shared/scaling/policy.ts');
    const { decideScale } = await import('../shared/scaling/autoscaler.ts');
    const text = readFileSync(new URL('../events/groups/demo-telephony.yaml', import.meta.url), 'utf8');
    const compiled = compileGroup(parseGroupDefinition(text, 'yaml'), 1);
    for (const name of ['media', 'call-router']) {
      const type = compiled.hostTypes[name] as CompiledHostTypeLike;
      const policy = compileScalingPolicy(type.scaling, type);
      // The simulated agents start at 10–40 voice and sms sessions each (agent/facts/simulated.ts), and
      // wander a few sessions a poll: 60 each is well past that.
      const decision = decideScale({
        policy,
        now: T0.getTime(),
        counts: { desired: type.desired, ready: 2, booting: 0, draining: 0 },
        demand: { voice: 2 * 60, sms: 2 * 60 },
        history: [],
      });
      expect([name, decision.desired]).toEqual([name, 2]);
      // …and a demand the CLI's `simulate` asks for does scale it.
      const busy = decideScale({
        policy,
        now: T0.getTime(),
        counts: { desired: 2, ready: 2, booting: 0, draining: 0 },
        demand: { voice: 900 },
        history: [],
      });
      expect(busy.desired).toBe(6);
    }
  });
});

type CompiledHostTypeLike = GroupDocument['compiled']['hostTypes'][string];

describe('the scaling memory', () => {
  it('decides as a full per-tick history would, but for a scale-in at most one tick later', async () => {
    const fc = (await import('fast-check')).default;
    const { compileScalingPolicy } = await import('../shared/scaling/policy.ts');
    const { decideScale, toRecord } = await import('../shared/scaling/autoscaler.ts');
    const { expandHistory, recordTick } = await import('../shared/scaling/scaling-document.ts');
    const policy = compileScalingPolicy(
      { targets: { voice: 50 }, stabilization: { scaleDownSeconds: 120 }, predictive: { enabled: false } },
      { min: 1, max: 12, channels: ['voice'] },
    );
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 600 }), { minLength: 1, maxLength: 80 }), (demands) => {
        let full: ReturnType<typeof toRecord>[] = [];
        let memory: ReturnType<typeof recordTick> | undefined;
        let fullCount = 1;
        let memoryCount = 1;
        for (const [i, voice] of demands.entries()) {
          const now = T0.getTime() + i * TICK_SECONDS * 1000;
          const counts = (desired: number) => ({ desired, ready: desired, booting: 0, draining: 0 });
          const a = decideScale({ policy, now, counts: counts(fullCount), demand: { voice }, history: full });
          const b = decideScale({
            policy,
            now,
            counts: counts(memoryCount),
            demand: { voice },
            history: expandHistory(memory, now),
            ...(memory?.lastScaleAt === undefined ? {} : { lastScaleAt: memory.lastScaleAt }),
          });
          full = [...full, toRecord(a, now)].filter((record) => record.at > now - 3600_000);
          memory = recordTick(memory, policy, b, { voice }, now);
          if (a.desired !== b.desired) {
            // The only difference: the memory's runs last until just before the next change, not to their last tick.
            expect(a.direction).toBe('down');
            expect(b.desired).toBeGreaterThan(a.desired);
            return;
          }
          fullCount = a.desired;
          memoryCount = b.desired;
          // Kept small: a record per change, none per steady tick.
          expect(memory.history.length).toBeLessThanOrEqual(i + 1);
        }
      }),
      { numRuns: 200 },
    );
  });
});
