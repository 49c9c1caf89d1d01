/*
 * Groups and hosts as the monitor finds them: a small web group (web hosts behind a load balancer), its hosts
 * converged (running what they were told, reporting, routed by the balancer), and stores that count requests.
 */
import { compileGroup } from '../../shared/groups/compile.ts';
import type { GroupDocument } from '../../shared/groups/group-state.ts';
import type { CompiledGroup, DesiredHostState, GroupDefinition, Rule } from '../../shared/groups/model.ts';
import type { HostRecord } from '../../shared/ports.ts';

export interface WebGroupOptions {
  /** Web hosts; default 2. */
  web?: number;
  /** A load balancer in front of the web hosts; default true. */
  balanced?: boolean;
  rules?: Rule[];
}

export const WEB_PORT = 8080;
export const LB_PORT = 80;

export function webGroupDefinition(name: string, options: WebGroupOptions = {}): GroupDefinition {
  const balanced = options.balanced ?? true;
  return {
    name,
    hostTypes: {
      web: {
        roles: ['web'],
        instanceType: 't4g.small',
        count: options.web ?? 2,
        services: { web: { version: '1.0.0', port: WEB_PORT } },
      },
      ...(balanced
        ? {
            lb: {
              roles: ['lb'],
              instanceType: 't4g.small',
              count: 1,
              services: { lb: { version: '1.0.0', port: LB_PORT } },
              balances: ['web'],
            },
          }
        : {}),
    },
    dependencies: { web: [], ...(balanced ? { lb: [] } : {}) },
    configuration: {
      rollout: { wave: 'max(1, 25%)', surgeFirst: true, convergenceTimeoutSeconds: 120 },
      drain: { waitForSessions: true, timeoutSeconds: 30, onTimeout: 'proceed' },
      disruptionBudget: 'max(1, 25%)',
      rules: options.rules ?? [],
    },
  };
}

/** A running group's document as its stream would project it (for seeding stores without the stream). */
export function runningGroupDocument(definition: GroupDefinition): GroupDocument {
  return {
    definition,
    compiled: compileGroup(definition, 1),
    running: true,
    definitionVersion: 1,
    streamVersion: 2,
    runVersion: 2,
  };
}

/** `${group}-${hostType}-${n}`, n from 1, as the reconcile names hosts. */
export function hostIdOf(group: string, hostType: string, n: number): string {
  return `${group}-${hostType}-${n}`;
}

/** Distinct per host across a large fleet: 10.x.y.z from a running number. */
function addressOf(index: number): string {
  return `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`;
}

/**
 * Every host the group wants, running what it was told, heard from at `now`; the load balancer routes to every
 * web host. `address` numbers hosts fleet-wide (pass a running offset when building many groups).
 */
export function convergedHosts(compiled: CompiledGroup, now: Date, addressOffset = 0): HostRecord[] {
  const at = now.toISOString();
  let address = addressOffset;
  const records: HostRecord[] = [];
  for (const type of Object.values(compiled.hostTypes)) {
    for (let n = 1; n <= type.desired; n += 1) {
      const hostId = hostIdOf(compiled.name, type.name, n);
      address += 1;
      const state: DesiredHostState = {
        hostId,
        group: compiled.name,
        hostType: type.name,
        stateVersion: 1,
        services: structuredClone(type.services),
        config: {},
        mode: 'running',
      };
      records.push({
        hostId,
        group: compiled.name,
        hostType: type.name,
        roles: [...type.roles],
        role: type.roles[0] as string,
        registeredAt: at,
        version: 3,
        lastChangeSeq: 1,
        lastSeq: 1,
        status: 'running',
        lastSeen: at,
        observedAt: at,
        observedVersion: 3,
        observed: {
          status: 'running',
          group: compiled.name,
          hostType: type.name,
          roles: [...type.roles],
          ips: { internal: addressOf(address) },
          capacity: { sessions: 100 },
          config: { values: {} },
          software: Object.fromEntries(
            Object.entries(type.services).map(([service, spec]) => [
              service,
              {
                version: spec.version,
                status: 'running' as const,
                ...(spec.port ? { port: spec.port } : {}),
              },
            ]),
          ),
          operational: { dataRefs: [], bands: { load: 0, sessions: { voice: 0, sms: 0, mms: 0, video: 0 } } },
          appliedStateVersion: 1,
        },
        assigned: { state, assignedAt: at, by: { run: 'start' }, version: 2 },
        metrics: { load: 0.2, sessions: { voice: 0, sms: 0, mms: 0, video: 0 } },
        secretCiphertext: 'unused',
      });
    }
  }
  // The balancers were told every member they front, as the planner tells them.
  const endpoints = new Map<string, string[]>();
  for (const record of records) {
    for (const [service, instance] of Object.entries(record.observed?.software ?? {})) {
      if ((compiled.balancedBy[service] ?? []).length === 0 || instance.port === undefined) continue;
      const list = endpoints.get(service) ?? [];
      list.push(`${record.observed?.ips.internal}:${instance.port}`);
      endpoints.set(service, list);
    }
  }
  for (const record of records) {
    const balances = compiled.hostTypes[record.hostType]?.balances ?? [];
    if (balances.length === 0 || !record.assigned) continue;
    record.assigned.state.upstreams = Object.fromEntries(
      balances.map((service) => [service, [...(endpoints.get(service) ?? [])].sort()]),
    );
  }
  return records;
}

/** Request counts by "store.method", through a Proxy around each store. */
export class RequestCounts {
  readonly counts = new Map<string, number>();

  wrap<T extends object>(name: string, target: T): T {
    return new Proxy(target, {
      get: (object, property, receiver) => {
        const value = Reflect.get(object, property, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const key = `${name}.${String(property)}`;
          this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
          return (value as (...inner: unknown[]) => unknown).apply(object, args);
        };
      },
    });
  }

  total(): number {
    let sum = 0;
    for (const count of this.counts.values()) sum += count;
    return sum;
  }

  writes(): number {
    let sum = 0;
    for (const [key, count] of this.counts)
      if (/\.(put|append|create|save|touch|delete)$/.test(key)) sum += count;
    return sum;
  }

  reset(): void {
    this.counts.clear();
  }
}
