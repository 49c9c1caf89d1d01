import {
  AddTagsToResourceCommand,
  DeleteParameterCommand,
  ParameterAlreadyExists,
  ParameterNotFound,
  PutParameterCommand,
  type PutParameterCommandInput,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { ValidationError } from '../errors.ts';
import type { HostProvisioner } from '../groups/host-provisioning.ts';
import { SECRET_PARAMETER_TAGS } from '../groups/host-provisioning.ts';
import type { FleetInstance } from '../groups/ports.ts';
import { ensureHostRegistered, type HostIdentity, type RegistrationDeps } from '../host-registration.ts';
import { retireHost } from '../hosts/host-commands.ts';

export interface SsmHostSecretsOptions extends RegistrationDeps {
  ssm: SSMClient;
  /** Parameter name prefix, e.g. `/fleetfold/hosts/`: a host's parameter is `<prefix><hostId>`. */
  prefix: string;
  /** KMS key the SecureString values are encrypted with (the host role may decrypt only through SSM). */
  keyId: string;
  /** `arn:<partition>:ec2:<region>:<account>:instance/`: an instance id after it is the instance's ARN. */
  instanceArnPrefix: string;
  newSecret: () => string;
  now: () => Date;
}

/**
 * EC2 hosts' identities: the registration (event + projection, secret encrypted with the secrets key) and the
 * plaintext secret as an SSM SecureString that only the host's own instance may read. The secret never
 * travels in user data, where anyone allowed to describe the instance could read it.
 */
export class SsmHostSecrets implements HostProvisioner {
  constructor(private readonly options: SsmHostSecretsOptions) {}

  parameterName(hostId: string): string {
    return `${this.options.prefix}${hostId}`;
  }

  async prepare(host: HostIdentity): Promise<string> {
    const { secret } = await ensureHostRegistered(
      this.options,
      host,
      this.options.newSecret,
      this.options.now(),
    );
    const name = this.parameterName(host.hostId);
    const input: PutParameterCommandInput = {
      Name: name,
      Description: `fleetfold: snapshot signing secret of host ${host.hostId}`,
      Type: 'SecureString',
      KeyId: this.options.keyId,
      Value: secret,
      Tier: 'Standard',
    };
    try {
      await this.options.ssm.send(
        new PutParameterCommand({
          ...input,
          Tags: [{ Key: SECRET_PARAMETER_TAGS.hostId, Value: host.hostId }],
        }),
      );
    } catch (error) {
      if (!(error instanceof ParameterAlreadyExists)) throw error;
      // A retry, or a host id used before: the registration's secret is the truth, so it replaces whatever
      // is there. SSM takes no tags with Overwrite; the existing parameter already has its host-id tag.
      await this.options.ssm.send(new PutParameterCommand({ ...input, Overwrite: true }));
    }
    return name;
  }

  async bind(hostId: string, instance: FleetInstance): Promise<void> {
    if (!/^i-[0-9a-f]+$/.test(instance.instanceId)) {
      throw new ValidationError(`host ${hostId}: "${instance.instanceId}" is not an EC2 instance id`, {
        hostId,
        instanceId: instance.instanceId,
      });
    }
    // Replaces the tag of an earlier instance of the same host id, which then can no longer read it.
    await this.options.ssm.send(
      new AddTagsToResourceCommand({
        ResourceType: 'Parameter',
        ResourceId: this.parameterName(hostId),
        Tags: [
          {
            Key: SECRET_PARAMETER_TAGS.instanceArn,
            Value: `${this.options.instanceArnPrefix}${instance.instanceId}`,
          },
        ],
      }),
    );
  }

  async revoke(hostId: string): Promise<void> {
    // Retired first: from then on the ingest refuses the host, whether or not the parameter goes as well.
    await retireHost(this.options, hostId, 'secret revoked');
    try {
      await this.options.ssm.send(new DeleteParameterCommand({ Name: this.parameterName(hostId) }));
    } catch (error) {
      // Deleted by an earlier attempt, or never made: either way there is no secret left to read.
      if (!(error instanceof ParameterNotFound)) throw error;
    }
  }
}
