import { ConflictError } from '../../../shared/errors.ts';
import { hostStream, type InstanceTerminated, type NewEvent } from '../../../shared/events.ts';
import { evolve, statusOf } from '../../../shared/fold.ts';
import type { HostRecord } from '../../../shared/ports.ts';
import { caughtUpProjection } from '../../../shared/projection-catch-up.ts';
import { appendOnce } from './common.ts';
import type { ReconcileDeps } from './types.ts';

const ATTEMPTS = 5;

/** Crashes of one host type within this window that make a failure systematic rather than bad luck. */
export const REPLACEMENT_WINDOW_MS = 10 * 60 * 1000;
export const REPLACEMENT_ALARM_THRESHOLD = 3;

export function alreadyRecorded(record: HostRecord, instanceId: string): boolean {
  return record.terminated?.instanceId === instanceId;
}

/**
 * Records in the host's stream, then its projection, that its instance is gone, so GET /hosts shows the truth
 * and `host.status == failed` reads as it should. Once per instance: the event id names it, and a writer that
 * finds the stream ahead folds what it missed before deciding again. Returns the projection as saved, or
 * undefined when the termination was recorded already.
 */
export async function recordInstanceGone(
  deps: Pick<ReconcileDeps, 'events' | 'hosts' | 'now'>,
  host: HostRecord,
  data: Omit<InstanceTerminated['data'], 'at'>,
): Promise<HostRecord | undefined> {
  const stream = hostStream(host.hostId);
  const eventId = `${host.hostId}.terminated.${data.instanceId}`;
  let record = host;
  for (let attempt = 1; ; attempt += 1) {
    if (alreadyRecorded(record, data.instanceId)) return undefined;
    const now = deps.now();
    const event: NewEvent<InstanceTerminated> = {
      type: 'InstanceTerminated',
      eventId,
      data: { ...data, at: now.toISOString() },
    };
    try {
      const version = await deps.events.append(stream, record.version, [event], now);
      const next = evolve(record, { ...event, stream, version, recordedAt: now.toISOString() });
      const saved: HostRecord = { ...record, ...next, status: statusOf(next) };
      await deps.hosts.save(saved);
      return saved;
    } catch (error) {
      if (!(error instanceof ConflictError) || attempt >= ATTEMPTS) throw error;
    }
    record = await caughtUp(deps, record);
  }
}

function caughtUp(deps: Pick<ReconcileDeps, 'events'>, host: HostRecord): Promise<HostRecord> {
  return caughtUpProjection(deps.events, host);
}

/**
 * Three or more hosts of one type dying unasked within ten minutes is no longer bad luck: replacing them
 * again and again hides a broken image, version or instance type, so an operator is told. Raised once per
 * newest crash (its id names the alarm), and only by the step that recorded a crash.
 */
export async function alarmOnRepeatedCrashes(
  deps: Pick<ReconcileDeps, 'events' | 'now'>,
  group: string,
  hosts: readonly HostRecord[],
): Promise<void> {
  const now = deps.now();
  const since = now.getTime() - REPLACEMENT_WINDOW_MS;
  const crashesByType = new Map<string, HostRecord[]>();
  for (const host of hosts) {
    const terminated = host.terminated;
    if (terminated?.status !== 'failed' || Date.parse(terminated.at) < since) continue;
    crashesByType.set(host.hostType, [...(crashesByType.get(host.hostType) ?? []), host]);
  }
  for (const [hostType, crashed] of crashesByType) {
    if (crashed.length < REPLACEMENT_ALARM_THRESHOLD) continue;
    const ordered = crashed.sort((a, b) => (a.terminated?.at ?? '').localeCompare(b.terminated?.at ?? ''));
    const newest = ordered.at(-1) as HostRecord;
    const hostIds = ordered.map((host) => host.hostId);
    await appendOnce(
      deps.events,
      group,
      [
        {
          type: 'AlarmRaised',
          eventId: `replacements#${hostType}#${newest.hostId}`,
          data: {
            alarm: 'repeated-host-failures',
            detail: `${crashed.length} ${hostType} hosts of group ${group} died within ${REPLACEMENT_WINDOW_MS / 60_000} minutes (${hostIds.join(', ')}): replacements keep failing, look at the host type's image, version or instance type`,
            at: now.toISOString(),
            hostIds,
          },
        },
      ],
      now,
    );
  }
}
