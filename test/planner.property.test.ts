import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileGroup } from '../shared/groups/compile.ts';
import type {
  ActualHost,
  CompiledGroup,
  DesiredHostState,
  GroupDefinition,
  HostTypeDefinition,
  Plan,
} from '../shared/groups/model.ts';
import { type PlanInput, planGroup } from '../shared/groups/planner.ts';
import { parseSelector, selectorSize } from '../shared/groups/selectors.ts';
import type { HostStatus } from '../shared/schemas.ts';
import { carryOut, converge, NOW, newHostId } from './support/planner-fixtures.ts';

type Gen = fc.GeneratorValue;

const minutesAgo = (minutes: number) => new Date(Date.parse(NOW) - minutes * 60_000).toISOString();

/** A random acyclic group: services depend only on services before them; sometimes a load balancer. */
function randomGroup(g: Gen): CompiledGroup {
  const services = Array.from({ length: g(fc.integer, { min: 1, max: 4 }) }, (_, i) => `s${i}`);
  const dependencies: Record<string, string[]> = {};
  services.forEach((service, i) => {
    dependencies[service] = g(fc.subarray, services.slice(0, i));
  });
  const hostTypes: Record<string, HostTypeDefinition> = {};
  const typeCount = g(fc.integer, { min: 1, max: 4 });
  // Every service runs somewhere (the compiler insists), some on more than one host type.
  const runs = Array.from({ length: typeCount }, () => new Set<string>());
  for (const service of services) runs[g(fc.integer, { min: 0, max: typeCount - 1 })]?.add(service);
  for (const set of runs) {
    if (set.size === 0 || g(fc.boolean)) set.add(g(fc.constantFrom, ...services));
  }
  runs.forEach((set, t) => {
    hostTypes[`t${t}`] = {
      roles: [`t${t}`],
      instanceType: 'c7g.large',
      count: g(fc.integer, { min: 0, max: 4 }),
      services: Object.fromEntries(
        [...set].sort().map((service) => [service, { version: '1', port: 7000 + Number(service.slice(1)) }]),
      ),
    };
  });
  const run = [...new Set(Object.values(hostTypes).flatMap((type) => Object.keys(type.services)))];
  if (g(fc.boolean)) {
    dependencies.lb = [];
    hostTypes.lb = {
      roles: ['lb'],
      instanceType: 'c7g.medium',
      count: g(fc.integer, { min: 1, max: 2 }),
      services: { lb: { version: '1', port: 8080 } },
      balances: g(fc.subarray, run.sort(), { minLength: 1, maxLength: Math.min(2, run.length) }),
    };
  }
  const definition: GroupDefinition = {
    name: 'g',
    hostTypes,
    dependencies,
    configuration: {
      rollout: {
        wave: g(fc.constantFrom, '1', '2', 'max(1, 25%)', 'max(1, 50%)', 'all'),
        surgeFirst: g(fc.boolean),
        convergenceTimeoutSeconds: 60,
      },
      drain: {
        waitForSessions: g(fc.boolean),
        timeoutSeconds: 600,
        onTimeout: g(fc.constantFrom, 'proceed' as const, 'fail' as const),
      },
      disruptionBudget: g(fc.constantFrom, '1', '2', 'max(1, 25%)', 'max(1, 50%)'),
      rules: [],
    },
  };
  return compileGroup(definition, 1);
}

const STATUSES: HostStatus[] = [
  'running',
  'running',
  'running',
  'running',
  'running',
  'failed',
  'draining',
  'stopping',
  'stopped',
  'booting',
  'pending',
];

/** A random fleet for the group: every status, sessions, stale versions, missing or stale desired states. */
function randomScenario(g: Gen): PlanInput {
  const group = randomGroup(g);
  const hosts: ActualHost[] = [];
  const desired: Record<string, DesiredHostState> = {};
  const types = Object.values(group.hostTypes).map((type) => ({
    name: type.name,
    count: type.desired,
    services: type.services,
  }));
  if (g(fc.boolean)) types.push({ name: 'legacy', count: 0, services: { s0: { version: '1', port: 7000 } } });
  for (const type of types) {
    const count = g(fc.integer, { min: 0, max: type.count + 2 });
    for (let i = 1; i <= count; i += 1) {
      const hostId = `${type.name}-${i}`;
      const status = g(fc.constantFrom, ...STATUSES);
      const version = g(fc.constantFrom, '1', '1', '0.9');
      const services = Object.fromEntries(
        Object.entries(type.services).map(([name, spec]) => [name, { ...spec, version }]),
      );
      const stateVersion = g(fc.integer, { min: 1, max: 3 });
      const hasDesired = g(fc.integer, { min: 0, max: 4 }) > 0;
      const draining =
        status === 'draining' || (status === 'running' && g(fc.integer, { min: 0, max: 5 }) === 0);
      if (hasDesired) {
        desired[hostId] = {
          hostId,
          group: group.name,
          hostType: type.name,
          stateVersion,
          services,
          config: {},
          mode: draining ? 'draining' : 'running',
        };
      }
      hosts.push({
        hostId,
        hostType: type.name,
        status,
        software: Object.fromEntries(Object.keys(services).map((name) => [name, version])),
        appliedStateVersion: hasDesired ? stateVersion : 0,
        assignedStateVersion: hasDesired ? stateVersion : 0,
        liveSessions: g(fc.constantFrom, 0, 0, 0, 2),
        load: g(fc.constantFrom, 0, 0.3, 0.7),
        ...(draining && g(fc.boolean)
          ? { drainingSince: g(fc.constantFrom, minutesAgo(1), minutesAgo(30)) }
          : {}),
        endpoints: Object.fromEntries(
          Object.entries(services).map(([name, spec]) => [name, `${hostId}:${spec.port}`]),
        ),
      });
    }
  }
  for (const host of hosts) {
    const state = desired[host.hostId];
    const balances = group.hostTypes[host.hostType]?.balances ?? [];
    if (!state || balances.length === 0) continue;
    const members = hosts.flatMap((member) =>
      Object.values(member.endpoints ?? {}).filter((e) => !e.endsWith(':8080')),
    );
    state.upstreams = Object.fromEntries(balances.map((service) => [service, g(fc.subarray, members)]));
  }
  const run = Object.keys(group.serviceHosts).filter(
    (service) => (group.serviceHosts[service] ?? []).length > 0,
  );
  const rollout = g(fc.boolean)
    ? {
        id: 'r1',
        service: g(fc.constantFrom, ...run),
        ...(g(fc.boolean) ? { version: '2' } : { config: { k: 'v' } }),
        select: g(fc.constantFrom, 'all', '50%', '1', 'ids(t0-1, t1-2)'),
      }
    : undefined;
  return {
    group,
    running: g(fc.integer, { min: 0, max: 3 }) > 0,
    hosts,
    desired,
    now: NOW,
    newHostId,
    ...(rollout ? { rollout } : {}),
  };
}

const scenario = fc.gen().map((g) => randomScenario(g));
const RUNS = { numRuns: 200 };

/* ───────────── Reading plans ───────────── */

interface Located {
  wave: number;
  action: Plan['waves'][number]['actions'][number];
}

function located(plan: Plan): Located[] {
  return plan.waves.flatMap((wave) => wave.actions.map((action) => ({ wave: wave.index, action })));
}

function levelOf(state: PlanInput, hostType: string): number {
  const type = state.group.hostTypes[hostType];
  return type ? type.level : Math.max(-1, ...Object.values(state.group.hostTypes).map((t) => t.level)) + 1;
}

function hostTypeOf(state: PlanInput, plan: Plan, hostId: string): string {
  const actual = state.hosts.find((host) => host.hostId === hostId);
  if (actual) return actual.hostType;
  const launch = located(plan).find(
    (entry) => entry.action.kind === 'launch' && entry.action.hostId === hostId,
  );
  return launch?.action.kind === 'launch' ? launch.action.hostType : '?';
}

function outAtStart(state: PlanInput): Set<string> {
  const out = ['failed', 'draining', 'stopping', 'stopped'];
  return new Set(
    state.hosts
      .filter((host) => out.includes(host.status) || state.desired[host.hostId]?.mode === 'draining')
      .map((host) => host.hostId),
  );
}

const versionsOf = (state: DesiredHostState) =>
  Object.fromEntries(Object.entries(state.services).map(([name, spec]) => [name, spec.version]));

const sorted = (list: readonly string[] | undefined) => [...(list ?? [])].sort();
const same = (a: readonly string[] | undefined, b: readonly string[] | undefined) =>
  JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));

describe('planGroup invariants (random groups and fleets)', () => {
  it('starts dependencies before dependents', () => {
    fc.assert(
      fc.property(scenario, (state) => {
        const plan = planGroup(state);
        const launches = located(plan).filter((entry) => entry.action.kind === 'launch');
        for (const a of launches) {
          for (const b of launches) {
            if (a.action.kind !== 'launch' || b.action.kind !== 'launch') continue;
            if (levelOf(state, a.action.hostType) < levelOf(state, b.action.hostType)) {
              expect(a.wave).toBeLessThan(b.wave);
            }
          }
        }
      }),
      RUNS,
    );
  });

  it('stops dependents before their dependencies, and stops everything it does not hold back', () => {
    fc.assert(
      fc.property(scenario, (given) => {
        const state = { ...given, running: false };
        const plan = planGroup(state);
        const terminated = located(plan).filter((entry) => entry.action.kind === 'terminate');
        const level = (hostId: string) => levelOf(state, hostTypeOf(state, plan, hostId));
        for (const a of terminated) {
          for (const b of terminated) {
            if (
              level(a.action.kind === 'terminate' ? a.action.hostId : '') >
              level(b.action.kind === 'terminate' ? b.action.hostId : '')
            ) {
              expect(a.wave).toBeLessThan(b.wave);
            }
          }
        }
        const held = plan.deferred.map((entry) => level(entry.hostId));
        for (const entry of terminated) {
          if (entry.action.kind === 'terminate')
            expect(level(entry.action.hostId)).toBeGreaterThanOrEqual(Math.max(-1, ...held));
        }
        const gone = new Set([
          ...terminated.map((entry) => (entry.action.kind === 'terminate' ? entry.action.hostId : '')),
          ...plan.deferred.map((entry) => entry.hostId),
        ]);
        expect(state.hosts.every((host) => gone.has(host.hostId))).toBe(true);
        expect(
          located(plan).some((entry) => entry.action.kind === 'launch' || entry.action.kind === 'assign'),
        ).toBe(false);
      }),
      RUNS,
    );
  });

  it('never has more hosts out of service in a wave than the disruption budget, counting those already out', () => {
    fc.assert(
      fc.property(scenario, (given) => {
        const state = { ...given, running: true };
        const plan = planGroup(state);
        const budget = selectorSize(
          parseSelector(state.group.configuration.disruptionBudget),
          state.hosts.length,
        );
        const out = outAtStart(state);
        for (const wave of plan.waves) {
          const fresh = wave.disrupted.filter((hostId) => !out.has(hostId));
          expect(fresh.length).toBeLessThanOrEqual(Math.max(0, budget - out.size));
        }
      }),
      RUNS,
    );
  });

  it('launches a surge-first replacement before terminating the host it replaces, and after otherwise', () => {
    fc.assert(
      fc.property(scenario, (state) => {
        const plan = planGroup(state);
        const all = located(plan);
        for (const entry of all) {
          if (entry.action.kind !== 'launch' || entry.action.replaces === undefined) continue;
          const replaced = entry.action.replaces;
          const terminate = all.find(
            (other) => other.action.kind === 'terminate' && other.action.hostId === replaced,
          );
          expect(terminate).toBeDefined();
          if (state.group.configuration.rollout.surgeFirst)
            expect(entry.wave).toBeLessThan(terminate?.wave ?? -1);
          else expect(entry.wave).toBeGreaterThan(terminate?.wave ?? Number.POSITIVE_INFINITY);
        }
      }),
      RUNS,
    );
  });

  it('alters no host with live sessions unless drained earlier in the plan or its drain ran out', () => {
    fc.assert(
      fc.property(scenario, (state) => {
        const plan = planGroup(state);
        const { drain: policy } = state.group.configuration;
        const latest = new Map(Object.entries(state.desired));
        for (const entry of located(plan)) {
          const { action } = entry;
          if (action.kind !== 'assign' && action.kind !== 'terminate') {
            if (action.kind !== 'notify' && action.kind !== 'reboot') latest.set(action.hostId, action.state);
            continue;
          }
          const host = state.hosts.find((candidate) => candidate.hostId === action.hostId);
          const before = latest.get(action.hostId);
          if (action.kind === 'assign') latest.set(action.hostId, action.state);
          if (!host || host.liveSessions === 0 || host.status === 'failed' || host.status === 'stopped')
            continue;
          // Putting a drained host back into service with what it runs already alters nothing.
          const alters =
            action.kind === 'terminate' ||
            (before
              ? JSON.stringify(before.services) !== JSON.stringify(action.state.services)
              : JSON.stringify(host.software) !== JSON.stringify(versionsOf(action.state)));
          if (!alters) continue;
          const drained = located(plan).find(
            (other) => other.action.kind === 'drain' && other.action.hostId === host.hostId,
          );
          if (drained) {
            expect(drained.wave).toBeLessThan(entry.wave);
            if (policy.waitForSessions) {
              const waited = plan.waves
                .slice(drained.wave + 1, entry.wave)
                .some((wave) => wave.awaits.some((a) => a.hostId === host.hostId && a.drained));
              expect(waited).toBe(true);
            }
            continue;
          }
          const wasDraining = host.status === 'draining' || state.desired[host.hostId]?.mode === 'draining';
          const since = host.drainingSince ? Date.parse(host.drainingSince) : Date.parse(state.now);
          const ranOut = Date.parse(state.now) - since >= policy.timeoutSeconds * 1000;
          expect(wasDraining).toBe(true);
          expect(!policy.waitForSessions || (ranOut && policy.onTimeout === 'proceed')).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it('updates a load balancer only when its upstreams change, and never leaves a host being altered in one', () => {
    fc.assert(
      fc.property(scenario, (state) => {
        const plan = planGroup(state);
        const upstreams = new Map<string, Record<string, string[]>>();
        for (const [hostId, desired] of Object.entries(state.desired))
          if (desired.upstreams) upstreams.set(hostId, desired.upstreams);
        const endpointsOf = new Map(
          state.hosts.map((host) => [host.hostId, Object.values(host.endpoints ?? {})]),
        );
        const gone = new Set<string>(
          state.hosts
            .filter((host) => ['failed', 'stopped', 'stopping'].includes(host.status))
            .map((host) => host.hostId),
        );
        for (const wave of plan.waves) {
          for (const action of wave.actions) {
            if (action.kind === 'terminate') gone.add(action.hostId);
            if (action.kind === 'update-lb') {
              const before = upstreams.get(action.hostId) ?? {};
              const after = action.state.upstreams ?? {};
              expect(Object.keys(after).some((service) => !same(before[service], after[service]))).toBe(true);
            }
            if (
              action.kind !== 'notify' &&
              action.kind !== 'terminate' &&
              action.kind !== 'reboot' &&
              action.state.upstreams
            ) {
              upstreams.set(action.hostId, action.state.upstreams);
            }
          }
          for (const hostId of wave.disrupted) {
            for (const endpoint of endpointsOf.get(hostId) ?? []) {
              for (const [lb, lists] of upstreams) {
                if (gone.has(lb)) continue;
                for (const list of Object.values(lists)) expect(list).not.toContain(endpoint);
              }
            }
          }
        }
      }),
      RUNS,
    );
  });

  it('raises every host’s state version with each state it is given', () => {
    fc.assert(
      fc.property(scenario, (state) => {
        const plan = planGroup(state);
        const version = new Map(
          state.hosts.map((host) => [
            host.hostId,
            Math.max(host.assignedStateVersion, state.desired[host.hostId]?.stateVersion ?? 0),
          ]),
        );
        for (const { action } of located(plan)) {
          if (action.kind === 'notify' || action.kind === 'terminate' || action.kind === 'reboot') continue;
          if (action.kind === 'launch') expect(action.state.stateVersion).toBe(1);
          else expect(action.state.stateVersion).toBe((version.get(action.hostId) ?? 0) + 1);
          version.set(action.hostId, action.state.stateVersion);
        }
      }),
      RUNS,
    );
  });

  it('plans the same whatever order the hosts come in', () => {
    fc.assert(
      fc.property(scenario, fc.gen(), (state, g) => {
        const shuffled: ActualHost[] = g(fc.shuffledSubarray, [...state.hosts], {
          minLength: state.hosts.length,
        });
        expect(planGroup({ ...state, hosts: shuffled })).toEqual(planGroup(state));
      }),
      RUNS,
    );
  });

  it('plans nothing more once a plan that held nothing back and launched nothing is carried out', () => {
    fc.assert(
      fc.property(scenario, (state) => {
        const plan = planGroup(state);
        fc.pre(plan.deferred.length === 0 && !located(plan).some((entry) => entry.action.kind === 'launch'));
        expect(planGroup(carryOut(state, plan)).waves).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });

  it('converges, and a converged cluster plans nothing', () => {
    fc.assert(
      fc.property(scenario, (state) => {
        const { state: converged } = converge(state);
        expect(planGroup(converged)).toEqual({ group: state.group.name, waves: [], deferred: [] });
        expect(planGroup({ ...converged, hosts: [...converged.hosts].reverse() }).waves).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });
});
