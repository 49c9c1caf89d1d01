/**
 * Groups, fleets and a model of the world for planner tests: `carryOut` does what a plan says the way hosts
 * would (each awaited state applied, drained sessions ended), so "plan again from where the plan leads" can be
 * asked of the planner.
 */
import { compileGroup } from '../../shared/groups/compile.ts';
import type {
  ActualHost,
  CompiledGroup,
  DesiredHostState,
  GroupConfiguration,
  GroupDefinition,
  Plan,
} from '../../shared/groups/model.ts';
import { type PlanInput, planGroup } from '../../shared/groups/planner.ts';

export const NOW = '2026-11-28T12:00:00.000Z';

/** db ← media ← call-router, with a load balancer in front of media. */
export function voiceDefinition(counts: Partial<Record<string, number>> = {}): GroupDefinition {
  return {
    name: 'voice',
    hostTypes: {
      db: {
        roles: ['db'],
        instanceType: 'm7g.large',
        count: counts.db ?? 1,
        services: { db: { version: '15', port: 5432 } },
      },
      media: {
        roles: ['media'],
        instanceType: 'c7g.large',
        count: counts.media ?? 4,
        services: { media: { version: '1.0', port: 7000, config: { codec: 'opus' } } },
        channels: ['voice'],
      },
      'media-lb': {
        roles: ['lb'],
        instanceType: 'c7g.medium',
        count: counts['media-lb'] ?? 1,
        services: { lb: { version: '1.0', port: 8080 } },
        balances: ['media'],
      },
      router: {
        roles: ['call-router'],
        instanceType: 'c7g.large',
        count: counts.router ?? 2,
        services: { 'call-router': { version: '3.1', port: 5060 } },
      },
    },
    dependencies: { db: [], media: ['db'], lb: [], 'call-router': ['media'] },
    configuration: configuration(),
  };
}

export function configuration(overrides: Partial<GroupConfiguration> = {}): GroupConfiguration {
  return {
    rollout: { wave: 'max(1, 25%)', surgeFirst: true, convergenceTimeoutSeconds: 300 },
    drain: { waitForSessions: true, timeoutSeconds: 600, onTimeout: 'proceed' },
    disruptionBudget: 'max(1, 25%)',
    rules: [],
    ...overrides,
  };
}

export function voiceGroup(
  counts: Partial<Record<string, number>> = {},
  overrides: Partial<GroupConfiguration> = {},
): CompiledGroup {
  const definition = voiceDefinition(counts);
  return compileGroup({ ...definition, configuration: { ...definition.configuration, ...overrides } }, 1);
}

export function newHostId(hostType: string, ordinal: number): string {
  return `${hostType}-${ordinal}`;
}

export function input(group: CompiledGroup, overrides: Partial<PlanInput> = {}): PlanInput {
  return { group, running: true, hosts: [], desired: {}, now: NOW, newHostId, ...overrides };
}

function endpointsOf(hostId: string, state: DesiredHostState): Record<string, string> {
  return Object.fromEntries(
    Object.entries(state.services).map(([name, spec]) => [name, `${hostId}:${spec.port ?? 9000}`]),
  );
}

function versionsOf(state: DesiredHostState): Record<string, string> {
  return Object.fromEntries(Object.entries(state.services).map(([name, spec]) => [name, spec.version]));
}

/** The cluster after every wave of `plan` converged: hosts applied their states, drains ended their sessions. */
export function carryOut(before: PlanInput, plan: Plan): PlanInput {
  const hosts = new Map(before.hosts.map((host) => [host.hostId, { ...host }]));
  const desired: Record<string, DesiredHostState> = { ...before.desired };
  for (const wave of plan.waves) {
    for (const action of wave.actions) {
      if (action.kind === 'notify' || action.kind === 'reboot') continue;
      if (action.kind === 'terminate') {
        hosts.delete(action.hostId);
        continue;
      }
      const { state } = action;
      desired[action.hostId] = state;
      const host: ActualHost = hosts.get(action.hostId) ?? {
        hostId: action.hostId,
        hostType: state.hostType,
        status: 'running',
        software: {},
        appliedStateVersion: 0,
        assignedStateVersion: 0,
        liveSessions: 0,
        load: 0,
        endpoints: endpointsOf(action.hostId, state),
      };
      host.software = versionsOf(state);
      host.appliedStateVersion = state.stateVersion;
      host.assignedStateVersion = state.stateVersion;
      if (action.kind === 'update-lb') {
        // Balancing changes nothing about whether the host itself serves.
      } else if (state.mode === 'draining') {
        host.status = 'draining';
        host.liveSessions = 0;
        host.drainingSince ??= before.now;
      } else if (state.mode === 'running') {
        host.status = 'running';
        delete host.drainingSince;
      }
      hosts.set(action.hostId, host);
    }
  }
  return { ...before, hosts: [...hosts.values()], desired };
}

/** Time passes: sessions end, hosts on their way somewhere get there, a rollout's deferred hosts become ready. */
export function timePasses(state: PlanInput): PlanInput {
  const hosts = state.hosts.map((host): ActualHost => {
    const status =
      host.status === 'pending' || host.status === 'booting'
        ? 'running'
        : host.status === 'stopping'
          ? 'stopped'
          : host.status;
    return { ...host, status, liveSessions: 0 };
  });
  return { ...state, hosts, now: new Date(Date.parse(state.now) + 3_600_000).toISOString() };
}

/** Plans and carries out until a plan is empty; throws when that takes more than `rounds` plans. */
export function converge(start: PlanInput, rounds = 8): { state: PlanInput; plans: Plan[] } {
  let state = start;
  const plans: Plan[] = [];
  for (let round = 0; round < rounds; round += 1) {
    const plan = planGroup(state);
    plans.push(plan);
    if (plan.waves.length === 0 && plan.deferred.length === 0) return { state, plans };
    state = carryOut(state, plan);
    if (plan.deferred.length > 0) state = timePasses(state);
  }
  throw new Error(`no empty plan after ${rounds} rounds: ${JSON.stringify(plans.at(-1))}`);
}

/** A group started from nothing and carried out until it plans nothing. */
export function convergedCluster(group: CompiledGroup, overrides: Partial<PlanInput> = {}): PlanInput {
  return converge(input(group, overrides)).state;
}

export function actionsOf(plan: Plan, kind?: string): { wave: number; hostId: string; kind: string }[] {
  return plan.waves.flatMap((wave) =>
    wave.actions
      .filter((action) => kind === undefined || action.kind === kind)
      .flatMap((action): { wave: number; hostId: string; kind: string }[] =>
        action.kind === 'notify'
          ? action.hostIds.map((hostId) => ({ wave: wave.index, hostId, kind: action.kind }))
          : [{ wave: wave.index, hostId: action.hostId, kind: action.kind }],
      ),
  );
}

/** Replaces hosts in a cluster (same id) with changes applied. */
export function withHosts(
  state: PlanInput,
  change: (host: ActualHost) => Partial<ActualHost> | undefined,
): PlanInput {
  return { ...state, hosts: state.hosts.map((host) => ({ ...host, ...change(host) })) };
}
