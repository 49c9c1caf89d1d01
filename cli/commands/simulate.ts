import { readFile, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomically } from '../../shared/atomic-file.ts';
import { CHANNELS, type Channel } from '../../shared/schemas.ts';
import {
  type DemandChange,
  hostTypeDemandFile,
  mergeDemand,
  parseSimulatedDemand,
  type SimulatedDemand,
  serializeSimulatedDemand,
} from '../../shared/simulated-demand.ts';
import type { ApiClient } from '../api-client.ts';
import { endpointsFile } from '../endpoints.ts';
import type { CliIo } from '../io.ts';
import { CONNECTION_OPTIONS, exactPositionals, parseCommandArgs, UsageError } from '../usage.ts';
import { asRecord, CONNECTION_HELP, type Command, connect, encodeSegment } from './command.ts';

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  channel: { type: 'string' },
  sessions: { type: 'string' },
  load: { type: 'string' },
  clear: { type: 'boolean' },
} as const;

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** The demand is a file the embedded cloud reads: only an API on this machine has one to read it. */
export function isLocalApi(api: string): boolean {
  const { hostname } = new URL(api);
  return LOOPBACK_HOSTS.has(hostname) || hostname.startsWith('127.');
}

function channelOption(value: string | undefined): Channel | undefined {
  if (value === undefined) return undefined;
  if ((CHANNELS as readonly string[]).includes(value)) return value as Channel;
  throw new UsageError(`--channel must be one of ${CHANNELS.join(', ')}, got "${value}"`, 'simulate');
}

function sessionsOption(value: string): number {
  const sessions = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(sessions) || sessions > 1_000_000_000) {
    throw new UsageError(
      `--sessions must be a whole number of sessions (0 or more), got "${value}"`,
      'simulate',
    );
  }
  return sessions;
}

function loadOption(value: string): number {
  const load = /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!(load >= 0 && load <= 1)) {
    throw new UsageError(`--load must be a fraction from 0 to 1 (e.g. 0.7), got "${value}"`, 'simulate');
  }
  return load;
}

/** The change the flags ask for; every flag that makes no sense with the others is refused, named. */
export function demandChange(values: {
  channel?: string;
  sessions?: string;
  load?: string;
  clear?: boolean;
}): DemandChange {
  const channel = channelOption(values.channel);
  if (values.clear) {
    if (values.sessions !== undefined) {
      throw new UsageError('--clear and --sessions contradict each other: give one', 'simulate');
    }
    if (values.load !== undefined) {
      throw new UsageError('--load sets the load with a demand: it cannot go with --clear', 'simulate');
    }
    return channel === undefined ? { kind: 'clear' } : { kind: 'clear', channel };
  }
  if (channel === undefined) {
    throw new UsageError(`--channel is needed: which traffic (${CHANNELS.join(', ')})?`, 'simulate');
  }
  if (values.sessions === undefined) {
    throw new UsageError('--sessions N is needed (or --clear to stop simulating the channel)', 'simulate');
  }
  const sessions = sessionsOption(values.sessions);
  return values.load === undefined
    ? { kind: 'set', channel, sessions }
    : { kind: 'set', channel, sessions, load: loadOption(values.load) };
}

async function readDemand(path: string): Promise<SimulatedDemand | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return parseSimulatedDemand(text, path);
  } catch (error) {
    throw new UsageError(`${(error as Error).message}; fix it, or delete it to start over`, 'simulate');
  }
}

/** Applies one change to the host type's demand file (removed once nothing is left); returns what is left. */
export async function updateDemandFile(
  path: string,
  change: DemandChange,
): Promise<SimulatedDemand | undefined> {
  const next = mergeDemand(await readDemand(path), change);
  if (next === undefined) await rm(path, { force: true });
  else await writeFileAtomically(path, serializeSimulatedDemand(next));
  return next;
}

export function describeDemand(group: string, hostType: string, demand: SimulatedDemand | undefined): string {
  if (demand === undefined) {
    return `${group}/${hostType}: no simulated demand; its hosts are back to their own random traffic\n`;
  }
  const channels = Object.entries(demand.sessions)
    .map(([channel, sessions]) => `${channel} ${sessions}`)
    .join(', ');
  const load = demand.load === undefined ? '' : `, load ${demand.load}`;
  return `${group}/${hostType}: simulating ${channels} sessions${load}, spread over its running hosts that are not draining\n`;
}

/** The host types the group defines, to refuse a misspelt one rather than simulate for nobody. */
async function hostTypesOf(client: ApiClient, group: string): Promise<string[]> {
  const { body } = await client.json<unknown>('GET', `/groups/${encodeSegment(group)}`);
  return Object.keys(asRecord(asRecord(asRecord(body).definition).hostTypes));
}

export const simulateCommand: Command = {
  name: 'simulate',
  summary: "local mode: make a host type's agents report a demand (sessions per channel, load)",
  help: `Usage: fleetfold simulate GROUP HOSTTYPE --channel C --sessions N [--load X]
       fleetfold simulate GROUP HOSTTYPE --clear [--channel C]

Local mode only (npm start on this machine). Sets the traffic a host type's agents report: N live sessions
on channel C in all, spread evenly over its running hosts that are not draining (spread again as hosts come
and go), and, with --load, each host's load. Calls for other channels add to it; --sessions 0 makes the
channel idle; --clear gives a channel (or, without --channel, all of them) back to the hosts' own random
traffic. Hosts report at most their capacity; a draining host still winds its sessions down.

The demand is kept in <state>/demand/GROUP/HOSTTYPE.json (<state>: $FLEETFOLD_STATE_DIR, else ./.fleetfold).

Options:
  --channel C      ${CHANNELS.join(', ')}
  --sessions N     live sessions on that channel over the whole host type (0 or more)
  --load X         each host's load, from 0 to 1
  --clear          stop simulating the channel (all channels without --channel)

${CONNECTION_HELP}`,
  options: OPTIONS,
  async run(args: string[], io: CliIo) {
    const { values, positionals } = parseCommandArgs('simulate', args, OPTIONS);
    if (values.help) {
      io.stdout.write(`${this.help}\n`);
      return 0;
    }
    const [group, hostType] = exactPositionals('simulate', positionals, ['GROUP', 'HOSTTYPE']) as [
      string,
      string,
    ];
    const change = demandChange(values);
    const client = await connect(io, values);
    if (!isLocalApi(client.api)) {
      throw new UsageError(
        `simulate works in local mode only: the API ${client.api} is not on this machine (npm start serves it on 127.0.0.1)`,
        'simulate',
      );
    }
    const stateDir = dirname(endpointsFile(io.env, io.cwd));
    const folder = await stat(stateDir).catch(() => undefined);
    if (!folder?.isDirectory()) {
      throw new UsageError(
        `simulate works in local mode only: there is no local state folder ${stateDir} (run "npm start" here, or set FLEETFOLD_STATE_DIR to its folder)`,
        'simulate',
      );
    }
    // Also keeps the file names to the API's names: nothing like "../x" reaches the path.
    const hostTypes = await hostTypesOf(client, group);
    if (!hostTypes.includes(hostType)) {
      throw new UsageError(
        `group ${group} has no host type "${hostType}" (it has ${hostTypes.join(', ') || 'none'})`,
        'simulate',
      );
    }
    const demand = await updateDemandFile(hostTypeDemandFile(stateDir, group, hostType), change);
    io.stdout.write(describeDemand(group, hostType, demand));
    return 0;
  },
};
