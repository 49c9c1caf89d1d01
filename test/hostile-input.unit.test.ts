import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MachineState, SAFE_TOKEN } from '../shared/schemas.ts';
import { machineState } from './support/fixtures.ts';
import { DEMO_YAML, groupsHarness } from './support/groups-harness.ts';

/** What a shell, a unit name, a path or a flag parser would take as something other than a plain token. */
const HOSTILE = [
  '$(rm -rf /)',
  '`id`',
  '1.0; reboot',
  '../../etc/passwd',
  '-rf',
  '1.0 0',
  'a"b',
  "a'b",
  '1.0\n2',
];

function demoWith(version: string): string {
  return DEMO_YAML.replace('version: 1.4.0', `version: ${JSON.stringify(version)}`);
}

describe('a safe grammar for versions, service names and config keys', () => {
  it('refuses a rollout to a hostile version, naming the field, and starts nothing', async () => {
    for (const version of HOSTILE) {
      const api = groupsHarness();
      await api.define('demo', DEMO_YAML);
      await api.request('POST', '/groups/demo/start');
      const runs = api.reconcile.runs;
      const response = await api.postJson('/groups/demo/rollouts', { service: 'call-router', version });
      expect(response.status, version).toBe(400);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(JSON.stringify(response.body), version).toContain('version');
      expect(response.body.detail, version).toMatch(/letters, digits/);
      expect(api.reconcile.runs).toBe(runs);
    }
  });

  it('refuses a hostile service name or config key in a rollout', async () => {
    const api = groupsHarness();
    await api.define('demo', DEMO_YAML);
    const badService = await api.postJson('/groups/demo/rollouts', { service: '$(id)', version: '1.5.0' });
    expect(badService.status).toBe(400);
    expect(JSON.stringify(badService.body)).toContain('service');
    const badKey = await api.postJson('/groups/demo/rollouts', {
      service: 'call-router',
      config: { 'a key; rm -rf /': 'x' },
    });
    expect(badKey.status).toBe(400);
    expect(JSON.stringify(badKey.body)).toContain('config');
  });

  it('refuses a definition with a hostile version, naming its path', async () => {
    const api = groupsHarness();
    const response = await api.define('demo', demoWith('$(rm -rf /)'));
    expect(response.status).toBe(400);
    expect(JSON.stringify(response.body)).toContain('hostTypes.call-router.services.call-router.version');
  });

  it('accepts semver with pre-release and build metadata, dotted numbers and other safe tokens', async () => {
    for (const version of ['1.5.0', '1.5.0-rc.1', '1.5.0+build.7', '13.2', '2024.12.01~hotfix', 'v2_1']) {
      const response = await groupsHarness().define('demo', demoWith(version));
      expect(response.status, `${version}: ${response.raw}`).toBeLessThan(300);
    }
  });

  it('quarantines as malformed a snapshot that reports a hostile version or config key', () => {
    expect(MachineState.safeParse(machineState()).success).toBe(true);
    for (const value of HOSTILE) {
      const version = {
        ...machineState(),
        software: { 'call-router': { version: value, status: 'running' } },
      };
      expect(MachineState.safeParse(version).success, value).toBe(false);
      const config = { ...machineState(), config: { values: { [value]: 'x' } } };
      expect(MachineState.safeParse(config).success, value).toBe(false);
    }
  });

  it('lets through exactly the strings of letters, digits and ._+-~ that start with a letter or digit', () => {
    const safe = /^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$/;
    fc.assert(
      fc.property(fc.string({ maxLength: 64 }), (text) => {
        const state = { ...machineState(), software: { svc: { version: text, status: 'running' } } };
        return (
          MachineState.safeParse(state).success === safe.test(text) &&
          SAFE_TOKEN.test(text) === safe.test(text)
        );
      }),
    );
  });
});

describe('reported addresses', () => {
  it('accepts IPv4 and IPv6 addresses and refuses anything else', () => {
    const withIp = (internal: string) => ({ ...machineState(), ips: { internal } });
    for (const ip of ['10.0.0.5', '127.0.0.1', '::1', 'fd00::5']) {
      expect(MachineState.safeParse(withIp(ip)).success, ip).toBe(true);
    }
    for (const ip of ['10.0.0.5/0', '10.0.0.5 -j ACCEPT', '0.0.0.0/0', 'host.example', '999.1.1.1', '']) {
      expect(MachineState.safeParse(withIp(ip)).success, ip).toBe(false);
    }
  });
});
