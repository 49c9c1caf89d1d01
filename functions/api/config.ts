import { DEFAULT_UPLOAD_GRANT_DAYS } from '../../shared/cdn-policy.ts';

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

export interface UploadGrantConfig {
  /** `https://<distribution domain>`: the CDN upload path's base URL. */
  url: string;
  /** The CloudFront public key's id (the Key-Pair-Id of every grant). */
  keyPairId: string;
  /** SSM SecureString holding the PEM of the private key the trusted public key belongs to. */
  signingKeyParameter: string;
  lifetimeSeconds: number;
}

const UPLOAD_VARIABLES = {
  url: 'UPLOAD_URL',
  keyPairId: 'UPLOAD_KEY_PAIR_ID',
  signingKeyParameter: 'UPLOAD_SIGNING_KEY_PARAMETER',
} as const;

/**
 * The CDN upload path's settings, or undefined when the stack was deployed without a signing key parameter
 * (then registration hands out no grant). Some set and some not is a deployment bug and fails.
 */
export function loadUploadGrantConfig(
  env: Readonly<Record<string, string | undefined>> = process.env,
): UploadGrantConfig | undefined {
  const names = Object.values(UPLOAD_VARIABLES);
  const missing = names.filter((name) => !env[name]?.trim());
  if (missing.length === names.length) return undefined;
  if (missing.length > 0) {
    throw new Error(`api function misconfigured: missing environment variable(s) ${missing.join(', ')}`);
  }
  const daysText = env.UPLOAD_GRANT_DAYS?.trim() || String(DEFAULT_UPLOAD_GRANT_DAYS);
  const days = Number(daysText);
  if (!Number.isFinite(days) || days <= 0) {
    throw new Error(
      `api function misconfigured: UPLOAD_GRANT_DAYS must be a positive number, got "${daysText}"`,
    );
  }
  return {
    url: env[UPLOAD_VARIABLES.url]?.trim() as string,
    keyPairId: env[UPLOAD_VARIABLES.keyPairId]?.trim() as string,
    signingKeyParameter: env[UPLOAD_VARIABLES.signingKeyParameter]?.trim() as string,
    lifetimeSeconds: Math.round(days * 86_400),
  };
}
