import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReconcileHandler, type ReconcileEvent } from '../functions/reconcile/handler.ts';
import { DocumentPlanStore } from '../functions/reconcile/plan-store.ts';
import {
  type LocalOutcome,
  type LocalReconcileStarter,
  localReconcileStarter,
} from '../infra/local/local-reconcile-starter.ts';
import { dynamoClient, type RunningDynalite, startDynalite } from '../shared/adapters/dynalite.ts';
import { DynamoDocumentStore } from '../shared/adapters/dynamo-document-store.ts';
import { DynamoEventStore } from '../shared/adapters/dynamo-event-store.ts';
import { DynamoHostStore } from '../shared/adapters/dynamo-host-store.ts';
import { hostStream } from '../shared/events.ts';
import { compileGroup, parseGroupDefinition } from '../shared/groups/compile.ts';
import { type GroupEvent, groupStream } from '../shared/groups/events.ts';
import { etagOf, GroupService } from '../shared/groups/group-service.ts';
import type { DesiredHostState, GroupDefinition, Rollout } from '../shared/groups/model.ts';
import type {
  DocumentStore,
  FleetInstance,
  FleetPort,
  InboxAddress,
  LaunchRequest,
  StatePublisher,
} from '../shared/groups/ports.ts';
import type { HostRecord, HostStore } from '../shared/ports.ts';
import type { HostStatus } from '../shared/schemas.ts';
import { RecordingReconcileStarter } from './support/memory-stores.ts';

/*
 * The real ASL (as CDK synthesizes it) runs in aws-local-stepfunctions against the real reconcile handler,
 * the real planner and the DynamoDB stores on dynalite. Only the fleet and the fan-out are test doubles of
 * their ports: the fleet records launches and registers each new host; the publisher plays the hosts, which
 * report the state they were sent (or fail on a version the test marks bad) by saving their projection.
 */

let dynamo: RunningDynalite;
let client: ReturnType<typeof dynamoClient>;
let events: DynamoEventStore;
let hosts: DynamoHostStore;
let documents: DynamoDocumentStore;

beforeAll(async () => {
  dynamo = await startDynalite();
  client = dynamoClient(dynamo.endpoint);
  events = new DynamoEventStore({ client, tableName: dynamo.tables.events });
  hosts = new DynamoHostStore({ client, tableName: dynamo.tables.hosts });
  documents = new DynamoDocumentStore({ client, tableName: dynamo.tables.documents as string });
});

afterAll(async () => {
  client?.destroy();
  await dynamo?.stop();
});

const NOW = new Date('2026-11-28T10:00:00.000Z');

function hostRecord(request: LaunchRequest): HostRecord {
  return {
    hostId: request.hostId,
    group: request.group,
    hostType: request.hostType,
    roles: request.roles,
    registeredAt: NOW.toISOString(),
    version: 1,
    lastChangeSeq: 0,
    status: 'booting',
    role: request.roles[0] ?? request.hostType,
    lastSeq: 1,
    secretCiphertext: 'unused',
    observed: {
      status: 'booting',
      group: request.group,
      hostType: request.hostType,
      roles: request.roles,
      ips: { internal: `10.0.0.${request.hostId.length}` },
      capacity: { sessions: 100 },
      config: { values: {} },
      software: {},
      operational: { dataRefs: [], bands: { load: 0, sessions: { voice: 0, sms: 0, mms: 0, video: 0 } } },
      appliedStateVersion: 0,
    },
  };
}

/** EC2 as the FleetPort contract describes it: idempotent per (host, state version); every call recorded. */
class RecordingFleet implements FleetPort {
  readonly launches: LaunchRequest[] = [];
  readonly terminations: string[] = [];
  readonly #instances = new Map<string, FleetInstance & { group: string; stateVersion: number }>();

  constructor(private readonly store: HostStore) {}

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
    if (!(await this.store.get(request.hostId))) await this.store.create(hostRecord(request));
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

  constructor(
    private readonly store: HostStore,
    private readonly failsOn: (state: DesiredHostState) => boolean = () => false,
  ) {}

  async ensureInbox(address: InboxAddress) {
    this.inboxes.add(address.hostId);
    return { queueUrl: `local://fleetfold-inbox-${address.hostId}` };
  }

  async removeInbox(hostId: string) {
    this.inboxes.delete(hostId);
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
      const record = await this.store.get(state.hostId);
      if (!record?.observed) continue;
      const status: HostStatus = this.failsOn(state) ? 'failed' : 'running';
      const software = Object.fromEntries(
        Object.entries(state.services).map(([service, spec]) => [
          service,
          { version: spec.version, status: 'running' as const, port: 7000 },
        ]),
      );
      await this.store.save({
        ...record,
        status,
        version: record.version + 1,
        lastSeq: record.lastSeq + 1,
        observed: {
          ...record.observed,
          status,
          software,
          appliedStateVersion: status === 'failed' ? record.observed.appliedStateVersion : state.stateVersion,
        },
      });
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

async function defineRunningGroup(name: string, mediaCount = 2) {
  const def = definition(name, mediaCount);
  const compiled = compileGroup(def, 1);
  await documents.put(
    'group',
    name,
    { definition: def, compiled, running: true, definitionVersion: 1 },
    0,
    NOW,
  );
  return compiled;
}

async function requestRollout(group: string, id: string, version: string): Promise<void> {
  const rollout: Rollout = {
    id,
    group,
    service: 'media',
    version,
    select: 'all',
    status: 'pending',
    previousVersion: '2.1.0',
    createdAt: NOW.toISOString(),
    updatedAt: NOW.toISOString(),
    waves: [],
    hosts: { done: [], pending: [], failed: [] },
  };
  await documents.put('rollout', id, rollout, 0, NOW);
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
  const fleet = new RecordingFleet(hosts);
  const hostsDouble = new SimulatedHosts(hosts, options.failsOn);
  const handler = createReconcileHandler({
    events,
    hosts,
    documents: documents as DocumentStore,
    fleet,
    publisher: hostsDouble,
    plans: new DocumentPlanStore({ documents }),
    settings: { pollSeconds: 0, secretRef: (hostId) => `/fleetfold/test/${hostId}` },
    now: options.now ?? (() => new Date()),
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
  return (await documents.get<DesiredHostState>('desired', hostId))?.body;
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
    await requestRollout('budget', 'r-budget-1', '2.2.0');
    h.hostsDouble.lazy = true;
    mostChangingAtOnce = 0;

    const outcome = await h.run('budget', 'rollout-r-budget-1', 'r-budget-1');

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
    const rollout = (await documents.get<Rollout>('rollout', 'r-budget-1'))?.body;
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
    const setSessions = async (voice: number) => {
      const record = (await hosts.get(busy)) as HostRecord;
      await hosts.save({
        ...record,
        version: record.version + 1,
        metrics: { load: 0.5, sessions: { voice, sms: 0, mms: 0, video: 0 } },
      });
    };
    let checksWhileDraining = 0;
    const h = harness({
      around: async (event, invoke) => {
        // The calls end two checks after the host was asked to drain.
        if (event.step === 'check' && (await desiredOf(busy))?.mode === 'draining') {
          checksWhileDraining += 1;
          if (checksWhileDraining === 2) await setSessions(0);
        }
        return invoke();
      },
    });
    expect((await h.run('drain', 'group-drain-start-1')).status).toBe('SUCCEEDED');
    await setSessions(5);
    const sent: { mode: string; version?: string; sessions: number }[] = [];
    const publish = h.hostsDouble.publish.bind(h.hostsDouble);
    h.hostsDouble.publish = async (states) => {
      for (const state of states.filter((candidate) => candidate.hostId === busy)) {
        const sessions = (await hosts.get(busy))?.metrics?.sessions.voice ?? 0;
        sent.push({ mode: state.mode, version: state.services.media?.version, sessions });
      }
      return publish(states);
    };
    await requestRollout('drain', 'r-drain-1', '2.2.0');

    const outcome = await h.run('drain', 'rollout-r-drain-1', 'r-drain-1');

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
    await requestRollout('failing', 'r-failing-1', '9.9.9-bad');

    const outcome = await h.run('failing', 'rollout-r-failing-1', 'r-failing-1');

    expect(outcome).toMatchObject({ status: 'FAILED', error: 'ReconcileFailed' });
    const rollout = (await documents.get<Rollout>('rollout', 'r-failing-1'))?.body;
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
    expect(alarms[0]?.data).toMatchObject({ alarm: 'rollout-failed', rolloutId: 'r-failing-1' });
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

  async function setRolloutStatus(id: string, status: Rollout['status']): Promise<void> {
    const stored = await documents.get<Rollout>('rollout', id);
    if (!stored) throw new Error(`no rollout ${id}`);
    await documents.put('rollout', id, { ...stored.body, status }, stored.version, new Date());
  }

  it('holds a paused rollout at its check and goes on once it is resumed', async () => {
    await defineRunningGroup('paused', 4);
    let rolloutRun = false;
    let checksWhilePaused = 0;
    let appliesWhilePaused = 0;
    let paused = false;
    const h = harness({
      around: async (event, invoke) => {
        if (paused && event.step === 'apply') appliesWhilePaused += 1;
        const result = await invoke();
        if (rolloutRun && event.step === 'apply' && event.wave === 0) {
          await setRolloutStatus('r-paused-1', 'paused');
          paused = true;
        }
        if (paused && event.step === 'check') {
          checksWhilePaused += 1;
          if (checksWhilePaused === 3) {
            await setRolloutStatus('r-paused-1', 'running');
            paused = false;
          }
        }
        return result;
      },
    });
    expect((await h.run('paused', 'group-paused-start-1')).status).toBe('SUCCEEDED');
    await requestRollout('paused', 'r-paused-1', '2.2.0');
    rolloutRun = true;

    const outcome = await h.run('paused', 'rollout-r-paused-1', 'r-paused-1');

    expect(outcome.status).toBe('SUCCEEDED');
    expect(checksWhilePaused).toBe(3);
    expect(appliesWhilePaused).toBe(0);
    expect((await documents.get<Rollout>('rollout', 'r-paused-1'))?.body.status).toBe('succeeded');
  });

  it('fails an aborted rollout with cause "aborted", reverts what it changed and keeps it aborted', async () => {
    await defineRunningGroup('aborted', 4);
    let rolloutRun = false;
    const h = harness({
      around: async (event, invoke) => {
        const result = await invoke();
        if (rolloutRun && event.step === 'apply' && event.wave === 0)
          await setRolloutStatus('r-aborted-1', 'aborted');
        return result;
      },
    });
    expect((await h.run('aborted', 'group-aborted-start-1')).status).toBe('SUCCEEDED');
    await requestRollout('aborted', 'r-aborted-1', '2.2.0');
    rolloutRun = true;

    const outcome = await h.run('aborted', 'rollout-r-aborted-1', 'r-aborted-1');

    expect(outcome).toMatchObject({ status: 'FAILED', error: 'ReconcileFailed', cause: 'aborted' });
    const rollout = (await documents.get<Rollout>('rollout', 'r-aborted-1'))?.body;
    expect(rollout?.status).toBe('aborted');
    const media = (await hosts.list({ group: 'aborted' }, 100)).hosts.filter(
      (host) => host.hostType === 'media',
    );
    for (const host of media) expect((await desiredOf(host.hostId))?.services.media?.version).toBe('2.1.0');
    const recorded = (await groupEvents('aborted')).map((event) =>
      event.type === 'RolloutStatusChanged'
        ? `status:${event.data.status}`
        : event.type === 'AlarmRaised'
          ? `alarm:${event.data.alarm}`
          : event.type,
    );
    expect(recorded).toEqual(['status:running', 'status:aborted', 'alarm:rollout-aborted']);
  });
});

/** The api's group service over the same stores; its reconcile starter is a double the test reads. */
function groupService(now: () => Date = () => new Date()) {
  const starter = new RecordingReconcileStarter();
  let ids = 0;
  const service = new GroupService({
    events,
    documents,
    reconcile: starter,
    now,
    newId: () => `t${++ids}`,
  });
  return { service, starter };
}

async function mediaHosts(group: string) {
  return (await hosts.list({ group }, 100)).hosts.filter((host) => host.hostType === 'media');
}

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

    // Scale out as an operator would: the definition as it now stands, guarded by its ETag.
    const scaled = structuredClone(group.body.definition);
    if (scaled.hostTypes.media) scaled.hostTypes.media.count = 3;
    await service.defineGroup('adopt', JSON.stringify(scaled), 'json', {
      ifMatch: etagOf(group.body.definitionVersion),
    });
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

  it('resumes a rollout paused while its run waits at the check without starting a second run', async () => {
    // The run and the resume happen a minute after the request: only the run's own renewals, not the grace
    // the request gave its first run, can tell the resume that the run still waits.
    // While paused, 20 s pass between two checks: beyond what the Plan step wrote, only the checks' renewals
    // keep the run's word alive.
    let offset = 60_000;
    const later = () => new Date(Date.now() + offset);
    const { service, starter } = groupService();
    const { service: operatorLater, starter: operatorStarter } = groupService(later);
    await service.defineGroup('resumed', JSON.stringify(definition('resumed', 4)), 'json');
    await service.startGroup('resumed');
    let rolloutId: string | undefined;
    let checksWhilePaused = 0;
    let paused = false;
    const h = harness({
      around: async (event, invoke) => {
        if (paused && event.step === 'check') offset += 20_000;
        const result = await invoke();
        if (rolloutId && event.step === 'apply' && event.wave === 0 && !paused && checksWhilePaused === 0) {
          await operatorLater.commandRollout(rolloutId, 'pause');
          paused = true;
        }
        if (rolloutId && paused && event.step === 'check' && ++checksWhilePaused === 3) {
          const resumed = await operatorLater.commandRollout(rolloutId, 'resume');
          expect(resumed.executionId).toBeUndefined();
          paused = false;
        }
        return result;
      },
      now: later,
    });
    expect((await h.run('resumed', 'group-resumed-start-1')).status).toBe('SUCCEEDED');
    const { rollout } = await service.requestRollout('resumed', { service: 'media', version: '2.2.0' });
    const requestsBefore = starter.requests.length;
    rolloutId = rollout.id;

    const outcome = await h.run('resumed', `rollout-${rollout.id}`, rollout.id);

    expect(outcome.status).toBe('SUCCEEDED');
    expect(checksWhilePaused).toBe(3);
    expect(starter.requests.slice(requestsBefore)).toEqual([]);
    expect(operatorStarter.requests).toEqual([]);
    const stored = (await documents.get<Rollout>('rollout', rollout.id))?.body;
    expect(stored?.status).toBe('succeeded');
    // The run renewed its word at each step, so a resume later than the first run's grace would trust it too.
    expect(Date.parse(stored?.runAliveUntil ?? '')).toBeGreaterThan(Date.parse(rollout.runAliveUntil ?? ''));
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
