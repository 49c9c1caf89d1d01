import { type Env, numberOr, required } from '../env.ts';

export interface ReconcileFunctionConfig {
  eventsTable: string;
  hostsTable: string;
  documentsTable: string;
  /** Plans too large for a document (plans/), states too large for a message (states/). */
  bucket: string;
  pollSeconds: number;
  /** SSM parameter name prefix under which each host's secret is kept: `<prefix><hostId>`. */
  secretParameterPrefix: string;
  /** One ARN per state topic shard, shard n at index n. */
  stateTopicArns: string[];
  signingKeyArn: string;
  agentArtifactUrl: string;
  instanceProfile?: string;
  defaultImage?: string;
  subnetIds: string[];
  securityGroupIds: string[];
  stackName?: string;
}

export const DEFAULT_POLL_SECONDS = 15;
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
  const extra = {
    ...optional(env, 'HOST_INSTANCE_PROFILE'),
    ...optional(env, 'DEFAULT_IMAGE'),
    ...optional(env, 'STACK_NAME'),
  };
  return {
    eventsTable: required(env, 'EVENTS_TABLE'),
    hostsTable: required(env, 'HOSTS_TABLE'),
    documentsTable: required(env, 'DOCUMENTS_TABLE'),
    bucket: required(env, 'BUCKET'),
    pollSeconds: numberOr(env, 'POLL_SECONDS', DEFAULT_POLL_SECONDS),
    secretParameterPrefix: env.SECRET_PARAMETER_PREFIX || DEFAULT_SECRET_PARAMETER_PREFIX,
    stateTopicArns: topics,
    signingKeyArn: required(env, 'SIGNING_KEY_ARN'),
    agentArtifactUrl: required(env, 'AGENT_ARTIFACT_URL'),
    ...(extra.HOST_INSTANCE_PROFILE ? { instanceProfile: extra.HOST_INSTANCE_PROFILE } : {}),
    ...(extra.DEFAULT_IMAGE ? { defaultImage: extra.DEFAULT_IMAGE } : {}),
    ...(extra.STACK_NAME ? { stackName: extra.STACK_NAME } : {}),
    subnetIds: list(env, 'SUBNET_IDS'),
    securityGroupIds: list(env, 'SECURITY_GROUP_IDS'),
  };
}
