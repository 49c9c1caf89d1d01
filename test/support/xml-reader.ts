/**
 * A minimal, strict XML reader for tests: enough of XML 1.0 to prove that what shared/xml.ts writes is
 * well-formed (one root, balanced tags, legal characters, valid references, no duplicate attributes) and to
 * read back what it says. It refuses anything it does not understand rather than guessing.
 */
export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlNode[];
}
export type XmlNode = XmlElement | string;

const DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';
const NAME = /^[A-Za-z_:][A-Za-z0-9._:-]*/;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function isXmlChar(code: number): boolean {
  return (
    code === 0x9 ||
    code === 0xa ||
    code === 0xd ||
    (code >= 0x20 && code <= 0xd7ff) ||
    (code >= 0xe000 && code <= 0xfffd) ||
    (code >= 0x10000 && code <= 0x10ffff)
  );
}

function checkChars(text: string): void {
  for (let index = 0; index < text.length; index++) {
    const code = text.codePointAt(index) as number;
    // codePointAt returns a lone surrogate's own value, which isXmlChar refuses.
    if (!isXmlChar(code)) throw new SyntaxError(`illegal character U+${code.toString(16)} at ${index}`);
    if (code > 0xffff) index++;
  }
}

class Reader {
  position = 0;
  constructor(readonly text: string) {}

  fail(message: string): never {
    throw new SyntaxError(
      `${message} at offset ${this.position}: ${JSON.stringify(this.text.slice(this.position, this.position + 30))}`,
    );
  }

  name(): string {
    const match = NAME.exec(this.text.slice(this.position));
    if (!match) this.fail('expected a name');
    this.position += match[0].length;
    return match[0];
  }

  skipSpace(): boolean {
    const start = this.position;
    while (/[ \t\r\n]/.test(this.text[this.position] ?? '')) this.position++;
    return this.position > start;
  }

  expect(literal: string): void {
    if (!this.text.startsWith(literal, this.position)) this.fail(`expected ${JSON.stringify(literal)}`);
    this.position += literal.length;
  }

  /** Decodes character data up to `stop` (exclusive), resolving references. */
  characters(stop: (char: string) => boolean, inAttribute: boolean): string {
    let out = '';
    while (this.position < this.text.length && !stop(this.text[this.position] as string)) {
      const char = this.text[this.position] as string;
      if (char === '<') this.fail('"<" in character data');
      if (char === '&') {
        const end = this.text.indexOf(';', this.position);
        if (end < 0) this.fail('unterminated reference');
        const reference = this.text.slice(this.position + 1, end);
        let decoded: string;
        if (/^#[0-9]+$/.test(reference)) decoded = this.codePoint(Number(reference.slice(1)));
        else if (/^#x[0-9a-fA-F]+$/.test(reference))
          decoded = this.codePoint(Number.parseInt(reference.slice(2), 16));
        else if (Object.hasOwn(PREDEFINED, reference)) decoded = PREDEFINED[reference] as string;
        else this.fail(`unknown entity &${reference};`);
        out += decoded;
        this.position = end + 1;
        continue;
      }
      if (!inAttribute && this.text.startsWith(']]>', this.position)) this.fail('"]]>" in character data');
      // Attribute-value normalisation: literal whitespace becomes a space, as a conforming parser would do.
      out += inAttribute && /[\t\n\r]/.test(char) ? ' ' : char;
      this.position++;
    }
    return out;
  }

  codePoint(code: number): string {
    if (!isXmlChar(code)) this.fail(`character reference to illegal U+${code.toString(16)}`);
    return String.fromCodePoint(code);
  }

  element(): XmlElement {
    this.expect('<');
    const name = this.name();
    const attributes: Record<string, string> = {};
    for (;;) {
      const spaced = this.skipSpace();
      if (this.text.startsWith('/>', this.position)) {
        this.position += 2;
        return { name, attributes, children: [] };
      }
      if (this.text[this.position] === '>') {
        this.position++;
        break;
      }
      if (!spaced) this.fail('expected whitespace before an attribute');
      const attribute = this.name();
      if (Object.hasOwn(attributes, attribute)) this.fail(`duplicate attribute ${attribute}`);
      this.skipSpace();
      this.expect('=');
      this.skipSpace();
      const quote = this.text[this.position];
      if (quote !== '"' && quote !== "'") this.fail('expected a quoted attribute value');
      this.position++;
      attributes[attribute] = this.characters((char) => char === quote, true);
      this.expect(quote);
    }
    const children: XmlNode[] = [];
    for (;;) {
      if (this.position >= this.text.length) this.fail(`unclosed <${name}>`);
      if (this.text.startsWith('</', this.position)) {
        this.position += 2;
        const closing = this.name();
        if (closing !== name) this.fail(`</${closing}> closes <${name}>`);
        this.skipSpace();
        this.expect('>');
        return { name, attributes, children };
      }
      if (this.text[this.position] === '<') {
        children.push(this.element());
        continue;
      }
      const text = this.characters((char) => char === '<', false);
      const previous = children.at(-1);
      if (typeof previous === 'string') children[children.length - 1] = previous + text;
      else children.push(text);
    }
  }
}

export function readXml(document: string): XmlElement {
  checkChars(document);
  // End-of-line handling happens before parsing in XML 1.0: only &#13; survives as a carriage return.
  const normalized = document.replace(/\r\n?/g, '\n');
  const reader = new Reader(normalized);
  reader.expect(DECLARATION);
  reader.skipSpace();
  const root = reader.element();
  reader.skipSpace();
  if (reader.position !== normalized.length) reader.fail('content after the root element');
  return root;
}

export function elementChildren(element: XmlElement, name?: string): XmlElement[] {
  return element.children.filter(
    (child): child is XmlElement => typeof child !== 'string' && (name === undefined || child.name === name),
  );
}

export function textOf(element: XmlElement): string {
  return element.children.map((child) => (typeof child === 'string' ? child : textOf(child))).join('');
}

/** The text of the first child element called `name`, or undefined. */
export function childText(element: XmlElement, name: string): string | undefined {
  const child = elementChildren(element, name)[0];
  return child && textOf(child);
}
