import { beforeEach, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadGroupsApiConfig } from '../functions/api/config.ts';
import { type GroupEvent, groupStream } from '../shared/groups/events.ts';
import type { GroupDocument } from '../shared/groups/group-state.ts';
import { CYCLIC_YAML, DEMO_YAML, type GroupsHarness, groupsHarness } from './support/groups-harness.ts';

let api: GroupsHarness;

beforeEach(() => {
  api = groupsHarness();
});

/** The demo definition with one service version changed: a real change of definition. */
function demoWith(callRouterVersion: string): string {
  return DEMO_YAML.replace('version: 1.4.0', `version: ${callRouterVersion}`);
}

async function streamOf(name: string) {
  return (await api.events.read<GroupEvent>(groupStream(name), { limit: 1000 })).events;
}

async function groupDocument(name: string) {
  return api.documents.get<GroupDocument>('group', name);
}

describe('PUT /groups/{name}', () => {
  it('creates a group from YAML: 201, ETag of the definition version, the compiled group, one event', async () => {
    const response = await api.define('demo', DEMO_YAML);
    expect(response.status).toBe(201);
    expect(response.headers.etag).toBe('"1"');
    expect(response.headers.location).toBe('/groups/demo');
    expect(response.body).toMatchObject({
      outcome: 'created',
      name: 'demo',
      definitionVersion: 1,
      running: false,
      definition: { name: 'demo' },
      compiled: { name: 'demo', definitionVersion: 1 },
    });
    const compiled = response.body.compiled as { hostTypes: Record<string, { desired: number }> };
    expect(compiled.hostTypes['call-router']?.desired).toBe(2);
    const stream = await streamOf('demo');
    expect(stream.map((event) => event.type)).toEqual(['GroupDefined']);
    expect(stream[0]).toMatchObject({ version: 1, data: { source: 'yaml', definition: { name: 'demo' } } });
    expect(await groupDocument('demo')).toMatchObject({
      version: 1,
      body: { running: false, definitionVersion: 1, compiled: { definitionVersion: 1 } },
    });
    expect(api.reconcile.requests).toEqual([]);
  });

  it('creates a group from JSON, recording the source format', async () => {
    const definition = parseYaml(DEMO_YAML.replace('"13.2"', '"13.2.0"')) as Record<string, unknown>;
    const response = await api.request('PUT', '/groups/demo', {
      body: JSON.stringify(definition),
      headers: { 'Content-Type': 'application/json; charset=utf-8' },
    });
    expect(response.status).toBe(201);
    expect((await streamOf('demo'))[0]?.data).toMatchObject({ source: 'json' });
  });

  it('takes the accepted definition sent back as JSON as unchanged', async () => {
    const created = await api.define('demo', DEMO_YAML);
    const response = await api.request('PUT', '/groups/demo', {
      body: JSON.stringify(created.body.definition),
      headers: { 'Content-Type': 'application/json' },
    });
    expect(response.status).toBe(200);
    expect(response.body.outcome).toBe('unchanged');
  });

  it('accepts text/yaml and application/x-yaml as YAML', async () => {
    for (const [index, type] of ['text/yaml', 'application/x-yaml'].entries()) {
      const name = `demo${index}`;
      const response = await api.request('PUT', `/groups/${name}`, {
        body: DEMO_YAML.replace('name: demo', `name: ${name}`),
        headers: { 'Content-Type': type },
      });
      expect(response.status).toBe(201);
    }
  });

  it('replaces a changed definition: 200, a new ETag, outcome updated', async () => {
    await api.define('demo', DEMO_YAML);
    const response = await api.define('demo', demoWith('1.5.0'));
    expect(response.status).toBe(200);
    expect(response.headers.etag).toBe('"2"');
    expect(response.body).toMatchObject({ outcome: 'updated', definitionVersion: 2 });
    expect(
      (await groupDocument('demo'))?.body.compiled.hostTypes['call-router']?.services['call-router'],
    ).toEqual(expect.objectContaining({ version: '1.5.0' }));
  });

  it('writes nothing for an unchanged definition and keeps its ETag', async () => {
    await api.define('demo', DEMO_YAML);
    const response = await api.define('demo', DEMO_YAML);
    expect(response.status).toBe(200);
    expect(response.headers.etag).toBe('"1"');
    expect(response.body.outcome).toBe('unchanged');
    expect(await streamOf('demo')).toHaveLength(1);
    expect((await groupDocument('demo'))?.version).toBe(1);
  });

  it('rejects a definition whose name differs from the path, naming both', async () => {
    const response = await api.define('other', DEMO_YAML);
    expect(response.status).toBe(400);
    expect(response.body.detail).toContain('"other"');
    expect(response.body.detail).toContain('"demo"');
    expect(await streamOf('other')).toEqual([]);
  });

  it('rejects a cyclic definition naming the cycle, and records nothing', async () => {
    const response = await api.define('cyclic', CYCLIC_YAML);
    expect(response.status).toBe(400);
    expect(response.body.detail).toMatch(/call-router → media → call-router|media → call-router → media/);
    expect(await streamOf('cyclic')).toEqual([]);
    expect(await groupDocument('cyclic')).toBeUndefined();
  });

  it('rejects a body that is neither YAML nor JSON with 415 naming the accepted types', async () => {
    const response = await api.request('PUT', '/groups/demo', {
      body: DEMO_YAML,
      headers: { 'Content-Type': 'text/plain' },
    });
    expect(response.status).toBe(415);
    expect(response.body.detail).toContain('application/yaml');
  });

  it('rejects a group name that is not a name', async () => {
    const response = await api.define('Demo!', DEMO_YAML.replace('name: demo', 'name: Demo!'));
    expect(response.status).toBe(400);
  });

  it('replaces only when If-Match names the current definition version', async () => {
    await api.define('demo', DEMO_YAML);
    const stale = await api.define('demo', demoWith('1.5.0'), { 'If-Match': '"7"' });
    expect(stale.status).toBe(412);
    expect(stale.body.detail).toContain('"7"');
    expect(stale.body.detail).toContain('"1"');
    expect(stale.body).toMatchObject({ precondition: 'If-Match', expected: '"7"', current: '"1"' });
    const fresh = await api.define('demo', demoWith('1.5.0'), { 'If-Match': '"1"' });
    expect(fresh.status).toBe(200);
    expect(fresh.headers.etag).toBe('"2"');
    const weak = await api.define('demo', demoWith('1.6.0'), { 'If-Match': 'W/"2", "9"' });
    expect(weak.status).toBe(200);
  });

  it('fails If-Match on a group that does not exist', async () => {
    const response = await api.define('demo', DEMO_YAML, { 'If-Match': '*' });
    expect(response.status).toBe(412);
    expect(await streamOf('demo')).toEqual([]);
  });

  it('creates only once with If-None-Match: *', async () => {
    expect((await api.define('demo', DEMO_YAML, { 'If-None-Match': '*' })).status).toBe(201);
    const again = await api.define('demo', demoWith('1.5.0'), { 'If-None-Match': '*' });
    expect(again.status).toBe(412);
    expect(again.body.detail).toContain('exists');
    expect(await streamOf('demo')).toHaveLength(1);
  });

  it('starts a reconcile when the definition of a running group changes, not of a stopped one', async () => {
    await api.define('demo', DEMO_YAML);
    expect(api.reconcile.requests).toEqual([]);
    await api.request('POST', '/groups/demo/start');
    const response = await api.define('demo', demoWith('1.5.0'));
    expect(response.body.executionId).toEqual(expect.any(String));
    const rolloutId = (response.body.rollout as { id: string }).id;
    expect(api.reconcile.requests.at(-1)).toEqual({
      group: 'demo',
      reason: 'definition-changed',
      rolloutId,
      dedupeKey: 'group-demo-def-3',
    });
    // Sending the same definition again names the same run, so a start lost after the append is repaired.
    const again = await api.define('demo', demoWith('1.5.0'));
    expect(again.body).toMatchObject({ outcome: 'unchanged', executionId: response.body.executionId });
    expect(api.reconcile.runs).toBe(2);
  });

  it('rejects a change of the version a rollout is rolling out, naming the rollout, its status and its abort', async () => {
    await api.define('demo', DEMO_YAML);
    await api.request('POST', '/groups/demo/start');
    const rollout = await api.postJson('/groups/demo/rollouts', { service: 'call-router', version: '1.5.0' });
    const id = rollout.body.id as string;
    const response = await api.define('demo', demoWith('1.6.0'));
    expect(response.status).toBe(409);
    expect(response.body.detail).toContain(id);
    expect(response.body.detail).toContain('pending');
    expect(response.body.detail).toContain(`/rollouts/${id}/abort`);
    expect(response.body).toMatchObject({
      rolloutId: id,
      rolloutStatus: 'pending',
      service: 'call-router',
      abort: `/rollouts/${id}/abort`,
    });
    expect((await streamOf('demo')).at(-1)?.type).toBe('RolloutRequested');
  });

  it('accepts a count change while a rollout runs, and starts a reconcile that plans with both', async () => {
    await api.define('demo', DEMO_YAML);
    await api.request('POST', '/groups/demo/start');
    await api.postJson('/groups/demo/rollouts', { service: 'call-router', version: '1.5.0' });
    const response = await api.define(
      'demo',
      DEMO_YAML.replace('instanceType: r7g.large\n    count: 1', 'instanceType: r7g.large\n    count: 2'),
    );
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ outcome: 'updated', activeRollout: expect.any(String) });
    expect(api.reconcile.requests.at(-1)).toMatchObject({ reason: 'definition-changed' });
  });

  it('decides again when another writer got there first: both writes land, in order', async () => {
    const [first, second] = await Promise.all([
      api.define('demo', DEMO_YAML),
      api.define('demo', demoWith('1.5.0')),
    ]);
    expect([first.status, second.status].sort()).toEqual([200, 201]);
    const stream = await streamOf('demo');
    expect(stream.map((event) => event.version)).toEqual([1, 2]);
    const document = await groupDocument('demo');
    expect(document?.body.definitionVersion).toBe(2);
    expect(document?.body.streamVersion).toBe(2);
  });

  it('costs one document read, one event read, one append and one document write', async () => {
    const reads = vi.spyOn(api.events, 'read');
    const appends = vi.spyOn(api.events, 'append');
    await api.define('demo', DEMO_YAML);
    expect(api.documents.calls).toEqual({ get: 1, put: 1 });
    expect(reads).toHaveBeenCalledTimes(1);
    expect(appends).toHaveBeenCalledTimes(1);
  });
});

describe('GET /groups and /groups/{name}', () => {
  it('shows a group with its ETag, definition and compiled form', async () => {
    await api.define('demo', DEMO_YAML);
    const response = await api.request('GET', '/groups/demo');
    expect(response.status).toBe(200);
    expect(response.headers.etag).toBe('"1"');
    expect(response.body).toMatchObject({
      name: 'demo',
      definitionVersion: 1,
      running: false,
      definition: { name: 'demo' },
      compiled: { startOrder: expect.any(Array) },
      links: { start: '/groups/demo/start', rollouts: '/groups/demo/rollouts' },
    });
  });

  it('rejects a path segment that is not a group name', async () => {
    expect((await api.request('GET', '/groups/Not%20A%20Name')).status).toBe(400);
  });

  it('answers 404 for a group never defined', async () => {
    const response = await api.request('GET', '/groups/nothing');
    expect(response.status).toBe(404);
    expect(response.body.detail).toContain('"nothing"');
  });

  it('lists groups with their host types and desired counts, page by page', async () => {
    for (const name of ['alpha', 'beta', 'gamma']) {
      await api.define(name, DEMO_YAML.replace('name: demo', `name: ${name}`));
    }
    await api.request('POST', '/groups/beta/start');
    const first = await api.request('GET', '/groups', { query: { limit: '2' } });
    expect(first.status).toBe(200);
    const groups = first.body.groups as Record<string, unknown>[];
    expect(groups.map((group) => group.name)).toEqual(['alpha', 'beta']);
    expect(groups[1]).toMatchObject({ running: true, definitionVersion: 1 });
    expect(groups[0]?.hostTypes).toEqual([
      { name: 'call-router', desired: 2 },
      { name: 'db', desired: 1 },
      { name: 'lb', desired: 1 },
      { name: 'media', desired: 2 },
    ]);
    const second = await api.request('GET', '/groups', {
      query: { limit: '2', next: String(first.body.next) },
    });
    expect((second.body.groups as { name: string }[]).map((group) => group.name)).toEqual(['gamma']);
    expect(second.body.next).toBeUndefined();
  });

  it('rejects an unknown query parameter on the listing', async () => {
    expect((await api.request('GET', '/groups', { query: { runing: 'true' } })).status).toBe(400);
  });

  it('renders a group as XML on request', async () => {
    await api.define('demo', DEMO_YAML);
    const response = await api.request('GET', '/groups/demo', { query: { format: 'xml' } });
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toContain('application/xml');
    expect(response.raw).toContain('<group>');
    expect(response.raw).toContain('<name>demo</name>');
  });
});

describe('POST /groups/{name}/start and /stop', () => {
  it('starts a group: 202, GroupStarted, running in the document, one reconcile run', async () => {
    await api.define('demo', DEMO_YAML);
    const response = await api.request('POST', '/groups/demo/start');
    expect(response.status).toBe(202);
    expect(response.body).toMatchObject({ group: 'demo', running: true, executionId: 'exec-1' });
    expect((await streamOf('demo')).map((event) => event.type)).toEqual(['GroupDefined', 'GroupStarted']);
    expect((await groupDocument('demo'))?.body.running).toBe(true);
    expect(api.reconcile.requests).toEqual([
      { group: 'demo', reason: 'group-started', dedupeKey: 'group-demo-start-2' },
    ]);
  });

  it('starting a running group records nothing and names the same run', async () => {
    await api.define('demo', DEMO_YAML);
    const first = await api.request('POST', '/groups/demo/start');
    const second = await api.request('POST', '/groups/demo/start');
    expect(second.status).toBe(202);
    expect(second.body.executionId).toBe(first.body.executionId);
    expect(await streamOf('demo')).toHaveLength(2);
    expect(api.reconcile.runs).toBe(1);
  });

  it('stops a running group with its own reconcile run', async () => {
    await api.define('demo', DEMO_YAML);
    await api.request('POST', '/groups/demo/start');
    const response = await api.request('POST', '/groups/demo/stop');
    expect(response.status).toBe(202);
    expect(response.body).toMatchObject({ group: 'demo', running: false });
    expect(api.reconcile.requests.at(-1)).toEqual({
      group: 'demo',
      reason: 'group-stopped',
      dedupeKey: 'group-demo-stop-3',
    });
    expect((await groupDocument('demo'))?.body.running).toBe(false);
  });

  it('rejects starting a group that does not exist', async () => {
    expect((await api.request('POST', '/groups/ghost/start')).status).toBe(404);
    expect(api.reconcile.requests).toEqual([]);
  });

  it('catches up with events its document missed (a crash between append and projection)', async () => {
    await api.define('demo', DEMO_YAML);
    // As if a start reached the stream and the process died before writing the document.
    await api.events.append<GroupEvent>(
      groupStream('demo'),
      1,
      [{ type: 'GroupStarted', eventId: 'start#demo#2', data: { startedAt: api.now().toISOString() } }],
      api.now(),
    );
    expect((await groupDocument('demo'))?.body.running).toBe(false);
    const response = await api.request('POST', '/groups/demo/stop');
    expect(response.status).toBe(202);
    expect((await streamOf('demo')).map((event) => event.type)).toEqual([
      'GroupDefined',
      'GroupStarted',
      'GroupStopped',
    ]);
    expect(await groupDocument('demo')).toMatchObject({ body: { running: false, streamVersion: 3 } });
  });
});

describe('DELETE /groups/{name}', () => {
  it('refuses while the group runs, naming the way out', async () => {
    await api.define('demo', DEMO_YAML);
    await api.request('POST', '/groups/demo/start');
    const response = await api.request('DELETE', '/groups/demo');
    expect(response.status).toBe(409);
    expect(response.body.detail).toContain('stop it first');
    expect(response.body.stop).toBe('/groups/demo/stop');
    expect((await api.request('GET', '/groups/demo')).status).toBe(200);
  });

  it('deletes a stopped group; its history stays and it can be defined anew, stopped', async () => {
    await api.define('demo', DEMO_YAML);
    await api.request('POST', '/groups/demo/start');
    await api.request('POST', '/groups/demo/stop');
    const response = await api.request('DELETE', '/groups/demo');
    expect(response.status).toBe(200);
    expect((await api.request('GET', '/groups/demo')).status).toBe(404);
    expect((await api.request('GET', '/groups')).body.groups).toEqual([]);
    const history = await api.request('GET', '/groups/demo/history');
    expect((history.body.events as { type: string }[]).map((event) => event.type)).toEqual([
      'GroupDefined',
      'GroupStarted',
      'GroupStopped',
      'GroupDeleted',
    ]);
    const again = await api.define('demo', DEMO_YAML);
    expect(again.status).toBe(201);
    expect(again.headers.etag).toBe('"5"');
    expect(again.body).toMatchObject({ outcome: 'created', running: false, definitionVersion: 5 });
  });

  it('honours If-Match', async () => {
    await api.define('demo', DEMO_YAML);
    await api.define('demo', demoWith('1.5.0'));
    const stale = await api.request('DELETE', '/groups/demo', { headers: { 'If-Match': '"1"' } });
    expect(stale.status).toBe(412);
    const fresh = await api.request('DELETE', '/groups/demo', { headers: { 'If-Match': '"2"' } });
    expect(fresh.status).toBe(200);
  });

  it('answers 404 for a group that does not exist', async () => {
    expect((await api.request('DELETE', '/groups/ghost')).status).toBe(404);
  });
});

describe('GET /groups/{name}/history', () => {
  it('pages through the group stream in either order', async () => {
    await api.define('demo', DEMO_YAML);
    await api.request('POST', '/groups/demo/start');
    await api.request('POST', '/groups/demo/stop');
    const first = await api.request('GET', '/groups/demo/history', { query: { limit: '2', order: 'desc' } });
    expect((first.body.events as { version: number }[]).map((event) => event.version)).toEqual([3, 2]);
    const rest = await api.request('GET', '/groups/demo/history', {
      query: { limit: '2', order: 'desc', next: String(first.body.next) },
    });
    expect((rest.body.events as { version: number }[]).map((event) => event.version)).toEqual([1]);
  });

  it('answers 404 for a group with no history', async () => {
    expect((await api.request('GET', '/groups/ghost/history')).status).toBe(404);
  });
});

describe('loadGroupsApiConfig', () => {
  it('reads the documents table and the state machine', () => {
    expect(
      loadGroupsApiConfig({ DOCUMENTS_TABLE: 'docs', RECONCILE_STATE_MACHINE_ARN: 'arn:aws:states:x' }),
    ).toEqual({ documentsTable: 'docs', reconcileStateMachineArn: 'arn:aws:states:x' });
  });

  it('fails naming every missing variable', () => {
    expect(() => loadGroupsApiConfig({ DOCUMENTS_TABLE: ' ' })).toThrow(
      'missing environment variable(s) DOCUMENTS_TABLE, RECONCILE_STATE_MACHINE_ARN',
    );
  });
});

describe('PUT /groups/{name} on a running group: the declared change rolls out', () => {
  it('requests a rollout of the changed service and links it, the cause naming the definition version', async () => {
    await api.define('demo', DEMO_YAML);
    await api.request('POST', '/groups/demo/start');
    const response = await api.define('demo', demoWith('1.5.0'));
    expect(response.status).toBe(200);
    const rollout = response.body.rollout as { id: string; links: { self: string } };
    expect(rollout.links.self).toBe(`/rollouts/${rollout.id}`);

    const shown = await api.request('GET', rollout.links.self);
    expect(shown.body).toMatchObject({
      service: 'call-router',
      version: '1.5.0',
      select: 'all',
      previousVersion: '1.4.0',
      cause: { kind: 'declared', definitionVersion: 3 },
      status: 'pending',
    });
    const history = await api.request('GET', '/groups/demo/history');
    expect(history.body.events).toContainEqual(
      expect.objectContaining({
        type: 'RolloutRequested',
        data: expect.objectContaining({ cause: { kind: 'declared', definitionVersion: 3 } }),
      }),
    );
  });

  it('still refuses a second change of the service being rolled out', async () => {
    await api.define('demo', DEMO_YAML);
    await api.request('POST', '/groups/demo/start');
    await api.define('demo', demoWith('1.5.0'));
    expect((await api.define('demo', demoWith('1.6.0'))).status).toBe(409);
  });

  it('requests no rollout for a stopped group', async () => {
    await api.define('demo', DEMO_YAML);
    const response = await api.define('demo', demoWith('1.5.0'));
    expect(response.body.rollout).toBeUndefined();
  });
});

describe('/groups/{name}/services/{service}: stop, start, remove', () => {
  async function runningDemo() {
    await api.define('demo', DEMO_YAML);
    await api.request('POST', '/groups/demo/start');
  }

  it('stops a service as a rollout: 202, operation stop, a reconcile run', async () => {
    await runningDemo();
    const response = await api.request('POST', '/groups/demo/services/call-router/stop');
    expect(response.status).toBe(202);
    expect(response.headers.location).toBe(`/rollouts/${response.body.id}`);
    expect(response.body).toMatchObject({ service: 'call-router', operation: 'stop', select: 'all' });
    expect(api.reconcile.requests.at(-1)).toMatchObject({ reason: 'rollout', rolloutId: response.body.id });
  });

  it('takes an optional selector', async () => {
    await runningDemo();
    const response = await api.postJson('/groups/demo/services/call-router/start', { select: '1' });
    expect(response.status).toBe(202);
    expect(response.body).toMatchObject({ operation: 'start', select: '1' });
  });

  it('removes a service with DELETE', async () => {
    const withMetrics = DEMO_YAML.replace(
      '      media:\n        version: 2.1.0',
      '      metrics: { version: 1.0.0 }\n      media:\n        version: 2.1.0',
    ).replace('  lb: []', '  lb: []\n  metrics: []');
    expect((await api.define('demo', withMetrics)).status).toBe(201);
    await api.request('POST', '/groups/demo/start');
    const response = await api.request('DELETE', '/groups/demo/services/metrics');
    expect(response.status).toBe(202);
    expect(response.body).toMatchObject({ service: 'metrics', operation: 'remove' });
  });

  it('refuses to remove a service something still needs (409)', async () => {
    await runningDemo();
    const response = await api.request('DELETE', '/groups/demo/services/call-router');
    expect(response.status).toBe(409);
    expect(response.body.detail).toContain('balance it');
  });

  it('answers 404 for a service the group does not run', async () => {
    await runningDemo();
    const response = await api.request('POST', '/groups/demo/services/nope/stop');
    expect(response.status).toBe(404);
    expect(response.headers['content-type']).toContain('problem+json');
  });

  it('answers 409 while another rollout holds the group', async () => {
    await runningDemo();
    await api.request('POST', '/groups/demo/services/call-router/stop');
    const response = await api.request('POST', '/groups/demo/services/media/stop');
    expect(response.status).toBe(409);
  });

  it('rejects unknown body members', async () => {
    await runningDemo();
    const response = await api.postJson('/groups/demo/services/media/stop', { version: '1' });
    expect(response.status).toBe(400);
  });
});
