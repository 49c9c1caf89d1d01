import { join } from 'node:path';
import { z } from 'zod';
import { CHANNELS, type Channel } from './schemas.ts';

/*
 * Local mode's demand knob (`fleetfold simulate`): what a host type's agents should report, written as a file
 * in the state folder, spread over the type's live hosts by the embedded cloud, one file per host the agent
 * reads. The same document at both levels: sessions per channel, and optionally the load.
 */

const Sessions = z.number().int().min(0).max(1_000_000_000);

export const SimulatedDemandSchema = z.strictObject({
  sessions: z.partialRecord(z.enum(CHANNELS), Sessions),
  load: z.number().min(0).max(1).optional(),
});

export type SimulatedDemand = z.output<typeof SimulatedDemandSchema>;

/** Throws naming the file and what is wrong, so a hand-edited file that cannot count is told apart. */
export function parseSimulatedDemand(text: string, source: string): SimulatedDemand {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${source} is not JSON: ${(error as Error).message}`);
  }
  const parsed = SimulatedDemandSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${source}: ${issue?.path.join('.') || 'document'}: ${issue?.message}`);
  }
  return parsed.data;
}

export function serializeSimulatedDemand(demand: SimulatedDemand): string {
  return `${JSON.stringify(demand, null, 2)}\n`;
}

/** One `simulate` call: a channel set to a count, a channel (or every channel) cleared, the load set. */
export type DemandChange =
  | { kind: 'set'; channel: Channel; sessions: number; load?: number }
  | { kind: 'clear'; channel?: Channel };

/**
 * The host type's demand after one change; undefined when nothing is left to simulate (the file goes). Calls
 * for different channels add up; a load given once stays until cleared with the last channel.
 */
export function mergeDemand(
  current: SimulatedDemand | undefined,
  change: DemandChange,
): SimulatedDemand | undefined {
  const sessions: Partial<Record<Channel, number>> = { ...current?.sessions };
  let load = current?.load;
  if (change.kind === 'set') {
    sessions[change.channel] = change.sessions;
    if (change.load !== undefined) load = change.load;
  } else if (change.channel === undefined) {
    return undefined;
  } else {
    delete sessions[change.channel];
  }
  if (Object.keys(sessions).length === 0) return undefined;
  return { sessions, ...(load === undefined ? {} : { load }) };
}

/**
 * Each host's part of a host type's demand: every channel's total split evenly, the remainder one each to the
 * first hosts (in id order, so the split is the same on every pass). The load is per host, so each gets it.
 */
export function spreadDemand(
  demand: SimulatedDemand,
  hostIds: readonly string[],
): Map<string, SimulatedDemand> {
  const hosts = [...new Set(hostIds)].sort();
  const shares = new Map<string, SimulatedDemand>();
  hosts.forEach((hostId, index) => {
    const sessions: Partial<Record<Channel, number>> = {};
    for (const [channel, total] of Object.entries(demand.sessions) as [Channel, number][]) {
      const base = Math.floor(total / hosts.length);
      sessions[channel] = base + (index < total % hosts.length ? 1 : 0);
    }
    shares.set(hostId, { sessions, ...(demand.load === undefined ? {} : { load: demand.load }) });
  });
  return shares;
}

/** `<stateDir>/demand/<group>/<hostType>.json`: what `fleetfold simulate` writes. */
export function hostTypeDemandFile(stateDir: string, group: string, hostType: string): string {
  return join(demandDir(stateDir), group, `${hostType}.json`);
}

export function demandDir(stateDir: string): string {
  return join(stateDir, 'demand');
}

/** `<stateDir>/hosts/<hostId>.demand.json`, beside the host's secret: what its agent reads. */
export function hostDemandFile(stateDir: string, hostId: string): string {
  return join(stateDir, 'hosts', `${hostId}.demand.json`);
}
