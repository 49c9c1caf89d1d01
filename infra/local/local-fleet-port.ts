import { NotFoundError } from '../../shared/errors.ts';
import type { FleetInstance, FleetPort, LaunchRequest } from '../../shared/groups/ports.ts';
import { type HostSpec, type LocalFleet, type LocalInstance, localInstanceId } from './local-fleet.ts';

export interface LocalFleetPortOptions {
  fleet: LocalFleet;
  /**
   * Makes the host known to the control plane (POST /hosts) and puts its secret in a file. Called once per
   * host for the life of this port, so it must also cope with a host registered by an earlier run.
   */
  register(request: LaunchRequest): Promise<{ secretFile: string }>;
  /** What the agent needs beyond its identity: e.g. its inbox queue URL, the control plane's public key file. */
  agentEnv(hostId: string): Record<string, string> | Promise<Record<string, string>>;
  /**
   * How long a stopping agent gets between SIGTERM and SIGKILL.
   * @default 10 s (LocalFleet's default)
   */
  stopTimeoutMs?: number;
}

interface PendingLaunch {
  group: string;
  instanceId: string;
  done: Promise<FleetInstance>;
}

/**
 * The fleet port over local processes. A process that has ended, asked to or not, reads as `terminated`:
 * nothing restarts it, and a dead EC2 host is replaced rather than started again.
 */
export class LocalFleetPort implements FleetPort {
  private readonly secretFiles = new Map<string, string>();
  private readonly pending = new Map<string, PendingLaunch>();

  constructor(private readonly options: LocalFleetPortOptions) {}

  /**
   * Any live process of the host is the answer, whatever the state version, as EC2's host-id lookup is;
   * concurrent calls for one host share a single launch.
   */
  launch(request: LaunchRequest): Promise<FleetInstance> {
    const inFlight = this.pending.get(request.hostId);
    if (inFlight) return inFlight.done;
    const current = this.options.fleet.get(request.hostId);
    if (current && current.state !== 'exited') return Promise.resolve(toFleetInstance(current));

    const instanceId = localInstanceId(request.hostId, this.options.fleet.launchCount(request.hostId) + 1);
    const done = this.start(request).finally(() => this.pending.delete(request.hostId));
    this.pending.set(request.hostId, { group: request.group, instanceId, done });
    return done;
  }

  async terminate(hostId: string): Promise<void> {
    await this.settled(hostId);
    const current = this.options.fleet.get(hostId);
    if (!current || current.state === 'exited') return;
    await this.options.fleet.stop(hostId, this.options.stopTimeoutMs);
  }

  async reboot(hostId: string): Promise<void> {
    await this.settled(hostId);
    const current = this.options.fleet.get(hostId);
    if (current?.state !== 'running') {
      throw new NotFoundError(`host ${hostId} has no running instance`, { hostId });
    }
    await this.options.fleet.reboot(hostId, this.options.stopTimeoutMs);
  }

  async describe(group: string): Promise<FleetInstance[]> {
    const byHost = new Map<string, FleetInstance>();
    for (const instance of this.options.fleet.list()) {
      if (instance.spec.group === group) byHost.set(instance.hostId, toFleetInstance(instance));
    }
    for (const [hostId, launch] of this.pending) {
      if (launch.group === group)
        byHost.set(hostId, { hostId, instanceId: launch.instanceId, state: 'pending' });
    }
    return [...byHost.values()];
  }

  private async start(request: LaunchRequest): Promise<FleetInstance> {
    let secretFile = this.secretFiles.get(request.hostId);
    if (secretFile === undefined) {
      ({ secretFile } = await this.options.register(request));
      this.secretFiles.set(request.hostId, secretFile);
    }
    const spec: HostSpec = {
      hostId: request.hostId,
      group: request.group,
      hostType: request.hostType,
      roles: [...request.roles],
      // The services come with the desired state the agent receives, not with the launch.
      services: {},
      secretFile,
      env: await this.options.agentEnv(request.hostId),
    };
    return toFleetInstance(this.options.fleet.launch(spec));
  }

  /** Lets a launch in flight finish first, so a terminate or reboot never races the process it is about. */
  private async settled(hostId: string): Promise<void> {
    await this.pending.get(hostId)?.done.catch(() => undefined);
  }
}

function toFleetInstance(instance: LocalInstance): FleetInstance {
  return {
    hostId: instance.hostId,
    instanceId: instance.instanceId,
    state: instance.state === 'exited' ? 'terminated' : instance.state,
  };
}
