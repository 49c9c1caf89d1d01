import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../agent/config.ts';
import { DemandFile } from '../agent/facts/demand-file.ts';
import { mulberry32, SimulatedHost } from '../agent/facts/simulated.ts';
import { HostRuntime } from '../agent/runtime.ts';
import { writeFileAtomically } from '../shared/atomic-file.ts';
import { MachineState } from '../shared/schemas.ts';

let dir: string;
let file: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetfold-agent-demand-'));
  file = join(dir, 'h-1.demand.json');
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function host(runtime = new HostRuntime()) {
  return new SimulatedHost({
    hostId: 'h-1',
    group: 'demo',
    hostType: 'call-router',
    roles: ['call-router'],
    services: {},
    runtime,
    random: mulberry32(7),
    clock: () => 10_000,
    bootMs: 0,
    capacitySessions: 200,
    channels: ['voice', 'sms'],
    demand: new DemandFile(file),
  });
}

const sessionsOf = async (sim: SimulatedHost) => MachineState.parse(await sim.collect()).operational;

describe('simulated facts with a demand file', () => {
  it('report the demanded sessions and load instead of the random walk, at most the capacity', async () => {
    const sim = host();
    const walking = await sessionsOf(sim);
    expect(walking.sessions.voice).toBeLessThan(50);
    await writeFileAtomically(file, JSON.stringify({ sessions: { voice: 150, video: 900 }, load: 0.73 }));
    for (let poll = 0; poll < 3; poll += 1) {
      const { sessions, load } = await sessionsOf(sim);
      // video is not a channel of this host, but the demand says so; 900 is more than it can carry.
      expect(sessions).toMatchObject({ voice: 150, video: 200, mms: 0 });
      expect(load).toBe(0.73);
      // sms is not demanded: it keeps walking in its low band.
      expect(sessions.sms).toBeLessThan(50);
    }
  });

  it('re-reads the file when it changes, and goes back to the walk when it goes', async () => {
    const sim = host();
    await writeFileAtomically(file, JSON.stringify({ sessions: { voice: 120 } }));
    expect((await sessionsOf(sim)).sessions.voice).toBe(120);
    await writeFile(file, JSON.stringify({ sessions: { voice: 80 } }));
    // A rewrite in the same millisecond as the last read still differs in size or time: bump the time to be sure.
    await utimes(file, new Date(), new Date(Date.now() + 5_000));
    expect((await sessionsOf(sim)).sessions.voice).toBe(80);
    await rm(file);
    const released = await sessionsOf(sim);
    // The walk starts over from its low band rather than carrying 80 on.
    expect(released.sessions.voice).toBeLessThan(50);
    expect(released.sessions.video).toBe(0);
  });

  it('a draining host winds its sessions down whatever the file says, so its drain ends', async () => {
    const runtime = new HostRuntime();
    const sim = host(runtime);
    await writeFileAtomically(file, JSON.stringify({ sessions: { voice: 160 }, load: 0.9 }));
    expect((await sessionsOf(sim)).sessions.voice).toBe(160);
    runtime.setMode('draining');
    const seen: number[] = [];
    for (let poll = 0; poll < 10; poll += 1) seen.push((await sessionsOf(sim)).sessions.voice);
    expect(seen[0]).toBe(80);
    expect(seen.at(-1)).toBe(0);
    for (let i = 1; i < seen.length; i += 1) expect(seen[i]).toBeLessThanOrEqual(seen[i - 1] as number);
  });

  it('keeps the last good demand when the file is garbled, and says so', async () => {
    const warnings: string[] = [];
    const reader = new DemandFile(file, (message) => warnings.push(message));
    expect(await reader.read()).toBeUndefined();
    await writeFileAtomically(file, JSON.stringify({ sessions: { sms: 9 } }));
    expect(await reader.read()).toEqual({ sessions: { sms: 9 } });
    await writeFile(file, '{"sessions": {"sms": "lots"}}');
    await utimes(file, new Date(), new Date(Date.now() + 5_000));
    expect(await reader.read()).toEqual({ sessions: { sms: 9 } });
    expect(warnings).toEqual([expect.stringContaining('sessions.sms')]);
  });

  it('takes the file from FLEETFOLD_DEMAND_FILE in local mode only', () => {
    const env = {
      FLEETFOLD_HOST_ID: 'h-1',
      FLEETFOLD_SECRET: 's',
      FLEETFOLD_BUCKET: 'b',
      FLEETFOLD_GROUP: 'demo',
      FLEETFOLD_HOST_TYPE: 'call-router',
      FLEETFOLD_ROLES: 'call-router',
      FLEETFOLD_S3_ENDPOINT: 'http://127.0.0.1:1',
      FLEETFOLD_DEMAND_FILE: file,
    };
    expect(loadConfig({ ...env, FLEETFOLD_MODE: 'local' }).demandFile).toBe(file);
    expect(loadConfig({ ...env, FLEETFOLD_MODE: 'ec2' }).demandFile).toBeUndefined();
    expect(
      loadConfig({ ...env, FLEETFOLD_MODE: 'local', FLEETFOLD_DEMAND_FILE: '' }).demandFile,
    ).toBeUndefined();
  });
});
