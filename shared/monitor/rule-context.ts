/**
 * What the monitor's rules see of a group: its desired state (the group document) beside its actual state
 * (the host projections), as one RuleContext. Pure: the records and `now` come in as arguments, nothing is read.
 */
import { withEffectiveRules } from '../groups/compile.ts';
import type { GroupDocument } from '../groups/group-state.ts';
import type { CompiledGroup } from '../groups/model.ts';
import {
  DEFAULT_LIVENESS,
  type EffectiveLiveness,
  isOverdue,
  type LivenessPolicy,
  silentSeconds,
} from '../hosts/liveness.ts';
import type { HostRecord } from '../ports.ts';
import { REPLACEMENT_WINDOW_MS } from '../reconcile/crash-alarm.ts';
import { isTerminated } from '../reconcile/host-classes.ts';
import type { CompiledRule, RuleChannel, RuleContext, RuleHost } from '../rules/types.ts';

/** Service restarts the control plane ordered within this window count as `host.restarts`. */
export const RESTART_WINDOW_MS = 10 * 60 * 1000;

export { RESTART_REASON } from '../fold.ts';

/**
 * The group's liveness policy: its configuration's, else the default, with the ingest's heartbeat coalescing
 * window as grace (see EffectiveLiveness). Read through a wider type so a configuration written before the
 * policy existed reads the same.
 */
export function livenessOf(
  group: Pick<GroupDocument, 'compiled'>,
  heartbeatCoalesceSeconds: number,
): EffectiveLiveness {
  const configured = (group.compiled.configuration as { liveness?: Partial<LivenessPolicy> }).liveness;
  return { ...DEFAULT_LIVENESS, ...configured, graceSeconds: heartbeatCoalesceSeconds };
}

/** The group's effective rules: the defaults, then its own (compiled here for a document from before rules were). */
export function rulesOf(group: Pick<GroupDocument, 'compiled' | 'definition'>): readonly CompiledRule[] {
  return withEffectiveRules(group.compiled, group.definition).rules;
}

/** Whether the record is history: its instance ended (and it has not reported since) or it was retired. */
export function isRetired(record: HostRecord): boolean {
  return isTerminated(record) || record.retired !== undefined;
}

export function ruleContext(
  group: GroupDocument,
  records: readonly HostRecord[],
  now: Date,
  liveness: EffectiveLiveness,
): RuleContext {
  const { compiled } = group;
  const current = records.filter((record) => !isRetired(record));
  const routed = routedEndpoints(compiled, current);
  const balancedTypes = balancedHostTypes(compiled);
  return {
    group: {
      name: compiled.name,
      running: group.running,
      definitionVersion: group.definitionVersion,
      desired: Object.fromEntries(Object.values(compiled.hostTypes).map((type) => [type.name, type.desired])),
      crashes: crashesByType(compiled, records, now),
    },
    hosts: current.map((record) => ruleHost(record, now, liveness, routed, balancedTypes)),
  };
}

function ruleHost(
  record: HostRecord,
  now: Date,
  liveness: EffectiveLiveness,
  routed: ReadonlySet<string>,
  balancedTypes: ReadonlyMap<string, readonly string[]>,
): RuleHost {
  // The reconcile records a lost host; until it has, the monitor sees what the reconcile will record.
  const status = record.status !== 'lost' && isOverdue(record, now, liveness) ? 'lost' : record.status;
  const software = record.observed?.software ?? {};
  const services: RuleHost['services'] = {};
  let failedService = false;
  for (const name in software) {
    const instance = software[name];
    if (!instance) continue;
    services[name] = { status: instance.status, version: instance.version };
    if (instance.status === 'failed') failedService = true;
  }
  const balancedServices = balancedTypes.get(record.hostType) ?? [];
  const endpoints = endpointsOf(record);
  return {
    hostId: record.hostId,
    hostType: record.hostType,
    roles: [...record.roles],
    status,
    lastSeenSeconds: Math.max(0, silentSeconds(record, now)),
    services,
    load: record.metrics?.load ?? 0,
    sessions: sessionsOf(record),
    metrics: metricsOf(record),
    restarts: restartsOf(record, now),
    healthy: status === 'running' && !failedService,
    inLb: balancedServices.some((service) => {
      const endpoint = endpoints[service];
      return endpoint !== undefined && routed.has(routeKey(service, endpoint));
    }),
    balanced: balancedServices.length > 0,
  };
}

/** host type → the services it runs that a load balancer of the group sits in front of. */
function balancedHostTypes(compiled: CompiledGroup): Map<string, string[]> {
  const byType = new Map<string, string[]>();
  for (const type of Object.values(compiled.hostTypes)) {
    const balanced = Object.keys(type.services).filter(
      (service) => (compiled.balancedBy[service] ?? []).length > 0,
    );
    if (balanced.length > 0) byType.set(type.name, balanced.sort());
  }
  return byType;
}

function routeKey(service: string, endpoint: string): string {
  return `${service}\u0000${endpoint}`;
}

/** Every (service, endpoint) some load balancer of the group was told to route to: one pass over its balancers. */
function routedEndpoints(compiled: CompiledGroup, records: readonly HostRecord[]): Set<string> {
  const balancers = new Set(Object.values(compiled.balancedBy).flat());
  const routed = new Set<string>();
  for (const record of records) {
    if (!balancers.has(record.hostType)) continue;
    for (const [service, members] of Object.entries(record.assigned?.state.upstreams ?? {}))
      for (const endpoint of members) routed.add(routeKey(service, endpoint));
  }
  return routed;
}

/**
 * Where each service answers, as the planner names load balancer members: the port the host reports, else the
 * port its assigned state gives the service (shared/groups/planner-load-balancers.ts endpointOf).
 */
function endpointsOf(record: HostRecord): Record<string, string> {
  const address = record.observed?.ips.internal;
  if (!address) return {};
  const endpoints: Record<string, string> = {};
  for (const [service, spec] of Object.entries(record.assigned?.state.services ?? {}))
    if (spec.port !== undefined) endpoints[service] = `${address}:${spec.port}`;
  for (const [service, instance] of Object.entries(record.observed?.software ?? {}))
    if (instance.port !== undefined) endpoints[service] = `${address}:${instance.port}`;
  return endpoints;
}

function sessionsOf(record: HostRecord): Partial<Record<RuleChannel, number>> {
  return { ...(record.metrics?.sessions ?? {}) };
}

/**
 * The host's reported metrics by name: every number the projection keeps, nested ones by dotted path
 * ("load", "sessions.voice"). Hosts report load and sessions today; whatever else they come to report reads
 * the same way.
 */
function metricsOf(record: HostRecord): Record<string, number> {
  const metrics: Record<string, number> = {};
  const walk = (value: object, prefix: string) => {
    for (const key in value) {
      const inner: unknown = (value as Record<string, unknown>)[key];
      if (typeof inner === 'number') {
        if (Number.isFinite(inner)) metrics[prefix + key] = inner;
      } else if (inner !== null && typeof inner === 'object' && !Array.isArray(inner)) {
        walk(inner, `${prefix}${key}.`);
      }
    }
  };
  if (record.metrics) walk(record.metrics, '');
  return metrics;
}

/** Service restarts ordered within the window, from the few the projection keeps. */
function restartsOf(record: HostRecord, now: Date): number {
  const since = now.getTime() - RESTART_WINDOW_MS;
  return (record.restartedAt ?? []).filter((at) => Date.parse(at) >= since).length;
}

/** host type → hosts that died unasked within the window, counted as shared/reconcile/crash-alarm.ts counts them. */
function crashesByType(
  compiled: CompiledGroup,
  records: readonly HostRecord[],
  now: Date,
): Record<string, number> {
  const crashes: Record<string, number> = Object.fromEntries(
    Object.keys(compiled.hostTypes).map((name) => [name, 0]),
  );
  const since = now.getTime() - REPLACEMENT_WINDOW_MS;
  for (const record of records) {
    const terminated = record.terminated;
    if (terminated?.status !== 'failed' || Date.parse(terminated.at) < since) continue;
    crashes[record.hostType] = (crashes[record.hostType] ?? 0) + 1;
  }
  return crashes;
}
