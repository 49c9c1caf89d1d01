import * as z from 'zod/mini';
import { listAlarms } from '../../../shared/alarms/alarm-documents.ts';
import { Name } from '../../../shared/schemas.ts';
import type { ApiDeps } from '../deps.ts';
import { type ApiRequest, type ApiResponse, intParam, parseQuery } from '../http.ts';
import { Cursor } from './history.ts';

const DEFAULT_ALARM_LIMIT = 50;

/** A date or a date and time with its zone (`2031-02-03`, `2031-02-03T04:05:06Z`, `…+01:00`), as UTC ISO. */
const IsoTime = z.pipe(
  z.string().check(
    z.regex(
      /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/,
      'must be an ISO 8601 time such as 2031-02-03T04:05:06Z',
    ),
    z.refine((value) => !Number.isNaN(Date.parse(value)), 'must be a valid ISO 8601 time'),
  ),
  z.transform((value) => new Date(value).toISOString()),
);

export const AlarmQuery = z.strictObject({
  group: z.optional(Name),
  since: z.optional(IsoTime),
  limit: z.optional(intParam(1, 100)),
  next: z.optional(Cursor),
});

/** GET /alarms: newest first, across groups or of one, from `since` on. */
export async function listAlarmsRoute(deps: ApiDeps, request: ApiRequest): Promise<ApiResponse> {
  const { group, since, limit, next } = parseQuery(AlarmQuery, request.query);
  const page = await listAlarms(deps.documents, {
    limit: limit ?? DEFAULT_ALARM_LIMIT,
    ...(group !== undefined ? { group } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(next !== undefined ? { next } : {}),
  });
  return { status: 200, xmlRoot: 'alarms', body: { alarms: page.alarms, next: page.next } };
}
