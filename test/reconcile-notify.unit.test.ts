import { describe, expect, it } from 'vitest';
import { DocumentPlanStore } from '../functions/reconcile/plan-store.ts';
import { applyStep } from '../functions/reconcile/steps/apply.ts';
import { deliverNotifications } from '../functions/reconcile/steps/notify.ts';
import type { ReconcileDeps } from '../functions/reconcile/steps/types.ts';
import { type BroadcastTarget, broadcastMessageId } from '../shared/groups/broadcast.ts';
import { compileGroup, parseGroupDefinition } from '../shared/groups/compile.ts';
import type { HostProvisioner } from '../shared/groups/host-provisioning.ts';
import type { DesiredHostState, Plan, Wave } from '../shared/groups/model.ts';
import type { FleetPort, InboxAddress, StatePublisher } from '../shared/groups/ports.ts';
import { registerHost } from '../shared/host-registration.ts';
import {
  FakeCipher,
  MemoryDocumentStore,
  MemoryEventStore,
  MemoryHostStore,
} from './support/memory-stores.ts';
import { holdLease, planRef } from './support/reconcile-fixtures.ts';

/*
 * Delivering a wave's 'notify' actions: the dependents the planner names are resolved to the roles of their
 * host types, and each role is told once, with a message id a retried wave sends again.
 */

const NOW = new Date('2026-11-28T10:00:00.000Z');

class RecordingPublisher implements StatePublisher {
  readonly calls: string[] = [];
  readonly broadcasts: { target: BroadcastTarget; payload: Record<string, unknown>; messageId: string }[] =
    [];
  async ensureInbox(address: InboxAddress) {
    return { queueUrl: `https://sqs.example/${address.hostId}` };
  }
  async removeInbox() {}
  async publish(states: readonly DesiredHostState[]) {
    this.calls.push(`publish ${states.map((s) => s.hostId).join(',')}`);
  }
  async broadcast(target: BroadcastTarget, payload: Record<string, unknown>, messageId: string) {
    this.calls.push(`broadcast ${target.role}`);
    this.broadcasts.push({ target, payload, messageId });
  }
}

const unusedFleet: FleetPort = {
  launch: () => Promise.reject(new Error('not expected')),
  terminate: () => Promise.reject(new Error('not expected')),
  reboot: () => Promise.reject(new Error('not expected')),
  describe: () => Promise.reject(new Error('not expected')),
};
const unusedProvisioner: HostProvisioner = {
  prepare: () => Promise.reject(new Error('not expected')),
  bind: () => Promise.reject(new Error('not expected')),
  revoke: () => Promise.reject(new Error('not expected')),
};

const HOSTS = [
  { hostId: 'router-1', hostType: 'router', roles: ['call-router', 'sip-edge'] },
  { hostId: 'router-2', hostType: 'router', roles: ['call-router', 'sip-edge'] },
  { hostId: 'media-1', hostType: 'media', roles: ['media'] },
  { hostId: 'db-1', hostType: 'db', roles: ['db'] },
];

async function given(plan?: Plan) {
  const documents = new MemoryDocumentStore();
  const events = new MemoryEventStore();
  const hosts = new MemoryHostStore();
  const cipher = new FakeCipher();
  for (const host of HOSTS)
    await registerHost({ events, hosts, cipher }, { ...host, group: 'demo' }, 'secret', NOW);
  const type = (roles: string[], service: string) => ({
    roles,
    instanceType: 'c7g.large',
    image: 'ami-0123',
    count: 1,
    services: { [service]: { version: '1.0.0' } },
  });
  const definition = parseGroupDefinition(
    JSON.stringify({
      name: 'demo',
      hostTypes: {
        router: type(['call-router', 'sip-edge'], 'call-router'),
        media: type(['media'], 'media'),
        db: type(['db'], 'db'),
      },
      dependencies: { 'call-router': ['db'], media: ['db'], db: [] },
    }),
    'json',
  );
  await documents.put(
    'group',
    'demo',
    { definition, compiled: compileGroup(definition, 1), running: true, definitionVersion: 1 },
    0,
    NOW,
  );
  const plans = new DocumentPlanStore({ documents });
  if (plan) await plans.save('demo.run', plan, NOW);
  await holdLease(documents, 'demo', 'demo.run', NOW);
  const publisher = new RecordingPublisher();
  const deps: ReconcileDeps = {
    events,
    hosts,
    documents,
    fleet: unusedFleet,
    provisioner: unusedProvisioner,
    publisher,
    plans,
    settings: { pollSeconds: 1, heartbeatCoalesceSeconds: 0 },
    now: () => NOW,
  };
  return { deps, publisher };
}

function wave(actions: Wave['actions'], index = 0): Wave {
  return { index, actions, disrupted: [], awaits: [] };
}

const dbState: DesiredHostState = {
  hostId: 'db-1',
  group: 'demo',
  hostType: 'db',
  stateVersion: 2,
  services: { db: { version: '2.0.0' } },
  config: {},
  mode: 'running',
};

describe('deliverNotifications', () => {
  it("tells each role of the dependents' host types once, naming the hosts of that role", async () => {
    const { deps, publisher } = await given();
    const ref = planRef();
    const delivered = await deliverNotifications(
      deps,
      ref,
      1,
      wave([
        { kind: 'assign', hostId: 'db-1', state: dbState },
        {
          kind: 'notify',
          hostIds: ['router-2', 'media-1', 'router-1'],
          service: 'db',
          reason: 'db 1.0.0 → 2.0.0',
        },
      ]),
    );

    const idOf = (role: string) =>
      broadcastMessageId({ planId: 'demo.run', wave: 1, action: 1, target: { group: 'demo', role } });
    const payload = (hostIds: string[]) => ({
      kind: 'notify',
      service: 'db',
      reason: 'db 1.0.0 → 2.0.0',
      hostIds,
    });
    expect(publisher.broadcasts).toEqual([
      {
        target: { group: 'demo', role: 'call-router' },
        payload: payload(['router-1', 'router-2']),
        messageId: idOf('call-router'),
      },
      { target: { group: 'demo', role: 'media' }, payload: payload(['media-1']), messageId: idOf('media') },
      {
        target: { group: 'demo', role: 'sip-edge' },
        payload: payload(['router-1', 'router-2']),
        messageId: idOf('sip-edge'),
      },
    ]);
    expect(new Set(delivered.map((d) => d.messageId)).size).toBe(3);
  });

  it('sends the same message ids when the wave is retried, and others for another wave or plan', async () => {
    const { deps, publisher } = await given();
    const actions: Wave['actions'] = [{ kind: 'notify', hostIds: ['media-1'], service: 'db', reason: 'r' }];
    await deliverNotifications(deps, planRef(), 0, wave(actions));
    await deliverNotifications(deps, planRef(), 0, wave(actions));
    await deliverNotifications(deps, planRef(), 1, wave(actions, 1));
    await deliverNotifications(deps, planRef({ planId: 'demo.run.pass-2' }), 0, wave(actions));
    const ids = publisher.broadcasts.map((b) => b.messageId);
    expect(ids[0]).toBe(ids[1]);
    expect(new Set(ids).size).toBe(3);
  });

  it('sends nothing for a wave without notify actions, nor for dependents it cannot place', async () => {
    const { deps, publisher } = await given();
    expect(
      await deliverNotifications(
        deps,
        planRef(),
        0,
        wave([{ kind: 'assign', hostId: 'db-1', state: dbState }]),
      ),
    ).toEqual([]);
    expect(
      await deliverNotifications(
        deps,
        planRef(),
        0,
        wave([{ kind: 'notify', hostIds: ['gone-1'], service: 'db', reason: 'r' }]),
      ),
    ).toEqual([]);
    expect(publisher.broadcasts).toEqual([]);
  });

  it('places a dependent launched in the same wave by its launch', async () => {
    const { deps, publisher } = await given();
    const launched = { ...dbState, hostId: 'media-9', hostType: 'media' };
    await deliverNotifications(
      deps,
      planRef(),
      0,
      wave([
        { kind: 'launch', hostId: 'media-9', hostType: 'media', state: launched },
        { kind: 'notify', hostIds: ['media-9'], service: 'db', reason: 'r' },
      ]),
    );
    expect(publisher.broadcasts).toMatchObject([
      { target: { role: 'media' }, payload: { hostIds: ['media-9'] } },
    ]);
  });
});

describe('apply: a wave with notify actions', () => {
  it("publishes the wave's states first, then tells the dependents", async () => {
    const plan: Plan = {
      group: 'demo',
      waves: [
        wave([
          { kind: 'notify', hostIds: ['media-1'], service: 'db', reason: 'db 1.0.0 → 2.0.0' },
          { kind: 'assign', hostId: 'db-1', state: dbState },
        ]),
      ],
      deferred: [],
    };
    const { deps, publisher } = await given(plan);
    await applyStep(deps, planRef({ waves: [0] }), 0);
    expect(publisher.calls).toEqual(['publish db-1', 'broadcast media']);
  });
});
