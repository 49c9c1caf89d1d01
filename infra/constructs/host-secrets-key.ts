import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

export interface HostSecretsKeyProps {
  /**
   * Waiting period before a deleted key is destroyed (only used if the removal policy is DESTROY).
   * @default Duration.days(30)
   */
  readonly pendingWindow?: Duration;
  /**
   * Losing the key loses every host secret, so it outlives the stack by default.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/** The symmetric key host secrets are encrypted with at rest: api encrypts at registration, ingest decrypts. */
export class HostSecretsKey extends Construct {
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: HostSecretsKeyProps = {}) {
    super(scope, id);
    this.key = new kms.Key(this, 'Key', {
      description: 'fleetfold: encrypts per-host snapshot signing secrets',
      keySpec: kms.KeySpec.SYMMETRIC_DEFAULT,
      keyUsage: kms.KeyUsage.ENCRYPT_DECRYPT,
      enableKeyRotation: true,
      pendingWindow: props.pendingWindow ?? Duration.days(30),
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }
}
