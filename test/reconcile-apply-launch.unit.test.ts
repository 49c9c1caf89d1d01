import { AddTagsToResourceCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createReconcileHandler } from '../functions/reconcile/handler.ts';
import { DocumentPlanStore } from '../functions/reconcile/plan-store.ts';
import { SsmHostSecrets } from '../shared/adapters/ssm-host-secrets.ts';
import { hostStream } from '../shared/events.ts';
import { compileGroup, parseGroupDefinition } from '../shared/groups/compile.ts';
import type { DesiredHostState, Plan } from '../shared/groups/model.ts';
import type {
  FleetInstance,
  FleetPort,
  InboxAddress,
  LaunchRequest,
  StatePublisher,
} from '../shared/groups/ports.ts';
import { registerHost } from '../shared/host-registration.ts';
import {
  FakeCipher,
  MemoryDocumentStore,
  MemoryEventStore,
  MemoryHostStore,
} from './support/memory-stores.ts';
import { holdLease, planRef } from './support/reconcile-fixtures.ts';

/*
 * The Apply step launching a host on EC2's terms: the real SSM provisioner (SSM itself mocked) and in-memory
 * stores behind the handler; the fleet and the fan-out are test doubles of their ports.
 */

const NOW = new Date('2026-11-28T10:00:00.000Z');
const INSTANCE_ARN_PREFIX = 'arn:aws:ec2:eu-west-1:111122223333:instance/';
const HOST_ID = 'demo-call-router-1';
const ssm = mockClient(SSMClient);

const state: DesiredHostState = {
  hostId: HOST_ID,
  group: 'demo',
  hostType: 'call-router',
  stateVersion: 1,
  services: { 'call-router': { version: '1.4.0' } },
  config: {},
  mode: 'running',
};

class RecordingFleet implements FleetPort {
  readonly launches: LaunchRequest[] = [];
  constructor(private readonly live: FleetInstance[] = []) {}
  async launch(request: LaunchRequest): Promise<FleetInstance> {
    this.launches.push(request);
    return { hostId: request.hostId, instanceId: 'i-0abc1', state: 'pending' };
  }
  async terminate() {}
  async reboot() {}
  async describe() {
    return this.live;
  }
}

class RecordingPublisher implements StatePublisher {
  readonly inboxes: InboxAddress[] = [];
  readonly published: DesiredHostState[] = [];
  async ensureInbox(address: InboxAddress) {
    this.inboxes.push(address);
    return { queueUrl: `https://sqs.example/${address.hostId}` };
  }
  async removeInbox() {}
  async publish(states: readonly DesiredHostState[]) {
    this.published.push(...states);
  }
  async broadcast() {}
}

async function given(live: FleetInstance[] = []) {
  const documents = new MemoryDocumentStore();
  const events = new MemoryEventStore();
  const hosts = new MemoryHostStore();
  const cipher = new FakeCipher();
  // An interrupted attempt that launched had registered its host first.
  for (const instance of live)
    await registerHost(
      { events, hosts, cipher },
      { hostId: instance.hostId, group: 'demo', hostType: 'call-router', roles: ['call-router'] },
      'earlier-secret',
      NOW,
    );
  const definition = parseGroupDefinition(
    JSON.stringify({
      name: 'demo',
      hostTypes: {
        'call-router': {
          roles: ['call-router'],
          instanceType: 'c7g.large',
          image: 'ami-0123',
          count: 1,
          services: { 'call-router': { version: '1.4.0' } },
        },
      },
      dependencies: { 'call-router': [] },
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
  await holdLease(documents, 'demo', 'demo.run', NOW);
  const plan: Plan = {
    group: 'demo',
    waves: [
      {
        index: 0,
        actions: [{ kind: 'launch', hostId: HOST_ID, hostType: 'call-router', state }],
        disrupted: [],
        awaits: [{ hostId: HOST_ID, stateVersion: 1 }],
      },
    ],
    deferred: [],
  };
  await plans.save('demo.run', plan, NOW);
  const fleet = new RecordingFleet(live);
  const publisher = new RecordingPublisher();
  const handler = createReconcileHandler({
    events,
    hosts,
    documents,
    plans,
    fleet,
    publisher,
    provisioner: new SsmHostSecrets({
      events,
      hosts,
      cipher,
      ssm: new SSMClient({ region: 'eu-west-1' }),
      prefix: '/fleetfold/hosts/',
      keyId: 'arn:aws:kms:eu-west-1:111122223333:key/params',
      instanceArnPrefix: INSTANCE_ARN_PREFIX,
      newSecret: () => 'fresh-secret',
      now: () => NOW,
    }),
    settings: { pollSeconds: 5, heartbeatCoalesceSeconds: 0 },
    now: () => NOW,
  });
  const ref = planRef({ waves: [0], deadlineSeconds: 300, pollSeconds: 5 });
  return {
    fleet,
    publisher,
    events,
    hosts,
    cipher,
    apply: () => handler({ step: 'apply', plan: ref, wave: 0 }),
  };
}

beforeEach(() => {
  ssm.reset();
  ssm.on(PutParameterCommand).resolves({ Version: 1 });
  ssm.on(AddTagsToResourceCommand).resolves({});
});

describe('apply: launching an EC2 host', () => {
  it('registers the host and stores its secret before the launch, then lets only the new instance read it', async () => {
    const { fleet, publisher, events, hosts, cipher, apply } = await given();

    await apply();

    // Registered first, then told what to be: its stream holds both, in that order.
    const stream = (await events.read(hostStream(HOST_ID))).events;
    expect(stream.map((event) => event.type)).toEqual(['HostRegistered', 'StateAssigned']);
    expect(stream[1]?.data).toMatchObject({ state, by: { run: 'demo.run', reason: 'reconcile' } });
    const record = await hosts.get(HOST_ID);
    expect(await cipher.decrypt(record?.secretCiphertext ?? '', HOST_ID)).toBe('fresh-secret');
    expect(ssm.commandCalls(PutParameterCommand)[0]?.args[0].input).toMatchObject({
      Name: `/fleetfold/hosts/${HOST_ID}`,
      Value: 'fresh-secret',
      Type: 'SecureString',
    });
    expect(fleet.launches).toEqual([
      expect.objectContaining({ hostId: HOST_ID, secretRef: `/fleetfold/hosts/${HOST_ID}`, stateVersion: 1 }),
    ]);
    expect(ssm.commandCalls(AddTagsToResourceCommand)[0]?.args[0].input.Tags).toEqual([
      { Key: 'fleetfold:instance-arn', Value: `${INSTANCE_ARN_PREFIX}i-0abc1` },
    ]);
    expect(publisher.inboxes.map((inbox) => inbox.hostId)).toEqual([HOST_ID]);
    expect(publisher.published).toEqual([state]);
  });

  it('binds the instance an interrupted attempt launched instead of launching again', async () => {
    const { fleet, apply } = await given([{ hostId: HOST_ID, instanceId: 'i-0def2', state: 'running' }]);

    await apply();

    expect(fleet.launches).toEqual([]);
    expect(ssm.commandCalls(PutParameterCommand)).toHaveLength(0);
    expect(ssm.commandCalls(AddTagsToResourceCommand)[0]?.args[0].input.Tags).toEqual([
      { Key: 'fleetfold:instance-arn', Value: `${INSTANCE_ARN_PREFIX}i-0def2` },
    ]);
  });

  it('launches nothing when the secret cannot be stored', async () => {
    ssm.reset();
    ssm.on(PutParameterCommand).rejects(new Error('AccessDeniedException: kms:Encrypt'));
    const { fleet, publisher, apply } = await given();

    await expect(apply()).rejects.toThrow(/kms:Encrypt/);

    expect(fleet.launches).toEqual([]);
    expect(publisher.published).toEqual([]);
  });
});
