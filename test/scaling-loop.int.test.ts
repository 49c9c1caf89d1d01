import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../infra/local/cloud.ts';
import { apiEvent, eventually, testCloud } from './support/cloud.ts';

/*
 * The autoscaler on the embedded cloud, end to end: real agent processes report their (simulated) voice
 * sessions, the monitor ticks, ScalingDecided moves the count and the reconcile launches and retires hosts.
 * The agents carry 10–40 voice sessions each at rest (agent/facts/simulated.ts): a target of 5 a host asks
 * for the max, one of 1000 for the min.
 */

const GROUP = 'autoscaled';

const definition = (voiceTarget: number) => ({
  name: GROUP,
  hostTypes: {
    web: {
      roles: ['web'],
      instanceType: 't4g.small',
      min: 2,
      max: 4,
      channels: ['voice', 'sms'],
      scaling: { targets: { voice: voiceTarget }, stabilization: { scaleDownSeconds: 2 }, bootSeconds: 1 },
      services: { web: { version: '1.0.0', port: 0 } },
    },
  },
  dependencies: { web: [] },
  configuration: {
    rollout: { wave: '1', convergenceTimeoutSeconds: 60 },
    drain: { waitForSessions: false, timeoutSeconds: 5 },
    disruptionBudget: 'max(1, 50%)',
    liveness: { heartbeatSeconds: 1, missedHeartbeats: 5 },
  },
});

interface ScalingView {
  hostTypes: Record<
    string,
    { current: { ready: number; booting: number; draining: number; total: number }; desired: number }
  >;
  decisions: Array<{ from: number; to: number; direction: string; boundBy: string }>;
}

let cloud: LocalCloud;

async function api(method: string, path: string, body?: unknown) {
  const response = await cloud.apiHandler(apiEvent(method, path, body === undefined ? {} : { body }));
  if (response.statusCode >= 400)
    throw new Error(`${method} ${path}: ${response.statusCode} ${response.body}`);
  return JSON.parse(response.body || '{}');
}

const scaling = async (): Promise<ScalingView> => api('GET', `/groups/${GROUP}/scaling`);

/** Ticks the monitor (a second apart) until `probe` holds. */
async function tickUntil<T>(probe: (view: ScalingView) => T | undefined, timeoutMs = 90_000): Promise<T> {
  return eventually(async () => {
    await cloud.controlPlane.monitorTick(1);
    await new Promise((resolve) => setTimeout(resolve, 500));
    return probe(await scaling());
  }, timeoutMs);
}

beforeAll(async () => {
  cloud = await testCloud({
    ingest: true,
    ingestConfig: { heartbeatCoalesceSeconds: 1 },
    controlPlane: { agentHeartbeatSeconds: 1, agentPollSeconds: 1, reconcilePollSeconds: 1 },
  });
  await api('PUT', `/groups/${GROUP}`, definition(5));
  await api('POST', `/groups/${GROUP}/start`);
}, 180_000);

afterAll(async () => {
  await Promise.race([cloud?.controlPlane.settled(), new Promise((resolve) => setTimeout(resolve, 20_000))]);
  await cloud?.stop();
}, 60_000);

describe('the autoscaler on the embedded cloud', () => {
  it('scales out on demand above the target, and the reconcile brings the new hosts up', async () => {
    const view = await tickUntil((v) => (v.hostTypes.web?.current.ready === 4 ? v : undefined), 120_000);
    expect(view.hostTypes.web?.desired).toBe(4);
    expect(view.decisions[0]).toMatchObject({ from: 2, to: 4, direction: 'up' });
  }, 150_000);

  it('keeps the scaled count across a PUT, then scales in after the window once demand is under target', async () => {
    await api('PUT', `/groups/${GROUP}`, definition(1000));
    expect((await scaling()).hostTypes.web?.desired).toBe(4);
    const view = await tickUntil(
      (v) => (v.hostTypes.web?.current.total === 2 && v.hostTypes.web.desired === 2 ? v : undefined),
      120_000,
    );
    expect(view.decisions[0]).toMatchObject({ from: 4, to: 2, direction: 'down' });
  }, 150_000);
});
