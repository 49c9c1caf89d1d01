import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.ts';
import type { Rule } from '../shared/groups/model.ts';
import {
  type CompiledRule,
  type Condition,
  compileRules,
  DEFAULT_RULES,
  effectiveRules,
  evaluateRules,
  type Field,
  HOST_AGGREGATES,
  mentionsHost,
  type Operand,
  parseActions,
  parseCondition,
  printActions,
  printCondition,
  RULE_CHANNELS,
  RULE_HOST_STATUSES,
  RULE_SERVICE_STATUSES,
  type RuleAction,
  type RuleContext,
  type RuleHost,
} from '../shared/rules/index.ts';

/* ───────────── conditions ───────────── */

/** Anything a word in a field path may hold: service and metric names. */
const pathName = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}$/);
const anyText = fc.string({ unit: 'binary', maxLength: 12 });
/** -0 prints as 0, so it cannot come back as -0. */
const number = fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => (n === 0 ? 0 : n));

const numberField: fc.Arbitrary<Field> = fc.oneof(
  fc.constant<Field>({ scope: 'group', name: 'definitionVersion' }),
  fc.constantFrom<Field>(
    { scope: 'host', name: 'lastSeenSeconds' },
    { scope: 'host', name: 'services.failed' },
    { scope: 'host', name: 'restarts' },
    { scope: 'host', name: 'load' },
    { scope: 'host', name: 'sessions' },
  ),
  fc.constantFrom(...RULE_CHANNELS).map((channel): Field => ({ scope: 'host', name: 'sessions', channel })),
  pathName.map((metric): Field => ({ scope: 'host', name: 'metrics', metric })),
  fc
    .record({ name: fc.constantFrom(...HOST_AGGREGATES), hostType: fc.option(anyText, { nil: undefined }) })
    .map(
      ({ name, hostType }): Field =>
        hostType === undefined ? { scope: 'hosts', name } : { scope: 'hosts', name, hostType },
    ),
);

const booleanField = fc.constantFrom<Field>(
  { scope: 'group', name: 'running' },
  { scope: 'host', name: 'healthy' },
  { scope: 'host', name: 'inLb' },
  { scope: 'host', name: 'balanced' },
);

/** A text field with values it may be compared to (statuses are checked against their lists). */
const textComparison: fc.Arbitrary<[Field, fc.Arbitrary<string>]> = fc.oneof(
  fc.constant<[Field, fc.Arbitrary<string>]>([
    { scope: 'host', name: 'status' },
    fc.constantFrom(...RULE_HOST_STATUSES),
  ]),
  pathName.map((service): [Field, fc.Arbitrary<string>] => [
    { scope: 'host', name: 'service', service },
    fc.constantFrom(...RULE_SERVICE_STATUSES),
  ]),
  fc.constant<[Field, fc.Arbitrary<string>]>([{ scope: 'host', name: 'hostType' }, anyText]),
  fc.constant<[Field, fc.Arbitrary<string>]>([{ scope: 'host', name: 'role' }, anyText]),
);

const field = (f: Field): Operand => ({ kind: 'field', field: f });
const literal = (value: string | number | boolean): Operand => ({ kind: 'literal', value });

/** Either side may hold the field. */
const sides = (a: Operand, b: Operand, swap: boolean) =>
  swap ? { left: b, right: a } : { left: a, right: b };

const comparison: fc.Arbitrary<Condition> = fc.oneof(
  fc
    .tuple(numberField, fc.oneof(number.map(literal), numberField.map(field)), fc.boolean())
    .chain(([f, other, swap]) =>
      fc
        .constantFrom('==', '!=', '<', '<=', '>', '>=' as const)
        .map((operator): Condition => ({ kind: 'compare', operator, ...sides(field(f), other, swap) })),
    ),
  fc
    .tuple(booleanField, fc.oneof(fc.boolean().map(literal), booleanField.map(field)), fc.boolean())
    .chain(([f, other, swap]) =>
      fc
        .constantFrom('==', '!=' as const)
        .map((operator): Condition => ({ kind: 'compare', operator, ...sides(field(f), other, swap) })),
    ),
  textComparison.chain(([f, values]) =>
    fc.tuple(fc.constantFrom('==', '!=' as const), values, fc.boolean()).map(
      ([operator, value, swap]): Condition => ({
        kind: 'compare',
        operator,
        ...sides(field(f), literal(value), swap),
      }),
    ),
  ),
);

const { condition } = fc.letrec<{ condition: Condition }>((tie) => ({
  condition: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    comparison,
    booleanField.map((f): Condition => ({ kind: 'truthy', field: f })),
    fc.boolean().map((value): Condition => ({ kind: 'constant', value })),
    tie('condition').map((operand): Condition => ({ kind: 'not', operand })),
    fc
      .tuple(fc.constantFrom('and', 'or' as const), tie('condition'), tie('condition'))
      .map(([kind, left, right]): Condition => ({ kind, left, right })),
  ),
}));

/* ───────────── actions ───────────── */

const action: fc.Arbitrary<RuleAction> = fc.oneof(
  fc.constantFrom<RuleAction>(
    { kind: 'boot' },
    { kind: 'replace' },
    { kind: 'restart-service' },
    { kind: 'reboot' },
    { kind: 'add-to-lb' },
    { kind: 'remove-from-lb' },
    { kind: 'drain' },
    { kind: 'diagnose' },
  ),
  anyText.map((service): RuleAction => ({ kind: 'restart-service', service })),
  fc
    .string({ unit: 'binary', minLength: 1, maxLength: 20 })
    .filter((text) => text.trim() !== '')
    .map((text): RuleAction => ({ kind: 'alarm', text })),
  fc
    .tuple(anyText, fc.integer({ min: -1000, max: 1000 }))
    .map(([hostType, delta]): RuleAction => ({ kind: 'scale', hostType, delta })),
  fc.tuple(anyText, fc.nat()).map(([hostType, count]): RuleAction => ({ kind: 'scale', hostType, count })),
);

/* ───────────── hosts ───────────── */

const status = fc.oneof(fc.constantFrom(...RULE_HOST_STATUSES), anyText);
/** Own keys that would read Object.prototype's members through a plain index. */
const key = fc.oneof(fc.constantFrom('media', 'db', 'cpu', 'constructor', 'toString', '__proto__'), anyText);
const hostNumber = fc.oneof(number, fc.constantFrom(Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0));

const ruleHost = (hostId: string): fc.Arbitrary<RuleHost> =>
  fc.record({
    hostId: fc.constant(hostId),
    hostType: fc.oneof(fc.constantFrom('media', 'db'), anyText),
    roles: fc.array(fc.oneof(fc.constantFrom('media', 'edge'), anyText), { maxLength: 3 }),
    status,
    lastSeenSeconds: hostNumber,
    services: fc.dictionary(
      key,
      fc.record({ status: fc.oneof(fc.constantFrom(...RULE_SERVICE_STATUSES), anyText), version: anyText }),
      { maxKeys: 3 },
    ),
    load: hostNumber,
    sessions: fc.record(
      { voice: hostNumber, sms: hostNumber, mms: hostNumber, video: hostNumber },
      { requiredKeys: [] },
    ),
    metrics: fc.dictionary(key, hostNumber, { maxKeys: 4 }),
    restarts: fc.nat(10),
    healthy: fc.boolean(),
    inLb: fc.boolean(),
    balanced: fc.boolean(),
  });

const hosts = fc
  .uniqueArray(fc.oneof(fc.constantFrom('a', 'b', 'm1', 'm2'), anyText), { maxLength: 8 })
  .chain((ids) => fc.tuple(...ids.map(ruleHost)));

const ruleContext: fc.Arbitrary<RuleContext> = fc.record({
  group: fc.record({
    name: fc.constant('demo'),
    running: fc.boolean(),
    definitionVersion: fc.nat(),
    desired: fc.dictionary(key, hostNumber, { maxKeys: 3 }),
    crashes: fc.dictionary(key, hostNumber, { maxKeys: 3 }),
  }),
  hosts,
});

function compiledRule(index: number, when: Condition, actions: RuleAction[]): CompiledRule {
  return {
    id: `rule[${index}]`,
    source: 'definition',
    index,
    when: printCondition(when),
    // biome-ignore lint/suspicious/noThenProperty: a rule's part, never awaited.
    then: printActions(actions),
    scope: mentionsHost(when) ? 'host' : 'group',
    condition: when,
    actions,
  };
}

const rules = fc
  .array(fc.tuple(condition, fc.array(action, { minLength: 1, maxLength: 4 })), { maxLength: 5 })
  .map((list) => effectiveRules(list.map(([when, actions], index) => compiledRule(index, when, actions))));

/* ───────────── properties ───────────── */

describe('printing and parsing rules', () => {
  it('reads a printed condition back to the same AST', () => {
    fc.assert(
      fc.property(condition, (c) => {
        expect(parseCondition(printCondition(c))).toEqual(c);
      }),
      { numRuns: 500 },
    );
  });

  it('prints a parsed condition the same way again (the normal form is a fixed point)', () => {
    fc.assert(
      fc.property(condition, (c) => {
        const text = printCondition(c);
        expect(printCondition(parseCondition(text))).toBe(text);
      }),
    );
  });

  it('reads printed actions back to the same list', () => {
    fc.assert(
      fc.property(fc.array(action, { minLength: 1, maxLength: 6 }), (actions) => {
        expect(parseActions(printActions(actions))).toEqual(actions);
      }),
      { numRuns: 500 },
    );
  });

  it('answers any text with rules or a ValidationError whose positions lie within it', () => {
    const fragments = fc.constantFrom(
      'host.status',
      'hosts.count(',
      'media',
      ')',
      '(',
      '==',
      '<',
      ' and ',
      ' or ',
      'not ',
      '!',
      '"x',
      '"',
      '3',
      '-2.5e3',
      ',',
      'scale(',
      'alarm(',
      'boot',
      'host.metrics.cpu',
      ' ',
    );
    const text = fc.oneof(
      fc.array(fragments, { maxLength: 10 }).map((parts) => parts.join('')),
      anyText,
    );
    fc.assert(
      fc.property(text, text, (when, then) => {
        const rule = { when, then } as Rule;
        try {
          compileRules([rule], { hostTypes: ['media'], services: ['media'] });
        } catch (error) {
          expect(error).toBeInstanceOf(ValidationError);
          const [problem] = (error as ValidationError).details.errors as { message: string }[];
          const position = Number(/ at position (\d+)/.exec(problem?.message ?? '')?.[1]);
          const of = problem?.message.includes('(when)') ? when : then;
          expect(position).toBeGreaterThanOrEqual(1);
          expect(position).toBeLessThanOrEqual(of.length + 1);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('default rules', () => {
  it('compile, and their text is already the normal form', () => {
    const compiled = compileRules(DEFAULT_RULES, { hostTypes: [], services: [] });
    expect(compiled.map((rule) => [rule.when, rule.then])).toEqual(
      DEFAULT_RULES.map((r) => [r.when, r.then]),
    );
    expect(effectiveRules([]).map((rule) => rule.condition)).toEqual(compiled.map((rule) => rule.condition));
  });
});

describe('evaluateRules', () => {
  it('never throws, whatever the hosts report, and is deterministic whatever their order', () => {
    fc.assert(
      fc.property(rules, ruleContext, fc.infiniteStream(fc.nat()), (compiled, ctx, randoms) => {
        const firings = evaluateRules(compiled, ctx);
        const shuffled = [...ctx.hosts]
          .map((host) => ({ host, order: randoms.next().value as number }))
          .sort((a, b) => a.order - b.order)
          .map(({ host }) => host);
        expect(evaluateRules(compiled, { ...ctx, hosts: shuffled })).toEqual(firings);

        const ids = new Set(ctx.hosts.map((host) => host.hostId));
        const order = compiled.map((rule) => rule.id);
        let last = -1;
        for (const firing of firings) {
          const at = order.indexOf(firing.ruleId);
          expect(at).toBeGreaterThanOrEqual(last);
          last = at;
          if (firing.hostId !== undefined) expect(ids.has(firing.hostId)).toBe(true);
          expect(firing.actions.length).toBeGreaterThan(0);
          expect(typeof firing.because).toBe('string');
        }
        // Host firings of one rule come in host id order.
        for (const id of order) {
          const hostIds = firings
            .filter((f) => f.ruleId === id && f.hostId !== undefined)
            .map((f) => f.hostId);
          expect(hostIds).toEqual([...hostIds].sort((a, b) => ((a ?? '') < (b ?? '') ? -1 : 1)));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on hosts missing whole members (a report from an older agent)', () => {
    const partialHost = fc.record(
      {
        hostId: anyText,
        hostType: anyText,
        roles: fc.array(anyText),
        status,
        services: fc.dictionary(key, fc.record({ status: anyText }, { requiredKeys: [] })),
        metrics: fc.dictionary(key, hostNumber),
        sessions: fc.dictionary(key, hostNumber),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(rules, fc.array(partialHost, { maxLength: 5 }), (compiled, partial) => {
        const ctx = { group: {}, hosts: partial } as unknown as RuleContext;
        expect(() => evaluateRules(compiled, ctx)).not.toThrow();
      }),
    );
  });
});
