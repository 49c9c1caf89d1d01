import * as z from 'zod/mini';
import './zod.ts';

export const CHANNELS = ['voice', 'sms', 'mms', 'video'] as const;
export type Channel = (typeof CHANNELS)[number];

/** What a host may say it is in a snapshot. */
export const REPORTED_HOST_STATUSES = [
  'pending',
  'booting',
  'running',
  'draining',
  'stopping',
  'stopped',
  'failed',
] as const;
export const ReportedHostStatus = z.enum(REPORTED_HOST_STATUSES, {
  error: (issue) =>
    issue.input === 'lost' || issue.input === 'degraded'
      ? `"${issue.input}" is the control plane's judgement of a host, never a status a host reports`
      : `expected one of ${REPORTED_HOST_STATUSES.join(', ')}`,
});
export type ReportedHostStatus = z.infer<typeof ReportedHostStatus>;

/**
 * What a host record says it is: what it reported, or what the control plane judged from the outside — `lost`
 * (silent past its heartbeats, and replaced) and `degraded` (running, but a service it depends on has no
 * healthy provider).
 */
export const HOST_STATUSES = [...REPORTED_HOST_STATUSES, 'lost', 'degraded'] as const;
export const HostStatus = z.enum(HOST_STATUSES);
export type HostStatus = z.infer<typeof HostStatus>;

/** Host ids and names double as S3 key segments and DynamoDB keys: keep them boring. */
export const Name = z
  .string()
  .check(
    z.minLength(1),
    z.maxLength(64),
    z.regex(
      /^[a-z0-9][a-z0-9._-]*$/,
      'lowercase letters, digits, ".", "_" or "-", starting with a letter or digit',
    ),
  );

/**
 * Versions and config keys reach hosts' shells, unit names, file paths and XML: only a safe grammar passes —
 * letters, digits and `._+-~`, starting with a letter or digit (semver with pre-release and build parts fits).
 * Anything else (`$(rm -rf /)`, spaces, quotes, slashes, a leading `-` that reads as a flag) is refused.
 */
export const SAFE_TOKEN = /^[A-Za-z0-9][A-Za-z0-9._+~-]*$/;
export const SAFE_TOKEN_RULE = 'letters, digits, ".", "_", "+", "-" or "~", starting with a letter or digit';

const safeToken = (what: string, max: number) =>
  z
    .string({ error: (issue) => (issue.input === undefined ? 'is required' : `expected ${what}`) })
    .check(
      z.minLength(1, `${what} must not be empty`),
      z.maxLength(max, `${what} of at most ${max} characters`),
      z.regex(SAFE_TOKEN, `${what} of ${SAFE_TOKEN_RULE}`),
    );

/** A service version: semver, or dotted numbers, or any other safe token. */
export const Version = safeToken('a version', 64);
/** A service's config key (e.g. `sip.port`). */
export const ConfigKey = safeToken('a config key', 256);
const count = () => z.int().check(z.minimum(0));

export const ServiceInstance = z.strictObject({
  version: Version,
  status: z._default(z.enum(['starting', 'running', 'stopped', 'failed']), 'running'),
  port: z.optional(z.int().check(z.minimum(1), z.maximum(65535))),
});
export type ServiceInstance = z.infer<typeof ServiceInstance>;

const SessionCounts = z.strictObject({
  voice: z._default(count(), 0),
  sms: z._default(count(), 0),
  mms: z._default(count(), 0),
  video: z._default(count(), 0),
});

/** Which band of each metric the host is in; only a change of band is state, the raw number is a metric. */
export const MetricBands = z.strictObject({
  load: count(),
  sessions: z.strictObject({ voice: count(), sms: count(), mms: count(), video: count() }),
});
export type MetricBands = z.infer<typeof MetricBands>;

/** Addresses end up in firewall rules (events/xslt/firewall.xsl) and upstream lists: an address and nothing else. */
const IpAddress = z.union([z.ipv4(), z.ipv6()], { error: 'expected an IPv4 or IPv6 address' });

/** What a host is and runs, as the host observes it. Raw load and session counts ride along as metrics. */
export const MachineState = z.strictObject({
  status: ReportedHostStatus,
  group: Name,
  hostType: Name,
  roles: z.array(Name).check(z.minLength(1), z.maxLength(16)),
  ips: z.strictObject({
    internal: z.optional(IpAddress),
    external: z.optional(IpAddress),
  }),
  capacity: z.strictObject({
    /** Concurrent sessions the host can carry, per channel it serves. */
    sessions: count(),
    cpus: z.optional(count()),
    memoryMiB: z.optional(count()),
  }),
  config: z.strictObject({
    version: z.optional(Version),
    values: z._default(z.record(ConfigKey, z.string().check(z.maxLength(4096))), {}),
  }),
  software: z._default(z.record(Name, ServiceInstance), {}),
  operational: z.strictObject({
    /** Utilisation 0..1 (a metric). */
    load: z._default(z.number().check(z.minimum(0), z.maximum(1)), 0),
    /** Live sessions per channel (a metric). */
    sessions: z._default(SessionCounts, { voice: 0, sms: 0, mms: 0, video: 0 }),
    dataRefs: z._default(z.array(z.string().check(z.maxLength(1024))).check(z.maxLength(32)), []),
  }),
  /** The version of the desired state the host last applied (set by the reconcile loop). */
  appliedStateVersion: z.optional(count()),
});
export type MachineState = z.infer<typeof MachineState>;
export type MachineStateInput = z.input<typeof MachineState>;

export const SIGNATURE_PREFIX = 'hmac-sha256=';

export const Snapshot = z.strictObject({
  hostId: Name,
  /** Strictly increasing per host; also the object key's last segment. */
  seq: z.int().check(z.minimum(1), z.maximum(Number.MAX_SAFE_INTEGER)),
  /** When the host signed it (ISO 8601); must fall within the clock-skew window of S3's receipt time. */
  signedAt: z.iso.datetime({ offset: true }),
  state: MachineState,
  signature: z.string().check(z.startsWith(SIGNATURE_PREFIX), z.maxLength(128)),
});
export type Snapshot = z.infer<typeof Snapshot>;
export type UnsignedSnapshot = Omit<Snapshot, 'signature'>;

export const RegisterHostRequest = z.strictObject({
  hostId: z.optional(Name),
  group: Name,
  hostType: Name,
  roles: z.array(Name).check(z.minLength(1), z.maxLength(16)),
});
export type RegisterHostRequest = z.infer<typeof RegisterHostRequest>;
