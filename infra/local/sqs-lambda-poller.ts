import {
  DeleteMessageBatchCommand,
  type Message,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSMessageAttributes, SQSRecord } from 'aws-lambda';

/*
 * Stands in for a Lambda event source mapping on an SQS queue with ReportBatchItemFailures: long-polls,
 * hands the handler a batch in the shape Lambda does, deletes what succeeded and leaves the failures to
 * reappear after the visibility timeout (and, past maxReceiveCount, to move to the DLQ by the queue's
 * redrive policy, as in AWS).
 */

export type SqsBatchHandler = (event: SQSEvent) => Promise<SQSBatchResponse | undefined>;

export interface SqsLambdaPollerOptions {
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  region: string;
  handler: SqsBatchHandler;
  /** Records per invocation, 1 to 10000; default 10. */
  batchSize?: number;
  /**
   * How long to keep gathering records for one invocation once the first arrived (Lambda's
   * MaximumBatchingWindowInSeconds, in ms here); default 0: invoke with whatever one receive returned.
   */
  batchingWindowMs?: number;
  /** Long-poll wait, 0 to 20 s; default 20. */
  waitTimeSeconds?: number;
  /** Pollers working in parallel, each with at most one batch in flight; default 1. */
  concurrency?: number;
  /** Receive and delete failures (the loop carries on), and handler errors (the batch is retried). */
  onError?: (error: unknown, stage: 'receive' | 'handler' | 'delete') => void;
}

export interface PollerStats {
  invocations: number;
  /** Records deleted after the handler reported them done. */
  succeeded: number;
  /** Records left on the queue for redelivery (reported failures and records of batches that threw). */
  failed: number;
}

export interface SqsLambdaPoller {
  readonly stats: Readonly<PollerStats>;
  /** Stops receiving and resolves once every batch in flight has been handled and deleted. */
  stop(): Promise<void>;
}

const MAX_PER_RECEIVE = 10;

export function startSqsLambdaPoller(options: SqsLambdaPollerOptions): SqsLambdaPoller {
  const batchSize = clamp(options.batchSize ?? 10, 1, 10_000);
  const waitTimeSeconds = clamp(options.waitTimeSeconds ?? 20, 0, 20);
  const batchingWindowMs = Math.max(0, options.batchingWindowMs ?? 0);
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
  const stats: PollerStats = { invocations: 0, succeeded: 0, failed: 0 };
  const stopping = new AbortController();
  const report = (error: unknown, stage: 'receive' | 'handler' | 'delete') => {
    if (!stopping.signal.aborted || stage !== 'receive') options.onError?.(error, stage);
  };

  const receive = async (max: number, waitSeconds: number): Promise<Message[]> => {
    const { Messages } = await options.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: options.queueUrl,
        MaxNumberOfMessages: Math.min(max, MAX_PER_RECEIVE),
        WaitTimeSeconds: waitSeconds,
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
      // A long poll must not hold stop() up for 20 s; messages it had taken just reappear later.
      { abortSignal: stopping.signal },
    );
    return Messages ?? [];
  };

  const gatherBatch = async (): Promise<Message[]> => {
    const batch = await receive(batchSize, waitTimeSeconds);
    if (batch.length === 0 || batchingWindowMs === 0) return batch;
    const deadline = Date.now() + batchingWindowMs;
    while (batch.length < batchSize && Date.now() < deadline && !stopping.signal.aborted) {
      const remainingSeconds = Math.floor((deadline - Date.now()) / 1000);
      let more: Message[];
      try {
        more = await receive(batchSize - batch.length, Math.min(remainingSeconds, 20));
      } catch (error) {
        // What was gathered is in flight already: hand it over rather than let it wait out its timeout.
        report(error, 'receive');
        break;
      }
      batch.push(...more);
      // Under a second left, long polling is not possible: pause between short polls instead of spinning.
      if (more.length === 0 && remainingSeconds === 0)
        await sleep(Math.min(50, deadline - Date.now()), stopping.signal);
    }
    return batch;
  };

  const invoke = async (messages: Message[]): Promise<void> => {
    const records = messages.map((message) => toSqsRecord(message, options.queueArn, options.region));
    stats.invocations++;
    let failedIds: Set<string>;
    try {
      const response = await options.handler({ Records: records });
      failedIds = new Set((response?.batchItemFailures ?? []).map((failure) => failure.itemIdentifier));
      const known = new Set(records.map((record) => record.messageId));
      // Lambda treats a failure naming no record of the batch as the whole batch failing.
      if ([...failedIds].some((id) => !known.has(id))) failedIds = known;
    } catch (error) {
      report(error, 'handler');
      failedIds = new Set(records.map((record) => record.messageId));
    }
    const done = records.filter((record) => !failedIds.has(record.messageId));
    stats.failed += records.length - done.length;
    await deleteMessages(done);
  };

  const deleteMessages = async (records: SQSRecord[]) => {
    for (let start = 0; start < records.length; start += MAX_PER_RECEIVE) {
      const chunk = records.slice(start, start + MAX_PER_RECEIVE);
      try {
        const { Failed } = await options.sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: options.queueUrl,
            Entries: chunk.map((record, index) => ({
              Id: String(index),
              ReceiptHandle: record.receiptHandle,
            })),
          }),
        );
        stats.succeeded += chunk.length - (Failed?.length ?? 0);
        for (const failure of Failed ?? []) {
          report(new Error(`delete failed: ${failure.Code} ${failure.Message ?? ''}`), 'delete');
        }
      } catch (error) {
        report(error, 'delete');
      }
    }
  };

  const pollLoop = async () => {
    while (!stopping.signal.aborted) {
      let messages: Message[];
      try {
        messages = await gatherBatch();
      } catch (error) {
        report(error, 'receive');
        await sleep(1000, stopping.signal);
        continue;
      }
      // Handled even when stopping: they are received already and would otherwise wait out their timeout.
      if (messages.length > 0) await invoke(messages);
    }
  };

  const loops = Array.from({ length: concurrency }, () => pollLoop());
  return {
    stats,
    async stop() {
      stopping.abort();
      await Promise.all(loops);
    },
  };
}

/** One received message in the shape Lambda hands an SQS-triggered function. */
export function toSqsRecord(message: Message, queueArn: string, region: string): SQSRecord {
  const attributes = message.Attributes ?? {};
  return {
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle ?? '',
    body: message.Body ?? '',
    attributes: {
      ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? '1',
      SentTimestamp: attributes.SentTimestamp ?? '',
      SenderId: attributes.SenderId ?? '',
      ApproximateFirstReceiveTimestamp: attributes.ApproximateFirstReceiveTimestamp ?? '',
      ...(attributes.SequenceNumber ? { SequenceNumber: attributes.SequenceNumber } : {}),
      ...(attributes.MessageGroupId ? { MessageGroupId: attributes.MessageGroupId } : {}),
      ...(attributes.MessageDeduplicationId
        ? { MessageDeduplicationId: attributes.MessageDeduplicationId }
        : {}),
    },
    messageAttributes: toLambdaAttributes(message.MessageAttributes ?? {}),
    md5OfBody: message.MD5OfBody ?? '',
    ...(message.MD5OfMessageAttributes ? { md5OfMessageAttributes: message.MD5OfMessageAttributes } : {}),
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}

function toLambdaAttributes(attributes: Record<string, MessageAttributeValue>): SQSMessageAttributes {
  return Object.fromEntries(
    Object.entries(attributes).map(([name, value]) => [
      name,
      {
        dataType: value.DataType ?? 'String',
        ...(value.StringValue !== undefined ? { stringValue: value.StringValue } : {}),
        ...(value.BinaryValue !== undefined
          ? { binaryValue: Buffer.from(value.BinaryValue).toString('base64') }
          : {}),
        stringListValues: value.StringListValues ?? [],
        binaryListValues: (value.BinaryListValues ?? []).map((item) => Buffer.from(item).toString('base64')),
      },
    ]),
  );
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.floor(value)));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
