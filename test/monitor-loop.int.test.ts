import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../infra/local/cloud.ts';
import { apiEvent, eventually, testCloud } from './support/cloud.ts';

/*
 * The monitor on the embedded cloud, end to end: real agent processes (the local fleet), the real ingest,
 * the synthesized state machine and the monitor handler driven tick by tick. What counts is what the hosts
 * report, never what was sent.
 */

const GROUP = 'mini';
const HEARTBEAT_SECONDS = 1;
/** Longer than the 3 s of missed heartbeats: a healthy host's lastSeen lags by up to 5 s, and must not count. */
const HEARTBEAT_COALESCE_SECONDS = 4;

const definition = {
  name: GROUP,
  hostTypes: {
    web: {
      roles: ['web'],
      instanceType: 't4g.small',
      count: 2,
      services: { web: { version: '1.0.0', port: 0 } },
    },
  },
  dependencies: { web: [] },
  configuration: {
    rollout: { wave: '1', convergenceTimeoutSeconds: 60 },
    drain: { waitForSessions: false, timeoutSeconds: 5 },
    disruptionBudget: '1',
    liveness: { heartbeatSeconds: HEARTBEAT_SECONDS, missedHeartbeats: 3 },
    // biome-ignore lint/suspicious/noThenProperty: a rule reads "when … then …"; it is never awaited.
    rules: [{ when: 'group.running', then: 'alarm("the group runs")' }],
  },
};

interface HostView {
  hostId: string;
  status: string;
  lost?: unknown;
  state?: { software?: Record<string, { version: string; status: string }> };
}

let cloud: LocalCloud;

async function api(method: string, path: string, body?: unknown, query?: Record<string, string>) {
  const response = await cloud.apiHandler(
    apiEvent(method, path, { ...(body === undefined ? {} : { body }), ...(query ? { query } : {}) }),
  );
  if (response.statusCode >= 400)
    throw new Error(`${method} ${path}: ${response.statusCode} ${response.body}`);
  return JSON.parse(response.body || '{}');
}

async function hosts(): Promise<HostView[]> {
  return (await api('GET', '/hosts', undefined, { group: GROUP, limit: '100' })).hosts;
}

/** Ticks the monitor until `probe` holds: each tick starts a reconcile only if one is due. */
async function tickUntil<T>(probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  return eventually(async () => {
    await cloud.controlPlane.monitorTick(1);
    return probe();
  }, timeoutMs);
}

const running = (host: HostView) =>
  host.status === 'running' && Object.values(host.state?.software ?? {}).every((s) => s.status === 'running');

beforeAll(async () => {
  cloud = await testCloud({
    ingest: true,
    ingestConfig: { heartbeatCoalesceSeconds: HEARTBEAT_COALESCE_SECONDS },
    controlPlane: { agentHeartbeatSeconds: HEARTBEAT_SECONDS, agentPollSeconds: 1, reconcilePollSeconds: 1 },
  });
  await api('PUT', `/groups/${GROUP}`, definition);
  await api('POST', `/groups/${GROUP}/start`);
  await eventually(async () => {
    const listed = await hosts();
    return listed.length === 2 && listed.every(running) ? listed : undefined;
  }, 120_000);
}, 180_000);

afterAll(async () => {
  // Runs the last ticks started finish before the stores close under them.
  await Promise.race([cloud?.controlPlane.settled(), new Promise((resolve) => setTimeout(resolve, 20_000))]);
  await cloud?.stop();
}, 60_000);

describe('the monitor on the embedded cloud', () => {
  it('raises a rule alarm once per episode, however many ticks see it, and lists it', async () => {
    for (let tick = 0; tick < 3; tick++) await cloud.controlPlane.monitorTick(1);
    const { alarms } = await api('GET', '/alarms', undefined, { group: GROUP });
    const ruleAlarms = alarms.filter((alarm: { alarm: string }) => alarm.alarm === 'the group runs');
    expect(ruleAlarms).toHaveLength(1);
  }, 60_000);

  it('keeps hosts that heartbeat on time, though the ingest coalesces their lastSeen writes', async () => {
    const before = (await hosts()).map((host) => host.hostId).sort();
    // Twice the lost-after time (3 × 1 s + 4 s), a tick a second.
    for (let tick = 0; tick < 14; tick++) {
      await cloud.controlPlane.monitorTick(1);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    await cloud.controlPlane.settled();
    const after = await hosts();
    expect(after.map((host) => host.hostId).sort()).toEqual(before);
    expect(after.every(running)).toBe(true);
  }, 60_000);

  it('brings a killed service process back: the host reports it running again', async () => {
    const [victim] = (await hosts()).sort((a, b) => a.hostId.localeCompare(b.hostId));
    const hostId = (victim as HostView).hostId;
    // The service is a process of its own beside the agent: kill it the way the OOM killer would.
    execFileSync('pkill', [
      '-KILL',
      '-f',
      `service-process.ts --service web --version 1.0.0 --host ${hostId} --port`,
    ]);
    await eventually(async () => {
      const host = (await hosts()).find((h) => h.hostId === hostId);
      return host?.state?.software?.web?.status === 'failed' ? host : undefined;
    }, 30_000);
    const back = await tickUntil(async () => {
      const host = (await hosts()).find((h) => h.hostId === hostId);
      return host && running(host) ? host : undefined;
    });
    expect(back.status).toBe('running');
  }, 120_000);

  it('declares a frozen agent lost, replaces it, and never counts it as one of the group', async () => {
    const [frozen] = (await hosts()).filter(running).sort((a, b) => a.hostId.localeCompare(b.hostId));
    const hostId = (frozen as HostView).hostId;
    const pid = cloud.controlPlane.fleet.get(hostId)?.pid as number;
    process.kill(pid, 'SIGSTOP');
    try {
      const listed = await tickUntil(async () => {
        const all = await hosts();
        const replacement = all.filter((h) => h.hostId !== hostId && running(h));
        return all.find((h) => h.hostId === hostId)?.status === 'lost' && replacement.length === 2
          ? all
          : undefined;
      }, 120_000);
      expect(listed.find((h) => h.hostId === hostId)?.lost).toBeDefined();
      // Replaced, not added to: two hosts serve, as the definition says, and the lost one is on its way out.
      expect(listed.filter(running)).toHaveLength(2);
    } finally {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // Terminated by the reconcile already.
      }
    }
    await eventually(
      async () => (cloud.controlPlane.fleet.get(hostId)?.state === 'exited' ? true : undefined),
      30_000,
    );
  }, 180_000);
});
