/**
 * The normal form of rules: what GET /groups/{name} shows and what parseCondition/parseActions read back to the
 * same AST. Words print bare when they would read back as the same word, else quoted.
 */
import type { Condition, Field, Literal, Operand, RuleAction } from './types.ts';

const KEYWORDS: readonly string[] = ['and', 'or', 'not', 'true', 'false'];

/** A bare word in a condition is a string unless it has a dot (then it names a field) or is a keyword. */
const BARE_VALUE = /^[A-Za-z_][A-Za-z0-9_-]*$/;
/** A name in an action's arguments is never a field, so dots are fine there. */
const BARE_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

export function printField(field: Field): string {
  switch (field.scope) {
    case 'group':
      return `group.${field.name}`;
    case 'hosts':
      return field.hostType === undefined
        ? `hosts.${field.name}`
        : `hosts.${field.name}(${printName(field.hostType)})`;
    case 'host':
      switch (field.name) {
        case 'service':
          return `host.service.${field.service}.status`;
        case 'sessions':
          return field.channel === undefined ? 'host.sessions' : `host.sessions.${field.channel}`;
        case 'metrics':
          return `host.metrics.${field.metric}`;
        default:
          return `host.${field.name}`;
      }
  }
}

export function printLiteral(value: Literal): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return BARE_VALUE.test(value) && !KEYWORDS.includes(value) ? value : JSON.stringify(value);
}

function printName(name: string): string {
  return BARE_NAME.test(name) && !KEYWORDS.includes(name) ? name : JSON.stringify(name);
}

function printOperand(operand: Operand): string {
  return operand.kind === 'field' ? printField(operand.field) : printLiteral(operand.value);
}

const PRECEDENCE: Record<Condition['kind'], number> = {
  or: 1,
  and: 2,
  not: 3,
  compare: 4,
  truthy: 4,
  constant: 4,
};

function printAt(condition: Condition, minimum: number): string {
  const text = printBare(condition);
  return PRECEDENCE[condition.kind] < minimum ? `(${text})` : text;
}

function printBare(condition: Condition): string {
  switch (condition.kind) {
    case 'or':
    case 'and': {
      // Left-associative: a right operand of the same operator needs parentheses to keep its shape.
      const own = PRECEDENCE[condition.kind];
      return `${printAt(condition.left, own)} ${condition.kind} ${printAt(condition.right, own + 1)}`;
    }
    case 'not':
      return `not ${printAt(condition.operand, PRECEDENCE.not)}`;
    case 'compare':
      return `${printOperand(condition.left)} ${condition.operator} ${printOperand(condition.right)}`;
    case 'truthy':
      return printField(condition.field);
    case 'constant':
      return String(condition.value);
  }
}

/** parseCondition(printCondition(c)) equals c. */
export function printCondition(condition: Condition): string {
  return printBare(condition);
}

export function printAction(action: RuleAction): string {
  switch (action.kind) {
    case 'restart-service':
      return action.service === undefined ? action.kind : `${action.kind}(${printName(action.service)})`;
    case 'alarm':
      return `alarm(${JSON.stringify(action.text)})`;
    case 'scale': {
      const amount =
        action.delta !== undefined
          ? `${action.delta < 0 ? '-' : '+'}${Math.abs(action.delta)}`
          : String(action.count ?? 0);
      return `scale(${printName(action.hostType)}, ${amount})`;
    }
    default:
      return action.kind;
  }
}

/** parseActions(printActions(a)) equals a. */
export function printActions(actions: readonly RuleAction[]): string {
  return actions.map(printAction).join(', ');
}
