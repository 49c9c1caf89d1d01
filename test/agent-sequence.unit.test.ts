import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SnapshotSequence } from '../agent/sequence.ts';
import { parseSnapshotKey, snapshotKey } from '../shared/keys.ts';

let stateDir: string;
beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-seq-'));
});
afterEach(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

describe('SnapshotSequence', () => {
  it('issues strictly increasing numbers even when the clock stands still', async () => {
    const sequence = new SnapshotSequence({ stateDir, hostId: 'h1', now: () => 1_700_000_000_000 });
    const issued = [await sequence.next(), await sequence.next(), await sequence.next()];
    expect(issued).toEqual([1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_002]);
  });

  it('follows the clock when it is ahead of the last number', async () => {
    let now = 1_000;
    const sequence = new SnapshotSequence({ stateDir, hostId: 'h1', now: () => now });
    expect(await sequence.next()).toBe(1_000);
    now = 5_000;
    expect(await sequence.next()).toBe(5_000);
  });

  it('continues above the persisted number after a restart with the clock turned back', async () => {
    const before = new SnapshotSequence({ stateDir, hostId: 'h1', now: () => 2_000_000 });
    const lastBefore = [await before.next(), await before.next()].at(-1) as number;
    const afterRestart = new SnapshotSequence({ stateDir, hostId: 'h1', now: () => 1_000 });
    expect(await afterRestart.last()).toBe(lastBefore);
    expect(await afterRestart.next()).toBe(lastBefore + 1);
  });

  it('stays above earlier numbers when the state file was lost, because the clock moved on', async () => {
    let now = 1_700_000_000_000;
    const before = new SnapshotSequence({ stateDir, hostId: 'h1', now: () => now });
    const earlier: number[] = [];
    for (let poll = 0; poll < 3; poll += 1) {
      earlier.push(await before.next());
      now += 5_000;
    }
    await rm(stateDir, { recursive: true, force: true });
    now += 1; // a restart takes far longer than a millisecond
    const afterLoss = new SnapshotSequence({ stateDir, hostId: 'h1', now: () => now });
    expect(await afterLoss.last()).toBe(0);
    expect(await afterLoss.next()).toBeGreaterThan(Math.max(...earlier));
  });

  it('ignores a torn state file instead of failing', async () => {
    await writeFile(join(stateDir, 'seq-h1.json'), '{"hostId":"h1","se');
    const sequence = new SnapshotSequence({ stateDir, hostId: 'h1', now: () => 42 });
    expect(await sequence.next()).toBe(42);
  });

  it('keeps hosts sharing a state dir apart and leaves no temp files behind', async () => {
    const a = new SnapshotSequence({ stateDir, hostId: 'a', now: () => 10 });
    const b = new SnapshotSequence({ stateDir, hostId: 'b', now: () => 10 });
    await a.next();
    await a.next();
    expect(await b.next()).toBe(10);
    expect((await readdir(stateDir)).sort()).toEqual(['seq-a.json', 'seq-b.json']);
  });

  it('issues numbers that round-trip through the snapshot key format', async () => {
    const sequence = new SnapshotSequence({ stateDir, hostId: 'h1' });
    const seq = await sequence.next();
    expect(parseSnapshotKey(snapshotKey('h1', seq))).toEqual({ hostId: 'h1', seq });
  });
});
