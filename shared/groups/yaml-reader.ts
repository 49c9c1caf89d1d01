/**
 * A group definition's YAML → plain data, with js-yaml's `load` (a third of `yaml`'s weight in a Lambda bundle;
 * the CLI keeps `yaml` for writing). It reads scalars as `yaml` does with its YAML 1.2 core schema, which
 * definitions have always been read with, and adds what a definition needs on top:
 * - versions and config values keep the text the operator typed (`version: 2.10` is "2.10", not 2.1);
 * - aliases may not stand for more than ALIAS_EXPANSION_LIMIT of definition: js-yaml shares one object between an
 *   anchor and its aliases, so a "billion laughs" document is small when loaded but huge to anything that walks
 *   it (the zod validation, JSON.stringify); it is refused while loading, at the alias that crosses the limit.
 */
import { FAILSAFE_SCHEMA, load, type State, Type, YAMLException } from 'js-yaml';

/**
 * What aliases may add, counted as a written-out definition: one per node plus its text's length (a key and
 * its value are two nodes). A quarter of what a whole definition's text may hold; sharing a services or config
 * block between host types needs a few hundred.
 */
export const ALIAS_EXPANSION_LIMIT = 64 * 1024;

/** Where in the text a problem is, 1-based (as editors count). */
export interface TextPosition {
  line: number;
  column: number;
}

export class YamlReadError extends Error {
  constructor(
    message: string,
    readonly position: TextPosition | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'YamlReadError';
  }
}

/**
 * A plain scalar YAML reads as a number, a boolean or null, with the text it was written as, until toPlain
 * decides which of the two the definition keeps. js-yaml turns a key into String(key) unless it is a plain
 * "[object Object]", hence the tag: `5060: x` keys the mapping with "5060" and `~: x` with "", as `yaml` does.
 */
class TypedScalar {
  constructor(
    readonly source: string,
    readonly value: number | boolean | null,
  ) {}
  get [Symbol.toStringTag](): string {
    return 'TypedScalar';
  }
  toString(): string {
    return this.value === null ? '' : String(this.value);
  }
}

/** One implicit scalar type of the YAML 1.2 core schema: each pattern with how its text becomes a value. */
function scalarType(
  tag: string,
  forms: readonly (readonly [RegExp, (text: string) => number | boolean | null])[],
): Type {
  const formOf = (data: unknown) =>
    typeof data === 'string' ? forms.find(([pattern]) => pattern.test(data)) : undefined;
  return new Type(`tag:yaml.org,2002:${tag}`, {
    kind: 'scalar',
    resolve: (data) => formOf(data) !== undefined,
    // Only called once resolve has matched a form.
    construct: (data: string) => new TypedScalar(data, (formOf(data)?.[1] ?? Number)(data)),
  });
}

// The patterns of `yaml`'s core schema (yaml/dist/schema/core), so a definition reads as it always has:
// js-yaml's own core schema differs (0b101 is a number there, a string here).
const CORE_SCHEMA = FAILSAFE_SCHEMA.extend({
  implicit: [
    scalarType('null', [[/^(?:~|[Nn]ull|NULL)?$/, () => null]]),
    scalarType('bool', [[/^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/, (text) => text[0] === 't' || text[0] === 'T']]),
    scalarType('int', [
      [/^[-+]?[0-9]+$/, (text) => Number.parseInt(text, 10)],
      [/^0o[0-7]+$/, (text) => Number.parseInt(text.slice(2), 8)],
      [/^0x[0-9a-fA-F]+$/, (text) => Number.parseInt(text.slice(2), 16)],
    ]),
    scalarType('float', [
      [
        /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/,
        (text) => (/nan$/i.test(text) ? Number.NaN : text[0] === '-' ? -Infinity : Infinity),
      ],
      [/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/, Number.parseFloat],
      [/^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/, Number.parseFloat],
    ]),
  ],
});

/** Reads one YAML document into plain data (JSON's kinds); throws a YamlReadError naming where it went wrong. */
export function readDefinitionYaml(text: string): unknown {
  let loaded: unknown;
  try {
    loaded = load(text, { schema: CORE_SCHEMA, listener: aliasBudget(ALIAS_EXPANSION_LIMIT) });
  } catch (error) {
    if (error instanceof YamlReadError || !(error instanceof YAMLException)) throw error;
    const { mark } = error;
    // js-yaml counts from 0; people (and `yaml`, which this replaces) from 1.
    const position = mark ? { line: mark.line + 1, column: mark.column + 1 } : undefined;
    const where = position ? ` at line ${position.line}, column ${position.column}` : '';
    const snippet = mark?.snippet ? `:\n\n${mark.snippet}` : '';
    throw new YamlReadError(`${error.reason}${where}${snippet}`, position, { cause: error });
  }
  // An empty document is null to `yaml` and JSON alike; js-yaml says undefined.
  return loaded === undefined ? null : toPlain(loaded, false);
}

/**
 * A load listener that refuses aliases standing for more than `limit`, or for a node they are inside. js-yaml
 * closes every node with its kind, except an alias, which is the node it refers to and has no kind of its own
 * (an explicitly tagged empty node is the other case: it counts one, harmless).
 */
function aliasBudget(limit: number): (event: string, state: State) => void {
  const closed = new WeakSet<object>();
  const weights = new WeakMap<object, number>();
  const opened: number[] = [];
  let spent = 0;
  return (event, state) => {
    if (event === 'open') {
      opened.push(state.position);
      return;
    }
    const start = opened.pop() ?? 0;
    const { kind, result } = state as { kind: string | null; result: unknown };
    const shared = typeof result === 'object' && result !== null;
    if (kind !== null) {
      if (shared) closed.add(result);
      return;
    }
    if (result === null || result === undefined) return;
    if (shared && !closed.has(result)) {
      throw aliasError('an alias refers to a node it is inside', state.input, start);
    }
    spent += weight(result, weights);
    if (spent > limit) {
      throw aliasError(
        `aliases would add more than ${limit} characters to the definition (an alias bomb?)`,
        state.input,
        start,
      );
    }
  };
}

/** Names the alias's `*`: the node opened before the space in front of it. */
function aliasError(problem: string, input: string, opened: number): YamlReadError {
  const star = input.indexOf('*', opened);
  const before = input.slice(0, star === -1 ? opened : star);
  const line = before.split('\n').length;
  const position = { line, column: before.length - before.lastIndexOf('\n') };
  return new YamlReadError(`${problem} at line ${position.line}, column ${position.column}`, position);
}

/** A loaded value's size written out in full: one per node plus its text. Memoised: aliases share nodes. */
function weight(value: unknown, weights: WeakMap<object, number>): number {
  if (typeof value === 'string') return 1 + value.length;
  if (value instanceof TypedScalar) return 1 + value.source.length;
  if (typeof value !== 'object' || value === null) return 1;
  const known = weights.get(value);
  if (known !== undefined) return known;
  let total = 1;
  if (Array.isArray(value)) {
    for (const item of value) total += weight(item, weights);
  } else {
    for (const [key, item] of Object.entries(value)) total += 1 + key.length + weight(item, weights);
  }
  weights.set(value, total);
  return total;
}

/**
 * The loaded value as JSON-like data, each alias written out. `keepText`: a number or boolean here keeps the text
 * it was written as. That is so for a `version`'s value and for a value directly inside a `config` mapping, at
 * any depth, as the `yaml`-based reader did.
 */
function toPlain(value: unknown, keepText: boolean): unknown {
  if (value instanceof TypedScalar) return keepText && value.value !== null ? value.source : value.value;
  if (Array.isArray(value)) return value.map((item) => toPlain(item, false));
  if (!isMapping(value)) return value;
  return copyMapping(value, (key) => key === 'version');
}

function copyMapping(
  mapping: Record<string, unknown>,
  keepsText: (key: string) => boolean,
): Record<string, unknown> {
  const plain: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(mapping)) {
    const copy =
      key === 'config' && isMapping(item) ? copyMapping(item, () => true) : toPlain(item, keepsText(key));
    // defineProperty: a "__proto__" key stays data, as JSON.parse keeps it.
    Object.defineProperty(plain, key, { value: copy, enumerable: true, writable: true, configurable: true });
  }
  return plain;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof TypedScalar)
  );
}
