import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostAgent } from '../agent/agent.ts';
import { Ec2Applier, planHooks } from '../agent/apply/ec2-applier.ts';
import { LocalApplier } from '../agent/apply/local-applier.ts';
import type { RunningService, ServiceExit, ServiceStarter } from '../agent/apply/service-runner.ts';
import { mulberry32, SimulatedHost } from '../agent/facts/simulated.ts';
import { UPSTREAM_HEADER } from '../agent/lb-proxy.ts';
import { HostRuntime } from '../agent/runtime.ts';
import type { DesiredHostState, ServiceSpec } from '../shared/groups/model.ts';
import { MachineState, Snapshot } from '../shared/schemas.ts';

let stateDir: string;
beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-apply-'));
});
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await rm(stateDir, { recursive: true, force: true });
});

function state(
  stateVersion: number,
  services: Record<string, ServiceSpec>,
  extra: Partial<DesiredHostState> = {},
): DesiredHostState {
  return {
    hostId: 'h1',
    group: 'edge',
    hostType: 'router',
    stateVersion,
    services,
    config: { 'sip.port': '5060' },
    mode: 'running',
    ...extra,
  };
}

/** A test double of the process port: records what was started and stopped, and can fail or crash. */
class FakeServices {
  readonly events: string[] = [];
  readonly failing = new Set<string>();
  readonly live = new Map<string, { crash: (exit: ServiceExit) => void }>();
  #nextPort = 40_000;

  readonly start: ServiceStarter = async (spec, onUnexpectedExit) => {
    const id = `${spec.service}@${spec.version}`;
    if (this.failing.has(id)) throw new Error(`${id} exited before listening`);
    this.events.push(`start ${id}`);
    const port = spec.port ?? this.#nextPort++;
    let resolveExit: (exit: ServiceExit) => void = () => {};
    const exited = new Promise<ServiceExit>((resolve) => {
      resolveExit = resolve;
    });
    this.live.set(id, {
      crash: (exit) => {
        this.live.delete(id);
        resolveExit(exit);
        onUnexpectedExit(exit);
      },
    });
    const running: RunningService = {
      service: spec.service,
      version: spec.version,
      port,
      pid: undefined,
      exited,
      stop: async () => {
        this.events.push(`stop ${id}`);
        this.live.delete(id);
        resolveExit({ code: 0, signal: null });
      },
    };
    return running;
  };
}

function localApplier(runtime = new HostRuntime()) {
  const services = new FakeServices();
  const applier = new LocalApplier({
    hostId: 'h1',
    stateDir,
    runtime,
    startService: services.start,
    logger: { info: () => {}, warn: () => {} },
  });
  cleanups.push(() => applier.stop());
  return { applier, services, runtime };
}

describe('LocalApplier', () => {
  it("starts each service of the state, reports it running on its port and writes the state's config", async () => {
    const { applier, services, runtime } = localApplier();
    await applier.apply(state(1, { api: { version: '1.0.0' }, media: { version: '2.0.0', port: 7070 } }));
    expect(services.events.sort()).toEqual(['start api@1.0.0', 'start media@2.0.0']);
    expect(runtime.report()).toEqual({
      mode: 'running',
      services: {
        api: { version: '1.0.0', status: 'running', port: 40_000 },
        media: { version: '2.0.0', status: 'running', port: 7070 },
      },
      config: { 'sip.port': '5060' },
      appliedStateVersion: 1,
    });
    const file = JSON.parse(await readFile(join(stateDir, 'config.json'), 'utf8'));
    expect(file).toEqual({
      hostId: 'h1',
      stateVersion: 1,
      mode: 'running',
      values: { 'sip.port': '5060' },
      services: {
        api: { version: '1.0.0', config: {} },
        media: { version: '2.0.0', port: 7070, config: {} },
      },
    });
  });

  it('stops a service stopped on purpose, reports it stopped, and starts it when the mark goes', async () => {
    const { applier, services, runtime } = localApplier();
    await applier.apply(state(1, { api: { version: '1.0.0' }, media: { version: '2.0.0' } }));
    services.events.length = 0;
    await applier.apply(state(2, { api: { version: '1.0.0', stopped: true }, media: { version: '2.0.0' } }));
    expect(services.events).toEqual(['stop api@1.0.0']);
    expect(runtime.service('api')).toMatchObject({ version: '1.0.0', status: 'stopped' });
    expect(runtime.service('media')).toMatchObject({ status: 'running' });
    await applier.apply(state(3, { api: { version: '1.0.0' }, media: { version: '2.0.0' } }));
    expect(services.events).toEqual(['stop api@1.0.0', 'start api@1.0.0']);
    expect(runtime.service('api')).toMatchObject({ status: 'running' });
  });

  it('replaces a service whose version changed (old stopped first) and leaves unchanged ones alone', async () => {
    const { applier, services, runtime } = localApplier();
    await applier.apply(state(1, { api: { version: '1.0.0' }, media: { version: '2.0.0' } }));
    services.events.length = 0;
    await applier.apply(state(2, { api: { version: '1.1.0' }, media: { version: '2.0.0' } }));
    expect(services.events).toEqual(['stop api@1.0.0', 'start api@1.1.0']);
    expect(runtime.service('api')).toMatchObject({ version: '1.1.0', status: 'running' });
    expect(runtime.report().appliedStateVersion).toBe(2);
  });

  it('gives a service that says "any port" the port it had when a new version replaces it', async () => {
    const { applier, runtime } = localApplier();
    await applier.apply(state(1, { api: { version: '1.0.0' }, media: { version: '2.0.0' } }));
    const before = runtime.service('api')?.port;
    await applier.apply(state(2, { api: { version: '1.1.0' }, media: { version: '2.0.0' } }));
    expect(runtime.service('api')).toMatchObject({ version: '1.1.0', status: 'running', port: before });
  });

  it('stops services the state no longer names, boot-time ones included', async () => {
    const { applier, services, runtime } = localApplier(new HostRuntime({ legacy: '0.9.0' }));
    await applier.apply(state(1, { api: { version: '1.0.0' }, media: { version: '2.0.0' } }));
    expect(runtime.serviceNames().sort()).toEqual(['api', 'media']);
    await applier.apply(state(2, { api: { version: '1.0.0' } }));
    expect(services.events).toContain('stop media@2.0.0');
    expect(runtime.serviceNames()).toEqual(['api']);
  });

  it('keeps services running while draining, and stops them all when stopped', async () => {
    const { applier, services, runtime } = localApplier();
    await applier.apply(state(1, { api: { version: '1.0.0' } }));
    await applier.apply(state(2, { api: { version: '1.0.0' } }, { mode: 'draining' }));
    expect(runtime.mode).toBe('draining');
    expect(services.live.size).toBe(1);
    await applier.apply(state(3, { api: { version: '1.0.0' } }, { mode: 'stopped' }));
    expect(services.live.size).toBe(0);
    expect(runtime.report()).toMatchObject({
      mode: 'stopped',
      services: { api: { version: '1.0.0', status: 'stopped' } },
      appliedStateVersion: 3,
    });
  });

  it('reports a service that fails to start as failed, and starts it again with the next state', async () => {
    const { applier, services, runtime } = localApplier();
    services.failing.add('api@1.0.0');
    await applier.apply(state(1, { api: { version: '1.0.0' } }));
    expect(runtime.service('api')).toEqual({ version: '1.0.0', status: 'failed' });
    services.failing.clear();
    await applier.apply(state(2, { api: { version: '1.0.0' } }));
    expect(runtime.service('api')).toMatchObject({ version: '1.0.0', status: 'running' });
  });

  it('reports a service that exits on its own as failed', async () => {
    const { applier, services, runtime } = localApplier();
    await applier.apply(state(1, { api: { version: '1.0.0' } }));
    services.live.get('api@1.0.0')?.crash({ code: 1, signal: null });
    expect(runtime.service('api')).toEqual({ version: '1.0.0', status: 'failed', port: 40_000 });
  });

  it('runs the lb service as a proxy over the upstreams, swaps members on update and stops it when removed', async () => {
    const a = await member('a');
    const b = await member('b');
    const { applier, services, runtime } = localApplier();
    await applier.apply(state(1, { lb: { version: '3.0.0' } }, { upstreams: { api: [a] } }));
    expect(services.events).toEqual([]);
    const lb = runtime.service('lb');
    expect(lb).toMatchObject({ version: '3.0.0', status: 'running' });
    const through = await fetch(`http://127.0.0.1:${lb?.port}/`);
    expect(through.headers.get(UPSTREAM_HEADER)).toBe(a);
    expect(await through.text()).toBe('a');

    await applier.apply(state(2, { lb: { version: '3.0.0' } }, { upstreams: { api: [b] } }));
    expect(runtime.service('lb')?.port).toBe(lb?.port);
    expect(await (await fetch(`http://127.0.0.1:${lb?.port}/`)).text()).toBe('b');

    await applier.apply(state(3, {}));
    expect(runtime.service('lb')).toBeUndefined();
    await expect(fetch(`http://127.0.0.1:${lb?.port}/`)).rejects.toThrow();
  });

  it('stop() stops every service and the proxy', async () => {
    const { applier, services, runtime } = localApplier();
    await applier.apply(
      state(1, { api: { version: '1.0.0' }, lb: { version: '1' } }, { upstreams: { api: [] } }),
    );
    const port = runtime.service('lb')?.port;
    await applier.stop();
    expect(services.live.size).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
  });
});

async function member(name: string): Promise<string> {
  const server: Server = createServer((_request, response) => response.end(name));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('SimulatedHost with a runtime', () => {
  function simulated(runtime: HostRuntime) {
    return new SimulatedHost({
      hostId: 'h1',
      group: 'edge',
      hostType: 'router',
      roles: ['call-router'],
      services: { boot: '0.1.0' },
      runtime,
      internalIp: '127.0.0.1',
      random: mulberry32(7),
      clock: () => 10_000,
      bootMs: 0,
    });
  }

  it('reports what really runs: versions, ports, config and the applied state version', async () => {
    const runtime = new HostRuntime({ boot: '0.1.0' });
    const host = simulated(runtime);
    expect(MachineState.parse(await host.collect()).software).toEqual({
      boot: { version: '0.1.0', status: 'running' },
    });
    runtime.removeService('boot');
    runtime.setService('api', { version: '1.2.0', status: 'running', port: 41_234 });
    runtime.setConfig({ 'sip.port': '5060' });
    runtime.setAppliedStateVersion(4);
    const reported = MachineState.parse(await host.collect());
    expect(reported).toMatchObject({
      status: 'running',
      ips: { internal: '127.0.0.1' },
      software: { api: { version: '1.2.0', status: 'running', port: 41_234 } },
      config: { values: { 'sip.port': '5060' } },
      appliedStateVersion: 4,
    });
    expect(Object.keys(reported.software)).toEqual(['api']);
  });

  it('reports draining and lets the live sessions decay to zero, then stopped with no load', async () => {
    const runtime = new HostRuntime();
    const host = simulated(runtime);
    const busy = MachineState.parse(await host.collect());
    expect(busy.operational.sessions.voice).toBeGreaterThan(0);
    runtime.setMode('draining');
    let previous = busy.operational.sessions.voice;
    for (let i = 0; i < 10; i += 1) {
      const draining = MachineState.parse(await host.collect());
      expect(draining.status).toBe('draining');
      expect(draining.operational.sessions.voice).toBeLessThanOrEqual(previous);
      previous = draining.operational.sessions.voice;
    }
    expect(previous).toBe(0);
    runtime.setMode('stopped');
    const stopped = MachineState.parse(await host.collect());
    expect(stopped.status).toBe('stopped');
    expect(stopped.operational).toMatchObject({ load: 0, sessions: { voice: 0, sms: 0, mms: 0, video: 0 } });
  });

  it('makes the agent post a snapshot at once when a state has been applied', async () => {
    const s3 = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    const s3Mock = mockClient(s3);
    s3Mock.on(PutObjectCommand).resolves({});
    const runtime = new HostRuntime({ api: '1.0.0' });
    const agent = new HostAgent({
      hostId: 'h1',
      secret: 'agent-secret-agent-secret-agent-secret',
      bucket: 'snaps',
      s3,
      factSource: simulated(runtime),
      stateDir,
      heartbeatSeconds: 3_600,
      logger: { info: () => {}, warn: () => {} },
    });
    await agent.pollNow();
    await agent.idle();
    await agent.pollNow();
    await agent.idle();
    const before = s3Mock.commandCalls(PutObjectCommand).length;
    runtime.setAppliedStateVersion(5);
    await agent.pollNow();
    await agent.idle();
    const puts = s3Mock.commandCalls(PutObjectCommand);
    expect(puts.length).toBe(before + 1);
    const last = Snapshot.parse(JSON.parse(String(puts.at(-1)?.args[0].input.Body)));
    expect(last.state.appliedStateVersion).toBe(5);
    await agent.stop();
    s3Mock.restore();
  });
});

describe('planHooks', () => {
  it('starts new services, restarts changed ones, stops removed ones (stops first) and leaves the rest', () => {
    const before = state(1, { api: { version: '1' }, db: { version: '5' }, old: { version: '1' } });
    const after = state(2, {
      api: { version: '2' },
      db: { version: '5' },
      media: { version: '1', port: 7070 },
    });
    expect(planHooks(before, after)).toEqual([
      { action: 'stop', service: 'old', version: '1' },
      { action: 'restart', service: 'api', version: '2' },
      { action: 'start', service: 'media', version: '1', port: 7070 },
    ]);
  });

  it('restarts a service whose config changed, and starts everything when nothing ran before', () => {
    const before = state(1, { api: { version: '1', config: { a: '1' } } });
    const after = state(2, { api: { version: '1', config: { a: '2' } } });
    expect(planHooks(before, after)).toEqual([{ action: 'restart', service: 'api', version: '1' }]);
    expect(planHooks(undefined, after)).toEqual([{ action: 'start', service: 'api', version: '1' }]);
  });

  it('drains, resumes and stops on mode changes', () => {
    const running = state(1, { api: { version: '1' } });
    const draining = state(2, { api: { version: '1' } }, { mode: 'draining' });
    const stopped = state(3, { api: { version: '1' } }, { mode: 'stopped' });
    expect(planHooks(running, draining)).toEqual([{ action: 'drain', service: 'api', version: '1' }]);
    expect(planHooks(draining, state(3, { api: { version: '1' } }))).toEqual([
      { action: 'resume', service: 'api', version: '1' },
    ]);
    expect(planHooks(draining, stopped)).toEqual([{ action: 'stop', service: 'api', version: '1' }]);
    expect(planHooks(stopped, running)).toEqual([{ action: 'start', service: 'api', version: '1' }]);
  });

  it('stops a service stopped on purpose and starts it again once the mark is gone', () => {
    const running = state(1, { api: { version: '1' }, db: { version: '5' } });
    const apiStopped = state(2, { api: { version: '1', stopped: true }, db: { version: '5' } });
    expect(planHooks(running, apiStopped)).toEqual([{ action: 'stop', service: 'api', version: '1' }]);
    expect(planHooks(apiStopped, state(3, { api: { version: '1' }, db: { version: '5' } }))).toEqual([
      { action: 'start', service: 'api', version: '1' },
    ]);
  });
});

describe('Ec2Applier', () => {
  function ec2(command: string | undefined, hookTimeoutMs?: number) {
    const runtime = new HostRuntime();
    const warn: Record<string, unknown>[] = [];
    const applier = new Ec2Applier({
      hostId: 'h1',
      stateDir,
      runtime,
      ...(command ? { command } : {}),
      ...(hookTimeoutMs ? { hookTimeoutMs } : {}),
      logger: { info: () => {}, warn: (record) => warn.push(record) },
    });
    return { applier, runtime, warn };
  }
  const log = () => join(stateDir, 'hooks.log');
  const logged = async () => (await readFile(log(), 'utf8')).trim().split('\n');

  it('writes the config file and runs the hook once per changed service with the step in its environment', async () => {
    const { applier, runtime } = ec2(
      `echo "$FLEETFOLD_ACTION $FLEETFOLD_SERVICE $FLEETFOLD_SERVICE_VERSION $FLEETFOLD_STATE_VERSION $FLEETFOLD_HOST_MODE $(basename "$FLEETFOLD_CONFIG_FILE")" >> '${log()}'`,
    );
    await applier.apply(state(1, { api: { version: '1.0.0' }, db: { version: '5' } }));
    await applier.apply(state(2, { api: { version: '1.1.0' }, db: { version: '5' } }));
    expect(await logged()).toEqual([
      'start api 1.0.0 1 running config.json',
      'start db 5 1 running config.json',
      'restart api 1.1.0 2 running config.json',
    ]);
    expect(runtime.report()).toMatchObject({
      mode: 'running',
      services: { api: { version: '1.1.0', status: 'running' }, db: { version: '5', status: 'running' } },
      appliedStateVersion: 2,
    });
    const file = JSON.parse(await readFile(join(stateDir, 'config.json'), 'utf8'));
    expect(file).toMatchObject({ stateVersion: 2, values: { 'sip.port': '5060' } });
  });

  it('reports a service whose hook fails as failed, and runs its hook again with the next state', async () => {
    const { applier, runtime, warn } = ec2(
      `[ "$FLEETFOLD_SERVICE" != db ] || [ -e '${stateDir}/db-fixed' ] || exit 3; echo "$FLEETFOLD_ACTION $FLEETFOLD_SERVICE" >> '${log()}'`,
    );
    await applier.apply(state(1, { api: { version: '1' }, db: { version: '5' } }));
    expect(runtime.service('db')).toEqual({ version: '5', status: 'failed' });
    expect(runtime.service('api')).toEqual({ version: '1', status: 'running' });
    expect(warn).toMatchObject([{ msg: 'apply hook failed', service: 'db', code: 3 }]);
    await import('node:fs/promises').then((fs) => fs.writeFile(join(stateDir, 'db-fixed'), ''));
    await applier.apply(state(2, { api: { version: '1' }, db: { version: '5' } }));
    expect(runtime.service('db')).toEqual({ version: '5', status: 'running' });
    expect(await logged()).toEqual(['start api', 'start db']);
  });

  it('fails a hook that outlives its timeout', async () => {
    const { applier, runtime } = ec2('sleep 5', 200);
    await applier.apply(state(1, { api: { version: '1' } }));
    expect(runtime.service('api')).toEqual({ version: '1', status: 'failed' });
  });

  it('only writes the config when no hook command is configured', async () => {
    const { applier, runtime } = ec2(undefined);
    await applier.apply(state(1, { api: { version: '1', port: 8080 } }, { mode: 'draining' }));
    expect(runtime.report()).toMatchObject({
      mode: 'draining',
      services: { api: { version: '1', status: 'running', port: 8080 } },
    });
    expect(JSON.parse(await readFile(join(stateDir, 'config.json'), 'utf8')).mode).toBe('draining');
  });
});
