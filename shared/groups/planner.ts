/**
 * The planner: from a group's compiled definition, its actual hosts and their desired states, the waves of
 * actions that move the cluster towards what it should be. Pure and deterministic: time and new host ids come
 * in as arguments, the hosts' input order does not matter, and a converged cluster plans nothing.
 *
 * A running group: hosts draining for work that is no longer wanted go back into service; missing hosts are
 * launched (failed ones replaced with their own state) level by level, dependencies first; surplus hosts are
 * removed; then the rollout. Removals and the rollout share one disruption budget. A stopped group is taken
 * down level by level, dependents first.
 */
import { ValidationError } from '../errors.ts';
import { pickScaleIn } from '../scaling/autoscaler.ts';
import { launchMarkOf } from './launch-spec.ts';
import type {
  ActualHost,
  CompiledGroup,
  CompiledHostType,
  DesiredHostState,
  DrainPolicy,
  Plan,
  RolloutOperation,
  ServiceSpec,
} from './model.ts';
import { intoBatches, type Job, runBatch } from './planner-batches.ts';
import { readiness } from './planner-drain.ts';
import { LoadBalancers } from './planner-load-balancers.ts';
import { byId, isDead, isDraining, Projection, type Slot, selectable } from './planner-projection.ts';
import { PlanWriter, type WaveWriter } from './planner-waves.ts';
import { parseSelector, selectHosts, selectorSize } from './selectors.ts';

export interface PlanRollout {
  id: string;
  service: string;
  /** The version to run; absent for a config-only change. */
  version?: string;
  /** Keys to set in the service's config (merged over what each host has). */
  config?: Record<string, string>;
  /** Which of the service's hosts (default "all"). */
  select?: string;
  /** Change the service (default), stop it (kept in the state, marked stopped), start it, or remove it. */
  operation?: RolloutOperation;
  /**
   * Replace the hosts of this host type not launched as it is defined now (their `launchedAs`): per wave a
   * new host with the old one's state is launched, and the old one goes once the new one reports (surge-first
   * per the rollout policy). `service` is then the type's first service; version and config are not read.
   */
  replaceHostType?: string;
}

export interface PlanInput {
  group: CompiledGroup;
  /** Started (true) or stopped (false). */
  running: boolean;
  /** The group's actual hosts (terminated instances left out). */
  hosts: readonly ActualHost[];
  /** Last assigned desired state per host id (also of hosts gone since: their ids are never reused). */
  desired: Readonly<Record<string, DesiredHostState>>;
  rollout?: PlanRollout;
  /** ISO time, for drain timeouts. */
  now: string;
  /** Id of a new host; ordinals start past the type's current host count and skip ids already taken. */
  newHostId: (hostType: string, ordinal: number) => string;
  /** Ids of hosts gone since (e.g. terminated instances) that a new host must not take either. */
  retiredHostIds?: Iterable<string>;
  /** Hosts a rule keeps draining: not put back into service although nothing the plan wants needs them drained. */
  keepDraining?: ReadonlySet<string>;
}

interface Context {
  group: CompiledGroup;
  projection: Projection;
  balancers: LoadBalancers;
  plan: PlanWriter;
  policy: DrainPolicy;
  now: number;
}

export function planGroup(input: PlanInput): Plan {
  const now = Date.parse(input.now);
  if (Number.isNaN(now)) throw new ValidationError(`now is not a time: ${input.now}`, { now: input.now });
  const projection = new Projection(
    input.group,
    input.hosts,
    input.desired,
    input.newHostId,
    input.retiredHostIds,
  );
  const balancers = new LoadBalancers(projection);
  const context: Context = {
    group: input.group,
    projection,
    balancers,
    plan: new PlanWriter(balancers),
    policy: input.group.configuration.drain,
    now,
  };
  if (input.running) planRunning(context, input.rollout, input.keepDraining);
  else planStop(context);
  return context.plan.finish(input.group.name);
}

/* ───────────── Stopping ───────────── */

function planStop(context: Context): void {
  const { projection, plan, balancers, policy, now } = context;
  let blockedBy: number | undefined;
  for (const [level, slots] of [...byLevel(projection.slots)].sort((a, b) => b[0] - a[0])) {
    if (blockedBy !== undefined) {
      for (const slot of slots) {
        plan.defer(slot.hostId, `waiting for the hosts at dependency level ${blockedBy} to stop first`);
      }
      continue;
    }
    const jobs: Job[] = [];
    for (const slot of slots) {
      const ready = isDead(slot) ? ({ kind: 'ready' } as const) : readiness(slot, policy, now);
      if (ready.kind === 'defer') {
        plan.defer(slot.hostId, `group stopped, ${ready.reason}`);
        blockedBy = level;
      } else {
        jobs.push({ slot, drain: ready.kind === 'drain', act: terminate('group stopped') });
      }
    }
    runBatch(plan, balancers, policy, jobs);
  }
}

/* ───────────── Running ───────────── */

interface Capacity {
  /** Failed or stopped hosts to terminate, with the host type that replaces them (if it still needs them). */
  dead: { slot: Slot; replacedBy?: CompiledHostType }[];
  fresh: Map<string, number>;
  surplus: { slot: Slot; reason: string }[];
  /** Surplus hosts kept because leaving would take their type below its min. */
  held: { hostId: string; reason: string }[];
}

function planRunning(
  context: Context,
  rollout: PlanRollout | undefined,
  keepDraining: ReadonlySet<string> = new Set(),
): void {
  const { projection } = context;
  const capacity = measureCapacity(context);
  const leaving = new Set(capacity.surplus.map((victim) => victim.slot));
  const change = rollout ? rolloutTargets(context, rollout, leaving) : undefined;
  const budget = disruptionBudget(context);

  const restore = new Set(
    projection.slots.filter((slot) => drainingForNothing(slot) && !keepDraining.has(slot.hostId)),
  );
  for (const slot of [...leaving, ...(change?.drainingTargets ?? [])]) restore.delete(slot);
  context.plan.wave((wave) => {
    for (const slot of restore) wave.assign(slot, slot.state.services);
  });
  for (const slot of restore) {
    slot.status = 'running';
    context.balancers.touched(slot);
  }

  launchAndReplace(context, capacity);
  scaleIn(context, capacity.surplus, budget);
  if (rollout && change) roll(context, rollout, change, budget);
  // Last, so a rollout's own reason for holding one back (which the reconcile reads) comes first.
  for (const { hostId, reason } of capacity.held) context.plan.defer(hostId, reason);
}

/**
 * Drained by an earlier plan for work no longer wanted, or draining although it applied a running state (not
 * still on its way to one): either way nothing will bring it back unless it is told to run.
 */
function drainingForNothing(slot: Slot): boolean {
  if (slot.status !== 'running' && slot.status !== 'draining') return false;
  if (slot.state.mode === 'draining') return true;
  return slot.status === 'draining' && (slot.actual?.appliedStateVersion ?? 0) >= slot.state.stateVersion;
}

function measureCapacity({ group, projection }: Context): Capacity {
  const capacity: Capacity = { dead: [], fresh: new Map(), surplus: [], held: [] };
  const slotsOfType = byType(projection.slots);
  const typeNames = [...new Set([...Object.keys(group.hostTypes), ...slotsOfType.keys()])].sort(byId);
  for (const typeName of typeNames) {
    const slots = slotsOfType.get(typeName) ?? [];
    const type = group.hostTypes[typeName];
    const dead = slots.filter(isDead);
    const live = slots.filter((slot) => !isDead(slot));
    if (!type) {
      for (const slot of dead) capacity.dead.push({ slot });
      const reason = `host type ${typeName} is no longer in the group`;
      for (const slot of preferredToLeave(live)) capacity.surplus.push({ slot, reason });
      continue;
    }
    // Never below min, whatever count reached the planner (a capacity scaled before min was raised): the
    // surplus hosts that would take it there stay, and say why. The hosts that stay are the type's most ready
    // (see preferredToLeave), so a scale-in that retires a ready host leaves at least `target` ready ones.
    const floor = type.min ?? 0;
    const target = Math.max(type.desired, floor);
    const shortfall = Math.max(0, target - live.length);
    dead.forEach((slot, i) => {
      capacity.dead.push(i < shortfall ? { slot, replacedBy: type } : { slot });
    });
    if (shortfall > dead.length) capacity.fresh.set(typeName, shortfall - dead.length);
    const surplus = live.length - type.desired;
    if (surplus <= 0) continue;
    const reason = `scale-in: ${typeName} has ${live.length} hosts, wants ${type.desired}`;
    const preferred = preferredToLeave(live, launchMarkOf(type));
    const leave = Math.max(0, live.length - target);
    for (const slot of preferred.slice(0, leave)) capacity.surplus.push({ slot, reason });
    for (const slot of preferred.slice(leave, surplus)) {
      capacity.held.push({
        hostId: slot.hostId,
        reason: `${reason}, below its min ${floor}: kept at ${target}`,
      });
    }
  }
  return capacity;
}

const LEAVING_RANK: Partial<Record<Slot['status'], number>> = {
  stopping: 0,
  draining: 1,
  pending: 2,
  booting: 2,
};

/**
 * Hosts already on their way out first, then those not yet serving, then those launched as the type was
 * defined before (a replacement interrupted between its launch and the old host's end leaves the old one),
 * then in the autoscaler's scale-in order (pickScaleIn: no live sessions, then the fewest, then by id) — not
 * by load, which moves from one reconcile to the next, while a call in progress is what a retirement cuts.
 */
function preferredToLeave(slots: readonly Slot[], mark?: string): Slot[] {
  const rank = (slot: Slot) => LEAVING_RANK[slot.status] ?? (slot.state.mode === 'draining' ? 1 : 3);
  const stale = (slot: Slot) => (mark !== undefined && slot.state.launchedAs !== mark ? 0 : 1);
  const entries = slots.map((slot) => ({
    slot,
    id: slot.hostId,
    sessions: slot.liveSessions,
    rank: rank(slot),
    stale: stale(slot),
  }));
  // pickScaleIn of them all is the whole order; the sort is stable, so it holds within a rank.
  return pickScaleIn(entries, entries.length)
    .sort((a, b) => a.rank - b.rank || a.stale - b.stale)
    .map((entry) => entry.slot);
}

/** Level by level, dependencies first: a level's hosts are launched once the levels below are up. */
function launchAndReplace(context: Context, capacity: Capacity): void {
  const { group, projection, plan, balancers } = context;
  const surgeFirst = group.configuration.rollout.surgeFirst;
  const levels = new Set<number>([
    ...capacity.dead.map((entry) => entry.slot.level),
    ...[...capacity.fresh.keys()].map((name) => group.hostTypes[name]?.level ?? 0),
  ]);
  const starting = projection.slots
    .filter((slot) => (slot.status === 'pending' || slot.status === 'booting') && slot.state.stateVersion > 0)
    .sort((a, b) => a.level - b.level);
  let awaited = 0;

  for (const level of [...levels].sort((a, b) => a - b)) {
    const launches: { slot: Slot; replaces?: string }[] = [];
    const dead: { slot: Slot; reason: string }[] = [];
    for (const entry of capacity.dead) {
      if (entry.slot.level !== level) continue;
      if (entry.replacedBy) {
        const slot = projection.launch(entry.replacedBy, entry.slot.state);
        launches.push({ slot, replaces: entry.slot.hostId });
        dead.push({ slot: entry.slot, reason: `${entry.slot.status}: replaced by ${slot.hostId}` });
      } else {
        dead.push({
          slot: entry.slot,
          reason: `${entry.slot.status}: not needed, its type has enough hosts`,
        });
      }
    }
    for (const [typeName, count] of [...capacity.fresh].sort((a, b) => byId(a[0], b[0]))) {
      const type = group.hostTypes[typeName];
      if (!type || type.level !== level) continue;
      for (let i = 0; i < count; i += 1) launches.push({ slot: projection.launch(type) });
    }

    if (launches.length > 0) {
      const ready: { hostId: string; stateVersion: number }[] = [];
      while (awaited < starting.length && (starting[awaited] as Slot).level < level) {
        const slot = starting[awaited] as Slot;
        ready.push({ hostId: slot.hostId, stateVersion: slot.state.stateVersion });
        awaited += 1;
      }
      plan.awaitBeforeNext(ready);
    }
    const terminateDead = () =>
      plan.wave((wave) => {
        for (const { slot, reason } of dead) wave.terminate(slot, reason);
        wave.disrupted = dead.map((entry) => entry.slot.hostId);
      });
    // Surge-first keeps capacity: the replacement is up before the failed host goes.
    if (!surgeFirst) terminateDead();
    plan.wave((wave) => {
      for (const { slot, replaces } of launches) {
        wave.launch(slot, replaces);
        balancers.launched(slot);
      }
    });
    if (surgeFirst) terminateDead();
  }
}

interface Budget {
  /** Hosts in service the plan may take out at once. */
  fresh: number;
  reason: string;
}

function disruptionBudget({ group, projection }: Context): Budget {
  const text = group.configuration.disruptionBudget;
  const total = projection.slots.length;
  const size = selectorSize(parseSelector(text), total);
  const out = projection.slots.filter((slot) => slot.outAtStart).length;
  return {
    fresh: size - out,
    reason: `disruption budget "${text}" allows ${size} of ${total} hosts out of service and ${out} already are`,
  };
}

function scaleIn(context: Context, surplus: Capacity['surplus'], budget: Budget): void {
  const { plan, balancers, policy, now } = context;
  const jobs: Job[] = [];
  // Dependents leave before what they depend on; within a level, in the order they were preferred.
  const ordered = surplus
    .map((victim, order) => ({ ...victim, order }))
    .sort((a, b) => b.slot.level - a.slot.level || a.order - b.order);
  for (const { slot, reason } of ordered) {
    const ready = readiness(slot, policy, now);
    if (ready.kind === 'defer') plan.defer(slot.hostId, `${reason}; ${ready.reason}`);
    else jobs.push({ slot, drain: ready.kind === 'drain', act: terminate(reason) });
  }
  const { batches, overBudget } = intoBatches(jobs, {
    size: Number.POSITIVE_INFINITY,
    fresh: budget.fresh,
    together: (a, b) => a.level === b.level,
  });
  for (const job of overBudget) plan.defer(job.slot.hostId, `scale-in held back: ${budget.reason}`);
  for (const batch of batches) runBatch(plan, balancers, policy, batch);
}

/* ───────────── Rollouts ───────────── */

interface Change {
  /** Chosen hosts not at the target yet, dependency level first, then as the selector preferred them. */
  targets: Slot[];
  /** The targets already draining (the only ones a plan might otherwise put back into service). */
  drainingTargets: Slot[];
  /** The host's services once it is at the target (the service left out when it is removed). */
  target: (slot: Slot) => DesiredHostState['services'];
}

function isComingUp(slot: Slot): boolean {
  return !slot.gone && (slot.status === 'booting' || slot.status === 'pending');
}

function rolloutTargets(context: Context, rollout: PlanRollout, leaving: ReadonlySet<Slot>): Change {
  const { group, projection } = context;
  const replaced = rollout.replaceHostType;
  const replacedType = replaced === undefined ? undefined : group.hostTypes[replaced];
  if (replaced !== undefined && !replacedType) {
    throw new ValidationError(`rollout ${rollout.id}: group ${group.name} has no host type ${replaced}`, {
      hostType: replaced,
    });
  }
  const types = replaced !== undefined ? [replaced] : group.serviceHosts[rollout.service];
  if (!types || types.length === 0) {
    throw new ValidationError(
      `rollout ${rollout.id}: no host type of group ${group.name} runs ${rollout.service}`,
      {
        service: rollout.service,
      },
    );
  }
  const typeSet = new Set(types);
  const candidates = projection.slots.filter(
    (slot) =>
      typeSet.has(slot.hostType) &&
      !leaving.has(slot) &&
      (slot.status === 'running' || slot.status === 'draining'),
  );
  // A host still coming up has no version to replace yet: deferred, so the rollout is not over without it.
  for (const slot of projection.slots) {
    if (typeSet.has(slot.hostType) && !leaving.has(slot) && isComingUp(slot)) {
      context.plan.defer(slot.hostId, `${slot.status}: rollout ${rollout.id} picks it up once it runs`);
    }
  }
  const operation = rollout.operation ?? 'update';
  const target = (slot: Slot): DesiredHostState['services'] => {
    if (replacedType) return slot.state.services;
    const { [rollout.service]: current, ...others } = slot.state.services;
    if (operation === 'remove') return others;
    const spec = targetSpec(current ?? projection.typeOf(slot)?.services[rollout.service], rollout);
    return { ...slot.state.services, [rollout.service]: spec };
  };
  const mark = replacedType ? launchMarkOf(replacedType) : undefined;
  const atTarget = (slot: Slot) => {
    if (mark !== undefined) return slot.state.launchedAs === mark;
    const current = slot.state.services[rollout.service];
    if (operation === 'remove') return current === undefined;
    if (!current) return false;
    if (operation === 'stop' && current.stopped !== true) return false;
    if (operation === 'start' && current.stopped === true) return false;
    if (rollout.version !== undefined && current.version !== rollout.version) return false;
    return Object.entries(rollout.config ?? {}).every(([key, value]) => current.config?.[key] === value);
  };

  const selector = parseSelector(rollout.select ?? 'all');
  const hosts = candidates.map((slot) => Object.assign(selectable(slot, rollout.service), { slot }));
  // selectHosts hands back the very objects it was given, sorted by preference: each still knows its slot.
  const preferred = (
    selectHosts({ filters: selector.filters, sizes: [] }, hosts, rollout.service) as typeof hosts
  ).map((host) => host.slot);
  // Hosts already done (then those drained for it) count first, so "20%" stays the same 20% from one
  // reconcile to the next instead of drifting with load.
  const done: Slot[] = [];
  const drained: Slot[] = [];
  const others: Slot[] = [];
  for (const slot of preferred) (atTarget(slot) ? done : isDraining(slot) ? drained : others).push(slot);
  const chosen = [...done, ...drained, ...others].slice(0, selectorSize(selector, preferred.length));
  // Dependencies before dependents; the sort is stable, so the order of preference holds within a level.
  const targets = chosen.slice(done.length).sort((a, b) => a.level - b.level);
  return { targets, drainingTargets: chosen.slice(done.length, done.length + drained.length), target };
}

function roll(context: Context, rollout: PlanRollout, change: Change, budget: Budget): void {
  const { group, projection, plan, balancers, policy, now } = context;
  const waveText = group.configuration.rollout.wave;
  const size = selectorSize(parseSelector(waveText), change.targets.length);
  if (size === 0) {
    for (const slot of change.targets) {
      plan.defer(
        slot.hostId,
        `rollout ${rollout.id}: wave size "${waveText}" allows 0 of ${change.targets.length} hosts`,
      );
    }
    return;
  }
  const replaced =
    rollout.replaceHostType === undefined ? undefined : group.hostTypes[rollout.replaceHostType];
  const assign: Job['act'] = replaced
    ? terminate(`rollout ${rollout.id}: host type ${replaced.name} is launched otherwise now`)
    : (wave, host) => wave.assign(host, change.target(host));
  const jobs: Job[] = [];
  for (const slot of change.targets) {
    const ready = readiness(slot, policy, now);
    if (ready.kind === 'defer') plan.defer(slot.hostId, `rollout ${rollout.id}: ${ready.reason}`);
    else jobs.push({ slot, drain: ready.kind === 'drain', act: assign });
  }
  const { batches, overBudget } = intoBatches(jobs, {
    size,
    fresh: budget.fresh,
    together: (a, b) => a.level === b.level,
  });
  for (const job of overBudget)
    plan.defer(job.slot.hostId, `rollout ${rollout.id} held back: ${budget.reason}`);
  const dependents = dependentHosts(group, projection, rollout.service);
  batches.forEach((batch, i) => {
    const tellDependents =
      i === 0 && dependents.length > 0
        ? (wave: WaveWriter) => wave.notify(dependents, rollout.service, describeChange(rollout))
        : undefined;
    if (replaced) replaceBatch(context, replaced, batch, tellDependents);
    else runBatch(plan, balancers, policy, batch, tellDependents);
  });
}

/**
 * A batch of a replacement: each old host's successor (a new id, the old host's state, launched as the type
 * is defined now) is launched and awaited, then the old host is drained and terminated — surge-first, so the
 * capacity never dips; without surge-first the old hosts go first (as launchAndReplace does for failed hosts).
 */
function replaceBatch(
  context: Context,
  type: CompiledHostType,
  batch: readonly Job[],
  prepare: ((wave: WaveWriter) => void) | undefined,
): void {
  const { group, projection, plan, balancers, policy } = context;
  const launches = batch.map((job) => ({
    slot: projection.launch(type, job.slot.state),
    replaces: job.slot,
  }));
  const retire = batch.map((job) => {
    const successor = launches.find((launch) => launch.replaces === job.slot)?.slot as Slot;
    return { ...job, act: terminate(`replaced by ${successor.hostId}: host type ${type.name} changed`) };
  });
  const launch = () =>
    plan.wave((wave) => {
      prepare?.(wave);
      for (const { slot, replaces } of launches) {
        wave.launch(slot, replaces.hostId);
        balancers.launched(slot);
      }
    });
  if (group.configuration.rollout.surgeFirst) {
    launch();
    runBatch(plan, balancers, policy, retire);
  } else {
    runBatch(plan, balancers, policy, retire, prepare);
    plan.wave((wave) => {
      for (const { slot, replaces } of launches) {
        wave.launch(slot, replaces.hostId);
        balancers.launched(slot);
      }
    });
  }
}

/** Hosts running a service that depends on `service`: they hear of its change before it happens. */
function dependentHosts(group: CompiledGroup, projection: Projection, service: string): string[] {
  const types = new Set(
    (group.dependents[service] ?? []).flatMap((dependent) => group.serviceHosts[dependent] ?? []),
  );
  return projection.slots
    .filter((slot) => types.has(slot.hostType) && !slot.gone && !isDead(slot))
    .map((slot) => slot.hostId);
}

function describeChange(rollout: PlanRollout): string {
  const operation = rollout.operation ?? 'update';
  const what =
    rollout.replaceHostType !== undefined
      ? `the hosts of ${rollout.replaceHostType} running ${rollout.service} are replaced`
      : operation === 'stop'
        ? `${rollout.service} stops`
        : operation === 'start'
          ? `${rollout.service} starts`
          : operation === 'remove'
            ? `${rollout.service} is removed`
            : rollout.version !== undefined
              ? `${rollout.service} changes to ${rollout.version}`
              : `${rollout.service} changes its config`;
  return `${what} (rollout ${rollout.id})`;
}

function targetSpec(current: ServiceSpec | undefined, rollout: PlanRollout): ServiceSpec {
  const base: ServiceSpec = current ?? { version: rollout.version ?? '' };
  const version = rollout.version ?? base.version;
  const spec: ServiceSpec =
    rollout.config === undefined
      ? { ...base, version }
      : { ...base, version, config: { ...base.config, ...rollout.config } };
  if (rollout.operation === 'stop') spec.stopped = true;
  if (rollout.operation === 'start') delete spec.stopped;
  return spec;
}

/* ───────────── Helpers ───────────── */

function terminate(reason: string): Job['act'] {
  return (wave, slot) => wave.terminate(slot, reason);
}

function byLevel(slots: readonly Slot[]): Map<number, Slot[]> {
  return groupBy(slots, (slot) => slot.level);
}

function byType(slots: readonly Slot[]): Map<string, Slot[]> {
  const groups = groupBy(slots, (slot) => slot.hostType);
  return new Map([...groups].sort((a, b) => byId(a[0], b[0])));
}

function groupBy<K>(slots: readonly Slot[], key: (slot: Slot) => K): Map<K, Slot[]> {
  const groups = new Map<K, Slot[]>();
  for (const slot of slots) {
    const k = key(slot);
    const list = groups.get(k);
    if (list) list.push(slot);
    else groups.set(k, [slot]);
  }
  return groups;
}
