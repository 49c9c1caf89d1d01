import { performance } from 'node:perf_hooks';
import { createMonitorHandler, type TickSummary } from '../functions/monitor/handler.ts';
import { DEFAULT_TABLE_NAMES, dynamoClient, startDynalite } from '../shared/adapters/dynalite.ts';
import { DynamoDocumentStore } from '../shared/adapters/dynamo-document-store.ts';
import { DynamoEventStore } from '../shared/adapters/dynamo-event-store.ts';
import { DynamoHostStore } from '../shared/adapters/dynamo-host-store.ts';
import type { DocumentStore } from '../shared/groups/ports.ts';
import { DEFAULT_HEARTBEAT_COALESCE_SECONDS } from '../shared/hosts/liveness.ts';
import type { HostFilter, HostPage, HostRecord, HostStore } from '../shared/ports.ts';
import {
  MemoryDocumentStore,
  MemoryEventStore,
  MemoryHostStore,
  RecordingReconcileStarter,
} from '../test/support/memory-stores.ts';
import {
  convergedHosts,
  RequestCounts,
  runningGroupDocument,
  webGroupDefinition,
} from '../test/support/monitor-fixtures.ts';
import { emit, round } from './output.ts';
import { RequestCounter } from './request-counter.ts';

/*
 * One monitor tick over an idle fleet: every group running, every host converged and heard from, so the tick
 * must find nothing to do. Counted: CPU time of the tick (in-memory stores, so it is the monitor's own work:
 * listing, building each rule context, evaluating the default rules, assessing) and the store requests per
 * idle group, through a counting wrapper on the stores; then the same on the real DynamoDB adapters (dynalite),
 * counting the SDK requests on the client.
 */

const GROUPS = 1_000;
/** 99 web hosts and their load balancer: 100 per group, 100,000 in all. */
const WEB_PER_GROUP = 99;
const DYNALITE_GROUPS = 20;
const DYNALITE_WEB_PER_GROUP = 49;
const NOW = new Date('2026-12-01T12:00:00.000Z');

/**
 * The in-memory host store scans and sorts every host on each listing (fine for tests, 100,000 × 1,000 here),
 * which would measure the fake, not the monitor. This one keeps the group index a table has; it clones what it
 * returns, as a store deserializes it.
 */
class GroupIndexedHostStore extends MemoryHostStore {
  readonly #byGroup = new Map<string, HostRecord[]>();
  /** Milliseconds spent copying records out (what deserializing a response costs a real store). */
  storeMs = 0;

  override async create(record: HostRecord): Promise<void> {
    await super.create(record);
    const list = this.#byGroup.get(record.group) ?? [];
    list.push(structuredClone(record));
    this.#byGroup.set(record.group, list);
  }

  override async list(filter: HostFilter, limit: number, cursor?: string): Promise<HostPage> {
    if (filter.group === undefined || Object.keys(filter).length > 1)
      return super.list(filter, limit, cursor);
    const all = this.#byGroup.get(filter.group) ?? [];
    const from = cursor === undefined ? 0 : Number(cursor);
    const started = performance.now();
    const hosts = structuredClone(all.slice(from, from + limit));
    this.storeMs += performance.now() - started;
    return from + limit < all.length ? { hosts, next: String(from + limit) } : { hosts };
  }
}

async function seed(
  documents: DocumentStore,
  hosts: HostStore,
  groups: number,
  web: number,
): Promise<number> {
  let count = 0;
  for (let g = 0; g < groups; g += 1) {
    const name = `g${String(g).padStart(5, '0')}`;
    const document = runningGroupDocument(webGroupDefinition(name, { web }));
    await documents.put('group', name, document, 0, NOW);
    const records = convergedHosts(document.compiled, NOW, g * (web + 1));
    for (const record of records) await hosts.create(record);
    count += records.length;
  }
  return count;
}

function check(summary: TickSummary, groups: number): void {
  if (summary.groups !== groups || summary.due !== 0 || summary.failed !== 0 || summary.alarmsRaised !== 0)
    throw new Error(`an idle fleet should need nothing, the tick said ${JSON.stringify(summary)}`);
}

async function inMemory(): Promise<void> {
  const counts = new RequestCounts();
  const documents = new MemoryDocumentStore();
  const hosts = new GroupIndexedHostStore();
  const hostCount = await seed(documents, hosts, GROUPS, WEB_PER_GROUP);
  const reconcile = new RecordingReconcileStarter();
  const handler = createMonitorHandler({
    documents: counts.wrap('documents', documents),
    hosts: counts.wrap('hosts', hosts),
    events: counts.wrap('events', new MemoryEventStore()),
    reconcile: counts.wrap('reconcile', reconcile),
    now: () => new Date(NOW.getTime() + 30_000),
    tickSeconds: 60,
    heartbeatCoalesceSeconds: DEFAULT_HEARTBEAT_COALESCE_SECONDS,
    log: () => {},
  });
  // A warm-up tick: a Lambda that ticks every minute is warm on most ticks.
  await handler({});
  counts.reset();
  hosts.storeMs = 0;
  const cpu = process.cpuUsage();
  const wall = performance.now();
  const summary = (await handler({})) as TickSummary;
  const wallMs = performance.now() - wall;
  const used = process.cpuUsage(cpu);
  check(summary, GROUPS);
  if (counts.writes() > 0 || reconcile.requests.length > 0)
    throw new Error('an idle tick wrote or started something');
  emit({
    name: 'monitor.tick.cpu',
    value: round((used.user + used.system) / 1000, 1),
    unit: 'ms',
    groups: GROUPS,
    hosts: hostCount,
    wallMs: round(wallMs, 1),
    // Of that, copying the 100,000 records out of the fake store: a real store pays it deserializing them.
    hostStoreCopyMs: round(hosts.storeMs, 1),
    target: 1000,
  });
  emit({
    name: 'monitor.tick.cpu-without-store',
    value: round((used.user + used.system) / 1000 - hosts.storeMs, 1),
    unit: 'ms',
    groups: GROUPS,
    hosts: hostCount,
    target: 1000,
  });
  emit({
    name: 'monitor.tick.requests-per-idle-group',
    value: round(counts.total() / GROUPS),
    unit: 'requests',
    groups: GROUPS,
    hosts: hostCount,
    breakdown: Object.fromEntries(counts.counts),
    target: 2,
  });
}

async function onDynalite(): Promise<void> {
  const dynamo = await startDynalite({ tables: DEFAULT_TABLE_NAMES });
  const client = dynamoClient(dynamo.endpoint);
  try {
    const documents = new DynamoDocumentStore({
      client,
      tableName: dynamo.tables.documents ?? 'fleetfold-documents',
    });
    const hosts = new DynamoHostStore({ client, tableName: dynamo.tables.hosts });
    const hostCount = await seed(documents, hosts, DYNALITE_GROUPS, DYNALITE_WEB_PER_GROUP);
    const counter = new RequestCounter();
    counter.attach(client, 'DynamoDB');
    const reconcile = new RecordingReconcileStarter();
    const handler = createMonitorHandler({
      documents,
      hosts,
      events: new DynamoEventStore({ client, tableName: dynamo.tables.events }),
      reconcile,
      now: () => new Date(NOW.getTime() + 30_000),
      tickSeconds: 60,
      heartbeatCoalesceSeconds: DEFAULT_HEARTBEAT_COALESCE_SECONDS,
      log: () => {},
    });
    const summary = (await handler({})) as TickSummary;
    check(summary, DYNALITE_GROUPS);
    let total = 0;
    for (const count of counter.counts.values()) total += count;
    const writes = [...counter.counts.keys()].filter((key) => /Put|Update|Delete|Write/.test(key));
    if (writes.length > 0 || reconcile.requests.length > 0)
      throw new Error(`an idle tick wrote: ${writes.join(', ')}`);
    emit({
      name: 'monitor.tick.dynamodb-requests-per-idle-group',
      value: round(total / DYNALITE_GROUPS),
      unit: 'requests',
      groups: DYNALITE_GROUPS,
      hosts: hostCount,
      // A group listing is a Query of the group index (keys only) and a BatchGetItem of the records.
      breakdown: Object.fromEntries(counter.counts),
      target: 2.05,
    });
  } finally {
    client.destroy();
    await dynamo.stop();
  }
}

export async function benchMonitorTick(): Promise<void> {
  await inMemory();
  await onDynalite();
}
