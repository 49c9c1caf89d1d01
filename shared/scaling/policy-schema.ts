/**
 * The shape of a host type's `scaling` block, with its documented defaults (zod/mini, worded like
 * shared/groups/definition-schema.ts). It depends on nothing in groups/, so the definition schema can embed it
 * (`scaling: z.optional(ScalingPolicySchema)`) without an import cycle; what needs the host type is
 * compileScalingPolicy's (./policy.ts).
 */
import * as z from 'zod/mini';
import '../zod.ts';
import { CHANNELS, type Channel } from '../schemas.ts';

export const DEFAULT_TOLERANCE = 0.1;
export const DEFAULT_SCALE_UP_WINDOW_SECONDS = 0;
export const DEFAULT_SCALE_DOWN_WINDOW_SECONDS = 300;
/**
 * Each dip of the last hour that came back (the recommendation fell below the count and rose to it again, see
 * countReturns) doubles the scale-down window, up to this: a demand that keeps coming back is not worth the
 * boot and drain of chasing it. Set it to scaleDownSeconds to turn the damping off (HPA's behaviour).
 */
export const DEFAULT_MAX_SCALE_DOWN_WINDOW_SECONDS = 1800;
export const FLAP_MEMORY_SECONDS = 3600;
export const DEFAULT_STEP_PERIOD_SECONDS = 15;
export const DEFAULT_SCALE_UP_STEP = { hosts: 4, percent: 100 } as const;
export const DEFAULT_SCALE_DOWN_STEP = { percent: 100 } as const;
export const DEFAULT_COOLDOWN_SECONDS = 0;
export const DEFAULT_LOOKBACK_WEEKS = 2;
/**
 * The short-term trend is read over the last ten minutes (and must still hold in their last sixth): a shorter
 * window reacts sooner on a ramp but overshoots at the top of a spike, and the tolerance then keeps the extra
 * hosts (bench/autoscale.ts, spike trace: +13% host-hours at 300 s, +5% at 600 s; ramp overload 5 vs 7 minutes).
 */
export const DEFAULT_TREND_SECONDS = 600;
export const MAX_SCHEDULE_MINUTES = 7 * 24 * 60;
/** Launch to serving, when the block does not say: the predictor's lead and what a scale-out waits for. */
export const DEFAULT_BOOT_SECONDS = 120;

const expected =
  (what: string) =>
  (issue: { input?: unknown }): string =>
    issue.input === undefined ? 'is required' : `expected ${what}`;

const positive = (what: string) => z.number({ error: expected(what) }).check(z.positive(`expected ${what}`));

const seconds = () =>
  z
    .int({ error: expected('a whole number of seconds, 0 or more') })
    .check(z.minimum(0, 'expected a whole number of seconds, 0 or more'));

const period = () =>
  z
    .int({ error: expected('a positive number of seconds') })
    .check(z.minimum(1, 'expected a positive number of seconds'));

const hosts = () =>
  z
    .int({ error: expected('a non-negative number of hosts') })
    .check(z.minimum(0, 'expected a non-negative number of hosts'));

const percent = () =>
  z
    .number({ error: expected('a percentage, 0 or more') })
    .check(z.minimum(0, 'expected a percentage, 0 or more'));

const channelTargets = Object.fromEntries(
  CHANNELS.map((channel) => [channel, z.optional(positive('a positive number of sessions per host'))]),
) as Record<Channel, z.ZodMiniOptional<z.ZodMiniNumber<number>>>;

export const ScalingTargetsSchema = z.strictObject({
  ...channelTargets,
  load: z.optional(
    z
      .number({ error: expected('a load between 0 and 1') })
      .check(z.positive('expected a load between 0 and 1'), z.maximum(1, 'expected a load between 0 and 1')),
  ),
});

/**
 * A business metric that hosts report in their snapshots. "Higher is worse" (latency): provisionAbove, and
 * optionally deprovisionBelow. "Lower is worse" (call quality, MOS): provisionBelow, optionally
 * deprovisionAbove. Past the provision threshold the fleet grows by `stepHosts`; between the two thresholds it
 * may not shrink; past the deprovision threshold (or without one) the metric does not hold it back.
 */
export const ScalingMetricSchema = z.strictObject({
  name: z
    .string({ error: expected('a metric name') })
    .check(z.regex(/^[A-Za-z][A-Za-z0-9_.]{0,63}$/, 'expected a metric name (letters, digits, "_" or ".")')),
  provisionAbove: z.optional(z.number({ error: expected('a number') })),
  deprovisionBelow: z.optional(z.number({ error: expected('a number') })),
  provisionBelow: z.optional(z.number({ error: expected('a number') })),
  deprovisionAbove: z.optional(z.number({ error: expected('a number') })),
  stepHosts: z._default(
    z
      .int({ error: expected('a positive number of hosts') })
      .check(z.minimum(1, 'expected a positive number of hosts')),
    1,
  ),
});

export const StepLimitSchema = (defaults: { hosts?: number; percent?: number }) =>
  z.strictObject({
    /** At most this many hosts per period … */
    hosts: defaults.hosts === undefined ? z.optional(hosts()) : z._default(hosts(), defaults.hosts),
    /** … or this percentage of the count at the period's start, whichever allows more (HPA's selectPolicy Max). */
    percent: defaults.percent === undefined ? z.optional(percent()) : z._default(percent(), defaults.percent),
    periodSeconds: z._default(period(), DEFAULT_STEP_PERIOD_SECONDS),
  });

export const ScheduleEntrySchema = z.strictObject({
  name: z.optional(z.string({ error: expected('a string') }).check(z.maxLength(64, 'at most 64 characters'))),
  cron: z.string({ error: expected('a 5-field cron expression') }),
  timeZone: z._default(z.string({ error: expected('an IANA time zone, e.g. "Europe/Paris"') }), 'UTC'),
  minCapacity: hosts(),
  durationMinutes: z
    .int({ error: expected(`a number of minutes, 1 to ${MAX_SCHEDULE_MINUTES}`) })
    .check(
      z.minimum(1, `expected a number of minutes, 1 to ${MAX_SCHEDULE_MINUTES}`),
      z.maximum(MAX_SCHEDULE_MINUTES, `expected a number of minutes, 1 to ${MAX_SCHEDULE_MINUTES}`),
    ),
});

export const PredictiveSchema = z.strictObject({
  /** Silent until there is a week of history; the short-term trend works from the first minutes. */
  enabled: z._default(z.boolean({ error: expected('true or false') }), true),
  lookbackWeeks: z._default(
    z
      .int({ error: expected('1 to 8 weeks') })
      .check(z.minimum(1, 'expected 1 to 8 weeks'), z.maximum(8, 'expected 1 to 8 weeks')),
    DEFAULT_LOOKBACK_WEEKS,
  ),
  /** How far ahead to provision; defaults to the host type's boot time, so a host is ready for the peak. */
  leadSeconds: z.optional(seconds()),
  trendSeconds: z._default(seconds(), DEFAULT_TREND_SECONDS),
});

export const ScalingPolicySchema = z.strictObject({
  targets: z.optional(ScalingTargetsSchema),
  metrics: z._default(z.array(ScalingMetricSchema), []),
  tolerance: z._default(
    z
      .number({ error: expected('a tolerance between 0 and 1') })
      .check(
        z.minimum(0, 'expected a tolerance between 0 and 1'),
        z.lt(1, 'expected a tolerance between 0 and 1'),
      ),
    DEFAULT_TOLERANCE,
  ),
  stabilization: z.prefault(
    z.strictObject({
      scaleUpSeconds: z._default(seconds(), DEFAULT_SCALE_UP_WINDOW_SECONDS),
      scaleDownSeconds: z._default(seconds(), DEFAULT_SCALE_DOWN_WINDOW_SECONDS),
      maxScaleDownSeconds: z._default(seconds(), DEFAULT_MAX_SCALE_DOWN_WINDOW_SECONDS),
    }),
    {},
  ),
  scaleUp: z.prefault(StepLimitSchema(DEFAULT_SCALE_UP_STEP), {}),
  scaleDown: z.prefault(StepLimitSchema(DEFAULT_SCALE_DOWN_STEP), {}),
  /** After any change, scale-in waits this long; scale-out never waits for a cooldown. */
  cooldownSeconds: z._default(seconds(), DEFAULT_COOLDOWN_SECONDS),
  schedule: z._default(z.array(ScheduleEntrySchema), []),
  predictive: z.prefault(PredictiveSchema, {}),
  /** Time from launch to serving for this host type: the predictor's default lead. */
  bootSeconds: z._default(seconds(), DEFAULT_BOOT_SECONDS),
});

export type ScalingPolicy = z.output<typeof ScalingPolicySchema>;
export type ScalingPolicyInput = z.input<typeof ScalingPolicySchema>;
export type ScalingMetric = z.output<typeof ScalingMetricSchema>;
