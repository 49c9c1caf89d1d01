import { type Env, heartbeatCoalesceSeconds, numberOr, required } from '../env.ts';

export interface ReconcileFunctionConfig {
  eventsTable: string;
  hostsTable: string;
  documentsTable: string;
  /** Plans too large for a document (plans/), states too large for a message (states/). */
  bucket: string;
  pollSeconds: number;
  /** How long one Check keeps looking before the state machine waits pollSeconds (billed Lambda time). */
  checkWindowMs: number;
  /** The ingest's heartbeat coalescing window: a host is lost only that much after its missed heartbeats. */
  heartbeatCoalesceSeconds: number;
  /** SSM parameter name prefix under which each host's secret is kept: `<prefix><hostId>`. */
  secretParameterPrefix: string;
  /** KMS key the secret parameters are encrypted with. */
  secretParameterKeyArn: string;
  /** `arn:<partition>:ec2:<region>:<account>:instance/`, for the tag naming the one instance that may read a secret. */
  hostInstanceArnPrefix: string;
  /** The symmetric key host secrets are encrypted with in the hosts table (as the api does). */
  secretsKeyId: string;
  /** One ARN per state topic shard, shard n at index n. */
  stateTopicArns: string[];
  signingKeyArn: string;
  agentArtifactUrl: string;
  instanceProfile?: string;
  defaultImage?: string;
  subnetIds: string[];
  securityGroupIds: string[];
  stackName?: string;
  /** The topic alarms are published to (ALARM_TOPIC_ARN); without it alarms are only recorded. */
  alarmTopicArn?: string;
}

export const DEFAULT_POLL_SECONDS = 15;
export const DEFAULT_CHECK_WINDOW_MS = 3_000;
export const DEFAULT_SECRET_PARAMETER_PREFIX = '/fleetfold/hosts/';

function list(env: Env, name: string): string[] {
  return (env[name] ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function optional(env: Env, name: string): Record<string, string> {
  const value = env[name];
  return value ? { [name]: value } : {};
}

export function loadReconcileConfig(env: Env): ReconcileFunctionConfig {
  const topics = list(env, 'STATE_TOPIC_ARNS');
  if (topics.length === 0) throw new Error('missing environment variable STATE_TOPIC_ARNS');
  // The names bindFleetControl sets; the short ones are kept for configurations written before it.
  const extra = {
    ...optional(env, 'HOST_INSTANCE_PROFILE'),
    ...optional(env, 'HOST_INSTANCE_PROFILE_ARN'),
    ...optional(env, 'DEFAULT_IMAGE'),
    ...optional(env, 'STACK_NAME'),
    ...optional(env, 'FLEET_STACK_TAG'),
    ...optional(env, 'ALARM_TOPIC_ARN'),
  };
  const instanceProfile = extra.HOST_INSTANCE_PROFILE_ARN ?? extra.HOST_INSTANCE_PROFILE;
  const stackName = extra.FLEET_STACK_TAG ?? extra.STACK_NAME;
  return {
    eventsTable: required(env, 'EVENTS_TABLE'),
    hostsTable: required(env, 'HOSTS_TABLE'),
    documentsTable: required(env, 'DOCUMENTS_TABLE'),
    bucket: required(env, 'BUCKET'),
    pollSeconds: numberOr(env, 'POLL_SECONDS', DEFAULT_POLL_SECONDS),
    checkWindowMs: numberOr(env, 'CHECK_WINDOW_MS', DEFAULT_CHECK_WINDOW_MS),
    heartbeatCoalesceSeconds: heartbeatCoalesceSeconds(env),
    secretParameterPrefix: env.SECRET_PARAMETER_PREFIX || DEFAULT_SECRET_PARAMETER_PREFIX,
    secretParameterKeyArn: required(env, 'SECRET_PARAMETER_KEY_ARN'),
    hostInstanceArnPrefix: required(env, 'HOST_INSTANCE_ARN_PREFIX'),
    secretsKeyId: required(env, 'SECRETS_KEY_ID'),
    stateTopicArns: topics,
    signingKeyArn: required(env, 'SIGNING_KEY_ARN'),
    agentArtifactUrl: required(env, 'AGENT_ARTIFACT_URL'),
    ...(instanceProfile ? { instanceProfile } : {}),
    ...(extra.DEFAULT_IMAGE ? { defaultImage: extra.DEFAULT_IMAGE } : {}),
    ...(stackName ? { stackName } : {}),
    ...(extra.ALARM_TOPIC_ARN ? { alarmTopicArn: extra.ALARM_TOPIC_ARN } : {}),
    subnetIds: list(env, 'SUBNET_IDS'),
    securityGroupIds: list(env, 'SECURITY_GROUP_IDS'),
  };
}
