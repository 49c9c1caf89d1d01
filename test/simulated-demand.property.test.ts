import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  drainingFromStore,
  type FleetInstances,
  hostShares,
  startDemandSimulator,
} from '../infra/local/demand-simulator.ts';
import { writeFileAtomically } from '../shared/atomic-file.ts';
import type { HostRecord } from '../shared/ports.ts';
import { CHANNELS } from '../shared/schemas.ts';
import {
  hostDemandFile,
  hostTypeDemandFile,
  mergeDemand,
  parseSimulatedDemand,
  type SimulatedDemand,
  serializeSimulatedDemand,
  spreadDemand,
} from '../shared/simulated-demand.ts';
import { registeredHost } from './support/fixtures.ts';
import { MemoryHostStore } from './support/memory-stores.ts';

const demandArb: fc.Arbitrary<SimulatedDemand> = fc.record(
  {
    sessions: fc.dictionary(fc.constantFrom(...CHANNELS), fc.nat({ max: 100_000 }), { minKeys: 1 }),
    load: fc.double({ min: 0, max: 1, noNaN: true }),
  },
  { requiredKeys: ['sessions'] },
);
const hostIdsArb = fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9-]{0,11}$/), {
  minLength: 1,
  maxLength: 40,
});

describe('spreadDemand', () => {
  it('gives every host ⌊total/n⌋ or ⌈total/n⌉ of each channel, the shares summing to the total', () => {
    fc.assert(
      fc.property(demandArb, hostIdsArb, (demand, hostIds) => {
        const shares = spreadDemand(demand, hostIds);
        expect([...shares.keys()].sort()).toEqual([...hostIds].sort());
        for (const [channel, total] of Object.entries(demand.sessions)) {
          const parts = [...shares.values()].map(
            (share) => share.sessions[channel as keyof typeof share.sessions] ?? -1,
          );
          expect(parts.reduce((sum, part) => sum + part, 0)).toBe(total);
          const low = Math.floor(total / hostIds.length);
          for (const part of parts)
            expect(part === low || part === Math.ceil(total / hostIds.length)).toBe(true);
        }
        for (const share of shares.values()) {
          expect(Object.keys(share.sessions).sort()).toEqual(Object.keys(demand.sessions).sort());
          expect(share.load).toBe(demand.load);
        }
      }),
    );
  });

  it('puts the remainder on the first hosts in id order, whatever order they come in', () => {
    const shares = spreadDemand({ sessions: { voice: 11 } }, ['c', 'a', 'b']);
    expect(Object.fromEntries([...shares].map(([id, share]) => [id, share.sessions.voice]))).toEqual({
      a: 4,
      b: 4,
      c: 3,
    });
    fc.assert(
      fc.property(demandArb, hostIdsArb, fc.infiniteStream(fc.nat()), (demand, hostIds, seeds) => {
        const shuffled = [...hostIds].sort(() => (seeds.next().value % 3) - 1);
        expect(spreadDemand(demand, shuffled)).toEqual(spreadDemand(demand, hostIds));
      }),
    );
  });

  it('spreads over nobody when no host serves', () => {
    expect(spreadDemand({ sessions: { voice: 10 } }, []).size).toBe(0);
  });
});

describe('mergeDemand', () => {
  it('keeps the last count per channel, the last load given, and drops what is cleared', () => {
    const changeArb = fc.oneof(
      fc.record(
        {
          kind: fc.constant('set' as const),
          channel: fc.constantFrom(...CHANNELS),
          sessions: fc.nat({ max: 1000 }),
          load: fc.double({ min: 0, max: 1, noNaN: true }),
        },
        { requiredKeys: ['kind', 'channel', 'sessions'] },
      ),
      fc.record({ kind: fc.constant('clear' as const), channel: fc.constantFrom(...CHANNELS) }),
    );
    fc.assert(
      fc.property(fc.array(changeArb, { maxLength: 20 }), (changes) => {
        let demand: SimulatedDemand | undefined;
        const expected: Record<string, number> = {};
        let load: number | undefined;
        for (const change of changes) {
          demand = mergeDemand(demand, change);
          if (change.kind === 'set') {
            expected[change.channel] = change.sessions;
            if (change.load !== undefined) load = change.load;
          } else delete expected[change.channel];
          if (Object.keys(expected).length === 0) load = undefined;
        }
        if (Object.keys(expected).length === 0) expect(demand).toBeUndefined();
        else expect(demand).toEqual({ sessions: expected, ...(load === undefined ? {} : { load }) });
        // What is written reads back the same.
        if (demand) expect(parseSimulatedDemand(serializeSimulatedDemand(demand), 'f')).toEqual(demand);
      }),
    );
    expect(mergeDemand({ sessions: { voice: 3, sms: 1 }, load: 0.5 }, { kind: 'clear' })).toBeUndefined();
  });

  it('refuses a file that cannot count, naming where', () => {
    expect(() => parseSimulatedDemand('{"sessions":{"voice":-1}}', 'x.json')).toThrow(
      /x\.json: sessions\.voice/,
    );
    expect(() => parseSimulatedDemand('{"sessions":{"fax":1}}', 'x.json')).toThrow(/x\.json/);
    expect(() => parseSimulatedDemand('{"sessions":{},"load":2}', 'x.json')).toThrow(/x\.json: load/);
    expect(() => parseSimulatedDemand('not json', 'x.json')).toThrow(/x\.json is not JSON/);
  });
});

describe('the demand simulator', () => {
  let stateDir: string | undefined;
  afterEach(async () => {
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  const instance = (
    hostId: string,
    hostType: string,
    state: 'running' | 'stopping' | 'exited' = 'running',
  ) => ({
    hostId,
    state,
    spec: { hostId, group: 'demo', hostType, roles: [], services: {}, secretFile: '' },
  });

  it('shares a host type among its running, non-draining hosts only', () => {
    const shares = hostShares(
      new Map([['demo', new Map([['call-router', { sessions: { voice: 10 } }]])]]),
      [
        instance('demo-call-router-1', 'call-router'),
        instance('demo-call-router-2', 'call-router'),
        instance('demo-call-router-3', 'call-router', 'stopping'),
        instance('demo-call-router-4', 'call-router', 'exited'),
        instance('demo-call-router-5', 'call-router'),
        instance('demo-media-1', 'media'),
      ],
      new Map([['demo', new Set(['demo-call-router-5'])]]),
    );
    expect(Object.fromEntries([...shares].map(([id, share]) => [id, share.sessions.voice]))).toEqual({
      'demo-call-router-1': 5,
      'demo-call-router-2': 5,
    });
  });

  it('writes each host its file and spreads again when hosts come, drain or go', async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-demand-'));
    const dir = stateDir;
    let fleet = [instance('demo-call-router-1', 'call-router'), instance('demo-media-1', 'media')];
    let draining = new Set<string>();
    // A file a previous run left for a host that no longer serves: removed by the first pass.
    await writeFileAtomically(hostDemandFile(dir, 'demo-call-router-9'), '{"sessions":{"voice":1}}');
    const simulator = startDemandSimulator({
      stateDir: dir,
      instances: (() => fleet) as FleetInstances,
      draining: async () => draining,
      intervalMs: 60_000,
    });
    const hostFiles = async () => {
      const files = (await readdir(join(dir, 'hosts'))).filter((f) => f.endsWith('.demand.json')).sort();
      return Object.fromEntries(
        await Promise.all(
          files.map(async (f) => [f, JSON.parse(await readFile(join(dir, 'hosts', f), 'utf8')).sessions]),
        ),
      );
    };
    try {
      await writeFileAtomically(
        hostTypeDemandFile(dir, 'demo', 'call-router'),
        serializeSimulatedDemand({ sessions: { voice: 301, sms: 2 } }),
      );
      await simulator.tick();
      expect(await hostFiles()).toEqual({ 'demo-call-router-1.demand.json': { voice: 301, sms: 2 } });

      fleet = [
        ...fleet,
        instance('demo-call-router-2', 'call-router'),
        instance('demo-call-router-3', 'call-router'),
      ];
      await simulator.tick();
      expect(await hostFiles()).toEqual({
        'demo-call-router-1.demand.json': { voice: 101, sms: 1 },
        'demo-call-router-2.demand.json': { voice: 100, sms: 1 },
        'demo-call-router-3.demand.json': { voice: 100, sms: 0 },
      });

      draining = new Set(['demo-call-router-1']);
      fleet = fleet.filter((i) => i.hostId !== 'demo-call-router-3');
      await simulator.tick();
      expect(await hostFiles()).toEqual({ 'demo-call-router-2.demand.json': { voice: 301, sms: 2 } });

      await rm(hostTypeDemandFile(dir, 'demo', 'call-router'));
      await simulator.tick();
      expect(await hostFiles()).toEqual({});
    } finally {
      await simulator.stop();
    }
  });

  it('takes out of the share the hosts told to drain or stop, and those draining, lost or failed', async () => {
    const store = new MemoryHostStore();
    const assigned = (mode: 'running' | 'draining' | 'stopped') =>
      ({
        state: { mode },
        assignedAt: '2031-01-01T00:00:00Z',
        by: {},
        version: 2,
      }) as unknown as HostRecord['assigned'];
    const observed = (status: string) => ({ status }) as unknown as HostRecord['observed'];
    const hosts: Partial<HostRecord>[] = [
      { hostId: 'serving', assigned: assigned('running'), observed: observed('running') },
      { hostId: 'booting', observed: observed('booting') },
      { hostId: 'told-to-drain', assigned: assigned('draining'), observed: observed('running') },
      { hostId: 'told-to-stop', assigned: assigned('stopped'), observed: observed('running') },
      { hostId: 'draining', observed: observed('draining') },
      {
        hostId: 'lost',
        observed: observed('running'),
        lost: { at: '2031-01-01T00:00:00Z' } as HostRecord['lost'],
      },
      { hostId: 'failed', observed: observed('failed') },
      { hostId: 'elsewhere', group: 'other', observed: observed('draining') },
    ];
    for (const host of hosts) await store.create(registeredHost({ ...host, lastChangeSeq: 1 }));
    expect([...(await drainingFromStore(store)('demo'))].sort()).toEqual([
      'draining',
      'failed',
      'lost',
      'told-to-drain',
      'told-to-stop',
    ]);
  });
});
