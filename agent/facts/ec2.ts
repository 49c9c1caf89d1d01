import os from 'node:os';
import type { Channel, MachineStateInput } from '../../shared/schemas.ts';
import type { HostRuntime } from '../runtime.ts';
import type { FactSource, ServiceVersions } from './source.ts';

export const DEFAULT_IMDS_URL = 'http://169.254.169.254';

export interface ImdsClientOptions {
  /** Injectable so tests can point it at a fake IMDS; default the link-local address. */
  baseUrl?: string;
  /** Lifetime asked for each session token; default 6 h (the maximum). */
  tokenTtlSeconds?: number;
  /** Per request; IMDS answers in milliseconds, and off EC2 the address just hangs. Default 2 s. */
  timeoutMs?: number;
  /** Milliseconds since the epoch. */
  clock?: () => number;
}

/**
 * Instance metadata over IMDSv2 only: a session token from a PUT, then GETs carrying it. IMDSv1 is
 * commonly disabled (and should be), so the agent never relies on it.
 */
export class ImdsClient {
  readonly #baseUrl: string;
  readonly #ttlSeconds: number;
  readonly #timeoutMs: number;
  readonly #clock: () => number;
  #token: { value: string; refreshAt: number } | undefined;

  constructor(options: ImdsClientOptions = {}) {
    this.#baseUrl = (options.baseUrl ?? DEFAULT_IMDS_URL).replace(/\/+$/, '');
    this.#ttlSeconds = options.tokenTtlSeconds ?? 21_600;
    this.#timeoutMs = options.timeoutMs ?? 2_000;
    this.#clock = options.clock ?? Date.now;
  }

  /** GETs `latest/{path}`; undefined when IMDS says 404 (e.g. public-ipv4 on a private instance). */
  async get(path: string): Promise<string | undefined> {
    let response = await this.#getWithToken(path, await this.#currentToken());
    if (response.status === 401) {
      // The token expired or IMDS restarted: one fresh token, then give up loudly.
      this.#token = undefined;
      response = await this.#getWithToken(path, await this.#currentToken());
    }
    if (response.status === 404) return undefined;
    if (!response.ok) throw new Error(`IMDS GET ${path} answered ${response.status}`);
    return (await response.text()).trim();
  }

  async #getWithToken(path: string, token: string): Promise<Response> {
    return fetch(`${this.#baseUrl}/latest/${path}`, {
      headers: { 'X-aws-ec2-metadata-token': token },
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
  }

  async #currentToken(): Promise<string> {
    const now = this.#clock();
    if (this.#token && now < this.#token.refreshAt) return this.#token.value;
    const response = await fetch(`${this.#baseUrl}/latest/api/token`, {
      method: 'PUT',
      headers: { 'X-aws-ec2-metadata-token-ttl-seconds': String(this.#ttlSeconds) },
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    if (!response.ok) throw new Error(`IMDS token request answered ${response.status}`);
    const value = (await response.text()).trim();
    // Renew a minute early so a request never races the expiry.
    this.#token = { value, refreshAt: now + Math.max(0, this.#ttlSeconds - 60) * 1000 };
    return value;
  }
}

/** Instance tags that override the configured identity: the control plane can retag a running instance. */
export const TAG_GROUP = 'fleetfold:group';
export const TAG_HOST_TYPE = 'fleetfold:host-type';
export const TAG_ROLES = 'fleetfold:roles';

export interface SystemFacts {
  cpus(): number;
  totalMemoryBytes(): number;
  /** One-minute load average. */
  loadAverage(): number;
}

export const nodeSystemFacts: SystemFacts = {
  cpus: () => os.cpus().length,
  totalMemoryBytes: () => os.totalmem(),
  loadAverage: () => os.loadavg()[0] ?? 0,
};

export interface Ec2FactSourceOptions {
  imds: ImdsClient;
  group: string;
  /** Default: the instance type (e.g. "c7g.large"). */
  hostType?: string;
  roles: readonly string[];
  /** Services the host was told to run; reported as running. */
  services: ServiceVersions;
  /** What the applier made the machine run: when given, it wins over `services` (and sets status and config). */
  runtime?: HostRuntime;
  /** Default 100 per vCPU. */
  capacitySessions?: number;
  system?: SystemFacts;
  /** Live sessions per channel, from whatever the services expose; 0 when absent. */
  sessions?: () => Promise<Partial<Record<Channel, number>>>;
}

export class Ec2FactSource implements FactSource {
  readonly #options: Ec2FactSourceOptions;
  readonly #system: SystemFacts;

  constructor(options: Ec2FactSourceOptions) {
    this.#options = options;
    this.#system = options.system ?? nodeSystemFacts;
  }

  async collect(): Promise<MachineStateInput> {
    const { imds, services } = this.#options;
    const [internal, external, instanceType, tags, sessions] = await Promise.all([
      imds.get('meta-data/local-ipv4'),
      imds.get('meta-data/public-ipv4'),
      imds.get('meta-data/instance-type'),
      this.#tags(),
      this.#options.sessions?.() ?? Promise.resolve<Partial<Record<Channel, number>>>({}),
    ]);
    const cpus = this.#system.cpus();
    const hostType = tags.get(TAG_HOST_TYPE) ?? this.#options.hostType ?? instanceType;
    if (!hostType) throw new Error('host type unknown: no tag, no configuration and no instance type');
    const taggedRoles = tags.get(TAG_ROLES);
    const report = this.#options.runtime?.report();
    return {
      status: report?.mode ?? 'running',
      group: tags.get(TAG_GROUP) ?? this.#options.group,
      hostType,
      roles: taggedRoles ? splitList(taggedRoles) : [...this.#options.roles],
      ips: { internal, external },
      capacity: {
        sessions: this.#options.capacitySessions ?? cpus * 100,
        cpus,
        memoryMiB: Math.floor(this.#system.totalMemoryBytes() / 1_048_576),
      },
      config: { values: report?.config ?? {} },
      software:
        report?.services ??
        Object.fromEntries(
          Object.entries(services).map(([name, version]) => [name, { version, status: 'running' as const }]),
        ),
      operational: {
        load: cpus > 0 ? Math.min(1, Math.max(0, this.#system.loadAverage() / cpus)) : 0,
        sessions: {
          voice: sessions.voice ?? 0,
          sms: sessions.sms ?? 0,
          mms: sessions.mms ?? 0,
          video: sessions.video ?? 0,
        },
        dataRefs: [],
      },
      ...(report?.appliedStateVersion === undefined
        ? {}
        : { appliedStateVersion: report.appliedStateVersion }),
    };
  }

  /** Only our own tags; an empty map when tags in instance metadata are not enabled (404). */
  async #tags(): Promise<Map<string, string>> {
    const listing = await this.#options.imds.get('meta-data/tags/instance');
    const keys = (listing ?? '').split('\n').filter((key) => key.startsWith('fleetfold:'));
    const values = await Promise.all(
      keys.map((key) => this.#options.imds.get(`meta-data/tags/instance/${key}`)),
    );
    const tags = new Map<string, string>();
    keys.forEach((key, index) => {
      const value = values[index];
      if (value) tags.set(key, value);
    });
    return tags;
  }
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean);
}

/** The region the instance runs in, for the S3 client when nothing configured it. */
export async function imdsRegion(imds: ImdsClient): Promise<string | undefined> {
  return imds.get('meta-data/placement/region');
}
