import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyChanges, diff, jsonEqual } from '../shared/diff.ts';
import { fromPointer, toPointer } from '../shared/json-pointer.ts';

const json = fc.jsonValue({ maxDepth: 4 }).map((value) => JSON.parse(JSON.stringify(value)));
const objects = fc.dictionary(fc.string({ maxLength: 6 }), json, { maxKeys: 6 });

describe('diff', () => {
  it('reports path-level changes with old and new values', () => {
    const before = { software: { lb: { version: '1.0' } }, config: { values: { 'a/b': '1', gone: 'x' } } };
    const after = { software: { lb: { version: '1.1' } }, config: { values: { 'a/b': '1', added: 'y' } } };
    expect(diff(before, after)).toEqual([
      { op: 'added', path: '/config/values/added', new: 'y' },
      { op: 'removed', path: '/config/values/gone', old: 'x' },
      { op: 'changed', path: '/software/lb/version', old: '1.0', new: '1.1' },
    ]);
  });

  it('treats arrays as values', () => {
    expect(diff({ roles: ['a', 'b'] }, { roles: ['b', 'a'] })).toEqual([
      { op: 'changed', path: '/roles', old: ['a', 'b'], new: ['b', 'a'] },
    ]);
  });

  it('finds nothing between equal values', () => {
    fc.assert(fc.property(json, (value) => diff(value, structuredClone(value)).length === 0));
  });

  it('applying diff(a, b) to a yields b', () => {
    fc.assert(fc.property(objects, objects, (a, b) => jsonEqual(applyChanges(a, diff(a, b)), b)));
  });

  it('diff(b, a) undoes diff(a, b): every change has its mirror', () => {
    fc.assert(
      fc.property(objects, objects, (a, b) => {
        const forward = diff(a, b);
        const backward = diff(b, a);
        return forward.length === backward.length && forward.every((c, i) => backward[i]?.path === c.path);
      }),
    );
  });

  it('leaves every earlier state as it was when states derived from it change again (they share parts)', () => {
    fc.assert(
      fc.property(objects, objects, objects, (a, b, c) => {
        const first = applyChanges(a, diff(a, b));
        const [aBefore, firstBefore] = [structuredClone(a), structuredClone(first)];
        applyChanges(first, diff(first, c));
        return jsonEqual(a, aBefore) && jsonEqual(first, firstBefore);
      }),
    );
  });

  it('does not modify its inputs', () => {
    fc.assert(
      fc.property(objects, objects, (a, b) => {
        const copy = structuredClone(a);
        applyChanges(a, diff(a, b));
        return jsonEqual(a, copy);
      }),
    );
  });
});

describe('JSON pointers', () => {
  it('round-trip any segments', () => {
    fc.assert(
      fc.property(fc.array(fc.string()), (segments) => jsonEqual(fromPointer(toPointer(segments)), segments)),
    );
  });

  it('rejects a pointer without a leading slash', () => {
    expect(() => fromPointer('a/b')).toThrow(/must start with/);
  });
});
