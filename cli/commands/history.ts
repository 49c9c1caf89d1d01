import type { ApiClient } from '../api-client.ts';
import { type CliIo, pollEvery } from '../io.ts';
import type { Palette } from '../render/colour.ts';
import { printStreamItem } from '../render/documents.ts';
import { type EventView, renderEventLine, renderEvents } from '../render/events.ts';
import {
  exactPositionals,
  OUTPUT_OPTIONS,
  type OutputFormat,
  outputFormat,
  parseCommandArgs,
  positiveIntegerOption,
  secondsOption,
  UsageError,
} from '../usage.ts';
import {
  allPagesJson,
  CONNECTION_HELP,
  type Command,
  connect,
  encodeSegment,
  OUTPUT_HELP,
  printList,
  stdoutPalette,
} from './command.ts';

const OPTIONS = {
  ...OUTPUT_OPTIONS,
  follow: { type: 'boolean', short: 'f' },
  interval: { type: 'string' },
  count: { type: 'string' },
} as const;

/** How often `--follow` asks for new events, unless --interval says otherwise. */
export const FOLLOW_INTERVAL_MS = 2_000;

export interface FollowOptions {
  /** The history resource (`/hosts/ID/history`, `/groups/NAME/history`). */
  path: string;
  /** The last stream version already shown: only later ones are new. */
  after: number;
  intervalMs: number;
  /** Stop after this many new events; default: until Ctrl-C (or the io's signal). */
  count?: number;
  print: (event: EventView) => void;
}

/**
 * Polls a history for events past the last one shown, asking only for those (`from`), and prints each once,
 * in stream order. Returns how many it printed. Host and group histories both follow this way.
 */
export async function followEvents(io: CliIo, client: ApiClient, options: FollowOptions): Promise<number> {
  let last = options.after;
  let printed = 0;
  if (options.count !== undefined && options.count <= 0) return 0;
  await pollEvery(io, options.intervalMs, async () => {
    const events = (await allPagesJson(client, options.path, 'events', {
      from: String(last + 1),
    })) as EventView[];
    for (const event of events) {
      if (typeof event.version !== 'number' || event.version <= last) continue;
      last = event.version;
      options.print(event);
      printed += 1;
      if (options.count !== undefined && printed >= options.count) return 'stop';
    }
    return undefined;
  });
  return printed;
}

function lastVersion(events: readonly EventView[]): number {
  return Math.max(0, ...events.map((event) => (typeof event.version === 'number' ? event.version : 0)));
}

/** How new events are written while following: a line under the table, or one JSON/YAML item each. */
function streamPrinter(io: CliIo, format: Exclude<OutputFormat, 'xml'>, palette: Palette) {
  return (event: EventView) =>
    io.stdout.write(format === 'table' ? renderEventLine(event, palette) : printStreamItem(event, format));
}

interface StreamCommandSpec {
  name: string;
  summary: string;
  /** The positional's name in the usage line: ID, GROUP. */
  subject: string;
  path: (subject: string) => string;
  /** What the stream holds, for the help. */
  holds: string;
}

/** `history ID` and `events GROUP`: one stream's events, listed and optionally followed, the same way. */
function streamCommand(spec: StreamCommandSpec): Command {
  const { name, subject } = spec;
  return {
    name,
    summary: spec.summary,
    help: `Usage: fleetfold ${name} ${subject} [-o F]
       fleetfold ${name} ${subject} --follow [--interval S] [--count N] [-o table|json|yaml]

Lists ${spec.holds},
oldest first (GET ${spec.path(subject)}, every page): version, when recorded, type and what happened.

Options:
  -f, --follow     after the list, keep asking for new events and print each once as it comes (Ctrl-C
                   stops); with -o json one JSON object per line, with -o yaml one document each
  --interval S     with --follow: seconds between polls (default ${FOLLOW_INTERVAL_MS / 1000})
  --count N        with --follow: stop after N new events (e.g. wait for the next one: --count 1)
${OUTPUT_HELP}

${CONNECTION_HELP}`,
    options: OPTIONS,
    async run(args: string[], io: CliIo) {
      const { values, positionals } = parseCommandArgs(name, args, OPTIONS);
      if (values.help) {
        io.stdout.write(`${this.help}\n`);
        return 0;
      }
      const [id] = exactPositionals(name, positionals, [subject]) as [string];
      const format = outputFormat(values.output, name);
      if (!values.follow) {
        for (const flag of ['interval', 'count'] as const) {
          if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --follow`, name);
        }
      }
      if (values.follow && format === 'xml') {
        throw new UsageError('--follow prints events as they come: use -o table, json or yaml', name);
      }
      const intervalMs =
        values.interval === undefined
          ? FOLLOW_INTERVAL_MS
          : secondsOption(values.interval, '--interval', name);
      const count =
        values.count === undefined ? undefined : positiveIntegerOption(values.count, '--count', name);
      const palette = stdoutPalette(io, values);
      const client = await connect(io, values);
      const path = spec.path(id);
      const list = { path, key: 'events', xmlRoot: 'history' };
      if (!values.follow || format === 'xml') {
        await printList(
          io,
          client,
          list,
          format,
          (items, paint) => renderEvents(items as EventView[], paint),
          palette,
        );
        return 0;
      }
      const print = streamPrinter(io, format, palette);
      const events = (await allPagesJson(client, path, 'events')) as EventView[];
      if (format === 'table') io.stdout.write(renderEvents(events, palette));
      else for (const event of events) print(event);
      await followEvents(io, client, {
        path,
        after: lastVersion(events),
        intervalMs,
        print,
        ...(count ? { count } : {}),
      });
      return 0;
    },
  };
}

export const historyCommand = streamCommand({
  name: 'history',
  summary: "a host's events (snapshots, assignments, failures); --follow prints new ones as they come",
  subject: 'ID',
  path: (id) => `/hosts/${encodeSegment(id)}/history`,
  holds: "a host's events: registration, every change it reported, each state it was assigned, its failures",
});

export const eventsCommand = streamCommand({
  name: 'events',
  summary: "a group's events (definitions, start/stop, rollouts, alarms); --follow prints new ones",
  subject: 'GROUP',
  path: (group) => `/groups/${encodeSegment(group)}/history`,
  holds: "a group's events: its definitions, start and stop, rollouts and their statuses, alarms, scaling",
});
