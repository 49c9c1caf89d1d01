/**
 * GET /groups/{name}/scaling: per scaled host type, its hosts now (ready, booting, draining), the count it
 * wants, its bounds, the demand and metrics its ready hosts report, the schedule's floor and the forecast the
 * autoscaler works with, and the decisions it took (from the group's scaling document; the stream holds all).
 * Three reads: the group document, its hosts (a page per 100), the scaling document; in an hour's first minute,
 * before the monitor's tick has loaded the predictor's cache for it, also the hour documents that cache needs
 * (lookbackWeeks × 3 per host type), so the forecast shown is the one the monitor makes. Nothing is written.
 */
import * as z from 'zod/mini';
import { NotFoundError } from '../../../shared/errors.ts';
import type { ScalingDecidedData } from '../../../shared/groups/events.ts';
import type { GroupDocument } from '../../../shared/groups/group-state.ts';
import { livenessOf, ruleContext } from '../../../shared/monitor/rule-context.ts';
import {
  assessScaling,
  type DemandHours,
  demandHoursToRead,
  readDemandHours,
} from '../../../shared/monitor/scaling.ts';
import type { HostRecord } from '../../../shared/ports.ts';
import { SCALING_DOCUMENT_KIND, type ScalingDocument } from '../../../shared/scaling/scaling-document.ts';
import { CHANNELS } from '../../../shared/schemas.ts';
import type { ApiDeps } from '../deps.ts';
import { groupService } from '../group-resources.ts';
import { type ApiRequest, type ApiResponse, parseQuery } from '../http.ts';

const HOST_PAGE = 100;

async function groupHosts(deps: ApiDeps, group: string): Promise<HostRecord[]> {
  const all: HostRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await deps.hosts.list({ group }, HOST_PAGE, cursor);
    all.push(...page.hosts);
    cursor = page.next;
  } while (cursor !== undefined);
  return all;
}

export async function groupScaling(deps: ApiDeps, request: ApiRequest, name: string): Promise<ApiResponse> {
  parseQuery(z.strictObject({}), request.query);
  const group = (await groupService(deps).getGroup(name)).body;
  if (!Object.values(group.compiled.hostTypes).some((type) => type.scaling !== undefined)) {
    throw new NotFoundError(`group "${name}" has no host type with a scaling block`, { group: name });
  }
  const [records, stored] = await Promise.all([
    groupHosts(deps, name),
    deps.documents.get<ScalingDocument>(SCALING_DOCUMENT_KIND, name),
  ]);
  const now = deps.now();
  const hours = await readDemandHours(
    deps.documents,
    name,
    demandHoursToRead(group, stored?.body, now.getTime()),
  );
  return {
    status: 200,
    xmlRoot: 'scaling',
    body: scalingView(name, group, records, stored?.body, now, hours),
  };
}

/** The response body, from what the reads gave (pure). */
export function scalingView(
  name: string,
  group: GroupDocument,
  records: readonly HostRecord[],
  stored: ScalingDocument | undefined,
  now: Date,
  hours?: DemandHours,
) {
  const context = ruleContext(group, records, now, livenessOf(group, 0));
  const assessment = assessScaling(group, context.hosts, stored, now.getTime(), hours);
  const decisions: ScalingDecidedData[] = stored?.decisions ?? [];
  const hostTypes = Object.fromEntries(
    assessment.hostTypes.map((scaling) => {
      const type = group.compiled.hostTypes[scaling.hostType];
      const { observation, forecast } = scaling;
      const lastDecision = decisions.find((decision) => decision.hostType === scaling.hostType);
      const forecastSessions =
        forecast === undefined
          ? undefined
          : CHANNELS.reduce((sum, channel) => sum + (forecast.sessions[channel] ?? 0), 0);
      return [
        scaling.hostType,
        {
          current: observation.counts,
          desired: type?.desired ?? scaling.decision.previous,
          min: scaling.policy.min,
          max: scaling.policy.max,
          channels: [...(type?.channels ?? [])],
          demand: observation.demand,
          load: observation.load ?? 0,
          metrics: observation.metrics,
          ...(scaling.scheduledMinimum === undefined ? {} : { scheduledMinimum: scaling.scheduledMinimum }),
          ...(forecast === undefined || forecastSessions === undefined
            ? {}
            : { forecast: { sessions: forecastSessions, at: new Date(forecast.at).toISOString() } }),
          ...(lastDecision === undefined ? {} : { lastDecision }),
        },
      ];
    }),
  );
  return { group: name, hostTypes, decisions };
}
