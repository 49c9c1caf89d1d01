import { beforeAll, describe, expect, it } from 'vitest';
import { createReconcileHandler, type ReconcileEvent } from '../functions/reconcile/handler.ts';
import { DocumentPlanStore } from '../functions/reconcile/plan-store.ts';
import { type LocalOutcome, localReconcileStarter } from '../infra/local/local-reconcile-starter.ts';
import type { DynamoDocumentStore } from '../shared/adapters/dynamo-document-store.ts';
import type { DynamoEventStore } from '../shared/adapters/dynamo-event-store.ts';
import type { DynamoHostStore } from '../shared/adapters/dynamo-host-store.ts';
import { parseGroupDefinition } from '../shared/groups/compile.ts';
import { GroupService } from '../shared/groups/group-service.ts';
import type { GroupDocument } from '../shared/groups/group-state.ts';
import type { DesiredHostState, GroupDefinition, Rollout } from '../shared/groups/model.ts';
import type {
  DocumentStore,
  FleetInstance,
  FleetPort,
  InboxAddress,
  LaunchRequest,
  StatePublisher,
} from '../shared/groups/ports.ts';
import type { HostStatus } from '../shared/schemas.ts';
import { registeringProvisioner, useDynaliteStores } from './support/dynalite-stores.ts';
import { report } from './support/host-reports.ts';
import { RecordingReconcileStarter } from './support/memory-stores.ts';

/*
 * As test/reconcile.int.test.ts: the synthesized state machine runs in aws-local-stepfunctions against the real
 * reconcile handler, planner and DynamoDB stores (dynalite); the fleet and the hosts are doubles of their ports.
 * Here: a definition's version change on a running group rolls out, and a rollback keeps to the budget.
 */

const stores = useDynaliteStores();
let events: DynamoEventStore;
let hosts: DynamoHostStore;
let documents: DynamoDocumentStore;

beforeAll(() => {
  ({ events, hosts, documents } = stores);
});

class Fleet implements FleetPort {
  readonly #instances = new Map<
    string,
    FleetInstance & { group: string; stateVersion: number; hostType: string }
  >();
  readonly launchedTypes: string[] = [];
  readonly #mostLive = new Map<string, number>();

  mostLive(group: string, hostType: string): number {
    return this.#mostLive.get(`${group}/${hostType}`) ?? 0;
  }

  async launch(request: LaunchRequest): Promise<FleetInstance> {
    this.launchedTypes.push(request.instanceType);
    const existing = this.#instances.get(request.hostId);
    if (existing && existing.state !== 'terminated' && existing.stateVersion === request.stateVersion)
      return existing;
    const instance = {
      hostId: request.hostId,
      instanceId: `i-${request.hostId}`,
      state: 'running' as const,
      group: request.group,
      stateVersion: request.stateVersion,
      hostType: request.hostType,
    };
    this.#instances.set(request.hostId, instance);
    const key = `${request.group}/${request.hostType}`;
    const live = [...this.#instances.values()].filter(
      (i) => i.group === request.group && i.hostType === request.hostType && i.state !== 'terminated',
    ).length;
    this.#mostLive.set(key, Math.max(this.#mostLive.get(key) ?? 0, live));
    await report({ events, hosts }, request.hostId, (observed) => observed);
    return instance;
  }

  async terminate(hostId: string): Promise<void> {
    const instance = this.#instances.get(hostId);
    if (instance) instance.state = 'terminated';
  }

  async reboot(): Promise<void> {}

  async describe(group: string): Promise<FleetInstance[]> {
    return [...this.#instances.values()].filter((instance) => instance.group === group);
  }
}

/** Hosts that report what they were sent, when told to (lazy), failing on what `failsOn` says. */
class Hosts implements StatePublisher {
  readonly unreported = new Map<string, DesiredHostState>();
  lazy = false;

  constructor(private readonly failsOn: (state: DesiredHostState) => boolean = () => false) {}

  async ensureInbox(address: InboxAddress) {
    return { queueUrl: `local://fleetfold-inbox-${address.hostId}` };
  }

  async removeInbox() {}

  async broadcast() {}

  async publish(states: readonly DesiredHostState[]) {
    for (const state of states) this.unreported.set(state.hostId, structuredClone(state));
    if (!this.lazy) await this.report();
  }

  async report() {
    const states = [...this.unreported.values()];
    this.unreported.clear();
    for (const state of states) {
      if (!(await hosts.get(state.hostId))?.observed) continue;
      const failed = this.failsOn(state);
      const status: HostStatus = failed ? 'failed' : state.mode === 'draining' ? 'draining' : 'running';
      await report({ events, hosts }, state.hostId, (observed) => ({
        ...observed,
        status,
        software: Object.fromEntries(
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

function definition(name: string, mediaVersion = '2.1.0'): GroupDefinition {
  return parseGroupDefinition(
    JSON.stringify({
      name,
      hostTypes: {
        db: { roles: ['db'], instanceType: 'r7g.large', count: 1, services: { db: { version: '13.2' } } },
        media: {
          roles: ['media'],
          instanceType: 'c7g.xlarge',
          count: 8,
          services: { media: { version: mediaVersion } },
        },
      },
      dependencies: { db: [], media: ['db'] },
      configuration: {
        rollout: { wave: 'max(1, 25%)', surgeFirst: true, convergenceTimeoutSeconds: 60 },
        drain: { waitForSessions: true, timeoutSeconds: 30, onTimeout: 'proceed' },
        // 9 hosts: 2 out of service at once.
        disruptionBudget: 'max(1, 25%)',
        rules: [],
      },
    }),
    'json',
  );
}

const BUDGET = 2;

function groupService() {
  let ids = 0;
  return new GroupService({
    events,
    documents,
    reconcile: new RecordingReconcileStarter(),
    now: () => new Date(),
    newId: () => `t${++ids}`,
  });
}

/**
 * The reconcile over the doubles; after every apply it notes how many media hosts are out of service right
 * then (sent a state they have not reported yet, or drained, or failed).
 */
function harness(failsOn?: (state: DesiredHostState) => boolean) {
  const fleet = new Fleet();
  const hostsDouble = new Hosts(failsOn);
  const now = () => new Date();
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
  const outAtOnce: number[] = [];
  const starter = localReconcileStarter(
    async (payload) => {
      const event = payload as ReconcileEvent;
      if (event.step === 'check') await hostsDouble.report();
      const result = await handler(event);
      if (event.step === 'apply' && hostsDouble.lazy) {
        const changing = [...hostsDouble.unreported.values()].filter((state) => state.hostType === 'media');
        outAtOnce.push(changing.length);
      }
      return result;
    },
    { waitMs: 5, retryMs: 0 },
  );
  return {
    fleet,
    hostsDouble,
    outAtOnce,
    async run(group: string, dedupeKey: string, rolloutId?: string): Promise<LocalOutcome> {
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

async function startedGroup(name: string, h: ReturnType<typeof harness>) {
  const service = groupService();
  await service.defineGroup(name, JSON.stringify(definition(name)), 'json');
  await service.startGroup(name);
  expect((await h.run(name, `group-${name}-start-1`)).status).toBe('SUCCEEDED');
  return service;
}

async function mediaHosts(group: string) {
  return (await hosts.list({ group }, 100)).hosts.filter((host) => host.hostType === 'media');
}

async function rolloutOf(id: string) {
  return (await documents.get<Rollout>('rollout', id))?.body;
}

describe('a definition change on a running group', () => {
  it('rolls the new version out to every host within the budget, the rollout naming the definition version', async () => {
    const h = harness();
    const service = await startedGroup('declared', h);
    h.hostsDouble.lazy = true;

    const defined = await service.defineGroup(
      'declared',
      JSON.stringify(definition('declared', '2.2.0')),
      'json',
    );
    const rollout = defined.rollout;
    expect(rollout).toMatchObject({
      service: 'media',
      version: '2.2.0',
      select: 'all',
      cause: { kind: 'declared', definitionVersion: defined.group.definitionVersion },
    });
    const id = rollout?.id as string;
    const outcome = await h.run('declared', `group-declared-def-${defined.group.definitionVersion}`, id);

    expect(outcome.status).toBe('SUCCEEDED');
    expect((await rolloutOf(id))?.status).toBe('succeeded');
    const media = await mediaHosts('declared');
    expect(media).toHaveLength(8);
    for (const host of media) expect(host.observed?.software.media?.version).toBe('2.2.0');
    expect(Math.max(...h.outAtOnce)).toBe(BUDGET);
    for (const out of h.outAtOnce) expect(out).toBeLessThanOrEqual(BUDGET);
    const group = (await documents.get<GroupDocument>('group', 'declared'))?.body;
    expect(group?.activeRollout).toBeUndefined();
    expect(group?.definition.hostTypes.media?.services.media?.version).toBe('2.2.0');
  });
});

describe('a changed instance type on a running group', () => {
  it('replaces the host type hosts surge-first within the budget: new hosts launched as defined now', async () => {
    const h = harness();
    const service = await startedGroup('replaced', h);
    const before = (await mediaHosts('replaced')).map((host) => host.hostId).sort();
    h.hostsDouble.lazy = true;
    const bigger = definition('replaced');
    (bigger.hostTypes.media as { instanceType: string }).instanceType = 'c7g.2xlarge';

    const defined = await service.defineGroup('replaced', JSON.stringify(bigger), 'json');
    const id = defined.rollout?.id as string;
    expect(defined.rollout).toMatchObject({ replaceHostType: 'media', select: 'all' });
    const outcome = await h.run('replaced', `group-replaced-def-${defined.group.definitionVersion}`, id);

    expect(outcome.status).toBe('SUCCEEDED');
    expect((await rolloutOf(id))?.status).toBe('succeeded');
    const live = (await mediaHosts('replaced')).filter((host) => host.status === 'running');
    expect(live).toHaveLength(8);
    for (const host of live) {
      expect(before).not.toContain(host.hostId);
      expect(host.assigned?.state.launchedAs).toContain('c7g.2xlarge');
    }
    expect(h.fleet.launchedTypes.filter((type) => type === 'c7g.2xlarge')).toHaveLength(8);
    // Surge-first: the replacements are up before the old hosts go, so at most 8 + a wave run at once.
    expect(h.fleet.mostLive('replaced', 'media')).toBeLessThanOrEqual(8 + BUDGET);
  });
});

describe('a rollback', () => {
  it('puts the hosts back through waves: never more hosts out of service at once than the budget allows', async () => {
    // The fifth host to get 2.2.0 fails on it: by then two waves of two went through, so four hosts go back.
    const gotIt = new Set<string>();
    const h = harness((state) => {
      if (state.services.media?.version !== '2.2.0') return false;
      gotIt.add(state.hostId);
      return [...gotIt].indexOf(state.hostId) === 4;
    });
    const service = await startedGroup('rollback', h);
    h.hostsDouble.lazy = true;

    const defined = await service.defineGroup(
      'rollback',
      JSON.stringify(definition('rollback', '2.2.0')),
      'json',
    );
    const id = defined.rollout?.id as string;
    const outcome = await h.run('rollback', `group-rollback-def-${defined.group.definitionVersion}`, id);

    expect(outcome).toMatchObject({ status: 'FAILED', error: 'ReconcileFailed' });
    const rollout = await rolloutOf(id);
    expect(rollout?.status).toBe('rolled-back');
    expect(rollout?.revert?.waves?.length).toBeGreaterThan(1);
    expect(Math.max(...h.outAtOnce)).toBe(BUDGET);
    for (const out of h.outAtOnce) expect(out).toBeLessThanOrEqual(BUDGET);
    for (const host of await mediaHosts('rollback')) {
      expect(host.observed?.software.media?.version).toBe('2.1.0');
      expect(host.assigned?.state.mode).toBe('running');
    }
    // The definition it was declared from is given its previous version back: no host launches on 2.2.0 now.
    const group = (await documents.get<GroupDocument>('group', 'rollback'))?.body;
    expect(group?.definition.hostTypes.media?.services.media?.version).toBe('2.1.0');
    expect(group?.activeRollout).toBeUndefined();
  });
});
