import { ConflictError, TooLargeError, ValidationError } from '../../shared/errors.ts';
import type { FleetEvent, HostEvent, NewEvent, RecordedEvent } from '../../shared/events.ts';
import type {
  DocumentKind,
  DocumentStore,
  ReconcileStarter,
  StoredDocument,
} from '../../shared/groups/ports.ts';
import type {
  EventPage,
  EventStore,
  HeartbeatUpdate,
  HostFilter,
  HostPage,
  HostRecord,
  HostStore,
  ReadEventsOptions,
  SecretCipher,
} from '../../shared/ports.ts';

/*
 * In-memory fakes of the ports, honest about the documented semantics (conditional appends, version guards,
 * opaque cursors) so handler tests exercise the same contracts the DynamoDB adapters must honour.
 * Values are cloned in and out, as a real store would serialise them.
 */

function encodeCursor(value: string | number): string {
  return Buffer.from(JSON.stringify({ after: value }), 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string | number {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    const after = (parsed as { after?: unknown }).after;
    if (typeof after === 'string' || typeof after === 'number') return after;
  } catch {
    // fall through to the error below
  }
  throw new ValidationError('the cursor is not one this store issued', { parameter: 'next' });
}

export class MemoryEventStore implements EventStore {
  readonly #streams = new Map<string, RecordedEvent<FleetEvent>[]>();

  async append<E extends FleetEvent = HostEvent>(
    stream: string,
    expectedVersion: number,
    events: readonly NewEvent<E>[],
    recordedAt: Date,
  ) {
    const existing = this.#streams.get(stream) ?? [];
    const taken = new Set(existing.map((event) => event.version));
    const versions = events.map((_, index) => expectedVersion + index + 1);
    const clash = versions.find((version) => taken.has(version));
    if (clash !== undefined) {
      throw new ConflictError(`stream ${stream} already has version ${clash}`, { stream, version: clash });
    }
    const recorded = events.map((event, index) => ({
      ...structuredClone(event),
      stream,
      version: versions[index] as number,
      recordedAt: recordedAt.toISOString(),
    })) as RecordedEvent<FleetEvent>[];
    this.#streams.set(
      stream,
      [...existing, ...recorded].sort((a, b) => a.version - b.version),
    );
    return expectedVersion + events.length;
  }

  async read<E extends FleetEvent = HostEvent>(
    stream: string,
    options: ReadEventsOptions = {},
  ): Promise<EventPage<E>> {
    const from = options.fromVersion ?? 1;
    const to = options.toVersion ?? Number.POSITIVE_INFINITY;
    const limit = Math.min(options.limit ?? 100, 1000);
    const backward = options.direction === 'backward';
    const after = options.cursor === undefined ? undefined : Number(decodeCursor(options.cursor));
    const inRange = (this.#streams.get(stream) ?? []).filter(
      (event) =>
        event.version >= from &&
        event.version <= to &&
        (after === undefined || (backward ? event.version < after : event.version > after)),
    );
    if (backward) inRange.reverse();
    const events = inRange.slice(0, limit);
    const last = events.at(-1);
    return {
      events: structuredClone(events) as RecordedEvent<E>[],
      next: inRange.length > limit && last ? encodeCursor(last.version) : undefined,
    };
  }

  async currentVersion(stream: string): Promise<number> {
    return this.#streams.get(stream)?.at(-1)?.version ?? 0;
  }
}

export class MemoryHostStore implements HostStore {
  readonly #hosts = new Map<string, HostRecord>();

  async get(hostId: string) {
    const record = this.#hosts.get(hostId);
    return record && structuredClone(record);
  }

  async create(record: HostRecord) {
    if (this.#hosts.has(record.hostId)) {
      throw new ConflictError(`host ${record.hostId} exists`, { hostId: record.hostId });
    }
    this.#hosts.set(record.hostId, structuredClone(record));
  }

  async save(record: HostRecord) {
    const stored = this.#hosts.get(record.hostId);
    const newer =
      stored !== undefined &&
      (stored.version > record.version ||
        (stored.version === record.version && stored.lastSeq >= record.lastSeq));
    if (newer) return false;
    this.#hosts.set(record.hostId, structuredClone(record));
    return true;
  }

  async touch(update: HeartbeatUpdate) {
    const stored = this.#hosts.get(update.hostId);
    if (!stored || stored.version !== update.version || stored.lastSeq >= update.lastSeq) return false;
    this.#hosts.set(update.hostId, {
      ...stored,
      lastSeq: update.lastSeq,
      lastSeen: update.lastSeen,
      metrics: structuredClone(update.metrics),
    });
    return true;
  }

  async list(filter: HostFilter, limit: number, cursor?: string): Promise<HostPage> {
    const after = cursor === undefined ? undefined : String(decodeCursor(cursor));
    const matching = [...this.#hosts.values()]
      .filter((host) => matches(host, filter) && (after === undefined || host.hostId > after))
      .sort((a, b) => (a.hostId < b.hostId ? -1 : 1));
    const hosts = matching.slice(0, limit);
    const last = hosts.at(-1);
    return {
      hosts: structuredClone(hosts),
      next: matching.length > limit && last ? encodeCursor(last.hostId) : undefined,
    };
  }
}

/** `role` filters by primary role: that is the key of the role index the DynamoDB store queries. */
function matches(host: HostRecord, filter: HostFilter): boolean {
  if (filter.role !== undefined && host.role !== filter.role) return false;
  if (filter.status !== undefined && host.status !== filter.status) return false;
  if (filter.group !== undefined && host.group !== filter.group) return false;
  if (filter.service !== undefined) {
    const instance = host.observed?.software[filter.service];
    if (!instance) return false;
    if (filter.version !== undefined && instance.version !== filter.version) return false;
  }
  return true;
}

/** Reversible and bound to the host id like the real ciphers, but with no secrecy at all: tests only. */
export class FakeCipher implements SecretCipher {
  async encrypt(plaintext: string, hostId: string) {
    return `fake:${hostId}:${Buffer.from(plaintext, 'utf8').toString('base64')}`;
  }

  async decrypt(ciphertext: string, hostId: string) {
    const prefix = `fake:${hostId}:`;
    if (!ciphertext.startsWith(prefix)) throw new Error(`ciphertext was not made for host ${hostId}`);
    return Buffer.from(ciphertext.slice(prefix.length), 'base64').toString('utf8');
  }
}

/** Like the DynamoDB store: whole-document version guards, id-ordered pages, the 400 KB item limit. */
export class MemoryDocumentStore implements DocumentStore {
  readonly #documents = new Map<string, StoredDocument<unknown>>();
  /** Every call by operation name, so tests can count what an API call costs. */
  readonly calls: Record<string, number> = {};

  resetCalls() {
    for (const operation of Object.keys(this.calls)) this.calls[operation] = 0;
  }

  #count(operation: string) {
    this.calls[operation] = (this.calls[operation] ?? 0) + 1;
  }

  async get<T>(kind: DocumentKind, id: string): Promise<StoredDocument<T> | undefined> {
    this.#count('get');
    const stored = this.#documents.get(`${kind}\u0000${id}`);
    return stored && (structuredClone(stored) as StoredDocument<T>);
  }

  async put<T>(kind: DocumentKind, id: string, body: T, expectedVersion: number, updatedAt: Date) {
    this.#count('put');
    const key = `${kind}\u0000${id}`;
    const stored = this.#documents.get(key);
    if ((stored?.version ?? 0) !== expectedVersion) {
      throw new ConflictError(`${kind} document "${id}" is not at version ${expectedVersion}`, {
        kind,
        id,
        expectedVersion,
      });
    }
    if (Buffer.byteLength(JSON.stringify(body), 'utf8') > 400 * 1024) {
      throw new TooLargeError(`${kind} document "${id}" is too large`, { kind, id });
    }
    const document: StoredDocument<T> = {
      kind,
      id,
      version: expectedVersion + 1,
      body: structuredClone(body),
      updatedAt: updatedAt.toISOString(),
    };
    this.#documents.set(key, structuredClone(document));
    return document;
  }

  async delete(kind: DocumentKind, id: string, expectedVersion: number) {
    this.#count('delete');
    const key = `${kind}\u0000${id}`;
    if ((this.#documents.get(key)?.version ?? 0) !== expectedVersion) {
      throw new ConflictError(`${kind} document "${id}" is not at version ${expectedVersion}`, {
        kind,
        id,
        expectedVersion,
      });
    }
    this.#documents.delete(key);
  }

  async list<T>(kind: DocumentKind, limit: number, cursor?: string, options: { descending?: boolean } = {}) {
    this.#count('list');
    const after = cursor === undefined ? undefined : String(decodeCursor(cursor));
    const direction = options.descending ? -1 : 1;
    const beyond = (id: string) => after === undefined || (options.descending ? id < after : id > after);
    const matching = [...this.#documents.values()]
      .filter((document) => document.kind === kind && beyond(document.id))
      .sort((a, b) => (a.id < b.id ? -direction : direction));
    const documents = matching.slice(0, limit) as StoredDocument<T>[];
    const last = documents.at(-1);
    return {
      documents: structuredClone(documents),
      ...(matching.length > limit && last ? { next: encodeCursor(last.id) } : {}),
    };
  }
}

export type ReconcileRequest = Parameters<ReconcileStarter['start']>[0];

/** Records what was asked of the reconcile loop; a dedupe key seen before answers with the same execution. */
export class RecordingReconcileStarter implements ReconcileStarter {
  readonly requests: ReconcileRequest[] = [];
  readonly #executions = new Map<string, string>();

  async start(request: ReconcileRequest) {
    this.requests.push(structuredClone(request));
    let executionId = this.#executions.get(request.dedupeKey);
    if (executionId === undefined) {
      executionId = `exec-${this.#executions.size + 1}`;
      this.#executions.set(request.dedupeKey, executionId);
    }
    return { executionId };
  }

  /** Distinct runs started (a repeated dedupe key is one run). */
  get runs(): number {
    return this.#executions.size;
  }
}
