/**
 * The monitor's scaling pass over one group, pure: for each host type with a `scaling` block, what its hosts
 * carry now (the rules' view of them: live sessions per channel and load of the ready hosts, their business
 * metrics, how many are ready, booting and draining), the schedule's floor, the forecast from the scaling
 * document's demand samples, and decideScale's answer; with the document as it should be after the tick.
 * The monitor appends the decisions that change a count and writes the document only when it changed;
 * GET /groups/{name}/scaling shows the same assessment. Once an hour per host type the predictor's cache of the
 * lookback weeks is loaded from the hour documents demandHoursToRead names (readDemandHours, the one function
 * here doing I/O, for both of them), and the hour just over is handed back to be written.
 */

import type { ScalingDecidedData } from '../groups/events.ts';
import type { GroupDocument } from '../groups/group-state.ts';
import type { CompiledHostType } from '../groups/model.ts';
import type { DocumentStore } from '../groups/ports.ts';
import type { RuleHost } from '../rules/types.ts';
import { decideScale, type HostCounts, type ScaleDecision } from '../scaling/autoscaler.ts';
import {
  completedHours,
  DEMAND_HOUR_KIND,
  type DemandHour,
  demandHourId,
  demandMemoryOf,
  demandSamples,
  predictedChannels,
  seasonalHoursToRead,
  withSeasonal,
} from '../scaling/demand-memory.ts';
import { type CompiledScalingPolicy, compileScalingPolicy } from '../scaling/policy.ts';
import { forecastDemand } from '../scaling/predictor.ts';
import {
  EMPTY_SCALING,
  expandHistory,
  type HostTypeMemory,
  recordTick,
  type ScalingDocument,
} from '../scaling/scaling-document.ts';
import { scheduledMinimum } from '../scaling/schedule.ts';
import { CHANNELS, type Channel } from '../schemas.ts';

const READY: ReadonlySet<string> = new Set(['running', 'degraded']);
const BOOTING: ReadonlySet<string> = new Set(['pending', 'booting']);
const DRAINING: ReadonlySet<string> = new Set(['draining', 'stopping']);

/** What a host type's hosts report now. */
export interface HostTypeObservation {
  counts: Omit<HostCounts, 'desired'> & { total: number };
  /** Live sessions per channel, summed over the ready hosts (every channel, 0 when none). */
  demand: Record<Channel, number>;
  /** Mean load of the ready hosts; undefined without any. */
  load?: number;
  /** Mean of every other metric the ready hosts report (`host.metrics.<name>` in rules), by name. */
  metrics: Record<string, number>;
}

/** Metrics the observation has fields of its own for. */
const isUsage = (name: string) => name === 'load' || name.startsWith('sessions.');

export function observeHostType(hosts: readonly RuleHost[], hostType: string): HostTypeObservation {
  const own = hosts.filter((host) => host.hostType === hostType);
  const ready = own.filter((host) => READY.has(host.status));
  const demand = Object.fromEntries(CHANNELS.map((channel) => [channel, 0])) as Record<Channel, number>;
  const sums: Record<string, { sum: number; n: number }> = {};
  let load = 0;
  for (const host of ready) {
    for (const channel of CHANNELS) demand[channel] += Math.max(0, host.sessions[channel] ?? 0);
    load += host.load;
    for (const [name, value] of Object.entries(host.metrics)) {
      if (isUsage(name)) continue;
      const entry = sums[name] ?? { sum: 0, n: 0 };
      entry.sum += value;
      entry.n += 1;
      sums[name] = entry;
    }
  }
  const booting = own.filter((host) => BOOTING.has(host.status)).length;
  const draining = own.filter((host) => DRAINING.has(host.status)).length;
  return {
    counts: { ready: ready.length, booting, draining, total: ready.length + booting + draining },
    demand,
    ...(ready.length === 0 ? {} : { load: load / ready.length }),
    metrics: Object.fromEntries(Object.entries(sums).map(([name, { sum, n }]) => [name, sum / n])),
  };
}

export interface HostTypeScaling {
  hostType: string;
  policy: CompiledScalingPolicy;
  observation: HostTypeObservation;
  scheduledMinimum?: number;
  /** Sessions per channel expected within the lead, and when the lead ends (epoch ms). */
  forecast?: { sessions: Partial<Record<Channel, number>>; at: number };
  decision: ScaleDecision;
  /** The host type's memory after this tick. */
  memory: HostTypeMemory;
}

export interface ScalingAssessment {
  hostTypes: HostTypeScaling[];
  /** The decisions that change a count, to append as ScalingDecided. */
  decisions: ScalingDecidedData[];
  /** The scaling document after the tick (decisions not yet added: only those appended are). */
  document: ScalingDocument;
  /** Hour documents to write before the document (put once: one already there is the same hour). */
  demandHours: Array<{ hostType: string; hour: DemandHour }>;
}

/** Hour documents as read, by host type and hour; a missing one is a gap. */
export type DemandHours = ReadonlyMap<string, ReadonlyMap<number, DemandHour>>;

/** The host types of the group the autoscaler moves. */
export function scaledHostTypes(group: Pick<GroupDocument, 'compiled'>): CompiledHostType[] {
  return Object.values(group.compiled.hostTypes).filter((type) => type.scaling !== undefined);
}

function scaledPolicies(group: Pick<GroupDocument, 'compiled'>) {
  // compileGroup checked the block; compiling it here resolves its defaults against the host type.
  return scaledHostTypes(group).map((type) => ({
    type,
    policy: compileScalingPolicy(type.scaling, type, { at: `hostTypes.${type.name}.scaling` }),
  }));
}

/** The hour documents assessScaling needs at `now`: none but in a host type's first tick of an hour. */
export function demandHoursToRead(
  group: Pick<GroupDocument, 'compiled'>,
  stored: ScalingDocument | undefined,
  now: number,
): Array<{ hostType: string; hour: number }> {
  return scaledPolicies(group).flatMap(({ type, policy }) =>
    predictedChannels(policy).length === 0
      ? []
      : seasonalHoursToRead(demandMemoryOf(stored?.hostTypes[type.name]?.demand), policy.predictive, now).map(
          (hour) => ({ hostType: type.name, hour }),
        ),
  );
}

/** Reads the hour documents named, at once (a refresh is lookbackWeeks × 3 gets per host type). */
export async function readDemandHours(
  documents: Pick<DocumentStore, 'get'>,
  group: string,
  wanted: ReadonlyArray<{ hostType: string; hour: number }>,
): Promise<DemandHours> {
  const read = await Promise.all(
    wanted.map(({ hostType, hour }) =>
      documents.get<DemandHour>(DEMAND_HOUR_KIND, demandHourId(group, hostType, hour)),
    ),
  );
  const hours = new Map<string, Map<number, DemandHour>>();
  read.forEach((document, i) => {
    const { hostType, hour } = wanted[i] as { hostType: string; hour: number };
    if (document === undefined) return;
    const byHour = hours.get(hostType) ?? new Map<number, DemandHour>();
    byHour.set(hour, document.body);
    hours.set(hostType, byHour);
  });
  return hours;
}

function forecastOf(
  policy: CompiledScalingPolicy,
  memory: HostTypeMemory | undefined,
  demand: Record<Channel, number>,
  now: number,
): HostTypeScaling['forecast'] {
  if (!policy.predictive.enabled) return undefined;
  const sessions: Partial<Record<Channel, number>> = {};
  for (const channel of CHANNELS) {
    if (policy.targets[channel] === undefined) continue;
    const samples = demandSamples(memory?.demand, channel, { at: now, sessions: demand[channel] });
    const forecast = forecastDemand(samples, now, policy.predictive);
    if (forecast !== undefined) sessions[channel] = forecast.sessions;
  }
  if (Object.keys(sessions).length === 0) return undefined;
  return { sessions, at: now + policy.predictive.leadSeconds * 1000 };
}

/**
 * The scaling pass over a group at `now` (the tick's time: a retried tick passes the same), with the hour
 * documents demandHoursToRead named (without them, a stale cache is loaded with gaps).
 */
export function assessScaling(
  group: Pick<GroupDocument, 'compiled'>,
  hosts: readonly RuleHost[],
  stored: ScalingDocument | undefined,
  now: number,
  hours: DemandHours = new Map(),
): ScalingAssessment {
  const known = stored ?? EMPTY_SCALING;
  const hostTypes: HostTypeScaling[] = [];
  const decisions: ScalingDecidedData[] = [];
  const memories: Record<string, HostTypeMemory> = {};
  const demandHours: ScalingAssessment['demandHours'] = [];
  for (const { type, policy } of scaledPolicies(group)) {
    const observation = observeHostType(hosts, type.name);
    const memory = withDemandLoaded(known.hostTypes[type.name], policy, hours.get(type.name), now);
    if (predictedChannels(policy).length > 0) {
      const written = completedHours(memory?.demand, policy.predictive.lookbackWeeks, now);
      demandHours.push(...written.map((hour) => ({ hostType: type.name, hour })));
    }
    const scheduled = scheduledMinimum(policy.schedule, now).minimum;
    const forecast = forecastOf(policy, memory, observation.demand, now);
    const { total: _, ...counts } = observation.counts;
    const decision = decideScale({
      policy,
      now,
      counts: { desired: type.desired, ...counts },
      demand: observation.demand,
      ...(observation.load === undefined ? {} : { load: observation.load }),
      metrics: observation.metrics,
      history: expandHistory(memory, now),
      ...(memory?.lastScaleAt === undefined ? {} : { lastScaleAt: memory.lastScaleAt }),
      ...(scheduled > 0 ? { scheduledMinimum: scheduled } : {}),
      ...(forecast === undefined ? {} : { forecast: forecast.sessions }),
    });
    const next = recordTick(memory, policy, decision, observation.demand, now);
    memories[type.name] = next;
    hostTypes.push({
      hostType: type.name,
      policy,
      observation,
      ...(scheduled > 0 ? { scheduledMinimum: scheduled } : {}),
      ...(forecast === undefined ? {} : { forecast }),
      decision,
      memory: next,
    });
    if (decision.desired !== decision.previous) {
      decisions.push({
        hostType: type.name,
        from: decision.previous,
        to: decision.desired,
        direction: decision.direction,
        recommendation: decision.recommendation,
        recommendedBy: decision.recommendedBy,
        boundBy: decision.boundBy,
        // JSON-safe: the explanation is numbers, strings and plain objects; a round trip drops undefined.
        inputs: JSON.parse(JSON.stringify(decision.inputs)),
        at: new Date(now).toISOString(),
      });
    }
  }
  // Host types no longer scaled lose their memory (their hour documents expire).
  return { hostTypes, decisions, document: { hostTypes: memories, decisions: known.decisions }, demandHours };
}

/** The stored memory in the current layout, its seasonal cache loaded for now's hour. */
function withDemandLoaded(
  stored: HostTypeMemory | undefined,
  policy: CompiledScalingPolicy,
  hours: ReadonlyMap<number, DemandHour> | undefined,
  now: number,
): HostTypeMemory | undefined {
  const channels = predictedChannels(policy);
  if (channels.length === 0) return stored;
  const demand = withSeasonal(
    demandMemoryOf(stored?.demand),
    policy.predictive,
    hours ?? new Map(),
    channels,
    now,
  );
  return { history: [], ...stored, demand };
}
