import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
// `yaml` is the CLI's and the test's: here it writes definitions out and is the reference for scalar typing.
import { parse as yamlParse, stringify as yamlStringify } from 'yaml';
import { FleetfoldError, ValidationError } from '../shared/errors.ts';
import { parseGroupDefinition } from '../shared/groups/compile.ts';
import type { GroupDefinition } from '../shared/groups/model.ts';
import { ALIAS_EXPANSION_LIMIT, readDefinitionYaml } from '../shared/groups/yaml-reader.ts';

function rejection(run: () => unknown): FleetfoldError {
  try {
    run();
  } catch (error) {
    if (error instanceof FleetfoldError) return error;
    throw error;
  }
  throw new Error('accepted');
}

const yamlRejection = (text: string) => rejection(() => parseGroupDefinition(text, 'yaml'));

/** The classic: nine levels of nine aliases, a billion "lol"s when written out, a few hundred bytes as text. */
function billionLaughs(): string {
  const names = 'abcdefghi';
  const lines = [`a: &a [${Array(9).fill('"lol"').join(', ')}]`];
  for (let level = 1; level < names.length; level++) {
    const below = names[level - 1];
    lines.push(`${names[level]}: &${names[level]} [${Array(9).fill(`*${below}`).join(', ')}]`);
  }
  return `${lines.join('\n')}\nname: *i\n`;
}

describe('reading a definition from YAML (js-yaml, as the core schema reads it)', () => {
  it('reports a syntax error with its 1-based line and column', () => {
    const unclosed = yamlRejection('name: g\nhostTypes: [a\n');
    expect(unclosed).toBeInstanceOf(ValidationError);
    expect(unclosed.message).toMatch(
      /^group definition is not valid YAML: .*flow collection at line 3, column 1/,
    );
    expect(unclosed.details).toEqual({ line: 3, column: 1 });
    // A first-line error is line 1 (js-yaml's own marks count from 0).
    expect(yamlRejection('name: a: b\n').details).toMatchObject({ line: 1 });
    expect(yamlRejection('name: g\n\thostTypes: {}\n').details).toEqual({ line: 2, column: 1 });
  });

  it('refuses a key given twice, naming it and its line', () => {
    const error = yamlRejection('name: a\nhostTypes: {}\nname: b\n');
    expect(error.message).toContain('not valid YAML: duplicated mapping key at line 3');
    expect(error.details).toMatchObject({ line: 3 });
  });

  it('refuses a stream of several documents, and anything but a mapping at the root', () => {
    expect(yamlRejection('name: a\n---\nname: b\n').message).toContain('not valid YAML');
    for (const text of ['', '# only a comment\n', '- a\n', 'just text', '~'])
      expect(yamlRejection(text).message, text).toContain('expected an object (a group definition)');
  });

  it('refuses tags it does not know, rather than guessing what they mean', () => {
    expect(yamlRejection('name: !vault secret\n').message).toContain('unknown tag !<!vault>');
    expect(readDefinitionYaml('a: !!str 13.2\nb: !!int "7"')).toEqual({ a: '13.2', b: 7 });
  });

  it('keeps the typed text of versions and direct config values only; the rest keeps its type', () => {
    const read = readDefinitionYaml(
      [
        'count: 0x2',
        'port: 5060',
        'stopped: true',
        'versions: [{ version: 13.2 }, { version: 2.10 }, { version: 013 }, { version: 1e3 }, { version: .inf }]',
        'quoted: { version: "13.2" }',
        'config: { tls: true, port: 5060, ratio: 0.50, hex: 0x10, empty: ~, list: [1.0], nested: { x: 2.0, version: 1.0 } }',
      ].join('\n'),
    );
    expect(read).toEqual({
      count: 2,
      port: 5060,
      stopped: true,
      versions: [
        { version: '13.2' },
        { version: '2.10' },
        { version: '013' },
        { version: '1e3' },
        { version: '.inf' },
      ],
      quoted: { version: '13.2' },
      config: {
        tls: 'true',
        port: '5060',
        ratio: '0.50',
        hex: '0x10',
        empty: null,
        list: [1],
        nested: { x: 2, version: '1.0' },
      },
    });
  });

  it('types plain scalars exactly as `yaml` does with the core schema', () => {
    const tricky = [
      '0b101',
      '0o17',
      '0x1F',
      '0X1F',
      '1_000',
      '+12',
      '-0',
      '013',
      '.5',
      '1.',
      '-.5',
      '1e3',
      '1E-3',
      '.inf',
      '-.Inf',
      '.NaN',
      'nan',
      'true',
      'True',
      'TRUE',
      'tRue',
      'yes',
      'no',
      'on',
      'off',
      'y',
      '~',
      'null',
      'Null',
      'NULL',
      '2024-01-01',
      '2024-01-01T10:00:00Z',
      '12:30:00',
      '1.2.3',
      '<<',
      '=',
      '-1',
      '0x',
      '0o',
      '+',
      '1e',
      'e3',
    ];
    for (const scalar of tricky) {
      expect(readDefinitionYaml(`v: ${scalar}\n`), scalar).toEqual(yamlParse(`v: ${scalar}\n`));
    }
    const scalarText = fc
      .array(fc.constantFrom(...'0123456789.+-_eExXoObBaAfFnNiItTrRuUlLsS~'), { minLength: 1, maxLength: 8 })
      .map((chars) => chars.join(''))
      // A lone "-" after a key is a misplaced sequence entry, which `yaml` lets through as text and js-yaml refuses.
      .filter((scalar) => scalar !== '-');
    fc.assert(
      fc.property(scalarText, (scalar) => {
        const text = `v: ${scalar}\nk: { ${scalar}: 1 }\n`;
        let expected: unknown;
        try {
          expected = yamlParse(text);
        } catch {
          return; // not YAML at all (e.g. "- x" reads as a sequence entry): nothing to agree on
        }
        expect(readDefinitionYaml(text)).toEqual(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('writes out aliases and reads merge keys as the plain key "<<", as YAML 1.2 does', () => {
    const read = readDefinitionYaml(
      'base: &base { version: 1.0, config: { port: 5060 } }\na: *base\nb: { <<: *base }\n',
    ) as Record<string, unknown>;
    expect(read.a).toEqual({ version: '1.0', config: { port: '5060' } });
    expect(read.a).not.toBe(read.base);
    expect(read.b).toEqual({ '<<': { version: '1.0', config: { port: '5060' } } });
  });

  it('refuses a billion laughs quickly, naming the alias that crosses the limit', () => {
    const started = performance.now();
    const error = yamlRejection(billionLaughs());
    expect(performance.now() - started).toBeLessThan(500);
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toContain(`aliases would add more than ${ALIAS_EXPANSION_LIMIT} characters`);
    // Level e's second *d: levels a-d and one *d stay under the limit, a second does not.
    expect(error.details).toEqual({ line: 5, column: 12 });
  });

  it('counts the text an alias repeats, so a long string aliased many times is refused too', () => {
    const flood = `s: &s "${'x'.repeat(100_000)}"\nroles: [${Array(1000).fill('*s').join(', ')}]\n`;
    expect(yamlRejection(flood).message).toContain('aliases would add more than');
    // The same string aliased a few times is fine: the limit is on what aliases add, not on the text.
    const few = readDefinitionYaml(`s: &s "${'x'.repeat(20_000)}"\nt: [*s, *s]\n`) as { t: string[] };
    expect(few.t).toHaveLength(2);
  });

  it('refuses an alias to a node it is inside (a cycle), with its position', () => {
    for (const [text, at] of [
      ['a: &a [1, *a]\n', { line: 1, column: 11 }],
      ['a: &a\n  b: *a\n', { line: 2, column: 6 }],
    ] as const) {
      const error = yamlRejection(text);
      expect(error.message, text).toContain('an alias refers to a node it is inside');
      expect(error.details, text).toEqual(at);
    }
  });

  it('refuses nesting deeper than anything a definition needs, without exhausting the stack', () => {
    expect(yamlRejection(`${'['.repeat(100_000)}${']'.repeat(100_000)}`).message).toContain(
      'nesting exceeded',
    );
  });
});

/* ───────────── the same definition, as YAML and as JSON ───────────── */

const STRINGS_YAML_MISREADS = [
  '13.2',
  '2.10',
  '1.0',
  '1e3',
  '0x1F',
  '0o17',
  '0b101',
  '013',
  '.inf',
  'true',
  'False',
  'null',
  '~',
  'yes',
  'on',
  '2024-01-01',
  '1_000',
  '5060',
  '-',
  '<<',
  '#x',
  'a: b',
  '- x',
  '"',
  "'",
  '[a]',
  '{a}',
  '*a',
  '&a',
  '!t',
  '%x',
  '@x',
  ' lead',
  'trail ',
  'two\nlines',
  'tab\tin',
  '',
];
const anyText = fc.oneof(
  fc.constantFrom(...STRINGS_YAML_MISREADS),
  fc.string({ unit: 'binary', maxLength: 12 }),
);
const someText = anyText.filter((text) => text.length > 0);
const name = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,8}$/);
const token = fc.oneof(
  fc.constantFrom('13.2', '2.10', '1.0', '1e3', '0x1F', '013', 'true', '1_000', '5060', '1.5.0-rc.1', 'v2_1'),
  fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._+~-]{0,10}$/),
);

const service = fc.record(
  {
    version: token,
    config: fc.dictionary(token, anyText, { maxKeys: 4 }),
    port: fc.integer({ min: 0, max: 65535 }),
    stopped: fc.constant(true as const),
  },
  { requiredKeys: ['version'] },
);

const hostType = fc.record(
  {
    roles: fc.array(name, { minLength: 1, maxLength: 3 }),
    instanceType: someText,
    count: fc.nat(20),
    min: fc.nat(5),
    max: fc.nat(50),
    image: someText,
    services: fc.dictionary(name, service, { maxKeys: 3 }),
    balances: fc.array(name, { maxLength: 2 }),
    channels: fc.subarray(['voice', 'sms', 'mms', 'video'] as const),
  },
  { requiredKeys: ['roles', 'instanceType', 'services'] },
);

const configuration = fc.record(
  {
    rollout: fc.record(
      {
        wave: someText,
        surgeFirst: fc.boolean(),
        convergenceTimeoutSeconds: fc.integer({ min: 1, max: 9999 }),
      },
      { requiredKeys: [] },
    ),
    drain: fc.record(
      {
        waitForSessions: fc.boolean(),
        timeoutSeconds: fc.integer({ min: 1, max: 9999 }),
        onTimeout: fc.constantFrom('proceed' as const, 'fail' as const),
      },
      { requiredKeys: [] },
    ),
    disruptionBudget: someText,
    // biome-ignore lint/suspicious/noThenProperty: a rule reads "when … then …"; it is never awaited.
    rules: fc.array(fc.record({ when: someText, then: someText }), { maxLength: 3 }),
    regions: fc.array(someText, { maxLength: 2 }),
  },
  { requiredKeys: [] },
);

/** Host types sometimes share one services object: `yaml` writes that as an anchor and aliases. */
const definition = fc
  .record({
    name,
    hostTypes: fc.dictionary(name, hostType, { minKeys: 1, maxKeys: 3 }),
    dependencies: fc.dictionary(name, fc.array(name, { maxLength: 3 }), { maxKeys: 4 }),
    configuration,
    share: fc.boolean(),
  })
  .map(({ share, ...shape }) => {
    const hostTypes = Object.values(shape.hostTypes);
    const first = hostTypes[0];
    if (share && first) for (const other of hostTypes) other.services = first.services;
    return shape as unknown as GroupDefinition;
  });

const style = fc.record({
  collectionStyle: fc.constantFrom('any' as const, 'block' as const, 'flow' as const),
  defaultStringType: fc.constantFrom(
    'PLAIN' as const,
    'QUOTE_DOUBLE' as const,
    'QUOTE_SINGLE' as const,
    'BLOCK_LITERAL' as const,
    'BLOCK_FOLDED' as const,
  ),
  lineWidth: fc.constantFrom(0, 20, 80),
  indent: fc.constantFrom(2, 4),
});

describe('a definition written as YAML reads as the same definition written as JSON', () => {
  it('holds for random definitions, written in any style `yaml` writes', () => {
    fc.assert(
      fc.property(definition, style, (shape, options) => {
        const json = JSON.stringify(shape);
        const text = yamlStringify(shape, options);
        // `yaml` folds some escapes it writes into text it cannot read back ("\\undefined"): not ours to read.
        fc.pre(isDeepStrictEqual(yamlParse(text), JSON.parse(json)));
        expect(readDefinitionYaml(text)).toEqual(JSON.parse(json));
        const fromJson = outcome(() => parseGroupDefinition(json, 'json'));
        expect(outcome(() => parseGroupDefinition(text, 'yaml'))).toEqual(fromJson);
      }),
      { numRuns: 300 },
    );
  });
});

/** The definition, or the problems it was refused for: both readers must agree on either. */
function outcome(read: () => GroupDefinition): unknown {
  try {
    return { accepted: read() };
  } catch (error) {
    if (error instanceof ValidationError) return { refused: error.details };
    throw error;
  }
}
