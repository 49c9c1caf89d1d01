import type { HostRecord } from '../../shared/ports.ts';
import { MachineState, type MachineStateInput, type UnsignedSnapshot } from '../../shared/schemas.ts';

export function machineState(overrides: Partial<MachineStateInput> = {}): MachineState {
  return MachineState.parse({
    status: 'running',
    group: 'demo',
    hostType: 'call-router',
    roles: ['call-router'],
    ips: { internal: '10.0.0.5' },
    capacity: { sessions: 200, cpus: 2 },
    config: { version: 'c1', values: { 'sip.port': '5060' } },
    software: { 'call-router': { version: '1.4.0' } },
    operational: { load: 0.2, sessions: { voice: 3, sms: 0, mms: 0, video: 0 } },
    ...overrides,
  });
}

export function unsignedSnapshot(seq: number, signedAt: Date, state = machineState()): UnsignedSnapshot {
  return { hostId: 'cr-1', seq, signedAt: signedAt.toISOString(), state };
}

export function registeredHost(overrides: Partial<HostRecord> = {}): HostRecord {
  return {
    hostId: 'cr-1',
    group: 'demo',
    hostType: 'call-router',
    roles: ['call-router'],
    role: 'call-router',
    registeredAt: '2026-11-25T00:00:00.000Z',
    version: 1,
    lastChangeSeq: 0,
    lastSeq: 0,
    status: 'pending',
    secretCiphertext: 'unused',
    ...overrides,
  };
}
