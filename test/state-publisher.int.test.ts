import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  GetSubscriptionAttributesCommand,
  ListSubscriptionsByTopicCommand,
  SNSClient,
} from '@aws-sdk/client-sns';
import {
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppliedStateStore } from '../agent/applied-state.ts';
import { StateInbox } from '../agent/inbox.ts';
import { BroadcastLedger, BroadcastReceiver, type DependencyChange } from '../agent/notify.ts';
import { type Emulators, localClientConfig, startEmulators } from '../infra/local/emulators.ts';
import { ensureStateTopics } from '../infra/local/inboxes.ts';
import { LocalStateSigner } from '../shared/adapters/local-state-signer.ts';
import {
  type FanoutOperation,
  SnsStatePublisher,
  StatePublishError,
} from '../shared/adapters/sns-state-publisher.ts';
import { checkBroadcast } from '../shared/groups/broadcast.ts';
import { inboxDlqName, inboxFilterPolicy, inboxQueueName, shardOf } from '../shared/groups/fanout.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import type { InboxAddress } from '../shared/groups/ports.ts';
import { checkEnvelope, sha256Hex } from '../shared/state-envelope.ts';

let stateDir: string;
let emulators: Emulators;
let sns: SNSClient;
let sqs: SQSClient;
let s3: S3Client;
let signer: LocalStateSigner;

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-fanout-'));
  emulators = await startEmulators({ stateDir });
  const config = localClientConfig(emulators.awsEndpoint, emulators.region);
  sns = new SNSClient(config);
  sqs = new SQSClient(config);
  s3 = new S3Client({ ...config, forcePathStyle: true });
  signer = await LocalStateSigner.fromKeyFile(join(stateDir, 'state-signing.pem'));
});

afterAll(async () => {
  for (const client of [sns, sqs, s3]) client?.destroy();
  await emulators?.stop();
  await rm(stateDir, { recursive: true, force: true });
});

function state(
  hostId: string,
  stateVersion: number,
  extra: Partial<DesiredHostState> = {},
): DesiredHostState {
  return {
    hostId,
    group: 'g1',
    hostType: 'call-router',
    stateVersion,
    services: { 'call-router': { version: '2.0.0' } },
    config: { 'sip.port': '5060' },
    mode: 'running',
    ...extra,
  };
}

async function publisherOn(
  base: string,
  shardCount: number,
  extra: { maxInlineBytes?: number; onRequest?: (op: FanoutOperation) => void } = {},
) {
  const topicArns = await ensureStateTopics(sns, shardCount, base);
  return new SnsStatePublisher({ sns, sqs, s3, bucket: emulators.bucket, signer, topicArns, ...extra });
}

async function drain(queueUrl: string): Promise<Message[]> {
  const messages: Message[] = [];
  for (;;) {
    const page = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageAttributeNames: ['All'],
        // Hidden long enough that a second call in the same test does not see the same messages again.
        VisibilityTimeout: 600,
      }),
    );
    if (!page.Messages?.length) return messages;
    messages.push(...page.Messages);
  }
}

async function bodies(queueUrl: string): Promise<unknown[]> {
  return (await drain(queueUrl)).map((m) => JSON.parse(m.Body ?? 'null'));
}

async function queueExists(name: string): Promise<boolean> {
  try {
    await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
    return true;
  } catch {
    return false;
  }
}

describe('SnsStatePublisher on fauxqs', () => {
  it('delivers each state to exactly the host it is for, as a raw envelope that verifies', async () => {
    const publisher = await publisherOn('exact', 1);
    const hosts: InboxAddress[] = ['a1', 'a2', 'a3'].map((hostId) => ({
      hostId,
      group: 'g1',
      roles: ['call-router'],
    }));
    const urls = await Promise.all(hosts.map((h) => publisher.ensureInbox(h)));

    await publisher.publish([state('a1', 4), state('a2', 7)]);

    const [one, two, three] = await Promise.all(urls.map((u) => drain(u.queueUrl)));
    expect(one).toHaveLength(1);
    expect(two).toHaveLength(1);
    expect(three).toHaveLength(0);
    const check = checkEnvelope(JSON.parse(one?.[0]?.Body ?? ''), signer.publicKeyPem, 'a1');
    expect(check).toMatchObject({ ok: true, envelope: { hostId: 'a1', stateVersion: 4 } });
    expect(check.ok && check.envelope.state).toEqual(state('a1', 4));
    expect(one?.[0]?.MessageAttributes?.hostId?.StringValue).toBe('a1');
    expect(checkEnvelope(JSON.parse(two?.[0]?.Body ?? ''), signer.publicKeyPem, 'a2').ok).toBe(true);
  });

  it('makes the inbox, its DLQ with a redrive after 5 receives, and a raw filtered subscription', async () => {
    const publisher = await publisherOn('shape', 1);
    const { queueUrl } = await publisher.ensureInbox({ hostId: 'b1', group: 'g1', roles: ['lb'] });
    expect(queueUrl).toContain(inboxQueueName('b1'));
    const attributes = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['All'] }),
    );
    const redrive = JSON.parse(attributes.Attributes?.RedrivePolicy ?? '{}');
    expect(redrive).toEqual({
      deadLetterTargetArn: expect.stringMatching(new RegExp(`:${inboxDlqName('b1')}$`)),
      maxReceiveCount: 5,
    });
    expect(await queueExists(inboxDlqName('b1'))).toBe(true);
    const topicArn = publisher.topicArnFor('b1');
    const subscriptions = await sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: topicArn }));
    expect(subscriptions.Subscriptions).toHaveLength(1);
    const subscription = await sns.send(
      new GetSubscriptionAttributesCommand({
        SubscriptionArn: subscriptions.Subscriptions?.[0]?.SubscriptionArn,
      }),
    );
    expect(subscription.Attributes).toMatchObject({
      RawMessageDelivery: 'true',
      Endpoint: expect.stringMatching(new RegExp(`:${inboxQueueName('b1')}$`)),
    });
    expect(JSON.parse(subscription.Attributes?.FilterPolicy ?? '{}')).toEqual(
      inboxFilterPolicy({ hostId: 'b1', group: 'g1', roles: ['lb'] }),
    );
  });

  it('is idempotent: a second ensureInbox keeps one subscription and applies changed roles', async () => {
    const publisher = await publisherOn('again', 1);
    const first = await publisher.ensureInbox({ hostId: 'c1', group: 'g1', roles: ['media'] });
    const second = await publisher.ensureInbox({ hostId: 'c1', group: 'g1', roles: ['call-router'] });
    expect(second.queueUrl).toBe(first.queueUrl);
    const subscriptions = await sns.send(
      new ListSubscriptionsByTopicCommand({ TopicArn: publisher.topicArnFor('c1') }),
    );
    expect(subscriptions.Subscriptions).toHaveLength(1);

    await publisher.broadcast({ group: 'g1', role: 'media' }, { kind: 'notify', service: 'db' }, 'b-1');
    expect(await drain(first.queueUrl)).toHaveLength(0);
    await publisher.broadcast({ group: 'g1', role: 'call-router' }, { kind: 'notify', service: 'db' }, 'b-2');
    expect(await drain(first.queueUrl)).toHaveLength(1);
  });

  it('delivers a group/role broadcast to exactly the hosts of that group having that role', async () => {
    const publisher = await publisherOn('broadcast', 1);
    const addresses: InboxAddress[] = [
      { hostId: 'd1', group: 'g1', roles: ['call-router'] },
      { hostId: 'd2', group: 'g1', roles: ['media', 'call-router'] },
      { hostId: 'd3', group: 'g1', roles: ['media'] },
      { hostId: 'd4', group: 'g2', roles: ['call-router'] },
    ];
    const urls = await Promise.all(addresses.map((a) => publisher.ensureInbox(a)));

    await publisher.broadcast({ group: 'g1', role: 'call-router' }, { kind: 'notify', service: 'db' }, 'b-3');

    const received = await Promise.all(urls.map((u) => bodies(u.queueUrl)));
    expect(received.map((r) => r.length)).toEqual([1, 1, 0, 0]);
    for (const [index, bodiesOfHost] of received.entries()) {
      const address = addresses[index] as InboxAddress;
      for (const body of bodiesOfHost)
        expect(checkBroadcast(body, signer.publicKeyPem, address, new Date())).toMatchObject({
          ok: true,
          envelope: { payload: { kind: 'notify', service: 'db' }, messageId: 'b-3' },
        });
    }
  });

  it("is acted on once by the agent's inbox of a host having the role, however often it is sent", async () => {
    const publisher = await publisherOn('notify', 2);
    const address: InboxAddress = { hostId: 'n1', group: 'g1', roles: ['media'] };
    const { queueUrl } = await publisher.ensureInbox(address);
    const changes: DependencyChange[] = [];
    const quiet = { info: () => {}, warn: () => {} };
    const inbox = new StateInbox({
      hostId: 'n1',
      sqs,
      s3,
      queue: { url: queueUrl },
      publicKey: signer.publicKeyPem,
      applied: new AppliedStateStore({ stateDir, hostId: 'n1' }),
      apply: async () => {},
      waitTimeSeconds: 0,
      logger: quiet,
      broadcasts: new BroadcastReceiver({
        ...address,
        publicKey: signer.publicKeyPem,
        ledger: new BroadcastLedger({ stateDir, hostId: 'n1' }),
        listener: { notify: async (change) => void changes.push(change) },
        logger: quiet,
      }),
    });
    const payload = { kind: 'notify', service: 'db', reason: 'db 2.0.0', hostIds: ['n1'] };

    await publisher.broadcast({ group: 'g1', role: 'media' }, payload, 'b-n1');
    await publisher.broadcast({ group: 'g1', role: 'media' }, payload, 'b-n1');
    const receipts = [];
    for (let i = 0; i < 3; i += 1) receipts.push(...((await inbox.receiveOnce()).broadcasts ?? []));

    expect(receipts.map(({ receipt }) => receipt.status).sort()).toEqual(['acted', 'refused']);
    expect(changes).toEqual([{ service: 'db', reason: 'db 2.0.0', hostIds: ['n1'], messageId: 'b-n1' }]);
    expect(await drain(queueUrl)).toHaveLength(0);
  });

  it('does not deliver a per-host state to other hosts sharing its group and role', async () => {
    const publisher = await publisherOn('nospill', 1);
    const urls = await Promise.all(
      ['e1', 'e2'].map((hostId) => publisher.ensureInbox({ hostId, group: 'g1', roles: ['call-router'] })),
    );
    await publisher.publish([state('e1', 1)]);
    expect((await drain(urls[0]?.queueUrl as string)).length).toBe(1);
    expect((await drain(urls[1]?.queueUrl as string)).length).toBe(0);
  });

  it('sends a too-large state through S3 with a signed sha256 that matches the stored object', async () => {
    const operations: FanoutOperation[] = [];
    const publisher = await publisherOn('large', 1, { onRequest: (op) => operations.push(op) });
    const { queueUrl } = await publisher.ensureInbox({ hostId: 'f1', group: 'g1', roles: ['db'] });
    const big = state('f1', 9, {
      config: Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`key.${i}`, 'x'.repeat(80)])),
    });
    operations.length = 0;

    await publisher.publish([big]);

    const [message] = await bodies(queueUrl);
    const check = checkEnvelope(message, signer.publicKeyPem, 'f1');
    if (!check.ok) throw new Error(check.detail);
    expect(check.envelope.state).toBeUndefined();
    expect(check.envelope.ref?.key).toBe('states/f1/9.json');
    const object = await s3.send(
      new GetObjectCommand({ Bucket: check.envelope.ref?.bucket, Key: check.envelope.ref?.key }),
    );
    const stored = (await object.Body?.transformToString('utf8')) ?? '';
    expect(sha256Hex(stored)).toBe(check.envelope.ref?.sha256);
    expect(JSON.parse(stored)).toEqual(big);
    // The inbox's instance tag is looked up so the object is readable by that instance only.
    expect(operations).toEqual(['SQS:GetQueueUrl', 'SQS:ListQueueTags', 'S3:PutObject', 'SNS:PublishBatch']);
  });

  it('delivers through sharded topics, each host on its own shard, in batches of at most 10 per shard', async () => {
    const operations: FanoutOperation[] = [];
    const publisher = await publisherOn('sharded', 3, { onRequest: (op) => operations.push(op) });
    const hostIds = Array.from({ length: 24 }, (_, i) => `s${i}`);
    const urls = await Promise.all(
      hostIds.map((hostId) => publisher.ensureInbox({ hostId, group: 'g1', roles: ['media'] })),
    );
    const shards = new Set(hostIds.map((h) => shardOf(h, 3)));
    expect(shards.size).toBe(3);
    operations.length = 0;

    await publisher.publish(hostIds.map((h, i) => state(h, i + 1)));

    for (const [index, hostId] of hostIds.entries()) {
      const received = await bodies(urls[index]?.queueUrl as string);
      expect(received, hostId).toHaveLength(1);
      expect(checkEnvelope(received[0], signer.publicKeyPem, hostId).ok).toBe(true);
    }
    const perShard = [0, 1, 2].map((s) => hostIds.filter((h) => shardOf(h, 3) === s).length);
    const expectedBatches = perShard.reduce((sum, n) => sum + Math.ceil(n / 10), 0);
    expect(operations.filter((op) => op === 'SNS:PublishBatch')).toHaveLength(expectedBatches);

    await publisher.broadcast({ group: 'g1', role: 'media' }, { kind: 'notify', service: 'lb' }, 'b-4');
    for (const url of urls) expect(await drain(url.queueUrl)).toHaveLength(1);
  });

  it('moves an inbox to its new shard when the shard count changes, leaving no subscription behind', async () => {
    const single = await publisherOn('reshard', 1);
    const { queueUrl } = await single.ensureInbox({ hostId: 'r7', group: 'g1', roles: ['media'] });
    const quadruple = await publisherOn('reshard', 4);
    await quadruple.ensureInbox({ hostId: 'r7', group: 'g1', roles: ['media'] });

    await quadruple.broadcast({ group: 'g1', role: 'media' }, { kind: 'notify', service: 'lb' }, 'b-5');
    await single.broadcast({ group: 'g1', role: 'media' }, { kind: 'notify', service: 'lb' }, 'b-6');

    // The broadcast on the four new shards reaches it once; the one on the old single topic not at all.
    expect(await drain(queueUrl)).toHaveLength(1);
    const old = await sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: single.topicArnFor('r7') }));
    expect(old.Subscriptions ?? []).toHaveLength(0);
  });

  it('removes an inbox: no subscription, no queues, and removing again is fine', async () => {
    const publisher = await publisherOn('remove', 1);
    await publisher.ensureInbox({ hostId: 'x1', group: 'g1', roles: ['media'] });
    const kept = await publisher.ensureInbox({ hostId: 'x2', group: 'g1', roles: ['media'] });

    await publisher.removeInbox('x1');
    await publisher.removeInbox('x1');

    expect(await queueExists(inboxQueueName('x1'))).toBe(false);
    expect(await queueExists(inboxDlqName('x1'))).toBe(false);
    const subscriptions = await sns.send(
      new ListSubscriptionsByTopicCommand({ TopicArn: publisher.topicArnFor('x1') }),
    );
    expect(subscriptions.Subscriptions).toHaveLength(1);
    await publisher.publish([state('x2', 1)]);
    expect(await drain(kept.queueUrl)).toHaveLength(1);
  });

  it('fails naming the hosts whose states SNS refused twice, after delivering the others', async () => {
    // An inline limit above SNS's 256 KiB makes SNS itself refuse the entry, in both attempts.
    const publisher = await publisherOn('refused', 1, { maxInlineBytes: 10_000_000 });
    const good = await publisher.ensureInbox({ hostId: 'y1', group: 'g1', roles: ['media'] });
    await publisher.ensureInbox({ hostId: 'y2', group: 'g1', roles: ['media'] });
    const oversized = state('y2', 3, { config: { blob: 'z'.repeat(300_000) } });

    const failure = await publisher.publish([state('y1', 3), oversized]).catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(StatePublishError);
    expect((failure as StatePublishError).hostIds).toEqual(['y2']);
    expect((failure as Error).message).toContain('y2');
    expect(await drain(good.queueUrl)).toHaveLength(1);
  });
});
