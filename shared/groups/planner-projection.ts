/**
 * The cluster as a plan moves it along: every host with its latest desired state and projected status, so each
 * wave is planned from what the earlier waves will have done, not from the snapshot the plan started from.
 */
import type { HostStatus } from '../schemas.ts';
import { launchMarkOf } from './launch-spec.ts';
import type {
  ActualHost,
  CompiledGroup,
  CompiledHostType,
  DesiredHostState,
  SelectableHost,
  ServiceSpec,
} from './model.ts';

export interface Slot {
  hostId: string;
  hostType: string;
  /** Dependency level of the host type; a type the group no longer defines sorts after every defined one. */
  level: number;
  /** What the host reported; absent for hosts this plan launches. */
  actual?: ActualHost;
  status: HostStatus;
  /** The latest desired state: the input's, else the one the plan assigned last. */
  state: DesiredHostState;
  /** Out of service because the plan is working on it right now (taken out of its load balancers). */
  out: boolean;
  /** Terminated by the plan. */
  gone: boolean;
  /** Already out of service before the plan: touching it costs no disruption budget. */
  outAtStart: boolean;
  /** A failed or stopped host serves nothing, whatever it last reported. */
  liveSessions: number;
  /** Its host type balances services: its states may carry upstreams. */
  balancer: boolean;
  /** Where the load balancer bookkeeping keeps it, per balanced service its type runs (see LoadBalancers). */
  memberAt?: number[];
}

/** Failed and stopped hosts are replaced; a `stopping` one is on its way somewhere and left to get there. */
export function isDead(slot: Slot): boolean {
  return isDeadStatus(slot.status);
}

/** A lost host is as good as failed: it was silent too long, and whatever it still does nobody hears of it. */
function isDeadStatus(status: HostStatus): boolean {
  return status === 'failed' || status === 'stopped' || status === 'lost';
}

export function isDraining(slot: Slot): boolean {
  return slot.status === 'draining' || slot.state.mode === 'draining';
}

const OUT_OF_SERVICE: ReadonlySet<HostStatus> = new Set([
  'failed',
  'lost',
  'draining',
  'stopping',
  'stopped',
]);

export class Projection {
  /** Actual hosts, sorted by id so nothing depends on the order the caller listed them in. */
  readonly slots: Slot[];
  private readonly launchedIds = new Set<string>();
  private readonly retired: ReadonlySet<string>;
  private readonly nextOrdinal = new Map<string, number>();
  private readonly unknownTypeLevel: number;

  constructor(
    readonly group: CompiledGroup,
    hosts: readonly ActualHost[],
    private readonly desired: Readonly<Record<string, DesiredHostState>>,
    private readonly newHostId: (hostType: string, ordinal: number) => string,
    retired: Iterable<string> = [],
  ) {
    this.retired = new Set(retired);
    this.unknownTypeLevel = Math.max(-1, ...Object.values(group.hostTypes).map((type) => type.level)) + 1;
    this.slots = sortedById(hosts).map((host) => this.slotOf(host, desired[host.hostId]));
    for (const host of hosts) {
      // Ordinals start past the type's current hosts, so a fleet named type-1…type-n finds a free id at once.
      this.nextOrdinal.set(host.hostType, (this.nextOrdinal.get(host.hostType) ?? 1) + 1);
    }
  }

  /**
   * Ids of hosts terminated long ago still have desired documents: a launch must not reuse one, or an
   * idempotent launch keyed on (host, version) would find the old instance.
   */
  private isTaken(hostId: string): boolean {
    return (
      Object.hasOwn(this.desired, hostId) ||
      this.retired.has(hostId) ||
      this.launchedIds.has(hostId) ||
      this.hasSlot(hostId)
    );
  }

  /** Binary search: the slots are sorted by id. */
  private hasSlot(hostId: string): boolean {
    let low = 0;
    let high = this.slots.length - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const id = (this.slots[middle] as Slot).hostId;
      if (id === hostId) return true;
      if (id < hostId) low = middle + 1;
      else high = middle - 1;
    }
    return false;
  }

  typeOf(slot: { hostType: string }): CompiledHostType | undefined {
    return this.group.hostTypes[slot.hostType];
  }

  /** A host to launch from `base` (the state of the host it replaces, else the host type's), state version 1. */
  launch(hostType: CompiledHostType, base?: DesiredHostState): Slot {
    const hostId = this.freshId(hostType.name);
    const state: DesiredHostState = {
      hostId,
      group: this.group.name,
      hostType: hostType.name,
      stateVersion: 1,
      services: base ? base.services : copyServices(hostType.services),
      config: base ? base.config : {},
      mode: 'running',
      // What it is launched as now, whatever the host it replaces was: a `replaceHostType` rollout skips it.
      launchedAs: launchMarkOf(hostType),
    };
    const slot: Slot = {
      hostId,
      hostType: hostType.name,
      level: hostType.level,
      status: 'pending',
      state,
      out: false,
      gone: false,
      outAtStart: false,
      liveSessions: 0,
      balancer: (hostType.balances?.length ?? 0) > 0,
    };
    return slot;
  }

  private freshId(hostType: string): string {
    let ordinal = this.nextOrdinal.get(hostType) ?? 1;
    let hostId = this.newHostId(hostType, ordinal);
    while (this.isTaken(hostId)) {
      ordinal += 1;
      hostId = this.newHostId(hostType, ordinal);
    }
    this.launchedIds.add(hostId);
    this.nextOrdinal.set(hostType, ordinal + 1);
    return hostId;
  }

  private slotOf(host: ActualHost, desired: DesiredHostState | undefined): Slot {
    const type = this.typeOf(host);
    const state = desired ? raised(desired, host.assignedStateVersion) : this.inferredState(host, type);
    // A degraded host runs (its dependency is what failed): the plan treats it as the running host it is.
    const status = host.status === 'degraded' ? 'running' : host.status;
    return {
      hostId: host.hostId,
      hostType: host.hostType,
      level: type ? type.level : this.unknownTypeLevel,
      actual: host,
      status,
      state,
      out: false,
      gone: false,
      outAtStart: OUT_OF_SERVICE.has(status) || state.mode === 'draining',
      liveSessions: isDeadStatus(status) ? 0 : host.liveSessions,
      balancer: (type?.balances?.length ?? 0) > 0,
    };
  }

  /** A host never assigned a state runs its type's services at the versions it reports. */
  private inferredState(host: ActualHost, type: CompiledHostType | undefined): DesiredHostState {
    const services: Record<string, ServiceSpec> = {};
    for (const [name, spec] of Object.entries(type?.services ?? {})) {
      const running = host.software[name];
      services[name] = running === undefined ? { ...spec } : { ...spec, version: running };
    }
    return {
      hostId: host.hostId,
      group: this.group.name,
      hostType: host.hostType,
      stateVersion: host.assignedStateVersion,
      services,
      config: {},
      mode: 'running',
    };
  }
}

/** The next state version must exceed whatever was assigned, even if the desired document lags behind. */
function raised(state: DesiredHostState, assigned: number): DesiredHostState {
  return assigned > state.stateVersion ? { ...state, stateVersion: assigned } : state;
}

function copyServices(services: Record<string, ServiceSpec>): Record<string, ServiceSpec> {
  const copy: Record<string, ServiceSpec> = {};
  for (const [name, spec] of Object.entries(services)) copy[name] = { ...spec };
  return copy;
}

/** The host store lists a group's hosts by id already: checking costs one pass, sorting 100k hosts far more. */
function sortedById(hosts: readonly ActualHost[]): readonly ActualHost[] {
  for (let i = 1; i < hosts.length; i += 1) {
    if ((hosts[i - 1] as ActualHost).hostId > (hosts[i] as ActualHost).hostId) {
      return [...hosts].sort((a, b) => byId(a.hostId, b.hostId));
    }
  }
  return hosts;
}

export function byId(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** As selectors see the host; with `service`, only that service's version (all a filter then looks at). */
export function selectable(slot: Slot, service?: string): SelectableHost {
  const versions: Record<string, string> = {};
  if (service === undefined) {
    for (const [name, spec] of Object.entries(slot.state.services)) versions[name] = spec.version;
  } else {
    const spec = slot.state.services[service];
    if (spec) versions[service] = spec.version;
  }
  return {
    hostId: slot.hostId,
    versions,
    liveSessions: slot.liveSessions,
    load: slot.actual?.load ?? 0,
  };
}
