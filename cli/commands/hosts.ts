import type { ApiClient } from '../api-client.ts';
import { type CliIo, redrawOnChange } from '../io.ts';
import { type Palette, PLAIN, statusTone } from '../render/colour.ts';
import { type Column, renderTable } from '../render/table.ts';
import {
  exactPositionals,
  OUTPUT_OPTIONS,
  outputFormat,
  parseCommandArgs,
  UsageError,
  watchIntervalMs,
} from '../usage.ts';
import {
  allPagesJson,
  CONNECTION_HELP,
  type Command,
  connect,
  OUTPUT_HELP,
  type PagedList,
  printList,
  stdoutPalette,
} from './command.ts';

const OPTIONS = {
  ...OUTPUT_OPTIONS,
  role: { type: 'string' },
  status: { type: 'string' },
  group: { type: 'string' },
  service: { type: 'string' },
  version: { type: 'string' },
  watch: { type: 'boolean', short: 'w' },
  interval: { type: 'string' },
} as const;

/** How often `hosts --watch` reads the list again, unless --interval says otherwise. */
export const HOSTS_WATCH_INTERVAL_MS = 2_000;

/** What the table needs of a host; the JSON view shows the API's whole document. */
export interface HostRow {
  hostId?: string;
  group?: string;
  hostType?: string;
  role?: string;
  status?: string;
  degradedBy?: { dependency?: string };
  version?: number;
  lastSeen?: string;
  metrics?: { load?: number; sessions?: Record<string, number> };
  state?: { ips?: { internal?: string }; software?: Record<string, { version?: string }> };
}

function sessionsOf(host: HostRow): number | undefined {
  const sessions = host.metrics?.sessions;
  return sessions ? Object.values(sessions).reduce((sum, count) => sum + count, 0) : undefined;
}

/** "degraded (db)": which dependency took it down, as GET /hosts says. */
export function hostStatusLabel(h: HostRow): string | undefined {
  return h.status === 'degraded' && h.degradedBy?.dependency
    ? `degraded (${h.degradedBy.dependency})`
    : h.status;
}

export const HOST_COLUMNS: readonly Column<HostRow>[] = [
  { header: 'HOST', value: (h) => h.hostId },
  { header: 'GROUP', value: (h) => h.group },
  { header: 'TYPE', value: (h) => h.hostType },
  { header: 'ROLE', value: (h) => h.role },
  { header: 'STATUS', value: hostStatusLabel, tone: (h) => statusTone(h.status) },
  { header: 'IP', value: (h) => h.state?.ips?.internal },
  { header: 'LOAD', value: (h) => h.metrics?.load?.toFixed(2), align: 'right' },
  { header: 'SESSIONS', value: sessionsOf, align: 'right' },
  {
    header: 'SERVICES',
    value: (h) =>
      Object.entries(h.state?.software ?? {})
        .map(([service, instance]) => `${service}@${instance.version ?? '?'}`)
        .join(','),
  },
  { header: 'LAST SEEN', value: (h) => h.lastSeen },
];

export function renderHosts(hosts: readonly HostRow[], palette: Palette = PLAIN): string {
  return hosts.length === 0 ? 'no hosts match\n' : renderTable(HOST_COLUMNS, hosts, palette);
}

/** Reads the list every interval and draws the table again when it changed (redrawOnChange). */
export async function watchHosts(
  io: CliIo,
  client: ApiClient,
  list: PagedList,
  first: string,
  intervalMs: number,
  palette: Palette,
): Promise<void> {
  await redrawOnChange(io, intervalMs, first, async () =>
    renderHosts((await allPagesJson(client, list.path, list.key, list.query)) as HostRow[], palette),
  );
}

export const hostsCommand: Command = {
  name: 'hosts',
  summary: 'list hosts (every page), filtered by role, status, group, service and version',
  help: `Usage: fleetfold hosts [--role R] [--status S] [--group G] [--service S [--version V]] [-o F]
       fleetfold hosts [filters] --watch [--interval S]

Lists every host the API knows that matches all the filters given.

Options:
  --role R         primary role
  --status S       pending, booting, running, draining, stopping, stopped, failed, lost or degraded
  --group G        group
  --service S      hosts running service S
  --version V      ... at version V (needs --service)
  -w, --watch      keep reading the list and draw the table again whenever it changes (Ctrl-C stops)
  --interval S     with --watch: seconds between reads (default ${HOSTS_WATCH_INTERVAL_MS / 1000})
${OUTPUT_HELP}

${CONNECTION_HELP}`,
  options: OPTIONS,
  async run(args: string[], io: CliIo) {
    const { values, positionals } = parseCommandArgs('hosts', args, OPTIONS);
    if (values.help) {
      io.stdout.write(`${this.help}\n`);
      return 0;
    }
    exactPositionals('hosts', positionals, []);
    const format = outputFormat(values.output, 'hosts');
    if (values.version !== undefined && values.service === undefined) {
      throw new UsageError('--version needs --service: which service runs at that version?', 'hosts');
    }
    const filter = {
      role: values.role,
      status: values.status,
      group: values.group,
      service: values.service,
      version: values.version,
    };
    if (values.watch && format !== 'table') {
      throw new UsageError('--watch draws the table again on each change: use it without --output', 'hosts');
    }
    const intervalMs = watchIntervalMs(values, 'hosts', HOSTS_WATCH_INTERVAL_MS);
    const palette = stdoutPalette(io, values);
    const client = await connect(io, values);
    const list: PagedList = { path: '/hosts', key: 'hosts', xmlRoot: 'hosts', query: filter };
    const render = (items: unknown[], paint: Palette) => renderHosts(items as HostRow[], paint);
    const hosts = await printList(io, client, list, format, render, palette);
    if (values.watch) await watchHosts(io, client, list, render(hosts, palette), intervalMs, palette);
    return 0;
  },
};
