import { fromPointer, toPointer } from './json-pointer.ts';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One path-level difference. Arrays are compared and replaced whole: they are sets of small values here. */
export type Change =
  | { op: 'added'; path: string; new: Json }
  | { op: 'removed'; path: string; old: Json }
  | { op: 'changed'; path: string; old: Json; new: Json };

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, index) => jsonEqual(item, b[index]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a).filter((key) => a[key] !== undefined);
    return (
      keys.length === Object.keys(b).filter((key) => b[key] !== undefined).length &&
      keys.every((key) => jsonEqual(a[key], b[key]))
    );
  }
  return false;
}

/** Structural diff of two JSON values, sorted by path so the output is stable. */
export function diff(before: unknown, after: unknown): Change[] {
  const changes: Change[] = [];
  walk(before, after, [], changes);
  return changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function walk(before: unknown, after: unknown, path: string[], out: Change[]): void {
  if (isObject(before) && isObject(after)) {
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
      const left = before[key];
      const right = after[key];
      if (left === undefined && right === undefined) continue;
      if (left === undefined) out.push({ op: 'added', path: toPointer([...path, key]), new: right as Json });
      else if (right === undefined) out.push({ op: 'removed', path: toPointer([...path, key]), old: left });
      else walk(left, right, [...path, key], out);
    }
    return;
  }
  if (!jsonEqual(before, after)) {
    out.push({ op: 'changed', path: toPointer(path), old: before as Json, new: after as Json });
  }
}

/**
 * Applies changes produced by `diff`; `apply(a, diff(a, b))` equals `b`. Returns a new value and leaves `base`
 * as it was: only the objects on a changed path are copied (the rest is shared), since every snapshot's fold
 * runs through here and a deep copy of the whole state per event was most of its cost.
 */
export function applyChanges<T>(base: T, changes: readonly Change[]): T {
  let root: unknown = base;
  const copies = new Set<object>();
  const ownCopy = (value: unknown): Record<string, Json> => {
    if (!isObject(value)) {
      const fresh = {};
      copies.add(fresh);
      return fresh;
    }
    if (copies.has(value)) return value;
    const copy = { ...value };
    copies.add(copy);
    return copy;
  };
  for (const change of changes) {
    const segments = fromPointer(change.path);
    if (segments.length === 0) {
      root = change.op === 'removed' ? undefined : structuredClone(change.new);
      if (isObject(root)) copies.add(root);
      continue;
    }
    root = ownCopy(root);
    let parent = root as Record<string, Json>;
    for (const segment of segments.slice(0, -1)) {
      const next = ownCopy(parent[segment]);
      parent[segment] = next;
      parent = next;
    }
    const leaf = segments.at(-1) as string;
    if (change.op === 'removed') delete parent[leaf];
    else
      parent[leaf] =
        typeof change.new === 'object' && change.new !== null ? structuredClone(change.new) : change.new;
  }
  return root as T;
}
