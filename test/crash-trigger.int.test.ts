import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { reconcileOnCrash } from '../infra/local/crash-trigger.ts';
import { type InstanceExit, LocalFleet, type LocalInstance } from '../infra/local/local-fleet.ts';
import type { ReconcileStarter } from '../shared/groups/ports.ts';
import { RecordingReconcileStarter } from './support/memory-stores.ts';

/*
 * Real processes stand in for agents (a Node one-liner, so no agent boot is paid for): one that dies by
 * itself is a crash, one stopped by the fleet is not. The reconcile starter is a double of its port.
 */

let dir: string | undefined;
let fleet: LocalFleet | undefined;

afterEach(async () => {
  await fleet?.stopAll();
  if (dir) await rm(dir, { recursive: true, force: true });
  fleet = undefined;
  dir = undefined;
});

async function fleetRunning(
  script: string,
  starter: ReconcileStarter,
  options: { stopping?: () => boolean; errors?: unknown[] } = {},
) {
  dir = await mkdtemp(join(tmpdir(), 'fleetfold-crash-'));
  const exits: Promise<void>[] = [];
  let exited: (value: { instance: LocalInstance; exit: InstanceExit }) => void = () => {};
  const firstExit = new Promise<{ instance: LocalInstance; exit: InstanceExit }>((resolve) => {
    exited = resolve;
  });
  const onCrash = reconcileOnCrash({
    reconcile: () => starter,
    launchCount: (hostId) => fleet?.launchCount(hostId) ?? 0,
    stopping: options.stopping ?? (() => false),
    onError: (error) => options.errors?.push(error),
  });
  const created = new LocalFleet({
    bucket: 'unused',
    s3Endpoint: 'http://127.0.0.1:1',
    region: 'eu-west-1',
    agentsDir: dir,
    command: { executable: process.execPath, args: ['-e', script], cwd: dir },
    onOutput: () => {},
    onExit: (instance, exit) => {
      exits.push(onCrash(instance, exit));
      exited({ instance, exit });
    },
  });
  fleet = created;
  const launch = (hostId: string) =>
    created.launch({
      hostId,
      group: 'demo',
      hostType: 'media',
      roles: ['media'],
      services: {},
      secretFile: join(dir as string, 'secret'),
    });
  return { fleet: created, launch, firstExit, settled: () => Promise.all(exits) };
}

describe('reconcile on a crashed local agent', () => {
  it('starts a reconcile of its group when an agent dies without being asked, keyed by host and launch', async () => {
    const starter = new RecordingReconcileStarter();
    const local = await fleetRunning('process.exit(3)', starter);

    local.launch('demo-media-1');
    const { exit } = await local.firstExit;
    await local.settled();

    expect(exit).toMatchObject({ code: 3, requested: false });
    expect(starter.requests).toEqual([
      { group: 'demo', reason: 'host-exited', dedupeKey: 'host-demo-media-1-exit-1' },
    ]);
  });

  it('names the second crash of a relaunched host as another run', async () => {
    const starter = new RecordingReconcileStarter();
    const local = await fleetRunning('process.exit(1)', starter);

    local.launch('demo-media-1');
    await local.firstExit;
    await new Promise<void>((resolve) => {
      const wait = () =>
        local.fleet.get('demo-media-1')?.state === 'exited' ? resolve() : setTimeout(wait, 10);
      wait();
    });
    local.launch('demo-media-1');
    await new Promise<void>((resolve) => {
      const wait = () => (starter.requests.length >= 2 ? resolve() : setTimeout(wait, 10));
      wait();
    });

    expect(starter.requests.map((request) => request.dedupeKey)).toEqual([
      'host-demo-media-1-exit-1',
      'host-demo-media-1-exit-2',
    ]);
  });

  it('starts nothing for an agent the fleet stopped', async () => {
    const starter = new RecordingReconcileStarter();
    const local = await fleetRunning('setInterval(() => {}, 1000)', starter);

    local.launch('demo-media-1');
    await local.fleet.stop('demo-media-1');
    await local.settled();

    expect(starter.requests).toEqual([]);
  });

  it('starts nothing for agents that die while the control plane shuts down', async () => {
    const starter = new RecordingReconcileStarter();
    const local = await fleetRunning('process.exit(1)', starter, { stopping: () => true });

    local.launch('demo-media-1');
    await local.firstExit;
    await local.settled();

    expect(starter.requests).toEqual([]);
  });

  it('reports a reconcile that could not be started instead of throwing from the exit handler', async () => {
    const errors: unknown[] = [];
    const failing: ReconcileStarter = { start: () => Promise.reject(new Error('state machine unavailable')) };
    const local = await fleetRunning('process.exit(1)', failing, { errors });

    local.launch('demo-media-1');
    await local.firstExit;
    await local.settled();

    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toContain('state machine unavailable');
  });
});
