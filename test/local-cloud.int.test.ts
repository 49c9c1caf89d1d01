import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CopyObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEvent, S3Event, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../infra/local/api-server.ts';
import { startLocalCloud } from '../infra/local/cloud.ts';
import { type Emulators, localClientConfig, startEmulators } from '../infra/local/emulators.ts';
import { type HostSpec, type InstanceExit, LocalFleet } from '../infra/local/local-fleet.ts';
import { encodeNotificationKey, startS3NotificationBridge } from '../infra/local/s3-notification-bridge.ts';
import { type SqsBatchHandler, startSqsLambdaPoller } from '../infra/local/sqs-lambda-poller.ts';
import { readOrCreateSecret } from '../infra/local/state-dir.ts';

let stateDir: string;
let emulators: Emulators;
let sqs: SQSClient;
let s3Direct: S3Client;

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-local-'));
  emulators = await startEmulators({ stateDir });
  sqs = new SQSClient(localClientConfig(emulators.awsEndpoint));
  s3Direct = new S3Client({ ...localClientConfig(emulators.awsEndpoint), forcePathStyle: true });
});

afterAll(async () => {
  sqs?.destroy();
  s3Direct?.destroy();
  await emulators?.stop();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

async function drain(queueUrl: string, waitTimeSeconds: number) {
  const { Messages } = await sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: waitTimeSeconds,
    }),
  );
  return Messages ?? [];
}

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const execFileAsync = promisify(execFile);

describe('emulators', () => {
  it('create the bucket, the ingest queue and its DLQ with a redrive policy', () => {
    const queue = emulators.fauxqs.inspectQueue(emulators.ingestQueue.name);
    expect(JSON.parse(queue?.attributes.RedrivePolicy ?? '{}')).toEqual({
      deadLetterTargetArn: emulators.ingestDlq.arn,
      maxReceiveCount: 5,
    });
    expect(emulators.awsEndpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });
});

describe('S3 notification bridge', () => {
  it('turns a put under snapshots/ into exactly one AWS-format event, and ignores other keys', async () => {
    const bridge = await startS3NotificationBridge({
      upstream: emulators.awsEndpoint,
      s3: s3Direct,
      sqs,
      queueUrl: emulators.ingestQueue.url,
      region: emulators.region,
      bucket: emulators.bucket,
    });
    // Default SDK settings: the body goes out aws-chunked with a trailing checksum, longer than the object.
    const s3 = new S3Client({ ...localClientConfig(bridge.endpoint), forcePathStyle: true });
    try {
      const key = 'snapshots/host a/1.json';
      const body = JSON.stringify({ hostId: 'host a', seq: 1 });
      const before = Date.now();
      await s3.send(new PutObjectCommand({ Bucket: emulators.bucket, Key: key, Body: body }));
      const after = Date.now();
      await s3.send(new PutObjectCommand({ Bucket: emulators.bucket, Key: 'other/1.json', Body: body }));
      await s3.send(
        new PutObjectCommand({ Bucket: emulators.bucket, Key: 'snapshots/host-a/1.txt', Body: body }),
      );

      const messages = await drain(emulators.ingestQueue.url, 1);
      expect(messages).toHaveLength(1);
      const event = JSON.parse(messages[0]?.Body ?? '') as S3Event;
      expect(event.Records).toHaveLength(1);
      const [record] = event.Records;
      expect(record).toMatchObject({
        eventVersion: '2.1',
        eventSource: 'aws:s3',
        awsRegion: 'us-east-1',
        eventName: 'ObjectCreated:Put',
        s3: {
          bucket: { name: emulators.bucket, arn: `arn:aws:s3:::${emulators.bucket}` },
          object: {
            key: 'snapshots/host+a/1.json',
            size: Buffer.byteLength(body),
            eTag: createHash('md5').update(body).digest('hex'),
          },
        },
      });
      const eventTime = Date.parse(record?.eventTime ?? '');
      expect(record?.eventTime).toBe(new Date(eventTime).toISOString());
      expect(eventTime).toBeGreaterThanOrEqual(before);
      expect(eventTime).toBeLessThanOrEqual(after);
      expect(record?.s3.object.sequencer).toMatch(/^[0-9A-F]{16,}$/);

      const stored = await s3Direct.send(new GetObjectCommand({ Bucket: emulators.bucket, Key: key }));
      expect(await stored.Body?.transformToString()).toBe(body);
      expect(bridge.sent).toBe(1);
    } finally {
      s3.destroy();
      await bridge.stop();
    }
  });

  it('notifies a copy into snapshots/ as ObjectCreated:Copy', async () => {
    const bridge = await startS3NotificationBridge({
      upstream: emulators.awsEndpoint,
      s3: s3Direct,
      sqs,
      queueUrl: emulators.ingestQueue.url,
      region: emulators.region,
      bucket: emulators.bucket,
    });
    const s3 = new S3Client({ ...localClientConfig(bridge.endpoint), forcePathStyle: true });
    try {
      await s3Direct.send(
        new PutObjectCommand({ Bucket: emulators.bucket, Key: 'staging/2.json', Body: '{}' }),
      );
      await s3.send(
        new CopyObjectCommand({
          Bucket: emulators.bucket,
          Key: 'snapshots/h/2.json',
          CopySource: `${emulators.bucket}/staging/2.json`,
        }),
      );
      const messages = await drain(emulators.ingestQueue.url, 1);
      expect(messages).toHaveLength(1);
      const [record] = (JSON.parse(messages[0]?.Body ?? '') as S3Event).Records;
      expect(record?.eventName).toBe('ObjectCreated:Copy');
      expect(record?.s3.object).toMatchObject({ key: 'snapshots/h/2.json', size: 2 });
    } finally {
      s3.destroy();
      await bridge.stop();
    }
  });

  it('encodes keys as S3 notifications do', () => {
    expect(encodeNotificationKey("snapshots/a b/c=d(e)!'~*.json")).toBe(
      'snapshots/a+b/c%3Dd%28e%29%21%27%7E*.json',
    );
  });
});

describe('SQS Lambda poller', () => {
  const testQueue = (name: string, maxReceiveCount: number) => {
    const dlq = emulators.fauxqs.createQueue(`${name}-dlq`);
    const queue = emulators.fauxqs.createQueue(name, {
      attributes: {
        VisibilityTimeout: '1',
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.queueArn, maxReceiveCount }),
      },
    });
    return { url: queue.queueUrl, arn: queue.queueArn, dlqName: `${name}-dlq` };
  };
  const send = (QueueUrl: string, MessageBody: string) =>
    sqs.send(
      new SendMessageCommand({
        QueueUrl,
        MessageBody,
        MessageAttributes: { kind: { DataType: 'String', StringValue: 'test' } },
      }),
    );

  it('deletes what succeeded, redelivers reported failures and moves a poison record to the DLQ', async () => {
    const queue = testQueue('poller-partial', 2);
    for (const body of ['ok-1', 'ok-2', 'fail-once', 'poison']) await send(queue.url, body);
    const seen: SQSRecord[] = [];
    const handler: SqsBatchHandler = async (event: SQSEvent): Promise<SQSBatchResponse> => {
      seen.push(...event.Records);
      return {
        batchItemFailures: event.Records.filter(
          (r) =>
            r.body === 'poison' || (r.body === 'fail-once' && r.attributes.ApproximateReceiveCount === '1'),
        ).map((r) => ({ itemIdentifier: r.messageId })),
      };
    };
    const poller = startSqsLambdaPoller({
      sqs,
      queueUrl: queue.url,
      queueArn: queue.arn,
      region: 'us-east-1',
      handler,
      waitTimeSeconds: 1,
      concurrency: 2,
    });
    try {
      await until(
        () => (emulators.fauxqs.inspectQueue(queue.dlqName)?.messages.ready.length ?? 0) === 1,
        10_000,
      );
    } finally {
      await poller.stop();
    }
    const bodies = (body: string) => seen.filter((r) => r.body === body);
    expect(bodies('ok-1')).toHaveLength(1);
    expect(bodies('ok-2')).toHaveLength(1);
    expect(bodies('fail-once').map((r) => r.attributes.ApproximateReceiveCount)).toEqual(['1', '2']);
    expect(bodies('poison').map((r) => r.attributes.ApproximateReceiveCount)).toEqual(['1', '2']);
    expect(emulators.fauxqs.inspectQueue(queue.dlqName)?.messages.ready.map((m) => m.body)).toEqual([
      'poison',
    ]);
    expect(await drain(queue.url, 0)).toEqual([]);

    const [record] = bodies('ok-1');
    expect(record).toMatchObject({
      eventSource: 'aws:sqs',
      eventSourceARN: queue.arn,
      awsRegion: 'us-east-1',
      md5OfBody: createHash('md5').update('ok-1').digest('hex'),
      messageAttributes: { kind: { dataType: 'String', stringValue: 'test' } },
    });
    expect(record?.receiptHandle).not.toBe('');
    expect(Number(record?.attributes.SentTimestamp)).toBeGreaterThan(0);
  });

  it('retries the whole batch when the handler throws, and stop() waits for the batch in flight', async () => {
    const queue = testQueue('poller-throws', 5);
    await send(queue.url, 'a');
    await send(queue.url, 'b');
    const counts: string[] = [];
    let invocations = 0;
    let finished = 0;
    const poller = startSqsLambdaPoller({
      sqs,
      queueUrl: queue.url,
      queueArn: queue.arn,
      region: 'us-east-1',
      waitTimeSeconds: 1,
      batchingWindowMs: 200,
      handler: async (event) => {
        invocations++;
        counts.push(...event.Records.map((r) => `${r.body}:${r.attributes.ApproximateReceiveCount}`));
        if (invocations === 1) throw new Error('the first batch fails');
        await new Promise((resolve) => setTimeout(resolve, 300));
        finished += event.Records.length;
        return { batchItemFailures: [] };
      },
      onError: () => {},
    });
    await until(() => counts.length === 4, 10_000);
    await poller.stop();
    expect(finished).toBe(2);
    expect(counts.sort()).toEqual(['a:1', 'a:2', 'b:1', 'b:2']);
    expect(poller.stats).toMatchObject({ succeeded: 2, failed: 2 });
    expect(await drain(queue.url, 0)).toEqual([]);
  });
});

describe('API server', () => {
  let server: ApiServer;
  let received: APIGatewayProxyEvent[];
  let token: string;

  beforeAll(async () => {
    received = [];
    token = await readOrCreateSecret(join(stateDir, 'token'));
    server = await startApiServer({
      token,
      port: 0,
      handler: async (event) => {
        received.push(event);
        if (event.path === '/binary') {
          return {
            statusCode: 200,
            body: Buffer.from([0, 1, 2, 255]).toString('base64'),
            isBase64Encoded: true,
          };
        }
        return {
          statusCode: 201,
          headers: { 'Content-Type': 'application/json' },
          multiValueHeaders: { 'X-Seen': ['one', 'two'] },
          body: JSON.stringify({ path: event.path }),
        };
      },
    });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('keeps its token in the state folder, readable by the owner only, across restarts', async () => {
    expect(await readOrCreateSecret(join(stateDir, 'token'))).toBe(token);
    expect((await stat(join(stateDir, 'token'))).mode & 0o777).toBe(0o600);
    expect(token.length).toBeGreaterThanOrEqual(32);
  });

  it('rejects a request without a token, or with a wrong one, with a 401 problem', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: `Bearer ${token}x` },
      { authorization: `Basic ${token}` },
    ];
    for (const headers of attempts) {
      const response = await fetch(`${server.url}/hosts`, { headers });
      expect(response.status).toBe(401);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await response.json()).toMatchObject({
        title: 'Unauthorized',
        status: 401,
        detail: expect.any(String),
      });
    }
    expect(received).toHaveLength(0);
  });

  it('rejects a body over 1 MiB with a 413 problem', async () => {
    const response = await fetch(`${server.url}/hosts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: 'x'.repeat(1024 * 1024 + 1),
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ status: 413, type: expect.any(String) });
    expect(received).toHaveLength(0);
  });

  it('answers 413 to a 12 MiB upload before reading it: curl with and without Expect: 100-continue, chunked, fetch', async () => {
    const file = join(stateDir, 'twelve-mib.json');
    await writeFile(file, Buffer.alloc(12 * 1024 * 1024, 0x78));
    // curl asks "Expect: 100-continue" for a large body: the answer comes before any of it is sent.
    for (const [expect100, uploaded] of [
      [[], /^0$/],
      [['-H', 'Expect:'], /^\d+$/],
    ] as const) {
      const { stdout } = await execFileAsync('curl', [
        '-sS',
        ...expect100,
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{size_upload}',
        '-H',
        `Authorization: Bearer ${token}`,
        '-H',
        'Content-Type: application/json',
        '--data-binary',
        `@${file}`,
        `${server.url}/hosts`,
      ]);
      const [status, sent] = stdout.split(' ');
      expect(status).toBe('413');
      expect(sent).toMatch(uploaded);
    }
    const chunked = await execFileAsync('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-H',
      `Authorization: Bearer ${token}`,
      '-H',
      'Transfer-Encoding: chunked',
      '--data-binary',
      `@${file}`,
      `${server.url}/hosts`,
    ]);
    expect(chunked.stdout).toBe('413');
    const viaFetch = await fetch(`${server.url}/hosts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: Buffer.alloc(12 * 1024 * 1024, 0x78),
    });
    expect(viaFetch.status).toBe(413);
    expect(received).toHaveLength(0);
  });

  it('hands the handler an API Gateway proxy event and writes its result back', async () => {
    const response = await fetch(`${server.url}/hosts/h%201?role=lb&role=db&status=running`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'X-Trace': 't1' },
      body: '{"hostId":"h1"}',
    });
    expect(response.status).toBe(201);
    expect(response.headers.get('x-seen')).toBe('one, two');
    expect(await response.json()).toEqual({ path: '/hosts/h 1' });
    const event = received.at(-1);
    expect(event).toMatchObject({
      httpMethod: 'POST',
      path: '/hosts/h 1',
      resource: '/{proxy+}',
      body: '{"hostId":"h1"}',
      isBase64Encoded: false,
      queryStringParameters: { role: 'db', status: 'running' },
      multiValueQueryStringParameters: { role: ['lb', 'db'], status: ['running'] },
      requestContext: { stage: 'local', httpMethod: 'POST', identity: { sourceIp: '127.0.0.1' } },
    });
    expect(event?.headers['X-Trace'] ?? event?.headers['x-trace']).toBe('t1');
    expect(event?.multiValueHeaders['content-type']).toEqual(['application/json']);
    expect(event?.requestContext.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('decodes a base64 result body', async () => {
    const response = await fetch(`${server.url}/binary`, { headers: { authorization: `Bearer ${token}` } });
    expect(Buffer.from(await response.arrayBuffer())).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(received.at(-1)).toMatchObject({ body: null, queryStringParameters: null });
  });
});

describe('local fleet', () => {
  // A stand-in agent: reports its configuration, then runs until asked to stop.
  const fakeAgent = [
    'const env = process.env;',
    "process.stdout.write(['up', env.FLEETFOLD_HOST_ID, env.FLEETFOLD_SERVICES, env.FLEETFOLD_SECRET_FILE].join(' ') + '\\n');",
    "process.on('SIGTERM', () => { process.stdout.write('bye\\n'); process.exit(0); });",
    'setInterval(() => {}, 1000);',
  ].join('\n');

  it('launches, lists, stops and kills host processes, and reports deaths nobody asked for', async () => {
    const lines: string[] = [];
    const exits: InstanceExit[] = [];
    const fleet = new LocalFleet({
      bucket: 'b',
      s3Endpoint: 'http://127.0.0.1:1',
      region: 'us-east-1',
      agentsDir: join(stateDir, 'agents'),
      command: { executable: process.execPath, args: ['-e', fakeAgent], cwd: stateDir },
      onOutput: (hostId, line) => lines.push(`${hostId}: ${line}`),
      onExit: (_instance, exit) => exits.push(exit),
    });
    const spec = (hostId: string): HostSpec => ({
      hostId,
      group: 'g',
      hostType: 'media',
      roles: ['media'],
      services: { media: '2.1.0', db: '13.2' },
      secretFile: `/secrets/${hostId}`,
    });
    for (const id of ['h1', 'h2', 'h3']) fleet.launch(spec(id));
    expect(() => fleet.launch(spec('h1'))).toThrow(/running already/);
    await until(() => lines.filter((line) => line.includes(': up ')).length === 3, 10_000);
    expect(lines).toContain('h1: up h1 media@2.1.0,db@13.2 /secrets/h1');

    expect(await fleet.stop('h1')).toEqual({ code: 0, signal: null, requested: true });
    expect(lines).toContain('h1: bye');
    expect(await fleet.kill('h2')).toEqual({ code: null, signal: 'SIGKILL', requested: true });
    process.kill(fleet.get('h3')?.pid as number, 'SIGKILL');
    await until(() => exits.length === 3, 5_000);
    expect(exits[2]).toEqual({ code: null, signal: 'SIGKILL', requested: false });
    expect(fleet.list().map((instance) => instance.state)).toEqual(['exited', 'exited', 'exited']);
  });
});

describe('startLocalCloud', () => {
  it('serves the real API behind the token and keeps its data across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetfold-cloud-'));
    try {
      const first = await startLocalCloud({ stateDir: dir, apiPort: 0, ingest: true, pollerWaitSeconds: 1 });
      const { endpoints } = first;
      try {
        expect(endpoints).toMatchObject({ bucket: 'fleetfold-snapshots', region: 'us-east-1' });
        expect((await fetch(`${endpoints.api}/hosts`)).status).toBe(401);
        const listed = await fetch(`${endpoints.api}/hosts`, {
          headers: { authorization: `Bearer ${endpoints.token}` },
        });
        expect(listed.status).toBe(200);
        await first.clients.s3Direct.send(
          new PutObjectCommand({ Bucket: endpoints.bucket, Key: 'kept/1.json', Body: '{"kept":true}' }),
        );
      } finally {
        await first.stop();
      }
      const second = await startLocalCloud({ stateDir: dir, apiPort: 0, ingest: false });
      try {
        expect(second.endpoints.token).toBe(endpoints.token);
        const kept = await second.clients.s3Direct.send(
          new GetObjectCommand({ Bucket: endpoints.bucket, Key: 'kept/1.json' }),
        );
        expect(await kept.Body?.transformToString()).toBe('{"kept":true}');
      } finally {
        await second.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
