/**
 * The shape of a group definition, with its documented defaults. Only the shape is checked here; what needs
 * the whole definition (names that must resolve, cycles, counts that must agree, selectors) is compileGroup's.
 */
import * as z from 'zod/mini';
import '../zod.ts';
import { ValidationError } from '../errors.ts';
import { DEFAULT_LIVENESS } from '../hosts/liveness.ts';
import { ScalingPolicySchema } from '../scaling/policy-schema.ts';
import { CHANNELS, ConfigKey, Version } from '../schemas.ts';
import type { GroupDefinition } from './model.ts';

export const DEFAULT_WAVE = 'max(1, 25%)';
export const DEFAULT_DISRUPTION_BUDGET = 'max(1, 25%)';
export const DEFAULT_CONVERGENCE_TIMEOUT_SECONDS = 300;
export const DEFAULT_DRAIN_TIMEOUT_SECONDS = 600;

const NAME_RULE = 'lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, at most 64';

/** A type error on a missing field reads "is required", not "expected a string". */
const expected =
  (what: string) =>
  (issue: { input?: unknown }): string =>
    issue.input === undefined ? 'is required' : `expected ${what}`;

/** Names become host ids, S3 key segments and SNS filter values: keep them boring. */
const name = () =>
  z
    .string({ error: expected(`a name (${NAME_RULE})`) })
    .check(z.regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, `expected a name (${NAME_RULE})`));

const text = (max: number) =>
  z
    .string({ error: expected('a string') })
    .check(z.minLength(1, 'must not be empty'), z.maxLength(max, `at most ${max} characters`));

const count = () =>
  z.int({ error: expected('a non-negative integer') }).check(z.minimum(0, 'expected a non-negative integer'));

const seconds = () =>
  z
    .int({ error: expected('a positive number of seconds') })
    .check(z.minimum(1, 'expected a positive number of seconds'));

export const ServiceSpecSchema = z.strictObject({
  version: Version,
  config: z.optional(
    z.record(ConfigKey, z.string({ error: expected('a string value') }).check(z.maxLength(4096))),
  ),
  port: z.optional(
    z
      .int({ error: expected('a port number 0-65535 (0 picks a free port)') })
      .check(
        z.minimum(0, 'expected a port number 0-65535 (0 picks a free port)'),
        z.maximum(65535, 'expected a port number 0-65535 (0 picks a free port)'),
      ),
  ),
  /** Stopped on purpose (a whole-group `stop` rollout that succeeded writes it; a `start` takes it away). */
  stopped: z.optional(z.literal(true, { error: expected('true, or no stopped at all') })),
});

export const HostTypeSchema = z.strictObject({
  roles: z
    .array(name())
    .check(z.minLength(1, 'expected at least one role'), z.maxLength(16, 'at most 16 roles')),
  instanceType: text(64),
  count: z.optional(count()),
  min: z.optional(count()),
  max: z.optional(count()),
  image: z.optional(text(256)),
  launchTemplate: z.optional(text(256)),
  services: z.record(name(), ServiceSpecSchema),
  balances: z.optional(z.array(name())),
  channels: z.optional(z.array(z.enum(CHANNELS, { error: expected(`one of ${CHANNELS.join(', ')}`) }))),
  /** The autoscaler's policy (shared/scaling/policy-schema.ts): between min and max, by demand. */
  scaling: z.optional(ScalingPolicySchema),
});

export const RolloutPolicySchema = z.strictObject({
  wave: z._default(text(256), DEFAULT_WAVE),
  surgeFirst: z._default(z.boolean({ error: expected('true or false') }), true),
  convergenceTimeoutSeconds: z._default(seconds(), DEFAULT_CONVERGENCE_TIMEOUT_SECONDS),
});

export const DrainPolicySchema = z.strictObject({
  waitForSessions: z._default(z.boolean({ error: expected('true or false') }), true),
  timeoutSeconds: z._default(seconds(), DEFAULT_DRAIN_TIMEOUT_SECONDS),
  onTimeout: z._default(z.enum(['proceed', 'fail'], { error: expected('"proceed" or "fail"') }), 'proceed'),
});

/**
 * How long a host may be silent before it is lost: its agent posts a heartbeat every `heartbeatSeconds` (the
 * agent's FLEETFOLD_HEARTBEAT_SECONDS must not be longer), and missing `missedHeartbeats` of them in a row
 * means it is gone. Defaults: the agent's AWS default of an hour, three missed.
 */
export const LivenessPolicySchema = z.strictObject({
  heartbeatSeconds: z._default(seconds(), DEFAULT_LIVENESS.heartbeatSeconds),
  missedHeartbeats: z._default(
    z
      .int({ error: expected('a whole number of heartbeats, at least 1') })
      .check(z.minimum(1, 'expected a whole number of heartbeats, at least 1')),
    DEFAULT_LIVENESS.missedHeartbeats,
  ),
});

export const RuleSchema = z.strictObject({
  when: text(1024),
  // biome-ignore lint/suspicious/noThenProperty: the model's rules read "when … then …"; a rule is never awaited.
  then: text(1024),
});

export const GroupConfigurationSchema = z.strictObject({
  // prefault, not default: an omitted section is parsed as {} so its own fields get their defaults.
  rollout: z.prefault(RolloutPolicySchema, {}),
  drain: z.prefault(DrainPolicySchema, {}),
  disruptionBudget: z._default(text(256), DEFAULT_DISRUPTION_BUDGET),
  rules: z._default(z.array(RuleSchema), []),
  liveness: z.prefault(LivenessPolicySchema, {}),
  regions: z.optional(z.array(text(32))),
});

export const GroupDefinitionSchema = z.strictObject(
  {
    name: name(),
    hostTypes: z
      .record(name(), HostTypeSchema)
      .check(z.refine((hostTypes) => Object.keys(hostTypes).length > 0, 'expected at least one host type')),
    dependencies: z.record(name(), z.array(name())),
    configuration: z.prefault(GroupConfigurationSchema, {}),
  },
  { error: expected('an object (a group definition)') },
);

/** The shape must stay the model's: this line fails to compile if they drift apart. */
const _sameShape: (value: z.output<typeof GroupDefinitionSchema>) => GroupDefinition = (value) => value;
void _sameShape;

export interface DefinitionIssue {
  /** Dotted path into the definition, e.g. "hostTypes.media.count" ("" for the whole definition). */
  path: string;
  message: string;
}

export function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((segment, i) =>
      typeof segment === 'number' ? `[${segment}]` : i === 0 ? String(segment) : `.${String(segment)}`,
    )
    .join('');
}

type Issue = z.core.$ZodIssue;

function issueMessage(issue: Issue): string {
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((key) => JSON.stringify(key)).join(', ');
    return `unknown field${issue.keys.length > 1 ? 's' : ''} ${keys}`;
  }
  if (issue.code === 'invalid_key') {
    const inner = issue.issues[0]?.message ?? issue.message;
    return `invalid name: ${inner}`;
  }
  // zod's own type messages end like this when a field is missing (issues carry no input by default).
  if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined')) return 'is required';
  return issue.message;
}

export function definitionIssues(issues: readonly Issue[]): DefinitionIssue[] {
  return issues.map((issue) => ({ path: formatPath(issue.path), message: issueMessage(issue) }));
}

export function describeIssues(issues: readonly DefinitionIssue[]): string {
  return issues
    .map((issue) => (issue.path === '' ? issue.message : `${issue.path}: ${issue.message}`))
    .join('; ');
}

/**
 * Checks the shape of an already parsed definition (e.g. a JSON API body) and fills the defaults.
 * Throws a ValidationError naming every offending field path.
 */
export function validateGroupDefinition(value: unknown): GroupDefinition {
  const result = GroupDefinitionSchema.safeParse(value);
  if (result.success) return result.data;
  const errors = definitionIssues(result.error.issues);
  throw new ValidationError(`group definition is invalid: ${describeIssues(errors)}`, { errors });
}
