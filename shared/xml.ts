/**
 * A small JSON → XML serializer for the API, so an XSLT can render e.g. a firewall rule set from /hosts.
 *
 * Mapping:
 * - the root element is named by the caller after the resource (`hosts`, `host`, `history`, `diff` …);
 * - an object member becomes an element named after its key, or `<entry key="…">` when the key is not a
 *   safe XML name (config keys such as "a b" or "1abc");
 * - an array member whose key is a known plural becomes repeated singular elements with no wrapper
 *   (`roles: [a, b]` → `<role>a</role><role>b</role>`), which is what XPath over the result wants; when a
 *   sibling key already is that singular (a host's `role` beside its `roles`) the array keeps a wrapper
 *   (`<roles><role>a</role>…</roles>`) so the two cannot mix; any other array keeps its element as a
 *   wrapper around `<item>` children so nothing is ambiguous;
 * - null becomes an empty element with `nil="true"`, so it stays distinct from the empty string;
 * - members whose value is undefined are left out, as JSON.stringify does.
 */

const PLURALS: Readonly<Record<string, string>> = {
  hosts: 'host',
  events: 'event',
  changes: 'change',
  roles: 'role',
  dataRefs: 'dataRef',
  groups: 'group',
  hostTypes: 'hostType',
  waves: 'wave',
  rollouts: 'rollout',
  alarms: 'alarm',
};

export const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';

/**
 * Deliberately narrower than the XML Name production: ASCII only, no colon (namespaces) and no
 * `xml` prefix (reserved), so every consumer, XSLT 1.0 processors included, accepts it.
 */
const SAFE_NAME = /^[A-Za-z_][A-Za-z0-9._-]*$/;

export function isSafeXmlName(name: string): boolean {
  return SAFE_NAME.test(name) && !/^xml/i.test(name);
}

export function singularOf(plural: string): string | undefined {
  return Object.hasOwn(PLURALS, plural) ? PLURALS[plural] : undefined;
}

/**
 * Characters XML 1.0 cannot carry at all, not even as character references: C0 controls other than
 * tab/LF/CR, U+FFFE/U+FFFF and unpaired surrogates. JSON strings may hold them, so they become U+FFFD.
 */
const NOT_XML_CHAR =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding exactly these control characters is the point
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function sanitize(text: string): string {
  return text.replace(NOT_XML_CHAR, '\uFFFD');
}

export function escapeText(text: string): string {
  // CR is escaped because parsers normalise a literal CR to LF; `>` because of `]]>`.
  return sanitize(text)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('\r', '&#13;');
}

export function escapeAttribute(text: string): string {
  // Whitespace other than space is escaped because attribute-value normalisation would turn it into spaces.
  return sanitize(text)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&apos;')
    .replaceAll('\t', '&#9;')
    .replaceAll('\n', '&#10;')
    .replaceAll('\r', '&#13;');
}

/** Serializes `value` as an XML document whose root element is `root` (which must be a safe name). */
export function toXml(root: string, value: unknown): string {
  if (!isSafeXmlName(root)) throw new TypeError(`"${root}" is not a safe XML element name`);
  const out: string[] = [XML_DECLARATION];
  element(out, root, '', value);
  return out.join('');
}

function element(out: string[], name: string, attributes: string, input: unknown, itemName = 'item'): void {
  // Dates and similar serialize the way JSON.stringify would show them.
  const value = hasToJson(input) ? input.toJSON() : input;
  if (value === null) {
    out.push(`<${name}${attributes} nil="true"/>`);
    return;
  }
  if (Array.isArray(value)) {
    out.push(`<${name}${attributes}>`);
    for (const item of value) element(out, itemName, '', item ?? null);
    out.push(`</${name}>`);
    return;
  }
  if (typeof value === 'object') {
    out.push(`<${name}${attributes}>`);
    members(out, value as Record<string, unknown>);
    out.push(`</${name}>`);
    return;
  }
  const text = scalarText(value);
  out.push(text === '' ? `<${name}${attributes}/>` : `<${name}${attributes}>${escapeText(text)}</${name}>`);
}

function members(out: string[], object: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(object)) {
    if (value === undefined) continue;
    const singular = Array.isArray(value) ? singularOf(key) : undefined;
    if (singular !== undefined && object[singular] === undefined) {
      for (const item of value as unknown[]) element(out, singular, '', item ?? null);
    } else if (isSafeXmlName(key)) {
      element(out, key, '', value, singular);
    } else {
      element(out, 'entry', ` key="${escapeAttribute(key)}"`, value);
    }
  }
}

function hasToJson(value: unknown): value is { toJSON(): unknown } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { toJSON?: unknown }).toJSON === 'function'
  );
}

function scalarText(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    default:
      // Functions and symbols cannot come from JSON; failing loudly beats emitting "[object …]".
      throw new TypeError(`cannot serialize a ${typeof value} as XML`);
  }
}
