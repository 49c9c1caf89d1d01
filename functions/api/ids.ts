import { randomBytes } from 'node:crypto';

/** A random host-id suffix: 8 lowercase hex digits, enough to keep generated ids within a type apart. */
export function randomIdSuffix(): string {
  return randomBytes(4).toString('hex');
}
