/**
 * The host stream's commands for callers that hold ports, not a runner: each goes through runCommand with the
 * host decider and the host projection.
 */
import { type CommandDeps, runCommand } from '../command/runner.ts';
import { NotFoundError } from '../errors.ts';
import {
  type AssignedBy,
  type HostDegraded,
  type HostLost,
  hostStream,
  type InstanceTerminated,
} from '../events.ts';
import type { DesiredHostState } from '../groups/model.ts';
import type { HostRecord, HostStore } from '../ports.ts';
import { type HostCommand, hostDecider } from './host-decider.ts';
import { hostProjection } from './host-projection.ts';

export interface HostCommandDeps extends CommandDeps {
  hosts: HostStore;
}

async function run(deps: HostCommandDeps, hostId: string, command: HostCommand) {
  return runCommand(
    deps,
    { stream: hostStream(hostId), decider: hostDecider, projection: hostProjection(deps.hosts, hostId) },
    command,
  );
}

/** Records what the host is told; a state at or below the one it was last assigned changes nothing. */
export async function assignState(
  deps: HostCommandDeps,
  state: DesiredHostState,
  by: AssignedBy,
): Promise<{ recorded: boolean; host: HostRecord | undefined }> {
  const result = await run(deps, state.hostId, { type: 'Assign', state, by, at: deps.now() });
  return { recorded: result.appended.length > 0, host: result.state };
}

/** Records that the host's instance ended, once per instance; returns the projection when it was recorded. */
export async function recordTermination(
  deps: HostCommandDeps,
  hostId: string,
  termination: Omit<InstanceTerminated['data'], 'at'>,
): Promise<HostRecord | undefined> {
  const result = await run(deps, hostId, { type: 'RecordTermination', termination, at: deps.now() });
  return result.appended.length > 0 ? result.state : undefined;
}

/** Records that the host went silent and is treated as gone; once, and not for a host whose instance ended. */
export async function markLost(
  deps: HostCommandDeps,
  hostId: string,
  loss: Omit<HostLost['data'], 'at'>,
): Promise<HostRecord | undefined> {
  const result = await run(deps, hostId, { type: 'MarkLost', loss, at: deps.now() });
  return result.appended.length > 0 ? result.state : undefined;
}

/** Records that a dependency of the host's services has no healthy provider; the same dependency again is nothing. */
export async function markDegraded(
  deps: HostCommandDeps,
  hostId: string,
  degradation: Omit<HostDegraded['data'], 'at'>,
): Promise<HostRecord | undefined> {
  const result = await run(deps, hostId, { type: 'MarkDegraded', degradation, at: deps.now() });
  return result.appended.length > 0 ? result.state : undefined;
}

/** Records that the dependency that degraded the host is healthy again; nothing when it is not degraded. */
export async function markRecovered(deps: HostCommandDeps, hostId: string): Promise<HostRecord | undefined> {
  const result = await run(deps, hostId, { type: 'MarkRecovered', at: deps.now() });
  return result.appended.length > 0 ? result.state : undefined;
}

/**
 * Ends the host's registration: its projection drops the encrypted secret and the ingest refuses its
 * snapshots as an unknown host. Once; a host that was never registered has nothing to retire.
 */
export async function retireHost(
  deps: HostCommandDeps,
  hostId: string,
  reason: string,
): Promise<HostRecord | undefined> {
  try {
    const result = await run(deps, hostId, { type: 'Retire', reason, at: deps.now() });
    return result.appended.length > 0 ? result.state : undefined;
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}
