import { describe, expect, it } from 'vitest';
import { loadReconcileConfig } from '../functions/reconcile/config.ts';

/** What the stack sets (see the 'reconcile function' assertions in infra.unit.test.ts). */
const STACK_ENV = {
  EVENTS_TABLE: 'events',
  HOSTS_TABLE: 'hosts',
  DOCUMENTS_TABLE: 'documents',
  BUCKET: 'fleetfold-snapshots',
  SECRETS_KEY_ID: 'arn:aws:kms:eu-west-1:111122223333:key/secrets',
  STATE_TOPIC_ARNS:
    'arn:aws:sns:eu-west-1:111122223333:fleetfold-states-0, arn:aws:sns:eu-west-1:111122223333:fleetfold-states-1',
  SIGNING_KEY_ARN: 'arn:aws:kms:eu-west-1:111122223333:key/signing',
  SECRET_PARAMETER_PREFIX: '/fleetfold/hosts/',
  SECRET_PARAMETER_KEY_ARN: 'arn:aws:kms:eu-west-1:111122223333:key/params',
  HOST_INSTANCE_ARN_PREFIX: 'arn:aws:ec2:eu-west-1:111122223333:instance/',
  FLEET_STACK_TAG: 'Fleetfold',
  HOST_INSTANCE_PROFILE_ARN: 'arn:aws:iam::111122223333:instance-profile/FleetfoldHost',
  AGENT_ARTIFACT_URL: 's3://fleetfold-snapshots/agent/fleetfold-agent.tar.gz',
  SUBNET_IDS: 'subnet-a,subnet-b',
  HEARTBEAT_COALESCE_SECONDS: '45',
};

describe('loadReconcileConfig', () => {
  it('reads everything the stack wires, topics and subnets as lists', () => {
    expect(loadReconcileConfig(STACK_ENV)).toEqual({
      eventsTable: 'events',
      hostsTable: 'hosts',
      documentsTable: 'documents',
      bucket: 'fleetfold-snapshots',
      pollSeconds: 15,
      checkWindowMs: 3_000,
      heartbeatCoalesceSeconds: 45,
      secretParameterPrefix: '/fleetfold/hosts/',
      secretParameterKeyArn: STACK_ENV.SECRET_PARAMETER_KEY_ARN,
      hostInstanceArnPrefix: STACK_ENV.HOST_INSTANCE_ARN_PREFIX,
      secretsKeyId: STACK_ENV.SECRETS_KEY_ID,
      stateTopicArns: [
        'arn:aws:sns:eu-west-1:111122223333:fleetfold-states-0',
        'arn:aws:sns:eu-west-1:111122223333:fleetfold-states-1',
      ],
      signingKeyArn: STACK_ENV.SIGNING_KEY_ARN,
      agentArtifactUrl: STACK_ENV.AGENT_ARTIFACT_URL,
      instanceProfile: STACK_ENV.HOST_INSTANCE_PROFILE_ARN,
      stackName: 'Fleetfold',
      subnetIds: ['subnet-a', 'subnet-b'],
      securityGroupIds: [],
    });
  });

  it.each([
    'SECRET_PARAMETER_KEY_ARN',
    'HOST_INSTANCE_ARN_PREFIX',
    'SECRETS_KEY_ID',
    'AGENT_ARTIFACT_URL',
    'STATE_TOPIC_ARNS',
  ])('fails naming %s when it is missing', (name) => {
    const env: Record<string, string | undefined> = { ...STACK_ENV, [name]: undefined };
    expect(() => loadReconcileConfig(env)).toThrow(`missing environment variable ${name}`);
  });
});
