/**
 * A host's identity before and after its machine exists. Launching a host is three steps: make it known to the
 * control plane with a secret kept where only its machine will read it (prepare), start the machine (the
 * fleet), then let exactly that machine read the secret (bind). On EC2 the secret is an SSM SecureString
 * that only the instance named in its tag may read; locally, a file beside the agent process.
 */
import type { HostIdentity } from '../host-registration.ts';
import type { FleetInstance, FleetPort, HostProvisioner, LaunchRequest } from './ports.ts';

export type { HostIdentity, HostProvisioner };

/** Tags of a host's secret parameter. */
export const SECRET_PARAMETER_TAGS = {
  hostId: 'fleetfold:host-id',
  /**
   * The ARN of the one instance that may read the parameter: the host role's policy compares it with
   * `${ec2:SourceInstanceARN}`, the ARN of the instance whose role credentials sign the request.
   */
  instanceArn: 'fleetfold:instance-arn',
} as const;

/**
 * Launches a host through the fleet, its secret in place first. `existing` is a live instance found before
 * (a retried wave): its secret was prepared before it was launched, but it is bound again, because an
 * attempt may have stopped between the launch and the bind.
 */
export async function launchHost(
  fleet: FleetPort,
  provisioner: HostProvisioner,
  request: Omit<LaunchRequest, 'secretRef'>,
  existing?: FleetInstance,
  /** Where prepare put the secret, when the caller prepared the host already (it registers before it assigns). */
  prepared?: string,
): Promise<FleetInstance> {
  let instance = existing;
  if (!instance) {
    const { hostId, group, hostType, roles } = request;
    const secretRef = prepared ?? (await provisioner.prepare({ hostId, group, hostType, roles }));
    instance = await fleet.launch({ ...request, secretRef });
  }
  await provisioner.bind(request.hostId, instance);
  return instance;
}
