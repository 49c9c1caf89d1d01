import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import {
  DeleteMessageBatchCommand,
  GetQueueUrlCommand,
  ListQueueTagsCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AgentConfig, InboxConfig } from '../agent/config.ts';
import { createSqsClient } from '../agent/sqs-client.ts';
import {
  type Emulators,
  LOCAL_ACCOUNT_ID,
  localClientConfig,
  startEmulators,
} from '../infra/local/emulators.ts';
import { ensureStateTopics } from '../infra/local/inboxes.ts';
import { type LocalCredentials, type SqsGuard, startSqsGuard } from '../infra/local/sqs-guard.ts';
import { LocalStateSigner } from '../shared/adapters/local-state-signer.ts';
import { SnsStatePublisher } from '../shared/adapters/sns-state-publisher.ts';
import { COST_ALLOCATION_TAGS } from '../shared/cost/tags.ts';
import { inboxDlqName, inboxQueueName } from '../shared/groups/fanout.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';

/*
 * Local mode's stand-in for the host role's IAM: agents' SQS requests go through the guard, which verifies
 * each request's signature with its instance's own key and evaluates the CDK statement. The agent side is
 * the real agent client (agent/sqs-client.ts) with its credentials in the environment, as the local fleet
 * gives them.
 */
let stateDir: string;
let emulators: Emulators;
let sqs: SQSClient;
let sns: SNSClient;
let s3: S3Client;
let guard: SqsGuard;
let publisher: SnsStatePublisher;
const region = 'us-east-1';
const instanceArnPrefix = `arn:aws:ec2:${region}:${LOCAL_ACCOUNT_ID}:instance/`;
const clients: SQSClient[] = [];

const guarded = (hostId: string) => `${guard.endpoint}/${LOCAL_ACCOUNT_ID}/${inboxQueueName(hostId)}`;

function state(
  hostId: string,
  stateVersion: number,
  extra: Partial<DesiredHostState> = {},
): DesiredHostState {
  return {
    hostId,
    group: 'g1',
    hostType: 'media',
    stateVersion,
    services: { media: { version: '1.0.0' } },
    config: {},
    mode: 'running',
    ...extra,
  };
}

/** The agent's own SQS client, built as agent/main.ts builds it, with `credentials` in its environment. */
async function agentClient(hostId: string, credentials: LocalCredentials): Promise<SQSClient> {
  vi.stubEnv('AWS_ACCESS_KEY_ID', credentials.accessKeyId);
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', credentials.secretAccessKey);
  const inbox: InboxConfig = { queue: { url: guarded(hostId) }, publicKeyPem: '' };
  const client = createSqsClient({ mode: 'local' } as AgentConfig, inbox, region);
  // Resolved (and kept by the client) now, before another identity's environment replaces this one.
  await client.config.credentials();
  vi.unstubAllEnvs();
  clients.push(client);
  return client;
}

async function adminReceive(hostId: string) {
  const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: inboxQueueName(hostId) }));
  return (
    (await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 0 })))
      .Messages ?? []
  );
}

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-sqs-guard-'));
  emulators = await startEmulators({ stateDir, region });
  const config = localClientConfig(emulators.awsEndpoint, region);
  sqs = new SQSClient(config);
  sns = new SNSClient(config);
  s3 = new S3Client({ ...config, forcePathStyle: true });
  const signer = await LocalStateSigner.fromKeyFile(join(stateDir, 'state-signing.pem'));
  publisher = new SnsStatePublisher({
    sns,
    sqs,
    s3,
    bucket: emulators.bucket,
    signer,
    topicArns: await ensureStateTopics(sns),
    instanceArnPrefix,
    maxInlineBytes: 2_000,
  });
  for (const hostId of ['a', 'b']) {
    await publisher.ensureInbox({ hostId, group: 'g1', roles: ['media'] });
    await publisher.bindInbox(hostId, { instanceId: `local-${hostId}-1` });
  }
  guard = await startSqsGuard({
    upstream: emulators.awsEndpoint,
    sqs,
    region,
    accountId: LOCAL_ACCOUNT_ID,
    instanceArnPrefix,
  });
});

afterAll(async () => {
  for (const client of [...clients, sqs, sns, s3]) client?.destroy();
  await guard?.stop();
  await emulators?.stop();
  await rm(stateDir, { recursive: true, force: true });
});

describe('the local SQS guard', () => {
  it("lets an instance receive and delete its own host's states", async () => {
    await publisher.publish([state('a', 1)]);
    const a = await agentClient('a', guard.credentialsFor('local-a-1'));
    const received = await a.send(
      new ReceiveMessageCommand({ QueueUrl: guarded('a'), MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    expect(received.Messages?.map((m) => JSON.parse(m.Body ?? '{}').hostId)).toEqual(['a']);
    const deleted = await a.send(
      new DeleteMessageBatchCommand({
        QueueUrl: guarded('a'),
        Entries: (received.Messages ?? []).map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
      }),
    );
    expect(deleted.Failed ?? []).toEqual([]);
    expect(await adminReceive('a')).toEqual([]);
  });

  it("refuses an instance another host's inbox: receive, delete and lookup, leaving its messages", async () => {
    await publisher.publish([state('b', 1)]);
    const a = await agentClient('a', guard.credentialsFor('local-a-1'));
    await expect(
      a.send(new ReceiveMessageCommand({ QueueUrl: guarded('b'), WaitTimeSeconds: 0 })),
    ).rejects.toMatchObject({ name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
    const [waiting] = await adminReceive('b');
    await expect(
      a.send(
        new DeleteMessageBatchCommand({
          QueueUrl: guarded('b'),
          Entries: [{ Id: '0', ReceiptHandle: waiting?.ReceiptHandle }],
        }),
      ),
    ).rejects.toMatchObject({ name: 'AccessDenied' });
    await expect(a.send(new GetQueueUrlCommand({ QueueName: inboxQueueName('b') }))).rejects.toMatchObject({
      name: 'AccessDenied',
    });
    expect((await adminReceive('b')).map((m) => JSON.parse(m.Body ?? '{}').hostId)).toEqual(['b']);
  });

  it('refuses the instance an inbox was bound to before, once it is bound to a new one', async () => {
    const before = await agentClient('a', guard.credentialsFor('local-a-1'));
    await before.send(new ReceiveMessageCommand({ QueueUrl: guarded('a'), WaitTimeSeconds: 0 }));
    await publisher.bindInbox('a', { instanceId: 'local-a-2' });
    try {
      await expect(
        before.send(new ReceiveMessageCommand({ QueueUrl: guarded('a'), WaitTimeSeconds: 0 })),
      ).rejects.toMatchObject({ name: 'AccessDenied' });
      const after = await agentClient('a', guard.credentialsFor('local-a-2'));
      await after.send(new ReceiveMessageCommand({ QueueUrl: guarded('a'), WaitTimeSeconds: 0 }));
    } finally {
      await publisher.bindInbox('a', { instanceId: 'local-a-1' });
    }
  });

  it("refuses a caller claiming another instance's access key without its secret", async () => {
    const forged = await agentClient('b', { accessKeyId: 'local-b-1', secretAccessKey: 'guessed' });
    await expect(
      forged.send(new ReceiveMessageCommand({ QueueUrl: guarded('b'), WaitTimeSeconds: 0 })),
    ).rejects.toMatchObject({ name: 'SignatureDoesNotMatch', $metadata: { httpStatusCode: 403 } });
  });

  it('refuses what the host role may not do at all, even on its own queue', async () => {
    const a = await agentClient('a', guard.credentialsFor('local-a-1'));
    const { PurgeQueueCommand } = await import('@aws-sdk/client-sqs');
    await expect(a.send(new PurgeQueueCommand({ QueueUrl: guarded('a') }))).rejects.toMatchObject({
      name: 'AccessDenied',
    });
  });
});

describe('inbox and large-state tags', () => {
  it('tags inboxes and their DLQs with the cost allocation tag, the inbox with its instance', async () => {
    for (const name of [inboxQueueName('b'), inboxDlqName('b')]) {
      const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
      const { Tags } = await sqs.send(new ListQueueTagsCommand({ QueueUrl }));
      expect(Tags).toMatchObject(COST_ALLOCATION_TAGS);
      if (name === inboxQueueName('b')) {
        expect(Tags?.['fleetfold:instance-arn']).toBe(`${instanceArnPrefix}local-b-1`);
      }
    }
  });

  it('tags a state too large for a message with the instance its inbox is bound to', async () => {
    // fauxqs stores no object tags, so the tags are read off the PUT the publisher sends.
    const tagging: string[] = [];
    s3.middlewareStack.add(
      (next) => async (args) => {
        const headers = (args.request as { headers?: Record<string, string> }).headers ?? {};
        if (headers['x-amz-tagging']) tagging.push(headers['x-amz-tagging']);
        return next(args);
      },
      { step: 'finalizeRequest', name: 'recordTagging' },
    );
    try {
      await publisher.publish([state('b', 7, { config: { blob: 'x'.repeat(5_000) } })]);
    } finally {
      s3.middlewareStack.remove('recordTagging');
    }
    expect(tagging.map((t) => Object.fromEntries(new URLSearchParams(t)))).toEqual([
      {
        'fleetfold:instance-arn': `${instanceArnPrefix}local-b-1`,
        ...COST_ALLOCATION_TAGS,
      },
    ]);
  });
});
