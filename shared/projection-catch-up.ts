import { hostStream } from './events.ts';
import { evolve, statusOf } from './fold.ts';
import type { EventStore, HostRecord } from './ports.ts';

/**
 * The projection with whatever its stream holds beyond it: another writer appended, or a crash fell between an
 * append and the projection's save. Every writer folds the missing events in, so all converge on the log.
 * Returns `host` itself when the stream has nothing newer.
 */
export async function caughtUpProjection(events: EventStore, host: HostRecord): Promise<HostRecord> {
  let record = host;
  let cursor: string | undefined;
  do {
    // fromVersion stays where the read began: a cursor belongs to the range it was issued for.
    const page = await events.read(hostStream(host.hostId), { fromVersion: host.version + 1, cursor });
    for (const event of page.events) {
      const next = evolve(record, event);
      record = {
        ...record,
        ...next,
        status: statusOf(next),
        lastSeq: Math.max(record.lastSeq, next.lastChangeSeq),
      };
    }
    cursor = page.next;
  } while (cursor);
  return record;
}
