import { CHANNELS, type Channel } from '../../shared/schemas.ts';
import type { ApiClient } from '../api-client.ts';
import { type CliIo, redrawOnChange } from '../io.ts';
import { type Palette, PLAIN, type Tone } from '../render/colour.ts';
import { printDocument } from '../render/documents.ts';
import { type Column, renderTable } from '../render/table.ts';
import {
  exactPositionals,
  OUTPUT_OPTIONS,
  outputFormat,
  parseCommandArgs,
  UsageError,
  watchIntervalMs,
} from '../usage.ts';
import { CONNECTION_HELP, type Command, connect, encodeSegment, stdoutPalette } from './command.ts';

const OPTIONS = {
  ...OUTPUT_OPTIONS,
  watch: { type: 'boolean', short: 'w' },
  interval: { type: 'string' },
} as const;

/** How often `scaling --watch` reads again: the local monitor's period. */
export const SCALING_WATCH_INTERVAL_MS = 5_000;
/** Decisions under the table; -o json shows every one the API sent. */
export const DECISIONS_SHOWN = 5;

/** One scaling decision as GET /groups/{name}/scaling returns it (its inputs are shown in the JSON view). */
export interface ScalingDecisionView {
  hostType?: string;
  from?: number;
  to?: number;
  direction?: 'up' | 'down' | 'hold';
  recommendation?: number;
  recommendedBy?: string;
  boundBy?: string;
  inputs?: {
    window?: {
      up?: { seconds?: number };
      down?: { seconds?: number; returns?: number; warmingUp?: boolean };
    };
    cooldown?: { seconds?: number; until?: string };
    metrics?: { name?: string; verdict?: string; value?: number }[];
    tolerance?: { value?: number };
  };
  at?: string;
}

export interface HostTypeScalingView {
  current?: { ready?: number; booting?: number; draining?: number; total?: number };
  desired?: number;
  min?: number;
  max?: number;
  channels?: string[];
  demand?: Partial<Record<Channel, number>>;
  load?: number;
  metrics?: Record<string, number>;
  scheduledMinimum?: number;
  forecast?: { sessions?: number | Partial<Record<Channel, number>>; at?: string };
  lastDecision?: ScalingDecisionView;
}

export interface ScalingView {
  group?: string;
  hostTypes?: Record<string, HostTypeScalingView>;
  decisions?: ScalingDecisionView[];
}

type Row = HostTypeScalingView & { name: string };

/** The metric whose verdict moved the count, when a metric did. */
function metricOf(decision: ScalingDecisionView): string {
  const metric = decision.inputs?.metrics?.find((m) => m.verdict === 'provision' || m.verdict === 'release');
  return metric?.name ? `${metric.name} ${metric.value ?? '?'}` : 'a metric';
}

/** What made the recommendation, in words. */
function recommendedWords(d: ScalingDecisionView): string {
  const asked = `asked for ${d.recommendation ?? '?'}`;
  switch (d.recommendedBy) {
    case 'demand':
      return `sessions ${asked}`;
    case 'load':
      return `load ${asked}`;
    case 'forecast':
      return `the forecast ${asked}`;
    case 'metric':
      return `${metricOf(d)} ${asked}`;
    case 'tolerance':
      return `demand within the tolerance (${d.inputs?.tolerance?.value ?? '?'}) of ${d.from ?? '?'}`;
    case 'no-signal':
      return 'no sessions, load or metric reported';
    case 'min':
      return `min ${d.recommendation ?? '?'}`;
    case 'max':
      return `max ${d.recommendation ?? '?'}`;
    default:
      return `${d.recommendedBy ?? '?'} ${asked}`;
  }
}

/** What then set the count, when something other than the recommendation did. */
function boundWords(d: ScalingDecisionView): string | undefined {
  if (d.boundBy === undefined || d.boundBy === d.recommendedBy) return undefined;
  const to = d.to ?? '?';
  switch (d.boundBy) {
    case 'stabilization': {
      const down = (d.recommendation ?? 0) < (d.from ?? 0);
      const seconds = (down ? d.inputs?.window?.down : d.inputs?.window?.up)?.seconds;
      const returns = down ? d.inputs?.window?.down?.returns : undefined;
      // Say why a window is longer than the policy's: dips that came back, or a group not yet watched an hour.
      const longer = !down
        ? ''
        : d.inputs?.window?.down?.warmingUp
          ? ', doubled until the host type has an hour of history'
          : returns
            ? `, doubled for ${returns === 1 ? 'a dip' : `${returns} dips`} that came back`
            : '';
      return `the scale-${down ? 'down' : 'up'} window${seconds === undefined ? '' : ` (${seconds} s${longer})`} keeps ${to}`;
    }
    case 'step-limit':
      return `the step limit allows ${to}`;
    case 'cooldown':
      return `cooling down${d.inputs?.cooldown?.until ? ` until ${d.inputs.cooldown.until}` : ''}: ${to}`;
    case 'schedule':
      return `the scheduled minimum is ${to}`;
    case 'min':
      return `min is ${to}`;
    case 'max':
      return `max is ${to}`;
    default:
      return `${d.boundBy}: ${to}`;
  }
}

/** "up 2→4" */
function changeOf(d: ScalingDecisionView): string {
  return `${d.direction ?? '?'} ${d.from ?? '?'}→${d.to ?? '?'}`;
}

/** Why a decision came out as it did: "sessions asked for 5, max is 4". */
export function decisionBecause(d: ScalingDecisionView): string {
  const bound = boundWords(d);
  return `${recommendedWords(d)}${bound ? `, ${bound}` : ''}`;
}

/** A decision's reason with its change and time: "up 2→4: sessions asked for 5, max is 4 (at 2031-…)". */
export function decisionReason(d: ScalingDecisionView): string {
  return `${changeOf(d)}: ${decisionBecause(d)}${d.at ? ` (at ${d.at})` : ''}`;
}

const DIRECTION_TONES: Readonly<Record<string, Tone>> = { up: 'busy', down: 'busy', hold: 'quiet' };

function currentOf(row: Row): string {
  const { ready = 0, booting = 0, draining = 0 } = row.current ?? {};
  return `${ready}+${booting}/${draining}`;
}

function rangeOf(row: Row): string | undefined {
  return row.min === undefined && row.max === undefined ? undefined : `${row.min ?? '?'}–${row.max ?? '?'}`;
}

/** A channel's demand, shown only on host types that carry the channel. */
function demandCell(row: Row, channel: Channel): number | undefined {
  return row.channels?.includes(channel) ? (row.demand?.[channel] ?? 0) : undefined;
}

function forecastOf(row: Row): string | undefined {
  const forecast = row.forecast;
  if (!forecast) return undefined;
  const sessions =
    typeof forecast.sessions === 'object'
      ? Object.values(forecast.sessions).reduce((sum, count) => sum + (count ?? 0), 0)
      : forecast.sessions;
  // A forecast is an estimate: whole sessions read better than 367.7595704842804.
  return `${sessions === undefined ? '?' : Math.round(sessions)}${forecast.at ? ` at ${forecast.at}` : ''}`;
}

function metricsOf(row: Row): string | undefined {
  const entries = Object.entries(row.metrics ?? {});
  return entries.length === 0 ? undefined : entries.map(([name, value]) => `${name}=${value}`).join(',');
}

/** Columns for what some host type has: channels nobody carries, and absent schedules or forecasts, take no room. */
function hostTypeColumns(rows: readonly Row[]): Column<Row>[] {
  const channels = CHANNELS.filter((channel) => rows.some((row) => row.channels?.includes(channel)));
  const optional = (header: string, value: (row: Row) => string | number | undefined): Column<Row>[] =>
    rows.some((row) => value(row) !== undefined) ? [{ header, value, align: 'right' }] : [];
  return [
    { header: 'HOST TYPE', value: (r) => r.name },
    { header: 'CURRENT', value: currentOf, align: 'right' },
    {
      header: 'DESIRED',
      value: (r) => r.desired,
      align: 'right',
      tone: (r) => (r.desired !== undefined && r.desired !== (r.current?.total ?? 0) ? 'busy' : undefined),
    },
    { header: 'MIN–MAX', value: rangeOf, align: 'right' },
    ...channels.map(
      (channel): Column<Row> => ({
        header: channel.toUpperCase(),
        value: (r) => demandCell(r, channel),
        align: 'right',
      }),
    ),
    { header: 'LOAD', value: (r) => r.load?.toFixed(2), align: 'right' },
    ...optional('SCHEDULED', (r) => r.scheduledMinimum),
    ...optional('FORECAST', forecastOf),
    ...(rows.some((row) => metricsOf(row) !== undefined)
      ? [{ header: 'METRICS', value: metricsOf } satisfies Column<Row>]
      : []),
    { header: 'WHY', value: (r) => (r.lastDecision ? decisionReason(r.lastDecision) : 'no decision yet') },
  ];
}

const DECISION_COLUMNS: readonly Column<ScalingDecisionView>[] = [
  { header: 'AT', value: (d) => d.at },
  { header: 'HOST TYPE', value: (d) => d.hostType },
  {
    header: 'CHANGE',
    value: changeOf,
    tone: (d) => DIRECTION_TONES[d.direction ?? ''],
  },
  { header: 'WHY', value: decisionBecause },
];

export function renderScaling(body: unknown, palette: Palette = PLAIN): string {
  const view = (body ?? {}) as ScalingView;
  const rows = Object.entries(view.hostTypes ?? {}).map(([name, type]) => ({ ...type, name }));
  if (rows.length === 0) return `group ${view.group ?? '?'} has no host types to scale\n`;
  const decisions = (view.decisions ?? []).slice(0, DECISIONS_SHOWN);
  const recent =
    decisions.length === 0
      ? 'no scaling decisions yet\n'
      : `Last ${decisions.length === 1 ? 'decision' : `${decisions.length} decisions`}, newest first:\n${renderTable(DECISION_COLUMNS, decisions, palette)}`;
  return `${renderTable(hostTypeColumns(rows), rows, palette)}\n${recent}`;
}

async function readScaling(client: ApiClient, group: string): Promise<unknown> {
  return (await client.json<unknown>('GET', `/groups/${encodeSegment(group)}/scaling`)).body;
}

export const scalingCommand: Command = {
  name: 'scaling',
  summary: "a group's current and desired host counts per host type, its demand, and why",
  help: `Usage: fleetfold scaling GROUP [-o F] [--watch [--interval S]]

Per host type of the group: how many hosts it has (CURRENT: ready+booting/draining), how many the autoscaler
wants (DESIRED) within MIN–MAX, the sessions per channel it carries, its mean load, any scheduled minimum,
forecast and business metrics, and WHY: the last decision, what asked for the count and what then bound it
(a window, a step limit, the cooldown, the schedule, min or max). The last ${DECISIONS_SHOWN} decisions follow; -o json
or -o yaml show them all, with every input (metric values, thresholds, forecast, windows).

Options:
  -w, --watch      keep reading and draw the table again whenever it changes (Ctrl-C stops)
  --interval S     with --watch: seconds between reads (default ${SCALING_WATCH_INTERVAL_MS / 1000})
  -o, --output F   table (default), json or yaml

${CONNECTION_HELP}`,
  options: OPTIONS,
  async run(args: string[], io: CliIo) {
    const { values, positionals } = parseCommandArgs('scaling', args, OPTIONS);
    if (values.help) {
      io.stdout.write(`${this.help}\n`);
      return 0;
    }
    const [group] = exactPositionals('scaling', positionals, ['GROUP']) as [string];
    const format = outputFormat(values.output, 'scaling');
    if (format === 'xml') throw new UsageError('--output must be table, json or yaml here', 'scaling');
    if (values.watch && format !== 'table') {
      throw new UsageError(
        '--watch draws the table again on each change: use it without --output',
        'scaling',
      );
    }
    const intervalMs = watchIntervalMs(values, 'scaling', SCALING_WATCH_INTERVAL_MS);
    const palette = stdoutPalette(io, values);
    const client = await connect(io, values);
    const body = await readScaling(client, group);
    if (format !== 'table') {
      io.stdout.write(printDocument(body, format));
      return 0;
    }
    const first = renderScaling(body, palette);
    io.stdout.write(first);
    if (values.watch) {
      await redrawOnChange(io, intervalMs, first, async () =>
        renderScaling(await readScaling(client, group), palette),
      );
    }
    return 0;
  },
};
