import type { ApiClient } from '../api-client.ts';
import { type CliIo, pollEvery } from '../io.ts';
import { type Palette, PLAIN } from '../render/colour.ts';
import { type Column, renderTable } from '../render/table.ts';
import { exactPositionals, OUTPUT_OPTIONS, outputFormat, parseCommandArgs, UsageError } from '../usage.ts';
import {
  allPagesJson,
  CONNECTION_HELP,
  type Command,
  connect,
  OUTPUT_HELP,
  printList,
  stdoutPalette,
} from './command.ts';

const OPTIONS = {
  ...OUTPUT_OPTIONS,
  group: { type: 'string' },
  since: { type: 'string' },
  watch: { type: 'boolean', short: 'w' },
} as const;

export const ALARM_POLL_INTERVAL_MS = 5_000;

/** What the table needs of an alarm; the JSON view shows the API's whole document. */
export interface AlarmRow {
  group?: string;
  alarmId?: string;
  alarm?: string;
  detail?: string;
  at?: string;
  hostIds?: string[];
  rolloutId?: string;
  clearedAt?: string;
  diagnosis?: { hosts?: { hostId?: string }[] };
}

function hostsOf(alarm: AlarmRow): string | undefined {
  const hosts = alarm.diagnosis?.hosts?.map((host) => host.hostId ?? '?') ?? alarm.hostIds;
  return hosts && hosts.length > 0 ? hosts.join(',') : undefined;
}

export const ALARM_COLUMNS: readonly Column<AlarmRow>[] = [
  { header: 'RAISED', value: (a) => a.at },
  { header: 'GROUP', value: (a) => a.group },
  { header: 'ALARM', value: (a) => a.alarm, tone: (a) => (a.clearedAt ? 'quiet' : 'bad') },
  { header: 'HOSTS', value: hostsOf },
  { header: 'CLEARED', value: (a) => a.clearedAt },
  { header: 'DETAIL', value: (a) => a.detail },
];

export function renderAlarms(alarms: readonly AlarmRow[], palette: Palette = PLAIN): string {
  return alarms.length === 0 ? 'no alarms\n' : renderTable(ALARM_COLUMNS, alarms, palette);
}

/** One alarm as `--watch` prints it when it comes in: the table's columns on one line. */
export function renderAlarmLine(alarm: AlarmRow): string {
  const hosts = hostsOf(alarm);
  const detail = (alarm.detail ?? '').replace(/\s+/g, ' ').trim();
  return `${alarm.at ?? '-'}  ${alarm.group ?? '-'}  ${alarm.alarm ?? '-'}  ${detail}${hosts ? ` (hosts ${hosts})` : ''}\n`;
}

const keyOf = (alarm: AlarmRow) => `${alarm.at}#${alarm.group}#${alarm.alarmId}`;

/**
 * Polls every ALARM_POLL_INTERVAL_MS and prints the alarms not seen before, oldest first. Each poll asks
 * only for what was raised since the newest alarm seen; `polls` bounds the loop (tests), default forever.
 */
export async function watchAlarms(
  client: ApiClient,
  query: { group?: string; since?: string },
  seen: readonly AlarmRow[],
  io: CliIo,
  polls = Number.POSITIVE_INFINITY,
): Promise<void> {
  const known = new Set(seen.map(keyOf));
  let since = [...seen.map((alarm) => alarm.at ?? ''), query.since ?? ''].sort().at(-1) || undefined;
  let poll = 0;
  await pollEvery(io, ALARM_POLL_INTERVAL_MS, async () => {
    if (poll >= polls) return 'stop';
    poll += 1;
    const alarms = (await allPagesJson(client, '/alarms', 'alarms', { ...query, since })) as AlarmRow[];
    const fresh = alarms.filter((alarm) => !known.has(keyOf(alarm))).reverse();
    for (const alarm of fresh) {
      known.add(keyOf(alarm));
      io.stdout.write(renderAlarmLine(alarm));
      if (alarm.at && (since === undefined || alarm.at > since)) since = alarm.at;
    }
    return poll >= polls ? 'stop' : undefined;
  });
}

export const alarmsCommand: Command = {
  name: 'alarms',
  summary: 'list the alarms groups raised, newest first; --watch prints new ones as they come',
  help: `Usage: fleetfold alarms [--group G] [--since T] [--watch] [-o F]

Lists the alarms the control plane raised (repeated host failures, failed rollouts, rules' alarms), newest
first, with the hosts they name and when their episode cleared.

Options:
  --group G        only alarms of group G
  --since T        only alarms raised at or after T (ISO 8601, e.g. 2031-02-03T04:00:00Z)
  -w, --watch      after the list, poll every 5 s and print each new alarm on one line (Ctrl-C stops)
${OUTPUT_HELP}

${CONNECTION_HELP}`,
  options: OPTIONS,
  async run(args: string[], io: CliIo) {
    const { values, positionals } = parseCommandArgs('alarms', args, OPTIONS);
    if (values.help) {
      io.stdout.write(`${this.help}\n`);
      return 0;
    }
    exactPositionals('alarms', positionals, []);
    const format = outputFormat(values.output, 'alarms');
    if (values.watch && format !== 'table') {
      throw new UsageError('--watch prints one line per new alarm: use it without --output', 'alarms');
    }
    const query = { group: values.group, since: values.since };
    const client = await connect(io, values);
    const list = { path: '/alarms', key: 'alarms', xmlRoot: 'alarms', query };
    const render = (items: unknown[], palette: Palette) => renderAlarms(items as AlarmRow[], palette);
    const alarms = await printList(io, client, list, format, render, stdoutPalette(io, values));
    if (values.watch) await watchAlarms(client, query, alarms as AlarmRow[], io);
    return 0;
  },
};
