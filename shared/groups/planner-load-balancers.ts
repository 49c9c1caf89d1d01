/**
 * Load balancer membership through a plan. Each balanced service keeps its members sorted by endpoint once, so
 * recomputing an upstream list after a wave is one pass over that service's members, never a sort or a scan of
 * the whole fleet.
 */
import { isDead, type Projection, type Slot } from './planner-projection.ts';
import type { WaveWriter } from './planner-waves.ts';

interface Member {
  endpoint: string;
  slot: Slot;
}

/**
 * A balanced service's members sorted by endpoint, as parallel arrays, with whether each is in service now:
 * kept current for the hosts the plan touches, so rebuilding an upstream list reads no host at all.
 */
interface Members {
  endpoints: string[];
  listed: Uint8Array;
  /** Same endpoint as the member before (two hosts reporting one address): listed once. */
  repeated: Uint8Array;
}

export class LoadBalancers {
  private readonly members = new Map<string, Members>();
  private readonly balancers = new Map<string, Slot[]>();
  /** host type → the balanced services it runs (whose membership its hosts change). */
  private readonly balancedServicesOf = new Map<string, string[]>();
  private readonly dirty = new Set<string>();
  private readonly touchedSlots: Slot[] = [];

  constructor(private readonly projection: Projection) {
    const { group } = projection;
    const slotsOfType = new Map<string, Slot[]>();
    for (const slot of projection.slots) {
      const list = slotsOfType.get(slot.hostType);
      if (list) list.push(slot);
      else slotsOfType.set(slot.hostType, [slot]);
    }
    for (const service of Object.keys(group.balancedBy).sort()) {
      const lbTypes = group.balancedBy[service] ?? [];
      if (lbTypes.length === 0) continue;
      this.balancers.set(
        service,
        lbTypes.flatMap((type) => slotsOfType.get(type) ?? []),
      );
      const members: Member[] = [];
      for (const type of group.serviceHosts[service] ?? []) {
        const services = this.balancedServicesOf.get(type);
        if (services) services.push(service);
        else this.balancedServicesOf.set(type, [service]);
        for (const slot of slotsOfType.get(type) ?? []) {
          const endpoint = endpointOf(slot, service);
          if (endpoint !== undefined) members.push({ endpoint, slot });
        }
      }
      members.sort((a, b) => compare(a.endpoint, b.endpoint) || compare(a.slot.hostId, b.slot.hostId));
      const listed = new Uint8Array(members.length);
      const repeated = new Uint8Array(members.length);
      members.forEach((member, i) => {
        listed[i] = inService(member.slot) ? 1 : 0;
        repeated[i] = i > 0 && members[i - 1]?.endpoint === member.endpoint ? 1 : 0;
        // Positions follow the order of balancedServicesOf(type), which this loop is building right now.
        const services = this.balancedServicesOf.get(member.slot.hostType) as string[];
        member.slot.memberAt ??= [];
        member.slot.memberAt[services.indexOf(service)] = i;
      });
      this.members.set(service, { endpoints: members.map((member) => member.endpoint), listed, repeated });
      // The load balancers' desired upstreams may already be stale (a member failed since): check them all once.
      this.dirty.add(service);
    }
  }

  /** A host whose service membership may have changed (taken out, put back, drained, terminated). */
  touched(slot: Slot): void {
    const services = this.balancedServicesOf.get(slot.hostType);
    if (!services) return;
    for (const service of services) this.dirty.add(service);
    this.touchedSlots.push(slot);
  }

  /** A load balancer launched by the plan: it gets its upstreams like any other. */
  launched(slot: Slot): void {
    const type = this.projection.typeOf(slot);
    for (const service of type?.balances ?? []) {
      const balancers = this.balancers.get(service);
      if (!balancers) continue;
      balancers.push(slot);
      this.dirty.add(service);
    }
  }

  /** Healthy, non-draining members' endpoints, sorted and without duplicates. */
  upstreams(service: string): string[] {
    this.refresh();
    const members = this.members.get(service);
    if (!members) return [];
    const { endpoints, listed, repeated } = members;
    const list: string[] = [];
    let previousListed = 0;
    for (let i = 0; i < endpoints.length; i += 1) {
      const now = listed[i] as number;
      if (now && !(repeated[i] && previousListed)) list.push(endpoints[i] as string);
      previousListed = repeated[i] ? previousListed | now : now;
    }
    produced.add(list);
    return list;
  }

  private refresh(): void {
    for (const slot of this.touchedSlots) {
      const positions = slot.memberAt;
      if (!positions) continue;
      const services = this.balancedServicesOf.get(slot.hostType) ?? [];
      const listed = inService(slot) ? 1 : 0;
      services.forEach((service, k) => {
        const index = positions[k];
        const members = this.members.get(service);
        if (members && index !== undefined) members.listed[index] = listed;
      });
    }
    this.touchedSlots.length = 0;
  }

  /** Gives every load balancer whose members changed since the last flush its new upstreams, in `wave`. */
  flush(wave: WaveWriter): void {
    if (this.dirty.size === 0) return;
    const changes = new Map<Slot, Record<string, string[]>>();
    for (const service of [...this.dirty].sort()) {
      let next: string[] | undefined;
      // Balancers of a service usually share one list (the one the planner gave them last): compare it once.
      const compared = new Map<readonly string[] | undefined, boolean>();
      for (const balancer of this.balancers.get(service) ?? []) {
        // A balancer that failed or is stopping would not apply it; a replacement gets the upstreams instead.
        if (balancer.gone || isDead(balancer) || balancer.status === 'stopping') continue;
        next ??= this.upstreams(service);
        const current = balancer.state.upstreams?.[service];
        let same = compared.get(current);
        if (same === undefined) {
          same = sameList(current, next);
          compared.set(current, same);
        }
        if (same) continue;
        const change = changes.get(balancer);
        if (change) change[service] = next;
        else changes.set(balancer, { [service]: next });
      }
    }
    this.dirty.clear();
    for (const [balancer, upstreams] of changes) wave.setUpstreams(balancer, upstreams);
  }
}

export function inService(slot: Slot): boolean {
  return (
    !slot.gone &&
    !slot.out &&
    slot.status === 'running' &&
    slot.state.mode === 'running' &&
    slot.actual?.unhealthy !== true
  );
}

function endpointOf(slot: Slot, service: string): string | undefined {
  const reported = slot.actual?.endpoints?.[service];
  if (reported !== undefined) return reported;
  const port = slot.state.services[service]?.port;
  const address = slot.actual?.address;
  return address !== undefined && port !== undefined ? `${address}:${port}` : undefined;
}

/** Upstream lists this module built: sorted already, so a difference in order is a difference. */
const produced = new WeakSet<readonly string[]>();

/**
 * `next` is sorted and unique. The current list is usually one the planner produced (so sorted) and is compared
 * in one pass; only a list from elsewhere that is out of order gets sorted.
 */
function sameList(current: readonly string[] | undefined, next: readonly string[]): boolean {
  const list = current ?? [];
  if (list === next) return true;
  if (list.length !== next.length) return false;
  if (list.every((endpoint, i) => endpoint === next[i])) return true;
  if (produced.has(list)) return false;
  if (list.every((endpoint, i) => i === 0 || compare(list[i - 1] as string, endpoint) <= 0)) return false;
  const sorted = [...list].sort(compare);
  return sorted.every((endpoint, i) => endpoint === next[i]);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
