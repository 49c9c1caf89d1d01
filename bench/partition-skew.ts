import { once } from 'node:events';
import { type EventLoopUtilization, performance } from 'node:perf_hooks';
import { isMainThread, type MessagePort, parentPort, Worker, workerData } from 'node:worker_threads';
import { createReconcileHandler, type ReconcileEvent } from '../functions/reconcile/handler.ts';
import { DocumentPlanStore } from '../functions/reconcile/plan-store.ts';
import { mapLimited } from '../functions/reconcile/steps/common.ts';
import type { FinishResult } from '../functions/reconcile/steps/finish.ts';
import type { CheckResult, PlanRef, ReconcileRequest } from '../functions/reconcile/steps/types.ts';
import { dynamoClient, startDynalite } from '../shared/adapters/dynalite.ts';
import { DynamoDocumentStore } from '../shared/adapters/dynamo-document-store.ts';
import { DynamoEventStore } from '../shared/adapters/dynamo-event-store.ts';
import { DynamoHostStore } from '../shared/adapters/dynamo-host-store.ts';
import {
  DOCUMENTS_TABLE,
  EVENTS_TABLE,
  HOSTS_TABLE,
  type TableNames,
  type TableSchema,
} from '../shared/adapters/table-schemas.ts';
import { parseGroupDefinition } from '../shared/groups/compile.ts';
import { GroupService } from '../shared/groups/group-service.ts';
import type { HostProvisioner } from '../shared/groups/host-provisioning.ts';
import type { DesiredHostState, GroupDefinition } from '../shared/groups/model.ts';
import type {
  BlobStore,
  FleetInstance,
  FleetPort,
  InboxAddress,
  LaunchRequest,
  StatePublisher,
} from '../shared/groups/ports.ts';
import { ensureHostRegistered } from '../shared/host-registration.ts';
import type { EventStore, HostStore } from '../shared/ports.ts';
import { report } from '../test/support/host-reports.ts';
import { FakeCipher, RecordingReconcileStarter } from '../test/support/memory-stores.ts';
import { emit, round } from './output.ts';

/*
 * Which DynamoDB partitions a 10,000-host rollout writes, counted on the wire: a middleware on the client the
 * real Dynamo* stores use (on dynalite) sees every PutItem, UpdateItem, DeleteItem and BatchWriteItem, and
 * charges it to the partition key of the item it writes. Global-index writes are derived from the items
 * written: a KEYS_ONLY index is written when an item first carries its key attributes or one of them changes
 * (so the counter remembers, per item, what it last wrote, from the start of the setup on); an ALL index
 * (documents' sparse byKind) on every write of an item that is in it, since all its attributes are projected.
 *
 * Setup (not counted): a group of media hosts defined and started through the GroupService, its start run
 * driven step by step through the real reconcile handler (plan → apply/check per wave → finish → again),
 * with a fleet double that only records instances (registration happens in the provisioner the reconcile
 * calls) and a publisher double whose hosts report what they are sent through the command runner, as the
 * ingest records it. Counted: a rollout of media 2.1.0 → 2.2.0 requested and driven the same way.
 */

const DEFAULT_HOSTS = 10_000;
const GROUP = 'media-eu';
const FROM_VERSION = '2.1.0';
const TO_VERSION = '2.2.0';
/** How many hosts report at once: the ingest takes snapshots in batches, concurrently. */
const REPORT_CONCURRENCY = 16;
/** Checks of one wave before the bench gives up (the hosts report while the wave is applied). */
const MAX_CHECKS = 50;
const CHECK_RETRY_MS = 20;

type Source = 'control-plane' | 'host-reports';
interface Label {
  source: Source;
  /** What the write was for: the rollout request, a reconcile step, or (setup) a host report. */
  step: string;
}

interface TrackedTable {
  /** "events", "hosts", "documents": how the bench names the tables in its breakdowns. */
  alias: string;
  schema: TableSchema;
}

interface Write {
  table: TrackedTable;
  tableName: string;
  /** The item's full primary key (partition and sort key), for remembering what was written to it. */
  itemKey: string;
  /** `${tableName}:${partition key value}`: what the write is charged to. */
  partition: string;
  partitionValue: string | undefined;
  /** The item's index key attributes after the write (undefined: absent); null when the counter cannot tell. */
  after: Record<string, string | undefined> | null;
  deletes: boolean;
  /** A put's item size as DynamoDB counts it (names and values), approximately; 0 for other writes. */
  bytes: number;
}

interface Tally {
  base: number;
  index: number;
}

/**
 * Counts writes per partition key, base table and global indexes, with a middleware on the low-level client
 * (the document client's commands run through its stack). Always tracks what it saw written, so that index
 * writes during the counted phase are judged against the items as the setup left them; counts only while
 * `counting`.
 */
class PartitionWriteCounter {
  counting = false;
  readonly label = new Labels();
  readonly partitions = new Map<string, number>();
  readonly byTable = new Map<string, Tally>();
  readonly bySource = new Map<Source, Tally>();
  readonly byStep = new Map<string, Tally>();
  /** Index entries moved away from an old key value: DynamoDB also deletes them (a second write per change). */
  indexRemovals = 0;
  /** Conditional writes refused: no item written, yet billed and charged to the partition. */
  conditionalFailures = 0;
  /** UpdateItems whose effect on an index key the counter could not tell (counted as a change). */
  opaqueUpdates = 0;
  /** Writes by commands this counter does not take apart (transactions, PartiQL): expected 0. */
  uncountedWrites = 0;
  /** The largest item put per table and kind of key (counted phase): how near the 400 KB item limit they come. */
  readonly largest = new Map<string, { key: string; bytes: number }>();
  /** Which form `args.input` carried its values in: attribute-value maps ({S: …}) or native JS values. */
  readonly inputForms = new Set<'attribute-value' | 'native'>();
  readonly #tables: Map<string, TrackedTable>;
  /** Per item (table + primary key): the index key attributes it was last written with. */
  readonly #items = new Map<string, Record<string, string | undefined>>();

  constructor(tables: Map<string, TrackedTable>) {
    this.#tables = tables;
  }

  attach(client: { middlewareStack: { add: (...args: never[]) => void } }): void {
    const add = client.middlewareStack.add as unknown as (
      middleware: (
        next: (args: { input: Record<string, unknown> }) => Promise<{ output?: Record<string, unknown> }>,
        context: { commandName?: string },
      ) => (args: { input: Record<string, unknown> }) => Promise<unknown>,
      options: { step: 'initialize'; name: string },
    ) => void;
    add(
      (next, context) => async (args) => {
        const command = context.commandName?.replace(/Command$/, '') ?? '';
        if (UNCOUNTED_WRITE_COMMANDS.has(command) && this.counting) this.uncountedWrites += 1;
        if (!WRITE_COMMANDS.has(command)) return next(args);
        const writes = this.#writesOf(command, args.input);
        let result: { output?: Record<string, unknown> };
        try {
          result = await next(args);
        } catch (error) {
          if (error instanceof Error && error.name === 'ConditionalCheckFailedException') {
            for (const write of writes) this.#record(write, false);
          }
          throw error;
        }
        const unprocessed =
          command === 'BatchWriteItem' ? this.#unprocessed(result.output) : new Set<string>();
        for (const write of writes) {
          if (!unprocessed.has(`${write.tableName}\u0000${write.itemKey}`)) this.#record(write, true);
        }
        return result;
      },
      { step: 'initialize', name: 'fleetfold-partition-writes' },
    );
  }

  /** Total writes (base + index), and per source / table / step. */
  get total(): number {
    let sum = 0;
    for (const count of this.partitions.values()) sum += count;
    return sum;
  }

  reset(): void {
    this.partitions.clear();
    this.byTable.clear();
    this.bySource.clear();
    this.byStep.clear();
    this.indexRemovals = 0;
    this.conditionalFailures = 0;
    this.opaqueUpdates = 0;
    this.uncountedWrites = 0;
    this.largest.clear();
  }

  #writesOf(command: string, input: Record<string, unknown>): Write[] {
    if (command === 'BatchWriteItem') {
      const requests = (input.RequestItems ?? {}) as Record<
        string,
        Record<string, { Item?: object; Key?: object }>[]
      >;
      return Object.entries(requests).flatMap(([tableName, items]) =>
        items.flatMap((request) => {
          const put = request.PutRequest?.Item;
          const key = request.DeleteRequest?.Key;
          const write = put
            ? this.#write(tableName, put as Record<string, unknown>, 'put')
            : key
              ? this.#write(tableName, key as Record<string, unknown>, 'delete')
              : undefined;
          return write ? [write] : [];
        }),
      );
    }
    const tableName = input.TableName as string;
    if (command === 'PutItem')
      return this.#writes(this.#write(tableName, input.Item as Record<string, unknown>, 'put'));
    if (command === 'DeleteItem')
      return this.#writes(this.#write(tableName, input.Key as Record<string, unknown>, 'delete'));
    // UpdateItem: the key attributes come from Key; what it does to index keys from the update expression.
    const write = this.#write(tableName, input.Key as Record<string, unknown>, 'update');
    if (write) write.after = this.#updatedIndexKeys(write, input);
    return this.#writes(write);
  }

  #writes(write: Write | undefined): Write[] {
    return write ? [write] : [];
  }

  #write(
    tableName: string,
    attributes: Record<string, unknown>,
    kind: 'put' | 'delete' | 'update',
  ): Write | undefined {
    const table = this.#tables.get(tableName);
    if (!table || !attributes) return undefined;
    const { schema } = table;
    const partition = this.#scalar(attributes[schema.partitionKey.name]);
    const sort = schema.sortKey ? this.#scalar(attributes[schema.sortKey.name]) : undefined;
    const after: Record<string, string | undefined> = {};
    if (kind === 'put')
      for (const attribute of indexAttributes(schema)) after[attribute] = this.#scalar(attributes[attribute]);
    if (kind === 'delete') for (const attribute of indexAttributes(schema)) after[attribute] = undefined;
    return {
      table,
      tableName,
      itemKey: sort === undefined ? String(partition) : `${partition}\u0000${sort}`,
      partition: `${tableName}:${partition}`,
      partitionValue: partition,
      after,
      deletes: kind === 'delete',
      bytes: kind === 'put' ? itemBytes(attributes) : 0,
    };
  }

  /**
   * What an UpdateExpression leaves in the index key attributes: unchanged unless it SETs or REMOVEs one. A
   * SET of a plain value placeholder is resolved; anything cleverer is counted as a change (opaqueUpdates).
   */
  #updatedIndexKeys(write: Write, input: Record<string, unknown>): Record<string, string | undefined> | null {
    const previous = this.#items.get(`${write.tableName}\u0000${write.itemKey}`) ?? {};
    const after = { ...previous };
    const names = (input.ExpressionAttributeNames ?? {}) as Record<string, string>;
    const values = (input.ExpressionAttributeValues ?? {}) as Record<string, unknown>;
    const expression = String(input.UpdateExpression ?? '');
    const indexed = new Set(indexAttributes(write.table.schema));
    const resolve = (path: string) => {
      const first = path.trim().split(/[.[]/)[0] ?? '';
      return names[first] ?? first;
    };
    for (const clause of expression.split(/\b(?=SET\b|REMOVE\b|ADD\b|DELETE\b)/i)) {
      const match = /^\s*(SET|REMOVE|ADD|DELETE)\s+([\s\S]*)$/i.exec(clause);
      if (!match) continue;
      const action = (match[1] as string).toUpperCase();
      for (const part of splitTopLevel(match[2] as string)) {
        const [left, right] =
          action === 'SET' ? splitOnce(part, '=') : [part.trim().split(/\s+/)[0] ?? '', ''];
        const attribute = resolve(left);
        if (!indexed.has(attribute)) continue;
        if (action === 'REMOVE') after[attribute] = undefined;
        else if (action === 'SET' && /^\s*:[A-Za-z0-9_]+\s*$/.test(right)) {
          after[attribute] = this.#scalar(values[right.trim()]);
        } else {
          this.opaqueUpdates += this.counting ? 1 : 0;
          return null;
        }
      }
    }
    return after;
  }

  #unprocessed(output: Record<string, unknown> | undefined): Set<string> {
    const left = new Set<string>();
    const unprocessed = (output?.UnprocessedItems ?? {}) as Record<
      string,
      { PutRequest?: { Item?: object }; DeleteRequest?: { Key?: object } }[]
    >;
    for (const [tableName, items] of Object.entries(unprocessed)) {
      for (const request of items) {
        const attributes = (request.PutRequest?.Item ?? request.DeleteRequest?.Key) as
          | Record<string, unknown>
          | undefined;
        const write = attributes && this.#write(tableName, attributes, 'put');
        if (write) left.add(`${tableName}\u0000${write.itemKey}`);
      }
    }
    return left;
  }

  #record(write: Write, succeeded: boolean): void {
    const itemKey = `${write.tableName}\u0000${write.itemKey}`;
    const before = this.#items.get(itemKey);
    const label = this.label.getStore() ?? { source: 'control-plane', step: 'unlabelled' };
    const count = (partition: string, kind: keyof Tally) => {
      if (!this.counting) return;
      this.partitions.set(partition, (this.partitions.get(partition) ?? 0) + 1);
      for (const [map, key] of [
        [this.byTable, write.table.alias],
        [this.bySource, label.source],
        [this.byStep, `${label.source}:${label.step}`],
      ] as const) {
        const tally = (map as Map<string, Tally>).get(key) ?? { base: 0, index: 0 };
        tally[kind] += 1;
        (map as Map<string, Tally>).set(key, tally);
      }
    };
    // A refused conditional write wrote nothing, but DynamoDB bills it to the partition all the same.
    count(write.partition, 'base');
    if (!succeeded) {
      if (this.counting) this.conditionalFailures += 1;
      return;
    }
    // By table and kind of key (`host#…`, `rollout#…`, `plan#…`: the prefix before the first '#'); host items have none.
    const value = write.partitionValue ?? '';
    const kind = value.includes('#') ? `${write.table.alias}:${value.split('#')[0]}` : write.table.alias;
    if (this.counting && write.bytes > (this.largest.get(kind)?.bytes ?? 0))
      this.largest.set(kind, { key: write.partition, bytes: write.bytes });
    const { schema } = write.table;
    const tableKeys = new Set([schema.partitionKey.name, schema.sortKey?.name]);
    const opaque = write.after === null;
    const after = write.after ?? before ?? {};
    for (const index of schema.globalIndexes) {
      // The table's own key attributes are in every item and never change: only the others decide.
      const attributes = [index.partitionKey.name, index.sortKey.name].filter((name) => !tableKeys.has(name));
      const inBefore = before !== undefined && attributes.every((name) => before[name] !== undefined);
      const inAfter = opaque
        ? inBefore
        : !write.deletes && attributes.every((name) => after[name] !== undefined);
      const changed = opaque || attributes.some((name) => before?.[name] !== after[name]);
      // KEYS_ONLY: written when the item enters the index or its index key changes. ALL: on every write of an
      // item in it, since a write changes some projected attribute (a document carries a new version each time).
      const written = index.projection === 'ALL' ? inAfter : inAfter && changed;
      const keyOf = (state: Record<string, string | undefined> | undefined) =>
        index.partitionKey.name === schema.partitionKey.name
          ? write.partitionValue
          : state?.[index.partitionKey.name];
      if (written) count(`${write.tableName}/${index.indexName}:${keyOf(after)}`, 'index');
      // A key change also deletes the entry under the old key: DynamoDB's second index write, reported apart.
      if (this.counting && !opaque && inBefore && (!inAfter || changed)) this.indexRemovals += 1;
    }
    if (write.deletes) this.#items.delete(itemKey);
    else this.#items.set(itemKey, after);
  }

  #scalar(value: unknown): string | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'object') {
      this.inputForms.add('attribute-value');
      const attribute = value as { S?: string; N?: string; B?: unknown };
      if (attribute.S !== undefined) return attribute.S;
      if (attribute.N !== undefined) return attribute.N;
      return JSON.stringify(value);
    }
    this.inputForms.add('native');
    return String(value);
  }
}

/**
 * Who is writing now. A plain variable, not AsyncLocalStorage (whose promise hooks cost every SDK call): the
 * bench runs one step at a time, and within Apply the hosts report only inside publish(), which Apply awaits
 * before it writes anything else, so no two labels are ever live at once.
 */
class Labels {
  #current: Label | undefined;

  getStore(): Label | undefined {
    return this.#current;
  }

  async run<T>(label: Label, task: () => Promise<T>): Promise<T> {
    const outer = this.#current;
    this.#current = label;
    try {
      return await task();
    } finally {
      this.#current = outer;
    }
  }
}

const WRITE_COMMANDS = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem']);
const UNCOUNTED_WRITE_COMMANDS = new Set([
  'TransactWriteItems',
  'ExecuteStatement',
  'BatchExecuteStatement',
  'ExecuteTransaction',
]);

/**
 * An item's size by DynamoDB's rules, near enough: attribute names plus values (strings and binaries by their
 * bytes, numbers about one byte per two digits, 3 bytes per list or map plus 1 per element). Takes native values
 * and attribute-value maps alike.
 */
function itemBytes(item: Record<string, unknown>): number {
  let bytes = 0;
  for (const [name, value] of Object.entries(item))
    bytes += Buffer.byteLength(name, 'utf8') + valueBytes(value);
  return bytes;
}

function valueBytes(value: unknown): number {
  if (value === undefined) return 0;
  if (value === null || typeof value === 'boolean') return 1;
  if (typeof value === 'string') return Buffer.byteLength(value, 'utf8');
  if (typeof value === 'number' || typeof value === 'bigint')
    return 1 + Math.ceil(String(value).replace(/[-.]/g, '').length / 2);
  if (value instanceof Uint8Array) return value.byteLength;
  if (Array.isArray(value) || value instanceof Set)
    return 3 + [...value].reduce((sum: number, element) => sum + 1 + valueBytes(element), 0);
  const entries = Object.entries(value as Record<string, unknown>);
  const [only] = entries;
  // An attribute-value map: {S: …}, {N: …}, {L: […]}, {M: {…}} …
  if (entries.length === 1 && only && /^(S|N|B|BOOL|NULL|L|M|SS|NS|BS)$/.test(only[0])) {
    const [type, inner] = only;
    if (type === 'M') return mapBytes(Object.entries(inner as Record<string, unknown>));
    if (type === 'N') return valueBytes(Number(inner));
    return valueBytes(inner);
  }
  return mapBytes(entries);
}

function mapBytes(entries: [string, unknown][]): number {
  return (
    3 +
    entries.reduce((sum, [name, inner]) => sum + 1 + Buffer.byteLength(name, 'utf8') + valueBytes(inner), 0)
  );
}

function indexAttributes(schema: TableSchema): string[] {
  return [
    ...new Set(schema.globalIndexes.flatMap((index) => [index.partitionKey.name, index.sortKey.name])),
  ].filter((attribute) => attribute !== schema.partitionKey.name && attribute !== schema.sortKey?.name);
}

/** Splits on commas outside parentheses (update expressions' function calls take several arguments). */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i += 1) {
    if (text[i] === '(') depth += 1;
    else if (text[i] === ')') depth -= 1;
    else if (text[i] === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.filter((part) => part.trim() !== '');
}

function splitOnce(text: string, separator: string): [string, string] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, ''] : [text.slice(0, at), text.slice(at + 1)];
}

/* ───────────── dynalite on the other core ───────────── */

const DYNALITE_WORKER = 'fleetfold-partition-skew-dynalite';

/*
 * At this request rate the SDK and the reconcile keep one core busy and dynalite half of another: in one thread
 * they would take turns. This module is also the worker's entry point: there it starts dynalite and waits to be
 * stopped.
 */
if (!isMainThread && (workerData as { role?: string } | null)?.role === DYNALITE_WORKER) {
  const port = parentPort as MessagePort;
  const dynamo = await startDynalite();
  port.once('message', async () => {
    await dynamo.stop();
    port.postMessage({ stopped: true });
  });
  port.postMessage({ endpoint: dynamo.endpoint, tables: dynamo.tables });
}

interface DynaliteWorker {
  endpoint: string;
  tables: TableNames;
  /** The worker's event loop utilization since it started (or since `since`). */
  utilization(since?: EventLoopUtilization): EventLoopUtilization;
  stop(): Promise<void>;
}

async function startDynaliteWorker(): Promise<DynaliteWorker> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { role: DYNALITE_WORKER } });
  const [started] = (await once(worker, 'message')) as [{ endpoint: string; tables: TableNames }];
  return {
    ...started,
    utilization: (since) => worker.performance.eventLoopUtilization(since),
    async stop() {
      worker.postMessage('stop');
      await once(worker, 'message');
      await worker.terminate();
    },
  };
}

/* ───────────── the doubles: EC2 and the hosts ───────────── */

/**
 * EC2 as the FleetPort contract describes it, recording instances only: idempotent per (host, state version).
 * The machine's first report is the one it sends once it applied the state it was sent (ReportingHosts).
 */
class RecordingFleet implements FleetPort {
  launches = 0;
  readonly #instances = new Map<string, FleetInstance & { group: string; stateVersion: number }>();

  async launch(request: LaunchRequest): Promise<FleetInstance> {
    this.launches += 1;
    const existing = this.#instances.get(request.hostId);
    if (existing && existing.state !== 'terminated' && existing.stateVersion === request.stateVersion)
      return existing;
    const instance = {
      hostId: request.hostId,
      instanceId: `i-${request.hostId}`,
      state: 'running' as const,
      group: request.group,
      stateVersion: request.stateVersion,
    };
    this.#instances.set(request.hostId, instance);
    return instance;
  }

  async terminate(hostId: string): Promise<void> {
    const instance = this.#instances.get(hostId);
    if (instance) instance.state = 'terminated';
  }

  async reboot(): Promise<void> {}

  async describe(group: string): Promise<FleetInstance[]> {
    return [...this.#instances.values()].filter((instance) => instance.group === group);
  }
}

/** The hosts: each applies the state it is sent and reports it, as the ingest would record the snapshot. */
class ReportingHosts implements StatePublisher {
  published = 0;

  constructor(
    private readonly deps: { events: EventStore; hosts: HostStore },
    private readonly label: Labels,
  ) {}

  async ensureInbox(_address: InboxAddress) {
    return { queueUrl: 'local://unused' };
  }

  async removeInbox() {}

  // Broadcasts change no host's state: nothing to report.
  async broadcast() {}

  async publish(states: readonly DesiredHostState[]) {
    this.published += states.length;
    const step = this.label.getStore()?.step ?? 'unlabelled';
    await this.label.run({ source: 'host-reports', step }, () =>
      mapLimited(states, REPORT_CONCURRENCY, async (state) => {
        await report(this.deps, state.hostId, (observed) => ({
          ...observed,
          status: state.mode === 'draining' ? 'draining' : 'running',
          software: Object.fromEntries(
            Object.entries(state.services).map(([service, spec]) => [
              service,
              { version: spec.version, status: 'running' as const, port: 7000 },
            ]),
          ),
          config: { values: { ...state.config } },
          appliedStateVersion: state.stateVersion,
        }));
      }),
    );
  }
}

/** S3 for plans too large for an item (a 10,000-host plan is): not DynamoDB, so kept in memory here. */
class MemoryBlobs implements BlobStore {
  readonly #blobs = new Map<string, string>();

  async put(key: string, body: string) {
    this.#blobs.set(key, body);
    return { bucket: 'bench', key };
  }

  async get(ref: { bucket: string; key: string }) {
    const body = this.#blobs.get(ref.key);
    if (body === undefined) throw new Error(`no blob ${ref.key}`);
    return body;
  }
}

function definition(hosts: number): GroupDefinition {
  return parseGroupDefinition(
    JSON.stringify({
      name: GROUP,
      hostTypes: {
        media: {
          roles: ['media'],
          instanceType: 'c7g.xlarge',
          count: hosts,
          services: { media: { version: FROM_VERSION } },
        },
      },
      dependencies: { media: [] },
      configuration: {
        // "10%" alone is refused (it allows no host of a one-host type); at these sizes the two are the same.
        rollout: { wave: 'max(1, 10%)' },
        drain: { waitForSessions: false },
        disruptionBudget: 'max(1, 10%)',
        rules: [],
      },
    }),
    'json',
  );
}

/* ───────────── driving the reconcile, step by step ───────────── */

interface RunSummary {
  passes: number;
  waves: number;
  checks: number;
  finish?: FinishResult;
}

/**
 * What the state machine does, in process: Plan → (held) each wave Apply, Check until converged → Finish →
 * plan again while Finish says so. A wave that does not converge is an error here: the bench expects none.
 */
async function driveRun(
  invoke: (event: ReconcileEvent) => Promise<unknown>,
  request: ReconcileRequest,
  executionName: string,
): Promise<RunSummary> {
  const executionStart = new Date().toISOString();
  const summary: RunSummary = { passes: 0, waves: 0, checks: 0 };
  // A step that throws is reported with where it was: run, pass, step and wave.
  const step = async (event: ReconcileEvent) => {
    try {
      return await invoke(event);
    } catch (error) {
      const where = `run ${executionName}, pass ${summary.passes + (event.step === 'plan' ? 1 : 0)}, ${event.step}${'wave' in event ? ` of wave ${event.wave}` : ''}`;
      const name = error instanceof Error ? error.name : 'Error';
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`${where}: ${name}: ${message}`, { cause: error });
    }
  };
  let next: ReconcileRequest = request;
  for (;;) {
    const plan = (await step({ step: 'plan', request: next, executionName, executionStart })) as PlanRef;
    summary.passes += 1;
    if (plan.lease === 'served') return summary;
    if (plan.lease === 'queued') throw new Error(`run ${executionName}: the group is held by another run`);
    for (const wave of plan.waves) {
      summary.waves += 1;
      let check = (await step({ step: 'apply', plan, wave })) as CheckResult;
      for (let looks = 0; ; looks += 1) {
        check = (await step({ step: 'check', plan, wave, deadline: check.deadline })) as CheckResult;
        summary.checks += 1;
        if (check.status === 'converged') break;
        if (check.status !== 'waiting' || looks >= MAX_CHECKS)
          throw new Error(
            `run ${executionName}, wave ${wave}: ${check.status}: ${check.detail.slice(0, 300)}`,
          );
        await new Promise((resolve) => setTimeout(resolve, CHECK_RETRY_MS));
      }
    }
    const finish = (await step({ step: 'finish', plan })) as FinishResult;
    summary.finish = finish;
    if (finish.failed) throw new Error(`run ${executionName} failed: ${finish.cause}`);
    if (!finish.again) return summary;
    next = {
      group: request.group,
      reason: 'follow-up',
      rolloutId: finish.rolloutId,
      followUps: finish.followUps,
    };
  }
}

/** Host count: PARTITION_SKEW_HOSTS, 10,000 by default. */
function hostCount(): number {
  const raw = process.env.PARTITION_SKEW_HOSTS;
  if (raw === undefined || raw === '') return DEFAULT_HOSTS;
  const hosts = Number(raw);
  if (!Number.isInteger(hosts) || hosts < 10)
    throw new Error(`PARTITION_SKEW_HOSTS must be an integer ≥ 10, not ${raw}`);
  return hosts;
}

export async function benchPartitionSkew(hosts = hostCount()): Promise<void> {
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  let dynamo: DynaliteWorker | undefined;
  let client: ReturnType<typeof dynamoClient> | undefined;
  try {
    dynamo = await startDynaliteWorker();
    client = dynamoClient(dynamo.endpoint);
    const names = dynamo.tables;
    const documentsTable = names.documents as string;
    const counter = new PartitionWriteCounter(
      new Map([
        [names.events, { alias: 'events', schema: EVENTS_TABLE }],
        [names.hosts, { alias: 'hosts', schema: HOSTS_TABLE }],
        [documentsTable, { alias: 'documents', schema: DOCUMENTS_TABLE }],
      ]),
    );
    counter.attach(client);
    const events = new DynamoEventStore({ client, tableName: names.events });
    const hostStore = new DynamoHostStore({ client, tableName: names.hosts });
    const documents = new DynamoDocumentStore({ client, tableName: documentsTable });
    const now = () => new Date();
    const cipher = new FakeCipher();
    const reportDeps = { events, hosts: hostStore };

    const fleet = new RecordingFleet();
    const provisioner: HostProvisioner = {
      async prepare(host) {
        await ensureHostRegistered({ events, hosts: hostStore, cipher }, host, () => 'secret', now());
        return `/fleetfold/bench/${host.hostId}`;
      },
      bind: async () => {},
      revoke: async () => {},
    };
    const publisher = new ReportingHosts(reportDeps, counter.label);
    const handler = createReconcileHandler({
      events,
      hosts: hostStore,
      documents,
      fleet,
      provisioner,
      publisher,
      plans: new DocumentPlanStore({ documents, blobs: new MemoryBlobs() }),
      settings: { pollSeconds: 0, heartbeatCoalesceSeconds: 0 },
      now,
    });
    const stepMs = new Map<string, number>();
    const invoke = async (event: ReconcileEvent) => {
      const stepStarted = performance.now();
      try {
        return await counter.label.run({ source: 'control-plane', step: event.step }, () => handler(event));
      } finally {
        stepMs.set(event.step, (stepMs.get(event.step) ?? 0) + performance.now() - stepStarted);
      }
    };
    let ids = 0;
    const service = new GroupService({
      events,
      documents,
      reconcile: new RecordingReconcileStarter(),
      now,
      newId: () => `b${++ids}`,
    });

    // Setup, not counted: the group defined, started, and every host launched, registered and running.
    await service.defineGroup(GROUP, JSON.stringify(definition(hosts)), 'json');
    await service.startGroup(GROUP);
    const setup = await driveRun(invoke, { group: GROUP, reason: 'group-started' }, `group-${GROUP}-start-1`);
    const setupSeconds = (performance.now() - started) / 1000;
    const setupCpu = process.cpuUsage(cpuStarted);
    const running = (await listAll(hostStore)).filter(
      (host) => host.status === 'running' && host.observed?.software.media?.version === FROM_VERSION,
    ).length;
    if (running !== hosts) throw new Error(`setup: ${running} of ${hosts} hosts run media ${FROM_VERSION}`);

    // Counted: the rollout, from the operator's request to the run's end.
    stepMs.clear();
    const mainBusy = performance.eventLoopUtilization();
    const dynaliteBusy = dynamo.utilization();
    counter.counting = true;
    const rolloutStarted = performance.now();
    const publishedBefore = publisher.published;
    const { rollout } = await counter.label.run({ source: 'control-plane', step: 'request' }, () =>
      service.requestRollout(GROUP, { service: 'media', version: TO_VERSION, select: 'all' }),
    );
    const run = await driveRun(
      invoke,
      { group: GROUP, reason: 'rollout', rolloutId: rollout.id },
      `rollout-${rollout.id}`,
    );
    counter.counting = false;
    const rolloutSeconds = (performance.now() - rolloutStarted) / 1000;
    const rolloutCpu = process.cpuUsage(cpuStarted);
    const busy = {
      bench: round(performance.eventLoopUtilization(mainBusy).utilization, 2),
      dynalite: round(dynamo.utilization(dynaliteBusy).utilization, 2),
    };

    const final = await service.getRollout(rollout.id);
    const onTarget = (await listAll(hostStore)).filter(
      (host) => host.observed?.software.media?.version === TO_VERSION,
    ).length;
    if (final.status !== 'succeeded' || onTarget !== hosts)
      throw new Error(
        `rollout ${rollout.id} ended ${final.status} with ${onTarget} of ${hosts} hosts on ${TO_VERSION}`,
      );

    const total = counter.total;
    const ranked = [...counter.partitions.entries()].sort((a, b) => b[1] - a[1]);
    const share = (writes: number) => round((100 * writes) / total, 3);
    const [hottest, hottestWrites] = ranked[0] ?? ['none', 0];
    const sum = (tallies: Iterable<Tally>) => {
      let base = 0;
      let index = 0;
      for (const tally of tallies) {
        base += tally.base;
        index += tally.index;
      }
      return { base, index };
    };
    const totals = sum(counter.byTable.values());
    // Keys no single host owns (its item, its stream): the rollout's, the group's, plans, the lease, indexes.
    const shared = ranked.filter(
      ([key]) => !key.startsWith(`${names.hosts}:`) && !key.startsWith(`${names.events}:host#`),
    );
    emit({
      name: 'partition-skew',
      value: share(hottestWrites),
      unit: '%',
      target: 1,
      hottest,
      hottestWrites,
      writes: total,
      baseWrites: totals.base,
      indexWrites: totals.index,
      partitionKeys: ranked.length,
      hosts,
      top5: ranked.slice(0, 5).map(([key, writes]) => ({ key, writes, share: share(writes) })),
      hottestSharedKeys: shared.slice(0, 5).map(([key, writes]) => ({ key, writes, share: share(writes) })),
      note: 'share of all rollout writes (base + global index) charged to one partition key; index writes: KEYS_ONLY (hosts) on entering the index or a key change, ALL (documents byKind) on every write of an item in it',
    });
    const perHost = (tally: Tally) => round((tally.base + tally.index) / hosts, 3);
    const breakdown = (map: Map<string, Tally>) =>
      Object.fromEntries(
        [...map.entries()]
          .sort((a, b) => b[1].base + b[1].index - (a[1].base + a[1].index))
          .map(([key, tally]) => [key, { base: tally.base, index: tally.index, perHost: perHost(tally) }]),
      );
    emit({
      name: 'rollout-writes-per-host',
      value: round(total / hosts, 3),
      unit: 'writes/host',
      hosts,
      writes: total,
      byTable: breakdown(counter.byTable),
      bySource: breakdown(counter.bySource as Map<string, Tally>),
      byStep: breakdown(counter.byStep),
      indexRemovals: counter.indexRemovals,
      largestItems: Object.fromEntries(counter.largest),
      conditionalFailures: counter.conditionalFailures,
      opaqueUpdates: counter.opaqueUpdates,
      uncountedWrites: counter.uncountedWrites,
      inputForms: [...counter.inputForms],
      statesPublished: publisher.published - publishedBefore,
      passes: run.passes,
      waves: run.waves,
      checks: run.checks,
      note: 'host reports stand for what the ingest writes when each host reports the state it was sent',
    });
    emit({
      name: 'partition-skew.elapsed',
      value: round((performance.now() - started) / 1000, 1),
      unit: 's',
      hosts,
      setupSeconds: round(setupSeconds, 1),
      setupPasses: setup.passes,
      rolloutSeconds: round(rolloutSeconds, 1),
      rolloutStepSeconds: Object.fromEntries(
        [...stepMs.entries()].map(([step, ms]) => [step, round(ms / 1000, 1)]),
      ),
      // Both threads (the bench and dynalite's worker): on a shared machine the wall clock also counts others' turns.
      setupCpuSeconds: round(cpuSeconds(setupCpu), 1),
      rolloutCpuSeconds: round(cpuSeconds(rolloutCpu) - cpuSeconds(setupCpu), 1),
      // How busy each thread's event loop was during the rollout (1 = never idle).
      rolloutThreadBusy: busy,
    });
  } finally {
    client?.destroy();
    await dynamo?.stop();
  }
}

function cpuSeconds(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1e6;
}

async function listAll(hosts: DynamoHostStore) {
  const all = [];
  let cursor: string | undefined;
  do {
    const page = await hosts.list({ group: GROUP }, 100, cursor);
    all.push(...page.hosts);
    cursor = page.next;
  } while (cursor);
  return all;
}
