import { S3Client } from '@aws-sdk/client-s3';
import type { SQSEvent } from 'aws-lambda';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getCost } from '../functions/api/routes/cost.ts';
import { createIngestHandler } from '../functions/ingest/handler.ts';
import { createMonitorHandler } from '../functions/monitor/handler.ts';
import { createReconcileHandler } from '../functions/reconcile/handler.ts';
import { DocumentPlanStore } from '../functions/reconcile/plan-store.ts';
import { buildIngestDeps } from '../functions/wiring.ts';
import { DEFAULT_TABLE_NAMES } from '../shared/adapters/dynalite.ts';
import { DynamoUsageCounter } from '../shared/adapters/dynamo-usage-counter.ts';
import { S3Blobs } from '../shared/adapters/s3-blobs.ts';
import { monthlyBill } from '../shared/cost/model.ts';
import { SECONDS_PER_MONTH } from '../shared/cost/prices.ts';
import { sumCounts, USAGE_COUNTERS, type UsageCounts } from '../shared/cost/usage.ts';
import type { HostProvisioner } from '../shared/groups/host-provisioning.ts';
import type { FleetPort, StatePublisher } from '../shared/groups/ports.ts';
import { ensureHostRegistered } from '../shared/host-registration.ts';
import { useDynaliteStores } from './support/dynalite-stores.ts';
import { FakeCipher, RecordingReconcileStarter } from './support/memory-stores.ts';

const stores = useDynaliteStores();
const TABLES = { ...DEFAULT_TABLE_NAMES, documents: DEFAULT_TABLE_NAMES.documents as string };
const counter = () => new DynamoUsageCounter({ client: stores.client, tableName: TABLES.documents });

const HOUR = 3_600_000;

const counts = fc.record(
  Object.fromEntries(
    USAGE_COUNTERS.map((name) => [name, fc.option(fc.integer({ min: 0, max: 1000 }), { nil: undefined })]),
  ),
) as fc.Arbitrary<UsageCounts>;

describe('the hourly usage counter on DynamoDB', () => {
  it('adds concurrent invocations without losing a count', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(counts, { minLength: 1, maxLength: 12 }), async (batches) => {
        // Each run in an hour of its own, so runs do not add to each other.
        const at = new Date(Date.UTC(2030, 0, 1) + run++ * HOUR + 17 * 60_000);
        const usage = counter();
        await Promise.all(batches.map((batch) => usage.add(at, batch)));
        const [hour] = await usage.hours(new Date(at.getTime() - 60_000), new Date(at.getTime() + 60_000));
        const expected = Object.fromEntries(Object.entries(sumCounts(batches)).filter(([, n]) => n > 0));
        expect(hour?.counts ?? {}).toEqual(expected);
      }),
      { numRuns: 15 },
    );
  });

  it('reads exactly the hours of the window asked for', async () => {
    const usage = counter();
    const start = Date.UTC(2031, 5, 1);
    for (const offset of [0, 1, 5, 30])
      await usage.add(new Date(start + offset * HOUR), { monitorInvocations: offset + 1 });
    const hours = await usage.hours(new Date(start), new Date(start + 24 * HOUR));
    expect(hours.map((h) => h.hour)).toEqual(['2031-06-01T00', '2031-06-01T01', '2031-06-01T05']);
    expect(hours.map((h) => h.counts.monitorInvocations)).toEqual([1, 2, 6]);
  });
});

describe('counted by the real handlers', () => {
  const NOW = new Date(Date.UTC(2032, 2, 3, 10, 30));

  it('counts an ingest batch once, with its records, even when every record fails', async () => {
    const usage = counter();
    const handler = createIngestHandler({
      ...buildIngestDeps({
        dynamodb: stores.client,
        s3: new S3Client({ region: 'us-east-1' }),
        bucket: 'unused',
        eventsTable: TABLES.events,
        hostsTable: TABLES.hosts,
        documentsTable: TABLES.documents,
        cipher: new FakeCipher(),
      }),
      now: () => NOW,
      log: () => {},
    });
    const record = (messageId: string) =>
      ({ messageId, body: 'not an S3 event' }) as SQSEvent['Records'][number];
    const result = await handler({ Records: [record('m1'), record('m2')] });
    expect(result.batchItemFailures).toHaveLength(2);
    const [hour] = await usage.hours(NOW, new Date(NOW.getTime() + 1));
    expect(hour?.counts).toMatchObject({ ingestInvocations: 1, ingestRecords: 2 });
  });

  it('counts each monitor tick with its reads', async () => {
    const usage = counter();
    const at = new Date(NOW.getTime() + HOUR);
    const handler = createMonitorHandler({
      documents: stores.documents,
      hosts: stores.hosts,
      events: stores.events,
      reconcile: new RecordingReconcileStarter(),
      now: () => at,
      tickSeconds: 60,
      heartbeatCoalesceSeconds: 60,
      usage,
      log: () => {},
    });
    await handler({});
    await handler({});
    const [hour] = await usage.hours(at, new Date(at.getTime() + 1));
    expect(hour?.counts.monitorInvocations).toBe(2);
    expect(hour?.counts.monitorReads).toBeGreaterThanOrEqual(2);
  });

  it('counts each reconcile step by its name, a failed one too', async () => {
    const usage = counter();
    const at = new Date(NOW.getTime() + 2 * HOUR);
    const refuse = () => Promise.reject(new Error('not expected'));
    const handler = createReconcileHandler({
      events: stores.events,
      hosts: stores.hosts,
      documents: stores.documents,
      plans: new DocumentPlanStore({
        documents: stores.documents,
        blobs: new S3Blobs({ client: new S3Client({ region: 'us-east-1' }), bucket: 'unused' }),
      }),
      fleet: { launch: refuse, terminate: refuse, reboot: refuse, describe: async () => [] } as FleetPort,
      provisioner: { prepare: refuse, bind: refuse, revoke: refuse } as HostProvisioner,
      publisher: {
        ensureInbox: refuse,
        removeInbox: refuse,
        publish: refuse,
        broadcast: refuse,
      } as StatePublisher,
      settings: { pollSeconds: 5, checkWindowMs: 0, heartbeatCoalesceSeconds: 0 },
      now: () => at,
      usage,
    });
    await handler({
      step: 'plan',
      request: { group: 'ghost', reason: 'test' },
      executionName: 'x1',
      executionStart: at.toISOString(),
    } as never).catch(() => {});
    await expect(handler({ step: 'nonsense' } as never)).rejects.toThrow(/unknown reconcile step/);
    const [hour] = await usage.hours(at, new Date(at.getTime() + 1));
    expect(hour?.counts.reconcilePlan).toBe(1);
    expect(hour?.counts.reconcileMs).toBeGreaterThan(0);
  });
});

describe('GET /cost', () => {
  it('prices the counted day and scales it to a month, hosts included', async () => {
    const usage = counter();
    const now = new Date(Date.UTC(2033, 0, 2, 0, 0));
    for (let h = 1; h <= 24; h += 1)
      await usage.add(new Date(now.getTime() - h * HOUR), {
        ingestInvocations: 10,
        ingestRecords: 100,
        ingestChanged: 40,
        monitorInvocations: 60,
      });
    // Outside the window: must not count.
    await usage.add(new Date(now.getTime() - 30 * HOUR), { ingestRecords: 1_000_000 });
    for (const hostId of ['k1', 'k2', 'k3'])
      await ensureHostRegistered(
        { events: stores.events, hosts: stores.hosts, cipher: new FakeCipher() },
        { hostId, group: 'cost', hostType: 'media', roles: ['media'] },
        () => 'secret',
        now,
      );

    const response = await getCost({ hosts: stores.hosts, usage, now: () => now } as never, {
      method: 'GET',
      path: '/cost',
      headers: {},
      query: {},
      isBase64Encoded: false,
      format: 'json',
    });

    expect(response.status).toBe(200);
    const body = response.body as {
      hours: number;
      hoursCounted: number;
      hosts: number;
      counters: UsageCounts;
      monthly: { totalUsd: number; lines: { id: string; quantity: number; usd: number }[] };
      window: { totalUsd: number };
    };
    expect(body).toMatchObject({ hours: 24, hoursCounted: 24, hosts: 3 });
    expect(body.counters).toMatchObject({
      ingestRecords: 2400,
      ingestInvocations: 240,
      monitorInvocations: 1440,
    });
    const line = (id: string) => body.monthly.lines.find((l) => l.id === id);
    const perMonth = SECONDS_PER_MONTH / (24 * 3600);
    expect(line('s3.put')?.quantity).toBeCloseTo(2400 * perMonth, 0);
    expect(line('scheduler.invocations')?.quantity).toBeCloseTo(1440 * perMonth, 0);
    // The hosts' own polls, from the host count and the default cadence.
    const modelPolls = monthlyBill().lines.find((l) => l.id === 'sqs.inbox-polls')?.quantity ?? 0;
    expect(line('sqs.inbox-polls')?.quantity).toBeCloseTo((modelPolls * 3) / 1000, 0);
    const sum = body.monthly.lines.reduce((total, l) => total + l.usd, 0);
    expect(body.monthly.totalUsd).toBeCloseTo(sum, 2);
    expect(body.window.totalUsd).toBeCloseTo(body.monthly.totalUsd / perMonth, 2);
  });

  it('scales a young system from the hours it has counted, not the whole window', async () => {
    const usage = counter();
    const now = new Date(Date.UTC(2034, 5, 6, 12, 30));
    // Started at 10:00: counters for 10:00, 11:00 and 12:00 (so far); 2.5 hours of counting.
    for (const h of [10, 11, 12])
      await usage.add(new Date(Date.UTC(2034, 5, 6, h, 5)), { ingestRecords: 100 });
    const response = await getCost({ hosts: stores.hosts, usage, now: () => now } as never, {
      method: 'GET',
      path: '/cost',
      headers: {},
      query: {},
      isBase64Encoded: false,
      format: 'json',
    });
    const body = response.body as {
      spanHours: number;
      monthly: { lines: { id: string; quantity: number }[] };
    };
    expect(body.spanHours).toBe(2.5);
    const puts = body.monthly.lines.find((line) => line.id === 's3.put')?.quantity ?? 0;
    expect(puts).toBeCloseTo((300 * SECONDS_PER_MONTH) / (2.5 * 3600), 0);
  });

  it('refuses a window of no hours', async () => {
    const request = {
      method: 'GET',
      path: '/cost',
      headers: {},
      query: { hours: '0' },
      isBase64Encoded: false,
      format: 'json' as const,
    };
    await expect(getCost({ hosts: stores.hosts, now: () => new Date() } as never, request)).rejects.toThrow(
      /hours/,
    );
  });
});
