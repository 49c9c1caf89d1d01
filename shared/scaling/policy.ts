/**
 * A host type's `scaling` block: what to scale on and how fast. The defaults are Kubernetes HPA's where HPA
 * has the concept (tolerance 0.1, scale-down window 300 s, up max(4 hosts, 100%) and down 100% per 15 s);
 * what HPA lacks (schedules, a predictor, business metrics with two thresholds, flap damping) is fleetfold's.
 *
 *   scaling:
 *     targets: { voice: 50, video: 8, load: 0.7 }   # sessions per host per channel; average load 0..1
 *     metrics:
 *       - { name: p99LatencyMs, provisionAbove: 250, deprovisionBelow: 150 }   # higher is worse
 *       - { name: mos, provisionBelow: 3.6, deprovisionAbove: 4.1 }            # lower is worse
 *     schedule:
 *       - { name: christmas-eve, cron: "30 17 24 12 *", timeZone: Europe/Paris, minCapacity: 40, durationMinutes: 300 }
 *
 * Only the shape is checked by the schema; `compileScalingPolicy` refuses contradictions (thresholds the wrong
 * way round, a target for a channel the host type does not serve, a schedule above max) naming the field.
 */
import { ValidationError } from '../errors.ts';
import { type DefinitionIssue, definitionIssues, describeIssues } from '../groups/definition-schema.ts';
import { CHANNELS, type Channel } from '../schemas.ts';
import { type ScalingMetric, ScalingPolicySchema } from './policy-schema.ts';
import { type CompiledScheduleEntry, CronError, isTimeZone, parseCron } from './schedule.ts';

/** The schema is its own module (no import of groups/) so the definition schema can embed it. */
export * from './policy-schema.ts';

export interface CompiledMetric {
  name: string;
  /** "higher": higher values are worse (latency); "lower": lower values are worse (MOS). */
  worse: 'higher' | 'lower';
  provision: number;
  deprovision?: number;
  stepHosts: number;
}

export interface StepLimit {
  hosts?: number;
  percent?: number;
  periodSeconds: number;
}

/** What decideScale reads: the policy with its host type's bounds and every default resolved. */
export interface CompiledScalingPolicy {
  min: number;
  max: number;
  /** Sessions per host, per channel the host type serves (pooled: their host fractions add up). */
  targets: Partial<Record<Channel, number>>;
  targetLoad?: number;
  metrics: CompiledMetric[];
  tolerance: number;
  stabilization: { scaleUpSeconds: number; scaleDownSeconds: number; maxScaleDownSeconds: number };
  scaleUp: StepLimit;
  scaleDown: StepLimit;
  cooldownSeconds: number;
  schedule: CompiledScheduleEntry[];
  predictive: { enabled: boolean; lookbackWeeks: number; leadSeconds: number; trendSeconds: number };
}

/** The host type fields the policy depends on (already in the definition schema). */
export interface ScaledHostType {
  count?: number;
  min?: number;
  max?: number;
  channels?: readonly Channel[];
}

export interface CompileOptions {
  /** Time from launch to serving: the predictor's default lead; default the block's own `bootSeconds`. */
  bootSeconds?: number;
  /** Path of the block in the definition, for messages; default "scaling". */
  at?: string;
}

function compileMetric(
  metric: ScalingMetric,
  at: string,
  problems: DefinitionIssue[],
): CompiledMetric | undefined {
  const { provisionAbove, deprovisionBelow, provisionBelow, deprovisionAbove } = metric;
  const higher = provisionAbove !== undefined || deprovisionBelow !== undefined;
  const lower = provisionBelow !== undefined || deprovisionAbove !== undefined;
  if (higher && lower) {
    problems.push({
      path: at,
      message:
        'give provisionAbove/deprovisionBelow (higher is worse) or provisionBelow/deprovisionAbove (lower is worse), not both',
    });
    return undefined;
  }
  if (!higher && !lower) {
    problems.push({
      path: at,
      message: 'give provisionAbove (higher is worse) or provisionBelow (lower is worse)',
    });
    return undefined;
  }
  const worse = higher ? 'higher' : 'lower';
  const [provisionName, deprovisionName] = higher
    ? ['provisionAbove', 'deprovisionBelow']
    : ['provisionBelow', 'deprovisionAbove'];
  const provision = higher ? provisionAbove : provisionBelow;
  const deprovision = higher ? deprovisionBelow : deprovisionAbove;
  if (provision === undefined) {
    problems.push({ path: `${at}.${provisionName}`, message: `is required with ${deprovisionName}` });
    return undefined;
  }
  if (deprovision !== undefined) {
    // The deprovision threshold must sit on the good side, with a band between: else both fire, or it flaps.
    const wrongSide = higher ? deprovision > provision : deprovision < provision;
    if (wrongSide) {
      problems.push({
        path: `${at}.${deprovisionName}`,
        message: `${deprovision} is ${higher ? 'above' : 'below'} ${provisionName} ${provision}`,
      });
      return undefined;
    }
    if (deprovision === provision) {
      problems.push({
        path: `${at}.${deprovisionName}`,
        message: `${deprovision} equals ${provisionName}: leave a band between them, or the count flaps`,
      });
      return undefined;
    }
  }
  return {
    name: metric.name,
    worse,
    provision,
    ...(deprovision === undefined ? {} : { deprovision }),
    stepHosts: metric.stepHosts,
  };
}

function checkStep(step: StepLimit, at: string, problems: DefinitionIssue[]): void {
  if ((step.hosts ?? 0) === 0 && (step.percent ?? 0) === 0) {
    problems.push({
      path: at,
      message: 'allows no host per period, so the count could never change; give hosts or percent above 0',
    });
  }
}

/**
 * The shape-checked block plus what only the whole host type can tell: returns the problems (paths start with
 * `options.at`) and, when there are none, the compiled policy. For compileGroup to collect with its own.
 */
export function checkScalingPolicy(
  value: unknown,
  hostType: ScaledHostType,
  options: CompileOptions = {},
): { policy?: CompiledScalingPolicy; problems: DefinitionIssue[] } {
  const at = options.at ?? 'scaling';
  const parsed = ScalingPolicySchema.safeParse(value);
  if (!parsed.success) {
    const problems = definitionIssues(parsed.error.issues).map((issue) => ({
      path: issue.path === '' ? at : `${at}.${issue.path}`,
      message: issue.message,
    }));
    return { problems };
  }
  const policy = parsed.data;
  const problems: DefinitionIssue[] = [];

  if (hostType.max === undefined) {
    problems.push({ path: `${at}`, message: 'the host type needs a max to scale up to' });
  }
  const min = hostType.min ?? hostType.count ?? 0;
  const max = hostType.max ?? min;

  const served = new Set(hostType.channels ?? []);
  const targets: Partial<Record<Channel, number>> = {};
  for (const channel of CHANNELS) {
    const target = policy.targets?.[channel];
    if (target === undefined) continue;
    if (!served.has(channel)) {
      const list = served.size === 0 ? 'none' : [...served].join(', ');
      problems.push({
        path: `${at}.targets.${channel}`,
        message: `the host type does not serve ${channel} (its channels: ${list})`,
      });
    }
    targets[channel] = target;
  }

  const metrics = policy.metrics
    .map((metric, i) => compileMetric(metric, `${at}.metrics[${i}]`, problems))
    .filter((metric): metric is CompiledMetric => metric !== undefined);
  const names = new Set<string>();
  policy.metrics.forEach((metric, i) => {
    if (names.has(metric.name)) {
      problems.push({ path: `${at}.metrics[${i}].name`, message: `"${metric.name}" is listed twice` });
    }
    names.add(metric.name);
  });

  const hasTargets = Object.keys(targets).length > 0 || policy.targets?.load !== undefined;
  if (!hasTargets && policy.metrics.length === 0 && policy.schedule.length === 0) {
    problems.push({ path: at, message: 'nothing to scale on: give targets, metrics or a schedule' });
  }

  const { scaleDownSeconds, maxScaleDownSeconds } = policy.stabilization;
  if (maxScaleDownSeconds < scaleDownSeconds) {
    problems.push({
      path: `${at}.stabilization.maxScaleDownSeconds`,
      message: `${maxScaleDownSeconds} is below scaleDownSeconds ${scaleDownSeconds}`,
    });
  }
  checkStep(policy.scaleUp, `${at}.scaleUp`, problems);
  checkStep(policy.scaleDown, `${at}.scaleDown`, problems);

  const schedule: CompiledScheduleEntry[] = [];
  policy.schedule.forEach((entry, i) => {
    const entryAt = `${at}.schedule[${i}]`;
    if (!isTimeZone(entry.timeZone)) {
      problems.push({
        path: `${entryAt}.timeZone`,
        message: `unknown time zone ${JSON.stringify(entry.timeZone)}`,
      });
    }
    if (hostType.max !== undefined && entry.minCapacity > hostType.max) {
      problems.push({
        path: `${entryAt}.minCapacity`,
        message: `${entry.minCapacity} is above max ${hostType.max}`,
      });
    }
    try {
      const { name, ...rest } = entry;
      schedule.push({ ...(name === undefined ? {} : { name }), ...rest, expression: parseCron(entry.cron) });
    } catch (error) {
      if (!(error instanceof CronError) && !(error instanceof ValidationError)) throw error;
      problems.push({ path: `${entryAt}.cron`, message: error.message });
    }
  });

  if (problems.length > 0) return { problems };
  return {
    problems,
    policy: {
      min,
      max,
      targets,
      ...(policy.targets?.load === undefined ? {} : { targetLoad: policy.targets.load }),
      metrics,
      tolerance: policy.tolerance,
      stabilization: policy.stabilization,
      scaleUp: policy.scaleUp,
      scaleDown: policy.scaleDown,
      cooldownSeconds: policy.cooldownSeconds,
      schedule,
      predictive: {
        enabled: policy.predictive.enabled,
        lookbackWeeks: policy.predictive.lookbackWeeks,
        leadSeconds: policy.predictive.leadSeconds ?? options.bootSeconds ?? policy.bootSeconds,
        trendSeconds: policy.predictive.trendSeconds,
      },
    },
  };
}

/** checkScalingPolicy that throws a ValidationError naming every offending field (details.errors). */
export function compileScalingPolicy(
  value: unknown,
  hostType: ScaledHostType,
  options: CompileOptions = {},
): CompiledScalingPolicy {
  const { policy, problems } = checkScalingPolicy(value, hostType, options);
  if (policy === undefined) {
    throw new ValidationError(`scaling policy is invalid: ${describeIssues(problems)}`, { errors: problems });
  }
  return policy;
}
