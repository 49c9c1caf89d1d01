/**
 * Session-aware scale-in, by example: the order it picks, the min it never goes below, and a draining host
 * that goes back into service when the demand comes back before it is gone.
 */
import { describe, expect, it } from 'vitest';
import { compileGroup } from '../shared/groups/compile.ts';
import { withCapacity } from '../shared/groups/group-state.ts';
import type { CompiledGroup, Plan } from '../shared/groups/model.ts';
import { planGroup } from '../shared/groups/planner.ts';
import {
  actionsOf,
  carryOut,
  convergedCluster,
  voiceDefinition,
  voiceGroup,
  withHosts,
} from './support/planner-fixtures.ts';

const SESSIONS: Record<string, number> = { 'media-1': 4, 'media-2': 1, 'media-3': 0, 'media-4': 7 };

/** Four media hosts with live sessions as given (media-3 idle). */
function busyCluster(group: CompiledGroup = voiceGroup()) {
  return withHosts(convergedCluster(group), (host) =>
    host.hostId in SESSIONS
      ? { liveSessions: SESSIONS[host.hostId], load: host.hostId === 'media-2' ? 0.9 : 0.1 }
      : {},
  );
}

const ids = (plan: Plan, kind: string) => actionsOf(plan, kind).map((action) => action.hostId);

describe('planGroup: session-aware scale-in', () => {
  it('takes the idle host, then the one with the fewest sessions (however loaded), and drains it first', () => {
    const state = busyCluster();
    const plan = planGroup({ ...state, group: voiceGroup({ media: 2 }, { disruptionBudget: '2' }) });

    expect(ids(plan, 'drain')).toEqual(['media-2']);
    expect(ids(plan, 'terminate')).toEqual(['media-3', 'media-2']);
    expect(plan.waves.some((wave) => wave.awaits.some((a) => a.hostId === 'media-2' && a.drained))).toBe(
      true,
    );
  });

  it('never goes below min, even when a lower count reaches the planner, and says why', () => {
    const definition = voiceDefinition();
    const media = { ...definition.hostTypes.media, min: 3, max: 6 } as (typeof definition.hostTypes)['media'];
    const group = compileGroup({ ...definition, hostTypes: { ...definition.hostTypes, media } }, 1);
    const state = busyCluster(group);
    const plan = planGroup({ ...state, group: withCapacity(group, { media: 1 }) });

    expect(ids(plan, 'terminate')).toEqual(['media-3']);
    expect(plan.deferred.filter((entry) => entry.hostId.startsWith('media'))).toEqual([
      { hostId: 'media-1', reason: 'scale-in: media has 4 hosts, wants 1, below its min 3: kept at 3' },
      { hostId: 'media-2', reason: 'scale-in: media has 4 hosts, wants 1, below its min 3: kept at 3' },
    ]);
  });

  it('puts a host it drained for a scale-in back into service when the count rises again, launching none', () => {
    const state = busyCluster();
    const down = planGroup({ ...state, group: voiceGroup({ media: 2 }, { disruptionBudget: '2' }) });
    // Carried out up to the wait for media-2's sessions: it drains, its call goes on.
    const drainWave = down.waves.findIndex((wave) => wave.awaits.some((a) => a.drained));
    const draining = carryOut(state, { ...down, waves: down.waves.slice(0, drainWave) });
    const stillBusy = withHosts(draining, (host) => (host.hostId === 'media-2' ? { liveSessions: 1 } : {}));
    expect(stillBusy.desired['media-2']?.mode).toBe('draining');

    const up = planGroup({ ...stillBusy, group: voiceGroup({ media: 4 }) });

    expect(ids(up, 'launch')).toEqual([]);
    expect(actionsOf(up, 'assign')).toEqual([{ wave: 0, hostId: 'media-2', kind: 'assign' }]);
    const assigned = up.waves[0]?.actions.find((action) => action.kind === 'assign');
    expect(assigned?.kind === 'assign' && assigned.state.mode).toBe('running');
  });
});
