import * as z from 'zod/mini';
import type { FleetEvent, HostEvent } from '../../../shared/events.ts';
import type { EventPage } from '../../../shared/ports.ts';
import type { ApiDeps } from '../deps.ts';
import { type ApiRequest, intParam, parseQuery } from '../http.ts';

/** A `next` cursor as the stores issue it. */
export const Cursor = z.string().check(z.minLength(1), z.maxLength(4096));

const DEFAULT_HISTORY_LIMIT = 100;

export const HistoryQuery = z
  .strictObject({
    limit: z.optional(intParam(1, 1000)),
    next: z.optional(Cursor),
    order: z.optional(z.enum(['asc', 'desc'])),
    from: z.optional(intParam(1, Number.MAX_SAFE_INTEGER)),
    to: z.optional(intParam(1, Number.MAX_SAFE_INTEGER)),
  })
  .check(
    z.refine((query) => query.from === undefined || query.to === undefined || query.from <= query.to, {
      path: ['from'],
      message: 'from must not be after to',
    }),
  );

/** Parses a history request's paging and range (`limit`, `next`, `order`, `from`, `to`) before any read. */
export function historyQuery(request: ApiRequest) {
  return parseQuery(HistoryQuery, request.query);
}

/** One page of a stream's events, as a history route asked for it (hosts and groups alike). */
export function readHistory<E extends FleetEvent = HostEvent>(
  deps: Pick<ApiDeps, 'events'>,
  stream: string,
  query: ReturnType<typeof historyQuery>,
): Promise<EventPage<E>> {
  return deps.events.read<E>(stream, {
    fromVersion: query.from,
    toVersion: query.to,
    direction: query.order === 'desc' ? 'backward' : 'forward',
    limit: query.limit ?? DEFAULT_HISTORY_LIMIT,
    cursor: query.next,
  });
}
