import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { PublishBatchCommand, SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { localClientConfig, startEmulators } from '../infra/local/emulators.ts';
import { ensureStateTopics } from '../infra/local/inboxes.ts';
import { LocalStateSigner } from '../shared/adapters/local-state-signer.ts';
import { type FanoutOperation, SnsStatePublisher } from '../shared/adapters/sns-state-publisher.ts';
import {
  byShard,
  chunk,
  hostMessageAttributes,
  PUBLISH_BATCH_SIZE,
  shardCountFor,
  toSnsAttributes,
} from '../shared/groups/fanout.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import { signEnvelope } from '../shared/state-envelope.ts';
import { emit as defaultEmit, round } from './output.ts';

type Emit = typeof defaultEmit;

/**
 * Desired states dispatched per second (sign + S3-size decision + SNS PublishBatch, through filter policies
 * into per-host SQS inboxes on fauxqs), next to the floor: PublishBatch of messages of the same size to the
 * same topics and inboxes, with nothing signed. Also the requests a rollout over the whole fleet costs.
 */
export async function run(
  emit: Emit = defaultEmit,
  options = { hosts: 500, rounds: 3, publishConcurrency: 4 },
): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-bench-dispatch-'));
  const emulators = await startEmulators({ stateDir });
  const config = localClientConfig(emulators.awsEndpoint, emulators.region);
  const sns = new SNSClient(config);
  const sqs = new SQSClient(config);
  const s3 = new S3Client({ ...config, forcePathStyle: true });
  try {
    const signer = await LocalStateSigner.fromKeyFile(join(stateDir, 'state-signing.pem'));
    const shardCount = shardCountFor(options.hosts);
    const topicArns = await ensureStateTopics(sns, shardCount);
    const requests = new Map<FanoutOperation, number>();
    const publisher = new SnsStatePublisher({
      sns,
      sqs,
      s3,
      bucket: emulators.bucket,
      signer,
      topicArns,
      publishConcurrency: options.publishConcurrency,
      onRequest: (op) => requests.set(op, (requests.get(op) ?? 0) + 1),
    });
    const hostIds = Array.from({ length: options.hosts }, (_, i) => `media-${i}`);
    for (const hostId of hostIds) await publisher.ensureInbox({ hostId, group: 'bench', roles: ['media'] });
    const inboxRequests = sum(requests);
    requests.clear();

    const states = (round: number): DesiredHostState[] =>
      hostIds.map((hostId) => ({
        hostId,
        group: 'bench',
        hostType: 'media',
        stateVersion: round,
        services: {
          media: { version: `1.${round}.0`, config: { codec: 'opus', 'rtp.ports': '10000-20000' } },
        },
        config: { region: 'eu-west-1', 'log.level': 'info' },
        mode: 'running',
      }));

    // The floor: the same bytes and attributes, already signed, in the same batches and concurrency.
    const prepared = await Promise.all(
      states(0).map(async (state) => ({
        hostId: state.hostId,
        message: JSON.stringify(await signEnvelope(signer, { state }, new Date())),
        attributes: toSnsAttributes(hostMessageAttributes(state)),
      })),
    );
    const batches = byShard(prepared, shardCount).flatMap(({ shard, items }) =>
      chunk(items, PUBLISH_BATCH_SIZE).map((entries) => ({ topicArn: topicArns[shard] as string, entries })),
    );
    const rawRound = () =>
      inParallel(batches, options.publishConcurrency, (batch) =>
        sns.send(
          new PublishBatchCommand({
            TopicArn: batch.topicArn,
            PublishBatchRequestEntries: batch.entries.map((e, i) => ({
              Id: `e${i}`,
              Message: e.message,
              MessageAttributes: e.attributes,
            })),
          }),
        ),
      );

    // One untimed round of each warms the JIT and the emulator; then the two alternate, so neither is
    // measured against a fuller emulator than the other.
    await publisher.publish(states(1));
    await rawRound();
    requests.clear();
    let dispatchSeconds = 0;
    let rawSeconds = 0;
    for (let r = 2; r < options.rounds + 2; r += 1) {
      const started = performance.now();
      await publisher.publish(states(r));
      dispatchSeconds += (performance.now() - started) / 1000;
      const rawStarted = performance.now();
      await rawRound();
      rawSeconds += (performance.now() - rawStarted) / 1000;
    }
    const requestsPerRollout = sum(requests) / options.rounds;

    const dispatched = options.hosts * options.rounds;
    const rate = dispatched / dispatchSeconds;
    const floor = dispatched / rawSeconds;
    emit({
      name: 'dispatch.throughput',
      value: round(rate, 1),
      unit: 'states/s',
      floor: round(floor, 1),
      ratio: round(rate / floor, 2),
      hosts: options.hosts,
      shards: shardCount,
      rounds: options.rounds,
      signer: 'local ECDSA P-256',
    });
    emit({
      name: 'dispatch.requests-per-rollout',
      value: requestsPerRollout,
      unit: 'requests',
      hosts: options.hosts,
      breakdown: Object.fromEntries(
        [...requests].map(([op, n]) => [op, round(n / options.rounds, 1)] as [string, number]),
      ),
    });
    emit({
      name: 'dispatch.requests-per-new-inbox',
      value: round(inboxRequests / options.hosts, 2),
      unit: 'requests',
    });
  } finally {
    for (const client of [sns, sqs, s3]) client.destroy();
    await emulators.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

function sum(counts: Map<unknown, number>): number {
  return [...counts.values()].reduce((a, b) => a + b, 0);
}

async function inParallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const index = next++;
        await work(items[index] as T);
      }
    }),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
