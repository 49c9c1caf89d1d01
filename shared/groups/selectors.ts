/**
 * Selectors pick which hosts an update touches: `all`, `ids(a,b)`, a count `3`, a percentage `20%`,
 * `version=1.2.*` (and `!=`, `<`, `<=`, `>`, `>=`), `max(…)`/`min(…)` over sizes, combined with `&` or `and`.
 * Filters narrow the candidates; sizes say how many of the narrowed set to take (the smallest size wins).
 */

import { ValidationError } from '../errors.ts';
import type { SelectableHost } from './model.ts';

export type VersionOperator = '=' | '!=' | '<' | '<=' | '>' | '>=';

export type SizeExpression =
  | { kind: 'all' }
  | { kind: 'count'; count: number }
  | { kind: 'percent'; percent: number }
  | { kind: 'max'; of: SizeExpression[] }
  | { kind: 'min'; of: SizeExpression[] };

export type SelectorFilter =
  | { kind: 'ids'; ids: string[] }
  /** `pattern` may contain `*` only with `=` and `!=`. */
  | { kind: 'version'; operator: VersionOperator; pattern: string };

export interface Selector {
  /** All must hold (an intersection). */
  filters: SelectorFilter[];
  /** The smallest applies; none means every filtered host. */
  sizes: SizeExpression[];
}

/** `position` is 1-based, as in the message. */
export class SelectorError extends ValidationError {
  constructor(selector: string, index: number, problem: string, hint?: string) {
    const position = index + 1;
    const where = `${problem} at position ${position} in ${JSON.stringify(selector)}`;
    const caret = `${' '.repeat(index)}^`;
    super(`${hint === undefined ? where : `${where}: ${hint}`}\n${selector}\n${caret}`, {
      selector,
      position,
    });
  }
}

const ID_CHAR = /[A-Za-z0-9._:-]/;
const VERSION_CHAR = /[A-Za-z0-9._*+~-]/;
const WORD_CHAR = /[a-z]/;
const DIGIT = /[0-9]/;
const SIZE_HINT = 'expected a size (a count, a percentage, all, max(…) or min(…))';

class Parser {
  private index = 0;

  constructor(private readonly text: string) {}

  parse(): Selector {
    const selector: Selector = { filters: [], sizes: [] };
    this.term(selector);
    for (;;) {
      this.skipSpace();
      if (this.atEnd()) return selector;
      if (this.peek() === '&') {
        this.index += 1;
      } else if (this.peekWord() === 'and') {
        this.index += 3;
      } else {
        this.fail('expected "&" or "and" between terms');
      }
      this.term(selector);
    }
  }

  private term(selector: Selector): void {
    this.skipSpace();
    const word = this.peekWord();
    if (word === 'ids') {
      selector.filters.push(this.ids());
    } else if (word === 'version') {
      selector.filters.push(this.version());
    } else {
      selector.sizes.push(this.size('expected a filter (ids(…), version…) or a size'));
    }
  }

  private ids(): SelectorFilter {
    this.index += 3;
    this.expect('(');
    const ids: string[] = [];
    do {
      this.skipSpace();
      const id = this.takeWhile(ID_CHAR);
      if (id === '') this.fail('expected a host id');
      ids.push(id);
      this.skipSpace();
    } while (this.accept(','));
    this.expect(')');
    return { kind: 'ids', ids };
  }

  private version(): SelectorFilter {
    this.index += 7;
    this.skipSpace();
    const operator = this.operator();
    this.skipSpace();
    const start = this.index;
    const pattern = this.takeWhile(VERSION_CHAR);
    if (pattern === '') this.fail('expected a version');
    const star = pattern.indexOf('*');
    if (star >= 0 && operator !== '=' && operator !== '!=') {
      this.failAt(start + star, `"*" is only allowed with "=" and "!=", not with "${operator}"`);
    }
    return { kind: 'version', operator, pattern };
  }

  private operator(): VersionOperator {
    const two = this.text.slice(this.index, this.index + 2);
    if (two === '==' || two === '!=' || two === '<=' || two === '>=') {
      this.index += 2;
      return two === '==' ? '=' : two;
    }
    const one = this.peek();
    if (one === '=' || one === '<' || one === '>') {
      this.index += 1;
      return one;
    }
    return this.fail('expected a comparison (=, !=, <, <=, >, >=)');
  }

  private size(hint: string): SizeExpression {
    this.skipSpace();
    const word = this.peekWord();
    if (word === 'all') {
      this.index += 3;
      return { kind: 'all' };
    }
    if (word === 'max' || word === 'min') {
      this.index += 3;
      this.expect('(');
      const of: SizeExpression[] = [];
      do of.push(this.size(SIZE_HINT));
      while (this.accept(','));
      this.expect(')');
      return { kind: word, of };
    }
    if (DIGIT.test(this.peek())) return this.number();
    return this.fail(hint);
  }

  private number(): SizeExpression {
    const start = this.index;
    const digits = this.takeWhile(DIGIT);
    const value = Number(digits);
    if (this.peek() === '%') {
      if (value > 100) this.failAt(start, `percentage ${digits}% is above 100%`);
      this.index += 1;
      return { kind: 'percent', percent: value };
    }
    if (!Number.isSafeInteger(value)) this.failAt(start, `count ${digits} is too large`);
    return { kind: 'count', count: value };
  }

  private expect(char: string): void {
    this.skipSpace();
    if (this.peek() !== char) this.fail(`expected "${char}"`);
    this.index += 1;
  }

  private accept(char: string): boolean {
    this.skipSpace();
    if (this.peek() !== char) return false;
    this.index += 1;
    return true;
  }

  private skipSpace(): void {
    while (/\s/.test(this.peek())) this.index += 1;
  }

  private peek(): string {
    return this.text.charAt(this.index);
  }

  private peekWord(): string {
    let end = this.index;
    while (end < this.text.length && WORD_CHAR.test(this.text.charAt(end))) end += 1;
    return this.text.slice(this.index, end);
  }

  private takeWhile(pattern: RegExp): string {
    const start = this.index;
    while (this.index < this.text.length && pattern.test(this.text.charAt(this.index))) this.index += 1;
    return this.text.slice(start, this.index);
  }

  private atEnd(): boolean {
    return this.index >= this.text.length;
  }

  private fail(expected: string): never {
    return this.failAt(this.index, this.unexpected(), expected);
  }

  private failAt(index: number, problem: string, hint?: string): never {
    throw new SelectorError(this.text, index, problem, hint);
  }

  /** Names the offending token: a whole word reads better than its first letter. */
  private unexpected(): string {
    if (this.atEnd()) return 'unexpected end';
    const word = this.peekWord();
    return `unexpected ${JSON.stringify(word === '' ? this.peek() : word)}`;
  }
}

export function parseSelector(text: string): Selector {
  return new Parser(text).parse();
}

function sizeOf(expression: SizeExpression, total: number): number {
  switch (expression.kind) {
    case 'all':
      return total;
    case 'count':
      return Math.min(expression.count, total);
    case 'percent':
      // Integer arithmetic: 20% of 10 must be 2, not floor(1.9999…).
      return Math.min(total, Math.floor((total * expression.percent) / 100));
    case 'max':
      return Math.max(...expression.of.map((part) => sizeOf(part, total)));
    case 'min':
      return Math.min(...expression.of.map((part) => sizeOf(part, total)));
  }
}

/** How many of `total` hosts the selector's sizes allow; filters are not applied here. */
export function selectorSize(selector: Selector, total: number): number {
  const whole = Math.max(0, Math.floor(total));
  return Math.min(whole, ...selector.sizes.map((size) => sizeOf(size, whole)));
}

const NUMERIC = /^\d+$/;

/**
 * One identifier against another: numbers numerically and below words, words in ASCII order — semver's rule
 * for pre-release identifiers (§11.4), used for every dotted part so the order stays total on any input.
 */
function compareIdentifiers(x: string, y: string): number {
  const xNumeric = NUMERIC.test(x);
  const yNumeric = NUMERIC.test(y);
  if (xNumeric && yNumeric) return Math.sign(Number(x) - Number(y));
  if (xNumeric !== yNumeric) return xNumeric ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The release part: a missing part counts as 0, so `2` equals `2.0`. */
function compareRelease(left: readonly string[], right: readonly string[]): number {
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const order = compareIdentifiers(left[i] ?? '0', right[i] ?? '0');
    if (order !== 0) return order;
  }
  return 0;
}

/** Semver §11.4: field by field; with all preceding fields equal, the larger set has the higher precedence. */
function comparePreRelease(left: readonly string[], right: readonly string[]): number {
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const order = compareIdentifiers(left[i] as string, right[i] as string);
    if (order !== 0) return order;
  }
  return Math.sign(left.length - right.length);
}

/** `1.5.0-rc.1+build.7` → release 1.5.0, pre-release rc.1; build metadata plays no part in precedence. */
function versionParts(version: string): { release: string[]; preRelease: string[] | undefined } {
  const withoutBuild = version.split('+', 1)[0] as string;
  const dash = withoutBuild.indexOf('-');
  if (dash < 0) return { release: withoutBuild.split('.'), preRelease: undefined };
  return {
    release: withoutBuild.slice(0, dash).split('.'),
    preRelease: withoutBuild.slice(dash + 1).split('.'),
  };
}

/**
 * Versions order by semver precedence — the release numerically part by part, then a pre-release below its
 * release (`1.5.0-rc.1` < `1.5.0`) and pre-releases field by field, build metadata ignored — which for versions
 * that are not semver falls back to dotted parts (`13.2` < `13.10`, `2` = `2.0`; numbers below words). The order
 * is total on every string, so sorting and filtering by it are consistent.
 */
export function compareVersions(a: string, b: string): number {
  const left = versionParts(a);
  const right = versionParts(b);
  const release = compareRelease(left.release, right.release);
  if (release !== 0) return release;
  if (!left.preRelease || !right.preRelease) return left.preRelease ? -1 : right.preRelease ? 1 : 0;
  return comparePreRelease(left.preRelease, right.preRelease);
}

function globMatches(pattern: string, version: string): boolean {
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${source}$`).test(version);
}

function versionMatches(filter: Extract<SelectorFilter, { kind: 'version' }>, version: string): boolean {
  switch (filter.operator) {
    case '=':
      return globMatches(filter.pattern, version);
    case '!=':
      return !globMatches(filter.pattern, version);
    case '<':
      return compareVersions(version, filter.pattern) < 0;
    case '<=':
      return compareVersions(version, filter.pattern) <= 0;
    case '>':
      return compareVersions(version, filter.pattern) > 0;
    case '>=':
      return compareVersions(version, filter.pattern) >= 0;
  }
}

/**
 * A host that does not run the service has no version to compare, so every version filter leaves it out
 * (a rollout of `media` never touches a host without `media`). Without a service, any version may match.
 */
function passes(filter: SelectorFilter, host: SelectableHost, service: string | undefined): boolean {
  if (filter.kind === 'ids') return filter.ids.includes(host.hostId);
  const versions = service === undefined ? Object.values(host.versions) : [host.versions[service]];
  return versions.some((version) => version !== undefined && versionMatches(filter, version));
}

/** Hosts without live sessions first (altering them cuts no call), then the least loaded, then by id. */
export function compareCandidates(a: SelectableHost, b: SelectableHost): number {
  const busy = Number(a.liveSessions > 0) - Number(b.liveSessions > 0);
  if (busy !== 0) return busy;
  if (a.load !== b.load) return a.load < b.load ? -1 : 1;
  return a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0;
}

export function selectHosts(
  selector: Selector,
  hosts: readonly SelectableHost[],
  service?: string,
): SelectableHost[] {
  const candidates = hosts.filter((host) =>
    selector.filters.every((filter) => passes(filter, host, service)),
  );
  return candidates.sort(compareCandidates).slice(0, selectorSize(selector, candidates.length));
}

function describeSize(size: SizeExpression): string {
  switch (size.kind) {
    case 'all':
      return 'all';
    case 'count':
      return String(size.count);
    case 'percent':
      return `${size.percent}%`;
    case 'max':
    case 'min':
      return `${size.kind}(${size.of.map(describeSize).join(', ')})`;
  }
}

function describeFilter(filter: SelectorFilter): string {
  return filter.kind === 'ids'
    ? `ids(${filter.ids.join(', ')})`
    : `version${filter.operator}${filter.pattern}`;
}

/** The canonical text of a selector: parseSelector(describeSelector(s)) equals s. */
export function describeSelector(selector: Selector): string {
  const terms = [...selector.filters.map(describeFilter), ...selector.sizes.map(describeSize)];
  return terms.length === 0 ? 'all' : terms.join(' & ');
}
