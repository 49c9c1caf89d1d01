import { ConflictError, ValidationError } from '../../shared/errors.ts';
import type { FleetEvent, HostEvent, NewEvent, RecordedEvent } from '../../shared/events.ts';
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
