import { clearAlarm, raiseAlarm } from '../../../shared/groups/group-service.ts';
import type { GroupDocument } from '../../../shared/groups/group-state.ts';
import { degradations } from '../../../shared/hosts/dependency-health.ts';
import { markDegraded, markLost, markRecovered } from '../../../shared/hosts/host-commands.ts';
import { isOverdue, silentSeconds } from '../../../shared/hosts/liveness.ts';
import { isRetired, livenessOf } from '../../../shared/monitor/rule-context.ts';
import type { HostRecord } from '../../../shared/ports.ts';
import { mapLimited } from './common.ts';
import type { ReconcileDeps } from './types.ts';

/** The episode of "dependency X failed" alarms: one per dependency, cleared once nothing is degraded by it. */
const DEGRADED_EPISODE = 'dependency-failed#';

/**
 * What the streams must say about the group's hosts before the reconcile plans from them: a host silent past
 * the group's liveness policy is lost (and its secret revoked: whatever it still sends is refused, and it is
 * replaced); a host whose dependency has no healthy provider is degraded, and the group's history says
 * which dependency. `records` is updated in place, so the plan sees what was just recorded.
 */
export async function recordHostHealth(
  deps: ReconcileDeps,
  group: GroupDocument,
  records: HostRecord[],
): Promise<void> {
  const now = deps.now();
  const liveness = livenessOf(group, deps.settings.heartbeatCoalesceSeconds);
  const position = new Map(records.map((record, index) => [record.hostId, index]));
  const update = (saved: HostRecord | undefined) => {
    if (saved) records[position.get(saved.hostId) as number] = saved;
  };

  const overdue = records.filter((record) => !isRetired(record) && isOverdue(record, now, liveness));
  await mapLimited(overdue, 8, async (record) => {
    const silent = Math.round(silentSeconds(record, now));
    update(
      await markLost(deps, record.hostId, {
        ...(record.lastSeen ? { lastSeen: record.lastSeen } : {}),
        silentSeconds: silent,
        reason: `no snapshot for ${silent} s (${liveness.missedHeartbeats} heartbeats of ${liveness.heartbeatSeconds} s missed, ${liveness.graceSeconds} s of heartbeat coalescing allowed)`,
      }),
    );
    await deps.provisioner.revoke(record.hostId);
  });

  const marks = degradations(group.compiled, records);
  const degradedBy = new Map<string, string[]>();
  await mapLimited(marks, 8, async (mark) => {
    const record = records[position.get(mark.hostId) as number];
    if (!record) return;
    if (mark.dependency === undefined) {
      if (record.degradedBy) update(await markRecovered(deps, mark.hostId));
      return;
    }
    degradedBy.set(mark.dependency, [...(degradedBy.get(mark.dependency) ?? []), mark.hostId]);
    if (record.degradedBy?.dependency === mark.dependency) return;
    update(
      await markDegraded(deps, mark.hostId, {
        dependency: mark.dependency,
        dependencyHosts: mark.dependencyHosts,
        reason: `${mark.dependency} has no healthy host (${mark.dependencyHosts.join(', ') || 'none running'})`,
      }),
    );
  });

  for (const [dependency, hostIds] of [...degradedBy].sort(([a], [b]) => a.localeCompare(b))) {
    const providers = marks.find((mark) => mark.dependency === dependency)?.dependencyHosts ?? [];
    await raiseAlarm(deps, group.definition.name, {
      alarmId: `${DEGRADED_EPISODE}${dependency}@${now.toISOString()}`,
      episode: `${DEGRADED_EPISODE}${dependency}`,
      alarm: 'dependency-failed',
      detail: `${dependency} has no healthy host (${providers.join(', ') || 'none running'}): ${hostIds.length} dependent hosts are degraded (${hostIds.sort().join(', ')})`,
      hostIds: [...providers],
      service: dependency,
    });
  }
  for (const episode of Object.keys(group.openAlarms ?? {})) {
    if (!episode.startsWith(DEGRADED_EPISODE)) continue;
    if (!degradedBy.has(episode.slice(DEGRADED_EPISODE.length)))
      await clearAlarm(deps, group.definition.name, episode);
  }
}
