/**
 * The alarm listing: one 'alarm' document per AlarmRaised, its id beginning with the time it was raised so a
 * listing pages in time order across groups (newest first when it descends). A projection like the others:
 * `alarmDocumentsOf` rebuilds it from the group streams' AlarmRaised and AlarmCleared events.
 */
import { ConflictError } from '../errors.ts';
import type { RecordedEvent } from '../events.ts';
import type { GroupEvent } from '../groups/events.ts';
import type { DocumentStore, PublishedAlarm, StoredDocument } from '../groups/ports.ts';
import { retryOnConflict } from '../retry.ts';

export interface AlarmDocument extends PublishedAlarm {
  episode?: string;
  /** When its episode cleared; absent while it is open, and for alarms of no episode. */
  clearedAt?: string;
}

/** `<ISO at>#<group>#<alarmId>`: ISO times sort as they read, so the id order is the time order. */
export function alarmDocumentId(alarm: { at: string; group: string; alarmId: string }): string {
  return `${alarm.at}#${alarm.group}#${alarm.alarmId}`;
}

/** The document of an AlarmRaised event of `group`'s stream. */
export function alarmOfEvent(
  group: string,
  event: RecordedEvent<Extract<GroupEvent, { type: 'AlarmRaised' }>>,
): AlarmDocument {
  const { data } = event;
  return {
    group,
    alarmId: event.eventId,
    alarm: data.alarm,
    detail: data.detail,
    at: data.at,
    ...(data.rolloutId !== undefined ? { rolloutId: data.rolloutId } : {}),
    ...(data.hostIds !== undefined ? { hostIds: data.hostIds } : {}),
    ...(data.episode !== undefined ? { episode: data.episode } : {}),
    ...(data.diagnosis !== undefined ? { diagnosis: data.diagnosis } : {}),
  };
}

/** Rebuilds the alarm documents of one group's stream (events in stream order). Pure. */
export function alarmDocumentsOf(
  group: string,
  events: readonly RecordedEvent<GroupEvent>[],
): AlarmDocument[] {
  const byAlarmId = new Map<string, AlarmDocument>();
  for (const event of events) {
    if (event.type === 'AlarmRaised') byAlarmId.set(event.eventId, alarmOfEvent(group, event));
    if (event.type === 'AlarmCleared') {
      const raised = byAlarmId.get(event.data.alarmId);
      if (raised) raised.clearedAt = event.data.at;
    }
  }
  return [...byAlarmId.values()];
}

/** Writes a raised alarm's document; one already there (a retried projection) is left as it is. */
export async function recordAlarm(documents: DocumentStore, alarm: AlarmDocument, at: Date): Promise<void> {
  try {
    await documents.put('alarm', alarmDocumentId(alarm), alarm, 0, at);
  } catch (error) {
    if (!(error instanceof ConflictError)) throw error;
  }
}

/** Marks the alarm that opened an episode cleared. */
export async function recordAlarmCleared(
  documents: DocumentStore,
  opened: { group: string; alarmId: string; raisedAt: string },
  clearedAt: string,
  at: Date,
): Promise<void> {
  const id = alarmDocumentId({ at: opened.raisedAt, group: opened.group, alarmId: opened.alarmId });
  await retryOnConflict(async () => {
    const stored = await documents.get<AlarmDocument>('alarm', id);
    if (!stored || stored.body.clearedAt !== undefined) return;
    await documents.put('alarm', id, { ...stored.body, clearedAt }, stored.version, at);
  });
}

export interface AlarmQuery {
  group?: string;
  /** Only alarms raised at or after this ISO time. */
  since?: string;
  limit: number;
  next?: string;
}

/** Pages read for one listing at most: a filter by group that matches little returns a `next` instead. */
const MAX_PAGES_PER_LISTING = 10;

/**
 * Alarms newest first, filtered by group and time. The time filter stops the listing at the first older
 * alarm (the ids are in time order); the group filter reads on until `limit` match, at most a few pages.
 * Each page asks for as many as are still missing, so the listing always ends at a page's end and the
 * store's own cursor resumes it.
 */
export async function listAlarms(
  documents: DocumentStore,
  query: AlarmQuery,
): Promise<{ alarms: AlarmDocument[]; next?: string }> {
  const alarms: AlarmDocument[] = [];
  let cursor = query.next;
  for (let page = 0; page < MAX_PAGES_PER_LISTING; page += 1) {
    const read: { documents: StoredDocument<AlarmDocument>[]; next?: string } =
      await documents.list<AlarmDocument>('alarm', query.limit - alarms.length, cursor, { descending: true });
    for (const document of read.documents) {
      if (query.since !== undefined && document.id < query.since) return { alarms };
      if (query.group === undefined || document.body.group === query.group) alarms.push(document.body);
    }
    if (read.next === undefined) return { alarms };
    cursor = read.next;
    if (alarms.length === query.limit) break;
  }
  return { alarms, next: cursor };
}
