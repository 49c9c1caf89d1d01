import { z } from 'zod';

export const CHANNELS = ['voice', 'sms', 'mms', 'video'] as const;
export type Channel = (typeof CHANNELS)[number];

export const HOST_STATUSES = ['pending', 'booting', 'running', 'draining', 'stopping', 'stopped', 'failed'] as const;
export const HostStatus = z.enum(HOST_STATUSES);
export type HostStatus = z.infer<typeof HostStatus>;

/** Host ids and names double as S3 key segments and DynamoDB keys: keep them boring. */
export const Name = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9][a-z0-9._-]*$/, 'lowercase letters, digits, ".", "_" or "-", starting with a letter or digit');

const Version = z.string().min(1).max(64);

export const ServiceInstance = z.strictObject({
  version: Version,
  status: z.enum(['starting', 'running', 'stopped', 'failed']).default('running'),
  port: z.number().int().min(1).max(65535).optional(),
});
export type ServiceInstance = z.infer<typeof ServiceInstance>;

const SessionCounts = z.strictObject({
  voice: z.number().int().min(0).default(0),
  sms: z.number().int().min(0).default(0),
  mms: z.number().int().min(0).default(0),
  video: z.number().int().min(0).default(0),
});

/** Which band of each metric the host is in; only a change of band is state, the raw number is a metric. */
export const MetricBands = z.strictObject({
  load: z.number().int().min(0),
  sessions: z.strictObject({
    voice: z.number().int().min(0),
    sms: z.number().int().min(0),
    mms: z.number().int().min(0),
    video: z.number().int().min(0),
  }),
});
export type MetricBands = z.infer<typeof MetricBands>;

/** What a host is and runs, as the host observes it. Raw load and session counts ride along as metrics. */
export const MachineState = z.strictObject({
  status: HostStatus,
  group: Name,
  hostType: Name,
  roles: z.array(Name).min(1).max(16),
  ips: z.strictObject({
    internal: z.string().max(64).optional(),
    external: z.string().max(64).optional(),
  }),
  capacity: z.strictObject({
    /** Concurrent sessions the host can carry, per channel it serves. */
    sessions: z.number().int().min(0),
    cpus: z.number().int().min(0).optional(),
    memoryMiB: z.number().int().min(0).optional(),
  }),
  config: z.strictObject({
    version: Version.optional(),
    values: z.record(z.string().max(256), z.string().max(4096)).default({}),
  }),
  software: z.record(Name, ServiceInstance).default({}),
  operational: z.strictObject({
    /** Utilisation 0..1 (a metric). */
    load: z.number().min(0).max(1).default(0),
    /** Live sessions per channel (a metric). */
    sessions: SessionCounts.default({ voice: 0, sms: 0, mms: 0, video: 0 }),
    dataRefs: z.array(z.string().max(1024)).max(32).default([]),
  }),
  /** The version of the desired state the host last applied (set by the reconcile loop). */
  appliedStateVersion: z.number().int().min(0).optional(),
});
export type MachineState = z.infer<typeof MachineState>;
export type MachineStateInput = z.input<typeof MachineState>;

export const SIGNATURE_PREFIX = 'hmac-sha256=';

export const Snapshot = z.strictObject({
  hostId: Name,
  /** Strictly increasing per host; also the object key's last segment. */
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  /** When the host signed it (ISO 8601); must fall within the clock-skew window of S3's receipt time. */
  signedAt: z.iso.datetime({ offset: true }),
  state: MachineState,
  signature: z.string().startsWith(SIGNATURE_PREFIX).max(128),
});
export type Snapshot = z.infer<typeof Snapshot>;
export type UnsignedSnapshot = Omit<Snapshot, 'signature'>;

export const RegisterHostRequest = z.strictObject({
  hostId: Name.optional(),
  group: Name,
  hostType: Name,
  roles: z.array(Name).min(1).max(16),
});
export type RegisterHostRequest = z.infer<typeof RegisterHostRequest>;
