/**
 * When replacing crashed hosts stops being the answer. Pure: the reconcile raises what this returns.
 */
import type { HostRecord } from '../ports.ts';

/** Crashes of one host type within this window that make a failure systematic rather than bad luck. */
export const REPLACEMENT_WINDOW_MS = 10 * 60 * 1000;
export const REPLACEMENT_ALARM_THRESHOLD = 3;

export interface CrashAlarm {
  /** Names the newest crash: one alarm per crash that crossed the threshold, however often it is judged. */
  alarmId: string;
  alarm: 'repeated-host-failures';
  detail: string;
  hostIds: string[];
}

/**
 * Three or more hosts of one type dying unasked within ten minutes is no longer bad luck: replacing them
 * again and again hides a broken image, version or instance type, so an operator is told.
 */
export function repeatedCrashAlarms(group: string, hosts: readonly HostRecord[], now: Date): CrashAlarm[] {
  const since = now.getTime() - REPLACEMENT_WINDOW_MS;
  const crashesByType = new Map<string, HostRecord[]>();
  for (const host of hosts) {
    const terminated = host.terminated;
    if (terminated?.status !== 'failed' || Date.parse(terminated.at) < since) continue;
    crashesByType.set(host.hostType, [...(crashesByType.get(host.hostType) ?? []), host]);
  }
  const alarms: CrashAlarm[] = [];
  for (const [hostType, crashed] of crashesByType) {
    if (crashed.length < REPLACEMENT_ALARM_THRESHOLD) continue;
    const ordered = crashed.sort((a, b) => (a.terminated?.at ?? '').localeCompare(b.terminated?.at ?? ''));
    const newest = ordered.at(-1) as HostRecord;
    const hostIds = ordered.map((host) => host.hostId);
    alarms.push({
      alarmId: `replacements#${hostType}#${newest.hostId}`,
      alarm: 'repeated-host-failures',
      detail: `${crashed.length} ${hostType} hosts of group ${group} died within ${REPLACEMENT_WINDOW_MS / 60_000} minutes (${hostIds.join(', ')}): replacements keep failing, look at the host type's image, version or instance type`,
      hostIds,
    });
  }
  return alarms;
}
