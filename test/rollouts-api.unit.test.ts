import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { type GroupEvent, groupStream } from '../shared/groups/events.ts';
import { groupRecorder } from '../shared/groups/group-service.ts';
import type { CompiledGroup, GroupDefinition, Rollout, RolloutStatus } from '../shared/groups/model.ts';
import { DEMO_YAML, type GroupsHarness, groupsHarness } from './support/groups-harness.ts';

let api: GroupsHarness;

async function runningDemo(harness: GroupsHarness = api): Promise<void> {
  expect((await harness.define('demo', DEMO_YAML)).status).toBe(201);
  expect((await harness.request('POST', '/groups/demo/start')).status).toBe(202);
}

async function eventsOf(harness: GroupsHarness = api) {
  return (await harness.events.read<GroupEvent>(groupStream('demo'), { limit: 1000 })).events;
}

/** Plays the reconcile's part: it moves rollouts on by rewriting their document. */
async function finish(id: string, status: RolloutStatus, harness: GroupsHarness = api): Promise<void> {
  const stored = await harness.documents.get<Rollout>('rollout', id);
  if (!stored) throw new Error(`no rollout ${id}`);
  await harness.documents.put('rollout', id, { ...stored.body, status }, stored.version, harness.now());
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
      await finish(id, status);
      const second = await api.postJson('/groups/demo/rollouts', { service: 'db', version: '14' });
      expect(second.status).toBe(409);
      expect(second.body.detail).toContain(id);
      expect(second.body).toMatchObject({ rolloutId: id, rolloutStatus: status });
    }
    await finish(id, 'succeeded');
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
      await finish(ids.at(-1) as string, 'succeeded');
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

  it('resumes a paused rollout whose run still waits at its check without starting a second run', async () => {
    const id = await created();
    await api.request('POST', `/rollouts/${id}/pause`);
    api.advance(10_000);
    const resumed = await api.request('POST', `/rollouts/${id}/resume`);
    expect(resumed.status).toBe(202);
    expect(resumed.body).toMatchObject({ id, status: 'running' });
    expect(resumed.body.executionId).toBeUndefined();
    expect(api.reconcile.requests.filter((request) => request.dedupeKey.includes('-resume-'))).toEqual([]);
  });

  it('keeps trusting a run that renews its word that it lives, however long the rollout stays paused', async () => {
    const id = await created();
    await api.request('POST', `/rollouts/${id}/pause`);
    api.advance(3_600_000);
    // Plays the run's check step, which renews runAliveUntil while it waits.
    const stored = await api.documents.get<Rollout>('rollout', id);
    if (!stored) throw new Error(`no rollout ${id}`);
    const renewed = new Date(api.now().getTime() + 20_000).toISOString();
    await api.documents.put(
      'rollout',
      id,
      { ...stored.body, runAliveUntil: renewed },
      stored.version,
      api.now(),
    );
    const resumed = await api.request('POST', `/rollouts/${id}/resume`);
    expect(resumed.status).toBe(202);
    expect(resumed.body.executionId).toBeUndefined();
  });

  it('starts a new run on resume once the run of the paused rollout is over, one per resume', async () => {
    const id = await created();
    await api.request('POST', `/rollouts/${id}/pause`);
    // Nothing renewed runAliveUntil past the first run's grace: that run ended (or never began).
    api.advance(31_000);
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
    await finish(id, 'succeeded');
    for (const command of ['pause', 'abort'] as const) {
      const response = await api.request('POST', `/rollouts/${id}/${command}`);
      expect(response.status).toBe(409);
      expect(response.body).toMatchObject({ rolloutStatus: 'succeeded', command });
    }
  });

  it('aborts a running rollout, which then frees the group for another', async () => {
    const id = await created();
    await finish(id, 'running');
    const aborted = await api.request('POST', `/rollouts/${id}/abort`);
    expect(aborted.status).toBe(200);
    expect(aborted.body.status).toBe('aborted');
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
      abort: { pending: 'aborted', running: 'aborted', paused: 'aborted' },
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
  async function succeeded(body: Record<string, unknown>): Promise<Rollout> {
    await runningDemo();
    const response = await api.postJson('/groups/demo/rollouts', body);
    expect(response.status).toBe(202);
    const id = response.body.id as string;
    await finish(id, 'succeeded');
    const stored = await api.documents.get<Rollout>('rollout', id);
    if (!stored) throw new Error(`no rollout ${id}`);
    return stored.body;
  }

  function recorder() {
    return groupRecorder({ events: api.events, documents: api.documents, now: api.now });
  }

  it('records a whole-group rollout as a GroupDefined naming it, with the new version, and moves the ETag', async () => {
    const rollout = await succeeded({
      service: 'media',
      version: '2.2.0',
      config: { 'codec.preferred': 'g722' },
    });

    const outcome = await recorder().recordRolloutSucceeded(rollout);

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
    expect(tail[0]).toMatchObject({ version: outcome.definitionVersion, data: { rolloutId: rollout.id } });
    expect(tail[1]).toMatchObject({ data: { rolloutId: rollout.id, status: 'succeeded' } });
    // Nothing to bring up: the hosts already run what the definition now says.
    expect(api.reconcile.requests.filter((request) => request.reason === 'definition-changed')).toEqual([]);
  });

  it('fails an If-Match on the definition version from before the rollout', async () => {
    const rollout = await succeeded({ service: 'media', version: '2.2.0' });
    await recorder().recordRolloutSucceeded(rollout);

    const response = await api.define('demo', DEMO_YAML, { 'If-Match': '"1"' });

    expect(response.status).toBe(412);
  });

  it('records it once: a retried Finish neither appends again nor overwrites a later definition', async () => {
    const rollout = await succeeded({ service: 'media', version: '2.2.0' });
    await recorder().recordRolloutSucceeded(rollout);
    expect((await api.define('demo', DEMO_YAML)).status).toBe(200);
    const before = await eventsOf();

    const again = await recorder().recordRolloutSucceeded(rollout);

    expect(again).toEqual({ recorded: false, adopted: false });
    expect(await eventsOf()).toHaveLength(before.length);
    const media = (await api.request('GET', '/groups/demo')).body.definition as GroupDefinition;
    expect(media.hostTypes.media?.services.media?.version).not.toBe('2.2.0');
  });

  it('keeps the definition after a canary that reached only some hosts', async () => {
    const rollout = await succeeded({ service: 'media', version: '2.2.0', select: '1' });

    const outcome = await recorder().recordRolloutSucceeded(rollout);

    expect(outcome).toMatchObject({ recorded: true, adopted: false });
    expect((await api.request('GET', '/groups/demo')).headers.etag).toBe('"1"');
    expect((await eventsOf()).at(-1)).toMatchObject({
      type: 'RolloutStatusChanged',
      data: { status: 'succeeded' },
    });
  });

  it('frees the group for the next rollout, whose previous version is the adopted one', async () => {
    const rollout = await succeeded({ service: 'media', version: '2.2.0' });
    await recorder().recordRolloutSucceeded(rollout);

    const next = await api.postJson('/groups/demo/rollouts', { service: 'media', version: '2.3.0' });

    expect(next.status).toBe(202);
    expect(next.body.previousVersion).toBe('2.2.0');
  });
});
