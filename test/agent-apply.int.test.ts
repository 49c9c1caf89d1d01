import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentLogger } from '../agent/agent.ts';
import { AppliedStateStore } from '../agent/applied-state.ts';
import { LocalApplier } from '../agent/apply/local-applier.ts';
import { liveServiceProcesses } from '../agent/apply/service-runner.ts';
import { StateInbox } from '../agent/inbox.ts';
import { UPSTREAM_HEADER } from '../agent/lb-proxy.ts';
import { HostRuntime } from '../agent/runtime.ts';
import { type Emulators, localClientConfig, startEmulators } from '../infra/local/emulators.ts';
import { LocalStateSigner } from '../shared/adapters/local-state-signer.ts';
import type { DesiredHostState, ServiceSpec } from '../shared/groups/model.ts';
import type { Snapshot } from '../shared/schemas.ts';
import { sha256Hex, signEnvelope } from '../shared/state-envelope.ts';

/*
 * The agent's receiving half against the embedded cloud: a real SQS queue (fauxqs), states signed with the
 * local control-plane key, real service processes and a real proxy. One host's life, test after test.
 */

const HOST = 'h1';
const QUEUE = `fleetfold-inbox-${HOST}`;

let dir: string;
let emulators: Emulators;
let sqs: SQSClient;
let s3: S3Client;
let queueUrl: string;
let signer: LocalStateSigner;
let intruder: LocalStateSigner;
let runtime: HostRuntime;
let applier: LocalApplier;
let inbox: StateInbox;
let looping: StateInbox;
const warnings: Record<string, unknown>[] = [];
const logger: AgentLogger = { info: () => {}, warn: (record) => warnings.push(record) };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetfold-agent-int-'));
  emulators = await startEmulators({ stateDir: join(dir, 'cloud') });
  emulators.fauxqs.createQueue(QUEUE, { region: emulators.region });
  queueUrl = `${emulators.awsEndpoint}/000000000000/${QUEUE}`;
  sqs = new SQSClient(localClientConfig(emulators.awsEndpoint, emulators.region));
  s3 = new S3Client({ ...localClientConfig(emulators.awsEndpoint, emulators.region), forcePathStyle: true });
  signer = await LocalStateSigner.fromKeyFile(join(dir, 'control.pem'));
  intruder = await LocalStateSigner.fromKeyFile(join(dir, 'intruder.pem'));
  runtime = new HostRuntime();
  const stateDir = join(dir, 'agent');
  applier = new LocalApplier({ hostId: HOST, stateDir, runtime, logger });
  const applied = new AppliedStateStore({ stateDir, hostId: HOST });
  const inboxWaiting = (waitTimeSeconds: number) =>
    new StateInbox({
      hostId: HOST,
      sqs,
      s3,
      queue: { url: queueUrl },
      publicKey: signer.publicKeyPem,
      applied,
      apply: (state) => applier.apply(state),
      logger,
      waitTimeSeconds,
    });
  // Short polls for the tests that drain the queue by hand, a long poll for the loop.
  inbox = inboxWaiting(0);
  looping = inboxWaiting(1);
});

afterAll(async () => {
  await looping?.stop();
  await applier?.stop();
  expect(liveServiceProcesses()).toBe(0);
  sqs?.destroy();
  s3?.destroy();
  await emulators?.stop();
  await rm(dir, { recursive: true, force: true });
});

function desired(
  stateVersion: number,
  services: Record<string, ServiceSpec>,
  extra: Partial<DesiredHostState> = {},
): DesiredHostState {
  return {
    hostId: HOST,
    group: 'edge',
    hostType: 'router',
    stateVersion,
    services,
    config: {},
    mode: 'running',
    ...extra,
  };
}

async function send(state: DesiredHostState, by: LocalStateSigner = signer): Promise<void> {
  const envelope = await signEnvelope(by, { state }, new Date());
  await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(envelope) }));
}

/** Receives until the queue hands out nothing more. */
async function drain(): Promise<void> {
  for (;;) {
    const outcome = await inbox.receiveOnce();
    if (outcome.applied === undefined && outcome.ignored.length === 0 && outcome.kept.length === 0) return;
  }
}

async function queueIsEmpty(): Promise<boolean> {
  const { Attributes } = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Attributes?.ApproximateNumberOfMessages === '0' &&
    Attributes?.ApproximateNumberOfMessagesNotVisible === '0'
  );
}

async function ask(port: number | undefined): Promise<{ body: unknown; upstream: string | null }> {
  const response = await fetch(`http://127.0.0.1:${port}/`);
  return { body: await response.json(), upstream: response.headers.get(UPSTREAM_HEADER) };
}

describe('the agent applying signed states from its queue', () => {
  let firstPort: number | undefined;

  it('starts a service process answering with its version when a valid state arrives', async () => {
    await send(desired(1, { api: { version: '1.0.0' } }));
    await drain();
    const api = runtime.service('api');
    expect(api).toMatchObject({ version: '1.0.0', status: 'running' });
    expect((await ask(api?.port)).body).toEqual({ service: 'api', version: '1.0.0', hostId: HOST });
    expect(runtime.report().appliedStateVersion).toBe(1);
    expect(await queueIsEmpty()).toBe(true);
    firstPort = api?.port;
  });

  it('replaces the process when a later version arrives, on the port the old one had', async () => {
    await send(desired(2, { api: { version: '1.1.0' } }));
    await drain();
    const api = runtime.service('api');
    expect(api).toMatchObject({ version: '1.1.0', status: 'running', port: firstPort });
    expect((await ask(api?.port)).body).toEqual({ service: 'api', version: '1.1.0', hostId: HOST });
    expect(liveServiceProcesses()).toBe(1);
  });

  it('changes nothing for an older or a duplicate message, and deletes both', async () => {
    const before = runtime.report();
    await send(desired(1, { api: { version: '1.0.0' } }));
    await send(desired(2, { api: { version: '9.9.9' } }));
    await drain();
    expect(runtime.report()).toEqual(before);
    expect((await ask(before.services.api?.port)).body).toMatchObject({ version: '1.1.0' });
    expect(await queueIsEmpty()).toBe(true);
  });

  it('ignores and deletes a message signed with another key or addressed to another host', async () => {
    const before = runtime.report();
    warnings.length = 0;
    await send(desired(3, { api: { version: '6.6.6' } }), intruder);
    const foreign = await signEnvelope(signer, { state: { ...desired(3, {}), hostId: 'h2' } }, new Date());
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(foreign) }));
    await drain();
    expect(runtime.report()).toEqual(before);
    expect(await queueIsEmpty()).toBe(true);
    expect(warnings.map((record) => record.reason).sort()).toEqual(['bad-signature', 'not-for-me']);
  });

  it('fetches a state too large for a message from S3 and checks it against the signed digest', async () => {
    const state = desired(4, { api: { version: '1.1.0' } }, { config: { big: 'x'.repeat(1000) } });
    const text = JSON.stringify(state);
    await s3.send(
      new PutObjectCommand({ Bucket: emulators.bucket, Key: `states/${HOST}/4.json`, Body: text }),
    );
    const ref = { bucket: emulators.bucket, key: `states/${HOST}/4.json`, sha256: sha256Hex(text) };
    const envelope = await signEnvelope(signer, { ref, hostId: HOST, stateVersion: 4 }, new Date());
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(envelope) }));
    await drain();
    expect(runtime.report()).toMatchObject({ appliedStateVersion: 4, config: { big: 'x'.repeat(1000) } });
  });

  it('runs a load balancer that shows which member and which version answered', async () => {
    const apiPort = runtime.service('api')?.port;
    const member = `127.0.0.1:${apiPort}`;
    await send(
      desired(5, { api: { version: '1.1.0' }, lb: { version: '1.0.0' } }, { upstreams: { api: [member] } }),
    );
    await drain();
    const through = await ask(runtime.service('lb')?.port);
    expect(through.upstream).toBe(member);
    expect(through.body).toEqual({ service: 'api', version: '1.1.0', hostId: HOST });
    expect(runtime.service('api')?.port).toBe(apiPort);
  });

  it('receives a state published to the SNS topic, raw, through its host-id filter', async () => {
    const { topicArn } = emulators.fauxqs.createTopic('fleetfold-states', { region: emulators.region });
    emulators.fauxqs.subscribe({
      topic: 'fleetfold-states',
      queue: QUEUE,
      region: emulators.region,
      attributes: { RawMessageDelivery: 'true', FilterPolicy: JSON.stringify({ hostId: [HOST] }) },
    });
    expect(topicArn).toContain('fleetfold-states');
    const current = runtime.report();
    warnings.length = 0;
    const publish = async (state: DesiredHostState, hostId: string) =>
      emulators.fauxqs.publish(
        'fleetfold-states',
        JSON.stringify(await signEnvelope(signer, { state }, new Date())),
        {
          region: emulators.region,
          messageAttributes: { hostId: { DataType: 'String', StringValue: hostId } },
        },
      );
    const same = {
      services: { api: { version: '1.1.0' }, lb: { version: '1.0.0' } },
      upstreams: { api: [`127.0.0.1:${current.services.api?.port}`] },
    };
    await publish({ ...desired(7, {}, { hostId: 'h2' }), ...same }, 'h2');
    await publish({ ...desired(6, {}), ...same }, HOST);
    await drain();
    expect(runtime.report()).toEqual({ ...current, appliedStateVersion: 6 });
    // The state for h2 never reached this queue: the filter policy kept it out.
    expect(warnings).toEqual([]);
  });

  // Last: a long poll cut short by stop() may have taken a message the queue only hands out again later.
  it('long-polls in a loop and stops every service when told the host is stopped', async () => {
    const apiPort = runtime.service('api')?.port;
    const lbPort = runtime.service('lb')?.port;
    looping.start();
    try {
      await send(desired(8, { api: { version: '1.1.0' } }, { mode: 'stopped' }));
      await eventually(() => (runtime.mode === 'stopped' ? true : undefined));
    } finally {
      await looping.stop();
    }
    expect(runtime.report()).toMatchObject({
      mode: 'stopped',
      services: { api: { version: '1.1.0', status: 'stopped' } },
      appliedStateVersion: 8,
    });
    await expect(fetch(`http://127.0.0.1:${apiPort}/`)).rejects.toThrow();
    await expect(fetch(`http://127.0.0.1:${lbPort}/`)).rejects.toThrow();
    expect(liveServiceProcesses()).toBe(0);
  });
});

async function eventually<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const REPO = fileURLToPath(new URL('..', import.meta.url));

describe('the agent process (agent/main.ts) with an inbox', () => {
  const AGENT = 'h9';
  let agent: ChildProcess | undefined;
  const output: string[] = [];

  afterAll(() => {
    if (agent && agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
  });

  async function latestSnapshot(): Promise<Snapshot | undefined> {
    const listed = await s3.send(
      new ListObjectsV2Command({ Bucket: emulators.bucket, Prefix: `snapshots/${AGENT}/` }),
    );
    const keys = (listed.Contents ?? []).map((object) => String(object.Key));
    const seq = (key: string) => Number(key.split('/').at(-1)?.replace('.json', ''));
    const latest = keys.sort((a, b) => seq(a) - seq(b)).at(-1);
    if (!latest) return undefined;
    const object = await s3.send(new GetObjectCommand({ Bucket: emulators.bucket, Key: latest }));
    return JSON.parse((await object.Body?.transformToString()) ?? '') as Snapshot;
  }

  it('applies a state, reports it in its next snapshot, and takes its services down when it is killed', async () => {
    const queue = `fleetfold-inbox-${AGENT}`;
    emulators.fauxqs.createQueue(queue, { region: emulators.region });
    const url = `${emulators.awsEndpoint}/000000000000/${queue}`;
    agent = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--import',
        pathToFileURL(join(REPO, 'infra', 'local', 'exit-with-parent.ts')).href,
        join(REPO, 'agent', 'main.ts'),
      ],
      {
        cwd: REPO,
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        env: {
          PATH: process.env.PATH,
          FLEETFOLD_MODE: 'local',
          FLEETFOLD_HOST_ID: AGENT,
          FLEETFOLD_SECRET: 'agent-secret-agent-secret-agent-secret',
          FLEETFOLD_BUCKET: emulators.bucket,
          FLEETFOLD_S3_ENDPOINT: emulators.awsEndpoint,
          FLEETFOLD_HOST_TYPE: 'router',
          FLEETFOLD_GROUP: 'edge',
          FLEETFOLD_ROLES: 'call-router',
          FLEETFOLD_SERVICES: 'api@0.9.0',
          FLEETFOLD_STATE_DIR: join(dir, 'agents', AGENT),
          FLEETFOLD_POLL_SECONDS: '0.5',
          FLEETFOLD_INBOX_QUEUE_URL: url,
          FLEETFOLD_CONTROL_PUBLIC_KEY_FILE: join(dir, 'control.pem.pub'),
          AWS_REGION: emulators.region,
        },
      },
    );
    agent.stdout?.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));
    agent.stderr?.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));

    const state: DesiredHostState = { ...desired(1, { api: { version: '2.0.0' } }), hostId: AGENT };
    const envelope = await signEnvelope(signer, { state }, new Date());
    await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: JSON.stringify(envelope) }));

    const reported = await eventually(async () => {
      const snapshot = await latestSnapshot();
      const api = snapshot?.state.software.api;
      return snapshot?.state.appliedStateVersion === 1 && api?.status === 'running' ? snapshot : undefined;
    }, 30_000).catch((error: Error) => {
      throw new Error(`${error.message}; agent said:\n${output.join('')}`);
    });
    expect(reported.state.ips.internal).toBe('127.0.0.1');
    const api = reported.state.software.api;
    expect(api?.version).toBe('2.0.0');
    const answer = await fetch(`http://127.0.0.1:${api?.port}/`);
    expect(await answer.json()).toEqual({ service: 'api', version: '2.0.0', hostId: AGENT });

    // Killed outright, the agent cannot stop its services: they notice their IPC channel close and end.
    const exited = new Promise((resolve) => agent?.once('exit', resolve));
    agent.kill('SIGKILL');
    await exited;
    await eventually(
      async () =>
        await fetch(`http://127.0.0.1:${api?.port}/`).then(
          () => undefined,
          () => true,
        ),
    );
  });
});
