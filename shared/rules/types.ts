/**
 * The when/then rules of a group: what the monitor evaluates each tick. Pure types and the vocabulary of the
 * language; the compiler, printer and evaluator live beside this file.
 */

import { CHANNELS, HOST_STATUSES } from '../schemas.ts';

/** The channels a host reports sessions on (the snapshot's own list). */
export const RULE_CHANNELS = CHANNELS;
export type RuleChannel = (typeof RULE_CHANNELS)[number];

/** What the monitor can say of a host: the host record's statuses, wider than what an agent reports. */
export const RULE_HOST_STATUSES = HOST_STATUSES;

export const RULE_SERVICE_STATUSES = ['starting', 'running', 'stopped', 'failed', 'missing'] as const;

/** Statuses of a host that was started and has not gone away: what `hosts.booted` counts. */
export const BOOTED_STATUSES: readonly string[] = ['booting', 'running', 'draining', 'degraded'];

export interface RuleHost {
  hostId: string;
  hostType: string;
  roles: string[];
  status: string;
  lastSeenSeconds: number;
  services: Record<string, { status: string; version: string }>;
  load: number;
  sessions: Partial<Record<RuleChannel, number>>;
  metrics: Record<string, number>;
  /** Service restarts the control plane ordered within the last 10 minutes. */
  restarts: number;
  healthy: boolean;
  /** A load balancer currently routes to it. */
  inLb: boolean;
  /** Its host type sits behind a load balancer. */
  balanced: boolean;
}

export interface RuleGroup {
  name: string;
  running: boolean;
  definitionVersion: number;
  /** hostType → desired count */
  desired: Record<string, number>;
  /** hostType → hosts died unasked in the last 10 min */
  crashes: Record<string, number>;
}

export interface RuleContext {
  group: RuleGroup;
  hosts: readonly RuleHost[];
}

export type RuleAction =
  | { kind: 'boot' }
  | { kind: 'replace' }
  | { kind: 'restart-service'; service?: string }
  | { kind: 'reboot' }
  | { kind: 'add-to-lb' }
  | { kind: 'remove-from-lb' }
  | { kind: 'drain' }
  | { kind: 'alarm'; text: string }
  | { kind: 'diagnose' }
  /** `delta` (+n, -n) or `count` (n): exactly one is set. */
  | { kind: 'scale'; hostType: string; delta?: number; count?: number };

export type RuleActionKind = RuleAction['kind'];

export const ACTION_KINDS: readonly RuleActionKind[] = [
  'boot',
  'replace',
  'restart-service',
  'reboot',
  'add-to-lb',
  'remove-from-lb',
  'drain',
  'alarm',
  'diagnose',
  'scale',
];

/** Actions that act on one host: they need a host rule to say which. */
export const HOST_ACTIONS: readonly RuleActionKind[] = [
  'replace',
  'restart-service',
  'reboot',
  'add-to-lb',
  'remove-from-lb',
  'drain',
  'diagnose',
];

/** Actions on the group: in a host rule they fire once, if any host matches. */
export const GROUP_ACTIONS: readonly RuleActionKind[] = ['boot', 'scale'];

/* ───────────── Conditions (a JSON-serialisable AST) ───────────── */

export type HostAggregate = 'count' | 'running' | 'booted' | 'failed' | 'lost' | 'desired' | 'crashes';
export const HOST_AGGREGATES: readonly HostAggregate[] = [
  'count',
  'running',
  'booted',
  'failed',
  'lost',
  'desired',
  'crashes',
];

/** Plain host fields, named as written after `host.`. */
export type HostFieldName =
  | 'status'
  | 'hostType'
  | 'role'
  | 'lastSeenSeconds'
  | 'services.failed'
  | 'restarts'
  | 'load'
  | 'healthy'
  | 'inLb'
  | 'balanced';

export type Field =
  | { scope: 'group'; name: 'running' | 'definitionVersion' }
  | { scope: 'host'; name: HostFieldName }
  | { scope: 'host'; name: 'service'; service: string }
  /** Without a channel: the host's sessions over all channels. */
  | { scope: 'host'; name: 'sessions'; channel?: RuleChannel }
  | { scope: 'host'; name: 'metrics'; metric: string }
  /** Counts over the group's hosts, of one host type when `hostType` is set. */
  | { scope: 'hosts'; name: HostAggregate; hostType?: string };

export type FieldType = 'number' | 'boolean' | 'text';

export type Literal = string | number | boolean;

export type Operand = { kind: 'field'; field: Field } | { kind: 'literal'; value: Literal };

export type CompareOperator = '==' | '!=' | '<' | '<=' | '>' | '>=';

export type Condition =
  | { kind: 'and'; left: Condition; right: Condition }
  | { kind: 'or'; left: Condition; right: Condition }
  | { kind: 'not'; operand: Condition }
  | { kind: 'compare'; operator: CompareOperator; left: Operand; right: Operand }
  /** A bare boolean field: `group.running`. */
  | { kind: 'truthy'; field: Field }
  /** `true` or `false` on its own. */
  | { kind: 'constant'; value: boolean };

/* ───────────── Compiled rules and what they produce ───────────── */

export interface CompiledRule {
  /** "default:<name>" or "rule[<index>]" */
  id: string;
  source: 'default' | 'definition';
  /** Position in the definition, -1 for defaults. */
  index: number;
  /** Both in printed normal form. */
  when: string;
  then: string;
  scope: 'group' | 'host';
  condition: Condition;
  actions: RuleAction[];
}

export interface Firing {
  ruleId: string;
  /** Set for the host actions of a host rule; absent for a group rule and for a host rule's group actions. */
  hostId?: string;
  actions: RuleAction[];
  /** The condition's values that made it true, for explanations. */
  because: string;
}

/** What references in a rule must resolve to: the group's host types and services. */
export interface RuleNames {
  hostTypes: string[];
  services: string[];
}
