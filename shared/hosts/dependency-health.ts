/**
 * Which hosts of a group are degraded: a service they run depends on a service that no host provides. Pure:
 * the reconcile reads the records, asks this, and records the difference (host-commands markDegraded and
 * markRecovered, both idempotent).
 */
import type { CompiledGroup } from '../groups/model.ts';
import type { HostRecord } from '../ports.ts';
import type { HostStatus } from '../schemas.ts';

export interface Degradation {
  hostId: string;
  /** The dependency that has no healthy provider; undefined when the host should not be degraded. */
  dependency?: string;
  /** The hosts that should provide it, all of them failed (empty when there are none at all). */
  dependencyHosts: string[];
}

/** Hosts whose markings matter: the ones still in service or on their way into or out of it. */
const FINAL: ReadonlySet<HostStatus> = new Set(['pending', 'stopped', 'failed', 'lost']);

/** A provider host that provides nothing: gone, or reporting the service failed. */
const PROVIDES_NOTHING: ReadonlySet<HostStatus> = new Set(['failed', 'lost', 'stopped']);

/**
 * The marking each live host of the group should have. A dependency has failed when every host of the host
 * types that run it is failed, lost or stopped, or reports that service failed, and there is at least one
 * such host or the group wants some. A provider that is still booting (or merely restarting the service) is
 * not a failure: markings would otherwise flap with every rollout of a dependency. A provider that is itself
 * degraded still serves. Where several dependencies have failed, the one the host is already degraded by is
 * kept (no churn between them), else the first by name.
 */
export function degradations(compiled: CompiledGroup, records: readonly HostRecord[]): Degradation[] {
  const group = records.filter((record) => record.group === compiled.name);
  const failedCache = new Map<string, string[] | undefined>();
  const failedProviders = (dependency: string): string[] | undefined => {
    if (!failedCache.has(dependency))
      failedCache.set(dependency, failedDependency(compiled, group, dependency));
    return failedCache.get(dependency);
  };

  return group
    .filter((record) => !FINAL.has(record.status))
    .sort((a, b) => (a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0))
    .map((record) => {
      const failed = dependenciesOf(compiled, record.hostType)
        .map((dependency) => ({ dependency, hosts: failedProviders(dependency) }))
        .filter((entry): entry is { dependency: string; hosts: string[] } => entry.hosts !== undefined);
      const chosen = failed.find((entry) => entry.dependency === record.degradedBy?.dependency) ?? failed[0];
      return chosen
        ? { hostId: record.hostId, dependency: chosen.dependency, dependencyHosts: chosen.hosts }
        : { hostId: record.hostId, dependencyHosts: [] };
    });
}

/** The services the host type's services depend on directly, by name. */
function dependenciesOf(compiled: CompiledGroup, hostType: string): string[] {
  const services = new Set(Object.keys(compiled.hostTypes[hostType]?.services ?? {}));
  const dependencies = Object.entries(compiled.dependents)
    .filter(
      ([dependency, dependents]) => !services.has(dependency) && dependents.some((s) => services.has(s)),
    )
    .map(([dependency]) => dependency);
  return dependencies.sort();
}

/** The failed provider hosts of the dependency when it has failed; undefined while it is provided. */
function failedDependency(
  compiled: CompiledGroup,
  group: readonly HostRecord[],
  dependency: string,
): string[] | undefined {
  const types = compiled.serviceHosts[dependency] ?? [];
  const providers = group.filter((record) => types.includes(record.hostType));
  const providesNothing = (record: HostRecord) =>
    PROVIDES_NOTHING.has(record.status) || record.observed?.software[dependency]?.status === 'failed';
  if (!providers.every(providesNothing)) return undefined;
  const wanted = types.reduce((sum, type) => sum + (compiled.hostTypes[type]?.desired ?? 0), 0);
  if (providers.length === 0 && wanted === 0) return undefined;
  return providers.map((record) => record.hostId).sort();
}
