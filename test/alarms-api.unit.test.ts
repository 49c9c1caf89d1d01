import { beforeEach, describe, expect, it } from 'vitest';
import { raiseAlarm } from '../shared/groups/group-service.ts';
import { DEMO_YAML, type GroupsHarness, groupsHarness } from './support/groups-harness.ts';
import { childText, elementChildren, readXml } from './support/xml-reader.ts';

let api: GroupsHarness;

/** Raises an alarm on `group` at the harness's clock, then moves the clock on a minute. */
async function raised(group: string, alarmId: string, extra: { hostIds?: string[] } = {}) {
  await raiseAlarm(api.deps, group, {
    alarmId,
    alarm: 'repeated-host-failures',
    detail: `${alarmId} died`,
    ...extra,
  });
  api.advance(60_000);
}

beforeEach(async () => {
  api = groupsHarness();
  await api.define('demo', DEMO_YAML);
  await api.define('other', DEMO_YAML.replace('name: demo', 'name: other'));
  await raised('demo', 'a-1', { hostIds: ['demo-media-1', 'demo-media-2'] });
  await raised('other', 'b-1');
  await raised('demo', 'a-2');
});

const ids = (body: Record<string, unknown>) =>
  (body.alarms as { alarmId: string }[]).map((alarm) => alarm.alarmId);

describe('GET /alarms', () => {
  it('lists every group’s alarms newest first, each as it was raised', async () => {
    const response = await api.request('GET', '/alarms');
    expect(response.status).toBe(200);
    expect(ids(response.body)).toEqual(['a-2', 'b-1', 'a-1']);
    expect((response.body.alarms as unknown[])[2]).toEqual({
      group: 'demo',
      alarmId: 'a-1',
      alarm: 'repeated-host-failures',
      detail: 'a-1 died',
      at: '2031-02-03T04:05:06.000Z',
      hostIds: ['demo-media-1', 'demo-media-2'],
      // The harness has a hosts store, so the hosts were diagnosed: neither is registered.
      diagnosis: {
        hosts: [
          expect.objectContaining({ hostId: 'demo-media-1', status: 'unknown' }),
          expect.objectContaining({ hostId: 'demo-media-2', status: 'unknown' }),
        ],
        dependencyChain: [],
      },
    });
    expect(response.body.next).toBeUndefined();
  });

  it('filters by group and by since, and pages with limit and next', async () => {
    expect(ids((await api.request('GET', '/alarms', { query: { group: 'demo' } })).body)).toEqual([
      'a-2',
      'a-1',
    ]);
    const since = await api.request('GET', '/alarms', { query: { since: '2031-02-03T04:06:06Z' } });
    expect(ids(since.body)).toEqual(['a-2', 'b-1']);
    const first = await api.request('GET', '/alarms', { query: { limit: '2' } });
    expect(ids(first.body)).toEqual(['a-2', 'b-1']);
    const second = await api.request('GET', '/alarms', {
      query: { limit: '2', next: first.body.next as string },
    });
    expect(ids(second.body)).toEqual(['a-1']);
  });

  it('renders the list as XML on request, one <alarm> per alarm', async () => {
    const response = await api.request('GET', '/alarms', { query: { format: 'xml', group: 'demo' } });
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toContain('application/xml');
    const root = readXml(response.raw);
    expect(root.name).toBe('alarms');
    const alarms = elementChildren(root, 'alarm');
    expect(alarms.map((alarm) => childText(alarm, 'alarmId'))).toEqual(['a-2', 'a-1']);
  });

  it('rejects a since that is not an ISO time with a problem naming since', async () => {
    for (const since of ['yesterday', '2031-13-45T00:00:00Z', '1700000000']) {
      const response = await api.request('GET', '/alarms', { query: { since } });
      expect(response.status).toBe(400);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.body).toMatchObject({ parameter: 'since' });
    }
  });

  it('rejects an unknown parameter and a bad group or limit', async () => {
    const queries: Record<string, string>[] = [
      { grup: 'demo' },
      { group: 'Not A Name' },
      { limit: '0' },
      { limit: '101' },
    ];
    for (const query of queries) {
      expect((await api.request('GET', '/alarms', { query })).status).toBe(400);
    }
  });

  it('refuses other methods', async () => {
    const response = await api.request('POST', '/alarms');
    expect(response.status).toBe(405);
  });
});
