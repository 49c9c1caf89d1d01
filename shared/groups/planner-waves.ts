/**
 * Writes waves: every action also moves the projection (the host's desired state, status, membership), so the
 * waves after it are planned from where this one leaves the cluster.
 */
import type { Action, DesiredHostState, Plan, Wave } from './model.ts';
import type { Slot } from './planner-projection.ts';

type StatefulAction = Extract<Action, { state: DesiredHostState }>;
type Await = Wave['awaits'][number];

export class WaveWriter {
  readonly actions: Action[] = [];
  readonly awaits: Await[] = [];
  disrupted: string[] = [];
  /** The action of this wave carrying a balancer's new state, so an upstream change can ride along on it. */
  private readonly carriers = new Map<string, StatefulAction>();

  launch(slot: Slot, replaces?: string): void {
    const action: StatefulAction =
      replaces === undefined
        ? { kind: 'launch', hostId: slot.hostId, hostType: slot.hostType, state: slot.state }
        : { kind: 'launch', hostId: slot.hostId, hostType: slot.hostType, state: slot.state, replaces };
    this.carry(slot, action);
  }

  terminate(slot: Slot, reason: string): void {
    slot.gone = true;
    this.actions.push({ kind: 'terminate', hostId: slot.hostId, reason });
  }

  drain(slot: Slot): void {
    slot.state = next(slot.state, { mode: 'draining' });
    this.carry(slot, { kind: 'drain', hostId: slot.hostId, state: slot.state });
  }

  assign(slot: Slot, services: DesiredHostState['services']): void {
    slot.state = next(slot.state, { services, mode: 'running' });
    this.carry(slot, { kind: 'assign', hostId: slot.hostId, state: slot.state });
  }

  /** Wait for the host's live sessions to reach zero (or the drain policy's timeout) before going on. */
  awaitDrained(slot: Slot): void {
    this.awaits.push({ hostId: slot.hostId, stateVersion: slot.state.stateVersion, drained: true });
  }

  notify(hostIds: string[], service: string, reason: string): void {
    this.actions.push({ kind: 'notify', hostIds, service, reason });
  }

  setUpstreams(slot: Slot, upstreams: Record<string, string[]>): void {
    const carrier = this.carriers.get(slot.hostId);
    if (carrier) {
      carrier.state = { ...carrier.state, upstreams: { ...carrier.state.upstreams, ...upstreams } };
      slot.state = carrier.state;
      return;
    }
    slot.state = next(slot.state, { upstreams: { ...slot.state.upstreams, ...upstreams } });
    this.carry(slot, { kind: 'update-lb', hostId: slot.hostId, state: slot.state });
  }

  get isEmpty(): boolean {
    return this.actions.length === 0 && this.awaits.length === 0;
  }

  private carry(slot: Slot, action: StatefulAction): void {
    this.actions.push(action);
    if (slot.balancer) this.carriers.set(slot.hostId, action);
    this.awaits.push({ hostId: slot.hostId, stateVersion: action.state.stateVersion });
  }
}

/** The state after `state` (one version up); written out field by field, as it runs once per host changed. */
function next(
  state: DesiredHostState,
  change: Partial<Pick<DesiredHostState, 'services' | 'mode' | 'upstreams'>>,
): DesiredHostState {
  const upstreams = change.upstreams ?? state.upstreams;
  return {
    hostId: state.hostId,
    group: state.group,
    hostType: state.hostType,
    stateVersion: state.stateVersion + 1,
    services: change.services ?? state.services,
    config: state.config,
    ...(upstreams === undefined ? {} : { upstreams }),
    mode: change.mode ?? state.mode,
    ...(state.launchedAs === undefined ? {} : { launchedAs: state.launchedAs }),
  };
}

/** What rides along in every wave: the load balancers (planner-load-balancers.ts) add their new upstreams. */
export interface WaveFlusher {
  flush(wave: WaveWriter): void;
}

export class PlanWriter {
  private readonly waves: Wave[] = [];
  private readonly deferred = new Map<string, string>();

  constructor(private readonly balancers: WaveFlusher) {}

  /** One wave; load balancers whose members changed get their new upstreams in it. Empty waves vanish. */
  wave(fill: (wave: WaveWriter) => void): void {
    const writer = new WaveWriter();
    fill(writer);
    this.balancers.flush(writer);
    if (writer.isEmpty) return;
    this.waves.push({
      index: this.waves.length,
      actions: writer.actions,
      disrupted: writer.disrupted,
      awaits: writer.awaits,
    });
  }

  /** Hosts that must be ready before whatever comes next (a wave of its own when nothing came before). */
  awaitBeforeNext(awaits: Await[]): void {
    if (awaits.length === 0) return;
    const last = this.waves[this.waves.length - 1];
    if (last) last.awaits.push(...awaits);
    else this.waves.push({ index: 0, actions: [], disrupted: [], awaits });
  }

  /** The first reason a host was held back is the one it keeps. */
  defer(hostId: string, reason: string): void {
    if (!this.deferred.has(hostId)) this.deferred.set(hostId, reason);
  }

  isDeferred(hostId: string): boolean {
    return this.deferred.has(hostId);
  }

  finish(group: string): Plan {
    this.wave(() => {});
    const deferred = [...this.deferred]
      .map(([hostId, reason]) => ({ hostId, reason }))
      .sort((a, b) => (a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0));
    return { group, waves: this.waves, deferred };
  }
}
