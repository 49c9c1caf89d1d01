/**
 * What the API answers, as zod schemas: the OpenAPI document is generated from them, and tests parse real
 * responses with them, so the document cannot drift from the handlers. Objects are loose (extra members are
 * allowed) because a client must tolerate fields added later; nested domain documents (group definitions,
 * compiled groups, event data, alarm diagnoses) are described by their shape's top level only.
 */
import * as z from 'zod/mini';
import { HOST_STATUSES, MachineState, MetricBands, Name } from '../../shared/schemas.ts';

const count = () => z.int().check(z.minimum(0));
const version = () => z.int().check(z.minimum(1));
const text = () => z.string();
const time = () => z.string().check(z.minLength(1));
/** Any JSON object whose members this document does not pin down. */
const document = () => z.record(z.string(), z.unknown());
/** The cursor of the next page; absent on the last page. */
const next = () => z.optional(z.string());

/** The event-logged part of a machine state: raw metrics replaced by their bands (shared/metrics.ts). */
export const TrackedState = z.extend(z.omit(MachineState, { operational: true }), {
  operational: z.looseObject({ dataRefs: z.array(z.string()), bands: MetricBands }),
});

export const HostView = z.looseObject({
  hostId: Name,
  group: Name,
  hostType: Name,
  roles: z.array(Name),
  role: Name,
  status: z.enum(HOST_STATUSES),
  version: count(),
  lastSeq: count(),
  lastChangeSeq: count(),
  lastSeen: z.optional(time()),
  registeredAt: time(),
  observedAt: z.optional(time()),
  metrics: z.optional(z.looseObject({ load: z.number(), sessions: z.record(z.string(), count()) })),
  state: z.optional(TrackedState),
  degradedBy: z.optional(document()),
  lost: z.optional(document()),
  retired: z.optional(document()),
});

export const HostList = z.looseObject({ hosts: z.array(HostView), next: next() });

/** A CloudFront signed custom policy for `snapshots/<hostId>/*` (shared/cdn-policy.ts, docs/host-protocol.md). */
export const UploadGrant = z.looseObject({
  hostId: Name,
  url: z.string().check(z.minLength(1)),
  resource: z.string().check(z.minLength(1)),
  expiresAt: time(),
  policy: z.string().check(z.minLength(1)),
  signature: z.string().check(z.minLength(1)),
  keyPairId: z.string().check(z.minLength(1)),
});

export const Registration = z.looseObject({
  hostId: Name,
  /** The host's signing secret: shown here once, never again. */
  secret: z.string().check(z.minLength(1)),
  group: Name,
  hostType: Name,
  roles: z.array(Name),
  /** Present when the CDN upload path is configured. */
  upload: z.optional(UploadGrant),
  note: z.optional(text()),
});

export const RecordedEvent = z.looseObject({
  type: z.string().check(z.minLength(1)),
  stream: z.string(),
  version: version(),
  eventId: z.string(),
  recordedAt: time(),
  data: z.optional(z.unknown()),
});

export const HostHistory = z.looseObject({ hostId: Name, events: z.array(RecordedEvent), next: next() });
export const GroupHistory = z.looseObject({ group: Name, events: z.array(RecordedEvent), next: next() });

/** A ScalingDecided event's data (shared/groups/events.ts); its `inputs` are decideScale's explanation. */
export const ScalingDecision = z.looseObject({
  hostType: Name,
  from: count(),
  to: count(),
  direction: z.enum(['up', 'down', 'hold']),
  recommendation: count(),
  recommendedBy: text(),
  boundBy: text(),
  inputs: document(),
  at: time(),
});

const sessions = () => z.number().check(z.minimum(0));

/** One scaled host type in GET /groups/{name}/scaling: its hosts now, what it wants, and why. */
export const HostTypeScalingView = z.looseObject({
  current: z.looseObject({ ready: count(), booting: count(), draining: count(), total: count() }),
  desired: count(),
  min: count(),
  max: count(),
  channels: z.array(text()),
  demand: z.looseObject({ voice: sessions(), sms: sessions(), mms: sessions(), video: sessions() }),
  load: z.number(),
  metrics: z.record(z.string(), z.number()),
  scheduledMinimum: z.optional(count()),
  forecast: z.optional(z.looseObject({ sessions: sessions(), at: time() })),
  lastDecision: z.optional(ScalingDecision),
});

export const GroupScaling = z.looseObject({
  group: Name,
  hostTypes: z.record(z.string(), HostTypeScalingView),
  /** The last 20 decisions, newest first. */
  decisions: z.array(ScalingDecision),
});

export const HostStateAt = z.looseObject({ hostId: Name, version: version(), state: document() });

/** One path-level difference (shared/diff.ts): `old` for removed and changed, `new` for added and changed. */
export const Change = z.looseObject({
  op: z.enum(['added', 'removed', 'changed']),
  path: z.string(),
  old: z.optional(z.unknown()),
  new: z.optional(z.unknown()),
});

export const HostDiff = z.looseObject({
  hostId: Name,
  from: z.optional(version()),
  to: z.optional(version()),
  with: z.optional(Name),
  changes: z.array(Change),
});

export const HostDesired = z.looseObject({
  hostId: Name,
  version: version(),
  assignedAt: time(),
  by: document(),
  state: document(),
});

export const HostDrift = z.looseObject({
  hostId: Name,
  assignedVersion: count(),
  observedVersion: count(),
  inSync: z.boolean(),
  changes: z.array(Change),
});

const links = () => z.record(z.string(), z.string());

export const GroupSummary = z.looseObject({
  name: Name,
  definitionVersion: count(),
  running: z.boolean(),
  activeRollout: z.optional(z.string()),
  hostTypes: z.array(z.looseObject({ name: Name, desired: count() })),
  updatedAt: z.optional(time()),
});

export const GroupList = z.looseObject({ groups: z.array(GroupSummary), next: next() });

export const GroupView = z.looseObject({
  name: Name,
  definitionVersion: count(),
  running: z.boolean(),
  activeRollout: z.optional(z.string()),
  declaredQueue: z.optional(z.array(z.unknown())),
  definition: document(),
  compiled: document(),
  links: links(),
});

export const GroupDefined = z.extend(GroupView, {
  outcome: z.enum(['created', 'updated', 'unchanged']),
  executionId: z.optional(z.string()),
  rollout: z.optional(z.looseObject({ id: z.string(), links: links() })),
});

export const GroupDeleted = z.looseObject({ group: Name, deleted: z.literal(true) });

export const GroupRun = z.looseObject({
  group: Name,
  running: z.boolean(),
  executionId: z.string(),
  links: links(),
});

const Wave = z.looseObject({
  index: count(),
  hosts: z.array(z.string()),
  status: z.enum(['pending', 'running', 'done', 'failed']),
});

export const RolloutView = z.looseObject({
  id: z.string().check(z.minLength(1)),
  group: Name,
  status: z.enum([
    'pending',
    'running',
    'paused',
    'reverting',
    'succeeded',
    'failed',
    'rolled-back',
    'aborted',
  ]),
  service: z.string(),
  version: z.optional(z.string()),
  config: z.optional(z.record(z.string(), z.string())),
  select: z.optional(z.string()),
  operation: z.optional(z.string()),
  createdAt: time(),
  updatedAt: time(),
  waves: z.array(Wave),
  hosts: z.looseObject({
    done: z.array(z.string()),
    pending: z.array(z.string()),
    failed: z.array(z.string()),
  }),
  links: links(),
  /** The reconcile run that took the request in, when one was started or named. */
  executionId: z.optional(z.string()),
});

export const AlarmList = z.looseObject({ alarms: z.array(document()), next: next() });

/** This document itself, served by GET /openapi.json. */
export const OpenApiDocument = z.looseObject({
  openapi: z.string(),
  info: document(),
  paths: document(),
});

/** A JSON Schema document (GET /schemas/snapshot.json). */
export const JsonSchemaDocument = z.looseObject({ $schema: z.string(), $id: z.optional(z.string()) });

const BillView = z.looseObject({
  totalUsd: z.number(),
  byService: z.record(z.string(), z.number()),
  lines: z.array(
    z.looseObject({
      id: z.string(),
      service: z.string(),
      label: z.string(),
      quantity: z.number(),
      unit: z.string(),
      usd: z.number(),
    }),
  ),
});

/** GET /cost: the system's own estimate from its counters. */
export const CostEstimate = z.looseObject({
  from: time(),
  to: time(),
  hours: z.int().check(z.minimum(1)),
  hoursCounted: count(),
  /** From the first counted hour (or the window's start) to now: what the month is scaled from. */
  spanHours: z.number().check(z.minimum(0)),
  hosts: count(),
  counters: z.record(z.string(), z.number()),
  window: BillView,
  monthly: BillView,
  prices: z.string(),
});
