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
import { compileGroup, parseGroupDefinition } from '../shared/groups/compile.ts';
import { type GroupEvent, groupStream } from '../shared/groups/events.ts';
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
    now: () => new Date(),
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
    const failed = new Set<number>();
    const h = harness({
      around: async (event, invoke) => {
        const result = await invoke();
        if (event.step === 'apply' && !failed.has(event.wave)) {
          failed.add(event.wave);
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
    expect(h.invocations.filter((event) => event.step === 'plan')).toHaveLength(1);
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
