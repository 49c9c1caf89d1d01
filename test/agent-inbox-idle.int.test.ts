import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppliedStateStore } from '../agent/applied-state.ts';
import { ConfigError, DEFAULT_INBOX_IDLE_SECONDS, parseInboxIdleSeconds } from '../agent/config.ts';
import { StateInbox } from '../agent/inbox.ts';
import { RequestCounter } from '../bench/request-counter.ts';
import { type Emulators, localClientConfig, startEmulators } from '../infra/local/emulators.ts';
import { LocalStateSigner } from '../shared/adapters/local-state-signer.ts';
import { DEFAULT_INBOX_IDLE_SECONDS as MODEL_DEFAULT } from '../shared/cost/model.ts';
import { signEnvelope } from '../shared/state-envelope.ts';

describe('FLEETFOLD_INBOX_IDLE_SECONDS', () => {
  it('takes any number of seconds from 0 to 900', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 900, noNaN: true }),
        fc.constantFrom('ec2', 'local'),
        (n, mode) => {
          expect(parseInboxIdleSeconds(String(n), mode as 'ec2' | 'local')).toBe(n);
        },
      ),
    );
  });

  it('refuses anything else, naming the variable', () => {
    const nonsense = fc.oneof(
      fc.double({ max: -Number.MIN_VALUE, noNaN: true }),
      fc.double({ min: 900.001, noNaN: true }),
      fc.string().filter((text) => text.trim() !== '' && !Number.isFinite(Number(text))),
    );
    fc.assert(
      fc.property(nonsense, (value) => {
        expect(() => parseInboxIdleSeconds(String(value), 'ec2')).toThrow(ConfigError);
        expect(() => parseInboxIdleSeconds(String(value), 'ec2')).toThrow(/FLEETFOLD_INBOX_IDLE_SECONDS/);
      }),
    );
  });

  it('defaults to the cost model’s cadence on EC2 and to none locally', () => {
    expect(parseInboxIdleSeconds(undefined, 'ec2')).toBe(MODEL_DEFAULT);
    expect(DEFAULT_INBOX_IDLE_SECONDS.ec2).toBe(MODEL_DEFAULT);
    expect(parseInboxIdleSeconds(undefined, 'local')).toBe(0);
  });
});

describe('the inbox loop with an idle pause, on fauxqs', () => {
  let stateDir: string;
  let emulators: Emulators;
  let sqs: SQSClient;
  let s3: S3Client;
  let signer: LocalStateSigner;

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-idle-'));
    emulators = await startEmulators({ stateDir });
    const config = localClientConfig(emulators.awsEndpoint, emulators.region);
    sqs = new SQSClient(config);
    s3 = new S3Client({ ...config, forcePathStyle: true });
    signer = await LocalStateSigner.fromKeyFile(join(stateDir, 'state-signing.pem'));
  });

  afterAll(async () => {
    for (const client of [sqs, s3]) client?.destroy();
    await emulators?.stop();
    await rm(stateDir, { recursive: true, force: true });
  });

  async function loop(hostId: string, idleSeconds: number) {
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `idle-${hostId}` }));
    const queueUrl = QueueUrl as string;
    const client = new SQSClient(localClientConfig(emulators.awsEndpoint, emulators.region));
    const counter = new RequestCounter();
    counter.attach(client, 'SQS');
    const applied: { version: number; at: number }[] = [];
    const inbox = new StateInbox({
      hostId,
      sqs: client,
      s3,
      queue: { url: queueUrl },
      publicKey: signer.publicKeyPem,
      applied: new AppliedStateStore({ stateDir, hostId }),
      apply: async (state) => void applied.push({ version: state.stateVersion, at: Date.now() }),
      // An empty receive returns at once: the pause alone sets the cadence.
      waitTimeSeconds: 0,
      idleSeconds,
      logger: { info: () => {}, warn: () => {} },
    });
    const send = async (stateVersion: number) => {
      const state = {
        hostId,
        group: 'g',
        hostType: 'media',
        stateVersion,
        services: {},
        config: {},
        mode: 'running' as const,
      };
      const envelope = await signEnvelope(signer, { state }, new Date());
      await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(envelope) }));
    };
    return { inbox, counter, applied, send, client };
  }

  it('receives once per pause when idle, and a state sent meanwhile is applied when the pause ends', async () => {
    const idle = await loop('h-idle', 0.5);
    idle.inbox.start();
    await sleep(1_600);
    const receives = idle.counter.get('SQS:ReceiveMessage');
    // 0 s, 0.5 s, 1 s, 1.5 s: four receives; back to back it would be hundreds.
    expect(receives).toBeGreaterThanOrEqual(3);
    expect(receives).toBeLessThanOrEqual(5);

    const sentAt = Date.now();
    await idle.send(1);
    await waitFor(() => idle.applied.length === 1);
    // Applied by the first receive after the pause it arrived in: never later than one pause (and a little).
    expect((idle.applied[0]?.at ?? 0) - sentAt).toBeLessThan(500 + 400);
    await idle.inbox.stop();
    idle.client.destroy();
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('timed out');
    await sleep(20);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
