import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { type LocalCloud, startLocalCloud } from '../infra/local/cloud.ts';
import { apiEvent } from '../infra/local/host-registration.ts';
import { DynamoHostStore } from '../shared/adapters/dynamo-host-store.ts';
import type { DesiredHostState, Rollout } from '../shared/groups/model.ts';
import { emit as defaultEmit, round } from './output.ts';

type Emit = typeof defaultEmit;

export interface ConvergenceOptions {
  hosts: number;
  /** The group's wave selector: "1" makes one wave per host, the slowest and most telling rollout. */
  wave: string;
  /**
   * Seconds between two convergence checks of a wave (the Wait state). 1 s is the smallest an operator would
   * pick: 0 turns the Wait into a busy loop of Check invocations, and the Wait state takes whole seconds only.
   */
  reconcilePollSeconds: number;
  /** Seconds between two fact collections of an agent; an applied state is reported at once regardless. */
  agentPollSeconds: number;
  /** The whole benchmark (boot, converge, roll) fails past this. */
  timeoutSeconds: number;
}

const DEFAULTS: ConvergenceOptions = {
  hosts: 4,
  wave: '1',
  reconcilePollSeconds: 1,
  agentPollSeconds: 1,
  timeoutSeconds: 180,
};

const GROUP = 'bench-converge';
const SERVICE = 'app';
const SAMPLE_MS = 50;

/**
 * One host type, one service without dependencies, no waiting for sessions to end: what remains is the loop
 * itself. Hosts carrying sessions are still drained (a wave of their own) before their update: see drainWaves.
 */
function groupYaml(options: ConvergenceOptions): string {
  return [
    `name: ${GROUP}`,
    'hostTypes:',
    '  worker:',
    '    roles: [worker]',
    '    instanceType: c7g.medium',
    `    count: ${options.hosts}`,
    '    services:',
    `      ${SERVICE}: { version: 1.0.0, port: 0 }`,
    'dependencies:',
    `  ${SERVICE}: []`,
    'configuration:',
    '  rollout:',
    `    wave: "${options.wave}"`,
    '    surgeFirst: false',
    '    convergenceTimeoutSeconds: 60',
    '  drain:',
    '    waitForSessions: false',
    '    timeoutSeconds: 30',
    '    onTimeout: proceed',
    `  disruptionBudget: "${options.wave}"`,
    '  rules:',
    '    - when: group.running && hosts.booted == 0',
    '      then: boot',
    '',
  ].join('\n');
}

/** When each step of one host's update happened, in performance.now() milliseconds. */
interface HostTimeline {
  hostId: string;
  stateVersion: number;
  /** Which publish (one per applied wave) carried the state, from 0. */
  wave: number;
  mode: DesiredHostState['mode'];
  published: number;
  /** The agent logged that it applied the state (seen on its stdout). */
  applied?: number;
  /** The agent logged the first snapshot it posted after applying. */
  posted?: number;
  /** The host projection first showed the state as applied. */
  ingested?: number;
}

/**
 * A rolling update's convergence time on the local fleet (agent processes, fan-out over fauxqs, ingest into
 * dynalite, the synthesized reconcile state machine) next to its ideal: waves × the per-host apply time
 * (state published → the host's snapshot showing it applied, in the projection), measured in the same run.
 * The breakdown line says where the rest goes; on this machine it is the Wait state every wave passes before
 * its first Check (reconcilePollSeconds), while the hosts themselves apply and report in a fraction of that.
 */
export async function benchConvergence(
  emit: Emit = defaultEmit,
  overrides: Partial<ConvergenceOptions> = {},
): Promise<void> {
  const options = { ...DEFAULTS, ...overrides };
  const deadline = performance.now() + options.timeoutSeconds * 1000;
  const stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-bench-convergence-'));
  const timelines: HostTimeline[] = [];
  const timelineOf = (hostId: string, stateVersion?: number) =>
    timelines.findLast(
      (t) => t.hostId === hostId && (stateVersion === undefined || t.stateVersion === stateVersion),
    );
  const errors: string[] = [];
  let cloud: LocalCloud | undefined;
  const withDeadline = <T>(what: string, work: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`convergence benchmark: ${what} not within ${options.timeoutSeconds} s`)),
        Math.max(0, deadline - performance.now()),
      );
    });
    return Promise.race([work, expired]).finally(() => clearTimeout(timer));
  };

  const onAgentOutput = (hostId: string, line: string) => {
    const at = performance.now();
    let record: { msg?: string; stateVersion?: number; seq?: number; reason?: string };
    try {
      record = JSON.parse(line);
    } catch {
      return;
    }
    if (record.msg === 'desired state applied') {
      const timeline = timelineOf(hostId, record.stateVersion);
      if (timeline) timeline.applied ??= at;
    } else if (record.seq !== undefined && record.reason) {
      const timeline = timelineOf(hostId);
      if (timeline?.applied !== undefined) timeline.posted ??= at;
    }
  };

  try {
    cloud = await withDeadline(
      'starting the local cloud',
      startLocalCloud({
        stateDir,
        withApi: false,
        log: (message, error) => errors.push(`${message}${error ? `: ${String(error)}` : ''}`),
        controlPlane: {
          reconcilePollSeconds: options.reconcilePollSeconds,
          agentPollSeconds: options.agentPollSeconds,
          agentHeartbeatSeconds: 60,
          onAgentOutput,
          onRunSettled: (outcome) => {
            if (outcome.status !== 'SUCCEEDED') errors.push(`reconcile ${outcome.name}: ${outcome.error}`);
          },
        },
      }),
    );
    const api = cloud.apiHandler;
    const hosts = new DynamoHostStore({
      client: cloud.clients.dynamodb,
      tableName: cloud.endpoints.hostsTable,
    });

    // Every state the reconcile loop publishes is stamped as it leaves: the start of a host's apply time.
    const { publisher } = cloud.controlPlane;
    const publish = publisher.publish.bind(publisher);
    let publishes = 0;
    publisher.publish = (states: readonly DesiredHostState[]) => {
      // Stamped before the call: signing and SNS are part of what a host waits for.
      const at = performance.now();
      const wave = publishes++;
      for (const { hostId, stateVersion, mode } of states) {
        timelines.push({ hostId, stateVersion, wave, mode, published: at });
      }
      return publish(states);
    };

    const call = async (method: string, path: string, body?: string, contentType?: string) => {
      const response = await api(apiEvent(method, path, body, contentType));
      if (response.statusCode >= 300) {
        throw new Error(`${method} ${path} answered ${response.statusCode}: ${response.body}`);
      }
      return JSON.parse(response.body) as Record<string, unknown>;
    };
    const until = async <T>(what: string, probe: () => Promise<T | undefined>): Promise<T> => {
      for (;;) {
        const value = await probe();
        if (value !== undefined) return value;
        if (performance.now() > deadline) {
          const timeline = timelines.map((t) => JSON.stringify(t)).join('; ');
          throw new Error(
            `convergence benchmark: ${what} not within ${options.timeoutSeconds} s` +
              (errors.length ? `; errors: ${errors.slice(-5).join(' | ')}` : '') +
              (timeline ? `; host timelines: ${timeline}` : ''),
          );
        }
        await sleep(SAMPLE_MS);
      }
    };
    const appliedVersions = async () => {
      const page = await hosts.list({ group: GROUP }, 100);
      return new Map(page.hosts.map((host) => [host.hostId, host.observed?.appliedStateVersion ?? 0]));
    };

    await call('PUT', `/groups/${GROUP}`, groupYaml(options), 'application/yaml');
    await call('POST', `/groups/${GROUP}/start`);
    // A rollout only changes hosts in service: a host still booting is not a candidate, so wait for every one.
    await until(`the group's ${options.hosts} hosts running their first state`, async () => {
      const page = await hosts.list({ group: GROUP }, 100);
      const running = page.hosts.filter((host) => host.status === 'running').length;
      return running === options.hosts ? true : undefined;
    });
    await withDeadline('the boot run settling', cloud.controlPlane.settled());
    if (errors.length > 0) throw new Error(`convergence benchmark: booting failed: ${errors.join(' | ')}`);
    timelines.length = 0;
    publishes = 0;

    const requestedAt = performance.now();
    const requested = (await call(
      'POST',
      `/groups/${GROUP}/rollouts`,
      JSON.stringify({ service: SERVICE, version: '1.1.0' }),
    )) as unknown as Rollout;
    const rollout = await until(`rollout ${requested.id} succeeding`, async () => {
      // The rollout first: a host its Check saw applied is then surely seen applied here too.
      const current = await call('GET', `/rollouts/${requested.id}`);
      const applied = await appliedVersions();
      const at = performance.now();
      for (const timeline of timelines) {
        if ((applied.get(timeline.hostId) ?? 0) >= timeline.stateVersion) timeline.ingested ??= at;
      }
      const status = current as unknown as Rollout;
      if (status.status === 'succeeded') return status;
      if (status.status !== 'pending' && status.status !== 'running') {
        throw new Error(
          `convergence benchmark: rollout ${status.id} ended ${status.status}: ${status.error ?? ''}`,
        );
      }
      return undefined;
    });
    const finishedAt = performance.now();
    // The run's Finish step comes after the rollout reads succeeded: stopping under it would abort it.
    await withDeadline('the rollout run settling', cloud.controlPlane.settled());

    const waves = rollout.waves.length;
    const seen = new Set(timelines.map((t) => t.wave)).size;
    if (seen !== waves || timelines.some((t) => t.ingested === undefined)) {
      throw new Error(
        `convergence benchmark: ${waves} waves planned, ${seen} published, ` +
          `${timelines.filter((t) => t.ingested === undefined).length} states never seen applied`,
      );
    }
    const perWave = waveTimes(timelines);
    // The mean, not the median: drain waves apply faster than updates (no service restart), and the ideal is
    // the sum of what each wave itself needed, as if the loop added nothing between them.
    const applyMs = perWave.map((wave) => wave.ingested - wave.published);
    const perWaveApplyMs = applyMs.reduce((sum, ms) => sum + ms, 0) / applyMs.length;
    const valueS = (finishedAt - requestedAt) / 1000;
    const idealS = (waves * perWaveApplyMs) / 1000;
    emit({
      name: 'convergence.rolling-update',
      value: round(valueS, 2),
      unit: 's',
      ideal: round(idealS, 2),
      ratio: round(valueS / idealS, 2),
      waves,
      hosts: options.hosts,
      drainWaves: new Set(timelines.filter((t) => t.mode === 'draining').map((t) => t.wave)).size,
      perWaveApply: round(perWaveApplyMs / 1000, 2),
      reconcilePollSeconds: options.reconcilePollSeconds,
      agentPollSeconds: options.agentPollSeconds,
    });
    emit(breakdown(timelines, perWave, requestedAt, finishedAt));
  } finally {
    await cloud?.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

interface WaveTimes {
  published: number;
  /** The last of the wave's hosts seen applied in the projection. */
  ingested: number;
}

function waveTimes(timelines: readonly HostTimeline[]): WaveTimes[] {
  const waves: WaveTimes[] = [];
  for (const t of timelines) {
    const wave = waves[t.wave] ?? { published: t.published, ingested: 0 };
    waves[t.wave] = wave;
    wave.ingested = Math.max(wave.ingested, t.ingested ?? Number.NaN);
  }
  return waves;
}

/**
 * Where the time went, medians in seconds: what an operator tunes against. Per host: drainApply and
 * updateApply (state published → seen applied, by kind of state), publishToApplied (inbox
 * long-poll and the local apply), appliedToPosted (fact collection and the snapshot PUT), postedToIngested
 * (S3 notification, the ingest queue and handler). Per wave: wavePeriod (one publish to the next) and
 * waveOverhead (the wave's last host applied → the next wave published, or the rollout succeeded: the Wait
 * state, Check, the Map's next iteration and Apply); once: requestToFirstPublish (the api call and Plan).
 * Instants seen by sampling the projection are up to sampleSeconds late.
 */
function breakdown(
  timelines: readonly HostTimeline[],
  waves: readonly WaveTimes[],
  requestedAt: number,
  finishedAt: number,
) {
  const span = (pairs: [number | undefined, number | undefined][]) => {
    const spans = pairs.flatMap(([from, to]) => (from === undefined || to === undefined ? [] : [to - from]));
    return spans.length ? round(median(spans) / 1000, 2) : null;
  };
  const next = (index: number) => waves[index + 1]?.published ?? finishedAt;
  return {
    name: 'convergence.rolling-update.breakdown',
    value: round((finishedAt - requestedAt) / 1000, 2),
    unit: 's',
    drainApply: span(timelines.filter((t) => t.mode === 'draining').map((t) => [t.published, t.ingested])),
    updateApply: span(timelines.filter((t) => t.mode !== 'draining').map((t) => [t.published, t.ingested])),
    publishToApplied: span(timelines.map((t) => [t.published, t.applied])),
    appliedToPosted: span(timelines.map((t) => [t.applied, t.posted])),
    postedToIngested: span(timelines.map((t) => [t.posted, t.ingested])),
    wavePeriod: span(waves.slice(0, -1).map((w, i) => [w.published, next(i)])),
    waveOverhead: span(waves.map((w, i) => [w.ingested, next(i)])),
    requestToFirstPublish: round(((waves[0]?.published ?? finishedAt) - requestedAt) / 1000, 2),
    sampleSeconds: SAMPLE_MS / 1000,
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// `npx tsx bench/convergence.ts` runs this one alone.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await benchConvergence();
