import { readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomically } from '../../shared/atomic-file.ts';
import { statusOf } from '../../shared/fold.ts';
import type { HostStore } from '../../shared/ports.ts';
import {
  demandDir,
  hostDemandFile,
  parseSimulatedDemand,
  type SimulatedDemand,
  serializeSimulatedDemand,
  spreadDemand,
} from '../../shared/simulated-demand.ts';
import type { LocalInstance } from './local-fleet.ts';

/*
 * Local mode's stand-in for the traffic a real fleet gets: `fleetfold simulate` writes a host type's demand,
 * this spreads it over that type's live, non-draining agents, one file per host that its simulated facts
 * read, and spreads it again when hosts launch, stop or start draining, as a load balancer would.
 */

const HOST_FILE_SUFFIX = '.demand.json';
const OUT_OF_SERVICE: ReadonlySet<string> = new Set(['draining', 'stopping', 'stopped', 'lost', 'failed']);

/** What the simulator needs of the fleet: its processes (LocalFleet.list). */
export type FleetInstances = () => readonly Pick<LocalInstance, 'hostId' | 'state' | 'spec'>[];

export interface DemandSimulatorOptions {
  stateDir: string;
  instances: FleetInstances;
  /** The hosts of a group the control plane is taking out: they get no new sessions. */
  draining: (group: string) => Promise<ReadonlySet<string>>;
  /** How often the files and the fleet are looked at; default 1 s. */
  intervalMs?: number;
  onError?: (error: unknown) => void;
}

export interface DemandSimulator {
  /** One pass now (tests; the timer calls it too). */
  tick(): Promise<void>;
  stop(): Promise<void>;
}

/** Every `<demand>/<group>/<hostType>.json`, by group then host type; an unreadable one is reported and skipped. */
async function readHostTypeDemands(
  stateDir: string,
  onError: (error: unknown) => void,
): Promise<Map<string, Map<string, SimulatedDemand>>> {
  const byGroup = new Map<string, Map<string, SimulatedDemand>>();
  for (const group of await listDir(demandDir(stateDir))) {
    const types = new Map<string, SimulatedDemand>();
    for (const file of await listDir(join(demandDir(stateDir), group))) {
      if (!file.endsWith('.json')) continue;
      const path = join(demandDir(stateDir), group, file);
      try {
        types.set(file.slice(0, -'.json'.length), parseSimulatedDemand(await readFile(path, 'utf8'), path));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') onError(error);
      }
    }
    if (types.size > 0) byGroup.set(group, types);
  }
  return byGroup;
}

async function listDir(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw error;
  }
}

/** Each serving host's share: the running processes of the host type, less those draining. */
export function hostShares(
  demands: ReadonlyMap<string, ReadonlyMap<string, SimulatedDemand>>,
  instances: ReturnType<FleetInstances>,
  draining: ReadonlyMap<string, ReadonlySet<string>>,
): Map<string, SimulatedDemand> {
  const shares = new Map<string, SimulatedDemand>();
  for (const [group, types] of demands) {
    for (const [hostType, demand] of types) {
      const serving = instances
        .filter((i) => i.state === 'running' && i.spec.group === group && i.spec.hostType === hostType)
        .map((i) => i.hostId)
        .filter((hostId) => !draining.get(group)?.has(hostId));
      for (const [hostId, share] of spreadDemand(demand, serving)) shares.set(hostId, share);
    }
  }
  return shares;
}

export function startDemandSimulator(options: DemandSimulatorOptions): DemandSimulator {
  const onError =
    options.onError ?? ((error) => process.stderr.write(`demand simulator: ${String(error)}\n`));
  const hostsDir = dirname(hostDemandFile(options.stateDir, 'x'));
  /** hostId → the text last written to its file; undefined until the first pass has looked at the folder. */
  let written: Map<string, string> | undefined;

  const pass = async () => {
    if (!written) {
      // Files a previous run left: taken as written, so this pass corrects or removes them.
      written = new Map();
      for (const file of await listDir(hostsDir)) {
        if (file.endsWith(HOST_FILE_SUFFIX)) written.set(file.slice(0, -HOST_FILE_SUFFIX.length), '');
      }
    }
    const demands = await readHostTypeDemands(options.stateDir, onError);
    const draining = new Map<string, ReadonlySet<string>>();
    for (const group of demands.keys()) draining.set(group, await options.draining(group));
    const shares = hostShares(demands, options.instances(), draining);
    for (const [hostId, share] of shares) {
      const text = serializeSimulatedDemand(share);
      if (written.get(hostId) === text) continue;
      // Whole or not at all: an agent never reads half a file.
      await writeFileAtomically(hostDemandFile(options.stateDir, hostId), text);
      written.set(hostId, text);
    }
    for (const hostId of [...written.keys()]) {
      if (shares.has(hostId)) continue;
      await rm(hostDemandFile(options.stateDir, hostId), { force: true });
      written.delete(hostId);
    }
  };

  // One pass at a time: a slow store read must not let two passes write the same files.
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = running.then(pass).catch(onError);
    return running;
  };
  const timer = setInterval(() => void tick(), options.intervalMs ?? 1_000);
  timer.unref();
  return {
    tick,
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}

/**
 * The hosts the host store says serve no new sessions: a drain or stop assigned, draining or stopping
 * reported, or lost or failed (a frozen process is still running, but nothing reaches it).
 */
export function drainingFromStore(hosts: HostStore): (group: string) => Promise<ReadonlySet<string>> {
  return async (group) => {
    const draining = new Set<string>();
    let cursor: string | undefined;
    do {
      const page = await hosts.list({ group }, 100, cursor);
      for (const host of page.hosts) {
        const mode = host.assigned?.state.mode;
        const status = statusOf(host);
        const leaving = mode === 'draining' || mode === 'stopped';
        if (leaving || OUT_OF_SERVICE.has(status)) draining.add(host.hostId);
      }
      cursor = page.next;
    } while (cursor);
    return draining;
  };
}
