/*
 * The predictor's hour documents through the monitor on real DynamoDB adapters (dynalite): an idle scaled
 * group's tick still costs three reads and writes nothing; a host type's first tick of an hour writes the hour
 * just over (with its TTL attribute) and reads the lookback hours; an hour another tick already wrote is left
 * as it is. dynalite has no TTL: an expired document stays readable, which is why readers check expiresAt.
 */
import { DescribeTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { createMonitorHandler, type TickSummary } from '../functions/monitor/handler.ts';
import { GroupService } from '../shared/groups/group-service.ts';
import type { GroupDocument } from '../shared/groups/group-state.ts';
import type { HostTypeDefinition } from '../shared/groups/model.ts';
import { DEMAND_HOUR_KIND, type DemandHour, demandHourId } from '../shared/scaling/demand-memory.ts';
import type { ScalingDocument } from '../shared/scaling/scaling-document.ts';
import { useDynaliteStores } from './support/dynalite-stores.ts';
import { RecordingReconcileStarter } from './support/memory-stores.ts';
import { convergedHosts, RequestCounts, webGroupDefinition } from './support/monitor-fixtures.ts';

const stores = useDynaliteStores();
const T0 = new Date('2026-12-01T12:00:30.000Z');
const HOUR = Math.floor(T0.getTime() / 3_600_000);
const WEEK = 7 * 86_400_000;

async function scaledGroup(name: string, now: () => Date) {
  const definition = webGroupDefinition(name);
  const { count: _, ...fixed } = definition.hostTypes.web as HostTypeDefinition;
  definition.hostTypes.web = {
    ...fixed,
    channels: ['voice'],
    min: 2,
    max: 6,
    scaling: { targets: { voice: 50 }, bootSeconds: 5 } as HostTypeDefinition['scaling'],
  };
  const service = new GroupService({
    events: stores.events,
    documents: stores.documents,
    reconcile: new RecordingReconcileStarter(),
    now,
    newId: () => 'x',
  });
  await service.defineGroup(name, JSON.stringify(definition), 'json');
  await service.startGroup(name);
  const group = (await stores.documents.get<GroupDocument>('group', name))?.body as GroupDocument;
  for (const record of convergedHosts(group.compiled, new Date(T0.getTime() + 2 * 3_600_000))) {
    record.metrics = { load: 0.2, sessions: { voice: 20 } } as typeof record.metrics;
    await stores.hosts.create(record);
  }
}

function monitor(counts: RequestCounts, now: () => Date) {
  const handler = createMonitorHandler({
    documents: counts.wrap('documents', stores.documents),
    hosts: stores.hosts,
    events: stores.events,
    reconcile: new RecordingReconcileStarter(),
    now,
    tickSeconds: 60,
    heartbeatCoalesceSeconds: 0,
    log: () => {},
  });
  return async (at: Date) => (await handler({ scheduledTime: at.toISOString() })) as TickSummary;
}

describe('scaling demand hour documents on DynamoDB', () => {
  it('costs an idle tick its three reads; the first tick of an hour writes the hour over and reads its lookback', async () => {
    let now = T0;
    await scaledGroup('web', () => now);
    const counts = new RequestCounts();
    const tick = monitor(counts, () => now);
    // The first tick loads the cache: 2 lookback weeks × (the hour before, this one, the next).
    expect((await tick(T0)).reads).toBe(3 + 6);

    counts.reset();
    now = new Date(T0.getTime() + 60_000);
    const idle = await tick(now);
    expect(idle.reads).toBe(3);
    expect(idle.scalingWrites).toBeUndefined();
    expect(counts.writes()).toBe(0);

    counts.reset();
    now = new Date(T0.getTime() + 3_600_000);
    const next = await tick(now);
    expect(next).toMatchObject({ reads: 3 + 6, demandHourWrites: 1, scalingWrites: 1, failed: 0 });
    expect(counts.counts.get('documents.put')).toBe(2);
    const hour = await stores.documents.get<DemandHour>(DEMAND_HOUR_KIND, demandHourId('web', 'web', HOUR));
    // One sample in the hour: its first bucket's (both ticks were in it).
    expect(hour?.body).toMatchObject({ hour: HOUR, channels: { voice: [40] } });
    // DynamoDB's TTL reads epoch seconds: three weeks (lookbackWeeks + 1) after the hour ended.
    const item = await stores.client.send(
      new GetCommand({
        TableName: 'fleetfold-documents',
        Key: { key: `${DEMAND_HOUR_KIND}#${demandHourId('web', 'web', HOUR)}` },
      }),
    );
    expect(item.Item?.expiresAt).toBe(((HOUR + 1) * 3_600_000 + 3 * WEEK) / 1000);
    const stored = await stores.documents.get<ScalingDocument>('scaling', 'web');
    expect(stored?.body.hostTypes.web?.demand?.seasonal?.hour).toBe(HOUR + 1);
    expect(stored?.body.hostTypes.web?.demand?.recent.start).toBe(HOUR * 12);
  });

  it('leaves an hour document another tick wrote, and carries on', async () => {
    let now = T0;
    await scaledGroup('api', () => now);
    const counts = new RequestCounts();
    const tick = monitor(counts, () => now);
    await tick(T0);
    const id = demandHourId('api', 'web', HOUR);
    const theirs: DemandHour = { hour: HOUR, channels: { voice: [40] }, expiresAt: T0.getTime() + WEEK };
    await stores.documents.put(DEMAND_HOUR_KIND, id, theirs, 0, T0);
    now = new Date(T0.getTime() + 3_600_000);
    const summary = await tick(now);
    expect(summary.failed).toBe(0);
    expect(summary.demandHourWrites).toBeUndefined();
    // The document moved on all the same: its cache is the new hour's.
    const stored = await stores.documents.get<ScalingDocument>('scaling', 'api');
    expect(stored?.body.hostTypes.web?.demand?.seasonal?.hour).toBe(HOUR + 1);
    expect((await stores.documents.get<DemandHour>(DEMAND_HOUR_KIND, id))?.body).toEqual(theirs);
  });

  it('runs against a dynalite without TTL: an expired document stays until deleted', async () => {
    const table = 'fleetfold-documents';
    const ttl = await stores.client.send(new DescribeTimeToLiveCommand({ TableName: table }));
    expect(ttl.TimeToLiveDescription?.TimeToLiveStatus).toBe('DISABLED');
    const expiresAt = new Date(T0.getTime() - 1000);
    await stores.documents.put(DEMAND_HOUR_KIND, 'old#web#1', { hour: 1 }, 0, T0, { expiresAt });
    expect((await stores.documents.get(DEMAND_HOUR_KIND, 'old#web#1'))?.body).toEqual({ hour: 1 });
  });
});
