import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Ec2FactSource, ImdsClient, imdsRegion, type SystemFacts } from '../agent/facts/ec2.ts';
import { MachineState } from '../shared/schemas.ts';
import { FakeImds } from './support/fake-imds.ts';

const imds = new FakeImds();
const system: SystemFacts = { cpus: () => 4, totalMemoryBytes: () => 8 * 1024 ** 3, loadAverage: () => 1 };

beforeAll(async () => {
  await new Promise<void>((resolve) => imds.server.listen(0, '127.0.0.1', resolve));
});
afterAll(async () => {
  await new Promise((resolve) => imds.server.close(resolve));
});
beforeEach(() => {
  imds.metadata = new Map([
    ['meta-data/local-ipv4', '10.0.1.17'],
    ['meta-data/instance-type', 'c7g.large'],
    ['meta-data/placement/region', 'eu-west-1'],
  ]);
});

function source(options: Partial<ConstructorParameters<typeof Ec2FactSource>[0]> = {}) {
  return new Ec2FactSource({
    imds: new ImdsClient({ baseUrl: imds.url }),
    group: 'edge',
    roles: ['call-router'],
    services: { 'call-router': '1.0.0' },
    system,
    ...options,
  });
}

describe('Ec2FactSource over IMDSv2', () => {
  it('reports ips, instance type, OS capacity and load from a private instance', async () => {
    const state = MachineState.parse(await source().collect());
    expect(state).toMatchObject({
      status: 'running',
      group: 'edge',
      hostType: 'c7g.large',
      roles: ['call-router'],
      ips: { internal: '10.0.1.17' },
      capacity: { sessions: 400, cpus: 4, memoryMiB: 8192 },
      software: { 'call-router': { version: '1.0.0', status: 'running' } },
      operational: { load: 0.25, sessions: { voice: 0, sms: 0, mms: 0, video: 0 } },
    });
    expect(state.ips.external).toBeUndefined();
  });

  it('reports the public address, configured host type, capped load and provided sessions', async () => {
    imds.metadata.set('meta-data/public-ipv4', '54.1.2.3');
    const busy: SystemFacts = { ...system, loadAverage: () => 9 };
    const state = MachineState.parse(
      await source({ hostType: 'router', system: busy, sessions: async () => ({ voice: 12 }) }).collect(),
    );
    expect(state.ips).toEqual({ internal: '10.0.1.17', external: '54.1.2.3' });
    expect(state.hostType).toBe('router');
    expect(state.operational.load).toBe(1);
    expect(state.operational.sessions.voice).toBe(12);
  });

  it('lets fleetfold instance tags override the configured identity', async () => {
    imds.metadata.set(
      'meta-data/tags/instance',
      'Name\nfleetfold:group\nfleetfold:roles\nfleetfold:host-type',
    );
    imds.metadata.set('meta-data/tags/instance/Name', 'ignored');
    imds.metadata.set('meta-data/tags/instance/fleetfold:group', 'core');
    imds.metadata.set('meta-data/tags/instance/fleetfold:roles', 'media, lb');
    imds.metadata.set('meta-data/tags/instance/fleetfold:host-type', 'media-large');
    const state = MachineState.parse(await source({ hostType: 'router' }).collect());
    expect(state).toMatchObject({ group: 'core', roles: ['media', 'lb'], hostType: 'media-large' });
  });

  it('asks for one token, reuses it, and fetches a new one after it expired', async () => {
    const client = new ImdsClient({ baseUrl: imds.url });
    const issued = imds.tokensIssued;
    expect(await client.get('meta-data/local-ipv4')).toBe('10.0.1.17');
    expect(await imdsRegion(client)).toBe('eu-west-1');
    expect(imds.tokensIssued - issued).toBe(1);
    imds.expireTokens();
    expect(await client.get('meta-data/instance-type')).toBe('c7g.large');
    expect(imds.tokensIssued - issued).toBe(2);
  });

  it('rejects a GET without a token (the fake is a real IMDSv2 imitation)', async () => {
    const before = imds.unauthorized;
    const response = await fetch(`${imds.url}/latest/meta-data/local-ipv4`);
    expect(response.status).toBe(401);
    expect(imds.unauthorized).toBe(before + 1);
  });

  it('fails when IMDS refuses the token request', async () => {
    const client = new ImdsClient({ baseUrl: imds.url, tokenTtlSeconds: 999_999 });
    await expect(client.get('meta-data/local-ipv4')).rejects.toThrow(/token request answered 400/);
  });
});
