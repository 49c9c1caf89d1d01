import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { revokeRegistration } from '../infra/local/host-registration.ts';
import { hostStream } from '../shared/events.ts';
import { registerHost } from '../shared/host-registration.ts';
import { FakeCipher, MemoryEventStore, MemoryHostStore } from './support/memory-stores.ts';

const NOW = new Date('2026-11-28T10:00:00.000Z');
const HOST = { hostId: 'media-1', group: 'demo', hostType: 'media', roles: ['media'] };

let dir: string;
let events: MemoryEventStore;
let hosts: MemoryHostStore;
const stores = () => ({ events, hosts, now: () => NOW });
const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetfold-revoke-'));
  events = new MemoryEventStore();
  hosts = new MemoryHostStore();
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('local secret revocation', () => {
  it('retires the host and deletes its secret file', async () => {
    await registerHost({ events, hosts, cipher: new FakeCipher() }, HOST, 's3cret', NOW);
    const file = join(dir, 'media-1.secret');
    await writeFile(file, 's3cret\n');

    await revokeRegistration(stores(), 'media-1', file);

    expect(await exists(file)).toBe(false);
    expect(await hosts.get('media-1')).toMatchObject({
      secretCiphertext: '',
      retired: { at: NOW.toISOString() },
    });
  });

  it('is idempotent: a second revocation, a missing file and an unknown host are no errors', async () => {
    await registerHost({ events, hosts, cipher: new FakeCipher() }, HOST, 's3cret', NOW);
    const file = join(dir, 'media-1.secret');

    await revokeRegistration(stores(), 'media-1', file);
    await revokeRegistration(stores(), 'media-1', file);
    await revokeRegistration(stores(), 'ghost-1', join(dir, 'ghost-1.secret'));

    const stream = await events.read(hostStream('media-1'));
    expect(stream.events.map((event) => event.type)).toEqual(['HostRegistered', 'HostRetired']);
    expect(await events.currentVersion(hostStream('ghost-1'))).toBe(0);
  });
});
