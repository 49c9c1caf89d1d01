/**
 * Canonical JSON, the JSON Canonicalization Scheme of RFC 8785 (JCS): object keys sorted by UTF-16 code
 * units, no whitespace, strings and numbers serialised as ECMAScript's JSON.stringify does (which is what JCS
 * prescribes); `undefined` members are dropped, as JSON.stringify drops them. Signer and verifier must produce
 * the same bytes from the same value, whatever order the host's JSON library wrote keys in, and whatever
 * language it is written in (docs/host-protocol.md; test/canonical-rfc8785.unit.test.ts runs the RFC's vectors).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    // JCS §3.2.2.3: NaN and ±Infinity are not JSON and must be an error (JSON.stringify would say "null").
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw new TypeError(`cannot canonicalise the number ${value}`);
    }
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`cannot canonicalise ${typeof value}`);
    return text;
  }
  if (Array.isArray(value)) {
    return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  }
  const members = Object.keys(value)
    .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
  return `{${members.join(',')}}`;
}
