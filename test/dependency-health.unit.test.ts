import { describe, expect, it } from 'vitest';
import { degradations } from '../shared/hosts/dependency-health.ts';
import { DEFAULT_BANDS, splitMetrics } from '../shared/metrics.ts';
import type { HostRecord } from '../shared/ports.ts';
import type { HostStatus, ServiceInstance } from '../shared/schemas.ts';
import { machineState, registeredHost } from './support/fixtures.ts';
import { voiceGroup } from './support/planner-fixtures.ts';

/* The voice group: db ← media ← call-router (router hosts), and a load balancer (lb) depending on nothing. */

const SERVICE_OF: Record<string, string> = {
  db: 'db',
  media: 'media',
  'media-lb': 'lb',
  router: 'call-router',
};

function host(
  hostId: string,
  hostType: string,
  status: HostStatus = 'running',
  serviceStatus: ServiceInstance['status'] = 'running',
  extra: Partial<HostRecord> = {},
): HostRecord {
  const service = SERVICE_OF[hostType] as string;
  const reported = status === 'degraded' || status === 'lost' ? 'running' : status;
  const { tracked } = splitMetrics(
    machineState({
      status: reported,
      group: 'voice',
      hostType,
      roles: [hostType],
      software: { [service]: { version: '1', status: serviceStatus } },
    }),
    DEFAULT_BANDS,
  );
  return registeredHost({
    hostId,
    group: 'voice',
    hostType,
    roles: [hostType],
    status,
    observed: tracked,
    ...extra,
  });
}

const healthy = () => [
  host('db-1', 'db'),
  host('media-1', 'media'),
  host('media-2', 'media'),
  host('media-lb-1', 'media-lb'),
  host('router-1', 'router'),
];

const marked = (result: ReturnType<typeof degradations>) =>
  Object.fromEntries(result.map(({ hostId, dependency }) => [hostId, dependency ?? null]));

describe('degradations', () => {
  it('marks nobody in a healthy group, answering for every live host', () => {
    expect(degradations(voiceGroup(), healthy())).toEqual([
      { hostId: 'db-1', dependencyHosts: [] },
      { hostId: 'media-1', dependencyHosts: [] },
      { hostId: 'media-2', dependencyHosts: [] },
      { hostId: 'media-lb-1', dependencyHosts: [] },
      { hostId: 'router-1', dependencyHosts: [] },
    ]);
  });

  it('marks the direct dependents of a dependency whose every host failed, naming those hosts', () => {
    const hosts = [host('db-1', 'db', 'failed'), ...healthy().slice(1)];
    const result = degradations(voiceGroup(), hosts);
    expect(marked(result)).toEqual({
      'media-1': 'db',
      'media-2': 'db',
      'media-lb-1': null,
      // media still runs: a degraded provider still serves, so the damage is not spread up the graph.
      'router-1': null,
    });
    expect(result.find((entry) => entry.hostId === 'media-1')?.dependencyHosts).toEqual(['db-1']);
  });

  it('counts lost and stopped hosts, and hosts reporting the service failed, as providing nothing', () => {
    const hosts = [
      host('db-1', 'db', 'running'),
      host('media-1', 'media', 'lost'),
      host('media-2', 'media', 'running', 'failed'),
      host('media-3', 'media', 'stopped'),
      host('router-1', 'router'),
    ];
    const result = degradations(voiceGroup(), hosts);
    expect(result.find((entry) => entry.hostId === 'router-1')).toEqual({
      hostId: 'router-1',
      dependency: 'media',
      dependencyHosts: ['media-1', 'media-2', 'media-3'],
    });
  });

  it('does not count a provider that is booting or restarting its service as failed', () => {
    const replaced = [host('db-1', 'db', 'failed'), host('db-2', 'db', 'booting'), ...healthy().slice(1)];
    expect(marked(degradations(voiceGroup(), replaced))['media-1']).toBeNull();
    const restarting = [host('db-1', 'db', 'running', 'starting'), ...healthy().slice(1)];
    expect(marked(degradations(voiceGroup(), restarting))['media-1']).toBeNull();
  });

  it('marks dependents of a dependency the group wants but has no host for', () => {
    const result = degradations(voiceGroup(), healthy().slice(1));
    expect(result.find((entry) => entry.hostId === 'media-1')).toEqual({
      hostId: 'media-1',
      dependency: 'db',
      dependencyHosts: [],
    });
  });

  it('does not mark dependents of a dependency the group wants none of and has no host for', () => {
    const result = degradations(voiceGroup({ db: 0 }), healthy().slice(1));
    expect(marked(result)['media-1']).toBeNull();
  });

  it('answers only for live hosts of the group', () => {
    const hosts = [
      ...healthy(),
      host('router-2', 'router', 'failed'),
      host('router-3', 'router', 'pending'),
      host('router-4', 'router', 'lost'),
      host('router-5', 'router', 'stopped'),
      { ...host('other-1', 'router'), group: 'other' },
    ];
    expect(degradations(voiceGroup(), hosts).map((entry) => entry.hostId)).toEqual([
      'db-1',
      'media-1',
      'media-2',
      'media-lb-1',
      'router-1',
    ]);
  });

  it('keeps the dependency a host is degraded by while it is still failed (no churn between two)', () => {
    const group = voiceGroup();
    // A host type that runs a service depending on both db and media: call-router here, given db as well.
    const compiled = {
      ...group,
      dependents: { ...group.dependents, db: [...(group.dependents.db ?? []), 'call-router'] },
    };
    const hosts = [
      host('db-1', 'db', 'failed'),
      host('media-1', 'media', 'failed'),
      host('router-1', 'router', 'degraded', 'running', {
        degradedBy: { dependency: 'media', dependencyHosts: ['media-1'], at: '2026-11-25T00:00:00.000Z' },
      }),
      host('router-2', 'router'),
    ];
    const result = marked(degradations(compiled, hosts));
    expect(result['router-1']).toBe('media');
    expect(result['router-2']).toBe('db');
  });
});
