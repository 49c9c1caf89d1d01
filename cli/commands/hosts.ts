import type { CliIo } from '../io.ts';
import { type Column, renderTable } from '../render/table.ts';
import { exactPositionals, OUTPUT_OPTIONS, outputFormat, parseCommandArgs, UsageError } from '../usage.ts';
import { allPagesJson, allPagesXml, CONNECTION_HELP, type Command, connect, OUTPUT_HELP } from './command.ts';

const OPTIONS = {
  ...OUTPUT_OPTIONS,
  role: { type: 'string' },
  status: { type: 'string' },
  group: { type: 'string' },
  service: { type: 'string' },
  version: { type: 'string' },
} as const;

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

export const HOST_COLUMNS: readonly Column<HostRow>[] = [
  { header: 'HOST', value: (h) => h.hostId },
  { header: 'GROUP', value: (h) => h.group },
  { header: 'TYPE', value: (h) => h.hostType },
  { header: 'ROLE', value: (h) => h.role },
  // "degraded (db)": which dependency took it down, as GET /hosts says.
  {
    header: 'STATUS',
    value: (h) =>
      h.status === 'degraded' && h.degradedBy?.dependency
        ? `degraded (${h.degradedBy.dependency})`
        : h.status,
  },
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

export function renderHosts(hosts: readonly HostRow[]): string {
  return hosts.length === 0 ? 'no hosts match\n' : renderTable(HOST_COLUMNS, hosts);
}

export const hostsCommand: Command = {
  name: 'hosts',
  summary: 'list hosts (every page), filtered by role, status, group, service and version',
  help: `Usage: fleetfold hosts [--role R] [--status S] [--group G] [--service S [--version V]] [-o F]

Lists every host the API knows that matches all the filters given.

Options:
  --role R         primary role
  --status S       pending, booting, running, draining, stopping, stopped, failed, lost or degraded
  --group G        group
  --service S      hosts running service S
  --version V      ... at version V (needs --service)
${OUTPUT_HELP}

${CONNECTION_HELP}`,
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
    const client = await connect(io, values);
    if (format === 'xml') {
      const xml = await allPagesXml(client, '/hosts', 'hosts', filter);
      io.stdout.write(xml.endsWith('\n') ? xml : `${xml}\n`);
      return 0;
    }
    const hosts = await allPagesJson(client, '/hosts', 'hosts', filter);
    io.stdout.write(
      format === 'json' ? `${JSON.stringify({ hosts }, null, 2)}\n` : renderHosts(hosts as HostRow[]),
    );
    return 0;
  },
};
