/**
 * Session-aware scale-in (issue 9, item 3) as properties of the planner: on random groups whose hosts carry
 * random live sessions, with a desired count lowered (sometimes below min, as a stale capacity could be),
 * and — for the drain — over successive `now`s in a small world that carries plans out the way the reconcile
 * does (a wave that awaits a drain holds the rest of the plan back until the sessions end or the drain times
 * out; the next tick plans again from what the hosts report).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileGroup } from '../shared/groups/compile.ts';
import { withCapacity } from '../shared/groups/group-state.ts';
import { launchMarkOf } from '../shared/groups/launch-spec.ts';
import type {
  ActualHost,
  CompiledGroup,
  DesiredHostState,
  GroupDefinition,
  HostTypeDefinition,
  Plan,
} from '../shared/groups/model.ts';
import { type PlanInput, type PlanRollout, planGroup } from '../shared/groups/planner.ts';
import { parseSelector, selectorSize } from '../shared/groups/selectors.ts';
import { pickScaleIn } from '../shared/scaling/autoscaler.ts';
import type { HostStatus } from '../shared/schemas.ts';
import { NOW, newHostId } from './support/planner-fixtures.ts';

type Gen = fc.GeneratorValue;

const SCALED = ['app', 'edge'] as const;
const DEAD: ReadonlySet<HostStatus> = new Set(['failed', 'stopped', 'lost']);

/* ───────────── Random groups and fleets ───────────── */

interface Scenario {
  state: PlanInput;
  /** The compiled group before the lowered counts: its `desired` is the definition's count. */
  defined: CompiledGroup;
}

function hostType(g: Gen, name: string, extra: Partial<HostTypeDefinition> = {}): HostTypeDefinition {
  const min = g(fc.integer, { min: 0, max: 3 });
  const max = min + g(fc.integer, { min: 0, max: 5 });
  return {
    roles: [name],
    instanceType: 'c7g.large',
    min,
    max,
    count: g(fc.integer, { min, max }),
    services: { [name]: { version: '1', port: name === 'app' ? 7000 : 7100 } },
    ...extra,
  };
}

function randomGroup(g: Gen): CompiledGroup {
  const hostTypes: Record<string, HostTypeDefinition> = {
    app: hostType(g, 'app', { channels: ['voice'] }),
    edge: hostType(g, 'edge', { channels: ['sms'] }),
  };
  const dependencies: Record<string, string[]> = { app: [], edge: g(fc.boolean) ? ['app'] : [] };
  if (g(fc.boolean)) {
    hostTypes.lb = {
      roles: ['lb'],
      instanceType: 'c7g.medium',
      count: 1,
      services: { lb: { version: '1', port: 8080 } },
      balances: ['app'],
    };
    dependencies.lb = [];
  }
  const definition: GroupDefinition = {
    name: 'g',
    hostTypes,
    dependencies,
    configuration: {
      rollout: {
        wave: g(fc.constantFrom, '1', '2', 'max(1, 50%)', 'all'),
        surgeFirst: g(fc.boolean),
        convergenceTimeoutSeconds: 60,
      },
      // The drain waits for sessions: what the "never before its drain ends" property is about.
      drain: {
        waitForSessions: true,
        timeoutSeconds: g(fc.integer, { min: 60, max: 900 }),
        onTimeout: g(fc.constantFrom, 'proceed' as const, 'fail' as const),
      },
      disruptionBudget: g(fc.constantFrom, '1', '2', '3', 'max(1, 25%)', 'max(1, 50%)'),
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
  'booting',
  'draining',
  'failed',
];

function randomFleet(g: Gen, group: CompiledGroup): Pick<PlanInput, 'hosts' | 'desired'> {
  const hosts: ActualHost[] = [];
  const desired: Record<string, DesiredHostState> = {};
  for (const type of Object.values(group.hostTypes)) {
    const count = type.balances ? type.desired : g(fc.integer, { min: 0, max: type.desired + 4 });
    const mark = launchMarkOf(type);
    for (let i = 1; i <= count; i += 1) {
      const hostId = `${type.name}-${i}`;
      const status = type.balances ? 'running' : g(fc.constantFrom, ...STATUSES);
      const draining =
        status === 'draining' || (status === 'running' && g(fc.integer, { min: 0, max: 6 }) === 0);
      const stale = g(fc.integer, { min: 0, max: 5 }) === 0;
      desired[hostId] = {
        hostId,
        group: group.name,
        hostType: type.name,
        stateVersion: 2,
        services: type.services,
        config: {},
        mode: draining ? 'draining' : 'running',
        launchedAs: stale ? 'launched-as-before' : mark,
      };
      const serving = status === 'running' || status === 'draining' || status === 'failed';
      hosts.push({
        hostId,
        hostType: type.name,
        status,
        software: Object.fromEntries(
          Object.entries(type.services).map(([name, spec]) => [name, spec.version]),
        ),
        appliedStateVersion: 2,
        assignedStateVersion: 2,
        liveSessions: serving && !type.balances ? g(fc.constantFrom, 0, 0, 0, 1, 2, 3, 5, 8) : 0,
        load: g(fc.constantFrom, 0, 0.3, 0.9),
        ...(draining ? { drainingSince: minutesBefore(NOW, g(fc.integer, { min: 0, max: 20 })) } : {}),
        endpoints: Object.fromEntries(
          Object.entries(type.services).map(([name, spec]) => [name, `${hostId}:${spec.port}`]),
        ),
      });
    }
  }
  return { hosts, desired };
}

/** Counts lowered the way the autoscaler lowers them (withCapacity), sometimes below the type's min. */
function lowered(g: Gen, group: CompiledGroup): CompiledGroup {
  const capacity: Record<string, number> = {};
  for (const name of SCALED)
    capacity[name] = g(fc.integer, { min: 0, max: group.hostTypes[name]?.desired ?? 0 });
  return withCapacity(group, capacity);
}

function randomRollout(g: Gen): PlanRollout | undefined {
  switch (g(fc.constantFrom, 'none', 'none', 'version', 'replace')) {
    case 'version':
      return {
        id: 'r1',
        service: g(fc.constantFrom, 'app', 'edge'),
        version: '2',
        select: g(fc.constantFrom, 'all', '50%', '1'),
      };
    case 'replace':
      return { id: 'r2', service: 'app', replaceHostType: 'app' };
    default:
      return undefined;
  }
}

function randomScenario(g: Gen, options: { rollout: boolean }): Scenario {
  const defined = randomGroup(g);
  const rollout = options.rollout ? randomRollout(g) : undefined;
  const state: PlanInput = {
    group: lowered(g, defined),
    running: true,
    ...randomFleet(g, defined),
    now: NOW,
    newHostId,
    ...(rollout ? { rollout } : {}),
  };
  return { state, defined };
}

const withoutRollout = fc.gen().map((g) => randomScenario(g, { rollout: false }));
const withRollout = fc.gen().map((g) => randomScenario(g, { rollout: true }));

/* ───────────── Reading plans and fleets ───────────── */

function minutesBefore(iso: string, minutes: number): string {
  return new Date(Date.parse(iso) - minutes * 60_000).toISOString();
}

const actions = (plan: Plan) => plan.waves.flatMap((wave) => wave.actions);

function isReady(host: ActualHost, state: PlanInput): boolean {
  return host.status === 'running' && state.desired[host.hostId]?.mode !== 'draining';
}

function readyCount(state: PlanInput, hostType: string): number {
  return state.hosts.filter((host) => host.hostType === hostType && isReady(host, state)).length;
}

/** Out of service before the plan: what the planner does not charge to the disruption budget. */
function outAtStart(state: PlanInput): Set<string> {
  const out: ReadonlySet<HostStatus> = new Set(['failed', 'lost', 'draining', 'stopping', 'stopped']);
  return new Set(
    state.hosts
      .filter((host) => out.has(host.status) || state.desired[host.hostId]?.mode === 'draining')
      .map((host) => host.hostId),
  );
}

function expectWithinBudget(state: PlanInput, plan: Plan): void {
  const budget = selectorSize(parseSelector(state.group.configuration.disruptionBudget), state.hosts.length);
  const out = outAtStart(state);
  for (const wave of plan.waves) {
    const fresh = wave.disrupted.filter((hostId) => !out.has(hostId));
    expect(fresh.length).toBeLessThanOrEqual(Math.max(0, budget - out.size));
  }
}

/* ───────────── A world that carries plans out over time ───────────── */

interface Clock {
  state: PlanInput;
  /** Why the world stopped carrying out the last plan (a drain or a boot to wait for), for messages. */
  waiting?: string;
}

/**
 * Carries `plan` out wave by wave as the reconcile would, checking each termination against the hosts as they
 * are at that moment; stops at the first wave whose awaits do not hold yet (booting, or a drain with sessions
 * left before its timeout, or after it with onTimeout: fail).
 */
function carryOutUntilBlocked(
  state: PlanInput,
  plan: Plan,
  onTerminate: (host: ActualHost, state: PlanInput) => void,
  afterWave: (before: PlanInput, after: PlanInput) => void,
): Clock {
  const { drain } = state.group.configuration;
  let current = state;
  for (const wave of plan.waves) {
    const before = current;
    const hosts = new Map(current.hosts.map((host) => [host.hostId, { ...host }]));
    const desired = { ...current.desired };
    for (const action of wave.actions) {
      if (action.kind === 'notify' || action.kind === 'reboot') continue;
      if (action.kind === 'terminate') {
        const host = hosts.get(action.hostId);
        if (host) onTerminate(host, current);
        hosts.delete(action.hostId);
        continue;
      }
      desired[action.hostId] = action.state;
      const host: ActualHost = hosts.get(action.hostId) ?? {
        hostId: action.hostId,
        hostType: action.state.hostType,
        status: 'booting',
        software: {},
        appliedStateVersion: 0,
        assignedStateVersion: 0,
        liveSessions: 0,
        load: 0,
        endpoints: Object.fromEntries(
          Object.entries(action.state.services).map(([name, spec]) => [
            name,
            `${action.hostId}:${spec.port}`,
          ]),
        ),
      };
      host.appliedStateVersion = action.state.stateVersion;
      host.assignedStateVersion = action.state.stateVersion;
      if (action.kind !== 'update-lb' && host.status !== 'booting') {
        if (action.state.mode === 'draining') {
          host.status = 'draining';
          host.drainingSince ??= current.now;
        } else if (action.state.mode === 'running') {
          host.status = 'running';
          delete host.drainingSince;
        }
      }
      hosts.set(action.hostId, host);
    }
    current = { ...current, hosts: [...hosts.values()], desired };
    afterWave(before, current);
    for (const awaited of wave.awaits) {
      const host = hosts.get(awaited.hostId);
      if (!host) continue;
      if (host.status === 'booting') return { state: current, waiting: `${host.hostId} boots` };
      if (!awaited.drained || host.liveSessions === 0) continue;
      const since = Date.parse(host.drainingSince ?? current.now);
      const timedOut = Date.parse(current.now) >= since + drain.timeoutSeconds * 1000;
      if (!timedOut || drain.onTimeout === 'fail')
        return { state: current, waiting: `${host.hostId} drains` };
    }
  }
  return { state: current };
}

/** Time passes: hosts finish booting; sessions end (a draining host takes no new ones), others come and go. */
function later(g: Gen, state: PlanInput): PlanInput {
  const seconds = g(fc.integer, { min: 15, max: 400 });
  const hosts = state.hosts.map((host): ActualHost => {
    const status = host.status === 'booting' ? 'running' : host.status;
    const draining = status === 'draining' || state.desired[host.hostId]?.mode === 'draining';
    const liveSessions =
      DEAD.has(status) || state.group.hostTypes[host.hostType]?.balances
        ? host.liveSessions
        : draining
          ? g(fc.integer, { min: 0, max: host.liveSessions })
          : g(fc.integer, { min: 0, max: host.liveSessions + 3 });
    return { ...host, status, liveSessions };
  });
  return { ...state, hosts, now: new Date(Date.parse(state.now) + seconds * 1000).toISOString() };
}

interface Step {
  before: PlanInput;
  plan: Plan;
}

/**
 * Plans and carries out over successive `now`s, with the desired counts moving (down, and back up: demand
 * that returns while hosts still drain), calling `check` on every plan and the hooks on what the world does.
 */
function simulate(
  g: Gen,
  scenario: Scenario,
  hooks: {
    onTerminate?: (host: ActualHost, state: PlanInput) => void;
    afterWave?: (before: PlanInput, after: PlanInput) => void;
    check?: (step: Step) => void;
  },
): void {
  let state = scenario.state;
  const ticks = g(fc.integer, { min: 3, max: 10 });
  for (let tick = 0; tick < ticks; tick += 1) {
    const plan = planGroup(state);
    hooks.check?.({ before: state, plan });
    state = carryOutUntilBlocked(
      state,
      plan,
      hooks.onTerminate ?? (() => {}),
      hooks.afterWave ?? (() => {}),
    ).state;
    state = later(g, state);
    if (g(fc.integer, { min: 0, max: 2 }) === 0) state = { ...state, group: lowered(g, scenario.defined) };
  }
}

const RUNS = { numRuns: 200 };

/* ───────────── Properties ───────────── */

describe('scale-in (random groups, sessions and lowered counts)', () => {
  it('(a) picks a prefix of pickScaleIn’s order of the ready hosts, after the hosts leaving or not serving yet', () => {
    fc.assert(
      fc.property(withoutRollout, ({ state }) => {
        const plan = planGroup(state);
        const touched = new Set(
          actions(plan).flatMap((action) =>
            action.kind === 'terminate' || action.kind === 'drain' ? [action.hostId] : [],
          ),
        );
        const chosen = (host: ActualHost) =>
          touched.has(host.hostId) ||
          plan.deferred.some(
            (entry) =>
              entry.hostId === host.hostId &&
              entry.reason.startsWith('scale-in') &&
              !entry.reason.includes('below its min'),
          );
        for (const name of SCALED) {
          const type = state.group.hostTypes[name];
          if (!type) continue;
          const mark = launchMarkOf(type);
          const live = state.hosts.filter((host) => host.hostType === name && !DEAD.has(host.status));
          const plain = live.filter(
            (host) => isReady(host, state) && state.desired[host.hostId]?.launchedAs === mark,
          );
          const others = live.filter((host) => !plain.includes(host));
          const picked = plain.filter(chosen);
          const candidates = plain.map((host) => ({ id: host.hostId, sessions: host.liveSessions, host }));
          expect(picked.map((host) => host.hostId).sort()).toEqual(
            pickScaleIn(candidates, picked.length)
              .map((candidate) => candidate.id)
              .sort(),
          );
          if (picked.length > 0) expect(others.filter((host) => !chosen(host))).toEqual([]);
          expect(live.filter(chosen)).toHaveLength(
            Math.max(0, live.length - Math.max(type.desired, type.min ?? 0)),
          );
        }
      }),
      RUNS,
    );
  });

  it('(b) never terminates a host with live sessions before they end or its drain times out', () => {
    fc.assert(
      fc.property(withRollout, fc.gen(), (scenario, g) => {
        const { drain } = scenario.state.group.configuration;
        simulate(g, scenario, {
          onTerminate: (host, state) => {
            if (host.liveSessions === 0 || DEAD.has(host.status)) return;
            expect(host.drainingSince, `${host.hostId} terminated undrained`).toBeDefined();
            const drainEnds = Date.parse(host.drainingSince ?? '') + drain.timeoutSeconds * 1000;
            expect(Date.parse(state.now), `${host.hostId} terminated mid-drain`).toBeGreaterThanOrEqual(
              drainEnds,
            );
            expect(drain.onTimeout).toBe('proceed');
          },
        });
      }),
      { numRuns: 150 },
    );
  });

  it('(c) never takes the ready hosts of a type below its min', () => {
    fc.assert(
      fc.property(withoutRollout, fc.gen(), (scenario, g) => {
        simulate(g, scenario, {
          afterWave: (before, after) => {
            for (const name of SCALED) {
              const min = after.group.hostTypes[name]?.min ?? 0;
              const ready = readyCount(after, name);
              if (ready < readyCount(before, name)) expect(ready).toBeGreaterThanOrEqual(min);
            }
          },
        });
      }),
      { numRuns: 150 },
    );
  });

  it('(d) keeps scale-in, rollouts and replacements together within the one disruption budget', () => {
    fc.assert(
      fc.property(withRollout, fc.gen(), (scenario, g) => {
        expectWithinBudget(scenario.state, planGroup(scenario.state));
        simulate(g, scenario, { check: ({ before, plan }) => expectWithinBudget(before, plan) });
      }),
      { numRuns: 150 },
    );
  });

  it('puts a host draining for a scale-in back into service before it launches another of its type', () => {
    fc.assert(
      fc.property(withoutRollout, fc.gen(), (scenario, g) => {
        simulate(g, scenario, {
          check: ({ before, plan }) => {
            const restored = new Set(
              actions(plan).flatMap((action) =>
                action.kind === 'assign' && action.state.mode === 'running' ? [action.hostId] : [],
              ),
            );
            for (const action of actions(plan)) {
              if (action.kind !== 'launch' || action.replaces !== undefined) continue;
              const draining = before.hosts.filter(
                (host) =>
                  host.hostType === action.hostType &&
                  !DEAD.has(host.status) &&
                  (host.status === 'draining' || before.desired[host.hostId]?.mode === 'draining'),
              );
              for (const host of draining)
                expect(restored, `${host.hostId} left draining`).toContain(host.hostId);
            }
          },
        });
      }),
      { numRuns: 150 },
    );
  });
});
