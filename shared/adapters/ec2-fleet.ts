import { createHash } from 'node:crypto';
import {
  DescribeInstancesCommand,
  type EC2Client,
  type Filter,
  type Instance,
  type InstanceStateName,
  RebootInstancesCommand,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  type Tag,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { NotFoundError, ValidationError } from '../errors.ts';
import { FLEET_TAGS } from '../groups/fleet-tags.ts';
import type { FleetInstance, FleetPort, LaunchRequest } from '../groups/ports.ts';
import { renderUserData } from '../groups/user-data.ts';

export { FLEET_TAGS };

export interface Ec2FleetOptions {
  client: EC2Client;
  /** The snapshot bucket, handed to each agent. */
  bucket: string;
  /** `s3://bucket/key.tar.gz` of the agent artifact the boot script installs. */
  agentArtifactUrl: string;
  /** PEM of the control plane's public key (KMS GetPublicKey, as PEM): hosts verify every state with it. */
  controlPublicKeyPem: string;
  /** Instance profile for the hosts: an ARN, or a name. Absent: the launch template's, if any. */
  instanceProfile?: string;
  /**
   * Tags every host with `fleetfold:stack` and sees only hosts so tagged, so two stacks in one account
   * never touch each other's instances (the IAM policy enforces the same tag).
   */
  stack?: string;
  /** Used when the request names neither an image nor a launch template. */
  defaultImage?: string;
  /** Hosts are spread over these subnets by host id (one per AZ gives multi-AZ placement). */
  subnetIds?: readonly string[];
  securityGroupIds?: readonly string[];
  /** Extra agent settings written into the host's agent.env. */
  agentEnv?: Readonly<Record<string, string>>;
}

/** States in which an instance still is (or will be) the host; `shutting-down` is already on its way out. */
const LIVE_STATES: InstanceStateName[] = ['pending', 'running', 'stopping', 'stopped'];

/**
 * Same (host, target state version) → same token: EC2 answers a repeated RunInstances with the instance the
 * first call made, so a retried wave launches nothing twice. Hex SHA-256 is exactly EC2's 64-character limit.
 */
export function launchClientToken(hostId: string, stateVersion: number): string {
  return createHash('sha256').update(`fleetfold-launch\n${hostId}\n${stateVersion}`).digest('hex');
}

/** EC2 as the fleet: one instance per host, found again through its `fleetfold:host-id` tag. */
export class Ec2Fleet implements FleetPort {
  constructor(private readonly options: Ec2FleetOptions) {}

  async launch(request: LaunchRequest): Promise<FleetInstance> {
    // The token only protects for a while after the first call; the tag lookup covers a retry after that.
    const [existing] = await this.findLive(request.hostId);
    if (existing) return existing;

    const response = await this.options.client.send(new RunInstancesCommand(this.runInput(request)));
    const instance = response.Instances?.[0];
    const mapped = instance && toFleetInstance(instance, request.hostId);
    if (!mapped) throw new Error(`RunInstances for host ${request.hostId} returned no instance`);
    return mapped;
  }

  async terminate(hostId: string): Promise<void> {
    const live = await this.findLive(hostId);
    if (live.length === 0) return;
    await this.options.client.send(
      new TerminateInstancesCommand({ InstanceIds: live.map((instance) => instance.instanceId) }),
    );
  }

  async reboot(hostId: string): Promise<void> {
    const running = (await this.findLive(hostId)).filter((instance) => instance.state === 'running');
    if (running.length === 0) throw new NotFoundError(`host ${hostId} has no running instance`, { hostId });
    await this.options.client.send(
      new RebootInstancesCommand({ InstanceIds: running.map((instance) => instance.instanceId) }),
    );
  }

  describe(group: string): Promise<FleetInstance[]> {
    return this.find([{ Name: `tag:${FLEET_TAGS.group}`, Values: [group] }]);
  }

  /** The group (and host) of one of this stack's instances; undefined for any other instance. */
  groupOfInstance(instanceId: string): Promise<InstanceOwner | undefined> {
    return new Ec2InstanceOwners(this.options).groupOfInstance(instanceId);
  }

  private runInput(request: LaunchRequest): RunInstancesCommandInput {
    const image = request.image ?? this.options.defaultImage;
    if (!request.launchTemplate && !image) {
      throw new ValidationError(`host ${request.hostId} names neither an image nor a launch template`, {
        hostId: request.hostId,
      });
    }
    const userData = renderUserData({
      hostId: request.hostId,
      group: request.group,
      hostType: request.hostType,
      roles: request.roles,
      bucket: this.options.bucket,
      secretRef: request.secretRef,
      agentArtifactUrl: this.options.agentArtifactUrl,
      controlPublicKeyPem: this.options.controlPublicKeyPem,
      ...(this.options.agentEnv ? { extraEnv: this.options.agentEnv } : {}),
    });
    const tags = this.tagsFor(request);
    const subnet = pickSubnet(request.hostId, this.options.subnetIds);
    const profile = this.options.instanceProfile;
    return {
      MinCount: 1,
      MaxCount: 1,
      ClientToken: launchClientToken(request.hostId, request.stateVersion),
      InstanceType: request.instanceType as RunInstancesCommandInput['InstanceType'],
      ...(request.launchTemplate ? { LaunchTemplate: launchTemplate(request.launchTemplate) } : {}),
      ...(image ? { ImageId: image } : {}),
      ...(profile
        ? { IamInstanceProfile: profile.startsWith('arn:') ? { Arn: profile } : { Name: profile } }
        : {}),
      ...(subnet ? { SubnetId: subnet } : {}),
      ...(this.options.securityGroupIds?.length
        ? { SecurityGroupIds: [...this.options.securityGroupIds] }
        : {}),
      // IMDSv2 only, and one hop: a container on the host cannot reach the instance's credentials.
      MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1, HttpEndpoint: 'enabled' },
      UserData: Buffer.from(userData, 'utf8').toString('base64'),
      TagSpecifications: [
        { ResourceType: 'instance', Tags: tags },
        { ResourceType: 'volume', Tags: tags },
      ],
    };
  }

  private tagsFor(request: LaunchRequest): Tag[] {
    return [
      { Key: 'Name', Value: request.hostId },
      { Key: FLEET_TAGS.group, Value: request.group },
      { Key: FLEET_TAGS.hostType, Value: request.hostType },
      { Key: FLEET_TAGS.hostId, Value: request.hostId },
      ...(this.options.stack ? [{ Key: FLEET_TAGS.stack, Value: this.options.stack }] : []),
    ];
  }

  private findLive(hostId: string): Promise<FleetInstance[]> {
    return this.find([
      { Name: `tag:${FLEET_TAGS.hostId}`, Values: [hostId] },
      { Name: 'instance-state-name', Values: LIVE_STATES },
    ]);
  }

  private async find(filters: Filter[]): Promise<FleetInstance[]> {
    const scoped: Filter[] = [
      ...filters,
      ...(this.options.stack ? [{ Name: `tag:${FLEET_TAGS.stack}`, Values: [this.options.stack] }] : []),
    ];
    const found: FleetInstance[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.options.client.send(
        new DescribeInstancesCommand({
          Filters: scoped,
          ...(nextToken ? { NextToken: nextToken } : {}),
        }),
      );
      for (const reservation of page.Reservations ?? []) {
        for (const instance of reservation.Instances ?? []) {
          const mapped = toFleetInstance(instance);
          if (mapped) found.push(mapped);
        }
      }
      nextToken = page.NextToken;
    } while (nextToken);
    return found;
  }
}

export interface InstanceOwner {
  group: string;
  hostId?: string;
}

/**
 * Whose an instance is, from its tags: what the monitor needs of EC2 to act on an instance state-change event,
 * without the launch settings of the fleet. An instance without the fleetfold group tag, or (when `stack` is
 * set) with another stack's tag, is not this stack's: undefined, as for an instance EC2 no longer knows.
 */
export class Ec2InstanceOwners {
  constructor(private readonly options: Pick<Ec2FleetOptions, 'client' | 'stack'>) {}

  async groupOfInstance(instanceId: string): Promise<InstanceOwner | undefined> {
    let instance: Instance | undefined;
    try {
      const page = await this.options.client.send(
        new DescribeInstancesCommand({ InstanceIds: [instanceId] }),
      );
      instance = page.Reservations?.flatMap((reservation) => reservation.Instances ?? []).find(
        (candidate) => candidate.InstanceId === instanceId,
      );
    } catch (error) {
      const name = (error as { name?: string }).name ?? '';
      if (name.startsWith('InvalidInstanceID')) return undefined;
      throw error;
    }
    const tag = (key: string) => instance?.Tags?.find((candidate) => candidate.Key === key)?.Value;
    const group = tag(FLEET_TAGS.group);
    if (!group) return undefined;
    if (this.options.stack !== undefined && tag(FLEET_TAGS.stack) !== this.options.stack) return undefined;
    const hostId = tag(FLEET_TAGS.hostId);
    return { group, ...(hostId ? { hostId } : {}) };
  }
}

function launchTemplate(nameOrId: string): NonNullable<RunInstancesCommandInput['LaunchTemplate']> {
  return /^lt-[0-9a-f]+$/.test(nameOrId)
    ? { LaunchTemplateId: nameOrId, Version: '$Default' }
    : { LaunchTemplateName: nameOrId, Version: '$Default' };
}

/** Stable per host, so a retried launch asks for the same subnet (a different one would break the ClientToken). */
function pickSubnet(hostId: string, subnets: readonly string[] | undefined): string | undefined {
  if (!subnets?.length) return undefined;
  const index = createHash('sha256').update(hostId).digest().readUInt32BE(0) % subnets.length;
  return subnets[index];
}

const STATE_OF: Record<InstanceStateName, FleetInstance['state']> = {
  pending: 'pending',
  running: 'running',
  stopping: 'stopping',
  stopped: 'stopped',
  'shutting-down': 'stopping',
  terminated: 'terminated',
};

function toFleetInstance(instance: Instance, fallbackHostId?: string): FleetInstance | undefined {
  const hostId = instance.Tags?.find((tag) => tag.Key === FLEET_TAGS.hostId)?.Value ?? fallbackHostId;
  if (!hostId || !instance.InstanceId) return undefined;
  const stateName = instance.State?.Name;
  return {
    hostId,
    instanceId: instance.InstanceId,
    state: stateName ? STATE_OF[stateName] : 'pending',
  };
}
