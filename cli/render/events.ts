import type { Palette, Tone } from './colour.ts';
import { PLAIN } from './colour.ts';
import { type ChangeView, showValue } from './diff.ts';
import { renderTable } from './table.ts';

/** An event as a history page carries it; every member optional so an event type added later still renders. */
export interface EventView {
  type?: string;
  version?: number;
  recordedAt?: string;
  data?: Record<string, unknown>;
}

const text = (value: unknown): string | undefined =>
  typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
    ? String(value)
    : undefined;

const list = (value: unknown): string | undefined =>
  Array.isArray(value) && value.length > 0 ? value.map(String).join(',') : undefined;

/** At most this many of a snapshot's changes on its line; the rest are counted. */
const CHANGES_SHOWN = 3;

function changesSummary(changes: unknown): string {
  if (!Array.isArray(changes) || changes.length === 0) return 'no change (heartbeat)';
  const shown = (changes as ChangeView[]).slice(0, CHANGES_SHOWN).map((change) => {
    if (change.op === 'added') return `${change.path} = ${showValue(change.new)}`;
    if (change.op === 'removed') return `${change.path} removed`;
    return `${change.path} ${showValue(change.old)} → ${showValue(change.new)}`;
  });
  const more = changes.length - shown.length;
  return `${shown.join(', ')}${more > 0 ? ` (+${more} more)` : ''}`;
}

function assignedBy(by: unknown): string | undefined {
  const record = (by ?? {}) as Record<string, unknown>;
  const parts = [
    text(record.rolloutId) && `rollout ${text(record.rolloutId)}`,
    text(record.rule) && `rule ${text(record.rule)}`,
    text(record.reason),
  ].filter(Boolean);
  return parts.length > 0 ? parts.join(', ') : undefined;
}

function join(...parts: (string | undefined | false)[]): string {
  return parts.filter((part) => part !== undefined && part !== false && part !== '').join(' ');
}

/** One line per event type saying what happened; an unknown type shows its data compactly. */
const SUMMARIES: Readonly<Record<string, (data: Record<string, unknown>) => string>> = {
  HostRegistered: (d) => join(`group ${text(d.group)}, type ${text(d.hostType)}, roles ${list(d.roles)}`),
  StateObserved: (d) => join(`seq ${text(d.seq)}:`, changesSummary(d.changes)),
  StateAssigned: (d) => {
    const state = (d.state ?? {}) as Record<string, unknown>;
    const services = Object.entries((state.services ?? {}) as Record<string, { version?: string }>)
      .map(([service, spec]) => `${service}@${spec.version ?? '?'}`)
      .join(',');
    const by = assignedBy(d.by);
    return join(`state ${text(state.stateVersion)}`, text(state.mode), services, by && `(${by})`);
  },
  InstanceTerminated: (d) => join(`${text(d.status)}:`, text(d.reason)),
  HostLost: (d) => join(`silent ${text(d.silentSeconds)} s:`, text(d.reason)),
  HostDegraded: (d) => join(`needs ${text(d.dependency)}:`, text(d.reason)),
  HostRecovered: (d) => join(`${text(d.dependency)} is back`),
  HostRetired: (d) => join(text(d.reason)),
  GroupDefined: (d) => {
    const definition = (d.definition ?? {}) as Record<string, unknown>;
    const declared = Array.isArray(d.declared) ? d.declared.length : 0;
    return join(
      `definition of ${text(definition.name)} (${text(d.source)})`,
      text(d.rolloutId) && `from rollout ${text(d.rolloutId)}`,
      declared > 0 && `declares ${declared} rollout${declared === 1 ? '' : 's'}`,
    );
  },
  GroupStarted: () => 'started',
  GroupStopped: () => 'stopped',
  GroupDeleted: () => 'deleted',
  RolloutRequested: (d) =>
    join(
      `${text(d.rolloutId)}: ${text(d.service)}`,
      text(d.version) && `→ ${text(d.version)}`,
      text(d.select) && `select ${text(d.select)}`,
    ),
  RolloutStatusChanged: (d) => join(`${text(d.rolloutId)} ${text(d.status)}`, text(d.reason)),
  AlarmRaised: (d) =>
    join(`${text(d.alarm)}:`, text(d.detail), list(d.hostIds) && `(hosts ${list(d.hostIds)})`),
  AlarmCleared: (d) => join(`${text(d.episode)} cleared`),
  CapacityScaled: (d) =>
    join(`${text(d.hostType)} ${text(d.from)} → ${text(d.to)}`, text(d.because) && `(${text(d.because)})`),
  ScaleEpisodeEnded: (d) => join(`${text(d.episode)} ended`),
  ScalingDecided: (d) =>
    join(
      `${text(d.hostType)} ${text(d.from)} → ${text(d.to)}:`,
      `${text(d.recommendedBy)} recommended ${text(d.recommendation)}`,
      text(d.boundBy) !== text(d.recommendedBy) && `(bound by ${text(d.boundBy)})`,
    ),
};

export function summarise(event: EventView): string {
  const data = event.data ?? {};
  const summary = event.type === undefined ? undefined : SUMMARIES[event.type];
  if (summary) return summary(data).replace(/\s+/g, ' ').trim();
  const compact = JSON.stringify(data);
  return compact.length > 120 ? `${compact.slice(0, 119)}…` : compact;
}

const EVENT_TONES: Readonly<Record<string, Tone>> = {
  HostLost: 'bad',
  HostDegraded: 'bad',
  HostRetired: 'quiet',
  InstanceTerminated: 'bad',
  AlarmRaised: 'bad',
  HostRecovered: 'good',
  AlarmCleared: 'good',
  StateAssigned: 'busy',
  RolloutRequested: 'busy',
  ScalingDecided: 'busy',
};

export function eventTone(event: EventView): Tone | undefined {
  return event.type === undefined ? undefined : EVENT_TONES[event.type];
}

export function renderEvents(events: readonly EventView[], palette: Palette = PLAIN): string {
  if (events.length === 0) return 'no events\n';
  return renderTable<EventView>(
    [
      { header: 'VERSION', value: (e) => e.version, align: 'right' },
      { header: 'RECORDED', value: (e) => e.recordedAt },
      { header: 'TYPE', value: (e) => e.type, tone: eventTone },
      { header: 'SUMMARY', value: summarise },
    ],
    events,
    palette,
  );
}

/**
 * One event as `--follow` prints it when it comes in: the table's columns on one line, the version right-aligned
 * under the VERSION header (wider columns after it cannot be known before the events that set them arrive).
 */
export function renderEventLine(event: EventView, palette: Palette = PLAIN): string {
  return `${String(event.version ?? '-').padStart('VERSION'.length)}  ${event.recordedAt ?? '-'}  ${palette.paint(event.type ?? '-', eventTone(event))}  ${summarise(event)}\n`;
}
