import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../shared/canonical.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'rfc8785');
const read = (...path: string[]) => readFileSync(join(FIXTURES, ...path));
const vectors = readdirSync(join(FIXTURES, 'input')).map((file) => file.replace(/\.json$/, ''));

describe('canonical JSON is RFC 8785 (JCS): the published vectors', () => {
  it('has all six of them', () => {
    expect(vectors.sort()).toEqual(['arrays', 'french', 'structures', 'unicode', 'values', 'weird']);
  });

  it.each(vectors)('%s: canonical bytes equal the published output, and its hex', (name) => {
    const canonical = Buffer.from(canonicalJson(JSON.parse(read('input', `${name}.json`).toString('utf8'))));
    expect(canonical.equals(read('output', `${name}.json`))).toBe(true);
    const hex = read('outhex', `${name}.txt`).toString('ascii').trim().split(/\s+/).join('');
    expect(canonical.toString('hex')).toBe(hex);
  });
});

/**
 * The RFC's number test file, regenerated as testdata/numgen.go does: the static doubles, 2,000 values from the
 * smallest normal up, then doubles read little-endian from a SHA-256 chain (zero block first), skipping 0, NaN
 * and infinities. Each line is "<bits in hex>,<number>\n"; the README publishes the hash of the first N lines.
 */
function* es6TestDoubles(): Generator<{ bits: bigint; value: number }> {
  const view = new DataView(new ArrayBuffer(8));
  const fromBits = (bits: bigint) => {
    view.setBigUint64(0, bits);
    return { bits, value: view.getFloat64(0) };
  };
  const statics = read('es6-static-u64.txt')
    .toString('ascii')
    .trim()
    .split('\n')
    .map((hex) => BigInt(hex));
  for (const bits of statics) yield fromBits(bits);
  for (let i = 0n; i < 2000n; i++) yield fromBits(0x0010000000000000n + i);
  let block = Buffer.alloc(32);
  for (;;) {
    block = createHash('sha256').update(block).digest();
    for (let offset = 0; offset < 32; offset += 8) {
      const candidate = fromBits(block.readBigUInt64LE(offset));
      if (candidate.value !== 0 && Number.isFinite(candidate.value)) yield candidate;
    }
  }
}

describe('canonical JSON numbers are ECMAScript numbers (RFC 8785 §3.2.2.3)', () => {
  const published = JSON.parse(read('es6-hashes.json').toString('utf8')).sha256ByLines as Record<
    string,
    string
  >;

  it.each(Object.entries(published))('the first %s lines hash as published', (lines, sha256) => {
    const hash = createHash('sha256');
    let count = 0;
    for (const { bits, value } of es6TestDoubles()) {
      hash.update(`${bits.toString(16)},${canonicalJson(value)}\n`);
      if (++count === Number(lines)) break;
    }
    expect(hash.digest('hex')).toBe(sha256);
  });

  it('samples from the README serialise as it says', () => {
    expect(canonicalJson(2 ** 53 + 2)).toBe('9007199254740994');
    expect(canonicalJson(1e21)).toBe('1e+21');
    expect(canonicalJson(0.000001)).toBe('0.000001');
    expect(canonicalJson(9.999999999999997e-7)).toBe('9.999999999999997e-7');
    expect(canonicalJson(-0)).toBe('0');
  });

  it('refuses what is not a JSON number rather than writing null', () => {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(() => canonicalJson(value)).toThrow(TypeError);
      expect(() => canonicalJson({ load: value })).toThrow(/cannot canonicalise the number/);
    }
  });
});

describe('canonical JSON ordering (RFC 8785 §3.2.3)', () => {
  it('sorts keys by UTF-16 code units, not by code points or locale', () => {
    // U+1F600 is D83D DE00 in UTF-16: before U+FB33, though after it by code point (what `jq -S` does).
    expect(canonicalJson({ '\ufb33': 1, '\u{1f600}': 2, é: 3, z: 4, Z: 5 })).toBe(
      '{"Z":5,"z":4,"é":3,"\u{1f600}":2,"\ufb33":1}',
    );
  });

  it('is a fixed point and independent of insertion order', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'binary' }), fc.jsonValue()), (object) => {
        const canonical = canonicalJson(object);
        const reversed = Object.fromEntries(Object.entries(object).reverse());
        return canonicalJson(JSON.parse(canonical)) === canonical && canonicalJson(reversed) === canonical;
      }),
    );
  });
});
