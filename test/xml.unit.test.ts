import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  escapeAttribute,
  escapeText,
  isSafeXmlName,
  singularOf,
  toXml,
  XML_DECLARATION,
} from '../shared/xml.ts';
import { childText, elementChildren, readXml, textOf, type XmlElement } from './support/xml-reader.ts';

describe('toXml', () => {
  it('names the root after the resource and repeats known plurals as singular elements', () => {
    const xml = toXml('hosts', {
      hosts: [
        { hostId: 'a', roles: ['sip', 'media'] },
        { hostId: 'b', roles: [] },
      ],
      next: 'c',
    });
    expect(xml).toBe(
      `${XML_DECLARATION}<hosts><host><hostId>a</hostId><role>sip</role><role>media</role></host>` +
        '<host><hostId>b</hostId></host><next>c</next></hosts>',
    );
  });

  it('keeps a known plural wrapped when a sibling already uses its singular name', () => {
    expect(toXml('host', { role: 'sip', roles: ['sip', 'lb'] })).toBe(
      `${XML_DECLARATION}<host><role>sip</role><roles><role>sip</role><role>lb</role></roles></host>`,
    );
  });

  it('wraps arrays with no known singular in their own element with <item> children', () => {
    expect(toXml('x', { ports: [1, 2], nested: [[true]] })).toBe(
      `${XML_DECLARATION}<x><ports><item>1</item><item>2</item></ports><nested><item><item>true</item></item></nested></x>`,
    );
  });

  it('keeps null apart from the empty string and leaves undefined members out', () => {
    expect(toXml('x', { a: null, b: '', c: undefined, d: 0, e: false })).toBe(
      `${XML_DECLARATION}<x><a nil="true"/><b/><d>0</d><e>false</e></x>`,
    );
  });

  it('keeps config keys and service names that are XML names as elements', () => {
    const xml = toXml('values', { 'sip.port': '5060', 'call-router': '1.2.0', _x: '1' });
    expect(xml).toBe(
      `${XML_DECLARATION}<values><sip.port>5060</sip.port><call-router>1.2.0</call-router><_x>1</_x></values>`,
    );
  });

  it('turns keys that are not safe XML names into <entry key="…">', () => {
    const xml = toXml('values', { '1abc': 'a', 'a b': 'b', xmlns: 'c', 'a:b': 'd', '': 'e', 'q"<&': 'f' });
    const root = readXml(xml);
    expect(elementChildren(root).map((child) => [child.name, child.attributes.key, textOf(child)])).toEqual([
      ['entry', '1abc', 'a'],
      ['entry', 'a b', 'b'],
      ['entry', 'xmlns', 'c'],
      ['entry', 'a:b', 'd'],
      ['entry', '', 'e'],
      ['entry', 'q"<&', 'f'],
    ]);
  });

  it('escapes markup characters in text and attributes', () => {
    expect(escapeText(`a<b>&"c'`)).toBe(`a&lt;b&gt;&amp;"c'`);
    expect(escapeAttribute(`a<b>&"c'\n`)).toBe('a&lt;b&gt;&amp;&quot;c&apos;&#10;');
    const xml = toXml('x', { note: `<script>&"'</script>`, 'k "1"': `]]>` });
    expect(xml).not.toContain('<script>');
    const root = readXml(xml);
    expect(childText(root, 'note')).toBe(`<script>&"'</script>`);
    expect(elementChildren(root, 'entry')[0]?.attributes.key).toBe('k "1"');
    expect(childText(root, 'entry')).toBe(']]>');
  });

  it('preserves carriage returns and tabs through a parser', () => {
    const root = readXml(toXml('x', { text: 'a\r\nb\tc', 'a\r\nb': 'v' }));
    expect(childText(root, 'text')).toBe('a\r\nb\tc');
    expect(elementChildren(root, 'entry')[0]?.attributes.key).toBe('a\r\nb');
  });

  it('replaces characters XML cannot carry with U+FFFD', () => {
    const xml = toXml('x', { text: 'a\u0000b\u001Fc\uD800d\uFFFEe😀' });
    expect(childText(readXml(xml), 'text')).toBe('a\uFFFDb\uFFFDc\uFFFDd\uFFFDe😀');
  });

  it('serializes dates as JSON would', () => {
    expect(toXml('x', { at: new Date('2030-01-02T03:04:05.000Z') })).toContain(
      '<at>2030-01-02T03:04:05.000Z</at>',
    );
  });

  it('rejects a root name that is not a safe XML name', () => {
    expect(() => toXml('1hosts', {})).toThrow(TypeError);
    expect(() => toXml('a b', {})).toThrow(TypeError);
  });

  it('rejects values JSON cannot hold', () => {
    expect(() => toXml('x', { f: () => 1 })).toThrow(/function/);
  });

  it('knows its plurals and nothing else', () => {
    expect(singularOf('changes')).toBe('change');
    expect(singularOf('dataRefs')).toBe('dataRef');
    expect(singularOf('toString')).toBeUndefined();
    expect(isSafeXmlName('sip.port')).toBe(true);
    expect(isSafeXmlName('XMLthing')).toBe(false);
  });
});

/** What a conforming parser must hand back for a string: the serializer's documented replacements applied. */
function expectedText(text: string): string {
  let out = '';
  for (const char of text) {
    const code = char.codePointAt(0) as number;
    const legal =
      code === 0x9 ||
      code === 0xa ||
      code === 0xd ||
      (code >= 0x20 && code <= 0xd7ff) ||
      (code >= 0xe000 && code <= 0xfffd) ||
      code >= 0x10000;
    out += legal ? char : '\uFFFD';
  }
  return out;
}

function flattened(object: Record<string, unknown>, key: string): boolean {
  const singular = singularOf(key);
  return Array.isArray(object[key]) && singular !== undefined && object[singular] === undefined;
}

/** Tokens a reader must find: every scalar's text and every unsafe key, in document order. */
function jsonTokens(value: unknown, out: string[] = []): string[] {
  if (value === null) {
    out.push('nil');
  } else if (Array.isArray(value)) {
    if (value.length === 0) out.push('t:');
    for (const item of value) jsonTokens(item, out);
  } else if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    // Empty known-plural arrays write no element at all, so they leave their parent a leaf.
    const elements = entries.reduce(
      (count, [key, member]) =>
        count + (flattened(value as Record<string, unknown>, key) ? (member as unknown[]).length : 1),
      0,
    );
    if (elements === 0) out.push('t:');
    for (const [key, member] of entries) {
      if (!isSafeXmlName(key)) out.push(`k:${expectedText(key)}`);
      if (flattened(value as Record<string, unknown>, key)) {
        for (const item of member as unknown[]) jsonTokens(item, out);
      } else {
        jsonTokens(member, out);
      }
    }
  } else {
    out.push(`t:${expectedText(String(value))}`);
  }
  return out;
}

function xmlTokens(element: XmlElement, out: string[] = []): string[] {
  if (element.name === 'entry' && element.attributes.key !== undefined)
    out.push(`k:${element.attributes.key}`);
  const children = elementChildren(element);
  if (element.attributes.nil === 'true') out.push('nil');
  else if (children.length === 0) out.push(`t:${textOf(element)}`);
  for (const child of children) xmlTokens(child, out);
  return out;
}

describe('toXml properties', () => {
  it('writes well-formed XML for any JSON value, losing no text and no key', () => {
    fc.assert(
      fc.property(fc.jsonValue({ stringUnit: 'binary', maxDepth: 4 }), (value) => {
        const root = readXml(toXml('root', value));
        expect(root.name).toBe('root');
        expect(xmlTokens(root)).toEqual(jsonTokens(value));
      }),
      { numRuns: 300 },
    );
  });

  it('writes well-formed XML whatever the keys and texts are, including markup and the known plurals', () => {
    // Random code points rarely hit markup, so strings are also drawn from the characters that matter.
    const tricky = fc.string({
      unit: fc.constantFrom(
        '<',
        '>',
        '&',
        '"',
        "'",
        ';',
        '#',
        ']',
        '\r',
        '\n',
        '\t',
        'a',
        '\u0000',
        '\uD800',
        '😀',
      ),
    });
    const text = fc.oneof(fc.string({ unit: 'binary' }), tricky);
    const key = fc.oneof(
      fc.constantFrom('hosts', 'host', 'roles', 'role', 'changes', 'entry', 'item', 'xml', '1', 'a b'),
      text,
    );
    const tree = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        text,
        fc.constant(null),
        fc.array(tie('node'), { maxLength: 3 }),
        fc.dictionary(key, tie('node'), { maxKeys: 4 }),
      ),
    })).node;
    fc.assert(
      fc.property(tree, (value) => {
        expect(xmlTokens(readXml(toXml('root', value)))).toEqual(jsonTokens(value));
      }),
      { numRuns: 300 },
    );
  });
});

describe('readXml (the test reader itself)', () => {
  it('rejects unbalanced, unescaped or illegal documents', () => {
    expect(() => readXml(`${XML_DECLARATION}<a><b></a></b>`)).toThrow(SyntaxError);
    expect(() => readXml(`${XML_DECLARATION}<a>x & y</a>`)).toThrow(SyntaxError);
    expect(() => readXml(`${XML_DECLARATION}<a>]]></a>`)).toThrow(SyntaxError);
    expect(() => readXml(`${XML_DECLARATION}<a>&#0;</a>`)).toThrow(SyntaxError);
    expect(() => readXml(`${XML_DECLARATION}<a x="1" x="2"/>`)).toThrow(SyntaxError);
    expect(() => readXml(`${XML_DECLARATION}<a/><b/>`)).toThrow(SyntaxError);
    expect(() => readXml(`${XML_DECLARATION}<a>\u0001</a>`)).toThrow(SyntaxError);
    expect(() => readXml('<a/>')).toThrow(SyntaxError);
  });
});
