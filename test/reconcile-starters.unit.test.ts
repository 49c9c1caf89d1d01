import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type BlobStore,
  DocumentPlanStore,
  INLINE_PLAN_LIMIT_BYTES,
} from '../functions/reconcile/plan-store.ts';
import { SfnReconcileStarter } from '../shared/adapters/sfn-reconcile-starter.ts';
import type { Plan } from '../shared/groups/model.ts';
import { MemoryDocumentStore } from './support/memory-stores.ts';

const MACHINE = 'arn:aws:states:eu-west-1:123456789012:stateMachine:Reconcile';
const sfn = mockClient(SFNClient);

afterEach(() => sfn.reset());

describe('SfnReconcileStarter', () => {
  it('starts an execution named after the dedupe key with the group, reason and rollout as input', async () => {
    sfn
      .on(StartExecutionCommand)
      .resolves({ executionArn: `${MACHINE.replace('stateMachine', 'execution')}:x` });
    const starter = new SfnReconcileStarter({ client: new SFNClient({}), stateMachineArn: MACHINE });

    await starter.start({ group: 'demo', reason: 'rollout', rolloutId: 'r-1', dedupeKey: 'rollout-r-1' });

    const [call] = sfn.commandCalls(StartExecutionCommand);
    expect(call?.args[0].input).toEqual({
      stateMachineArn: MACHINE,
      name: 'rollout-r-1',
      input: JSON.stringify({ group: 'demo', reason: 'rollout', rolloutId: 'r-1' }),
    });
  });

  it('returns the existing execution when one of that name exists already', async () => {
    sfn
      .on(StartExecutionCommand)
      .rejects(new ExecutionAlreadyExists({ message: 'Execution Already Exists', $metadata: {} }));
    const starter = new SfnReconcileStarter({ client: new SFNClient({}), stateMachineArn: MACHINE });

    const { executionId } = await starter.start({
      group: 'demo',
      reason: 'start',
      dedupeKey: 'group-demo-start-3',
    });

    expect(executionId).toBe('arn:aws:states:eu-west-1:123456789012:execution:Reconcile:group-demo-start-3');
  });

  it('fails on any other error', async () => {
    sfn.on(StartExecutionCommand).rejects(new Error('AccessDenied'));
    const starter = new SfnReconcileStarter({ client: new SFNClient({}), stateMachineArn: MACHINE });

    await expect(starter.start({ group: 'demo', reason: 'start', dedupeKey: 'k' })).rejects.toThrow(
      'AccessDenied',
    );
  });
});

class MemoryBlobs implements BlobStore {
  readonly objects = new Map<string, string>();
  async put(key: string, body: string) {
    this.objects.set(key, body);
    return { bucket: 'test', key };
  }
  async get(ref: { bucket: string; key: string }) {
    const body = this.objects.get(ref.key);
    if (body === undefined) throw new Error(`no ${ref.key}`);
    return body;
  }
}

function planOfSize(bytes: number): Plan {
  return {
    group: 'demo',
    waves: [],
    deferred: [{ hostId: 'h', reason: 'x'.repeat(bytes) }],
  };
}

describe('DocumentPlanStore', () => {
  it('keeps a plan in its document when it fits', async () => {
    const blobs = new MemoryBlobs();
    const store = new DocumentPlanStore({ documents: new MemoryDocumentStore(), blobs });
    const plan = planOfSize(1000);

    await store.save('p1', plan, new Date());

    expect(await store.load('p1')).toEqual(plan);
    expect(blobs.objects.size).toBe(0);
  });

  it('puts a plan too large for an item under plans/ and reads it back from there', async () => {
    const blobs = new MemoryBlobs();
    const store = new DocumentPlanStore({ documents: new MemoryDocumentStore(), blobs });
    const plan = planOfSize(INLINE_PLAN_LIMIT_BYTES + 1);

    await store.save('p2', plan, new Date());

    expect([...blobs.objects.keys()]).toEqual(['plans/p2.json']);
    expect(await store.load('p2')).toEqual(plan);
  });

  it('keeps the first plan when a retried step saves another under the same id', async () => {
    const store = new DocumentPlanStore({ documents: new MemoryDocumentStore() });
    await store.save('p3', planOfSize(10), new Date());

    await store.save('p3', planOfSize(20), new Date());

    expect((await store.load('p3')).deferred[0]?.reason).toHaveLength(10);
  });

  it('records converged waves once each', async () => {
    const store = new DocumentPlanStore({ documents: new MemoryDocumentStore() });
    await store.save('p4', planOfSize(10), new Date());

    await store.markConverged('p4', 0, new Date());
    await store.markConverged('p4', 0, new Date());
    await store.markConverged('p4', 1, new Date());

    expect([...(await store.converged('p4'))]).toEqual([0, 1]);
  });
});
