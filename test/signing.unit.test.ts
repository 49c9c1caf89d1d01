import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../shared/canonical.ts';
import { newHostSecret, signSnapshot, verifySnapshotSignature } from '../shared/signing.ts';
import { machineState, unsignedSnapshot } from './support/fixtures.ts';

describe('canonical JSON', () => {
  it('does not depend on key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}',
    );
  });

  it('parses back to the same value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const normal = JSON.parse(JSON.stringify(value));
        return canonicalJson(JSON.parse(canonicalJson(normal))) === canonicalJson(normal);
      }),
    );
  });
});

describe('snapshot signatures', () => {
  const secret = newHostSecret();
  const signed = signSnapshot(secret, unsignedSnapshot(7, new Date('2026-11-25T10:00:00Z')));

  it('verify with the same secret, whatever the key order on the wire', () => {
    const reordered = JSON.parse(JSON.stringify(Object.fromEntries(Object.entries(signed).reverse())));
    expect(verifySnapshotSignature(secret, reordered)).toBe(true);
  });

  it('rejects another secret', () => {
    expect(verifySnapshotSignature(newHostSecret(), signed)).toBe(false);
  });

  it('rejects any change to the signed content', () => {
    expect(verifySnapshotSignature(secret, { ...signed, seq: 8 })).toBe(false);
    expect(verifySnapshotSignature(secret, { ...signed, state: machineState({ status: 'failed' }) })).toBe(
      false,
    );
    expect(verifySnapshotSignature(secret, { ...signed, signature: 'hmac-sha256=00' })).toBe(false);
  });
});
