import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AgentLogger, HostAgent } from '../agent/agent.ts';
import type { FactSource } from '../agent/facts/source.ts';
import { parseSnapshotKey } from '../shared/keys.ts';
import { type MachineStateInput, Snapshot } from '../shared/schemas.ts';
import { verifySnapshotSignature } from '../shared/signing.ts';

const SECRET = 'agent-secret-agent-secret-agent-secret';
const s3 = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const s3Mock = mockClient(s3);

/** Facts the test sets by hand before each poll. */
class ScriptedFacts implements FactSource {
  load = 0.3;
  voice = 20;
  version = '1.0.0';
  failWith: Error | undefined;
  async collect(): Promise<MachineStateInput> {
    if (this.failWith) throw this.failWith;
    return {
      status: 'running',
      group: 'edge',
      hostType: 'router',
      roles: ['call-router'],
      ips: { internal: '127.0.0.9' },
      capacity: { sessions: 300 },
      config: {},
      software: { 'call-router': { version: this.version } },
      operational: { load: this.load, sessions: { voice: this.voice } },
    };
  }
}

function recordingLogger() {
  const info: Record<string, unknown>[] = [];
  const warn: Record<string, unknown>[] = [];
  const logger: AgentLogger = { info: (r) => info.push(r), warn: (r) => warn.push(r) };
  return { logger, info, warn };
}

function uploaded(): Snapshot[] {
  return s3Mock.commandCalls(PutObjectCommand).map((call) => {
    const { Key, Body } = call.args[0].input;
    const snapshot = Snapshot.parse(JSON.parse(String(Body)));
    expect(parseSnapshotKey(String(Key))).toEqual({ hostId: snapshot.hostId, seq: snapshot.seq });
    return snapshot;
  });
}

let stateDir: string;
beforeEach(async () => {
  s3Mock.reset();
  stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-agent-'));
});
afterEach(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

function agent(
  facts: FactSource,
  now: () => number,
  logger: AgentLogger,
  extra: { pollSeconds?: number } = {},
) {
  return new HostAgent({
    hostId: 'h1',
    secret: SECRET,
    bucket: 'snaps',
    s3,
    factSource: facts,
    stateDir,
    heartbeatSeconds: 600,
    clock: () => new Date(now()),
    logger,
    retry: { sleep: async () => {}, random: () => 0.5 },
    ...extra,
  });
}

describe('HostAgent', () => {
  it('posts first, skips wiggles, posts band crossings and heartbeats, one log line per post', async () => {
    s3Mock.on(PutObjectCommand).resolves({});
    let now = Date.parse('2030-01-01T00:00:00Z');
    const facts = new ScriptedFacts();
    const { logger, info } = recordingLogger();
    const host = agent(facts, () => now, logger);

    await host.pollNow();
    await host.idle();
    facts.load = 0.35;
    facts.voice = 25;
    now += 5_000;
    await host.pollNow();
    await host.idle();
    expect(uploaded()).toHaveLength(1);

    facts.load = 0.85;
    now += 5_000;
    await host.pollNow();
    await host.idle();
    now += 600_000;
    await host.pollNow();
    await host.idle();
    now += 5_000;
    await host.pollNow();
    await host.idle();

    const snapshots = uploaded();
    expect(snapshots).toHaveLength(3);
    expect(snapshots.every((s) => verifySnapshotSignature(SECRET, s))).toBe(true);
    const seqs = snapshots.map((s) => s.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(3);
    expect(info).toEqual([
      { hostId: 'h1', seq: seqs[0], reason: 'first' },
      { hostId: 'h1', seq: seqs[1], reason: 'changed', changes: 1 },
      { hostId: 'h1', seq: seqs[2], reason: 'heartbeat' },
    ]);
  });

  it('during an outage keeps only the latest change and sends no heartbeats over it', async () => {
    let s3Up = false;
    s3Mock.on(PutObjectCommand).callsFake(async () => {
      if (!s3Up) throw new Error('connection refused');
      return {};
    });
    let now = Date.parse('2030-01-01T00:00:00Z');
    const facts = new ScriptedFacts();
    const { logger, info, warn } = recordingLogger();
    let backingOff: () => void = () => {};
    const firstBackoff = new Promise<void>((resolve) => {
      backingOff = resolve;
    });
    const host = new HostAgent({
      hostId: 'h1',
      secret: SECRET,
      bucket: 'snaps',
      s3,
      factSource: facts,
      stateDir,
      heartbeatSeconds: 1,
      clock: () => new Date(now),
      logger,
      // retries park until the stop flushes, so the outage lasts as long as the test wants
      retry: {
        sleep: (_ms, signal) => {
          backingOff();
          return new Promise((resolve) => signal.addEventListener('abort', () => resolve()));
        },
      },
    });
    await host.pollNow();
    await firstBackoff;
    for (const load of [0.6, 0.85, 0.97]) {
      facts.load = load;
      now += 5_000;
      await host.pollNow();
    }
    now += 5_000;
    await host.pollNow(); // a heartbeat would be due, but the latest state is still waiting
    expect(warn).toMatchObject([{ msg: 'snapshot upload failed', error: 'connection refused', failures: 1 }]);
    s3Up = true;
    expect(await host.stop()).toBe(true);

    const attempts = uploaded();
    expect(attempts.map((s) => s.state.operational.load)).toEqual([0.3, 0.97]);
    expect(info).toHaveLength(1);
    expect(info[0]).toMatchObject({ hostId: 'h1', reason: 'changed' });
  });

  it('skips a round whose fact collection fails and carries on', async () => {
    s3Mock.on(PutObjectCommand).resolves({});
    const facts = new ScriptedFacts();
    facts.failWith = new Error('IMDS timeout');
    const { logger, warn } = recordingLogger();
    const host = agent(facts, () => 1_000, logger);
    await host.pollNow();
    expect(warn).toMatchObject([{ hostId: 'h1', msg: 'fact collection failed', error: 'IMDS timeout' }]);
    facts.failWith = undefined;
    await host.pollNow();
    await host.idle();
    expect(uploaded()).toHaveLength(1);
  });

  it('rejects facts outside the schema instead of signing them', async () => {
    s3Mock.on(PutObjectCommand).resolves({});
    const facts = new ScriptedFacts();
    facts.version = '';
    const { logger, warn } = recordingLogger();
    const host = agent(facts, () => 1_000, logger);
    await host.pollNow();
    await host.idle();
    expect(uploaded()).toHaveLength(0);
    expect(warn[0]).toMatchObject({ msg: 'fact collection failed' });
  });

  it('polls on its own cadence after start() and stops cleanly', async () => {
    s3Mock.on(PutObjectCommand).resolves({});
    const facts = new ScriptedFacts();
    let collections = 0;
    const counting: FactSource = {
      collect: () => {
        collections += 1;
        return facts.collect();
      },
    };
    const { logger, info } = recordingLogger();
    const host = agent(counting, Date.now, logger, { pollSeconds: 0.01 });
    host.start();
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await host.stop()).toBe(true);
    const atStop = collections;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(collections).toBe(atStop);
    expect(collections).toBeGreaterThan(3);
    expect(info).toMatchObject([{ reason: 'first' }]);
  });

  it('fails to construct without a state dir or sequence', () => {
    expect(
      () => new HostAgent({ hostId: 'h1', secret: SECRET, bucket: 'b', s3, factSource: new ScriptedFacts() }),
    ).toThrow(/stateDir/);
  });
});
