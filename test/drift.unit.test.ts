import { describe, expect, it } from 'vitest';
import type { HostState } from '../shared/fold.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import { driftOf, reportedBy, reportedFor } from '../shared/hosts/drift.ts';
import { DEFAULT_BANDS, splitMetrics } from '../shared/metrics.ts';
import type { MachineStateInput } from '../shared/schemas.ts';
import { machineState } from './support/fixtures.ts';

const AT = '2026-11-25T10:00:00.000Z';

function desired(overrides: Partial<DesiredHostState> = {}): DesiredHostState {
  return {
    hostId: 'cr-1',
    group: 'demo',
    hostType: 'call-router',
    stateVersion: 4,
    services: { 'call-router': { version: '1.5.0', config: { codec: 'opus' }, port: 5060 } },
    config: { 'sip.port': '5060' },
    mode: 'running',
    ...overrides,
  };
}

/** A host that reported `reported` and was assigned `assigned`. */
function host(reported: Partial<MachineStateInput> | undefined, assigned?: DesiredHostState): HostState {
  return {
    hostId: 'cr-1',
    group: 'demo',
    hostType: 'call-router',
    roles: ['call-router'],
    registeredAt: AT,
    version: 3,
    lastChangeSeq: reported ? 2 : 0,
    ...(reported ? { observed: splitMetrics(machineState(reported), DEFAULT_BANDS).tracked } : {}),
    ...(assigned
      ? { assigned: { state: assigned, assignedAt: AT, by: { reason: 'rollout' }, version: 3 } }
      : {}),
  };
}

const applied = {
  status: 'running',
  config: { values: { 'sip.port': '5060' } },
  software: { 'call-router': { version: '1.5.0', status: 'running', port: 5060 } },
  appliedStateVersion: 4,
} satisfies Partial<MachineStateInput>;

describe('reportedFor', () => {
  it('is what a host that applied the state reports: mode as status, config values, versions, the state version', () => {
    expect(reportedFor(desired())).toEqual({
      status: 'running',
      config: { values: { 'sip.port': '5060' } },
      software: { 'call-router': { version: '1.5.0' } },
      appliedStateVersion: 4,
    });
    expect(reportedFor(desired({ mode: 'draining' })).status).toBe('draining');
    expect(reportedFor(desired({ mode: 'stopped' })).status).toBe('stopped');
  });
});

describe('reportedBy', () => {
  it('keeps only the parts an assignment decides', () => {
    expect(reportedBy(host(applied))).toEqual(reportedFor(desired()));
  });

  it('is just a pending status for a host that never reported', () => {
    expect(reportedBy(host(undefined))).toEqual({ status: 'pending' });
  });
});

describe('driftOf', () => {
  it('is in sync when the host reports exactly what it was assigned', () => {
    expect(driftOf(host(applied, desired()))).toEqual({
      assignedVersion: 4,
      observedVersion: 4,
      inSync: true,
      changes: [],
    });
  });

  it('ignores what an assignment does not decide: load, sessions, IPs, a service status', () => {
    const busy = {
      ...applied,
      ips: { internal: '10.9.9.9' },
      operational: { load: 0.99, sessions: { voice: 150, sms: 0, mms: 0, video: 0 } },
    };
    expect(driftOf(host(busy, desired()))?.inSync).toBe(true);
  });

  it('lists each difference by path, from what the host reports to what it was assigned', () => {
    const behind = {
      ...applied,
      status: 'draining',
      config: { values: { 'sip.port': '5070', debug: 'on' } },
      software: { 'call-router': { version: '1.4.0' }, sidecar: { version: '0.1.0' } },
      appliedStateVersion: 3,
    } satisfies Partial<MachineStateInput>;
    expect(driftOf(host(behind, desired()))).toEqual({
      assignedVersion: 4,
      observedVersion: 3,
      inSync: false,
      changes: [
        { op: 'changed', path: '/appliedStateVersion', old: 3, new: 4 },
        { op: 'removed', path: '/config/values/debug', old: 'on' },
        { op: 'changed', path: '/config/values/sip.port', old: '5070', new: '5060' },
        { op: 'changed', path: '/software/call-router/version', old: '1.4.0', new: '1.5.0' },
        { op: 'removed', path: '/software/sidecar', old: { version: '0.1.0' } },
        { op: 'changed', path: '/status', old: 'draining', new: 'running' },
      ],
    });
  });

  it('shows a host that never reported as missing everything it was assigned', () => {
    const drift = driftOf(host(undefined, desired()));
    expect(drift).toMatchObject({ assignedVersion: 4, observedVersion: 0, inSync: false });
    expect(drift?.changes).toEqual([
      { op: 'added', path: '/appliedStateVersion', new: 4 },
      { op: 'added', path: '/config', new: { values: { 'sip.port': '5060' } } },
      { op: 'added', path: '/software', new: { 'call-router': { version: '1.5.0' } } },
      { op: 'changed', path: '/status', old: 'pending', new: 'running' },
    ]);
  });

  it('shows an instance that ended as drift even though its last report matched', () => {
    const ended: HostState = {
      ...host(applied, desired()),
      terminated: { instanceId: 'i-1', reason: 'gone', status: 'failed', at: AT, afterSeq: 2 },
    };
    expect(driftOf(ended)?.changes).toEqual([
      { op: 'changed', path: '/status', old: 'failed', new: 'running' },
    ]);
  });

  it('wants a stopped host to report stopped', () => {
    const stopped = { ...applied, status: 'stopped' } satisfies Partial<MachineStateInput>;
    expect(driftOf(host(stopped, desired({ mode: 'stopped' })))?.inSync).toBe(true);
  });

  it('is undefined for a host never assigned a state', () => {
    expect(driftOf(host(applied))).toBeUndefined();
  });
});
