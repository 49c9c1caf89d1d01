import { createHash } from 'node:crypto';
import {
  CHANNELS,
  type Channel,
  type MachineStateInput,
  type ServiceInstance,
} from '../../shared/schemas.ts';
import type { SimulatedDemand } from '../../shared/simulated-demand.ts';
import type { HostMode, HostRuntime } from '../runtime.ts';
import type { DemandSource } from './demand-file.ts';
import type { FactSource, ServiceVersions } from './source.ts';

/** A small, fast, seedable PRNG: the same seed gives the same fleet behaviour in every run. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A stable 32-bit number from a string: default seeds and loopback addresses per host id. */
export function hashToUint32(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0);
}

/** 127.0.0.2 … 127.0.0.254: distinct enough per host, and all of them reach this machine. */
export function loopbackAddressFor(hostId: string): string {
  return `127.0.0.${2 + (hashToUint32(hostId) % 253)}`;
}

export interface SimulatedHostOptions {
  hostId: string;
  group: string;
  hostType: string;
  roles: readonly string[];
  services: ServiceVersions;
  /**
   * What really runs (local mode's applier keeps it): when given, software, status, config and the applied
   * state version come from it instead of `services`, and a draining or stopped host loses its sessions.
   */
  runtime?: HostRuntime;
  /** Uniform in [0, 1); seed it (mulberry32) for reproducible runs. */
  random: () => number;
  /** Milliseconds since the epoch. */
  clock?: () => number;
  /** How long the host reports 'booting' before 'running'; default 3 s. */
  bootMs?: number;
  /** Concurrent sessions the host can carry; default 500. */
  capacitySessions?: number;
  cpus?: number;
  memoryMiB?: number;
  internalIp?: string;
  /** Channels with traffic; the others stay at 0 sessions. Default voice and sms. */
  channels?: readonly Channel[];
  /** Largest change of load per step; default 0.02. */
  loadStep?: number;
  /** Largest change of sessions per channel per step; default 3. */
  sessionStep?: number;
  /**
   * Demand set from outside (`fleetfold simulate`, local mode): its channels report those sessions (at most
   * the capacity) and its load, in place of the random walk, while the host runs. Draining still winds down.
   */
  demand?: DemandSource;
}

/**
 * A host in local mode. Load and live sessions move as bounded random walks with small steps: they wiggle
 * inside a band most of the time and now and then cross into the next one — the mix the change detector
 * and the control plane's band logic must cope with on a real fleet.
 */
export class SimulatedHost implements FactSource {
  readonly #options: SimulatedHostOptions;
  readonly #clock: () => number;
  readonly #startedAt: number;
  readonly #capacity: number;
  readonly #channels: ReadonlySet<Channel>;
  #load: number;
  readonly #sessions: Record<Channel, number>;
  /** The channels the last step took from the demand: once it lets go of one, that one starts over. */
  #demanded: ReadonlySet<Channel> = new Set();

  constructor(options: SimulatedHostOptions) {
    this.#options = options;
    this.#clock = options.clock ?? Date.now;
    this.#startedAt = this.#clock();
    this.#capacity = options.capacitySessions ?? 500;
    this.#channels = new Set(options.channels ?? ['voice', 'sms']);
    const { random } = options;
    // Start well inside a band so the first minutes are not a flurry of crossings.
    this.#load = 0.15 + 0.3 * random();
    this.#sessions = { voice: 0, sms: 0, mms: 0, video: 0 };
    for (const channel of this.#channels) this.#sessions[channel] = this.#baseline(channel);
  }

  /** Where a channel's walk starts: well inside the lowest bands for a channel with traffic, else idle. */
  #baseline(channel: Channel): number {
    if (!this.#channels.has(channel)) return 0;
    return Math.min(this.#capacity, 10 + Math.floor(30 * this.#options.random()));
  }

  async collect(): Promise<MachineStateInput> {
    const booting = this.#clock() - this.#startedAt < (this.#options.bootMs ?? 3_000);
    const report = this.#options.runtime?.report();
    const mode = report?.mode ?? 'running';
    if (!booting) this.#step(mode, await this.#options.demand?.read());
    const { group, hostType, roles, services, cpus, memoryMiB } = this.#options;
    const software: Record<string, ServiceInstance> =
      report?.services ??
      Object.fromEntries(
        Object.entries(services).map(([name, version]) => [name, { version, status: 'running' }]),
      );
    return {
      status: booting ? 'booting' : mode,
      group,
      hostType,
      roles: [...roles],
      ips: { internal: this.#options.internalIp ?? loopbackAddressFor(this.#options.hostId) },
      capacity: { sessions: this.#capacity, cpus: cpus ?? 2, memoryMiB: memoryMiB ?? 4096 },
      config: { values: report?.config ?? {} },
      software: Object.fromEntries(
        Object.entries(software).map(([name, instance]) => [
          name,
          booting && instance.status === 'running' ? { ...instance, status: 'starting' as const } : instance,
        ]),
      ),
      operational: {
        load: booting ? 0 : round(this.#load, 4),
        sessions: booting ? { voice: 0, sms: 0, mms: 0, video: 0 } : { ...this.#sessions },
        dataRefs: [],
      },
      ...(report?.appliedStateVersion === undefined
        ? {}
        : { appliedStateVersion: report.appliedStateVersion }),
    };
  }

  #step(mode: HostMode, demand: SimulatedDemand | undefined): void {
    if (mode === 'stopped') {
      this.#load = 0;
      for (const channel of CHANNELS) this.#sessions[channel] = 0;
      return;
    }
    const { random } = this.#options;
    if (mode === 'draining') {
      // No new sessions: the live ones end over a few polls, and the load with them.
      this.#load = round(this.#load / 2, 4);
      for (const channel of CHANNELS) this.#sessions[channel] = Math.floor(this.#sessions[channel] / 2);
      return;
    }
    const loadStep = this.#options.loadStep ?? 0.02;
    this.#load = demand?.load ?? reflect(this.#load + (2 * random() - 1) * loadStep, 0, 1);
    const demanded = new Set(Object.keys(demand?.sessions ?? {}) as Channel[]);
    const sessionStep = this.#options.sessionStep ?? 3;
    for (const channel of CHANNELS) {
      const wanted = demand?.sessions[channel];
      if (wanted !== undefined) {
        this.#sessions[channel] = Math.min(this.#capacity, wanted);
        continue;
      }
      if (this.#demanded.has(channel)) {
        this.#sessions[channel] = this.#baseline(channel);
        continue;
      }
      if (!this.#channels.has(channel)) continue;
      const delta = Math.round((2 * random() - 1) * sessionStep);
      this.#sessions[channel] = Math.round(reflect(this.#sessions[channel] + delta, 0, this.#capacity));
    }
    this.#demanded = demanded;
  }
}

/** Bounces off the edges instead of sticking to them, so a walk never parks at 0 or at capacity. */
function reflect(value: number, min: number, max: number): number {
  if (value < min) return Math.min(max, 2 * min - value);
  if (value > max) return Math.max(min, 2 * max - value);
  return value;
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
