/**
 * Compiled rules × what the monitor saw → the firings due now. Pure and total: whatever the hosts report (or fail
 * to), evaluation answers; a value that is missing makes its comparison false rather than an error, because one
 * host's odd report must not stop the monitor from acting on the others.
 */
import { printField, printLiteral } from './printer.ts';
import {
  BOOTED_STATUSES,
  type CompareOperator,
  type CompiledRule,
  type Condition,
  type Field,
  type Firing,
  GROUP_ACTIONS,
  type HostAggregate,
  type Operand,
  RULE_CHANNELS,
  type RuleAction,
  type RuleContext,
  type RuleHost,
} from './types.ts';

type Value = number | string | boolean | readonly string[] | undefined;

/** Own members only: a metric named "constructor" must not read Object.prototype's. */
function own(record: unknown, key: string): unknown {
  if (typeof record !== 'object' || record === null || !Object.hasOwn(record, key)) return undefined;
  return (record as Record<string, unknown>)[key];
}

const asNumber = (value: unknown): number | undefined =>
  typeof value === 'number' && !Number.isNaN(value) ? value : undefined;
const asString = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const asBoolean = (value: unknown): boolean | undefined => (typeof value === 'boolean' ? value : undefined);

function sumOf(record: unknown): number {
  if (typeof record !== 'object' || record === null) return 0;
  let total = 0;
  for (const value of Object.values(record)) total += asNumber(value) ?? 0;
  return total;
}

class Evaluation {
  private readonly aggregates = new Map<string, number>();
  readonly hosts: readonly RuleHost[];

  constructor(private readonly context: RuleContext) {
    const hosts: unknown = context?.hosts;
    this.hosts = (Array.isArray(hosts) ? hosts : [])
      .filter((host): host is RuleHost => typeof host === 'object' && host !== null)
      .sort((a, b) => {
        const [x, y] = [String(a.hostId), String(b.hostId)];
        return x < y ? -1 : x > y ? 1 : 0;
      });
  }

  /** The condition's value and the facts that decided it ("host.status = failed"). */
  evaluate(condition: Condition, host: RuleHost | undefined): { value: boolean; facts: string[] } {
    switch (condition?.kind) {
      case 'and': {
        const left = this.evaluate(condition.left, host);
        if (!left.value) return left;
        const right = this.evaluate(condition.right, host);
        return { value: right.value, facts: [...left.facts, ...right.facts] };
      }
      case 'or': {
        const left = this.evaluate(condition.left, host);
        if (left.value) return left;
        const right = this.evaluate(condition.right, host);
        return right.value ? right : { value: false, facts: [...left.facts, ...right.facts] };
      }
      case 'not': {
        const inner = this.evaluate(condition.operand, host);
        return { value: !inner.value, facts: inner.facts };
      }
      case 'compare': {
        const left = this.operand(condition.left, host);
        const right = this.operand(condition.right, host);
        return {
          value: compare(condition.operator, left.value, right.value),
          facts: [...left.facts, ...right.facts],
        };
      }
      case 'truthy': {
        const value = this.field(condition.field, host);
        return { value: value === true, facts: [fact(condition.field, value)] };
      }
      case 'constant':
        return { value: condition.value === true, facts: [] };
      default:
        return { value: false, facts: [] };
    }
  }

  private operand(operand: Operand, host: RuleHost | undefined): { value: Value; facts: string[] } {
    if (operand?.kind === 'literal') return { value: operand.value, facts: [] };
    if (operand?.kind !== 'field') return { value: undefined, facts: [] };
    const value = this.field(operand.field, host);
    return { value, facts: [fact(operand.field, value)] };
  }

  private field(field: Field, host: RuleHost | undefined): Value {
    switch (field?.scope) {
      case 'group': {
        const group = this.context?.group;
        return field.name === 'running' ? asBoolean(group?.running) : asNumber(group?.definitionVersion);
      }
      case 'hosts':
        return this.aggregate(field.name, field.hostType);
      case 'host':
        return host === undefined ? undefined : hostField(field, host);
      default:
        return undefined;
    }
  }

  private aggregate(name: HostAggregate, hostType: string | undefined): number {
    const key = `${name}(${hostType ?? '*'})`;
    const known = this.aggregates.get(key);
    if (known !== undefined) return known;
    const value = this.count(name, hostType);
    this.aggregates.set(key, value);
    return value;
  }

  private count(name: HostAggregate, hostType: string | undefined): number {
    if (name === 'desired' || name === 'crashes') {
      const record = own(this.context?.group, name);
      return hostType === undefined ? sumOf(record) : (asNumber(own(record, hostType)) ?? 0);
    }
    const hosts = hostType === undefined ? this.hosts : this.hosts.filter((h) => h.hostType === hostType);
    const counted = (status: (status: unknown) => boolean) => hosts.filter((h) => status(h.status)).length;
    switch (name) {
      case 'count':
        return hosts.length;
      case 'running':
      case 'failed':
      case 'lost':
        return counted((status) => status === name);
      case 'booted':
        return counted((status) => typeof status === 'string' && BOOTED_STATUSES.includes(status));
      default:
        return 0;
    }
  }
}

function hostField(field: Extract<Field, { scope: 'host' }>, host: RuleHost): Value {
  switch (field.name) {
    case 'status':
      return asString(host.status);
    case 'hostType':
      return asString(host.hostType);
    case 'role':
      return Array.isArray(host.roles) ? host.roles.filter((role) => typeof role === 'string') : [];
    case 'lastSeenSeconds':
      return asNumber(host.lastSeenSeconds);
    case 'services.failed': {
      const services: unknown = host.services;
      if (typeof services !== 'object' || services === null) return 0;
      return Object.values(services).filter((service) => own(service, 'status') === 'failed').length;
    }
    case 'restarts':
      return asNumber(host.restarts);
    case 'load':
      return asNumber(host.load);
    case 'healthy':
      return asBoolean(host.healthy);
    case 'inLb':
      return asBoolean(host.inLb);
    case 'balanced':
      return asBoolean(host.balanced);
    case 'service':
      return asString(own(own(host.services, field.service), 'status'));
    case 'sessions':
      if (field.channel !== undefined) return asNumber(own(host.sessions, field.channel));
      return RULE_CHANNELS.reduce(
        (total, channel) => total + (asNumber(own(host.sessions, channel)) ?? 0),
        0,
      );
    case 'metrics':
      return asNumber(own(host.metrics, field.metric));
    default:
      return undefined;
  }
}

/** A role field holds all the host's roles: `==` asks whether any is the value, `!=` whether none is. */
function compare(operator: CompareOperator, left: Value, right: Value): boolean {
  if (left === undefined || right === undefined) return false;
  if (Array.isArray(left) || Array.isArray(right)) {
    const lefts: readonly unknown[] = Array.isArray(left) ? left : [left];
    const rights: readonly unknown[] = Array.isArray(right) ? right : [right];
    const any = lefts.some((value) => rights.includes(value));
    return operator === '==' ? any : operator === '!=' ? !any : false;
  }
  if (typeof left !== typeof right) return false;
  switch (operator) {
    case '==':
      return left === right;
    case '!=':
      return left !== right;
    default:
      if (typeof left !== 'number' || typeof right !== 'number') return false;
      if (operator === '<') return left < right;
      if (operator === '<=') return left <= right;
      if (operator === '>') return left > right;
      return left >= right;
  }
}

function fact(field: Field, value: Value): string {
  const shown =
    value === undefined
      ? '(missing)'
      : Array.isArray(value)
        ? `[${value.map((item) => printLiteral(item)).join(', ')}]`
        : printLiteral(value as string | number | boolean);
  return `${printField(field)} = ${shown}`;
}

function because(facts: readonly string[]): string {
  return facts.length === 0 ? 'always' : [...new Set(facts)].join(', ');
}

/** An explanation names a few hosts, not a fleet. */
const MAX_IDS_SHOWN = 5;

const copy = (actions: readonly RuleAction[]): RuleAction[] => actions.map((action) => ({ ...action }));

/** Whether a rule's condition holds; a rule stored by an older compiler in a shape this one no longer knows is false. */
function holds(evaluation: Evaluation, rule: CompiledRule, host: RuleHost | undefined) {
  try {
    return evaluation.evaluate(rule.condition, host);
  } catch {
    return { value: false, facts: [] };
  }
}

/**
 * The firings due: rules in order; a group rule fires at most once, a host rule once per matching host (hosts by
 * id) with its host actions, then once for the group with its group actions (boot, scale) if any host matched.
 */
export function evaluateRules(rules: readonly CompiledRule[], context: RuleContext): Firing[] {
  const evaluation = new Evaluation(context);
  const firings: Firing[] = [];
  for (const rule of Array.isArray(rules) ? rules : []) {
    if (typeof rule !== 'object' || rule === null) continue;
    const actions: readonly RuleAction[] = Array.isArray(rule.actions) ? rule.actions : [];
    const ruleId = String(rule.id);
    if (rule.scope !== 'host') {
      const result = holds(evaluation, rule, undefined);
      if (result.value) firings.push({ ruleId, actions: copy(actions), because: because(result.facts) });
      continue;
    }
    const groupActions = actions.filter((action) => GROUP_ACTIONS.includes(action?.kind));
    const hostActions = actions.filter((action) => !GROUP_ACTIONS.includes(action?.kind));
    const matched: { hostId: string; because: string }[] = [];
    for (const host of evaluation.hosts) {
      const result = holds(evaluation, rule, host);
      if (!result.value) continue;
      const hostId = String(host.hostId);
      matched.push({ hostId, because: because(result.facts) });
      if (hostActions.length > 0) {
        firings.push({ ruleId, hostId, actions: copy(hostActions), because: because(result.facts) });
      }
    }
    const first = matched[0];
    if (first !== undefined && groupActions.length > 0) {
      const shown = matched.slice(0, MAX_IDS_SHOWN).map((match) => match.hostId);
      const ids = matched.length > MAX_IDS_SHOWN ? `${shown.join(', ')}, …` : shown.join(', ');
      firings.push({
        ruleId,
        actions: copy(groupActions),
        because: `${matched.length} host${matched.length === 1 ? '' : 's'} matched (${ids}); ${first.hostId}: ${first.because}`,
      });
    }
  }
  return firings;
}
