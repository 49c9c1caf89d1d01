/**
 * Drift: what a host was told (its latest StateAssigned) against what it last reported (StateObserved), both
 * in the terms a host reports in. Pure: the host state comes in as an argument.
 */
import { type Change, diff } from '../diff.ts';
import { type HostState, statusOf } from '../fold.ts';
import type { DesiredHostState } from '../groups/model.ts';
import type { HostStatus } from '../schemas.ts';

/** The parts of a snapshot an assignment decides; drift compares exactly these and nothing else. */
export interface ReportedParts {
  status?: HostStatus;
  config?: { values: Record<string, string> };
  software?: Record<string, { version: string }>;
  appliedStateVersion?: number;
}

/**
 * What a host that applied `state` reports: its mode as its status, the state's config values, each service
 * at the state's version, and the state's version as the one it applied (see agent/apply: the runtime takes
 * them over one for one).
 */
export function reportedFor(state: DesiredHostState): ReportedParts {
  return {
    status: state.mode,
    config: { values: { ...state.config } },
    software: Object.fromEntries(
      Object.entries(state.services).map(([service, spec]) => [service, { version: spec.version }]),
    ),
    appliedStateVersion: state.stateVersion,
  };
}

/**
 * The same parts of what the host last reported. Its status is the host's status as the stream has it, so an
 * instance that ended (`failed`, `stopped`) or a host that never reported (`pending`) shows as drift.
 */
export function reportedBy(host: HostState): ReportedParts {
  const { observed } = host;
  return {
    status: statusOf(host),
    ...(observed
      ? {
          config: { values: { ...observed.config.values } },
          software: Object.fromEntries(
            Object.entries(observed.software).map(([service, instance]) => [
              service,
              { version: instance.version },
            ]),
          ),
        }
      : {}),
    ...(observed?.appliedStateVersion === undefined
      ? {}
      : { appliedStateVersion: observed.appliedStateVersion }),
  };
}

export interface Drift {
  /** The state version the host was last assigned. */
  assignedVersion: number;
  /** The state version the host reports having applied (0 when it reports none). */
  observedVersion: number;
  inSync: boolean;
  /** Turn what the host reports into what it was assigned (`old`: reported, `new`: assigned), by path. */
  changes: Change[];
}

/** The host's drift from its latest assignment; undefined when it was never assigned a state. */
export function driftOf(host: HostState): Drift | undefined {
  const assigned = host.assigned?.state;
  if (!assigned) return undefined;
  const changes = diff(reportedBy(host), reportedFor(assigned));
  return {
    assignedVersion: assigned.stateVersion,
    observedVersion: host.observed?.appliedStateVersion ?? 0,
    inSync: changes.length === 0,
    changes,
  };
}
