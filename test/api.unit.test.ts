import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadApiConfig } from '../functions/api/config.ts';
import { type ApiDeps, createApiHandler } from '../functions/api/handler.ts';
import { generatedDocuments } from '../functions/api/openapi.ts';
import { runCommand } from '../shared/command/runner.ts';
import { diff } from '../shared/diff.ts';
import { NotFoundError } from '../shared/errors.ts';
import { type AssignedBy, hostStream, type NewEvent } from '../shared/events.ts';
import { fold, statusOf } from '../shared/fold.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import { hostDecider } from '../shared/hosts/host-decider.ts';
import { hostProjection } from '../shared/hosts/host-projection.ts';
import type { TrackedState } from '../shared/metrics.ts';
import type { HostRecord } from '../shared/ports.ts';
import { problemOf } from '../shared/problem.ts';
import { RegisterHostRequest } from '../shared/schemas.ts';
import {
  FakeCipher,
  MemoryDocumentStore,
  MemoryEventStore,
  MemoryHostStore,
  RecordingReconcileStarter,
} from './support/memory-stores.ts';
import { childText, elementChildren, readXml, textOf } from './support/xml-reader.ts';

interface RequestOptions {
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: string;
  isBase64Encoded?: boolean;
}

/** Builds events the way the local server does: no resource, no request context, pathParameters null. */
function apiEvent(method: string, path: string, options: RequestOptions = {}): APIGatewayProxyEvent {
  return {
    httpMethod: method,
    path,
    headers: options.headers ?? {},
    queryStringParameters: options.query ?? null,
    pathParameters: null,
    body: options.body ?? null,
    isBase64Encoded: options.isBase64Encoded ?? false,
  } as APIGatewayProxyEvent;
}

function json(result: APIGatewayProxyResult): Record<string, unknown> {
  return JSON.parse(result.body) as Record<string, unknown>;
}

function header(result: APIGatewayProxyResult, name: string): string | undefined {
  const entry = Object.entries(result.headers ?? {}).find(
    ([key]) => key.toLowerCase() === name.toLowerCase(),
  );
  return entry === undefined ? undefined : String(entry[1]);
}

function expectProblem(result: APIGatewayProxyResult, status: number): Record<string, unknown> {
  expect(result.statusCode).toBe(status);
  expect(header(result, 'content-type')).toBe('application/problem+json; charset=utf-8');
  expect(header(result, 'cache-control')).toBe('no-store');
  const body = json(result);
  expect(body).toMatchObject({ status, type: expect.stringMatching(/^urn:fleetfold:problem:/) });
  expect(typeof body.title).toBe('string');
  expect(typeof body.detail).toBe('string');
  return body;
}

function observedState(
  overrides: Partial<TrackedState> & Pick<TrackedState, 'group' | 'hostType' | 'roles'>,
): TrackedState {
  return {
    status: 'running',
    ips: { internal: '10.0.0.1' },
    capacity: { sessions: 100 },
    config: { version: '1', values: { 'sip.port': '5060' } },
    software: {},
    operational: { dataRefs: [], bands: { load: 0, sessions: { voice: 0, sms: 0, mms: 0, video: 0 } } },
    ...overrides,
  };
}

let hosts: MemoryHostStore;
let events: MemoryEventStore;
let cipher: FakeCipher;
let handle: (event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult>;
let counter: number;
const NOW = new Date('2030-05-06T07:08:09.000Z');

beforeEach(() => {
  hosts = new MemoryHostStore();
  events = new MemoryEventStore();
  cipher = new FakeCipher();
  counter = 0;
  const deps: ApiDeps = {
    hosts,
    events,
    cipher,
    documents: new MemoryDocumentStore(),
    reconcile: new RecordingReconcileStarter(),
    now: () => NOW,
    newSecret: () => `secret-${++counter}`,
    newId: () => `id${++counter}`,
    published: generatedDocuments(),
  };
  handle = createApiHandler(deps);
});

afterEach(() => {
  vi.restoreAllMocks();
});

async function register(body: Record<string, unknown>): Promise<APIGatewayProxyResult> {
  return handle(
    apiEvent('POST', '/hosts', {
      body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json' },
    }),
  );
}

/** Plays the ingest function's part: appends a StateObserved diff and saves the refolded projection. */
async function observe(hostId: string, seq: number, state: TrackedState): Promise<void> {
  const stream = hostStream(hostId);
  const before = fold((await events.read(stream, { limit: 1000 })).events);
  const event: NewEvent = {
    type: 'StateObserved',
    eventId: `snapshots/${hostId}/${seq}.json`,
    data: { seq, observedAt: NOW.toISOString(), changes: diff(before?.observed ?? {}, state) },
  };
  await events.append(stream, before?.version ?? 0, [event], NOW);
  const after = fold((await events.read(stream, { limit: 1000 })).events);
  const stored = (await hosts.get(hostId)) as HostRecord;
  if (!after) throw new Error('no state after observe');
  await hosts.save({ ...stored, ...after, status: statusOf(after), lastSeq: seq });
}

/** Plays the reconcile's part: tells the host a desired state (StateAssigned), through the command runner. */
async function assign(
  hostId: string,
  stateVersion: number,
  version: string,
  by: AssignedBy = { run: 'plan-1', reason: 'rollout' },
): Promise<DesiredHostState> {
  const state: DesiredHostState = {
    hostId,
    group: 'edge',
    hostType: 'cr',
    stateVersion,
    services: { 'call-router': { version, config: { codec: 'opus' } } },
    config: { 'sip.port': '5060' },
    mode: 'running',
  };
  await runCommand(
    { events, now: () => NOW },
    { stream: hostStream(hostId), decider: hostDecider, projection: hostProjection(hosts, hostId) },
    { type: 'Assign', state, by, at: NOW },
  );
  return state;
}

async function registerFleet(): Promise<void> {
  await register({ hostId: 'cr-1', group: 'edge', hostType: 'cr', roles: ['call-router'] });
  await register({ hostId: 'cr-2', group: 'edge', hostType: 'cr', roles: ['call-router', 'lb'] });
  await register({ hostId: 'md-1', group: 'core', hostType: 'md', roles: ['media'] });
  await observe(
    'cr-1',
    1,
    observedState({
      group: 'edge',
      hostType: 'cr',
      roles: ['call-router'],
      software: { 'call-router': { version: '1.2.0', status: 'running' } },
    }),
  );
  await observe(
    'cr-2',
    1,
    observedState({
      group: 'edge',
      hostType: 'cr',
      roles: ['call-router', 'lb'],
      software: { 'call-router': { version: '1.3.0', status: 'running' } },
    }),
  );
}

function hostIds(result: APIGatewayProxyResult): string[] {
  return (json(result).hosts as { hostId: string }[]).map((host) => host.hostId);
}

describe('POST /hosts', () => {
  it('registers a host, returns its secret once and never shows it again', async () => {
    const created = await register({
      hostId: 'cr-1',
      group: 'edge',
      hostType: 'cr',
      roles: ['call-router', 'lb'],
    });
    expect(created.statusCode).toBe(201);
    expect(header(created, 'location')).toBe('/hosts/cr-1');
    expect(header(created, 'content-type')).toBe('application/json; charset=utf-8');
    expect(header(created, 'cache-control')).toBe('no-store');
    expect(json(created)).toEqual({
      hostId: 'cr-1',
      secret: 'secret-1',
      group: 'edge',
      hostType: 'cr',
      roles: ['call-router', 'lb'],
      note: 'store the secret now: it is shown once',
    });

    const stored = (await hosts.get('cr-1')) as HostRecord;
    expect(await cipher.decrypt(stored.secretCiphertext, 'cr-1')).toBe('secret-1');
    expect(stored).toMatchObject({
      status: 'pending',
      role: 'call-router',
      version: 1,
      lastSeq: 0,
      lastChangeSeq: 0,
    });

    const recorded = await events.read(hostStream('cr-1'));
    expect(recorded.events).toEqual([
      {
        type: 'HostRegistered',
        eventId: 'register#cr-1',
        stream: 'host#cr-1',
        version: 1,
        recordedAt: NOW.toISOString(),
        data: {
          hostId: 'cr-1',
          group: 'edge',
          hostType: 'cr',
          roles: ['call-router', 'lb'],
          registeredAt: NOW.toISOString(),
        },
      },
    ]);

    for (const read of [
      await handle(apiEvent('GET', '/hosts/cr-1')),
      await handle(apiEvent('GET', '/hosts')),
      await handle(apiEvent('GET', '/hosts/cr-1', { query: { format: 'xml' } })),
    ]) {
      expect(read.statusCode).toBe(200);
      expect(read.body).not.toContain('secret-1');
      expect(read.body).not.toContain('secretCiphertext');
      expect(read.body).not.toContain(stored.secretCiphertext);
    }
    expect(json(await handle(apiEvent('GET', '/hosts/cr-1')))).toMatchObject({
      hostId: 'cr-1',
      role: 'call-router',
      roles: ['call-router', 'lb'],
      status: 'pending',
      version: 1,
      registeredAt: NOW.toISOString(),
    });
  });

  it('derives the host id from the host type when none is given', async () => {
    const created = await register({ group: 'edge', hostType: 'cr', roles: ['call-router'] });
    expect(created.statusCode).toBe(201);
    expect(json(created).hostId).toBe('cr-id1');
    expect(header(created, 'location')).toBe('/hosts/cr-id1');
    expect(await hosts.get('cr-id1')).toBeDefined();
  });

  it('accepts a base64-encoded body', async () => {
    const body = Buffer.from(
      JSON.stringify({ hostId: 'b-1', group: 'g', hostType: 'b', roles: ['r'] }),
    ).toString('base64');
    const created = await handle(apiEvent('POST', '/hosts', { body, isBase64Encoded: true }));
    expect(created.statusCode).toBe(201);
  });

  it('rejects a duplicate registration with 409 and keeps the first secret', async () => {
    await register({ hostId: 'cr-1', group: 'edge', hostType: 'cr', roles: ['call-router'] });
    const again = await register({ hostId: 'cr-1', group: 'other', hostType: 'cr', roles: ['x'] });
    const problem = expectProblem(again, 409);
    expect(problem.detail).toBe('host cr-1 exists');
    expect(problem.hostId).toBe('cr-1');
    expect(problem.instance).toBe('/hosts');
    expect(again.body).not.toContain('secret-');
    const stored = (await hosts.get('cr-1')) as HostRecord;
    expect(await cipher.decrypt(stored.secretCiphertext, 'cr-1')).toBe('secret-1');
    expect(stored.group).toBe('edge');
  });

  it('rejects with 409 when the projection exists though the stream was free', async () => {
    const existing = (await (async () => {
      await register({ hostId: 'cr-1', group: 'edge', hostType: 'cr', roles: ['call-router'] });
      return hosts.get('cr-1');
    })()) as HostRecord;
    events = new MemoryEventStore();
    handle = createApiHandler({
      hosts,
      events,
      cipher,
      documents: new MemoryDocumentStore(),
      reconcile: new RecordingReconcileStarter(),
      now: () => NOW,
      newSecret: () => 's',
      newId: () => 'i',
      published: generatedDocuments(),
    });
    const again = await register({ hostId: 'cr-1', group: 'edge', hostType: 'cr', roles: ['call-router'] });
    expect(expectProblem(again, 409).detail).toBe('host cr-1 exists');
    expect(await hosts.get('cr-1')).toEqual(existing);
  });

  it('rejects a body that is not JSON', async () => {
    const result = await handle(apiEvent('POST', '/hosts', { body: '{"hostId": ' }));
    expect(expectProblem(result, 400).detail).toBe('body is not valid JSON');
    expect(expectProblem(await handle(apiEvent('POST', '/hosts')), 400).detail).toBe(
      'body is not valid JSON',
    );
  });

  it('rejects an invalid body listing each issue by path', async () => {
    const result = await register({ hostId: 'Bad Id', group: 'edge', roles: [], extra: 1 });
    const problem = expectProblem(result, 400);
    const paths = (problem.errors as { path: string }[]).map((issue) => issue.path);
    expect(paths).toEqual(expect.arrayContaining(['/hostId', '/hostType', '/roles', '']));
    expect(problem.detail).toMatch(/^body is invalid: /);
    expect(await hosts.list({}, 10)).toEqual({ hosts: [], next: undefined });
  });

  it('rejects a body over 64 KiB with 413', async () => {
    const body = JSON.stringify({ group: 'g', hostType: 't', roles: ['r'], pad: 'x'.repeat(64 * 1024) });
    const problem = expectProblem(await handle(apiEvent('POST', '/hosts', { body })), 413);
    expect(problem.limit).toBe(65536);
  });

  it('rejects a generated id that would not be a valid host id', async () => {
    const problem = expectProblem(
      await register({ group: 'g', hostType: 't'.repeat(64), roles: ['r'] }),
      400,
    );
    expect(problem.parameter).toBe('hostId');
  });
});

describe('GET /hosts', () => {
  beforeEach(registerFleet);

  it('lists every host without filters', async () => {
    const result = await handle(apiEvent('GET', '/hosts'));
    expect(result.statusCode).toBe(200);
    expect(hostIds(result)).toEqual(['cr-1', 'cr-2', 'md-1']);
    expect(json(result).next).toBeUndefined();
  });

  it('filters by status, group, role, service and service version', async () => {
    const list = async (query: Record<string, string>) =>
      hostIds(await handle(apiEvent('GET', '/hosts', { query })));
    expect(await list({ status: 'running' })).toEqual(['cr-1', 'cr-2']);
    expect(await list({ status: 'pending' })).toEqual(['md-1']);
    expect(await list({ group: 'core' })).toEqual(['md-1']);
    expect(await list({ role: 'call-router' })).toEqual(['cr-1', 'cr-2']);
    expect(await list({ service: 'call-router' })).toEqual(['cr-1', 'cr-2']);
    expect(await list({ service: 'call-router', version: '1.3.0' })).toEqual(['cr-2']);
    expect(await list({ group: 'edge', status: 'stopped' })).toEqual([]);
  });

  it('pages with limit and next', async () => {
    const first = json(await handle(apiEvent('GET', '/hosts', { query: { limit: '2' } })));
    expect((first.hosts as unknown[]).length).toBe(2);
    expect(typeof first.next).toBe('string');
    const second = await handle(
      apiEvent('GET', '/hosts', { query: { limit: '2', next: first.next as string } }),
    );
    expect(hostIds(second)).toEqual(['md-1']);
    expect(json(second).next).toBeUndefined();
  });

  it('shows observed state as `state`', async () => {
    const host = json(await handle(apiEvent('GET', '/hosts/cr-1')));
    expect(host.state).toMatchObject({ software: { 'call-router': { version: '1.2.0' } } });
    expect(host).not.toHaveProperty('observed');
  });

  it('rejects a status that is not a host status', async () => {
    const problem = expectProblem(
      await handle(apiEvent('GET', '/hosts', { query: { status: 'sleeping' } })),
      400,
    );
    expect(problem.parameter).toBe('status');
    expect(problem.detail).toContain('status');
  });

  it.each(['0', '101', 'abc', '1.5', '', '1e1'])('rejects limit=%j', async (limit) => {
    const problem = expectProblem(await handle(apiEvent('GET', '/hosts', { query: { limit } })), 400);
    expect(problem.parameter).toBe('limit');
  });

  it('rejects version without service', async () => {
    const problem = expectProblem(
      await handle(apiEvent('GET', '/hosts', { query: { version: '1.2.0' } })),
      400,
    );
    expect(problem.parameter).toBe('version');
    expect(problem.detail).toContain('service');
  });

  it('rejects an unknown query parameter instead of ignoring the filter', async () => {
    const problem = expectProblem(
      await handle(apiEvent('GET', '/hosts', { query: { stauts: 'running' } })),
      400,
    );
    expect(problem.parameter).toBe('stauts');
  });

  it('rejects a cursor it did not issue', async () => {
    const problem = expectProblem(
      await handle(apiEvent('GET', '/hosts', { query: { next: 'garbage' } })),
      400,
    );
    expect(problem.parameter).toBe('next');
  });
});

describe('content negotiation', () => {
  beforeEach(registerFleet);

  it('answers XML when Accept asks for application/xml', async () => {
    const result = await handle(apiEvent('GET', '/hosts', { headers: { Accept: 'application/xml' } }));
    expect(result.statusCode).toBe(200);
    expect(header(result, 'content-type')).toBe('application/xml; charset=utf-8');
    expect(header(result, 'vary')).toBe('Accept');
    expect(result.body.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).toBe(true);
    const root = readXml(result.body);
    expect(root.name).toBe('hosts');
    const listed = elementChildren(root, 'host');
    expect(listed.map((host) => childText(host, 'hostId'))).toEqual(['cr-1', 'cr-2', 'md-1']);
    const cr2 = listed[1];
    if (!cr2) throw new Error('cr-2 missing');
    // The primary role sits beside the role list, so the list keeps its wrapper.
    expect(elementChildren(cr2, 'role').map(textOf)).toEqual(['call-router']);
    const roles = elementChildren(cr2, 'roles')[0];
    expect(roles && elementChildren(roles, 'role').map(textOf)).toEqual(['call-router', 'lb']);
    const software = elementChildren(elementChildren(cr2, 'state')[0] ?? cr2, 'software')[0];
    expect(software && childText(elementChildren(software, 'call-router')[0] ?? software, 'version')).toBe(
      '1.3.0',
    );
  });

  it('answers XML for ?format=xml and escapes what the host reported', async () => {
    await observe(
      'md-1',
      1,
      observedState({
        group: 'core',
        hostType: 'md',
        roles: ['media'],
        config: { values: { motd: `<b>"Tom" & 'Jerry'</b>`, 'a b': 'spaced', '1st': 'digit' } },
        operational: {
          dataRefs: ['s3://x/1', 's3://x/2'],
          bands: { load: 1, sessions: { voice: 0, sms: 0, mms: 0, video: 0 } },
        },
      }),
    );
    const result = await handle(apiEvent('GET', '/hosts/md-1', { query: { format: 'xml' } }));
    expect(header(result, 'content-type')).toBe('application/xml; charset=utf-8');
    expect(result.body).toContain('&lt;b&gt;"Tom" &amp; \'Jerry\'&lt;/b&gt;');
    const root = readXml(result.body);
    expect(root.name).toBe('host');
    const state = elementChildren(root, 'state')[0];
    const values = state && elementChildren(elementChildren(state, 'config')[0] ?? state, 'values')[0];
    if (!state || !values) throw new Error('state/config/values missing');
    expect(childText(values, 'motd')).toBe(`<b>"Tom" & 'Jerry'</b>`);
    expect(elementChildren(values, 'entry').map((entry) => [entry.attributes.key, textOf(entry)])).toEqual([
      ['a b', 'spaced'],
      ['1st', 'digit'],
    ]);
    const operational = elementChildren(state, 'operational')[0];
    expect(operational && elementChildren(operational, 'dataRef').map(textOf)).toEqual([
      's3://x/1',
      's3://x/2',
    ]);
  });

  it('prefers JSON when the client rates it higher or forces it', async () => {
    const rated = await handle(
      apiEvent('GET', '/hosts', { headers: { accept: 'application/json;q=1, application/xml;q=0.5' } }),
    );
    expect(header(rated, 'content-type')).toBe('application/json; charset=utf-8');
    const forced = await handle(
      apiEvent('GET', '/hosts', { headers: { Accept: 'application/xml' }, query: { format: 'json' } }),
    );
    expect(header(forced, 'content-type')).toBe('application/json; charset=utf-8');
    expect(hostIds(forced)).toEqual(['cr-1', 'cr-2', 'md-1']);
    const wildcard = await handle(apiEvent('GET', '/hosts', { headers: { Accept: '*/*' } }));
    expect(header(wildcard, 'content-type')).toBe('application/json; charset=utf-8');
  });

  it('rejects a format other than json or xml', async () => {
    const problem = expectProblem(
      await handle(apiEvent('GET', '/hosts', { query: { format: 'yaml' } })),
      400,
    );
    expect(problem.parameter).toBe('format');
  });

  it('fails with problem+json even for clients asking for XML', async () => {
    const result = await handle(apiEvent('GET', '/hosts/nope', { headers: { Accept: 'application/xml' } }));
    expectProblem(result, 404);
  });

  it('renders history, state and diff as XML under their resource names', async () => {
    const history = readXml(
      (await handle(apiEvent('GET', '/hosts/cr-1/history', { query: { format: 'xml' } }))).body,
    );
    expect(history.name).toBe('history');
    expect(elementChildren(history, 'event').map((event) => childText(event, 'type'))).toEqual([
      'HostRegistered',
      'StateObserved',
    ]);
    const state = readXml(
      (await handle(apiEvent('GET', '/hosts/cr-1/state', { query: { format: 'xml' } }))).body,
    );
    expect(state.name).toBe('hostState');
    const diffed = readXml(
      (await handle(apiEvent('GET', '/hosts/cr-1/diff', { query: { with: 'cr-2', format: 'xml' } }))).body,
    );
    expect(diffed.name).toBe('diff');
    expect(elementChildren(diffed, 'change').map((change) => childText(change, 'path'))).toEqual([
      '/roles',
      '/software/call-router/version',
    ]);
  });
});

describe('GET /hosts/{id}', () => {
  it('fails with 404 for an unknown host', async () => {
    const problem = expectProblem(await handle(apiEvent('GET', '/hosts/ghost')), 404);
    expect(problem.detail).toBe('host "ghost" not found');
    expect(problem.hostId).toBe('ghost');
  });

  it('rejects an id that cannot be a host id', async () => {
    for (const path of ['/hosts/Bad%20Id', '/hosts/Bad Id', '/hosts/100%']) {
      const problem = expectProblem(await handle(apiEvent('GET', path)), 400);
      expect(problem.parameter).toBe('hostId');
    }
  });
});

describe('GET /hosts/{id}/history', () => {
  beforeEach(async () => {
    await registerFleet();
    await observe(
      'cr-1',
      2,
      observedState({ group: 'edge', hostType: 'cr', roles: ['call-router'], status: 'draining' }),
    );
  });

  const versions = (result: APIGatewayProxyResult) =>
    (json(result).events as { version: number }[]).map((event) => event.version);

  it('returns the events oldest first by default', async () => {
    const result = await handle(apiEvent('GET', '/hosts/cr-1/history'));
    expect(result.statusCode).toBe(200);
    expect(json(result).hostId).toBe('cr-1');
    expect(versions(result)).toEqual([1, 2, 3]);
  });

  it('pages, reverses and bounds by version', async () => {
    const first = await handle(
      apiEvent('GET', '/hosts/cr-1/history', { query: { order: 'desc', limit: '2' } }),
    );
    expect(versions(first)).toEqual([3, 2]);
    const rest = await handle(
      apiEvent('GET', '/hosts/cr-1/history', {
        query: { order: 'desc', limit: '2', next: json(first).next as string },
      }),
    );
    expect(versions(rest)).toEqual([1]);
    expect(json(rest).next).toBeUndefined();
    expect(
      versions(await handle(apiEvent('GET', '/hosts/cr-1/history', { query: { from: '2', to: '2' } }))),
    ).toEqual([2]);
  });

  it('fails with 404 for an unknown host', async () => {
    expectProblem(await handle(apiEvent('GET', '/hosts/ghost/history')), 404);
  });

  it('shows StateAssigned events as they were recorded: the full state, when and by what', async () => {
    const state = await assign('cr-1', 1, '1.4.0', { run: 'plan-7', rolloutId: 'r-1', reason: 'rollout' });
    const result = json(await handle(apiEvent('GET', '/hosts/cr-1/history', { query: { from: '4' } })));
    const [recorded] = (await events.read(hostStream('cr-1'), { fromVersion: 4 })).events;
    expect(result.events).toEqual([recorded]);
    expect(recorded).toEqual({
      type: 'StateAssigned',
      eventId: 'cr-1.assigned.1',
      stream: 'host#cr-1',
      version: 4,
      recordedAt: NOW.toISOString(),
      data: {
        state,
        assignedAt: NOW.toISOString(),
        by: { run: 'plan-7', rolloutId: 'r-1', reason: 'rollout' },
      },
    });

    const xml = readXml(
      (await handle(apiEvent('GET', '/hosts/cr-1/history', { query: { from: '4', format: 'xml' } }))).body,
    );
    const [event] = elementChildren(xml, 'event');
    if (!event) throw new Error('no event in the XML history');
    expect(childText(event, 'type')).toBe('StateAssigned');
    const [data] = elementChildren(event, 'data');
    const [assigned] = data ? elementChildren(data, 'state') : [];
    const [by] = data ? elementChildren(data, 'by') : [];
    expect(assigned && childText(assigned, 'stateVersion')).toBe('1');
    expect(by && childText(by, 'rolloutId')).toBe('r-1');
  });

  it('rejects a bad order and a reversed range', async () => {
    const order = expectProblem(
      await handle(apiEvent('GET', '/hosts/cr-1/history', { query: { order: 'up' } })),
      400,
    );
    expect(order.parameter).toBe('order');
    const range = expectProblem(
      await handle(apiEvent('GET', '/hosts/cr-1/history', { query: { from: '3', to: '1' } })),
      400,
    );
    expect(range.parameter).toBe('from');
  });
});

describe('GET /hosts/{id}/state', () => {
  beforeEach(async () => {
    await registerFleet();
    await observe(
      'cr-1',
      2,
      observedState({ group: 'edge', hostType: 'cr', roles: ['call-router'], status: 'draining' }),
    );
  });

  it('folds the stream up to the requested version', async () => {
    const atOne = json(await handle(apiEvent('GET', '/hosts/cr-1/state', { query: { version: '1' } })));
    expect(atOne).toMatchObject({ hostId: 'cr-1', version: 1, state: { version: 1, lastChangeSeq: 0 } });
    expect(atOne.state).not.toHaveProperty('observed');
    const atTwo = json(await handle(apiEvent('GET', '/hosts/cr-1/state', { query: { version: '2' } })));
    expect(atTwo).toMatchObject({ version: 2, state: { lastChangeSeq: 1, observed: { status: 'running' } } });
  });

  it('defaults to the latest version', async () => {
    const latest = json(await handle(apiEvent('GET', '/hosts/cr-1/state')));
    expect(latest).toMatchObject({ version: 3, state: { version: 3, observed: { status: 'draining' } } });
  });

  it('fails with 404 naming the latest version when asked for a future one', async () => {
    const problem = expectProblem(
      await handle(apiEvent('GET', '/hosts/cr-1/state', { query: { version: '9' } })),
      404,
    );
    expect(problem).toMatchObject({ version: 9, latest: 3 });
    expect(problem.detail).toBe('host "cr-1" has no version 9: its latest version is 3');
  });

  it('rejects version 0 and non-numbers', async () => {
    for (const version of ['0', 'latest']) {
      const problem = expectProblem(
        await handle(apiEvent('GET', '/hosts/cr-1/state', { query: { version } })),
        400,
      );
      expect(problem.parameter).toBe('version');
    }
  });

  it('fails with 404 for an unknown host', async () => {
    expectProblem(await handle(apiEvent('GET', '/hosts/ghost/state')), 404);
  });
});

describe('GET /hosts/{id}/diff', () => {
  beforeEach(async () => {
    await registerFleet();
    await observe(
      'cr-1',
      2,
      observedState({
        group: 'edge',
        hostType: 'cr',
        roles: ['call-router'],
        software: { 'call-router': { version: '1.3.0', status: 'running' } },
      }),
    );
  });

  it('diffs two versions of one host', async () => {
    const result = await handle(apiEvent('GET', '/hosts/cr-1/diff', { query: { from: '2', to: '3' } }));
    expect(result.statusCode).toBe(200);
    expect(json(result)).toEqual({
      hostId: 'cr-1',
      from: 2,
      to: 3,
      changes: [{ op: 'changed', path: '/software/call-router/version', old: '1.2.0', new: '1.3.0' }],
    });
    const backwards = json(
      await handle(apiEvent('GET', '/hosts/cr-1/diff', { query: { from: '3', to: '2' } })),
    );
    expect(backwards.changes).toEqual([
      { op: 'changed', path: '/software/call-router/version', old: '1.3.0', new: '1.2.0' },
    ]);
  });

  it('diffs from before the first snapshot as additions', async () => {
    const changes = json(await handle(apiEvent('GET', '/hosts/cr-1/diff', { query: { from: '1', to: '2' } })))
      .changes as { op: string; path: string }[];
    expect(changes.every((change) => change.op === 'added')).toBe(true);
    expect(changes.map((change) => change.path)).toContain('/software');
  });

  it('diffs two hosts', async () => {
    const result = json(await handle(apiEvent('GET', '/hosts/cr-1/diff', { query: { with: 'cr-2' } })));
    expect(result).toEqual({
      hostId: 'cr-1',
      with: 'cr-2',
      changes: [{ op: 'changed', path: '/roles', old: ['call-router'], new: ['call-router', 'lb'] }],
    });
  });

  it('rejects a request with neither versions nor another host', async () => {
    const problem = expectProblem(await handle(apiEvent('GET', '/hosts/cr-1/diff')), 400);
    expect(problem.parameters).toEqual(['from', 'to', 'with']);
  });

  it('rejects a version range missing one end', async () => {
    const problem = expectProblem(
      await handle(apiEvent('GET', '/hosts/cr-1/diff', { query: { from: '1' } })),
      400,
    );
    expect(problem.parameter).toBe('to');
  });

  it('rejects versions and another host together', async () => {
    const problem = expectProblem(
      await handle(apiEvent('GET', '/hosts/cr-1/diff', { query: { from: '1', to: '2', with: 'cr-2' } })),
      400,
    );
    expect(problem.parameters).toEqual(['from', 'to', 'with']);
  });

  it('fails with 404 for an unknown other host or a future version', async () => {
    const other = expectProblem(
      await handle(apiEvent('GET', '/hosts/cr-1/diff', { query: { with: 'ghost' } })),
      404,
    );
    expect(other.hostId).toBe('ghost');
    const future = expectProblem(
      await handle(apiEvent('GET', '/hosts/cr-1/diff', { query: { from: '1', to: '7' } })),
      404,
    );
    expect(future.latest).toBe(3);
  });
});

describe('GET /hosts/{id}/desired', () => {
  let first: DesiredHostState;
  let second: DesiredHostState;

  beforeEach(async () => {
    await registerFleet();
    first = await assign('cr-1', 1, '1.2.0'); // version 3
    await observe(
      'cr-1',
      2,
      observedState({ group: 'edge', hostType: 'cr', roles: ['call-router'], status: 'draining' }),
    ); // version 4
    second = await assign('cr-1', 2, '1.3.0', { rule: 'replace-failed', reason: 'replacement' }); // version 5
  });

  it('answers the latest assignment by default', async () => {
    const result = await handle(apiEvent('GET', '/hosts/cr-1/desired'));
    expect(result.statusCode).toBe(200);
    expect(json(result)).toEqual({
      hostId: 'cr-1',
      version: 5,
      assignedAt: NOW.toISOString(),
      by: { rule: 'replace-failed', reason: 'replacement' },
      state: second,
    });
  });

  it('answers the assignment in force at a stream version', async () => {
    for (const version of ['3', '4']) {
      const result = json(await handle(apiEvent('GET', '/hosts/cr-1/desired', { query: { version } })));
      expect(result).toEqual({
        hostId: 'cr-1',
        version: 3,
        assignedAt: NOW.toISOString(),
        by: { run: 'plan-1', reason: 'rollout' },
        state: first,
      });
    }
    expect(
      json(await handle(apiEvent('GET', '/hosts/cr-1/desired', { query: { version: '5' } }))).state,
    ).toEqual(second);
  });

  it('fails with 404 when the host had no assignment at that version, or has none at all', async () => {
    const before = expectProblem(
      await handle(apiEvent('GET', '/hosts/cr-1/desired', { query: { version: '2' } })),
      404,
    );
    expect(before).toMatchObject({ hostId: 'cr-1', version: 2 });
    expect(before.detail).toBe('host "cr-1" had not been assigned a state at version 2');
    const never = expectProblem(await handle(apiEvent('GET', '/hosts/cr-2/desired')), 404);
    expect(never.detail).toBe('host "cr-2" has never been assigned a state');
    const future = expectProblem(
      await handle(apiEvent('GET', '/hosts/cr-1/desired', { query: { version: '9' } })),
      404,
    );
    expect(future).toMatchObject({ version: 9, latest: 5 });
    expectProblem(await handle(apiEvent('GET', '/hosts/ghost/desired')), 404);
  });

  it('rejects a version that is not a positive integer, naming it', async () => {
    for (const version of ['0', '-1', '1.5', 'latest']) {
      const problem = expectProblem(
        await handle(apiEvent('GET', '/hosts/cr-1/desired', { query: { version } })),
        400,
      );
      expect(problem.parameter).toBe('version');
    }
  });

  it('renders as XML under "desired"', async () => {
    const result = await handle(apiEvent('GET', '/hosts/cr-1/desired', { query: { format: 'xml' } }));
    expect(result.statusCode).toBe(200);
    expect(header(result, 'content-type')).toBe('application/xml; charset=utf-8');
    const xml = readXml(result.body);
    expect(xml.name).toBe('desired');
    expect(childText(xml, 'version')).toBe('5');
    const state = elementChildren(xml, 'state')[0];
    const services = state && elementChildren(state, 'services')[0];
    const router = services && elementChildren(services, 'call-router')[0];
    expect(router && childText(router, 'version')).toBe('1.3.0');
    expect(state && childText(state, 'mode')).toBe('running');
  });
});

describe('GET /hosts/{id}/drift', () => {
  beforeEach(async () => {
    await registerFleet();
    await assign('cr-1', 1, '1.4.0');
  });

  it('lists what the host reports that differs from its latest assignment', async () => {
    const result = await handle(apiEvent('GET', '/hosts/cr-1/drift'));
    expect(result.statusCode).toBe(200);
    expect(json(result)).toEqual({
      hostId: 'cr-1',
      assignedVersion: 1,
      observedVersion: 0,
      inSync: false,
      changes: [
        { op: 'added', path: '/appliedStateVersion', new: 1 },
        { op: 'changed', path: '/software/call-router/version', old: '1.2.0', new: '1.4.0' },
      ],
    });
  });

  it('is in sync once the host reports the state it was given', async () => {
    await observe(
      'cr-1',
      2,
      observedState({
        group: 'edge',
        hostType: 'cr',
        roles: ['call-router'],
        software: { 'call-router': { version: '1.4.0', status: 'running' } },
        appliedStateVersion: 1,
      }),
    );
    expect(json(await handle(apiEvent('GET', '/hosts/cr-1/drift')))).toEqual({
      hostId: 'cr-1',
      assignedVersion: 1,
      observedVersion: 1,
      inSync: true,
      changes: [],
    });
  });

  it('fails with 404 for a host never assigned a state, and for an unknown host', async () => {
    const never = expectProblem(await handle(apiEvent('GET', '/hosts/cr-2/drift')), 404);
    expect(never).toMatchObject({ hostId: 'cr-2', detail: 'host "cr-2" has never been assigned a state' });
    expectProblem(await handle(apiEvent('GET', '/hosts/ghost/drift')), 404);
  });

  it('rejects query parameters it does not take', async () => {
    expectProblem(await handle(apiEvent('GET', '/hosts/cr-1/drift', { query: { version: '1' } })), 400);
  });

  it('renders as XML under "drift", one change element per difference', async () => {
    const result = await handle(
      apiEvent('GET', '/hosts/cr-1/drift', { headers: { Accept: 'application/xml' } }),
    );
    const xml = readXml(result.body);
    expect(xml.name).toBe('drift');
    expect(childText(xml, 'inSync')).toBe('false');
    expect(elementChildren(xml, 'change').map((change) => childText(change, 'path'))).toEqual([
      '/appliedStateVersion',
      '/software/call-router/version',
    ]);
  });
});

describe('routing', () => {
  it('fails with 404 for an unknown path', async () => {
    const problem = expectProblem(await handle(apiEvent('GET', '/nothing')), 404);
    expect(problem.instance).toBe('/nothing');
    expectProblem(await handle(apiEvent('GET', '/hosts/a/b/c')), 404);
  });

  it('fails with 405 and Allow for a known path and the wrong method', async () => {
    const collection = await handle(apiEvent('DELETE', '/hosts'));
    expectProblem(collection, 405);
    expect(header(collection, 'allow')).toBe('GET, POST');
    const item = await handle(apiEvent('PUT', '/hosts/cr-1'));
    expectProblem(item, 405);
    expect(header(item, 'allow')).toBe('GET');
  });

  it('accepts a trailing slash', async () => {
    expect((await handle(apiEvent('GET', '/hosts/'))).statusCode).toBe(200);
  });

  it('fails with a generic 500 that leaks nothing when a store breaks', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    vi.spyOn(hosts, 'list').mockRejectedValue(new Error('connection to db://admin:hunter2@db failed'));
    const result = await handle(apiEvent('GET', '/hosts'));
    const problem = expectProblem(result, 500);
    expect(result.body).not.toContain('hunter2');
    expect(result.body).not.toContain(' at ');
    expect(problem.detail).toBe('an unexpected error occurred; it has been logged');
    expect(logged).toHaveBeenCalledTimes(1);
  });
});

describe('loadApiConfig', () => {
  it('reads the three variables', () => {
    expect(loadApiConfig({ EVENTS_TABLE: 'ev', HOSTS_TABLE: 'ho', SECRETS_KEY_ID: 'alias/k' })).toEqual({
      eventsTable: 'ev',
      hostsTable: 'ho',
      secretsKeyId: 'alias/k',
    });
  });

  it('fails naming every missing variable', () => {
    expect(() => loadApiConfig({ HOSTS_TABLE: 'ho', SECRETS_KEY_ID: ' ' })).toThrow(
      'api function misconfigured: missing environment variable(s) EVENTS_TABLE, SECRETS_KEY_ID',
    );
  });
});

describe('problemOf', () => {
  it('lists a schema failure issue by issue with JSON pointers', () => {
    const failure = RegisterHostRequest.safeParse({ group: 'g', hostType: 't', roles: ['ok', 'Not OK'] });
    if (failure.success) throw new Error('expected a failure');
    expect(problemOf(failure.error)).toMatchObject({
      status: 400,
      title: 'Bad Request',
      type: 'urn:fleetfold:problem:validation',
      errors: [{ path: '/roles/1', code: 'invalid_format' }],
    });
  });

  it('keeps the standard members when details try to overwrite them', () => {
    const document = problemOf(new NotFoundError('gone', { status: 200, title: 'x', hostId: 'h' }));
    expect(document).toEqual({
      type: 'urn:fleetfold:problem:not-found',
      title: 'Not Found',
      status: 404,
      detail: 'gone',
      hostId: 'h',
    });
  });
});
