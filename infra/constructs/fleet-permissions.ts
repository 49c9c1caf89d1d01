import { ArnFormat, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';
import { FLEET_TAGS } from '../../shared/groups/fleet-tags.ts';
import type { FleetFunction } from './fleet-function.ts';
import type { HostInstanceRole } from './host-instance-role.ts';
import { acknowledge } from './nag.ts';

export interface FleetControlProps {
  /** The role hosts run with: the only role the function may hand to EC2. */
  readonly hostRole: iam.IRole;
  /**
   * Value of the `fleetfold:stack` tag this stack's hosts carry; only instances with it can be rebooted or
   * terminated, and new instances must be created with it.
   * @default the stack name
   */
  readonly stackTag?: string;
}

/** The tag keys the EC2 fleet adapter writes; a launch may carry no other. */
const LAUNCH_TAG_KEYS = ['Name', FLEET_TAGS.group, FLEET_TAGS.hostType, FLEET_TAGS.hostId, FLEET_TAGS.stack];

/**
 * What a function needs to run, reboot, terminate and describe this stack's hosts, and nothing more:
 * - new instances and volumes must be tagged with this stack and a group, with only the fleet's tag keys;
 * - tags may only be written as part of that launch, so an existing instance cannot be adopted by retagging;
 * - reboot and terminate only reach instances already tagged with this stack and a group;
 * - the only role it may pass is the host role, and only to EC2.
 */
export function fleetControlStatements(scope: IConstruct, props: FleetControlProps): iam.PolicyStatement[] {
  const stack = Stack.of(scope);
  const stackTag = props.stackTag ?? stack.stackName;
  const arns = fleetResourceArns(scope);
  return [
    new iam.PolicyStatement({
      sid: 'LaunchTaggedHosts',
      actions: ['ec2:RunInstances'],
      resources: [arns.instance, arns.volume],
      conditions: {
        StringEquals: { [`aws:RequestTag/${FLEET_TAGS.stack}`]: stackTag },
        Null: {
          [`aws:RequestTag/${FLEET_TAGS.group}`]: 'false',
          [`aws:RequestTag/${FLEET_TAGS.hostId}`]: 'false',
        },
        'ForAllValues:StringEquals': { 'aws:TagKeys': LAUNCH_TAG_KEYS },
      },
    }),
    new iam.PolicyStatement({
      sid: 'LaunchFromSharedResources',
      actions: ['ec2:RunInstances'],
      resources: [
        arns.image,
        arns.snapshot,
        arns.subnet,
        arns.securityGroup,
        arns.networkInterface,
        arns.launchTemplate,
        arns.keyPair,
      ],
    }),
    new iam.PolicyStatement({
      sid: 'TagOnlyAtLaunch',
      actions: ['ec2:CreateTags'],
      resources: [arns.instance, arns.volume],
      conditions: { StringEquals: { 'ec2:CreateAction': 'RunInstances' } },
    }),
    new iam.PolicyStatement({
      sid: 'RebootAndTerminateOwnHosts',
      actions: ['ec2:RebootInstances', 'ec2:TerminateInstances'],
      resources: [arns.instance],
      conditions: {
        StringEquals: { [`ec2:ResourceTag/${FLEET_TAGS.stack}`]: stackTag },
        Null: { [`ec2:ResourceTag/${FLEET_TAGS.group}`]: 'false' },
      },
    }),
    new iam.PolicyStatement({
      sid: 'DescribeHosts',
      actions: ['ec2:DescribeInstances'],
      resources: ['*'],
    }),
    new iam.PolicyStatement({
      sid: 'PassHostRole',
      actions: ['iam:PassRole'],
      resources: [props.hostRole.roleArn],
      conditions: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
    }),
  ];
}

/** Grants the fleet statements to a role, with the reason for each wildcard a cdk-nag audit will ask about. */
export function grantFleetControl(role: iam.Role, props: FleetControlProps): void {
  for (const statement of fleetControlStatements(role, props)) role.addToPrincipalPolicy(statement);
  const arns = fleetResourceArns(role);
  const reasons: [string, string][] = [
    [
      arns.instance,
      "Instance ids are only known after launch; RunInstances requires the new instance to carry this stack's fleetfold:stack and a fleetfold:group tag, and reboot/terminate require the same tags on the existing instance.",
    ],
    [
      arns.volume,
      'Root volumes are created by RunInstances with the same required fleetfold tags as the instance.',
    ],
    [
      arns.image,
      'AMIs are chosen per host type in group definitions (often public or shared from another account), so no image ARN is known at synth time.',
    ],
    [
      arns.snapshot,
      'The EBS snapshots behind an AMI are read by RunInstances; they belong to whichever AMI a group definition names.',
    ],
    [
      arns.subnet,
      'Subnets come from the launch template or fleet configuration of each group, not from this stack.',
    ],
    [
      arns.securityGroup,
      'Security groups come from the launch template or fleet configuration of each group, not from this stack.',
    ],
    [
      arns.networkInterface,
      'RunInstances creates the primary network interface; its id does not exist before the launch.',
    ],
    [
      arns.launchTemplate,
      'Launch templates are named per host type in group definitions, not created by this stack.',
    ],
    [
      arns.keyPair,
      'A launch template may name an SSH key pair; RunInstances authorizes its use on the key-pair resource.',
    ],
  ];
  acknowledge(role, {
    ...Object.fromEntries(
      reasons.map(([arn, reason]) => [`AwsSolutions-IAM5[Resource::${nagResource(role, arn)}]`, reason]),
    ),
    'AwsSolutions-IAM5[Resource::*]':
      'ec2:DescribeInstances supports no resource-level permissions; the fleet adapter filters by the fleetfold:stack and fleetfold:group tags.',
  });
}

/**
 * Env and grants in one call, like bindings.ts: `FLEET_STACK_TAG` (the tag value the grants require) and
 * `HOST_INSTANCE_PROFILE_ARN` (the profile whose role the grants let the function pass).
 */
export function bindFleetControl(fn: FleetFunction, hostRole: HostInstanceRole, stackTag?: string): void {
  const tag = stackTag ?? Stack.of(fn).stackName;
  fn.function.addEnvironment('FLEET_STACK_TAG', tag);
  fn.function.addEnvironment('HOST_INSTANCE_PROFILE_ARN', hostRole.instanceProfile.instanceProfileArn);
  grantFleetControl(fn.role, { hostRole: hostRole.role, stackTag: tag });
}

function fleetResourceArns(scope: IConstruct) {
  const stack = Stack.of(scope);
  const regional = (resource: string) =>
    stack.formatArn({
      service: 'ec2',
      resource,
      resourceName: '*',
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
  // Images and their snapshots are addressed without an account: they may be owned by anyone.
  const unowned = (resource: string) =>
    stack.formatArn({
      service: 'ec2',
      account: '',
      resource,
      resourceName: '*',
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
  return {
    instance: regional('instance'),
    volume: regional('volume'),
    subnet: regional('subnet'),
    securityGroup: regional('security-group'),
    networkInterface: regional('network-interface'),
    launchTemplate: regional('launch-template'),
    keyPair: regional('key-pair'),
    image: unowned('image'),
    snapshot: unowned('snapshot'),
  };
}

/** cdk-nag names a pseudo-parameter `<AWS::Region>`; the ARNs here only use pseudo-parameters as tokens. */
function nagResource(scope: IConstruct, arn: string): string {
  const resolved: unknown = Stack.of(scope).resolve(arn);
  if (typeof resolved === 'string') return resolved;
  const join = (resolved as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (!join) throw new Error(`cannot name ${JSON.stringify(resolved)} for cdk-nag`);
  return join[1]
    .map((part) => {
      if (typeof part === 'string') return part;
      const ref = (part as { Ref?: string }).Ref;
      if (!ref) throw new Error(`cannot name ${JSON.stringify(part)} for cdk-nag`);
      return `<${ref}>`;
    })
    .join(join[0]);
}
