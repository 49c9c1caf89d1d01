/**
 * Tokens of the rules language, read one at a time so that the first problem reported is the leftmost one.
 */
import { ValidationError } from '../errors.ts';

/** `position` is 1-based, as in the message; the text and a caret follow on the next lines. */
export class RuleSyntaxError extends ValidationError {
  /** The first line of the message: the problem and its position, without the text and caret. */
  readonly problem: string;
  readonly position: number;

  constructor(text: string, index: number, problem: string, hint?: string) {
    const position = index + 1;
    const where = `${problem} at position ${position}`;
    const line = hint === undefined ? where : `${where}: ${hint}`;
    super(`${line}\n${text}\n${' '.repeat(index)}^`, { text, position });
    this.problem = line;
    this.position = position;
  }
}

export type Punctuation = '==' | '!=' | '<' | '<=' | '>' | '>=' | '&&' | '||' | '!' | '(' | ')' | ',';

export type Token =
  | { kind: 'word'; text: string; start: number }
  /** `signed` when written with a leading + or - (scale tells a delta from a count by it). */
  | { kind: 'number'; value: number; text: string; signed: boolean; start: number }
  | { kind: 'string'; value: string; start: number }
  | { kind: 'punctuation'; text: Punctuation; start: number }
  | { kind: 'end'; start: number };

const WORD_START = /[A-Za-z_]/;
const WORD_CHAR = /[A-Za-z0-9_.-]/;
const NUMBER = /[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const TWO_CHAR: readonly string[] = ['==', '!=', '<=', '>=', '&&', '||'];
const ONE_CHAR: readonly string[] = ['<', '>', '!', '(', ')', ','];

export class Lexer {
  private index = 0;

  constructor(readonly text: string) {}

  next(): Token {
    this.skipSpace();
    const start = this.index;
    const char = this.text.charAt(start);
    if (start >= this.text.length) return { kind: 'end', start };
    if (char === '"') return this.string();
    if (/[0-9]/.test(char) || (/[+-]/.test(char) && /[0-9]/.test(this.text.charAt(start + 1)))) {
      return this.number();
    }
    if (WORD_START.test(char)) return { kind: 'word', text: this.takeWord(), start };
    const two = this.text.slice(start, start + 2);
    if (TWO_CHAR.includes(two)) {
      this.index += 2;
      return { kind: 'punctuation', text: two as Punctuation, start };
    }
    if (ONE_CHAR.includes(char)) {
      this.index += 1;
      return { kind: 'punctuation', text: char as Punctuation, start };
    }
    if (char === '=') this.fail(start, 'unexpected "="', 'compare with "=="');
    if (char === '&' || char === '|') {
      this.fail(start, `unexpected "${char}"`, `write "${char}${char}" or "${char === '&' ? 'and' : 'or'}"`);
    }
    return this.fail(start, `unexpected ${JSON.stringify(char)}`);
  }

  fail(index: number, problem: string, hint?: string): never {
    throw new RuleSyntaxError(this.text, index, problem, hint);
  }

  private number(): Token {
    const start = this.index;
    NUMBER.lastIndex = start;
    const match = NUMBER.exec(this.text);
    const text = match?.[0] ?? '';
    const signed = text.startsWith('+') || text.startsWith('-');
    // "2.1.0" or "3xl" are words that start with a digit, not a number followed by junk.
    if (!signed && WORD_CHAR.test(this.text.charAt(start + text.length))) {
      return { kind: 'word', text: this.takeWord(), start };
    }
    this.index = start + text.length;
    const value = Number(text);
    if (!Number.isFinite(value)) this.fail(start, `number ${text} is too large`);
    // -0 prints as 0; keep the value what its text reads back as.
    return { kind: 'number', value: value === 0 ? 0 : value, text, signed, start };
  }

  private string(): Token {
    const start = this.index;
    let end = start + 1;
    while (end < this.text.length && this.text.charAt(end) !== '"') {
      end += this.text.charAt(end) === '\\' ? 2 : 1;
    }
    if (end >= this.text.length) this.fail(start, 'unterminated string', 'close it with "');
    this.index = end + 1;
    try {
      const value: unknown = JSON.parse(this.text.slice(start, end + 1));
      if (typeof value === 'string') return { kind: 'string', value, start };
    } catch {
      // Reported below, at the string's start.
    }
    return this.fail(start, 'invalid string', 'escape " and \\ with a backslash, as in JSON');
  }

  private takeWord(): string {
    const start = this.index;
    while (this.index < this.text.length && WORD_CHAR.test(this.text.charAt(this.index))) this.index += 1;
    return this.text.slice(start, this.index);
  }

  private skipSpace(): void {
    while (/\s/.test(this.text.charAt(this.index))) this.index += 1;
  }
}

/** How a token reads in a message: a whole word reads better than its first letter. */
export function describeToken(token: Token): string {
  switch (token.kind) {
    case 'end':
      return 'end';
    case 'word':
    case 'punctuation':
    case 'number':
      return JSON.stringify(token.text);
    case 'string':
      return `string ${JSON.stringify(token.value)}`;
  }
}
