import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SNSClient } from '@aws-sdk/client-sns';
import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alarmOfMessage, ensureAlarmTopic, startAlarmPrinter } from '../infra/local/alarm-printer.ts';
import { type Emulators, localClientConfig, startEmulators } from '../infra/local/emulators.ts';
import { SnsAlarmPublisher } from '../shared/adapters/sns-alarm-publisher.ts';
import type { PublishedAlarm } from '../shared/groups/ports.ts';

let stateDir: string;
let emulators: Emulators;
let sns: SNSClient;
let sqs: SQSClient;

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-alarms-'));
  emulators = await startEmulators({ stateDir });
  const config = localClientConfig(emulators.awsEndpoint, emulators.region);
  sns = new SNSClient(config);
  sqs = new SQSClient(config);
});

afterAll(async () => {
  for (const client of [sns, sqs]) client?.destroy();
  await emulators?.stop();
  await rm(stateDir, { recursive: true, force: true });
});

const alarm = (alarmId: string): PublishedAlarm => ({
  group: 'demo',
  alarmId,
  alarm: 'repeated-host-failures',
  detail: '3 media hosts died within 10 minutes',
  at: '2031-02-03T04:05:06.000Z',
  hostIds: ['a', 'b', 'c'],
});

describe('SnsAlarmPublisher on fauxqs, and the local alarm printer', () => {
  it('delivers each alarm once to a subscribed queue, with its subject, JSON and attributes', async () => {
    const first = await ensureAlarmTopic(sns, sqs);
    // Every start runs it again: the same topic and queue, and still one subscription.
    expect(await ensureAlarmTopic(sns, sqs)).toEqual(first);
    const publisher = new SnsAlarmPublisher({ sns, topicArn: first.topicArn });
    await publisher.publish(alarm('one'));

    const received = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: first.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 2 }),
    );
    expect(received.Messages).toHaveLength(1);
    const body = received.Messages?.[0]?.Body ?? '';
    const envelope = JSON.parse(body) as {
      Subject?: string;
      MessageAttributes?: Record<string, { Value: string }>;
    };
    expect(envelope.Subject).toBe('[fleetfold] demo: repeated-host-failures');
    expect(envelope.MessageAttributes?.group?.Value).toBe('demo');
    expect(envelope.MessageAttributes?.alarm?.Value).toBe('repeated-host-failures');
    expect(alarmOfMessage(body)).toEqual(alarm('one'));
  });

  it('prints each alarm as one readable line', async () => {
    const { topicArn, queueUrl } = await ensureAlarmTopic(sns, sqs);
    const lines: string[] = [];
    const printer = startAlarmPrinter({ sqs, queueUrl, print: (line) => lines.push(line), waitSeconds: 1 });
    try {
      await new SnsAlarmPublisher({ sns, topicArn }).publish(alarm('two'));
      const deadline = Date.now() + 10_000;
      while (!lines.some((line) => line.includes('within 10 minutes')) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      await printer.stop();
    }
    expect(lines).toContain(
      'ALARM demo: repeated-host-failures — 3 media hosts died within 10 minutes (hosts a, b, c)',
    );
  });
});
