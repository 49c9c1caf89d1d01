import * as z from 'zod/mini';
import type { Bill } from '../../../shared/cost/model.ts';
import { estimateFromCounts, sumCounts } from '../../../shared/cost/usage.ts';
import type { ApiDeps } from '../deps.ts';
import { type ApiRequest, type ApiResponse, intParam, parseQuery } from '../http.ts';

const DEFAULT_HOURS = 24;
/** Hosts listed per page to count them (the store's page limit). */
const HOST_PAGE = 100;

export const CostQuery = z.strictObject({ hours: z.optional(intParam(1, 24 * 31)) });

/**
 * GET /cost: what the system cost over the last `hours` (default 24), and that rate for a month, from its own
 * hourly counters (written by the ingest, the monitor and the reconcile) priced with the model of
 * shared/cost/model.ts. Inbox polls are the hosts' own requests: they are priced from the number of hosts
 * registered and the default inbox cadence. Reading it costs one BatchGetItem and a listing of the hosts.
 */
export async function getCost(deps: ApiDeps, request: ApiRequest): Promise<ApiResponse> {
  const { hours = DEFAULT_HOURS } = parseQuery(CostQuery, request.query);
  const to = deps.now();
  const from = new Date(to.getTime() - hours * 3_600_000);
  const counted = deps.usage ? await deps.usage.hours(from, to) : [];
  const counts = sumCounts(counted.map((hour) => hour.counts));
  const hosts = await countHosts(deps);
  // A system younger than the window has counted only since it started: the month is scaled from the hours
  // that hold counts (from the first counted hour to now), not from the whole window, which would dilute them.
  const firstCounted = counted[0] ? Date.parse(`${counted[0].hour}:00:00.000Z`) : to.getTime();
  const spanHours = Math.min(
    hours,
    Math.max(1 / 60, (to.getTime() - Math.max(firstCounted, from.getTime())) / 3_600_000),
  );
  const estimate = estimateFromCounts({ counts, hours: spanHours, hosts });
  return {
    status: 200,
    xmlRoot: 'cost',
    body: {
      from: from.toISOString(),
      to: to.toISOString(),
      hours,
      hoursCounted: counted.length,
      /** The stretch the counts cover, which the month is scaled from. */
      spanHours: Math.round(spanHours * 100) / 100,
      hosts,
      counters: counts,
      window: view(estimate.window),
      monthly: view(estimate.monthly),
      prices: 'us-east-1 list prices, no free tier',
    },
  };
}

async function countHosts(deps: ApiDeps): Promise<number> {
  let hosts = 0;
  let cursor: string | undefined;
  do {
    const page = await deps.hosts.list({}, HOST_PAGE, cursor);
    // A stopped host polls nothing; every other one (booting, draining …) has its agent's inbox loop running.
    hosts += page.hosts.filter((host) => host.status !== 'stopped').length;
    cursor = page.next;
  } while (cursor !== undefined);
  return hosts;
}

function view(bill: Bill) {
  return {
    totalUsd: cents(bill.totalUsd),
    byService: Object.fromEntries(
      Object.entries(bill.byService).map(([service, usd]) => [service, cents(usd)]),
    ),
    lines: bill.lines.map((line) => ({
      id: line.id,
      service: line.service,
      label: line.label,
      quantity: Math.round(line.quantity * 1000) / 1000,
      unit: line.unit,
      usd: cents(line.usd),
    })),
  };
}

/** Four decimals: a day's share of a cheap line is a fraction of a cent. */
function cents(usd: number): number {
  return Math.round(usd * 10_000) / 10_000;
}
