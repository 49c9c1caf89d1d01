import { type BroadcastTarget, broadcastMessageId } from '../../../shared/groups/broadcast.ts';
import type { Action, Wave } from '../../../shared/groups/model.ts';
import { loadGroup, mapLimited } from './common.ts';
import type { PlanRef, ReconcileDeps } from './types.ts';

type Notify = Extract<Action, { kind: 'notify' }>;

export interface DeliveredNotification {
  target: BroadcastTarget;
  messageId: string;
  service: string;
  reason: string;
  hostIds: string[];
}

/**
 * Tells the dependents of a changed service that it changed, one signed broadcast per role they have: the
 * planner names hosts, but inboxes are subscribed by group and role, so the hosts are resolved to the roles
 * of their host types (as the group defines them now, which is what their inbox filters were made from).
 * Called after the wave's states went out, so a dependent that re-reads its endpoints sees the new ones.
 *
 * A retried wave sends the same message ids (broadcastMessageId), so a host that acted on the first delivery
 * ignores the second. A host the projection no longer knows is not told: it has no inbox to be told in.
 */
export async function deliverNotifications(
  deps: ReconcileDeps,
  ref: PlanRef,
  index: number,
  wave: Wave,
): Promise<DeliveredNotification[]> {
  const notifications = wave.actions.flatMap((action, position) =>
    action.kind === 'notify' ? [{ action, position }] : [],
  );
  if (notifications.length === 0) return [];
  const group = await loadGroup(deps.documents, ref.group);
  const hostTypes = await hostTypesOf(
    deps,
    wave,
    notifications.map(({ action }) => action),
  );

  const deliveries: DeliveredNotification[] = [];
  for (const { action, position } of notifications) {
    const byRole = new Map<string, string[]>();
    for (const hostId of action.hostIds) {
      const hostType = hostTypes.get(hostId);
      const roles = hostType === undefined ? [] : (group.compiled.hostTypes[hostType]?.roles ?? []);
      for (const role of roles) byRole.set(role, [...(byRole.get(role) ?? []), hostId]);
    }
    for (const [role, hostIds] of [...byRole].sort(([a], [b]) => a.localeCompare(b))) {
      const target = { group: ref.group, role };
      deliveries.push({
        target,
        messageId: broadcastMessageId({ planId: ref.planId, wave: index, action: position, target }),
        service: action.service,
        reason: action.reason,
        hostIds: hostIds.sort(),
      });
    }
  }
  await mapLimited(deliveries, 4, ({ target, messageId, service, reason, hostIds }) =>
    deps.publisher.broadcast(target, { kind: 'notify', service, reason, hostIds }, messageId),
  );
  return deliveries;
}

/** hostId → host type: launched in this wave (its record may not say yet), else the host's record. */
async function hostTypesOf(
  deps: ReconcileDeps,
  wave: Wave,
  actions: readonly Notify[],
): Promise<Map<string, string>> {
  const types = new Map<string, string>();
  for (const action of wave.actions) if (action.kind === 'launch') types.set(action.hostId, action.hostType);
  const unknown = [...new Set(actions.flatMap((action) => action.hostIds))].filter((id) => !types.has(id));
  const records = await mapLimited(unknown, 16, (hostId) => deps.hosts.get(hostId));
  for (const record of records) if (record) types.set(record.hostId, record.hostType);
  return types;
}
