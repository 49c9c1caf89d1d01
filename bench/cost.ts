import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { AppliedStateStore } from '../agent/applied-state.ts';
import { StateInbox } from '../agent/inbox.ts';
import { localClientConfig, startEmulators } from '../infra/local/emulators.ts';
import { ensureStateTopics } from '../infra/local/inboxes.ts';
import { LocalStateSigner } from '../shared/adapters/local-state-signer.ts';
import { SnsStatePublisher } from '../shared/adapters/sns-state-publisher.ts';
import {
  type Bill,
  type CostSettings,
  DEFAULT_INBOX_IDLE_SECONDS,
  DEFAULT_INBOX_WAIT_SECONDS,
  inboxDelayQuantile,
  monthlyBill,
  withSettings,
} from '../shared/cost/model.ts';
import { SECONDS_PER_MONTH, US_EAST_1 } from '../shared/cost/prices.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import { emit, round } from './output.ts';
import { RequestCounter } from './request-counter.ts';

/*
 * The whole bill for 1,000 hosts at default settings (shared/cost/model.ts: every recurring request, priced at
 * us-east-1 list prices with no free tier), next to the state delivery latency it buys, for two inbox
 * cadences: 0 s (the 20 s long poll back to back) and the default FLEETFOLD_INBOX_IDLE_SECONDS.
 *
 * Latency is measured, in real time, not scaled: per cadence, HOSTS real agent inbox loops (agent/inbox.ts
 * StateInbox, each with its own SQS client as each agent has) long-poll their own inbox queues on the embedded
 * cloud (fauxqs), each started at a random moment of its first cycle so the loops' phases are spread. Then one
 * signed desired state per host is published through the real fan-out (SnsStatePublisher: SNS PublishBatch,
 * filtered subscription, SQS) at a uniformly random moment of the next cycle, and the time from the publish
 * call to the agent's apply is taken. p50 and p99 are of those HOSTS samples (nearest rank: p99 is the 198th of 200).
 * Before that, the receives the loops make during one idle cycle are counted on their SQS clients, so the
 * inbox line of the bill is checked against what the loop really sends.
 */

const HOSTS = 200;
const TARGET_USD = 73;
const TARGET_P99_SECONDS = 25;

interface Measured {
  idleSeconds: number;
  latencies: number[];
  receivesPerHostHour: number;
}

export async function benchCost(): Promise<void> {
  const cadences = [0, DEFAULT_INBOX_IDLE_SECONDS];
  const measured = await measureDelivery(cadences);
  for (const { idleSeconds, latencies, receivesPerHostHour } of measured) {
    const settings = withSettings({ inbox: { idleSeconds } });
    const bill = monthlyBill(settings);
    const p50 = quantile(latencies, 0.5);
    const p99 = quantile(latencies, 0.99);
    const isDefault = idleSeconds === DEFAULT_INBOX_IDLE_SECONDS;
    emit({
      name: `cost.monthly.1000-hosts.idle-${idleSeconds}s`,
      value: round(bill.totalUsd, 2),
      unit: 'USD/month',
      default: isDefault,
      target: TARGET_USD,
      ratio: round(bill.totalUsd / TARGET_USD, 3),
      inboxIdleSeconds: idleSeconds,
      inboxWaitSeconds: DEFAULT_INBOX_WAIT_SECONDS,
      deliveryP50Seconds: round(p50, 2),
      deliveryP99Seconds: round(p99, 2),
      byService: rounded(bill.byService),
    });
    emit({
      name: `delivery.latency.idle-${idleSeconds}s.p99`,
      value: round(p99, 2),
      unit: 's',
      p50: round(p50, 2),
      max: round(Math.max(...latencies), 2),
      samples: latencies.length,
      // The pause's own share, from the model: what the measurement should show plus the fan-out's time.
      modelP99: round(inboxDelayQuantile({ waitSeconds: DEFAULT_INBOX_WAIT_SECONDS, idleSeconds }, 0.99), 2),
      target: TARGET_P99_SECONDS,
      ratio: round(p99 / TARGET_P99_SECONDS, 3),
    });
    const modelPolls = SECONDS_PER_MONTH / (DEFAULT_INBOX_WAIT_SECONDS + idleSeconds);
    const measuredPolls = receivesPerHostHour * (SECONDS_PER_MONTH / 3600);
    emit({
      name: `cost.inbox-polls.idle-${idleSeconds}s`,
      value: round((measuredPolls * settings.hosts * US_EAST_1.sqsPerMillionRequests) / 1e6, 2),
      unit: 'USD/month',
      note: 'receives counted on the agents’ SQS clients, scaled to 1,000 hosts for a month',
      receivesPerHostHour: round(receivesPerHostHour, 1),
      modelReceivesPerHostHour: round((modelPolls * 3600) / SECONDS_PER_MONTH, 1),
    });
    if (isDefault) emitBreakdown(bill, settings);
  }
}

function emitBreakdown(bill: Bill, settings: CostSettings): void {
  for (const line of bill.lines) {
    emit({
      name: `cost.line.${line.id}`,
      value: round(line.usd, 3),
      unit: 'USD/month',
      service: line.service,
      what: line.label,
      quantity: round(line.quantity, 1),
      per: line.unit,
    });
  }
  emit({
    name: 'cost.settings',
    value: settings.hosts,
    unit: 'hosts',
    settings,
    prices: 'us-east-1 list prices, no free tier (shared/cost/prices.ts)',
  });
}

async function measureDelivery(cadences: readonly number[]): Promise<Measured[]> {
  const stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-bench-cost-'));
  const emulators = await startEmulators({ stateDir });
  const config = localClientConfig(emulators.awsEndpoint, emulators.region);
  const sns = new SNSClient(config);
  const sqs = new SQSClient(config);
  const s3 = new S3Client({ ...config, forcePathStyle: true });
  const clients: SQSClient[] = [];
  const inboxes: StateInbox[] = [];
  try {
    const signer = await LocalStateSigner.fromKeyFile(join(stateDir, 'state-signing.pem'));
    const topicArns = await ensureStateTopics(sns, 1, 'bench-cost');
    const publisher = new SnsStatePublisher({ sns, sqs, s3, bucket: emulators.bucket, signer, topicArns });
    const quiet = { info: () => {}, warn: () => {} };

    const runs = await Promise.all(
      cadences.map(async (idleSeconds) => {
        const counter = new RequestCounter();
        const hosts = Array.from({ length: HOSTS }, (_, i) => `c${idleSeconds}-${i}`);
        const applied = new Map<string, number>();
        const waiting = new Map<string, (at: number) => void>();
        const own: StateInbox[] = [];
        for (const hostId of hosts) {
          const { queueUrl } = await publisher.ensureInbox({ hostId, group: 'bench', roles: ['media'] });
          const client = new SQSClient(config);
          counter.attach(client, 'SQS');
          clients.push(client);
          const inbox = new StateInbox({
            hostId,
            sqs: client,
            s3,
            queue: { url: queueUrl },
            publicKey: signer.publicKeyPem,
            applied: new AppliedStateStore({ stateDir, hostId }),
            apply: async (state) => {
              applied.set(hostId, state.stateVersion);
              waiting.get(hostId)?.(performance.now());
            },
            waitTimeSeconds: DEFAULT_INBOX_WAIT_SECONDS,
            idleSeconds,
            logger: quiet,
          });
          inboxes.push(inbox);
          own.push(inbox);
        }
        return { idleSeconds, hosts, counter, waiting, own };
      }),
    );

    const cycle = (idle: number) => (DEFAULT_INBOX_WAIT_SECONDS + idle) * 1000;
    const started = performance.now();
    const results = await Promise.all(
      runs.map(async ({ idleSeconds, hosts, counter, waiting, own }) => {
        // Spread the loops' phases: each starts at a random moment of its first cycle.
        await Promise.all(
          own.map(async (inbox) => {
            await sleep(Math.random() * cycle(idleSeconds));
            inbox.start();
          }),
        );
        // One idle cycle, nothing published: the receives it takes are what the loop costs when idle.
        counter.reset();
        const countedFrom = performance.now();
        await sleep(cycle(idleSeconds));
        const hours = (performance.now() - countedFrom) / 3_600_000;
        const receives = counter.get('SQS:ReceiveMessage');
        const latencies = await Promise.all(
          hosts.map(async (hostId) => {
            await sleep(Math.random() * cycle(idleSeconds));
            const appliedAt = new Promise<number>((resolve) => waiting.set(hostId, resolve));
            const publishedAt = performance.now();
            await publisher.publish([desired(hostId, 1)]);
            return ((await appliedAt) - publishedAt) / 1000;
          }),
        );
        return { idleSeconds, latencies, receivesPerHostHour: receives / HOSTS / hours };
      }),
    );
    process.stderr.write(
      `bench cost: measured delivery in ${Math.round((performance.now() - started) / 1000)} s\n`,
    );
    return results;
  } finally {
    await Promise.all(inboxes.map((inbox) => inbox.stop()));
    for (const client of [sns, sqs, s3, ...clients]) client.destroy();
    await emulators.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

function desired(hostId: string, stateVersion: number): DesiredHostState {
  return {
    hostId,
    group: 'bench',
    hostType: 'media',
    stateVersion,
    services: { media: { version: '2.0.0' } },
    config: { 'rtp.ports': '10000-20000' },
    mode: 'running',
  };
}

/** Nearest-rank quantile. */
function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

function rounded(record: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key, round(value, 2)]));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
