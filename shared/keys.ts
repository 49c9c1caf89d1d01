import { ValidationError } from './errors.ts';

/** Hosts write here and only here: one prefix per host. */
export const SNAPSHOT_PREFIX = 'snapshots/';
/** Refused objects are moved here with a `.reason.json` beside them. */
export const REJECTED_PREFIX = 'rejected/';

const SNAPSHOT_KEY = /^snapshots\/([a-z0-9][a-z0-9._-]{0,63})\/([1-9][0-9]{0,15})\.json$/;

export function snapshotKey(hostId: string, seq: number): string {
  return `${SNAPSHOT_PREFIX}${hostId}/${seq}.json`;
}

export interface SnapshotKey {
  hostId: string;
  seq: number;
}

export function parseSnapshotKey(key: string): SnapshotKey {
  const match = SNAPSHOT_KEY.exec(key);
  if (!match?.[1] || !match[2]) {
    throw new ValidationError(`object key "${key}" is not snapshots/{hostId}/{seq}.json`, { key });
  }
  return { hostId: match[1], seq: Number(match[2]) };
}

export function quarantineKeys(key: string): { object: string; reason: string } {
  const object = `${REJECTED_PREFIX}${key}`;
  return { object, reason: `${object}.reason.json` };
}
