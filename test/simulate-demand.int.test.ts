import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../cli/main.ts';
import type { LocalCloud } from '../infra/local/cloud.ts';
import { captureIo } from './support/cli-capture.ts';
import { apiEvent, eventually, testCloud } from './support/cloud.ts';

/*
 * `fleetfold simulate` on the embedded cloud: the CLI writes the demand, the demand simulator spreads it over
 * the real agent processes of the local fleet, and what counts is what their snapshots report (GET /hosts).
 */

const GROUP = 'sim';

const definition = {
  name: GROUP,
  hostTypes: {
    web: {
      roles: ['web'],
      instanceType: 't4g.small',
      // Scaled, but pinned at 3: the autoscaler explains itself without launching or retiring anything.
      min: 3,
      max: 3,
      channels: ['voice'],
      scaling: { targets: { voice: 200 }, bootSeconds: 1 },
      services: { web: { version: '1.0.0', port: 0 } },
    },
  },
  dependencies: { web: [] },
  configuration: {
    rollout: { wave: '1', convergenceTimeoutSeconds: 60 },
    drain: { waitForSessions: false, timeoutSeconds: 5 },
    disruptionBudget: '1',
    liveness: { heartbeatSeconds: 1, missedHeartbeats: 30 },
  },
};

interface HostView {
  hostId: string;
  status: string;
  metrics?: { load: number; sessions: Record<string, number> };
}

let cloud: LocalCloud;
let stateDir: string;

async function hosts(): Promise<HostView[]> {
  const response = await cloud.apiHandler(
    apiEvent('GET', '/hosts', { query: { group: GROUP, limit: '100' } }),
  );
  return JSON.parse(response.body).hosts;
}

/** The CLI in-process, against the cloud's HTTP API and state folder, as `npm run fleetfold` would be. */
async function fleetfold(...args: string[]) {
  const cli = captureIo(
    {
      FLEETFOLD_API: cloud.endpoints.api as string,
      FLEETFOLD_TOKEN: cloud.endpoints.token,
      FLEETFOLD_STATE_DIR: stateDir,
    },
    tmpdir(),
  );
  const code = await run(args, cli.io);
  expect(cli.err()).toBe('');
  expect(code).toBe(0);
  return cli.out();
}

const simulate = (...args: string[]) => fleetfold('simulate', GROUP, 'web', ...args);

/** The voice sessions each host in `hostIds` reports, once every one of them reports `load`. */
function voiceOf(listed: HostView[], hostIds: readonly string[], load?: number): number[] | undefined {
  const chosen = hostIds.map((id) => listed.find((host) => host.hostId === id));
  if (chosen.some((host) => host?.metrics === undefined)) return undefined;
  if (load !== undefined && chosen.some((host) => host?.metrics?.load !== load)) return undefined;
  return chosen.map((host) => host?.metrics?.sessions.voice ?? -1);
}

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-simulate-int-'));
  cloud = await testCloud({
    stateDir,
    withApi: true,
    ingest: true,
    // Every heartbeat's metrics reach the host's projection: a share that moves within a band shows at once.
    ingestConfig: { heartbeatCoalesceSeconds: 0 },
    controlPlane: { agentHeartbeatSeconds: 1, agentPollSeconds: 1, reconcilePollSeconds: 1 },
  });
  const put = await cloud.apiHandler(apiEvent('PUT', `/groups/${GROUP}`, { body: definition }));
  expect(put.statusCode).toBeLessThan(300);
  await cloud.apiHandler(apiEvent('POST', `/groups/${GROUP}/start`));
  await eventually(async () => {
    const listed = await hosts();
    return listed.length === 3 && listed.every((host) => host.status === 'running') ? listed : undefined;
  }, 120_000);
}, 180_000);

afterAll(async () => {
  await Promise.race([cloud?.controlPlane.settled(), new Promise((resolve) => setTimeout(resolve, 20_000))]);
  await cloud?.stop();
  await rm(stateDir, { recursive: true, force: true });
}, 60_000);

describe('fleetfold simulate on the embedded cloud', () => {
  it("makes the host type's agents report the demand, spread over them, and spreads again when one stops", async () => {
    const ids = (await hosts()).map((host) => host.hostId).sort();
    expect(await simulate('--channel', 'voice', '--sessions', '301', '--load', '0.6')).toContain(
      'simulating voice 301 sessions, load 0.6',
    );
    const spread = await eventually(async () => {
      const voice = voiceOf(await hosts(), ids, 0.6);
      return voice && voice.join() === '101,100,100' ? voice : undefined;
    }, 60_000);
    expect(spread.reduce((sum, count) => sum + count, 0)).toBe(301);

    // `fleetfold scaling` over the real route: the demand the hosts report, and the decision a tick took on it.
    await cloud.controlPlane.monitorTick(1);
    const document = JSON.parse(await fleetfold('scaling', GROUP, '-o', 'json'));
    expect(document.hostTypes.web).toMatchObject({
      current: { ready: 3, booting: 0, draining: 0, total: 3 },
      min: 3,
      max: 3,
      demand: { voice: 301 },
    });
    const table = (await fleetfold('scaling', GROUP)).split('\n');
    expect(table[0]).toMatch(/^HOST TYPE\s+CURRENT\s+DESIRED\s+MIN–MAX\s+VOICE\s+LOAD\s+WHY$/);
    expect(table[1]).toMatch(/^web\s+3\+0\/0\s+3\s+3–3\s+301\s+0\.60\s+\S/);
    if (document.decisions.length > 0) expect(table[1]).toContain(`(at ${document.decisions[0].at})`);

    // One host goes: the other two carry it all.
    const [gone, ...left] = ids as [string, ...string[]];
    await cloud.controlPlane.fleet.stop(gone);
    await eventually(async () => {
      const voice = voiceOf(await hosts(), left, 0.6);
      return voice && voice.join() === '151,150' ? voice : undefined;
    }, 60_000);

    // Cleared: the hosts go back to their own low traffic.
    expect(await simulate('--clear')).toContain('no simulated demand');
    await eventually(async () => {
      const voice = voiceOf(await hosts(), left);
      return voice?.every((count) => count < 50) ? voice : undefined;
    }, 60_000);
  }, 240_000);
});
