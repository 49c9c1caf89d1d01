import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_INBOX_IDLE_SECONDS as COST_MODEL_INBOX_IDLE_SECONDS } from '../shared/cost/model.ts';
import { type BandThresholds, DEFAULT_BANDS, parseThresholds } from '../shared/metrics.ts';
import { Name } from '../shared/schemas.ts';
import { hashToUint32 } from './facts/simulated.ts';
import { parseServiceList } from './facts/source.ts';

export type AgentMode = 'local' | 'ec2';

export interface AgentConfig {
  mode: AgentMode;
  hostId: string;
  secret: string;
  bucket: string;
  group: string;
  /** Always set in local mode; in EC2 mode absent means "the instance type". */
  hostType?: string;
  roles: string[];
  services: Record<string, string>;
  stateDir: string;
  heartbeatSeconds: number;
  pollSeconds: number;
  seed: number;
  thresholds: BandThresholds;
  capacitySessions?: number;
  /** Local mode: the file `fleetfold simulate` demand reaches this host through (FLEETFOLD_DEMAND_FILE). */
  demandFile?: string;
  s3: {
    /** Local mode: the emulator; EC2 mode: only for a VPC or FIPS endpoint. */
    endpoint?: string;
    /** Absent in EC2 mode when not configured: read from instance metadata at start. */
    region?: string;
  };
  /** EC2 mode: instance metadata base URL (tests point it elsewhere). */
  imdsUrl?: string;
  /** Where desired states come from; absent: the agent only reports. */
  inbox?: InboxConfig;
  /** EC2 mode: the hook run per changed service (FLEETFOLD_APPLY_COMMAND). */
  applyCommand?: string;
  /** Snapshots through the CloudFront distribution: FLEETFOLD_UPLOAD_URL and FLEETFOLD_UPLOAD_GRANT_FILE. */
  upload?: { url: string; grantFile: string };
}

export interface InboxConfig {
  /** The full URL (local mode, or EC2), or the queue name to resolve with GetQueueUrl (EC2). */
  queue: { url: string } | { name: string };
  /** PEM of the control plane's ECDSA P-256 public key: only states signed with it are applied. */
  publicKeyPem: string;
  /** EC2 only: a VPC or FIPS endpoint for SQS. Local mode takes the endpoint from the queue URL. */
  sqsEndpoint?: string;
  /** FLEETFOLD_INBOX_IDLE_SECONDS: the pause after an empty long poll (see shared/cost/model.ts). */
  idleSeconds?: number;
}

/**
 * On EC2 a 20 s pause after each empty 20 s long poll halves the SQS bill of the inbox (about $26 a month
 * per 1,000 hosts instead of $53) and delays a state by at most 20 s (p99 about 19.6 s). Local hosts are
 * watched by a person and cost nothing: they poll back to back.
 */
export const DEFAULT_INBOX_IDLE_SECONDS: Readonly<Record<AgentMode, number>> = {
  ec2: COST_MODEL_INBOX_IDLE_SECONDS,
  local: 0,
};
const MAX_INBOX_IDLE_SECONDS = 900;

export function parseInboxIdleSeconds(text: string | undefined, mode: AgentMode): number {
  if (text === undefined) return DEFAULT_INBOX_IDLE_SECONDS[mode];
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0 || value > MAX_INBOX_IDLE_SECONDS)
    throw new ConfigError(
      `FLEETFOLD_INBOX_IDLE_SECONDS must be a number of seconds from 0 to ${MAX_INBOX_IDLE_SECONDS}, got "${text}"`,
    );
  return value;
}

/** Where the snapshot secret comes from: given (env or file), or an SSM parameter read at boot (EC2). */
export type SecretSource = { value: string } | { parameter: string };

/** The configuration before the secret is in hand: main.ts resolves an SSM parameter, then calls withSecret. */
export type BootConfig = Omit<AgentConfig, 'secret'> & { secret: SecretSource };

export function withSecret(boot: BootConfig, secret: string): AgentConfig {
  return { ...boot, secret };
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads the agent's configuration once; nothing else in agent/ reads process.env. Fails on the first
 * missing or malformed variable, naming it, so a misconfigured host dies at boot instead of posting nonsense.
 */
export function loadConfig(
  env: Env = process.env,
  readText = (path: string) => readFileSync(path, 'utf8'),
): AgentConfig {
  const boot = loadBootConfig(env, readText);
  if ('parameter' in boot.secret) {
    throw new ConfigError(
      `FLEETFOLD_SECRET_PARAMETER (${boot.secret.parameter}) must be read from SSM first: use loadBootConfig`,
    );
  }
  return withSecret(boot, boot.secret.value);
}

/** Like loadConfig, but on EC2 the secret may still be an SSM parameter to read (FLEETFOLD_SECRET_PARAMETER). */
export function loadBootConfig(
  env: Env = process.env,
  readText = (path: string) => readFileSync(path, 'utf8'),
): BootConfig {
  const get = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value ? value : undefined;
  };
  const required = (name: string): string => {
    const value = get(name);
    if (value === undefined) throw new ConfigError(`${name} is not set`);
    return value;
  };
  const name = (variable: string, value: string): string => {
    const parsed = Name.safeParse(value);
    if (!parsed.success)
      throw new ConfigError(`${variable}="${value}" is not a valid name: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  };
  const positive = (variable: string, fallback: number): number => {
    const text = get(variable);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value <= 0)
      throw new ConfigError(`${variable} must be a positive number, got "${text}"`);
    return value;
  };

  const modeText = required('FLEETFOLD_MODE');
  if (modeText !== 'local' && modeText !== 'ec2') {
    throw new ConfigError(`FLEETFOLD_MODE must be "local" or "ec2", got "${modeText}"`);
  }
  const mode: AgentMode = modeText;
  const hostId = name('FLEETFOLD_HOST_ID', required('FLEETFOLD_HOST_ID'));

  const secretFile = get('FLEETFOLD_SECRET_FILE');
  let secret = get('FLEETFOLD_SECRET');
  if (secret === undefined && secretFile !== undefined) {
    try {
      secret = readText(secretFile).trim();
    } catch (error) {
      throw new ConfigError(
        `FLEETFOLD_SECRET_FILE "${secretFile}" cannot be read: ${(error as Error).message}`,
      );
    }
  }
  // A secret given directly wins: an operator can always override what the boot script wrote.
  const secretParameter = mode === 'ec2' && !secret ? get('FLEETFOLD_SECRET_PARAMETER') : undefined;
  if (secretParameter !== undefined && !/^\/[A-Za-z0-9_.\-/]+$/.test(secretParameter)) {
    throw new ConfigError(`FLEETFOLD_SECRET_PARAMETER="${secretParameter}" is not an SSM parameter name`);
  }
  if (!secret && secretParameter === undefined) {
    throw new ConfigError(
      mode === 'ec2'
        ? 'FLEETFOLD_SECRET (or FLEETFOLD_SECRET_FILE, or FLEETFOLD_SECRET_PARAMETER) is not set'
        : 'FLEETFOLD_SECRET (or FLEETFOLD_SECRET_FILE) is not set',
    );
  }

  const hostTypeText = mode === 'local' ? required('FLEETFOLD_HOST_TYPE') : get('FLEETFOLD_HOST_TYPE');
  const roles = required('FLEETFOLD_ROLES')
    .split(',')
    .map((role) => role.trim())
    .filter(Boolean)
    .map((role) => name('FLEETFOLD_ROLES', role));
  if (roles.length === 0) throw new ConfigError('FLEETFOLD_ROLES names no role');

  let services: Record<string, string>;
  try {
    services = parseServiceList(get('FLEETFOLD_SERVICES') ?? '');
  } catch (error) {
    throw new ConfigError(`FLEETFOLD_SERVICES: ${(error as Error).message}`);
  }
  for (const service of Object.keys(services)) name('FLEETFOLD_SERVICES', service);

  const seedText = get('FLEETFOLD_SEED');
  const seed = seedText === undefined ? hashToUint32(hostId) : Number(seedText);
  if (!Number.isInteger(seed)) throw new ConfigError(`FLEETFOLD_SEED must be an integer, got "${seedText}"`);

  const bands = (variable: string, fallback: readonly number[]): readonly number[] => {
    const text = get(variable);
    if (text === undefined) return fallback;
    try {
      return parseThresholds(text, variable);
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
  };

  const capacityText = get('FLEETFOLD_CAPACITY_SESSIONS');
  const capacitySessions = capacityText === undefined ? undefined : Number(capacityText);
  if (capacitySessions !== undefined && !(Number.isInteger(capacitySessions) && capacitySessions >= 0)) {
    throw new ConfigError(`FLEETFOLD_CAPACITY_SESSIONS must be a whole number, got "${capacityText}"`);
  }

  const endpoint = mode === 'local' ? required('FLEETFOLD_S3_ENDPOINT') : get('FLEETFOLD_S3_ENDPOINT');
  const region =
    get('FLEETFOLD_REGION') ??
    get('AWS_REGION') ??
    get('AWS_DEFAULT_REGION') ??
    (mode === 'local' ? 'us-east-1' : undefined);

  const inbox = readInbox(mode, get, readText);
  const applyCommand = get('FLEETFOLD_APPLY_COMMAND');
  const upload = readUpload(get);

  return {
    mode,
    hostId,
    secret: secret ? { value: secret } : { parameter: secretParameter as string },
    bucket: required('FLEETFOLD_BUCKET'),
    group: name('FLEETFOLD_GROUP', required('FLEETFOLD_GROUP')),
    ...(hostTypeText === undefined ? {} : { hostType: name('FLEETFOLD_HOST_TYPE', hostTypeText) }),
    roles,
    services,
    // Local hosts share a machine, so each gets its own folder; an EC2 host has the machine to itself.
    stateDir:
      get('FLEETFOLD_STATE_DIR') ??
      (mode === 'local' ? join('.fleetfold', 'agents', hostId) : '/var/lib/fleetfold-agent'),
    // Local mode is watched by a person, so its liveness must show within a minute.
    heartbeatSeconds: positive('FLEETFOLD_HEARTBEAT_SECONDS', mode === 'local' ? 60 : 3_600),
    pollSeconds: positive('FLEETFOLD_POLL_SECONDS', 5),
    seed: seed >>> 0,
    thresholds: {
      load: bands('FLEETFOLD_LOAD_BANDS', DEFAULT_BANDS.load),
      sessions: bands('FLEETFOLD_SESSION_BANDS', DEFAULT_BANDS.sessions),
    },
    ...(capacitySessions === undefined ? {} : { capacitySessions }),
    ...(mode === 'local' && get('FLEETFOLD_DEMAND_FILE') ? { demandFile: get('FLEETFOLD_DEMAND_FILE') } : {}),
    s3: { ...(endpoint ? { endpoint } : {}), ...(region ? { region } : {}) },
    ...(get('FLEETFOLD_IMDS_URL') ? { imdsUrl: get('FLEETFOLD_IMDS_URL') } : {}),
    ...(inbox ? { inbox } : {}),
    ...(applyCommand ? { applyCommand } : {}),
    ...(upload ? { upload } : {}),
  };
}

/** Both a queue and the key, or neither: an inbox without the key to check what arrives must not start. */
function readInbox(
  mode: AgentMode,
  get: (name: string) => string | undefined,
  readText: (path: string) => string,
): InboxConfig | undefined {
  const url = get('FLEETFOLD_INBOX_QUEUE_URL');
  const name = get('FLEETFOLD_INBOX_QUEUE');
  const keyFile = get('FLEETFOLD_CONTROL_PUBLIC_KEY_FILE');
  const inlineKey = get('FLEETFOLD_CONTROL_PUBLIC_KEY');
  if (!url && !name && !keyFile && !inlineKey) return undefined;
  if (!url && !name) {
    throw new ConfigError(
      mode === 'local'
        ? 'FLEETFOLD_INBOX_QUEUE_URL is not set, but a control plane key is'
        : 'FLEETFOLD_INBOX_QUEUE (or FLEETFOLD_INBOX_QUEUE_URL) is not set, but a control plane key is',
    );
  }
  if (mode === 'local' && !url) {
    throw new ConfigError('FLEETFOLD_INBOX_QUEUE_URL is not set: local mode needs the full queue URL');
  }
  if (url) {
    try {
      new URL(url);
    } catch {
      throw new ConfigError(`FLEETFOLD_INBOX_QUEUE_URL="${url}" is not a URL`);
    }
  }
  let publicKeyPem: string;
  if (keyFile) {
    try {
      publicKeyPem = readText(keyFile);
    } catch (error) {
      throw new ConfigError(
        `FLEETFOLD_CONTROL_PUBLIC_KEY_FILE "${keyFile}" cannot be read: ${(error as Error).message}`,
      );
    }
  } else if (inlineKey) {
    // Instance user data often flattens newlines; a PEM survives as "\n" escapes.
    publicKeyPem = inlineKey.replaceAll('\\n', '\n');
  } else {
    throw new ConfigError('FLEETFOLD_CONTROL_PUBLIC_KEY_FILE (or FLEETFOLD_CONTROL_PUBLIC_KEY) is not set');
  }
  const variable = keyFile ? 'FLEETFOLD_CONTROL_PUBLIC_KEY_FILE' : 'FLEETFOLD_CONTROL_PUBLIC_KEY';
  try {
    const key = createPublicKey(publicKeyPem);
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error('not an ECDSA P-256 key');
    }
  } catch (error) {
    throw new ConfigError(`${variable}: not a usable public key (${(error as Error).message})`);
  }
  const sqsEndpoint = mode === 'ec2' ? get('FLEETFOLD_SQS_ENDPOINT') : undefined;
  return {
    queue: url ? { url } : { name: name as string },
    publicKeyPem,
    ...(sqsEndpoint ? { sqsEndpoint } : {}),
    idleSeconds: parseInboxIdleSeconds(get('FLEETFOLD_INBOX_IDLE_SECONDS'), mode),
  };
}

/** Both the distribution's URL and the grant, or neither (then snapshots go to S3 directly). */
function readUpload(get: (name: string) => string | undefined): AgentConfig['upload'] {
  const url = get('FLEETFOLD_UPLOAD_URL');
  const grantFile = get('FLEETFOLD_UPLOAD_GRANT_FILE');
  if (!url && !grantFile) return undefined;
  if (!url) throw new ConfigError('FLEETFOLD_UPLOAD_URL is not set, but FLEETFOLD_UPLOAD_GRANT_FILE is');
  if (!grantFile)
    throw new ConfigError('FLEETFOLD_UPLOAD_GRANT_FILE is not set, but FLEETFOLD_UPLOAD_URL is');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`FLEETFOLD_UPLOAD_URL="${url}" is not a URL`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new ConfigError(`FLEETFOLD_UPLOAD_URL="${url}" is not an http(s) URL`);
  }
  return { url: url.replace(/\/+$/, ''), grantFile };
}
