import * as z from 'zod/mini';
import { diff } from '../../../shared/diff.ts';
import { ConflictError, NotFoundError, ValidationError } from '../../../shared/errors.ts';
import { hostStream } from '../../../shared/events.ts';
import { evolve, type HostState } from '../../../shared/fold.ts';
import { registerHost as registerHostRecord } from '../../../shared/host-registration.ts';
import { driftOf } from '../../../shared/hosts/drift.ts';
import type { Metrics, TrackedState } from '../../../shared/metrics.ts';
import type { EventStore, HostRecord } from '../../../shared/ports.ts';
import { HostStatus, Name, RegisterHostRequest } from '../../../shared/schemas.ts';
import type { ApiDeps } from '../deps.ts';
import {
  type ApiRequest,
  type ApiResponse,
  intParam,
  parseBody,
  parseJsonBody,
  parseQuery,
} from '../http.ts';
import { Cursor, historyQuery, readHistory } from './history.ts';

/** A host as the API shows it: the projection minus its secret ciphertext, which never leaves the store. */
export interface HostView {
  hostId: string;
  group: string;
  hostType: string;
  roles: string[];
  role: string;
  status: HostStatus;
  version: number;
  lastSeq: number;
  lastChangeSeq: number;
  lastSeen?: string;
  registeredAt: string;
  observedAt?: string;
  metrics?: Metrics;
  /** The observed machine state; absent until the first snapshot. */
  state?: TrackedState;
  /** Why the host is degraded: the dependency with no healthy host, and those hosts. */
  degradedBy?: HostRecord['degradedBy'];
  /** When and why the host was judged lost (it was replaced). */
  lost?: HostRecord['lost'];
  /** Its registration ended (secret revoked): whatever it still posts is refused. */
  retired?: HostRecord['retired'];
}

/** Copies fields one by one, so a field added to HostRecord later is not published by accident. */
export function hostView(record: HostRecord): HostView {
  return {
    hostId: record.hostId,
    group: record.group,
    hostType: record.hostType,
    roles: record.roles,
    role: record.role,
    status: record.status,
    version: record.version,
    lastSeq: record.lastSeq,
    lastChangeSeq: record.lastChangeSeq,
    lastSeen: record.lastSeen,
    registeredAt: record.registeredAt,
    observedAt: record.observedAt,
    metrics: record.metrics,
    state: record.observed,
    ...(record.degradedBy ? { degradedBy: record.degradedBy } : {}),
    ...(record.lost ? { lost: record.lost } : {}),
    ...(record.retired ? { retired: record.retired } : {}),
  };
}

const DEFAULT_LIST_LIMIT = 50;
/** The event store's largest page: folding reads whole streams, so fewer round trips matter. */
const FOLD_PAGE = 1000;

export const ListQuery = z
  .strictObject({
    role: z.optional(Name),
    status: z.optional(HostStatus),
    group: z.optional(Name),
    service: z.optional(Name),
    version: z.optional(z.string().check(z.minLength(1), z.maxLength(64))),
    limit: z.optional(intParam(1, 100)),
    next: z.optional(Cursor),
  })
  .check(
    z.refine((query) => query.version === undefined || query.service !== undefined, {
      path: ['version'],
      message: 'filtering by version needs service too (which service runs at that version?)',
    }),
  );

export async function listHosts(deps: ApiDeps, request: ApiRequest): Promise<ApiResponse> {
  const { limit, next, ...filter } = parseQuery(ListQuery, request.query);
  const page = await deps.hosts.list(filter, limit ?? DEFAULT_LIST_LIMIT, next);
  return { status: 200, xmlRoot: 'hosts', body: { hosts: page.hosts.map(hostView), next: page.next } };
}

function parseHostId(raw: string): string {
  const parsed = Name.safeParse(raw);
  if (!parsed.success) {
    throw new ValidationError(`"${raw}" is not a host id: ${parsed.error.issues[0]?.message ?? 'invalid'}`, {
      parameter: 'hostId',
    });
  }
  return parsed.data;
}

async function requireHost(deps: ApiDeps, raw: string): Promise<HostRecord> {
  const hostId = parseHostId(raw);
  const record = await deps.hosts.get(hostId);
  if (!record) throw new NotFoundError(`host "${hostId}" not found`, { hostId });
  return record;
}

export async function getHost(deps: ApiDeps, request: ApiRequest, hostId: string): Promise<ApiResponse> {
  parseQuery(z.strictObject({}), request.query);
  return { status: 200, xmlRoot: 'host', body: hostView(await requireHost(deps, hostId)) };
}

/**
 * POST /hosts/{id}/upload-grant: a fresh CloudFront grant for the host's own prefix, issued before the one it
 * holds expires (rotation). A retired host gets none: its registration ended.
 */
export async function renewUploadGrant(
  deps: ApiDeps,
  request: ApiRequest,
  hostId: string,
): Promise<ApiResponse> {
  parseQuery(z.strictObject({}), request.query);
  const host = await requireHost(deps, hostId);
  if (!deps.uploadGrants) {
    throw new ConflictError(
      'upload grants are not configured: deploy with -c uploadSigningKeyParameter=<SSM parameter of the upload key>',
      { hostId: host.hostId },
    );
  }
  if (host.retired) {
    throw new ConflictError(`host ${host.hostId} is retired: its registration ended, so it gets no grant`, {
      hostId: host.hostId,
    });
  }
  return { status: 200, xmlRoot: 'upload', body: await deps.uploadGrants.issue(host.hostId, deps.now()) };
}

export async function hostHistory(deps: ApiDeps, request: ApiRequest, rawId: string): Promise<ApiResponse> {
  const query = historyQuery(request);
  const { hostId } = await requireHost(deps, rawId);
  const page = await readHistory(deps, hostStream(hostId), query);
  return { status: 200, xmlRoot: 'history', body: { hostId, events: page.events, next: page.next } };
}

/** The host's states at each of `versions`, folding its stream once from the start. */
async function statesAt(events: EventStore, hostId: string, versions: readonly number[]) {
  const stream = hostStream(hostId);
  const latest = await events.currentVersion(stream);
  if (latest === 0) throw new NotFoundError(`host "${hostId}" has no recorded events yet`, { hostId });
  const beyond = versions.find((version) => version > latest);
  if (beyond !== undefined) {
    throw new NotFoundError(`host "${hostId}" has no version ${beyond}: its latest version is ${latest}`, {
      hostId,
      version: beyond,
      latest,
    });
  }
  const wanted = new Set(versions);
  const found = new Map<number, HostState>();
  const last = Math.max(...versions);
  let state: HostState | undefined;
  let cursor: string | undefined;
  do {
    const page = await events.read(stream, { fromVersion: 1, toVersion: last, limit: FOLD_PAGE, cursor });
    for (const event of page.events) {
      state = evolve(state, event);
      if (wanted.has(event.version)) found.set(event.version, state);
    }
    cursor = page.next;
  } while (cursor !== undefined);
  return (version: number): HostState => {
    const at = found.get(version);
    if (!at) throw new Error(`stream ${stream} has no event at version ${version} below its head ${latest}`);
    return at;
  };
}

export const StateQuery = z.strictObject({ version: z.optional(intParam(1, Number.MAX_SAFE_INTEGER)) });

export async function hostStateAt(deps: ApiDeps, request: ApiRequest, rawId: string): Promise<ApiResponse> {
  const query = parseQuery(StateQuery, request.query);
  const { hostId } = await requireHost(deps, rawId);
  const version = query.version ?? (await deps.events.currentVersion(hostStream(hostId)));
  const state = (await statesAt(deps.events, hostId, [version]))(version);
  return { status: 200, xmlRoot: 'hostState', body: { hostId, version, state } };
}

/** The assignment in force at stream version N (the latest StateAssigned at or below it); default: the latest. */
export async function hostDesired(deps: ApiDeps, request: ApiRequest, rawId: string): Promise<ApiResponse> {
  const query = parseQuery(StateQuery, request.query);
  const record = await requireHost(deps, rawId);
  const { hostId } = record;
  const assignment =
    query.version === undefined
      ? record.assigned
      : (await statesAt(deps.events, hostId, [query.version]))(query.version).assigned;
  if (!assignment) {
    throw new NotFoundError(
      query.version === undefined
        ? `host "${hostId}" has never been assigned a state`
        : `host "${hostId}" had not been assigned a state at version ${query.version}`,
      { hostId, ...(query.version === undefined ? {} : { version: query.version }) },
    );
  }
  const { version, assignedAt, by, state } = assignment;
  return { status: 200, xmlRoot: 'desired', body: { hostId, version, assignedAt, by, state } };
}

/** The latest assignment as the host would report it, against what it last reported. */
export async function hostDrift(deps: ApiDeps, request: ApiRequest, rawId: string): Promise<ApiResponse> {
  parseQuery(z.strictObject({}), request.query);
  const record = await requireHost(deps, rawId);
  const drift = driftOf(record);
  if (!drift) {
    throw new NotFoundError(`host "${record.hostId}" has never been assigned a state`, {
      hostId: record.hostId,
    });
  }
  return { status: 200, xmlRoot: 'drift', body: { hostId: record.hostId, ...drift } };
}

export const DiffQuery = z.strictObject({
  from: z.optional(intParam(1, Number.MAX_SAFE_INTEGER)),
  to: z.optional(intParam(1, Number.MAX_SAFE_INTEGER)),
  with: z.optional(Name),
});

/** Observed state compared as a whole document: a state not yet observed is the empty one. */
function observedOf(state: { observed?: TrackedState }): object {
  return state.observed ?? {};
}

export async function hostDiff(deps: ApiDeps, request: ApiRequest, rawId: string): Promise<ApiResponse> {
  const query = parseQuery(DiffQuery, request.query);
  const versions = query.from !== undefined || query.to !== undefined;
  if (query.with !== undefined && versions) {
    throw new ValidationError(
      'pass either from and to (two versions of this host) or with (another host), not both',
      {
        parameters: ['from', 'to', 'with'],
      },
    );
  }
  if (query.with !== undefined) {
    const host = await requireHost(deps, rawId);
    const other = await requireHost(deps, query.with);
    return {
      status: 200,
      xmlRoot: 'diff',
      body: { hostId: host.hostId, with: other.hostId, changes: diff(observedOf(host), observedOf(other)) },
    };
  }
  if (query.from === undefined || query.to === undefined) {
    const missing = query.from === undefined ? 'from' : 'to';
    throw new ValidationError(
      versions
        ? `query parameter "${missing}" is missing: a diff between versions needs both from and to`
        : 'a diff needs from and to (two versions of this host) or with (another host)',
      versions ? { parameter: missing } : { parameters: ['from', 'to', 'with'] },
    );
  }
  const { from, to } = query;
  const { hostId } = await requireHost(deps, rawId);
  const stateAt = await statesAt(deps.events, hostId, [from, to]);
  return {
    status: 200,
    xmlRoot: 'diff',
    body: { hostId, from, to, changes: diff(observedOf(stateAt(from)), observedOf(stateAt(to))) },
  };
}

/** Registration is the only place a secret is ever shown; the store keeps only its ciphertext. */
export async function registerHost(deps: ApiDeps, request: ApiRequest): Promise<ApiResponse> {
  const body = parseBody(RegisterHostRequest, parseJsonBody(request));
  const hostId = body.hostId ?? generatedHostId(body.hostType, deps.newId());
  const now = deps.now();
  const secret = deps.newSecret();
  // Signed before anything is written: a key that cannot be read then leaves no host without its grant.
  const upload = await deps.uploadGrants?.issue(hostId, now);
  await registerHostRecord(
    deps,
    { hostId, group: body.group, hostType: body.hostType, roles: body.roles },
    secret,
    now,
  );
  return {
    status: 201,
    xmlRoot: 'registration',
    headers: { Location: `/hosts/${hostId}` },
    body: {
      hostId,
      secret,
      group: body.group,
      hostType: body.hostType,
      roles: body.roles,
      ...(upload ? { upload } : {}),
      note: 'store the secret now: it is shown once',
    },
  };
}

function generatedHostId(hostType: string, suffix: string): string {
  const hostId = `${hostType}-${suffix}`;
  if (!Name.safeParse(hostId).success) {
    throw new ValidationError(`cannot derive a host id from hostType "${hostType}": pass hostId explicitly`, {
      parameter: 'hostId',
    });
  }
  return hostId;
}
