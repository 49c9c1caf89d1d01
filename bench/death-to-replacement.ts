/**
 * On the local fleet (real agent processes, the real ingest, the synthesized state machine, the monitor on its
 * timer): the time from a host's death to its replacement serving, in monitor periods once the liveness window
 * and the replacement's boot are taken off. Target: ≤ 2 periods.
 *
 * The liveness window taken off a freeze is the whole 3 × H + coalesce; the host is overdue sooner, since its
 * stored lastSeen is already up to a heartbeat plus the coalescing window old when it stops. The lost mark
 * tells when it really was overdue (its lastSeen + the window) and when the monitor saw it: reported beside.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalCloud } from '../infra/local/cloud.ts';
import { emit, round } from './output.ts';

const GROUP = 'bench-death';
const HEARTBEAT_SECONDS = 1;
const MISSED = 3;
const COALESCE_SECONDS = 1;
const PERIOD_SECONDS = 2;
const RUNS = 3;

interface HostView {
  hostId: string;
  status: string;
  registeredAt?: string;
  lost?: { at: string; lastSeen?: string };
  state?: { software?: Record<string, { status: string }> };
}

const serving = (host: HostView) =>
  host.status === 'running' && Object.values(host.state?.software ?? {}).every((s) => s.status === 'running');

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function poll<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function benchDeathToReplacement(): Promise<void> {
  // The cloud's Lambdas log to stdout (the monitor's and the reconcile's JSON lines): while it
  // runs, stdout is the bench's rows' alone, so those go to stderr, and the rows are printed once it stopped.
  const rows: Parameters<typeof emit>[0][] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => console.error(...args);
  try {
    await measure(rows);
  } finally {
    console.log = log;
  }
  for (const row of rows) emit(row);
}

async function measure(rows: Parameters<typeof emit>[0][]): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-bench-death-'));
  const cloud = await startLocalCloud({
    stateDir,
    withApi: true,
    pollerWaitSeconds: 1,
    log: () => {},
    ingestConfig: { heartbeatCoalesceSeconds: COALESCE_SECONDS },
    controlPlane: {
      agentHeartbeatSeconds: HEARTBEAT_SECONDS,
      agentPollSeconds: 1,
      reconcilePollSeconds: 1,
      // The agents' lines would bury the rows.
      onAgentOutput: () => {},
    },
  });
  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${cloud.endpoints.api}${path}`, {
      method,
      headers: { authorization: `Bearer ${cloud.endpoints.token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    return response.json();
  };
  const hosts = async (): Promise<HostView[]> =>
    ((await api('GET', `/hosts?group=${GROUP}&limit=100`)) as { hosts: HostView[] }).hosts;
  const twoServing = async () => {
    const current = (await hosts()).filter(serving);
    return current.length === 2 ? current : undefined;
  };
  try {
    await api('PUT', `/groups/${GROUP}`, {
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
        liveness: { heartbeatSeconds: HEARTBEAT_SECONDS, missedHeartbeats: MISSED },
      },
    });
    await api('POST', `/groups/${GROUP}/start`);
    await poll(twoServing, 120_000, 'the group to serve');
    cloud.controlPlane.startMonitor(PERIOD_SECONDS);

    for (const kind of ['crash', 'freeze'] as const) {
      const detection = kind === 'freeze' ? HEARTBEAT_SECONDS * MISSED + COALESCE_SECONDS : 0;
      const totals: number[] = [];
      const boots: number[] = [];
      const periods: number[] = [];
      /** Freeze: from the death to the victim being overdue, and from then to the monitor marking it lost. */
      const overdue: number[] = [];
      const monitorWaits: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const before = await poll(twoServing, 120_000, 'the group to serve again');
        const known = new Set((await hosts()).map((host) => host.hostId));
        const victim = [...before].sort((a, b) => a.hostId.localeCompare(b.hostId))[0] as HostView;
        const pid = cloud.controlPlane.fleet.get(victim.hostId)?.pid;
        if (pid === undefined) throw new Error(`the local fleet has no process for ${victim.hostId}`);
        const died = Date.now();
        process.kill(pid, kind === 'crash' ? 'SIGKILL' : 'SIGSTOP');
        try {
          const replacement = await poll(
            async () => (await hosts()).find((host) => !known.has(host.hostId) && serving(host)),
            120_000,
            `a replacement of ${victim.hostId}`,
          );
          const servedAt = Date.now();
          const appeared = replacement.registeredAt ? Date.parse(replacement.registeredAt) : servedAt;
          const total = (servedAt - died) / 1000;
          const boot = Math.max(0, (servedAt - appeared) / 1000);
          totals.push(total);
          boots.push(boot);
          periods.push(Math.max(0, total - detection - boot) / PERIOD_SECONDS);
          if (kind === 'freeze') {
            const lost = ((await api('GET', `/hosts/${victim.hostId}`)) as HostView).lost;
            if (lost?.lastSeen) {
              const overdueAt = Date.parse(lost.lastSeen) + detection * 1000;
              overdue.push((overdueAt - died) / 1000);
              monitorWaits.push((Date.parse(lost.at) - overdueAt) / 1000);
            }
          }
        } finally {
          if (kind === 'freeze') {
            try {
              process.kill(pid, 'SIGCONT');
            } catch {
              // Terminated by the reconcile already.
            }
          }
        }
      }
      rows.push({
        name: `death-to-replacement.${kind}`,
        value: round(median(periods), 2),
        unit: 'monitor periods',
        target: 2,
        seconds: round(median(totals), 1),
        bootSeconds: round(median(boots), 1),
        detectionSeconds: detection,
        periodSeconds: PERIOD_SECONDS,
        runs: RUNS,
        samplesPeriods: periods.map((value) => round(value, 2)),
        samplesSeconds: totals.map((value) => round(value, 1)),
        ...(overdue.length > 0
          ? {
              // When the frozen host really was overdue after its death, and the monitor's share after that.
              overdueAfterDeathSeconds: round(median(overdue), 1),
              monitorWaitSeconds: round(median(monitorWaits), 1),
            }
          : {}),
      });
    }
  } finally {
    await cloud.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}
