import { ApiError } from '../api-client.ts';
import type { CliIo } from '../io.ts';
import { type Palette, PLAIN, statusTone } from '../render/colour.ts';
import { type ChangeView, renderChanges } from '../render/diff.ts';
import { printDocument } from '../render/documents.ts';
import { renderDetails, renderTable } from '../render/table.ts';
import { exactPositionals, OUTPUT_OPTIONS, outputFormat, parseCommandArgs } from '../usage.ts';
import {
  CONNECTION_HELP,
  type Command,
  connect,
  encodeSegment,
  OUTPUT_HELP,
  printResource,
  stdoutPalette,
} from './command.ts';
import { type HostRow, hostStatusLabel } from './hosts.ts';

/** GET /hosts/{id} as the detail view reads it; the JSON and YAML views show the whole document. */
export interface HostDetail extends HostRow {
  roles?: string[];
  lastSeq?: number;
  registeredAt?: string;
  observedAt?: string;
  lost?: { at?: string; reason?: string };
  retired?: { at?: string; reason?: string };
  state?: HostRow['state'] & {
    ips?: { internal?: string; external?: string };
    capacity?: { sessions?: number; cpus?: number; memoryMiB?: number };
    config?: { version?: string; values?: Record<string, string> };
    software?: Record<string, { version?: string; status?: string; port?: number }>;
    appliedStateVersion?: number;
  };
}

/** GET /hosts/{id}/drift: what it was last told against what it reported. */
export interface DriftView {
  assignedVersion?: number;
  observedVersion?: number;
  inSync?: boolean;
  changes?: ChangeView[];
}

function sessionsLine(sessions: Record<string, number> | undefined): string | undefined {
  if (!sessions) return undefined;
  return Object.entries(sessions)
    .map(([channel, count]) => `${channel} ${count}`)
    .join(', ');
}

function capacityLine(capacity: NonNullable<HostDetail['state']>['capacity']): string | undefined {
  if (!capacity) return undefined;
  const parts = [
    capacity.sessions !== undefined ? `${capacity.sessions} sessions` : undefined,
    capacity.cpus !== undefined ? `${capacity.cpus} cpus` : undefined,
    capacity.memoryMiB !== undefined ? `${capacity.memoryMiB} MiB` : undefined,
  ].filter((part) => part !== undefined);
  return parts.length > 0 ? parts.join(', ') : undefined;
}

function driftLine(drift: DriftView | undefined): string {
  if (drift === undefined) return 'never assigned a state';
  const versions = `assigned state ${drift.assignedVersion ?? '?'}, reports ${drift.observedVersion ?? '?'}`;
  const count = drift.changes?.length ?? 0;
  return drift.inSync
    ? `in sync (${versions})`
    : `${count} difference${count === 1 ? '' : 's'} (${versions})`;
}

/**
 * One host: identity and status, addresses, capacity, load and sessions, then its services and config, and
 * how what it reports differs from what it was last told (drift, when it was ever told anything).
 */
export function renderHost(host: HostDetail, drift: DriftView | undefined, palette: Palette = PLAIN): string {
  const state = host.state;
  const sections = [
    renderDetails(
      [
        ['host', host.hostId],
        ['group', host.group],
        ['type', host.hostType],
        ['roles', host.roles?.join(',') ?? host.role],
        ['status', hostStatusLabel(host), statusTone(host.status)],
        ['version', host.version],
        ['last seq', host.lastSeq],
        ['registered', host.registeredAt],
        ['last seen', host.lastSeen],
        ['observed', host.observedAt],
        ['ip', state?.ips?.internal],
        ['external ip', state?.ips?.external],
        ['capacity', capacityLine(state?.capacity)],
        ['load', host.metrics?.load?.toFixed(2)],
        ['sessions', sessionsLine(host.metrics?.sessions)],
        ['config version', state?.config?.version],
        ['applied state', state?.appliedStateVersion],
        ['lost', host.lost ? `${host.lost.at ?? '?'}: ${host.lost.reason ?? ''}` : undefined, 'bad'],
        [
          'retired',
          host.retired ? `${host.retired.at ?? '?'}: ${host.retired.reason ?? ''}` : undefined,
          'quiet',
        ],
        ['drift', driftLine(drift), drift === undefined ? undefined : drift.inSync ? 'good' : 'busy'],
      ],
      palette,
    ),
  ];
  const services = Object.entries(state?.software ?? {}).map(([service, instance]) => ({
    service,
    ...instance,
  }));
  if (services.length > 0) {
    sections.push(
      renderTable(
        [
          { header: 'SERVICE', value: (s) => s.service },
          { header: 'VERSION', value: (s) => s.version },
          { header: 'STATUS', value: (s) => s.status, tone: (s) => statusTone(s.status) },
          // Most services report no port: the column only when one does.
          ...(services.some((s) => s.port !== undefined)
            ? [{ header: 'PORT', value: (s: (typeof services)[number]) => s.port, align: 'right' as const }]
            : []),
        ],
        services,
        palette,
      ),
    );
  }
  const config = Object.entries(state?.config?.values ?? {});
  if (config.length > 0) {
    sections.push(
      renderTable(
        [
          { header: 'CONFIG', value: ([key]: [string, string]) => key },
          { header: 'VALUE', value: ([, value]) => value },
        ],
        config,
        palette,
      ),
    );
  }
  if (drift && !drift.inSync && drift.changes && drift.changes.length > 0) {
    sections.push(`drift (reported → assigned):\n${renderChanges(drift.changes, palette)}`);
  }
  return sections.join('\n');
}

/** The drift, or undefined when the host was never assigned a state (the API's 404 for it). */
async function readDrift(client: Awaited<ReturnType<typeof connect>>, path: string) {
  try {
    return (await client.json<DriftView>('GET', `${path}/drift`)).body;
  } catch (error) {
    if (error instanceof ApiError && error.problem.status === 404) return undefined;
    throw error;
  }
}

export const hostCommand: Command = {
  name: 'host',
  summary: 'show one host: status, services, config, metrics, last seen, and its drift',
  help: `Usage: fleetfold host ID [-o F]

Shows one host (GET /hosts/ID): identity, status, addresses, capacity, load and sessions, last seen, its
services and config, and its drift (GET /hosts/ID/drift): how what it last reported differs from what it was
last told. -o json, yaml and xml print the host document as the API sends it.

Options:
${OUTPUT_HELP}

${CONNECTION_HELP}`,
  options: OUTPUT_OPTIONS,
  async run(args: string[], io: CliIo) {
    const { values, positionals } = parseCommandArgs('host', args, OUTPUT_OPTIONS);
    if (values.help) {
      io.stdout.write(`${this.help}\n`);
      return 0;
    }
    const [id] = exactPositionals('host', positionals, ['ID']) as [string];
    const format = outputFormat(values.output, 'host');
    const palette = stdoutPalette(io, values);
    const client = await connect(io, values);
    const path = `/hosts/${encodeSegment(id)}`;
    if (format === 'xml') {
      await printResource(io, client, path, format, () => '', palette);
      return 0;
    }
    // The host first: an unknown host is its 404, not the drift's.
    const host = (await client.json<HostDetail>('GET', path)).body;
    if (format !== 'table') {
      io.stdout.write(printDocument(host, format));
      return 0;
    }
    io.stdout.write(renderHost(host, await readDrift(client, path), palette));
    return 0;
  },
};
