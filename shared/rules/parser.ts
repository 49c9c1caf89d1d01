/**
 * Rule text → AST. `when` is a condition (comparisons joined by and/or/not, parentheses, bare boolean fields);
 * `then` is a list of actions. Every rejection is a RuleSyntaxError naming the culprit and its position. With
 * `names`, references to host types and services must resolve too.
 */
import { describeToken, Lexer, type Punctuation, type Token } from './lexer.ts';
import { printField } from './printer.ts';
import {
  ACTION_KINDS,
  type CompareOperator,
  type Condition,
  type Field,
  type FieldType,
  HOST_AGGREGATES,
  type HostAggregate,
  type HostFieldName,
  type Literal,
  type Operand,
  RULE_CHANNELS,
  RULE_HOST_STATUSES,
  RULE_SERVICE_STATUSES,
  type RuleAction,
  type RuleActionKind,
  type RuleChannel,
  type RuleNames,
} from './types.ts';

export { RuleSyntaxError } from './lexer.ts';

const HOST_FIELDS: Record<HostFieldName, FieldType> = {
  status: 'text',
  hostType: 'text',
  role: 'text',
  lastSeenSeconds: 'number',
  'services.failed': 'number',
  restarts: 'number',
  load: 'number',
  healthy: 'boolean',
  inLb: 'boolean',
  balanced: 'boolean',
};

const KNOWN_FIELDS: readonly string[] = [
  'group.running',
  'group.definitionVersion',
  ...Object.keys(HOST_FIELDS).map((name) => `host.${name}`),
  'host.sessions',
  ...RULE_CHANNELS.map((channel) => `host.sessions.${channel}`),
  'host.service.<name>.status',
  'host.metrics.<name>',
  ...HOST_AGGREGATES.map((aggregate) => `hosts.${aggregate}`),
];

export function fieldType(field: Field): FieldType {
  switch (field.scope) {
    case 'group':
      return field.name === 'running' ? 'boolean' : 'number';
    case 'hosts':
      return 'number';
    case 'host':
      switch (field.name) {
        case 'service':
          return 'text';
        case 'sessions':
        case 'metrics':
          return 'number';
        default:
          return HOST_FIELDS[field.name];
      }
  }
}

/* ───────────── suggestions ───────────── */

function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** A hint naming the nearest known name (or one the word begins), for typos; else the list when it is short. */
function suggest(word: string, known: readonly string[], list = known.length <= 12): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 4)) + 1;
  for (const candidate of known) {
    const d = distance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  best ??= known.find((candidate) => candidate.toLowerCase().startsWith(word.toLowerCase()));
  if (best !== undefined) return `did you mean "${best}"?`;
  if (list && known.length > 0) return `expected one of ${known.join(', ')}`;
  return undefined;
}

/* ───────────── the shared cursor ───────────── */

abstract class TokenParser {
  protected token: Token;
  protected readonly lexer: Lexer;

  constructor(
    text: string,
    protected readonly names: RuleNames | undefined,
  ) {
    this.lexer = new Lexer(text);
    this.token = this.lexer.next();
  }

  protected advance(): Token {
    const token = this.token;
    this.token = this.lexer.next();
    return token;
  }

  protected isPunctuation(...texts: Punctuation[]): boolean {
    return this.token.kind === 'punctuation' && texts.includes(this.token.text);
  }

  /** A method, not a field test: TypeScript would keep a narrowing of `token` across advance(). */
  protected atEnd(): boolean {
    return this.token.kind === 'end';
  }

  protected isWord(...texts: string[]): boolean {
    return this.token.kind === 'word' && texts.includes(this.token.text);
  }

  protected expect(text: Punctuation, hint = `expected "${text}"`): void {
    if (!this.isPunctuation(text)) this.unexpected(hint);
    this.advance();
  }

  protected unexpected(hint: string): never {
    return this.lexer.fail(this.token.start, `unexpected ${describeToken(this.token)}`, hint);
  }

  protected fail(index: number, problem: string, hint?: string): never {
    return this.lexer.fail(index, problem, hint);
  }

  /** A host type or service name: a word or a quoted string. */
  protected name(what: string): { name: string; start: number } {
    const token = this.token;
    if (token.kind === 'word') {
      this.advance();
      return { name: token.text, start: token.start };
    }
    if (token.kind === 'string') {
      this.advance();
      return { name: token.value, start: token.start };
    }
    return this.unexpected(`expected ${what}`);
  }

  protected checkHostType(name: string, start: number): void {
    if (this.names && !this.names.hostTypes.includes(name)) {
      this.fail(start, `unknown host type ${JSON.stringify(name)}`, suggest(name, this.names.hostTypes));
    }
  }

  protected checkService(name: string, start: number): void {
    if (this.names && !this.names.services.includes(name)) {
      this.fail(start, `unknown service ${JSON.stringify(name)}`, suggest(name, this.names.services));
    }
  }
}

/* ───────────── conditions ───────────── */

interface Located {
  operand: Operand;
  start: number;
}

const COMPARISONS: readonly Punctuation[] = ['==', '!=', '<', '<=', '>', '>='];
const OPERAND_HINT =
  'expected a field (e.g. host.status), a number, true, false, a word or a "quoted string"';

function describeType(type: FieldType): string {
  return type === 'number' ? 'a number' : type === 'boolean' ? 'true or false' : 'text';
}

class ConditionParser extends TokenParser {
  parse(): Condition {
    if (this.atEnd()) this.unexpected('expected a condition, e.g. host.status == failed');
    const condition = this.or();
    if (!this.atEnd()) this.unexpected('expected "and", "or" or the end of the condition');
    return condition;
  }

  private or(): Condition {
    let left = this.and();
    while (this.isWord('or') || this.isPunctuation('||')) {
      this.advance();
      left = { kind: 'or', left, right: this.and() };
    }
    return left;
  }

  private and(): Condition {
    let left = this.not();
    while (this.isWord('and') || this.isPunctuation('&&')) {
      this.advance();
      left = { kind: 'and', left, right: this.not() };
    }
    return left;
  }

  private not(): Condition {
    if (this.isWord('not') || this.isPunctuation('!')) {
      this.advance();
      return { kind: 'not', operand: this.not() };
    }
    return this.primary();
  }

  private primary(): Condition {
    if (this.isPunctuation('(')) {
      this.advance();
      const inner = this.or();
      this.expect(')', 'expected ")", "and" or "or"');
      return inner;
    }
    const left = this.operand();
    if (this.token.kind === 'punctuation' && COMPARISONS.includes(this.token.text)) {
      const operatorToken = this.advance();
      const operator = (operatorToken as { text: CompareOperator }).text;
      const right = this.operand();
      this.check(left, operator, operatorToken.start, right);
      return { kind: 'compare', operator, left: left.operand, right: right.operand };
    }
    return this.bare(left);
  }

  /** An operand on its own must be true or false by itself. */
  private bare({ operand, start }: Located): Condition {
    if (operand.kind === 'literal') {
      if (typeof operand.value === 'boolean') return { kind: 'constant', value: operand.value };
      return this.fail(
        start,
        `${describeLiteral(operand.value)} is not a condition`,
        'compare a field to it, e.g. host.status == failed',
      );
    }
    const type = fieldType(operand.field);
    if (type === 'boolean') return { kind: 'truthy', field: operand.field };
    const name = printField(operand.field);
    return this.fail(
      start,
      `"${name}" is ${describeType(type)}, not a condition`,
      type === 'number' ? `compare it, e.g. ${name} > 0` : `compare it, e.g. ${name} == running`,
    );
  }

  private operand(): Located {
    const token = this.token;
    switch (token.kind) {
      case 'number':
        this.advance();
        return { operand: { kind: 'literal', value: token.value }, start: token.start };
      case 'string':
        this.advance();
        return { operand: { kind: 'literal', value: token.value }, start: token.start };
      case 'word': {
        if (token.text === 'true' || token.text === 'false') {
          this.advance();
          return { operand: { kind: 'literal', value: token.text === 'true' }, start: token.start };
        }
        if (token.text === 'and' || token.text === 'or' || token.text === 'not')
          this.unexpected(OPERAND_HINT);
        this.advance();
        if (!isFieldWord(token.text)) {
          return { operand: { kind: 'literal', value: token.text }, start: token.start };
        }
        return { operand: { kind: 'field', field: this.field(token.text, token.start) }, start: token.start };
      }
      default:
        return this.unexpected(OPERAND_HINT);
    }
  }

  private field(text: string, start: number): Field {
    const unknown = (hint?: string): never =>
      this.fail(start, `unknown field ${JSON.stringify(text)}`, hint ?? suggest(text, KNOWN_FIELDS, false));
    if (text === 'group.running' || text === 'group.definitionVersion') {
      return { scope: 'group', name: text === 'group.running' ? 'running' : 'definitionVersion' };
    }
    if (text.startsWith('hosts.')) {
      const name = text.slice('hosts.'.length);
      if (!(HOST_AGGREGATES as readonly string[]).includes(name)) return unknown();
      const aggregate = name as HostAggregate;
      if (!this.isPunctuation('(')) return { scope: 'hosts', name: aggregate };
      this.advance();
      const hostType = this.name('a host type, e.g. hosts.running(media)');
      this.checkHostType(hostType.name, hostType.start);
      this.expect(')');
      return { scope: 'hosts', name: aggregate, hostType: hostType.name };
    }
    if (!text.startsWith('host.')) return unknown();
    const rest = text.slice('host.'.length);
    if (Object.hasOwn(HOST_FIELDS, rest)) return { scope: 'host', name: rest as HostFieldName };
    if (rest === 'sessions') return { scope: 'host', name: 'sessions' };
    if (rest.startsWith('sessions.')) {
      const channel = rest.slice('sessions.'.length);
      if (!(RULE_CHANNELS as readonly string[]).includes(channel)) {
        return unknown(`channels are ${RULE_CHANNELS.join(', ')}`);
      }
      return { scope: 'host', name: 'sessions', channel: channel as RuleChannel };
    }
    if (rest.startsWith('metrics.') && rest.length > 'metrics.'.length) {
      return { scope: 'host', name: 'metrics', metric: rest.slice('metrics.'.length) };
    }
    if (rest.startsWith('service.')) {
      const service = rest.slice('service.'.length, -'.status'.length);
      if (!rest.endsWith('.status') || service === '') return unknown('expected host.service.<name>.status');
      this.checkService(service, start + 'host.service.'.length);
      return { scope: 'host', name: 'service', service };
    }
    return unknown();
  }

  private check(left: Located, operator: CompareOperator, at: number, right: Located): void {
    if (left.operand.kind === 'literal' && right.operand.kind === 'literal') {
      this.fail(left.start, 'a comparison of two values', 'compare a field, e.g. host.load > 0.8');
    }
    const [field, other] = left.operand.kind === 'field' ? [left, right] : [right, left];
    if (field.operand.kind !== 'field') return;
    const type = fieldType(field.operand.field);
    const name = printField(field.operand.field);
    const otherType =
      other.operand.kind === 'field' ? fieldType(other.operand.field) : literalType(other.operand.value);
    if (type !== otherType) {
      const otherText =
        other.operand.kind === 'field'
          ? `"${printField(other.operand.field)}" (${describeType(otherType)})`
          : describeLiteral(other.operand.value);
      this.fail(
        other.start,
        `"${name}" is ${describeType(type)}, compared to ${otherText}`,
        type === 'number' ? 'compare it to a number' : undefined,
      );
    }
    if (type !== 'number' && operator !== '==' && operator !== '!=') {
      this.fail(at, `"${operator}" orders numbers, and "${name}" is ${describeType(type)}`, 'use == or !=');
    }
    if (other.operand.kind === 'literal' && typeof other.operand.value === 'string') {
      this.checkValue(field.operand.field, other.operand.value, other.start);
    }
  }

  /** Values that can never match are typos: say so now rather than never firing. */
  private checkValue(field: Field, value: string, start: number): void {
    const known =
      field.scope !== 'host'
        ? undefined
        : field.name === 'status'
          ? RULE_HOST_STATUSES
          : field.name === 'service'
            ? RULE_SERVICE_STATUSES
            : undefined;
    if (known && !(known as readonly string[]).includes(value)) {
      const what = field.scope === 'host' && field.name === 'service' ? 'service status' : 'host status';
      this.fail(start, `unknown ${what} ${JSON.stringify(value)}`, suggest(value, known));
    }
    if (field.scope === 'host' && field.name === 'hostType') this.checkHostType(value, start);
  }
}

function describeLiteral(value: Literal): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

function literalType(value: Literal): FieldType {
  return typeof value === 'number' ? 'number' : typeof value === 'boolean' ? 'boolean' : 'text';
}

/** A word with a dot names a field (or is a typo of one); `group`, `host` and `hosts` alone too. */
function isFieldWord(word: string): boolean {
  return word.includes('.') || word === 'group' || word === 'host' || word === 'hosts';
}

export function parseCondition(text: string, names?: RuleNames): Condition {
  return new ConditionParser(text, names).parse();
}

/** Whether a condition reads any `host.*` field, which makes its rule a host rule. */
export function mentionsHost(condition: Condition): boolean {
  switch (condition.kind) {
    case 'and':
    case 'or':
      return mentionsHost(condition.left) || mentionsHost(condition.right);
    case 'not':
      return mentionsHost(condition.operand);
    case 'compare':
      return [condition.left, condition.right].some(
        (operand) => operand.kind === 'field' && operand.field.scope === 'host',
      );
    case 'truthy':
      return condition.field.scope === 'host';
    case 'constant':
      return false;
  }
}

/* ───────────── actions ───────────── */

export interface LocatedAction {
  action: RuleAction;
  /** 0-based index of the action's name in the text. */
  start: number;
}

const ACTION_HINT = `expected an action: ${ACTION_KINDS.join(', ')}`;

class ActionParser extends TokenParser {
  parse(): LocatedAction[] {
    const actions: LocatedAction[] = [];
    for (;;) {
      actions.push(this.action());
      if (this.atEnd()) return actions;
      this.expect(',', 'expected "," between actions, or the end');
    }
  }

  private action(): LocatedAction {
    const token = this.token;
    if (token.kind !== 'word') return this.unexpected(ACTION_HINT);
    if (!(ACTION_KINDS as readonly string[]).includes(token.text)) {
      this.fail(
        token.start,
        `unknown action ${JSON.stringify(token.text)}`,
        suggest(token.text, ACTION_KINDS, true),
      );
    }
    this.advance();
    const kind = token.text as RuleActionKind;
    return { action: this.arguments(kind, token.start), start: token.start };
  }

  private arguments(kind: RuleActionKind, start: number): RuleAction {
    switch (kind) {
      case 'restart-service': {
        if (!this.isPunctuation('(')) return { kind };
        this.advance();
        const service = this.name('a service, e.g. restart-service(media)');
        this.checkService(service.name, service.start);
        this.expect(')');
        return { kind, service: service.name };
      }
      case 'alarm':
        return this.alarm(start);
      case 'scale':
        return this.scale();
      default:
        if (this.isPunctuation('(')) this.unexpected(`"${kind}" takes no arguments`);
        return { kind };
    }
  }

  private alarm(start: number): RuleAction {
    const needsText = (at: number): never =>
      this.fail(at, 'alarm needs a text', 'write alarm("what is wrong")');
    if (!this.isPunctuation('(')) needsText(start);
    this.advance();
    const token = this.token;
    if (token.kind !== 'string') {
      if (this.isPunctuation(')')) needsText(token.start);
      return this.unexpected('expected the alarm\'s text in quotes, e.g. alarm("db is down")');
    }
    if (token.value.trim() === '') needsText(token.start);
    this.advance();
    this.expect(')');
    return { kind: 'alarm', text: token.value };
  }

  private scale(): RuleAction {
    this.expect('(', 'expected "(": scale(<host type>, +n|-n|n)');
    const hostType = this.name('a host type: scale(<host type>, +n|-n|n)');
    this.checkHostType(hostType.name, hostType.start);
    this.expect(',', 'expected ",": scale(<host type>, +n|-n|n)');
    const token = this.token;
    if (token.kind !== 'number' || !Number.isSafeInteger(token.value)) {
      return this.unexpected('expected a whole number of hosts: +n to add, -n to remove, n for a count');
    }
    this.advance();
    this.expect(')');
    return token.signed
      ? { kind: 'scale', hostType: hostType.name, delta: token.value }
      : { kind: 'scale', hostType: hostType.name, count: token.value };
  }
}

/** The actions with where each starts: the compiler names the culprit of a scope error by it. */
export function parseLocatedActions(text: string, names?: RuleNames): LocatedAction[] {
  return new ActionParser(text, names).parse();
}

export function parseActions(text: string, names?: RuleNames): RuleAction[] {
  return parseLocatedActions(text, names).map((located) => located.action);
}
