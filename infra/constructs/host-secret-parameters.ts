import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { SOURCE_INSTANCE_ARN } from '../../shared/groups/host-access.ts';
import { SECRET_PARAMETER_TAGS } from '../../shared/groups/host-provisioning.ts';
import type { FleetFunction } from './fleet-function.ts';
import { acknowledge } from './nag.ts';

/** Environment variables grantManage sets, read by functions/reconcile/config.ts. */
export const SECRET_PARAMETER_ENV = {
  prefix: 'SECRET_PARAMETER_PREFIX',
  keyArn: 'SECRET_PARAMETER_KEY_ARN',
  instanceArnPrefix: 'HOST_INSTANCE_ARN_PREFIX',
} as const;

export const DEFAULT_SECRET_PARAMETER_PREFIX = '/fleetfold/hosts/';

/** An IAM policy variable: IAM substitutes the ARN of the instance whose role credentials signed the request. */
export { SOURCE_INSTANCE_ARN };

export interface HostSecretParametersProps {
  /**
   * Name prefix of the parameters (`<prefix><hostId>`); starts and ends with a slash.
   * @default '/fleetfold/hosts/'
   */
  readonly prefix?: string;
  /**
   * Losing the key makes every host's parameter unreadable: running hosts keep working, rebooted ones do not.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * @default Duration.days(30)
   */
  readonly pendingWindow?: Duration;
}

/**
 * Where EC2 hosts find their snapshot-signing secret at boot: one SSM SecureString per host, created by the
 * reconcile before it launches the host, encrypted with this key, and tagged afterwards with the ARN of the
 * instance that may read it.
 *
 * Which instance may read which parameter is decided per request, not per role: every host shares one role,
 * but the credentials EC2 hands an instance carry `ec2:SourceInstanceARN` (a global condition key naming
 * the instance the role credentials were issued to). The host role may `ssm:GetParameter` only where the
 * parameter's `fleetfold:instance-arn` tag equals `${ec2:SourceInstanceARN}`, so host A cannot read host
 * B's secret even though both hold the same role. (The instance id alone is not a request key; the ARN is.)
 */
export class HostSecretParameters extends Construct {
  readonly key: kms.Key;
  readonly prefix: string;

  constructor(scope: Construct, id: string, props: HostSecretParametersProps = {}) {
    super(scope, id);
    this.prefix = props.prefix ?? DEFAULT_SECRET_PARAMETER_PREFIX;
    if (!/^\/[A-Za-z0-9_.\-/]*\/$/.test(this.prefix)) {
      throw new Error(`secret parameter prefix "${this.prefix}" must start and end with "/"`);
    }
    this.key = new kms.Key(this, 'Key', {
      description: 'fleetfold: encrypts the SSM parameters holding each EC2 host secret',
      enableKeyRotation: true,
      pendingWindow: props.pendingWindow ?? Duration.days(30),
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }

  /** `arn:…:parameter/fleetfold/hosts/*`: a parameter's ARN drops the name's leading slash. */
  get parameterArnPattern(): string {
    return Stack.of(this).formatArn({
      service: 'ssm',
      resource: 'parameter',
      resourceName: `${this.prefix.slice(1)}*`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
  }

  /** The ARN of an instance is this plus its id. */
  get instanceArnPrefix(): string {
    const instances = Stack.of(this).formatArn({
      service: 'ec2',
      resource: 'instance',
      arnFormat: ArnFormat.NO_RESOURCE_NAME,
    });
    return `${instances}/`;
  }

  /** May create, overwrite, tag and delete host parameters, encrypting through SSM with the key. */
  grantManage(fn: FleetFunction): void {
    fn.function.addEnvironment(SECRET_PARAMETER_ENV.prefix, this.prefix);
    fn.function.addEnvironment(SECRET_PARAMETER_ENV.keyArn, this.key.keyArn);
    fn.function.addEnvironment(SECRET_PARAMETER_ENV.instanceArnPrefix, this.instanceArnPrefix);
    fn.function.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ManageHostSecretParameters',
        actions: ['ssm:PutParameter', 'ssm:AddTagsToResource', 'ssm:DeleteParameter'],
        resources: [this.parameterArnPattern],
      }),
    );
    // SSM encrypts a standard SecureString with the caller's kms:Encrypt; the function gets no other use of it.
    fn.function.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'EncryptHostSecretParameters',
        actions: ['kms:Encrypt'],
        resources: [this.key.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': this.ssmService } },
      }),
    );
    acknowledge(fn.role, {
      [`AwsSolutions-IAM5[Resource::${this.nagParameterPattern}]`]:
        'One parameter per host, created when the reconcile launches it: names are known only at run time, so the grant is the host-secret prefix.',
    });
  }

  /** Hosts may read (and have SSM decrypt) only the parameter tagged with their own instance's ARN. */
  grantReadOwn(role: iam.IRole): void {
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadOwnSecretParameter',
        actions: ['ssm:GetParameter'],
        resources: [this.parameterArnPattern],
        conditions: {
          StringEquals: { [`ssm:resourceTag/${SECRET_PARAMETER_TAGS.instanceArn}`]: SOURCE_INSTANCE_ARN },
        },
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'DecryptOwnSecretParameter',
        actions: ['kms:Decrypt'],
        resources: [this.key.keyArn],
        conditions: {
          StringEquals: { 'kms:ViaService': this.ssmService },
          StringLike: { 'kms:EncryptionContext:PARAMETER_ARN': this.parameterArnPattern },
        },
      }),
    );
    acknowledge(role, {
      [`AwsSolutions-IAM5[Resource::${this.nagParameterPattern}]`]:
        "Every host shares this role, so the resource is the host-secret prefix; the condition that the parameter's fleetfold:instance-arn tag equals the requesting instance's ARN (ec2:SourceInstanceARN) lets each instance read only its own.",
    });
  }

  private get ssmService(): string {
    return `ssm.${Stack.of(this).region}.amazonaws.com`;
  }

  private get nagParameterPattern(): string {
    return `arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/${this.prefix.slice(1)}*`;
  }
}
