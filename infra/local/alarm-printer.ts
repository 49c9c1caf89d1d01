import { CreateTopicCommand, type SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { PublishedAlarm } from '../../shared/groups/ports.ts';

/** Local mode's part of what the AlarmTopic construct deploys, and a queue on it for the printer. */
export const LOCAL_ALARM_TOPIC = 'fleetfold-alarms';
export const ALARM_PRINTER_QUEUE = 'fleetfold-alarms-printer';

/**
 * The alarm topic on fauxqs and the printer's queue subscribed to it. Idempotent (CreateTopic, CreateQueue
 * and Subscribe return what exists), so it runs on every start.
 */
export async function ensureAlarmTopic(
  sns: SNSClient,
  sqs: SQSClient,
): Promise<{ topicArn: string; queueUrl: string }> {
  const topic = await sns.send(new CreateTopicCommand({ Name: LOCAL_ALARM_TOPIC }));
  if (!topic.TopicArn) throw new Error(`CreateTopic ${LOCAL_ALARM_TOPIC} returned no ARN`);
  const queue = await sqs.send(new CreateQueueCommand({ QueueName: ALARM_PRINTER_QUEUE }));
  if (!queue.QueueUrl) throw new Error(`CreateQueue ${ALARM_PRINTER_QUEUE} returned no URL`);
  const attributes = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queue.QueueUrl, AttributeNames: ['QueueArn'] }),
  );
  const queueArn = attributes.Attributes?.QueueArn;
  if (!queueArn) throw new Error(`queue ${ALARM_PRINTER_QUEUE} has no ARN`);
  await sns.send(new SubscribeCommand({ TopicArn: topic.TopicArn, Protocol: 'sqs', Endpoint: queueArn }));
  return { topicArn: topic.TopicArn, queueUrl: queue.QueueUrl };
}

/** The alarm's JSON, which SnsAlarmPublisher puts after the text; undefined when a message carries none. */
export function alarmOfMessage(body: string): PublishedAlarm | undefined {
  const message = snsMessageOf(body);
  const start = message.indexOf('\n{');
  if (start < 0) return undefined;
  try {
    return JSON.parse(message.slice(start + 1)) as PublishedAlarm;
  } catch {
    return undefined;
  }
}

/** The message of an SNS envelope (what SQS receives without raw delivery), else the body as it is. */
function snsMessageOf(body: string): string {
  try {
    const envelope = JSON.parse(body) as { Message?: unknown };
    return typeof envelope.Message === 'string' ? envelope.Message : body;
  } catch {
    return body;
  }
}

/** `ALARM demo: repeated-host-failures — 3 media hosts died … (hosts a, b, c)`: one line per alarm. */
export function alarmLine(alarm: PublishedAlarm): string {
  const hosts = alarm.diagnosis?.hosts.map((host) => host.hostId) ?? alarm.hostIds ?? [];
  const detail = alarm.detail.replace(/\s+/g, ' ').trim();
  return `ALARM ${alarm.group}: ${alarm.alarm} — ${detail}${hosts.length > 0 ? ` (hosts ${hosts.join(', ')})` : ''}`;
}

export interface AlarmPrinter {
  stop(): Promise<void>;
}

/** Long-polls the printer's queue and prints each alarm as one line until stopped. */
export function startAlarmPrinter(options: {
  sqs: SQSClient;
  queueUrl: string;
  print?: (line: string) => void;
  waitSeconds?: number;
}): AlarmPrinter {
  const print = options.print ?? ((line: string) => console.log(line));
  let running = true;
  const abort = new AbortController();
  const loop = (async () => {
    while (running) {
      try {
        const received = await options.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: options.queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: options.waitSeconds ?? 10,
          }),
          { abortSignal: abort.signal },
        );
        for (const message of received.Messages ?? []) {
          const alarm = alarmOfMessage(message.Body ?? '');
          print(alarm ? alarmLine(alarm) : `ALARM (unreadable message ${message.MessageId ?? ''})`);
          await options.sqs.send(
            new DeleteMessageCommand({ QueueUrl: options.queueUrl, ReceiptHandle: message.ReceiptHandle }),
          );
        }
      } catch (error) {
        if (!running) return;
        console.error('alarm printer: receive failed; retrying in a second', error);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
  })();
  return {
    async stop() {
      running = false;
      abort.abort();
      await loop;
    },
  };
}
