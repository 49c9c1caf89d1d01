import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type {
  ActualHost,
  CompiledGroup,
  CompiledHostType,
  DesiredHostState,
  HostTypeDefinition,
} from '../shared/groups/model.ts';
import { type PlanInput, planGroup } from '../shared/groups/planner.ts';
import { effectiveRules } from '../shared/rules/defaults.ts';
import { emit as defaultEmit, round } from './output.ts';

type Emit = typeof defaultEmit;

const SIZES = [1_000, 10_000, 100_000];
const REPEATS = 5;

/**
 * Planning time of a media rollout over a realistic voice group (db ← queue, media ← call routers, media behind
 * load balancers), with a share of hosts carrying calls, a few failed and a few still draining: every part of
 * the planner runs (replacement, drains, budgeted batches, load balancer recomputation, notifications).
 */
export async function run(emit: Emit = defaultEmit): Promise<void> {
  const collectGarbage = garbageCollector();
  planGroup(scenario(SIZES[0] as number)); // warm up the JIT before measuring anything
  const times = new Map<number, number>();
  const cpuTimes = new Map<number, number>();
  for (const hosts of SIZES) {
    const input = scenario(hosts);
    const samples: number[] = [];
    const cpu: number[] = [];
    let waves = 0;
    for (let i = 0; i < REPEATS; i += 1) {
      collectGarbage();
      const started = performance.now();
      const cpuBefore = process.cpuUsage();
      const plan = planGroup(input);
      samples.push(performance.now() - started);
      const used = process.cpuUsage(cpuBefore);
      cpu.push((used.user + used.system) / 1000);
      waves = plan.waves.length;
    }
    const ms = median(samples);
    times.set(hosts, ms);
    cpuTimes.set(hosts, median(cpu));
    // CPU time next to wall time: on a shared machine the wall clock also counts other processes' turns.
    emit({
      name: 'planner.plan',
      value: round(ms, 1),
      unit: 'ms',
      hosts,
      waves,
      cpuMs: round(median(cpu), 1),
    });
  }
  const growth = (times.get(100_000) ?? 0) / (times.get(10_000) ?? 1);
  const cpuGrowth = (cpuTimes.get(100_000) ?? 0) / (cpuTimes.get(10_000) ?? 1);
  emit({
    name: 'planner.growth',
    value: round(growth, 2),
    unit: 'x',
    from: 10_000,
    to: 100_000,
    target: 12,
    cpu: round(cpuGrowth, 2),
  });
}

/**
 * Each sample starts from a clean heap, so it does not pay for collecting the previous sample's plan (a
 * reconcile Lambda plans once per invocation).
 */
function garbageCollector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc');
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function hostType(
  name: string,
  level: number,
  desired: number,
  definition: Omit<HostTypeDefinition, 'roles' | 'instanceType'>,
): CompiledHostType {
  return { name, level, desired, roles: [name], instanceType: 'c7g.large', count: desired, ...definition };
}

export function voiceGroupOf(hosts: number): CompiledGroup {
  const media = Math.round(hosts * 0.55);
  const routers = Math.round(hosts * 0.35);
  const queues = Math.max(1, Math.round(hosts * 0.05));
  const balancers = 8;
  const dbs = hosts - media - routers - queues - balancers;
  const types = [
    hostType('db', 0, dbs, { services: { db: { version: '15', port: 5432 } } }),
    hostType('queue', 0, queues, { services: { queue: { version: '3.12', port: 5672 } } }),
    hostType('media', 1, media, {
      services: { media: { version: '1.0', port: 7000, config: { codec: 'opus' } } },
    }),
    hostType('media-lb', 2, balancers, {
      services: { lb: { version: '1.4', port: 8080 } },
      balances: ['media'],
    }),
    hostType('router', 2, routers, { services: { 'call-router': { version: '3.1', port: 5060 } } }),
  ];
  return {
    name: 'voice',
    definitionVersion: 1,
    hostTypes: Object.fromEntries(types.map((type) => [type.name, type])),
    startOrder: ['db', 'queue', 'media', 'media-lb', 'router'],
    serviceLevels: [['db', 'lb', 'queue'], ['media'], ['call-router']],
    dependents: { db: ['media'], queue: ['call-router'], media: ['call-router'], lb: [], 'call-router': [] },
    serviceHosts: {
      db: ['db'],
      queue: ['queue'],
      media: ['media'],
      lb: ['media-lb'],
      'call-router': ['router'],
    },
    balancedBy: { media: ['media-lb'], db: [], queue: [], lb: [], 'call-router': [] },
    configuration: {
      rollout: { wave: 'max(1, 10%)', surgeFirst: true, convergenceTimeoutSeconds: 300 },
      drain: { waitForSessions: true, timeoutSeconds: 900, onTimeout: 'proceed' },
      disruptionBudget: 'max(1, 5%)',
      rules: [],
    },
    rules: effectiveRules([]),
  };
}

/** A converged group of `total` hosts, then: a third carry calls, 1 in 1000 failed, 1 in 500 draining. */
export function scenario(total: number): PlanInput {
  const group = voiceGroupOf(total);
  const now = '2026-11-28T12:00:00.000Z';
  const hosts: ActualHost[] = [];
  const desired: Record<string, DesiredHostState> = {};
  let n = 0;
  for (const type of Object.values(group.hostTypes)) {
    for (let i = 1; i <= type.desired; i += 1) {
      n += 1;
      const hostId = `${type.name}-${i}`;
      const status = n % 1000 === 7 ? 'failed' : n % 500 === 3 ? 'draining' : 'running';
      const state: DesiredHostState = {
        hostId,
        group: group.name,
        hostType: type.name,
        stateVersion: 3,
        services: type.services,
        config: {},
        mode: status === 'draining' ? 'draining' : 'running',
      };
      desired[hostId] = state;
      hosts.push({
        hostId,
        hostType: type.name,
        status,
        software: Object.fromEntries(
          Object.entries(type.services).map(([name, spec]) => [name, spec.version]),
        ),
        appliedStateVersion: 3,
        assignedStateVersion: 3,
        liveSessions: n % 3 === 0 ? 12 : 0,
        load: (n % 10) / 10,
        ...(status === 'draining' ? { drainingSince: '2026-11-28T11:58:00.000Z' } : {}),
        address: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
        endpoints: Object.fromEntries(
          Object.entries(type.services).map(([name, spec]) => [
            name,
            `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}:${spec.port}`,
          ]),
        ),
      });
    }
  }
  const members = hosts
    .filter((host) => host.hostType === 'media' && host.status === 'running')
    .map((host) => host.endpoints?.media as string);
  for (const state of Object.values(desired)) {
    if (state.hostType === 'media-lb') state.upstreams = { media: members };
  }
  // In the order the host store lists a group (by id), as the reconcile's loader hands them over.
  hosts.sort((a, b) => (a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0));
  return {
    group,
    running: true,
    hosts,
    desired,
    rollout: { id: 'bench', service: 'media', version: '2.0', select: 'all' },
    now,
    newHostId: (hostType, ordinal) => `${hostType}-${ordinal}`,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
