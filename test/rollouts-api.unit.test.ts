import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { type GroupEvent, groupStream } from '../shared/groups/events.ts';
import type { CompiledGroup, GroupDefinition, Rollout, RolloutStatus } from '../shared/groups/model.ts';
import { commandRollout, runRolloutCommand } from '../shared/rollouts/rollout-service.ts';
import { DEMO_YAML, type GroupsHarness, groupsHarness } from './support/groups-harness.ts';

let api: GroupsHarness;

async function runningDemo(harness: GroupsHarness = api): Promise<void> {
  expect((await harness.define('demo', DEMO_YAML)).status).toBe(201);
  expect((await harness.request('POST', '/groups/demo/start')).status).toBe(202);
}

async function eventsOf(harness: GroupsHarness = api) {
  return (await harness.events.read<GroupEvent>(groupStream('demo'), { limit: 1000 })).events;
}

async function statusOf(id: string, harness: GroupsHarness = api): Promise<RolloutStatus | undefined> {
  return (await harness.documents.get<Rollout>('rollout', id))?.body.status;
}

/** Plays the reconcile's part: it moves a rollout on through the commands the reconcile gives it. */
async function moveTo(
  id: string,
  status: 'pending' | 'running' | 'paused' | 'succeeded',
  harness: GroupsHarness = api,
): Promise<void> {
  const at = harness.now();
  const give = (command: Parameters<typeof commandRollout>[2]) => commandRollout(harness.deps, id, command);
  if (status === 'pending') return;
  if (status === 'paused') {
    await give({ type: 'Pause', at });
    return;
  }
  if ((await statusOf(id, harness)) === 'paused') await give({ type: 'Resume', at });
  else await give({ type: 'Plan', waves: [], targets: [], run: 'test-run', at });
  if (status === 'succeeded') await give({ type: 'Succeed', at });
}

beforeEach(() => {
  api = groupsHarness();
});

describe('POST /groups/{name}/rollouts', () => {
  it('accepts a rollout: 202, a pending rollout document, RolloutRequested, one reconcile run', async () => {
    await runningDemo();
    const response = await api.postJson('/groups/demo/rollouts', {
      service: 'call-router',
      version: '1.5.0',
      select: 'max(1, 50%)',
    });
    expect(response.status).toBe(202);
    const id = response.body.id as string;
    expect(id).toMatch(/^r-[0-9a-z]{9}-id\d+$/);
    expect(response.headers.location).toBe(`/rollouts/${id}`);
    expect(response.body).toMatchObject({
      id,
      status: 'pending',
      group: 'demo',
      service: 'call-router',
      version: '1.5.0',
      select: 'max(1, 50%)',
      previousVersion: '1.4.0',
      executionId: expect.any(String),
      links: { self: `/rollouts/${id}`, pause: `/rollouts/${id}/pause`, abort: `/rollouts/${id}/abort` },
    });
    expect(await api.documents.get('rollout', id)).toMatchObject({
      version: 1,
      body: { id, status: 'pending', waves: [], hosts: { done: [], pending: [], failed: [] } },
    });
    const requested = (await eventsOf()).at(-1);
    expect(requested).toMatchObject({
      type: 'RolloutRequested',
      data: { rolloutId: id, service: 'call-router', version: '1.5.0', previousVersion: '1.4.0' },
    });
    expect(api.reconcile.requests.at(-1)).toEqual({
      group: 'demo',
      reason: 'rollout',
      rolloutId: id,
      dedupeKey: `rollout-${id}`,
    });
  });

  it('selects every host when no selector is given, and accepts a config-only rollout', async () => {
    await runningDemo();
    const response = await api.postJson('/groups/demo/rollouts', {
      service: 'media',
      config: { 'codec.preferred': 'g722' },
    });
    expect(response.status).toBe(202);
    expect(response.body).toMatchObject({ select: 'all', config: { 'codec.preferred': 'g722' } });
    expect(response.body.version).toBeUndefined();
  });

  it('rejects a service the group does not run, listing the ones it does', async () => {
    await runningDemo();
    const response = await api.postJson('/groups/demo/rollouts', { service: 'fax', version: '1' });
    expect(response.status).toBe(400);
    expect(response.body.detail).toContain('"fax"');
    expect(response.body.services).toEqual(['call-router', 'db', 'lb', 'media']);
  });

  it('rejects a rollout with neither version nor config', async () => {
    await runningDemo();
    const response = await api.postJson('/groups/demo/rollouts', { service: 'media' });
    expect(response.status).toBe(400);
    expect(response.body.detail).toContain('version or a config');
  });

  it('rejects a selector that does not parse, pointing at the character', async () => {
    await runningDemo();
    const response = await api.postJson('/groups/demo/rollouts', {
      service: 'media',
      version: '2.2.0',
      select: 'max(1,)',
    });
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ field: 'select', selector: 'max(1,)', position: 7 });
    expect(response.body.detail).toContain('position 7');
  });

  it('rejects unknown body members and bodies that are not JSON', async () => {
    await runningDemo();
    expect(
      (await api.postJson('/groups/demo/rollouts', { service: 'media', version: '2', wave: 3 })).status,
    ).toBe(400);
    const garbled = await api.request('POST', '/groups/demo/rollouts', { body: '{service:' });
    expect(garbled.status).toBe(400);
  });

  it('refuses a rollout for a stopped group and for an unknown one', async () => {
    await api.define('demo', DEMO_YAML);
    const stopped = await api.postJson('/groups/demo/rollouts', { service: 'media', version: '2.2.0' });
    expect(stopped.status).toBe(409);
    expect(stopped.body.detail).toContain('not running');
    expect((await api.postJson('/groups/ghost/rollouts', { service: 'media', version: '1' })).status).toBe(
      404,
    );
    expect(await api.documents.list('rollout', 10)).toEqual({ documents: [] });
  });

  it('refuses a second rollout while one is pending, running or paused, naming it', async () => {
    await runningDemo();
    const first = await api.postJson('/groups/demo/rollouts', { service: 'media', version: '2.2.0' });
    const id = first.body.id as string;
    for (const status of ['pending', 'running', 'paused'] as const) {
      await moveTo(id, status);
      const second = await api.postJson('/groups/demo/rollouts', { service: 'db', version: '14' });
      expect(second.status).toBe(409);
      expect(second.body.detail).toContain(id);
      expect(second.body).toMatchObject({ rolloutId: id, rolloutStatus: status });
    }
    await moveTo(id, 'succeeded');
    const third = await api.postJson('/groups/demo/rollouts', { service: 'db', version: '14' });
    expect(third.status).toBe(202);
  });

  it('lets exactly one of two racing rollout requests through', async () => {
    await runningDemo();
    const [a, b] = await Promise.all([
      api.postJson('/groups/demo/rollouts', { service: 'media', version: '2.2.0' }),
      api.postJson('/groups/demo/rollouts', { service: 'db', version: '14' }),
    ]);
    expect([a.status, b.status].sort()).toEqual([202, 409]);
    expect((await api.documents.list('rollout', 10)).documents).toHaveLength(1);
    expect((await eventsOf()).filter((event) => event.type === 'RolloutRequested')).toHaveLength(1);
  });

  it('rebuilds a rollout document lost between its event and its write, and still refuses the next', async () => {
    await runningDemo();
    const requestedAt = api.now().toISOString();
    await api.events.append<GroupEvent>(
      groupStream('demo'),
      2,
      [
        {
          type: 'RolloutRequested',
          eventId: 'rollout#r-lost#requested',
          data: { rolloutId: 'r-lost', service: 'media', version: '2.2.0', select: 'all', requestedAt },
        },
      ],
      api.now(),
    );
    const response = await api.postJson('/groups/demo/rollouts', { service: 'db', version: '14' });
    expect(response.status).toBe(409);
    expect(response.body.rolloutId).toBe('r-lost');
    expect((await api.request('GET', '/rollouts/r-lost')).body).toMatchObject({
      id: 'r-lost',
      status: 'pending',
      service: 'media',
    });
  });

  it('gives ids that sort by creation time', async () => {
    await runningDemo();
    const ids: string[] = [];
    for (let index = 0; index < 3; index += 1) {
      const response = await api.postJson('/groups/demo/rollouts', {
        service: 'media',
        version: `3.${index}`,
      });
      ids.push(response.body.id as string);
      await moveTo(ids.at(-1) as string, 'succeeded');
      api.advance(1);
    }
    expect([...ids].sort()).toEqual(ids);
  });
});

describe('GET /rollouts/{id}', () => {
  it('shows the rollout with its waves and hosts', async () => {
    await runningDemo();
    const created = await api.postJson('/groups/demo/rollouts', { service: 'media', version: '2.2.0' });
    const id = created.body.id as string;
    const response = await api.request('GET', `/rollouts/${id}`);
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({
      id,
      group: 'demo',
      status: 'pending',
      waves: [],
      hosts: { done: [] },
    });
  });

  it('answers 404 for an unknown rollout', async () => {
    expect((await api.request('GET', '/rollouts/r-nothing')).status).toBe(404);
  });

  it('renders as XML on request', async () => {
    await runningDemo();
    const created = await api.postJson('/groups/demo/rollouts', { service: 'media', version: '2.2.0' });
    const response = await api.request('GET', `/rollouts/${String(created.body.id)}`, {
      headers: { Accept: 'application/xml' },
    });
    expect(response.raw).toContain('<rollout>');
    expect(response.raw).toContain('<status>pending</status>');
  });
});

describe('POST /rollouts/{id}/pause, /resume, /abort', () => {
  async function created(): Promise<string> {
    await runningDemo();
    const response = await api.postJson('/groups/demo/rollouts', { service: 'media', version: '2.2.0' });
    return response.body.id as string;
  }

  it('pauses a pending rollout and records RolloutStatusChanged', async () => {
    const id = await created();
    const response = await api.request('POST', `/rollouts/${id}/pause`);
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ id, status: 'paused' });
    expect((await eventsOf()).at(-1)).toMatchObject({
      type: 'RolloutStatusChanged',
      data: { rolloutId: id, status: 'paused' },
    });
  });

  it('resumes a paused rollout: 202, running, and always asks the reconcile to take it up again', async () => {
    const id = await created();
    await api.request('POST', `/rollouts/${id}/pause`);
    api.advance(10_000);
    const resumed = await api.request('POST', `/rollouts/${id}/resume`);
    expect(resumed.status).toBe(202);
    expect(resumed.body).toMatchObject({ id, status: 'running', executionId: expect.any(String) });
    // A run that still holds the group takes the request in; otherwise it starts one.
    expect(api.reconcile.requests.at(-1)).toEqual({
      group: 'demo',
      reason: 'rollout',
      rolloutId: id,
      dedupeKey: `rollout-${id}-resume-3`,
    });
  });

  it('starts a run on every resume, one per resume', async () => {
    const id = await created();
    await api.request('POST', `/rollouts/${id}/pause`);
    const resumed = await api.request('POST', `/rollouts/${id}/resume`);
    expect(resumed.status).toBe(202);
    expect(resumed.body).toMatchObject({ id, status: 'running', executionId: expect.any(String) });
    await api.request('POST', `/rollouts/${id}/pause`);
    await api.request('POST', `/rollouts/${id}/resume`);
    const keys = api.reconcile.requests.map((request) => request.dedupeKey);
    expect(keys.filter((key) => key.startsWith(`rollout-${id}-resume-`))).toEqual([
      `rollout-${id}-resume-3`,
      `rollout-${id}-resume-5`,
    ]);
  });

  it('refuses commands the status does not allow, with 409 naming the status', async () => {
    const id = await created();
    const resume = await api.request('POST', `/rollouts/${id}/resume`);
    expect(resume.status).toBe(409);
    expect(resume.body.detail).toContain('is pending');
    expect(resume.body.detail).toContain('only a paused rollout can be resumed');
    await moveTo(id, 'succeeded');
    for (const command of ['pause', 'abort'] as const) {
      const response = await api.request('POST', `/rollouts/${id}/${command}`);
      expect(response.status).toBe(409);
      expect(response.body).toMatchObject({ rolloutStatus: 'succeeded', command });
    }
  });

  it('aborts a running rollout: 202, reverting, and a reconcile run to put its hosts back', async () => {
    const id = await created();
    await moveTo(id, 'running');
    const aborted = await api.request('POST', `/rollouts/${id}/abort`);
    expect(aborted.status).toBe(202);
    expect(aborted.body).toMatchObject({
      status: 'reverting',
      revert: { outcome: 'aborted', reason: 'operator: abort' },
      executionId: expect.any(String),
    });
    expect(api.reconcile.requests.at(-1)).toEqual({
      group: 'demo',
      reason: 'rollout',
      rolloutId: id,
      dedupeKey: `rollout-${id}-abort-3`,
    });
    expect((await eventsOf()).at(-1)).toMatchObject({
      type: 'RolloutStatusChanged',
      data: { rolloutId: id, status: 'reverting', reason: 'operator: abort' },
    });
  });

  it('holds the group while reverting, and frees it once the revert finished aborted', async () => {
    const id = await created();
    await moveTo(id, 'running');
    await api.request('POST', `/rollouts/${id}/abort`);
    const meanwhile = await api.postJson('/groups/demo/rollouts', { service: 'db', version: '14' });
    expect(meanwhile.status).toBe(409);
    expect(meanwhile.body).toMatchObject({ rolloutId: id, rolloutStatus: 'reverting' });
    // The reconcile put the hosts back.
    await commandRollout(api.deps, id, { type: 'FinishRevert', at: api.now() });
    expect(await statusOf(id)).toBe('aborted');
    api.documents.resetCalls();
    const next = await api.postJson('/groups/demo/rollouts', { service: 'db', version: '14' });
    expect(next.status).toBe(202);
    // The stream recorded the abort, so the aborted rollout's document need not be read again.
    expect(api.documents.calls.get).toBe(1);
  });

  it('answers 404 for an unknown rollout', async () => {
    expect((await api.request('POST', '/rollouts/r-nothing/pause')).status).toBe(404);
  });

  it('follows the status table for any sequence of commands, recording exactly the accepted ones', async () => {
    const allowed: Record<string, Partial<Record<RolloutStatus, RolloutStatus>>> = {
      pause: { pending: 'paused', running: 'paused' },
      resume: { paused: 'running' },
      abort: { pending: 'reverting', running: 'reverting', paused: 'reverting' },
    };
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom('pause', 'resume', 'abort'), { maxLength: 8 }),
        async (commands) => {
          const harness = groupsHarness();
          await runningDemo(harness);
          const created = await harness.postJson('/groups/demo/rollouts', {
            service: 'media',
            version: '2.2.0',
          });
          const id = created.body.id as string;
          let expected: RolloutStatus = 'pending';
          let accepted = 0;
          for (const command of commands) {
            const response = await harness.request('POST', `/rollouts/${id}/${command}`);
            const next: RolloutStatus | undefined = allowed[command]?.[expected];
            if (next === undefined) {
              expect(response.status).toBe(409);
            } else {
              expect(response.body.status).toBe(next);
              expected = next;
              accepted += 1;
            }
          }
          expect((await harness.request('GET', `/rollouts/${id}`)).body.status).toBe(expected);
          const changes = (await eventsOf(harness)).filter((event) => event.type === 'RolloutStatusChanged');
          expect(changes).toHaveLength(accepted);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('a succeeded rollout becomes the group definition', () => {
  async function requested(body: Record<string, unknown>): Promise<string> {
    await runningDemo();
    const response = await api.postJson('/groups/demo/rollouts', body);
    expect(response.status).toBe(202);
    return response.body.id as string;
  }

  /** The reconcile's Finish: every host reports the target. */
  async function succeed(id: string) {
    const { rollout, adoption } = await runRolloutCommand(api.deps, id, { type: 'Succeed', at: api.now() });
    expect(rollout.status).toBe('succeeded');
    if (!adoption) throw new Error(`succeeding ${id} told the group nothing`);
    return adoption;
  }

  it('records a whole-group rollout as a GroupDefined naming it, with the new version, and moves the ETag', async () => {
    const id = await requested({
      service: 'media',
      version: '2.2.0',
      config: { 'codec.preferred': 'g722' },
    });

    const outcome = await succeed(id);

    expect(outcome).toMatchObject({ recorded: true, adopted: true });
    const group = await api.request('GET', '/groups/demo');
    expect(group.headers.etag).toBe(`"${outcome.definitionVersion}"`);
    expect(group.headers.etag).not.toBe('"1"');
    const media = (group.body.definition as GroupDefinition).hostTypes.media?.services.media;
    expect(media).toMatchObject({ version: '2.2.0', config: { 'codec.preferred': 'g722' } });
    const compiled = (group.body.compiled as CompiledGroup).hostTypes.media?.services.media;
    expect(compiled?.version).toBe('2.2.0');
    const tail = (await eventsOf()).slice(-2);
    expect(tail.map((event) => event.type)).toEqual(['GroupDefined', 'RolloutStatusChanged']);
    expect(tail[0]).toMatchObject({ version: outcome.definitionVersion, data: { rolloutId: id } });
    expect(tail[1]).toMatchObject({ data: { rolloutId: id, status: 'succeeded' } });
    // Nothing to bring up: the hosts already run what the definition now says.
    expect(api.reconcile.requests.filter((request) => request.reason === 'definition-changed')).toEqual([]);
  });

  it('fails an If-Match on the definition version from before the rollout', async () => {
    await succeed(await requested({ service: 'media', version: '2.2.0' }));

    const response = await api.define('demo', DEMO_YAML, { 'If-Match': '"1"' });

    expect(response.status).toBe(412);
  });

  it('records it once: a retried Finish neither appends again nor overwrites a later definition', async () => {
    const id = await requested({ service: 'media', version: '2.2.0' });
    await succeed(id);
    expect((await api.define('demo', DEMO_YAML)).status).toBe(200);
    const before = await eventsOf();

    const again = await succeed(id);

    expect(again).toEqual({ recorded: false, adopted: false });
    expect(await eventsOf()).toHaveLength(before.length);
    const media = (await api.request('GET', '/groups/demo')).body.definition as GroupDefinition;
    expect(media.hostTypes.media?.services.media?.version).not.toBe('2.2.0');
  });

  it('keeps the definition after a canary that reached only some hosts', async () => {
    const outcome = await succeed(await requested({ service: 'media', version: '2.2.0', select: '1' }));

    expect(outcome).toMatchObject({ recorded: true, adopted: false });
    expect((await api.request('GET', '/groups/demo')).headers.etag).toBe('"1"');
    expect((await eventsOf()).at(-1)).toMatchObject({
      type: 'RolloutStatusChanged',
      data: { status: 'succeeded' },
    });
  });

  it('frees the group for the next rollout, whose previous version is the adopted one', async () => {
    await succeed(await requested({ service: 'media', version: '2.2.0' }));

    const next = await api.postJson('/groups/demo/rollouts', { service: 'media', version: '2.3.0' });

    expect(next.status).toBe(202);
    expect(next.body.previousVersion).toBe('2.2.0');
  });
});

describe('POST /rollouts/{id}/revert', () => {
  it('reverts a succeeded rollout with a new one named a revert of it, back to the version its hosts had', async () => {
    await runningDemo();
    const first = await api.postJson('/groups/demo/rollouts', { service: 'call-router', version: '1.5.0' });
    const id = first.body.id as string;
    expect(first.body).toMatchObject({ from: { version: '1.4.0' } });
    await moveTo(id, 'succeeded');

    const response = await api.request('POST', `/rollouts/${id}/revert`);
    expect(response.status).toBe(202);
    const revertId = response.body.id as string;
    expect(revertId).not.toBe(id);
    expect(response.headers.location).toBe(`/rollouts/${revertId}`);
    expect(response.body).toMatchObject({
      revertOf: id,
      service: 'call-router',
      version: '1.4.0',
      select: 'all',
      status: 'pending',
      executionId: expect.any(String),
    });
    expect(api.reconcile.requests.at(-1)).toMatchObject({ reason: 'rollout', rolloutId: revertId });
  });

  it('reverts a canary on the hosts it reached only', async () => {
    await runningDemo();
    const first = await api.postJson('/groups/demo/rollouts', {
      service: 'call-router',
      version: '1.5.0',
      select: '1',
    });
    const id = first.body.id as string;
    const give = (command: Parameters<typeof commandRollout>[2]) => commandRollout(api.deps, id, command);
    const at = api.now();
    await give({
      type: 'Plan',
      waves: [{ index: 0, hosts: ['demo-call-router-1'] }],
      targets: [],
      run: 'r',
      at,
    });
    await give({ type: 'SettleWave', index: 0, done: ['demo-call-router-1'], failed: [], at });
    await give({ type: 'Succeed', at });

    const response = await api.request('POST', `/rollouts/${id}/revert`);
    expect(response.body).toMatchObject({ revertOf: id, select: 'ids(demo-call-router-1)' });
  });

  it('reverts a stop with a start', async () => {
    await runningDemo();
    const stop = await api.request('POST', '/groups/demo/services/call-router/stop');
    await moveTo(stop.body.id as string, 'succeeded');
    const response = await api.request('POST', `/rollouts/${stop.body.id}/revert`);
    expect(response.body).toMatchObject({ operation: 'start', revertOf: stop.body.id });
  });

  it('refuses a rollout still active with 409 pointing at abort', async () => {
    await runningDemo();
    const first = await api.postJson('/groups/demo/rollouts', { service: 'call-router', version: '1.5.0' });
    const id = first.body.id as string;
    await moveTo(id, 'running');
    const response = await api.request('POST', `/rollouts/${id}/revert`);
    expect(response.status).toBe(409);
    expect(response.body.detail).toContain('abort');
    expect(response.body.abort).toBe(`/rollouts/${id}/abort`);
  });

  it('refuses a rollout that was aborted (nothing left to revert) and answers 404 for an unknown one', async () => {
    await runningDemo();
    const first = await api.postJson('/groups/demo/rollouts', { service: 'call-router', version: '1.5.0' });
    const id = first.body.id as string;
    await api.request('POST', `/rollouts/${id}/abort`);
    await commandRollout(api.deps, id, { type: 'FinishRevert', at: api.now() });
    expect((await api.request('POST', `/rollouts/${id}/revert`)).status).toBe(409);
    expect((await api.request('POST', '/rollouts/r-nope/revert')).status).toBe(404);
  });
});

describe('declared changes of several services', () => {
  it('rolls them out one at a time: the next rollout is requested, and its stream created, when one succeeds', async () => {
    await runningDemo();
    const both = DEMO_YAML.replace('version: 1.4.0', 'version: 1.5.0').replace(
      'version: 2.1.0',
      'version: 2.2.0',
    );
    const defined = await api.define('demo', both);
    const first = (defined.body.rollout as { id: string }).id;
    expect((await api.request('GET', `/rollouts/${first}`)).body).toMatchObject({ service: 'call-router' });
    expect(defined.body.declaredQueue).toEqual([
      expect.objectContaining({
        service: 'media',
        definitionVersion: 3,
        from: expect.objectContaining({ version: '2.1.0' }),
      }),
    ]);

    await moveTo(first, 'succeeded');

    const group = await api.request('GET', '/groups/demo');
    const next = group.body.activeRollout as string;
    expect(group.body.declaredQueue).toBeUndefined();
    expect(next).toBeDefined();
    expect(next).not.toBe(first);
    expect(await statusOf(next)).toBe('pending');
    expect((await api.request('GET', `/rollouts/${next}`)).body).toMatchObject({
      service: 'media',
      version: '2.2.0',
      cause: { kind: 'declared', definitionVersion: 3 },
    });
  });
});
