/*
 * The local fleet port with real child processes. A tiny stand-in agent replaces agent/main.ts, which would
 * need the whole local cloud; registration is a test double of the injected `register` function.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalFleet } from '../infra/local/local-fleet.ts';
import { LocalFleetPort } from '../infra/local/local-fleet-port.ts';
import { NotFoundError } from '../shared/errors.ts';
import type { LaunchRequest } from '../shared/groups/ports.ts';

// It handles SIGTERM before it says it is up, so a test that waits for "up" never signals it too early.
const fakeAgent = [
  'const env = process.env;',
  "const secret = require('node:fs').readFileSync(env.FLEETFOLD_SECRET_FILE, 'utf8');",
  "process.on('SIGTERM', () => { if (env.FAKE_IGNORE_SIGTERM) return; process.stdout.write('bye\\n'); process.exit(0); });",
  "process.stdout.write(['up', env.FLEETFOLD_HOST_ID, env.FLEETFOLD_GROUP, env.FLEETFOLD_ROLES, secret, env.FLEETFOLD_INBOX_QUEUE_URL, process.pid].join(' ') + '\\n');",
  'setInterval(() => {}, 1000);',
].join('\n');

let dir: string;
let fleet: LocalFleet;
let lines: string[];
let registered: LaunchRequest[];
/** Holds registration back until released, so a launch can be seen in flight. */
let registrationGate: Promise<void>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetfold-local-fleet-port-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

afterEach(async () => {
  await fleet.stopAll(1_000);
});

function newPort(stopTimeoutMs?: number): LocalFleetPort {
  lines = [];
  registered = [];
  registrationGate = Promise.resolve();
  fleet = new LocalFleet({
    bucket: 'b',
    s3Endpoint: 'http://127.0.0.1:1',
    region: 'us-east-1',
    agentsDir: join(dir, 'agents'),
    command: { executable: process.execPath, args: ['-e', fakeAgent], cwd: dir },
    onOutput: (hostId, line) => lines.push(`${hostId}: ${line}`),
  });
  return new LocalFleetPort({
    fleet,
    register: async (request) => {
      registered.push(request);
      await registrationGate;
      const secretFile = join(dir, `${request.hostId}.secret`);
      await writeFile(secretFile, `secret-of-${request.hostId}`, { mode: 0o600 });
      return { secretFile };
    },
    agentEnv: (hostId) => ({
      FLEETFOLD_INBOX_QUEUE_URL: `http://127.0.0.1:1/000000000000/fleetfold-inbox-${hostId}`,
      ...(hostId.startsWith('stubborn') ? { FAKE_IGNORE_SIGTERM: '1' } : {}),
    }),
    ...(stopTimeoutMs === undefined ? {} : { stopTimeoutMs }),
  });
}

function request(hostId: string, overrides: Partial<LaunchRequest> = {}): LaunchRequest {
  return {
    hostId,
    group: 'voice',
    hostType: 'media',
    roles: ['media', 'rtp'],
    instanceType: 'local',
    stateVersion: 1,
    secretRef: join(dir, `${hostId}.secret`),
    ...overrides,
  };
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const ups = (hostId: string) => lines.filter((line) => line.startsWith(`${hostId}: up `));

describe('LocalFleetPort.launch', () => {
  it('registers the host, then starts its agent with the secret file and the injected environment', async () => {
    const port = newPort();

    const launched = await port.launch(request('media-1'));

    expect(launched).toEqual({ hostId: 'media-1', instanceId: 'local-media-1-1', state: 'running' });
    expect(registered.map((r) => r.hostId)).toEqual(['media-1']);
    await until(() => ups('media-1').length === 1);
    const pid = fleet.get('media-1')?.pid;
    expect(ups('media-1')[0]).toBe(
      `media-1: up media-1 voice media,rtp secret-of-media-1 http://127.0.0.1:1/000000000000/fleetfold-inbox-media-1 ${pid}`,
    );
    expect(await readFile(join(dir, 'media-1.secret'), 'utf8')).toBe('secret-of-media-1');
  });

  it('launches nothing twice for the same host and state version, even when the calls overlap', async () => {
    const port = newPort();
    let release = () => {};
    registrationGate = new Promise((resolve) => {
      release = resolve;
    });

    const first = port.launch(request('media-1'));
    const overlapping = port.launch(request('media-1'));
    expect(await port.describe('voice')).toEqual([
      { hostId: 'media-1', instanceId: 'local-media-1-1', state: 'pending' },
    ]);
    release();
    const [a, b] = await Promise.all([first, overlapping]);
    const retried = await port.launch(request('media-1'));
    const newerState = await port.launch(request('media-1', { stateVersion: 2 }));

    expect(a).toEqual({ hostId: 'media-1', instanceId: 'local-media-1-1', state: 'running' });
    expect([b, retried, newerState]).toEqual([a, a, a]);
    expect(registered).toHaveLength(1);
    expect(fleet.launchCount('media-1')).toBe(1);
    await until(() => ups('media-1').length === 1);
    expect(fleet.list()).toHaveLength(1);
  });

  it('fails the launch, starting no process, when registration fails; a later launch tries again', async () => {
    const port = newPort();
    registrationGate = Promise.reject(new Error('POST /hosts answered 500'));
    registrationGate.catch(() => {});

    await expect(port.launch(request('media-1'))).rejects.toThrow(/answered 500/);
    expect(fleet.list()).toEqual([]);
    expect(await port.describe('voice')).toEqual([]);

    registrationGate = Promise.resolve();
    expect(await port.launch(request('media-1'))).toMatchObject({
      instanceId: 'local-media-1-1',
      state: 'running',
    });
    expect(registered).toHaveLength(2);
  });
});

describe('LocalFleetPort.terminate', () => {
  it('stops the agent with SIGTERM and reports it terminated; a new launch is a new instance', async () => {
    const port = newPort();
    await port.launch(request('media-1'));
    await until(() => ups('media-1').length === 1);

    await port.terminate('media-1');

    expect(lines).toContain('media-1: bye');
    expect(fleet.get('media-1')?.exit).toEqual({ code: 0, signal: null, requested: true });
    expect(await port.describe('voice')).toEqual([
      { hostId: 'media-1', instanceId: 'local-media-1-1', state: 'terminated' },
    ]);

    const relaunched = await port.launch(request('media-1', { stateVersion: 2 }));
    expect(relaunched).toEqual({ hostId: 'media-1', instanceId: 'local-media-1-2', state: 'running' });
    // The host was registered once; its secret file is reused.
    expect(registered).toHaveLength(1);
  });

  it('kills an agent that ignores SIGTERM once the stop timeout passes', async () => {
    const port = newPort(300);
    await port.launch(request('stubborn-1'));
    await until(() => ups('stubborn-1').length === 1);

    await port.terminate('stubborn-1');

    expect(fleet.get('stubborn-1')?.exit).toEqual({ code: null, signal: 'SIGKILL', requested: true });
    expect((await port.describe('voice'))[0]?.state).toBe('terminated');
  });

  it('does nothing for a host it never launched or one already terminated', async () => {
    const port = newPort();
    await port.terminate('nobody');
    await port.launch(request('media-1'));
    await port.terminate('media-1');
    const exit = fleet.get('media-1')?.exit;

    await port.terminate('media-1');

    expect(fleet.get('media-1')?.exit).toBe(exit);
    expect(fleet.launchCount('media-1')).toBe(1);
  });

  it('waits for a launch in flight, then stops the process it started', async () => {
    const port = newPort();
    let release = () => {};
    registrationGate = new Promise((resolve) => {
      release = resolve;
    });
    const launching = port.launch(request('media-1'));
    const terminating = port.terminate('media-1');
    release();

    await Promise.all([launching, terminating]);

    expect(await port.describe('voice')).toEqual([
      { hostId: 'media-1', instanceId: 'local-media-1-1', state: 'terminated' },
    ]);
  });
});

describe('LocalFleetPort.reboot', () => {
  it('restarts the agent as a new process with the same spec and instance id', async () => {
    const port = newPort();
    await port.launch(request('media-1'));
    await until(() => ups('media-1').length === 1);
    const firstPid = fleet.get('media-1')?.pid;

    await port.reboot('media-1');

    await until(() => ups('media-1').length === 2);
    const secondPid = fleet.get('media-1')?.pid;
    expect(secondPid).not.toBe(firstPid);
    expect(lines).toContain('media-1: bye');
    expect(ups('media-1')[1]).toBe(
      `media-1: up media-1 voice media,rtp secret-of-media-1 http://127.0.0.1:1/000000000000/fleetfold-inbox-media-1 ${secondPid}`,
    );
    expect(await port.describe('voice')).toEqual([
      { hostId: 'media-1', instanceId: 'local-media-1-1', state: 'running' },
    ]);
    expect(registered).toHaveLength(1);
  });

  it('fails with NotFoundError for a host that is not running', async () => {
    const port = newPort();
    await expect(port.reboot('nobody')).rejects.toBeInstanceOf(NotFoundError);
    await port.launch(request('media-1'));
    await port.terminate('media-1');
    await expect(port.reboot('media-1')).rejects.toBeInstanceOf(NotFoundError);
    expect(fleet.launchCount('media-1')).toBe(1);
  });
});

describe('LocalFleetPort.describe', () => {
  it("lists only the group's instances, a host that died unasked for as terminated", async () => {
    const port = newPort();
    await port.launch(request('media-1'));
    await port.launch(request('media-2'));
    await port.launch(request('db-1', { group: 'storage', hostType: 'db', roles: ['db'] }));
    await until(() => ups('media-2').length === 1);

    process.kill(fleet.get('media-2')?.pid as number, 'SIGKILL');
    await until(() => fleet.get('media-2')?.state === 'exited');

    expect(await port.describe('voice')).toEqual([
      { hostId: 'media-1', instanceId: 'local-media-1-1', state: 'running' },
      { hostId: 'media-2', instanceId: 'local-media-2-1', state: 'terminated' },
    ]);
    expect(await port.describe('storage')).toEqual([
      { hostId: 'db-1', instanceId: 'local-db-1-1', state: 'running' },
    ]);
    expect(await port.describe('nobody')).toEqual([]);
    // A dead host is replaced by launching it again.
    expect(await port.launch(request('media-2', { stateVersion: 2 }))).toEqual({
      hostId: 'media-2',
      instanceId: 'local-media-2-2',
      state: 'running',
    });
  });
});
