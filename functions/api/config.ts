export interface ApiConfig {
  /** DynamoDB table holding the event log. */
  eventsTable: string;
  /** DynamoDB table holding the host projection. */
  hostsTable: string;
  /** KMS key (id, ARN or alias) that encrypts host secrets at rest. */
  secretsKeyId: string;
}

const VARIABLES = {
  eventsTable: 'EVENTS_TABLE',
  hostsTable: 'HOSTS_TABLE',
  secretsKeyId: 'SECRETS_KEY_ID',
} as const satisfies Record<keyof ApiConfig, string>;

/**
 * Reads the api function's settings once, at cold start. A missing variable is a deployment bug: failing
 * here, naming every missing one, beats a confusing SDK error on the first request.
 */
export function loadApiConfig(env: Readonly<Record<string, string | undefined>> = process.env): ApiConfig {
  const missing = Object.values(VARIABLES).filter((name) => !env[name]?.trim());
  if (missing.length > 0) {
    throw new Error(`api function misconfigured: missing environment variable(s) ${missing.join(', ')}`);
  }
  return {
    eventsTable: env[VARIABLES.eventsTable]?.trim() as string,
    hostsTable: env[VARIABLES.hostsTable]?.trim() as string,
    secretsKeyId: env[VARIABLES.secretsKeyId]?.trim() as string,
  };
}

export interface GroupsApiConfig {
  /** DynamoDB table holding groups, rollouts, desired states and plans. */
  documentsTable: string;
  /** Step Functions state machine the reconcile runs as. */
  reconcileStateMachineArn: string;
}

const GROUP_VARIABLES = {
  documentsTable: 'DOCUMENTS_TABLE',
  reconcileStateMachineArn: 'RECONCILE_STATE_MACHINE_ARN',
} as const satisfies Record<keyof GroupsApiConfig, string>;

/** The settings of the groups and rollouts routes; read at cold start like loadApiConfig, failing the same way. */
export function loadGroupsApiConfig(
  env: Readonly<Record<string, string | undefined>> = process.env,
): GroupsApiConfig {
  const missing = Object.values(GROUP_VARIABLES).filter((name) => !env[name]?.trim());
  if (missing.length > 0) {
    throw new Error(`api function misconfigured: missing environment variable(s) ${missing.join(', ')}`);
  }
  return {
    documentsTable: env[GROUP_VARIABLES.documentsTable]?.trim() as string,
    reconcileStateMachineArn: env[GROUP_VARIABLES.reconcileStateMachineArn]?.trim() as string,
  };
}
