import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  DeleteMessageBatchCommand,
  GetQueueUrlCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AgentLogger } from '../agent/agent.ts';
import { AppliedStateStore } from '../agent/applied-state.ts';
import { ConfigError, loadConfig } from '../agent/config.ts';
import { StateInbox, type StateInboxOptions } from '../agent/inbox.ts';
import { LocalStateSigner } from '../shared/adapters/local-state-signer.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import type { StateEnvelope } from '../shared/groups/ports.ts';
import { sha256Hex, signEnvelope } from '../shared/state-envelope.ts';

const QUEUE_URL = 'http://127.0.0.1:4566/000000000000/fleetfold-inbox-h1';
const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const sqs = new SQSClient({ region: 'us-east-1', credentials });
const s3 = new S3Client({ region: 'us-east-1', credentials });
const sqsMock = mockClient(sqs);
const s3Mock = mockClient(s3);

let keysDir: string;
let signer: LocalStateSigner;
let intruder: LocalStateSigner;
beforeAll(async () => {
  keysDir = await mkdtemp(join(tmpdir(), 'fleetfold-inbox-keys-'));
  signer = await LocalStateSigner.fromKeyFile(join(keysDir, 'control.pem'));
  intruder = await LocalStateSigner.fromKeyFile(join(keysDir, 'intruder.pem'));
});
afterAll(async () => {
  await rm(keysDir, { recursive: true, force: true });
});

let stateDir: string;
beforeEach(async () => {
  sqsMock.reset();
  s3Mock.reset();
  sqsMock.on(DeleteMessageBatchCommand).resolves({ Successful: [], Failed: [] });
  stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-inbox-'));
});
afterEach(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

function desired(stateVersion: number, hostId = 'h1'): DesiredHostState {
  return {
    hostId,
    group: 'edge',
    hostType: 'router',
    stateVersion,
    services: { api: { version: `1.${stateVersion}.0` } },
    config: { 'sip.port': '5060' },
    mode: 'running',
  };
}

let nextId = 0;
function message(body: unknown): Message {
  nextId += 1;
  return {
    MessageId: `m${nextId}`,
    ReceiptHandle: `rh-${nextId}`,
    Body: typeof body === 'string' ? body : JSON.stringify(body),
  };
}

async function signed(stateVersion: number, by: LocalStateSigner = signer, hostId = 'h1') {
  return message(await signEnvelope(by, { state: desired(stateVersion, hostId) }, new Date()));
}

function deletedHandles(): string[] {
  return sqsMock
    .commandCalls(DeleteMessageBatchCommand)
    .flatMap((call) => (call.args[0].input.Entries ?? []).map((entry) => String(entry.ReceiptHandle)));
}

function silentLogger() {
  const warn: Record<string, unknown>[] = [];
  const logger: AgentLogger = { info: () => {}, warn: (record) => warn.push(record) };
  return { logger, warn };
}

function inbox(overrides: Partial<StateInboxOptions> = {}) {
  const applied: DesiredHostState[] = [];
  const reported: number[] = [];
  const store = new AppliedStateStore({ stateDir, hostId: 'h1' });
  const { logger, warn } = silentLogger();
  const box = new StateInbox({
    hostId: 'h1',
    sqs,
    s3,
    queue: { url: QUEUE_URL },
    publicKey: signer.publicKeyPem,
    applied: store,
    apply: async (state) => {
      applied.push(state);
    },
    onApplied: (state) => reported.push(state.stateVersion),
    logger,
    ...overrides,
  });
  return { box, applied, reported, store, warn };
}

/** The one method of an S3 body stream the inbox uses. */
function objectBody(text: string) {
  return { transformToString: async () => text } as never;
}

describe('StateInbox', () => {
  it('applies a signed state, records its version, deletes the message and reports the change', async () => {
    const { box, applied, reported, store } = inbox();
    const msg = await signed(3);
    const outcome = await box.handle([msg]);
    expect(outcome).toEqual({ applied: 3, ignored: [], kept: [] });
    expect(applied).toEqual([desired(3)]);
    expect(reported).toEqual([3]);
    expect(deletedHandles()).toEqual([msg.ReceiptHandle]);
    expect(await store.lastVersion()).toBe(3);
    const file = JSON.parse(await readFile(join(stateDir, 'applied-state-h1.json'), 'utf8'));
    expect(file).toMatchObject({ hostId: 'h1', stateVersion: 3, state: desired(3) });
  });

  it('applies only the highest version of a batch and deletes the others as superseded', async () => {
    const { box, applied } = inbox();
    const batch = [await signed(2), await signed(5), await signed(4), await signed(5)];
    const outcome = await box.handle(batch);
    expect(outcome.applied).toBe(5);
    expect(applied.map((state) => state.stateVersion)).toEqual([5]);
    expect(outcome.ignored.map((ignored) => [ignored.stateVersion, ignored.reason])).toEqual([
      [5, 'superseded'],
      [4, 'superseded'],
      [2, 'superseded'],
    ]);
    expect(deletedHandles().sort()).toEqual(batch.map((m) => m.ReceiptHandle).sort());
  });

  it('ignores and deletes a state not above the applied one, also after a restart', async () => {
    await inbox().box.handle([await signed(7)]);
    sqsMock.resetHistory();
    const { box, applied, reported } = inbox();
    const late = [await signed(7), await signed(6)];
    const outcome = await box.handle(late);
    expect(outcome.applied).toBeUndefined();
    expect(outcome.ignored.map((ignored) => ignored.reason)).toEqual(['stale', 'stale']);
    expect(applied).toEqual([]);
    expect(reported).toEqual([]);
    expect(deletedHandles().sort()).toEqual(late.map((m) => m.ReceiptHandle).sort());
  });

  it('rejects without acting a message signed with another key, for another host, or not an envelope', async () => {
    const { box, applied, warn } = inbox();
    const forged = await signed(9, intruder);
    const foreign = await signed(9, signer, 'h2');
    const garbage = message('{not json');
    const notEnvelope = message({ hello: 'world' });
    const tampered = JSON.parse(String((await signed(9)).Body)) as StateEnvelope;
    const retargeted = message({ ...tampered, state: { ...tampered.state, mode: 'stopped' } });
    const outcome = await box.handle([forged, foreign, garbage, notEnvelope, retargeted]);
    expect(outcome.applied).toBeUndefined();
    expect(applied).toEqual([]);
    expect(outcome.ignored.map((ignored) => ignored.reason)).toEqual([
      'bad-signature',
      'not-for-me',
      'malformed',
      'malformed',
      'bad-signature',
    ]);
    expect(deletedHandles()).toHaveLength(5);
    expect(warn.filter((record) => record.msg === 'desired state ignored')).toHaveLength(5);
  });

  it('rejects a correctly signed state the agent cannot understand', async () => {
    const { box, applied } = inbox();
    const broken = { ...desired(4), mode: 'sideways' } as unknown as DesiredHostState;
    const msg = message(await signEnvelope(signer, { state: broken }, new Date()));
    const outcome = await box.handle([msg]);
    expect(outcome.ignored).toMatchObject([{ reason: 'malformed', stateVersion: 4 }]);
    expect(applied).toEqual([]);
    expect(deletedHandles()).toEqual([msg.ReceiptHandle]);
  });

  it('fetches a referenced state from S3 and applies it when its sha256 matches', async () => {
    const text = JSON.stringify(desired(11));
    s3Mock
      .on(GetObjectCommand, { Bucket: 'states-bucket', Key: 'states/h1/11.json' })
      .callsFake(() => ({ Body: objectBody(text) }));
    const { box, applied } = inbox();
    const ref = { bucket: 'states-bucket', key: 'states/h1/11.json', sha256: sha256Hex(text) };
    const msg = message(await signEnvelope(signer, { ref, hostId: 'h1', stateVersion: 11 }, new Date()));
    const outcome = await box.handle([msg]);
    expect(outcome.applied).toBe(11);
    expect(applied).toEqual([desired(11)]);
    expect(deletedHandles()).toEqual([msg.ReceiptHandle]);
  });

  it('rejects a referenced state whose object does not match its signed sha256', async () => {
    const signedText = JSON.stringify(desired(12));
    const swapped = JSON.stringify({ ...desired(12), mode: 'stopped' });
    s3Mock.on(GetObjectCommand).callsFake(() => ({ Body: objectBody(swapped) }));
    const { box, applied } = inbox();
    const ref = { bucket: 'b', key: 'states/h1/12.json', sha256: sha256Hex(signedText) };
    const msg = message(await signEnvelope(signer, { ref, hostId: 'h1', stateVersion: 12 }, new Date()));
    const outcome = await box.handle([msg]);
    expect(outcome.ignored).toMatchObject([{ reason: 'digest-mismatch', stateVersion: 12 }]);
    expect(applied).toEqual([]);
    expect(deletedHandles()).toEqual([msg.ReceiptHandle]);
  });

  it('rejects a referenced state naming another version than its envelope', async () => {
    const text = JSON.stringify(desired(99));
    s3Mock.on(GetObjectCommand).callsFake(() => ({ Body: objectBody(text) }));
    const { box, applied } = inbox();
    const ref = { bucket: 'b', key: 'states/h1/13.json', sha256: sha256Hex(text) };
    const msg = message(await signEnvelope(signer, { ref, hostId: 'h1', stateVersion: 13 }, new Date()));
    expect((await box.handle([msg])).ignored).toMatchObject([{ reason: 'inconsistent' }]);
    expect(applied).toEqual([]);
  });

  it('keeps a message whose referenced state cannot be fetched now, and applies the next lower one', async () => {
    s3Mock.on(GetObjectCommand).rejects(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }));
    const { box, applied } = inbox();
    const ref = { bucket: 'b', key: 'states/h1/20.json', sha256: 'ab'.repeat(32) };
    const referenced = message(
      await signEnvelope(signer, { ref, hostId: 'h1', stateVersion: 20 }, new Date()),
    );
    const inline = await signed(19);
    const outcome = await box.handle([referenced, inline]);
    expect(outcome.applied).toBe(19);
    expect(outcome.kept).toMatchObject([{ messageId: referenced.MessageId, stateVersion: 20 }]);
    expect(applied.map((state) => state.stateVersion)).toEqual([19]);
    expect(deletedHandles()).toEqual([inline.ReceiptHandle]);
  });

  it('fails safe when applying fails: the message stays and the version is not recorded', async () => {
    const { box, store, reported } = inbox({
      apply: async () => {
        throw new Error('disk full');
      },
    });
    const msg = await signed(5);
    const outcome = await box.handle([msg]);
    expect(outcome.applied).toBeUndefined();
    expect(outcome.kept).toMatchObject([{ stateVersion: 5, detail: 'apply failed: disk full' }]);
    expect(deletedHandles()).toEqual([]);
    expect(reported).toEqual([]);
    expect(await store.lastVersion()).toBe(0);
  });

  it('long-polls the queue it resolved by name, and stops promptly', async () => {
    sqsMock.on(GetQueueUrlCommand, { QueueName: 'fleetfold-inbox-h1' }).resolves({ QueueUrl: QUEUE_URL });
    const first = await signed(1);
    sqsMock
      .on(ReceiveMessageCommand)
      .resolvesOnce({ Messages: [first] })
      .callsFake(() => new Promise((resolve) => setTimeout(() => resolve({}), 5)));
    const { box, applied } = inbox({ queue: { name: 'fleetfold-inbox-h1' } });
    box.start();
    await vitestEventually(() => applied.length === 1);
    await box.stop();
    const receive = sqsMock.commandCalls(ReceiveMessageCommand)[0]?.args[0].input;
    expect(receive).toEqual({ QueueUrl: QUEUE_URL, MaxNumberOfMessages: 10, WaitTimeSeconds: 20 });
    expect(sqsMock.commandCalls(GetQueueUrlCommand)).toHaveLength(1);
    expect(deletedHandles()).toEqual([first.ReceiptHandle]);
  });

  it('backs off after a failed receive and then carries on', async () => {
    const later = await signed(2);
    sqsMock
      .on(ReceiveMessageCommand)
      .rejectsOnce(new Error('connection refused'))
      .rejectsOnce(new Error('connection refused'))
      .resolvesOnce({ Messages: [later] })
      .callsFake(() => new Promise((resolve) => setTimeout(() => resolve({}), 5)));
    const delays: number[] = [];
    const { box, applied, warn } = inbox({
      retry: { baseDelayMs: 100, maxDelayMs: 150, sleep: async (ms) => void delays.push(ms) },
    });
    box.start();
    await vitestEventually(() => applied.length === 1);
    await box.stop();
    expect(delays).toEqual([100, 150]);
    expect(warn.filter((record) => record.msg === 'inbox receive failed')).toHaveLength(2);
  });

  it('treats a torn or foreign applied-state file as nothing applied', async () => {
    const { writeFile } = await import('node:fs/promises');
    const file = join(stateDir, 'applied-state-h1.json');
    await writeFile(file, '{"hostId":"h1","stateVer');
    expect(await new AppliedStateStore({ stateDir, hostId: 'h1' }).lastVersion()).toBe(0);
    await writeFile(file, JSON.stringify({ hostId: 'h2', stateVersion: 9, state: desired(9, 'h2') }));
    expect(await new AppliedStateStore({ stateDir, hostId: 'h1' }).load()).toBeUndefined();
    await writeFile(file, JSON.stringify({ hostId: 'h1', stateVersion: 9, state: desired(9) }));
    expect(await new AppliedStateStore({ stateDir, hostId: 'h1' }).load()).toEqual(desired(9));
  });

  it('whatever the order and repetition of deliveries, versions applied only rise and end at the highest', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 10 }), {
          minLength: 1,
          maxLength: 6,
        }),
        async (batches) => {
          sqsMock.resetHistory();
          await rm(stateDir, { recursive: true, force: true });
          const { box, applied } = inbox();
          const sent: string[] = [];
          for (const versions of batches) {
            const messages = await Promise.all(versions.map((version) => signed(version)));
            sent.push(...messages.map((m) => String(m.ReceiptHandle)));
            await box.handle(messages);
          }
          const versions = applied.map((state) => state.stateVersion);
          for (let i = 1; i < versions.length; i += 1)
            expect(versions[i]).toBeGreaterThan(versions[i - 1] ?? 0);
          expect(versions.at(-1)).toBe(Math.max(...batches.flat()));
          expect(applied.length).toBeLessThanOrEqual(batches.length);
          expect(deletedHandles().sort()).toEqual(sent.sort());
        },
      ),
      { numRuns: 25 },
    );
  });
});

async function vitestEventually(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('loadConfig: the inbox', () => {
  const LOCAL = {
    FLEETFOLD_MODE: 'local',
    FLEETFOLD_HOST_ID: 'h1',
    FLEETFOLD_SECRET: 's3cret',
    FLEETFOLD_BUCKET: 'fleetfold-snapshots',
    FLEETFOLD_HOST_TYPE: 'router',
    FLEETFOLD_GROUP: 'edge',
    FLEETFOLD_ROLES: 'call-router',
    FLEETFOLD_S3_ENDPOINT: 'http://127.0.0.1:4566',
  };
  const EC2 = { ...LOCAL, FLEETFOLD_MODE: 'ec2', FLEETFOLD_S3_ENDPOINT: '' };
  const files = (pem: string) => (path: string) => {
    if (path === '/keys/control.pem.pub') return pem;
    throw new Error('ENOENT');
  };

  it('has no inbox when none is configured', () => {
    expect(loadConfig(LOCAL, files('')).inbox).toBeUndefined();
  });

  it('reads the queue URL and the control plane key file in local mode', () => {
    const config = loadConfig(
      {
        ...LOCAL,
        FLEETFOLD_INBOX_QUEUE_URL: QUEUE_URL,
        FLEETFOLD_CONTROL_PUBLIC_KEY_FILE: '/keys/control.pem.pub',
      },
      files(signer.publicKeyPem),
    );
    expect(config.inbox).toEqual({
      queue: { url: QUEUE_URL },
      publicKeyPem: signer.publicKeyPem,
      idleSeconds: 0,
    });
  });

  it('accepts a queue name and an inline key (newlines escaped) on EC2, and the apply command', () => {
    const config = loadConfig(
      {
        ...EC2,
        FLEETFOLD_INBOX_QUEUE: 'fleetfold-inbox-h1',
        FLEETFOLD_CONTROL_PUBLIC_KEY: signer.publicKeyPem.replaceAll('\n', '\\n'),
        FLEETFOLD_APPLY_COMMAND: 'systemctl restart fleetfold-$FLEETFOLD_SERVICE',
      },
      files(''),
    );
    expect(config.inbox?.queue).toEqual({ name: 'fleetfold-inbox-h1' });
    expect(config.inbox?.publicKeyPem.trim()).toBe(signer.publicKeyPem.trim());
    expect(config.applyCommand).toBe('systemctl restart fleetfold-$FLEETFOLD_SERVICE');
  });

  it('rejects a queue without a key, a key without a queue, a queue name in local mode and a bad key', () => {
    const key = { FLEETFOLD_CONTROL_PUBLIC_KEY_FILE: '/keys/control.pem.pub' };
    const pem = files(signer.publicKeyPem);
    expect(() => loadConfig({ ...LOCAL, FLEETFOLD_INBOX_QUEUE_URL: QUEUE_URL }, pem)).toThrow(
      /FLEETFOLD_CONTROL_PUBLIC_KEY_FILE/,
    );
    expect(() => loadConfig({ ...LOCAL, ...key }, pem)).toThrow(/FLEETFOLD_INBOX_QUEUE_URL is not set/);
    expect(() => loadConfig({ ...LOCAL, ...key, FLEETFOLD_INBOX_QUEUE: 'q' }, pem)).toThrow(/full queue URL/);
    expect(() =>
      loadConfig({ ...LOCAL, ...key, FLEETFOLD_INBOX_QUEUE_URL: QUEUE_URL }, files('junk')),
    ).toThrow(ConfigError);
    expect(() =>
      loadConfig(
        { ...LOCAL, FLEETFOLD_INBOX_QUEUE_URL: QUEUE_URL, FLEETFOLD_CONTROL_PUBLIC_KEY_FILE: '/missing' },
        pem,
      ),
    ).toThrow(/cannot be read/);
  });
});
