import { beforeAll, describe, expect, it } from 'vitest';
import { createReconcileHandler, type ReconcileEvent } from '../functions/reconcile/handler.ts';
import { DocumentPlanStore } from '../functions/reconcile/plan-store.ts';
import { MAX_ROLLOUT_PASSES } from '../functions/reconcile/steps/finish.ts';
import {
  type LocalOutcome,
  type LocalReconcileStarter,
  localReconcileStarter,
} from '../infra/local/local-reconcile-starter.ts';
import type { DynamoDocumentStore } from '../shared/adapters/dynamo-document-store.ts';
import type { DynamoEventStore } from '../shared/adapters/dynamo-event-store.ts';
import type { DynamoHostStore } from '../shared/adapters/dynamo-host-store.ts';
import { hostStream } from '../shared/events.ts';
import type { BroadcastTarget } from '../shared/groups/broadcast.ts';
import { parseGroupDefinition } from '../shared/groups/compile.ts';
import { type GroupEvent, groupStream } from '../shared/groups/events.ts';
import { GroupService } from '../shared/groups/group-service.ts';
import type { DesiredHostState, GroupDefinition, Rollout } from '../shared/groups/model.ts';
import type {
  DocumentStore,
  FleetInstance,
  FleetPort,
  InboxAddress,
  LaunchRequest,
  ReconcileStarter,
  StatePublisher,
} from '../shared/groups/ports.ts';
import type { HostStatus } from '../shared/schemas.ts';
import { registeringProvisioner, useDynaliteStores } from './support/dynalite-stores.ts';
import { report } from './support/host-reports.ts';
import { RecordingReconcileStarter } from './support/memory-stores.ts';

/*
 * The real ASL (as CDK synthesizes it) runs in aws-local-stepfunctions against the real reconcile handler,
 * the real planner and the DynamoDB stores on dynalite. Only the fleet and the fan-out are test doubles of
 * their ports: the fleet records launches and registers each new host; the publisher plays the hosts, which
 * report the state they were sent (or fail on a version the test marks bad) by saving their projection.
 */

const stores = useDynaliteStores();
let events: DynamoEventStore;
let hosts: DynamoHostStore;
let documents: DynamoDocumentStore;

beforeAll(() => {
  ({ events, hosts, documents } = stores);
});

/** EC2 as the FleetPort contract describes it: idempotent per (host, state version); every call recorded. */
class RecordingFleet implements FleetPort {
  readonly launches: LaunchRequest[] = [];
  readonly terminations: string[] = [];
  readonly #instances = new Map<string, FleetInstance & { group: string; stateVersion: number }>();

  async launch(request: LaunchRequest): Promise<FleetInstance> {
    this.launches.push(request);
    const existing = this.#instances.get(request.hostId);
    if (existing && existing.state !== 'terminated' && existing.stateVersion === request.stateVersion)
      return existing;
    const instance = {
      hostId: request.hostId,
      instanceId: `i-${request.hostId}-${this.launches.length}`,
      state: 'running' as const,
      group: request.group,
      stateVersion: request.stateVersion,
    };
    this.#instances.set(request.hostId, instance);
    // The machine boots and says so (its first snapshot).
    await report({ events, hosts }, request.hostId, (observed) => observed);
    return instance;
  }

  async terminate(hostId: string): Promise<void> {
    this.terminations.push(hostId);
    const instance = this.#instances.get(hostId);
    if (instance) instance.state = 'terminated';
  }

  async reboot(): Promise<void> {}

  async describe(group: string): Promise<FleetInstance[]> {
    return [...this.#instances.values()].filter((instance) => instance.group === group);
  }

  /** The instance dies by itself: nobody asked the fleet to terminate it. */
  crash(hostId: string): void {
    const instance = this.#instances.get(hostId);
    if (!instance) throw new Error(`no instance of ${hostId}`);
    instance.state = 'terminated';
  }

  instancesOf(group: string): number {
    return [...this.#instances.values()].filter((i) => i.group === group && i.state !== 'terminated').length;
  }
}

/** The hosts: each applies what it is sent and reports it, unless the state carries a version marked bad. */
class SimulatedHosts implements StatePublisher {
  readonly inboxes = new Set<string>();
  readonly published: DesiredHostState[][] = [];
  /** Sent but not yet reported: the hosts changing right now. */
  readonly unreported = new Map<string, DesiredHostState>();
  /** When set, hosts report only when `report()` is called (the test calls it before each check). */
  lazy = false;
  /** Hosts that say they applied what they were sent but go on running what they ran (a broken agent). */
  readonly stale = new Set<string>();

  constructor(private readonly failsOn: (state: DesiredHostState) => boolean = () => false) {}

  async ensureInbox(address: InboxAddress) {
    this.inboxes.add(address.hostId);
    return { queueUrl: `local://fleetfold-inbox-${address.hostId}` };
  }

  async removeInbox(hostId: string) {
    this.inboxes.delete(hostId);
  }

  readonly broadcasts: { target: BroadcastTarget; payload: Record<string, unknown>; messageId: string }[] =
    [];
  async broadcast(target: BroadcastTarget, payload: Record<string, unknown>, messageId: string) {
    this.broadcasts.push({ target, payload, messageId });
  }

  async publish(states: readonly DesiredHostState[]) {
    this.published.push(structuredClone([...states]));
    for (const state of states) this.unreported.set(state.hostId, state);
    if (!this.lazy) await this.report();
  }

  async report() {
    const states = [...this.unreported.values()];
    this.unreported.clear();
    for (const state of states) {
      const stale = this.stale.has(state.hostId);
      if (!(await hosts.get(state.hostId))?.observed) continue;
      const failed = this.failsOn(state);
      const status: HostStatus = failed ? 'failed' : state.mode === 'draining' ? 'draining' : 'running';
      await report({ events, hosts }, state.hostId, (observed) => ({
        ...observed,
        status,
        software: stale
          ? observed.software
          : Object.fromEntries(
              Object.entries(state.services).map(([service, spec]) => [
                service,
                { version: spec.version, status: 'running' as const, port: 7000 },
              ]),
            ),
        config: { values: { ...state.config } },
        appliedStateVersion: failed ? observed.appliedStateVersion : state.stateVersion,
      }));
    }
  }
}

function definition(name: string, mediaCount: number): GroupDefinition {
  return parseGroupDefinition(
    JSON.stringify({
      name,
      hostTypes: {
        db: { roles: ['db'], instanceType: 'r7g.large', count: 1, services: { db: { version: '13.2' } } },
        media: {
          roles: ['media'],
          instanceType: 'c7g.xlarge',
          count: mediaCount,
          services: { media: { version: '2.1.0' } },
        },
        'call-router': {
          roles: ['call-router'],
          instanceType: 'c7g.large',
          count: 2,
          services: { 'call-router': { version: '1.4.0' } },
        },
        lb: {
          roles: ['lb'],
          instanceType: 'c7g.medium',
          count: 1,
          services: { lb: { version: '1.0.0' } },
          balances: ['call-router'],
        },
      },
      dependencies: { db: [], media: ['db'], 'call-router': ['media', 'db'], lb: [] },
      configuration: {
        rollout: { wave: 'max(1, 25%)', surgeFirst: true, convergenceTimeoutSeconds: 60 },
        drain: { waitForSessions: true, timeoutSeconds: 30, onTimeout: 'proceed' },
        disruptionBudget: 'max(1, 25%)',
        rules: [],
      },
    }),
    'json',
  );
}

/** The api's group service over the same stores; its reconcile starter records what it is asked by default. */
function groupService(options: { now?: () => Date; reconcile?: ReconcileStarter } = {}) {
  const starter = new RecordingReconcileStarter();
  let ids = 0;
  const service = new GroupService({
    events,
    documents,
    reconcile: options.reconcile ?? starter,
    now: options.now ?? (() => new Date()),
    newId: () => `t${++ids}`,
  });
  return { service, starter };
}

async function defineRunningGroup(name: string, mediaCount = 2) {
  const { service } = groupService();
  const defined = await service.defineGroup(name, JSON.stringify(definition(name, mediaCount)), 'json');
  await service.startGroup(name);
  return defined.group.compiled;
}

/** Requests a media rollout as an operator would; returns its id. */
async function requestRollout(group: string, version: string): Promise<string> {
  const { service } = groupService();
  const { rollout } = await service.requestRollout(group, { service: 'media', version, select: 'all' });
  return rollout.id;
}

async function commandRollout(id: string, command: 'pause' | 'resume' | 'abort') {
  return groupService().service.commandRollout(id, command);
}

interface Harness {
  fleet: RecordingFleet;
  hostsDouble: SimulatedHosts;
  starter: LocalReconcileStarter;
  invocations: ReconcileEvent[];
  run(group: string, dedupeKey: string, rolloutId?: string): Promise<LocalOutcome>;
}

function harness(
  options: {
    failsOn?: (state: DesiredHostState) => boolean;
    /** Wraps each invocation, e.g. to make one fail after it did its work. */
    around?: (event: ReconcileEvent, invoke: () => Promise<unknown>) => Promise<unknown>;
    /** The reconcile's clock; default the real one. */
    now?: () => Date;
  } = {},
): Harness {
  const fleet = new RecordingFleet();
  const hostsDouble = new SimulatedHosts(options.failsOn);
  const now = options.now ?? (() => new Date());
  const handler = createReconcileHandler({
    events,
    hosts,
    documents: documents as DocumentStore,
    fleet,
    provisioner: registeringProvisioner({ events, hosts }, now),
    publisher: hostsDouble,
    plans: new DocumentPlanStore({ documents }),
    settings: { pollSeconds: 0, heartbeatCoalesceSeconds: 0 },
    now,
  });
  const invocations: ReconcileEvent[] = [];
  const starter = localReconcileStarter(
    async (payload) => {
      const event = payload as ReconcileEvent;
      invocations.push(event);
      const invoke = () => handler(event);
      return options.around ? options.around(event, invoke) : invoke();
    },
    { waitMs: 5, retryMs: 0 },
  );
  return {
    fleet,
    hostsDouble,
    starter,
    invocations,
    async run(group, dedupeKey, rolloutId) {
      const { executionId } = await starter.start({
        group,
        reason: rolloutId ? 'rollout' : 'start',
        dedupeKey,
        ...(rolloutId ? { rolloutId } : {}),
      });
      const outcome = await starter.outcome(executionId);
      if (!outcome) throw new Error(`no execution ${executionId}`);
      return outcome;
    },
  };
}

async function groupEvents(group: string) {
  return (await events.read<GroupEvent>(groupStream(group), { limit: 1000 })).events;
}

async function desiredOf(hostId: string) {
  return (await hosts.get(hostId))?.assigned?.state;
}

async function rolloutOf(id: string) {
  return (await documents.get<Rollout>('rollout', id))?.body;
}

async function mediaHosts(group: string) {
  return (await hosts.list({ group }, 100)).hosts.filter((host) => host.hostType === 'media');
}

/** Live sessions on a host, as it reports them (raw counts are metrics, their band is state). */
async function setSessions(hostId: string, voice: number) {
  await report(
    { events, hosts },
    hostId,
    (observed) => ({
      ...observed,
      operational: {
        ...observed.operational,
        bands: {
          ...observed.operational.bands,
          sessions: { voice: voice > 0 ? 1 : 0, sms: 0, mms: 0, video: 0 },
        },
      },
    }),
    { load: 0.5, sessions: { voice, sms: 0, mms: 0, video: 0 } },
  );
}

describe('reconcile on the synthesized state machine', () => {
  it('starts a group of several host types in dependency order', async () => {
    const compiled = await defineRunningGroup('start-order');
    const h = harness();

    const outcome = await h.run('start-order', 'group-start-order-start-1');

    expect(outcome.status).toBe('SUCCEEDED');
    expect(h.fleet.launches).toHaveLength(6);
    const levels = h.fleet.launches.map((launch) => compiled.hostTypes[launch.hostType]?.level ?? -1);
    expect(levels).toEqual([...levels].sort((a, b) => a - b));
    const order = h.fleet.launches.map((launch) => launch.hostType);
    expect(order.indexOf('db')).toBeLessThan(order.indexOf('media'));
    expect(order.lastIndexOf('media')).toBeLessThan(order.indexOf('call-router'));
    for (const launch of h.fleet.launches) {
      expect(h.hostsDouble.inboxes.has(launch.hostId)).toBe(true);
      expect(launch.secretRef).toBe(`/fleetfold/test/${launch.hostId}`);
      const record = await hosts.get(launch.hostId);
      expect(record?.observed?.appliedStateVersion).toBe((await desiredOf(launch.hostId))?.stateVersion);
    }
  });

  it('rolls out in waves of max(1, 25%) and never has more hosts changing at once', async () => {
    await defineRunningGroup('budget', 8);
    let mostChangingAtOnce = 0;
    const h = harness({
      around: async (event, invoke) => {
        if (event.step === 'check') await h.hostsDouble.report();
        const result = await invoke();
        if (event.step === 'apply') {
          // Load balancer updates ride along in the same plan; the budget is about the hosts being changed.
          const changing = [...h.hostsDouble.unreported.values()].filter(
            (state) => state.services.media?.version === '2.2.0',
          );
          mostChangingAtOnce = Math.max(mostChangingAtOnce, changing.length);
        }
        return result;
      },
    });
    expect((await h.run('budget', 'group-budget-start-1')).status).toBe('SUCCEEDED');
    const startPublishes = h.hostsDouble.published.length;
    const rolloutId = await requestRollout('budget', '2.2.0');
    h.hostsDouble.lazy = true;
    mostChangingAtOnce = 0;

    const outcome = await h.run('budget', `rollout-${rolloutId}`, rolloutId);

    expect(outcome.status).toBe('SUCCEEDED');
    const rolloutWaves = h.hostsDouble.published
      .slice(startPublishes)
      .map((wave) => wave.filter((state) => state.services.media?.version === '2.2.0'))
      .filter((wave) => wave.length > 0);
    // max(1, 25% of 8 media hosts) = 2, and a wave starts only once the hosts of the one before reported.
    for (const wave of rolloutWaves) expect(wave.length).toBeLessThanOrEqual(2);
    expect(mostChangingAtOnce).toBe(2);
    expect(rolloutWaves.length).toBeGreaterThanOrEqual(4);
    const media = (await hosts.list({ group: 'budget' }, 100)).hosts.filter(
      (host) => host.hostType === 'media',
    );
    expect(media).toHaveLength(8);
    for (const host of media) expect(host.observed?.software.media?.version).toBe('2.2.0');
    const rollout = await rolloutOf(rolloutId);
    expect(rollout?.status).toBe('succeeded');
    expect(rollout?.hosts.done).toEqual(media.map((host) => host.hostId).sort());
    const statuses = (await groupEvents('budget'))
      .filter((event) => event.type === 'RolloutStatusChanged')
      .map((event) => (event.type === 'RolloutStatusChanged' ? event.data.status : undefined));
    expect(statuses).toEqual(['running', 'succeeded']);
  });

  it('drains a host with live sessions and updates it only once its sessions have ended', async () => {
    await defineRunningGroup('drain', 2);
    const busy = 'drain-media-1';
    let checksWhileDraining = 0;
    const h = harness({
      around: async (event, invoke) => {
        // The calls end two checks after the host was asked to drain.
        if (event.step === 'check' && (await desiredOf(busy))?.mode === 'draining') {
          checksWhileDraining += 1;
          if (checksWhileDraining === 2) await setSessions(busy, 0);
        }
        return invoke();
      },
    });
    expect((await h.run('drain', 'group-drain-start-1')).status).toBe('SUCCEEDED');
    await setSessions(busy, 5);
    const sent: { mode: string; version?: string; sessions: number }[] = [];
    const publish = h.hostsDouble.publish.bind(h.hostsDouble);
    h.hostsDouble.publish = async (states) => {
      for (const state of states.filter((candidate) => candidate.hostId === busy)) {
        const sessions = (await hosts.get(busy))?.metrics?.sessions.voice ?? 0;
        sent.push({ mode: state.mode, version: state.services.media?.version, sessions });
      }
      return publish(states);
    };
    const rolloutId = await requestRollout('drain', '2.2.0');

    const outcome = await h.run('drain', `rollout-${rolloutId}`, rolloutId);

    expect(outcome.status).toBe('SUCCEEDED');
    const drained = sent.findIndex((entry) => entry.mode === 'draining');
    const updated = sent.findIndex((entry) => entry.version === '2.2.0');
    expect(drained).toBeGreaterThanOrEqual(0);
    expect(updated).toBeGreaterThan(drained);
    expect(sent[drained]?.sessions).toBe(5);
    expect(sent[updated]?.sessions).toBe(0);
    expect(checksWhileDraining).toBeGreaterThanOrEqual(2);
  });

  it('fails a wave whose host goes failed, rolls the rollout back and raises an alarm', async () => {
    await defineRunningGroup('failing', 4);
    const h = harness({ failsOn: (state) => state.services.media?.version === '9.9.9-bad' });
    expect((await h.run('failing', 'group-failing-start-1')).status).toBe('SUCCEEDED');
    const rolloutId = await requestRollout('failing', '9.9.9-bad');

    const outcome = await h.run('failing', `rollout-${rolloutId}`, rolloutId);

    expect(outcome).toMatchObject({ status: 'FAILED', error: 'ReconcileFailed' });
    const rollout = await rolloutOf(rolloutId);
    expect(rollout?.status).toBe('rolled-back');
    expect(rollout?.hosts.failed.length).toBeGreaterThan(0);
    expect(rollout?.error).toContain('failed');
    for (const hostId of rollout?.hosts.failed ?? []) {
      expect((await desiredOf(hostId))?.services.media?.version).toBe('2.1.0');
      expect((await hosts.get(hostId))?.observed?.software.media?.version).toBe('2.1.0');
    }
    const sentBad = new Set(
      h.hostsDouble.published
        .flat()
        .filter((state) => state.services.media?.version === '9.9.9-bad')
        .map((state) => state.hostId),
    );
    const notStarted = rollout?.waves
      .filter((wave) => wave.status === 'pending')
      .flatMap((wave) => wave.hosts);
    // max(1, 25% of 4) = 1 host per wave: the first wave failed, the later waves' hosts never got the bad version.
    expect(sentBad.size).toBe(1);
    expect(notStarted?.length).toBeGreaterThan(0);
    for (const hostId of notStarted ?? []) expect(sentBad.has(hostId)).toBe(false);
    const alarms = (await groupEvents('failing')).filter((event) => event.type === 'AlarmRaised');
    expect(alarms).toHaveLength(1);
    expect(alarms[0]?.data).toMatchObject({ alarm: 'rollout-failed', rolloutId });
  });

  it('launches no second instance when a wave is applied again after a lost response', async () => {
    await defineRunningGroup('retry');
    const failed = new Set<string>();
    const h = harness({
      around: async (event, invoke) => {
        const result = await invoke();
        // Each wave of each pass (a plan that launched is followed by another pass) fails once.
        const wave = event.step === 'apply' ? `${event.plan.planId}/${event.wave}` : undefined;
        if (wave && !failed.has(wave)) {
          failed.add(wave);
          // The work is done, but Step Functions never hears so and retries the task.
          throw Object.assign(new Error('response lost'), { name: 'Lambda.ServiceException' });
        }
        return result;
      },
    });

    const outcome = await h.run('retry', 'group-retry-start-1');

    expect(outcome.status).toBe('SUCCEEDED');
    const applies = h.invocations.filter((event) => event.step === 'apply');
    expect(applies.length).toBe(2 * failed.size);
    const launchesPerHost = new Map<string, number>();
    for (const launch of h.fleet.launches)
      launchesPerHost.set(launch.hostId, (launchesPerHost.get(launch.hostId) ?? 0) + 1);
    expect([...launchesPerHost.values()].every((count) => count === 1)).toBe(true);
    expect(h.fleet.instancesOf('retry')).toBe(6);
  });

  it('runs concurrent starts with the same name once', async () => {
    await defineRunningGroup('dedupe');
    const h = harness();

    const [first, second] = await Promise.all([
      h.starter.start({ group: 'dedupe', reason: 'start', dedupeKey: 'group-dedupe-start-1' }),
      h.starter.start({ group: 'dedupe', reason: 'start', dedupeKey: 'group-dedupe-start-1' }),
    ]);
    expect(second.executionId).toBe(first.executionId);
    expect((await h.starter.outcome(first.executionId))?.status).toBe('SUCCEEDED');
    const again = await h.starter.start({
      group: 'dedupe',
      reason: 'start',
      dedupeKey: 'group-dedupe-start-1',
    });

    expect(again.executionId).toBe(first.executionId);
    const firstPasses = h.invocations.filter((event) => event.step === 'plan' && !event.request.followUps);
    expect(firstPasses).toHaveLength(1);
    expect(h.fleet.launches).toHaveLength(6);
  });

  it('holds a paused rollout at its check and goes on once it is resumed', async () => {
    await defineRunningGroup('paused', 4);
    let rolloutId: string | undefined;
    let checksWhilePaused = 0;
    let appliesWhilePaused = 0;
    let paused = false;
    const h = harness({
      around: async (event, invoke) => {
        if (paused && event.step === 'apply') appliesWhilePaused += 1;
        const result = await invoke();
        if (rolloutId && !paused && checksWhilePaused === 0 && event.step === 'apply' && event.wave === 0) {
          await commandRollout(rolloutId, 'pause');
          paused = true;
        }
        if (rolloutId && paused && event.step === 'check') {
          checksWhilePaused += 1;
          if (checksWhilePaused === 3) {
            await commandRollout(rolloutId, 'resume');
            paused = false;
          }
        }
        return result;
      },
    });
    expect((await h.run('paused', 'group-paused-start-1')).status).toBe('SUCCEEDED');
    const id = await requestRollout('paused', '2.2.0');
    rolloutId = id;

    const outcome = await h.run('paused', `rollout-${id}`, id);

    expect(outcome.status).toBe('SUCCEEDED');
    expect(checksWhilePaused).toBe(3);
    expect(appliesWhilePaused).toBe(0);
    expect((await rolloutOf(id))?.status).toBe('succeeded');
  });

  it('fails an aborted rollout with cause "aborted" after reverting what it changed through waves, and keeps it aborted', async () => {
    await defineRunningGroup('aborted', 4);
    let rolloutId: string | undefined;
    let aborted = false;
    const h = harness({
      around: async (event, invoke) => {
        const result = await invoke();
        if (rolloutId && !aborted && event.step === 'check' && event.wave === 1) {
          await commandRollout(rolloutId, 'abort');
          aborted = true;
        }
        return result;
      },
    });
    expect((await h.run('aborted', 'group-aborted-start-1')).status).toBe('SUCCEEDED');
    const id = await requestRollout('aborted', '2.2.0');
    rolloutId = id;
    const publishedBefore = h.hostsDouble.published.length;

    const outcome = await h.run('aborted', `rollout-${id}`, id);

    expect(outcome).toMatchObject({ status: 'FAILED', error: 'ReconcileFailed', cause: 'aborted' });
    const rollout = await rolloutOf(id);
    expect(rollout?.status).toBe('aborted');
    for (const host of await mediaHosts('aborted')) {
      expect((await desiredOf(host.hostId))?.services.media?.version).toBe('2.1.0');
      expect((await desiredOf(host.hostId))?.mode).toBe('running');
      expect(host.observed?.software.media?.version).toBe('2.1.0');
      expect(host.status).toBe('running');
    }
    // The revert goes through waves within the budget (max(1, 25%) of 4 = 1 media host changing at a time).
    const reverted = h.hostsDouble.published
      .slice(publishedBefore)
      .map((wave) => wave.filter((state) => state.hostType === 'media'))
      .filter((wave) => wave.length > 0);
    for (const wave of reverted) expect(wave.length).toBeLessThanOrEqual(1);
    const recorded = (await groupEvents('aborted')).map((event) =>
      event.type === 'RolloutStatusChanged'
        ? `status:${event.data.status}`
        : event.type === 'AlarmRaised'
          ? `alarm:${event.data.alarm}`
          : event.type,
    );
    expect(recorded.filter((entry) => entry.startsWith('status:') || entry.startsWith('alarm:'))).toEqual([
      'status:running',
      'status:reverting',
      'alarm:rollout-aborted',
      'status:aborted',
    ]);
  });
});

describe('the group after a rollout', () => {
  it('makes a succeeded rollout the group version: a host launched later runs it, the next reconcile plans nothing', async () => {
    const { service } = groupService();
    await service.defineGroup('adopt', JSON.stringify(definition('adopt', 2)), 'json');
    await service.startGroup('adopt');
    const h = harness();
    expect((await h.run('adopt', 'group-adopt-start-1')).status).toBe('SUCCEEDED');
    const { rollout } = await service.requestRollout('adopt', { service: 'media', version: '2.2.0' });
    expect((await h.run('adopt', `rollout-${rollout.id}`, rollout.id)).status).toBe('SUCCEEDED');

    const group = await service.getGroup('adopt');
    expect(group.body.definition.hostTypes.media?.services.media?.version).toBe('2.2.0');
    expect(group.body.compiled.hostTypes.media?.services.media?.version).toBe('2.2.0');
    const defined = (await groupEvents('adopt')).filter((event) => event.type === 'GroupDefined');
    expect(defined).toHaveLength(2);
    expect(defined[1]?.data).toMatchObject({ rolloutId: rollout.id });
    expect(group.body.definitionVersion).toBe(defined[1]?.version);

    const invocationsBefore = h.invocations.length;
    const publishedBefore = h.hostsDouble.published.length;
    expect((await h.run('adopt', 'adopt-again-1')).status).toBe('SUCCEEDED');
    expect(h.invocations.slice(invocationsBefore).map((event) => event.step)).not.toContain('apply');
    expect(h.hostsDouble.published).toHaveLength(publishedBefore);

    // Scale out as an operator would: the definition as it now stands.
    const scaled = structuredClone(group.body.definition);
    if (scaled.hostTypes.media) scaled.hostTypes.media.count = 3;
    await service.defineGroup('adopt', JSON.stringify(scaled), 'json');
    const launchesBefore = h.fleet.launches.length;
    expect((await h.run('adopt', 'adopt-scale-1')).status).toBe('SUCCEEDED');

    const launched = h.fleet.launches.slice(launchesBefore);
    expect(launched.map((launch) => launch.hostType)).toEqual(['media']);
    expect((await desiredOf(launched[0]?.hostId ?? ''))?.services.media?.version).toBe('2.2.0');
    const media = await mediaHosts('adopt');
    expect(media).toHaveLength(3);
    for (const host of media) expect(host.observed?.software.media?.version).toBe('2.2.0');
  });

  it('leaves the definition as it was after a rolled-back rollout', async () => {
    const { service } = groupService();
    await service.defineGroup('kept', JSON.stringify(definition('kept', 2)), 'json');
    await service.startGroup('kept');
    const h = harness({ failsOn: (state) => state.services.media?.version === '9.9.9-bad' });
    expect((await h.run('kept', 'group-kept-start-1')).status).toBe('SUCCEEDED');
    const { rollout } = await service.requestRollout('kept', { service: 'media', version: '9.9.9-bad' });

    expect((await h.run('kept', `rollout-${rollout.id}`, rollout.id)).status).toBe('FAILED');

    const group = await service.getGroup('kept');
    expect(group.body.definitionVersion).toBe(1);
    expect(group.body.definition.hostTypes.media?.services.media?.version).toBe('2.1.0');
    expect((await groupEvents('kept')).filter((event) => event.type === 'GroupDefined')).toHaveLength(1);
  });

  it('resumes a rollout paused while its run waits at the check: the trigger of the resume is served by that run, no second actor', async () => {
    let h: Harness | undefined;
    const relay: ReconcileStarter = { start: (request) => (h as Harness).starter.start(request) };
    const { service } = groupService({ reconcile: relay });
    await service.defineGroup('resumed', JSON.stringify(definition('resumed', 4)), 'json');
    let rolloutId: string | undefined;
    let checksWhilePaused = 0;
    let paused = false;
    let resumeRun: string | undefined;
    h = harness({
      around: async (event, invoke) => {
        const result = await invoke();
        if (rolloutId && event.step === 'apply' && event.wave === 0 && !paused && checksWhilePaused === 0) {
          await service.commandRollout(rolloutId, 'pause');
          paused = true;
        }
        if (rolloutId && paused && event.step === 'check' && ++checksWhilePaused === 3) {
          resumeRun = (await service.commandRollout(rolloutId, 'resume')).executionId;
          paused = false;
        }
        return result;
      },
    });
    const started = await service.startGroup('resumed');
    expect((await h.starter.outcome(started.executionId))?.status).toBe('SUCCEEDED');
    const { rollout, executionId } = await service.requestRollout('resumed', {
      service: 'media',
      version: '2.2.0',
    });
    rolloutId = rollout.id;

    const outcome = await h.starter.outcome(executionId as string);

    expect(outcome?.status).toBe('SUCCEEDED');
    expect(checksWhilePaused).toBe(3);
    expect(resumeRun).toBeDefined();
    // The resume's run found the group held, waited with a ticket, and was served by the holder's next plan.
    const resumed = await h.starter.outcome(resumeRun as string);
    expect(resumed?.status).toBe('SUCCEEDED');
    const byRun = h.invocations.filter((event) => event.step === 'apply');
    expect(new Set(byRun.map((event) => (event.step === 'apply' ? event.plan.run : '')))).toHaveLength(2);
    expect((await rolloutOf(rollout.id))?.status).toBe('succeeded');
  });
});

describe('a host whose instance died', () => {
  async function crashAndReconcile(h: Harness, group: string, victim: string, run: number) {
    h.fleet.crash(victim);
    const outcome = await h.run(group, `host-${victim}-exit-${run}`);
    expect(outcome.status).toBe('SUCCEEDED');
  }

  it('is recorded failed, shown failed, and replaced on the version the group runs', async () => {
    await defineRunningGroup('crash', 2);
    const h = harness();
    expect((await h.run('crash', 'group-crash-start-1')).status).toBe('SUCCEEDED');
    const victim = h.fleet.launches.find((launch) => launch.hostType === 'media')?.hostId ?? '';
    const launchesBefore = h.fleet.launches.length;

    await crashAndReconcile(h, 'crash', victim, 1);

    const record = await hosts.get(victim);
    expect(record?.status).toBe('failed');
    expect((await hosts.list({ group: 'crash', status: 'failed' }, 100)).hosts.map((h) => h.hostId)).toEqual([
      victim,
    ]);
    const terminated = (await events.read(hostStream(victim))).events.filter(
      (event) => event.type === 'InstanceTerminated',
    );
    expect(terminated).toHaveLength(1);
    expect(terminated[0]?.data).toMatchObject({
      status: 'failed',
      instanceId: `i-${victim}-${1 + h.fleet.launches.findIndex((l) => l.hostId === victim)}`,
    });
    const replacements = h.fleet.launches.slice(launchesBefore);
    expect(replacements.map((launch) => launch.hostType)).toEqual(['media']);
    expect(replacements[0]?.hostId).not.toBe(victim);
    expect(h.fleet.instancesOf('crash')).toBe(6);
    const live = (await mediaHosts('crash')).filter((host) => host.status === 'running');
    expect(live).toHaveLength(2);

    // Reconciling again records nothing twice and launches nothing more.
    const launchesAfter = h.fleet.launches.length;
    expect((await h.run('crash', 'crash-again-1')).status).toBe('SUCCEEDED');
    expect(
      (await events.read(hostStream(victim))).events.filter((event) => event.type === 'InstanceTerminated'),
    ).toHaveLength(1);
    expect(h.fleet.launches).toHaveLength(launchesAfter);
  });

  it('is recorded stopped, not failed, when the reconcile itself terminated it', async () => {
    const { service } = groupService();
    await service.defineGroup('shrink', JSON.stringify(definition('shrink', 3)), 'json');
    await service.startGroup('shrink');
    const h = harness();
    expect((await h.run('shrink', 'group-shrink-start-1')).status).toBe('SUCCEEDED');
    const group = await service.getGroup('shrink');
    const smaller = structuredClone(group.body.definition);
    if (smaller.hostTypes.media) smaller.hostTypes.media.count = 2;
    await service.defineGroup('shrink', JSON.stringify(smaller), 'json');

    expect((await h.run('shrink', 'group-shrink-def-2')).status).toBe('SUCCEEDED');

    expect(h.fleet.terminations).toHaveLength(1);
    const gone = await hosts.get(h.fleet.terminations[0] ?? '');
    expect(gone?.status).toBe('stopped');
    expect(gone?.terminated).toMatchObject({ status: 'stopped' });
  });

  it('raises one alarm when three hosts of a type died within ten minutes', async () => {
    await defineRunningGroup('flaky', 4);
    const h = harness();
    expect((await h.run('flaky', 'group-flaky-start-1')).status).toBe('SUCCEEDED');
    const alarms = async () =>
      (await groupEvents('flaky')).filter(
        (event) => event.type === 'AlarmRaised' && event.data.alarm === 'repeated-host-failures',
      );
    const victims = h.fleet.launches.filter((launch) => launch.hostType === 'media').map((l) => l.hostId);

    await crashAndReconcile(h, 'flaky', victims[0] ?? '', 1);
    await crashAndReconcile(h, 'flaky', victims[1] ?? '', 1);
    expect(await alarms()).toHaveLength(0);
    await crashAndReconcile(h, 'flaky', victims[2] ?? '', 1);
    expect((await h.run('flaky', 'flaky-again-1')).status).toBe('SUCCEEDED');

    const raised = await alarms();
    expect(raised).toHaveLength(1);
    expect(raised[0]?.data).toMatchObject({ hostIds: victims.slice(0, 3) });
    expect((await mediaHosts('flaky')).filter((host) => host.status === 'running')).toHaveLength(4);
  });
});

/** The group service wired to a harness's starter, so its triggers start real runs. */
function relayedService(target: () => Harness, now?: () => Date) {
  const relay: ReconcileStarter = { start: (request) => target().starter.start(request) };
  return groupService({ reconcile: relay, ...(now ? { now } : {}) }).service;
}

async function everyHost(group: string, hostType: string) {
  return (await hosts.list({ group }, 100)).hosts.filter(
    (host) => host.hostType === hostType && !host.terminated,
  );
}

/**
 * A control plane that dies mid-rollout: the group (4 media hosts) started, a rollout of media 2.2.0 requested,
 * and its run stopped once one media host runs 2.2.0. `restart()` brings up a new control plane (its runs
 * forgotten) a minute later, which the group service then starts its runs on.
 */
async function orphanRollout(group: string) {
  let current: Harness | undefined;
  let offset = 0;
  const clock = () => new Date(Date.now() + offset);
  const service = relayedService(() => current as Harness, clock);
  await service.defineGroup(group, JSON.stringify(definition(group, 4)), 'json');
  let dying = false;
  const first = harness({
    now: clock,
    around: async (event, invoke) => {
      if (dying) return new Promise(() => {});
      const result = await invoke();
      // One media host reached the new version: the control plane dies here.
      if (
        event.step === 'check' &&
        (await everyHost(group, 'media')).some((h) => h.observed?.software.media?.version === '2.2.0')
      ) {
        dying = true;
        setImmediate(() => first.starter.stop());
      }
      return result;
    },
  });
  current = first;
  const started = await service.startGroup(group);
  expect((await first.starter.outcome(started.executionId))?.status).toBe('SUCCEEDED');
  const { rollout, executionId } = await service.requestRollout(group, {
    service: 'media',
    version: '2.2.0',
  });
  expect((await first.starter.outcome(executionId as string))?.status).toBe('FAILED');
  return {
    service,
    rollout,
    restart(): Harness {
      offset = 60_000;
      current = harness({ now: clock });
      return current;
    },
  };
}

describe('one reconcile acts on a group at a time', () => {
  it("folds a rollout requested during the start run's follow-up pass into that run: every host ends on the target", async () => {
    let h: Harness | undefined;
    const service = relayedService(() => h as Harness);
    await service.defineGroup('race', JSON.stringify(definition('race', 2)), 'json');
    let requested: Promise<{ rollout: Rollout; executionId?: string }> | undefined;
    h = harness({
      around: async (event, invoke) => {
        // The moment of the fault on main: the start run plans its follow-up pass, and the rollout arrives.
        if (!requested && event.step === 'plan' && (event.request.followUps ?? 0) > 0)
          requested = service.requestRollout('race', {
            service: 'call-router',
            version: '9.9.9',
            select: 'all',
          });
        return invoke();
      },
    });
    const started = await service.startGroup('race');
    const startOutcome = await h.starter.outcome(started.executionId);
    const { rollout, executionId } = await (requested as NonNullable<typeof requested>);
    const rolloutOutcome = await h.starter.outcome(executionId as string);

    expect(startOutcome?.status).toBe('SUCCEEDED');
    expect(rolloutOutcome?.status).toBe('SUCCEEDED');
    const stored = await rolloutOf(rollout.id);
    expect(stored?.status).toBe('succeeded');
    const routers = await everyHost('race', 'call-router');
    expect(routers).toHaveLength(2);
    for (const host of routers) {
      expect(host.observed?.software['call-router']?.version).toBe('9.9.9');
      expect(host.assigned?.state.services['call-router']?.version).toBe('9.9.9');
    }
    expect(stored?.hosts.done).toEqual(routers.map((host) => host.hostId).sort());
    // Only one run planned at a time: the rollout's own run waited and was served.
    const plans = h.invocations.filter((event) => event.step === 'plan');
    expect(plans.length).toBeGreaterThan(2);
  });

  it('never calls a rollout succeeded while a host it targets does not report the target; the pass limit fails it', async () => {
    await defineRunningGroup('frozen', 2);
    const h = harness();
    expect((await h.run('frozen', 'group-frozen-start-1')).status).toBe('SUCCEEDED');
    const [stuck] = (await everyHost('frozen', 'media')).map((host) => host.hostId);
    h.hostsDouble.stale.add(stuck as string);
    const id = await requestRollout('frozen', '2.2.0');

    const outcome = await h.run('frozen', `rollout-${id}`, id);

    expect(outcome).toMatchObject({ status: 'FAILED', error: 'ReconcileFailed' });
    const rollout = await rolloutOf(id);
    expect(rollout?.status).toBe('failed');
    expect(rollout?.error).toContain(
      `do not report the target media 2.2.0 after ${MAX_ROLLOUT_PASSES} passes: ${stuck}`,
    );
    expect(rollout?.hosts.done).not.toContain(stuck);
    expect((await hosts.get(stuck as string))?.observed?.software.media?.version).toBe('2.1.0');
  });

  it('resumes a rollout whose run died (a control-plane restart) once its lease ran out, and finishes it', async () => {
    const { service, rollout, restart } = await orphanRollout('orphan');
    const mixed = (await everyHost('orphan', 'media')).map((host) => host.observed?.software.media?.version);
    expect(new Set(mixed)).toEqual(new Set(['2.1.0', '2.2.0']));

    // The restart: a new control plane (its runs forgotten), a minute later, asks for the group's run again.
    const second = restart();
    const resumed = await service.startGroup('orphan');
    expect((await second.starter.outcome(resumed.executionId))?.status).toBe('SUCCEEDED');

    expect((await rolloutOf(rollout.id))?.status).toBe('succeeded');
    for (const host of await everyHost('orphan', 'media')) {
      expect(host.observed?.software.media?.version).toBe('2.2.0');
      expect(host.status).toBe('running');
    }
    // And the next rollout is accepted.
    await expect(
      service.requestRollout('orphan', { service: 'media', version: '2.3.0' }),
    ).resolves.toBeDefined();
  });

  it('reverts an orphaned rollout on abort: its run is gone, the abort starts one, every host goes back', async () => {
    const { service, rollout, restart } = await orphanRollout('orphan-abort');
    const second = restart();
    const aborted = await service.commandRollout(rollout.id, 'abort');
    expect(aborted.executionId).toBeDefined();
    await second.starter.outcome(aborted.executionId as string);

    expect((await rolloutOf(rollout.id))?.status).toBe('aborted');
    for (const host of await everyHost('orphan-abort', 'media')) {
      expect(host.observed?.software.media?.version).toBe('2.1.0');
      expect(host.assigned?.state.mode).toBe('running');
    }
    const group = await service.getGroup('orphan-abort');
    expect(group.body.definition.hostTypes.media?.services.media?.version).toBe('2.1.0');
  });

  it('folds a definition PUT that changes a count into the running rollout, and refuses one that changes its version', async () => {
    let h: Harness | undefined;
    const service = relayedService(() => h as Harness);
    await service.defineGroup('put', JSON.stringify(definition('put', 2)), 'json');
    let rolloutId: string | undefined;
    let scaled: Promise<unknown> | undefined;
    let refused: unknown;
    h = harness({
      around: async (event, invoke) => {
        const result = await invoke();
        if (rolloutId && !scaled && event.step === 'apply') {
          const current = (await service.getGroup('put')).body.definition;
          const bigger = structuredClone(current);
          if (bigger.hostTypes.media) bigger.hostTypes.media.count = 3;
          scaled = service.defineGroup('put', JSON.stringify(bigger), 'json');
          await scaled;
          const other = structuredClone(bigger);
          if (other.hostTypes.media?.services.media) other.hostTypes.media.services.media.version = '3.0.0';
          refused = await service
            .defineGroup('put', JSON.stringify(other), 'json')
            .catch((error: unknown) => error);
        }
        return result;
      },
    });
    const started = await service.startGroup('put');
    expect((await h.starter.outcome(started.executionId))?.status).toBe('SUCCEEDED');
    const { rollout, executionId } = await service.requestRollout('put', {
      service: 'media',
      version: '2.2.0',
    });
    rolloutId = rollout.id;
    expect((await h.starter.outcome(executionId as string))?.status).toBe('SUCCEEDED');
    await h.starter.settled();

    expect(refused).toMatchObject({ status: 409 });
    expect((await rolloutOf(rollout.id))?.status).toBe('succeeded');
    const media = await everyHost('put', 'media');
    expect(media).toHaveLength(3);
    for (const host of media) expect(host.observed?.software.media?.version).toBe('2.2.0');
    const group = await service.getGroup('put');
    expect(group.body.definition.hostTypes.media?.count).toBe(3);
    expect(group.body.definition.hostTypes.media?.services.media?.version).toBe('2.2.0');
  });

  it('leaves no host draining when a rollout is aborted while a host drains, and lists a host done only once it reports the target', async () => {
    let h: Harness | undefined;
    const service = relayedService(() => h as Harness);
    await service.defineGroup('drain-abort', JSON.stringify(definition('drain-abort', 2)), 'json');
    const busy = 'drain-abort-media-1';
    let rolloutId: string | undefined;
    let abortedAt: number | undefined;
    const doneTooEarly: string[] = [];
    h = harness({
      around: async (event, invoke) => {
        const result = await invoke();
        if (rolloutId && abortedAt === undefined && event.step === 'check') {
          const rollout = await rolloutOf(rolloutId);
          for (const hostId of rollout?.hosts.done ?? []) {
            if ((await hosts.get(hostId))?.observed?.software.media?.version !== '2.2.0')
              doneTooEarly.push(hostId);
          }
          if (abortedAt === undefined && (await desiredOf(busy))?.mode === 'draining') {
            abortedAt = Date.now();
            await service.commandRollout(rolloutId, 'abort');
          }
        }
        return result;
      },
    });
    const started = await service.startGroup('drain-abort');
    expect((await h.starter.outcome(started.executionId))?.status).toBe('SUCCEEDED');
    await setSessions(busy, 5);
    const { rollout, executionId } = await service.requestRollout('drain-abort', {
      service: 'media',
      version: '2.2.0',
    });
    rolloutId = rollout.id;
    await h.starter.outcome(executionId as string);
    await h.starter.settled();

    expect(abortedAt).toBeDefined();
    expect(doneTooEarly).toEqual([]);
    expect((await rolloutOf(rollout.id))?.status).toBe('aborted');
    for (const host of await everyHost('drain-abort', 'media')) {
      expect(host.assigned?.state.mode).toBe('running');
      expect(host.status).toBe('running');
      expect(host.observed?.software.media?.version).toBe('2.1.0');
    }
  });
});
