import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { type PostedSnapshot, type Sleep, SnapshotUploader } from '../agent/uploader.ts';
import { snapshotKey } from '../shared/keys.ts';
import { MachineState, Snapshot } from '../shared/schemas.ts';
import { verifySnapshotSignature } from '../shared/signing.ts';

const SECRET = 'test-secret-test-secret-test-secret';
const s3 = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const s3Mock = mockClient(s3);

function state(load: number): MachineState {
  return MachineState.parse({
    status: 'running',
    group: 'edge',
    hostType: 'router',
    roles: ['call-router'],
    ips: {},
    capacity: { sessions: 100 },
    config: {},
    operational: { load },
  });
}

function counter(start = 0) {
  let n = start;
  return { next: async () => ++n };
}

function puts() {
  return s3Mock.commandCalls(PutObjectCommand).map((call) => {
    const input = call.args[0].input;
    return {
      key: input.Key,
      contentType: input.ContentType,
      snapshot: Snapshot.parse(JSON.parse(String(input.Body))),
    };
  });
}

/** A sleep the test releases by hand, recording every delay asked for. */
function manualSleep() {
  const delays: number[] = [];
  let release: (() => void) | undefined;
  let asked: (() => void) | undefined;
  const sleep: Sleep = (ms, signal) => {
    delays.push(ms);
    asked?.();
    return new Promise((resolve) => {
      release = resolve;
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
  };
  return {
    sleep,
    delays,
    nextSleep: () =>
      new Promise<void>((resolve) => {
        asked = resolve;
      }),
    release: () => release?.(),
  };
}

const instantSleep = (delays: number[]): Sleep => {
  return async (ms) => {
    delays.push(ms);
  };
};

beforeEach(() => {
  s3Mock.reset();
});

describe('SnapshotUploader', () => {
  it('puts a signed snapshot under snapshots/{hostId}/{seq}.json', async () => {
    s3Mock.on(PutObjectCommand).resolves({});
    const posted: PostedSnapshot[] = [];
    const uploader = new SnapshotUploader({
      s3,
      bucket: 'snaps',
      hostId: 'h1',
      secret: SECRET,
      sequence: counter(41),
      clock: () => new Date('2030-01-01T00:00:00.000Z'),
      onPosted: (p) => posted.push(p),
    });
    uploader.submit({ state: state(0.2), reason: 'first' });
    await uploader.idle();

    const [put] = puts();
    expect(s3Mock.commandCalls(PutObjectCommand)[0]?.args[0].input.Bucket).toBe('snaps');
    expect(put?.key).toBe(snapshotKey('h1', 42));
    expect(put?.contentType).toBe('application/json');
    expect(put?.snapshot).toMatchObject({ hostId: 'h1', seq: 42, signedAt: '2030-01-01T00:00:00.000Z' });
    expect(put && verifySnapshotSignature(SECRET, put.snapshot)).toBe(true);
    expect(put && verifySnapshotSignature('another-secret', put.snapshot)).toBe(false);
    expect(posted).toMatchObject([{ seq: 42, reason: 'first', attempts: 1 }]);
    expect(uploader.pending).toBe(false);
  });

  it('retries failures with exponential backoff, re-sending the same bytes under the same seq', async () => {
    s3Mock
      .on(PutObjectCommand)
      .rejectsOnce(new Error('503 SlowDown'))
      .rejectsOnce(new Error('socket hang up'))
      .rejectsOnce(new Error('503 SlowDown'))
      .resolves({});
    const delays: number[] = [];
    const failures: number[] = [];
    const posted: PostedSnapshot[] = [];
    const uploader = new SnapshotUploader({
      s3,
      bucket: 'snaps',
      hostId: 'h1',
      secret: SECRET,
      sequence: counter(),
      random: () => 0.5,
      sleep: instantSleep(delays),
      onFailure: (_error, count) => failures.push(count),
      onPosted: (p) => posted.push(p),
    });
    uploader.submit({ state: state(0.2), reason: 'changed', changes: 1 });
    await uploader.idle();

    expect(failures).toEqual([1, 2, 3]);
    // base 200 ms doubling, equal jitter at random 0.5: three quarters of each ceiling
    expect(delays).toEqual([150, 300, 600]);
    const bodies = puts();
    expect(bodies).toHaveLength(4);
    expect(new Set(bodies.map((b) => b.key))).toEqual(new Set([snapshotKey('h1', 1)]));
    expect(new Set(bodies.map((b) => JSON.stringify(b.snapshot))).size).toBe(1);
    expect(posted).toMatchObject([{ seq: 1, reason: 'changed', changes: 1, attempts: 4 }]);
  });

  it('does not upload again when the onPosted observer throws', async () => {
    s3Mock.on(PutObjectCommand).resolves({});
    const uploader = new SnapshotUploader({
      s3,
      bucket: 'snaps',
      hostId: 'h1',
      secret: SECRET,
      sequence: counter(),
      sleep: instantSleep([]),
      onPosted: () => {
        throw new Error('EPIPE');
      },
    });
    uploader.submit({ state: state(0.2), reason: 'first' });
    await uploader.idle();
    expect(puts()).toHaveLength(1);
    expect(uploader.pending).toBe(false);
  });

  it('keeps every retry delay between half the ceiling and the 30 s cap', () => {
    const low = new SnapshotUploader({
      s3,
      bucket: 'b',
      hostId: 'h1',
      secret: SECRET,
      sequence: counter(),
      random: () => 0,
    });
    const high = new SnapshotUploader({
      s3,
      bucket: 'b',
      hostId: 'h1',
      secret: SECRET,
      sequence: counter(),
      random: () => 0.999_999,
    });
    expect(low.retryDelay(1)).toBe(100);
    expect(high.retryDelay(1)).toBe(200);
    expect(low.retryDelay(50)).toBe(15_000);
    expect(high.retryDelay(50)).toBe(30_000);
    for (let failures = 1; failures < 60; failures += 1) {
      expect(high.retryDelay(failures)).toBeGreaterThanOrEqual(high.retryDelay(failures - 1 || 1));
    }
  });

  it('replaces a state waiting for a retry with a newer one (latest wins)', async () => {
    let s3Up = false;
    s3Mock.on(PutObjectCommand).callsFake(async () => {
      if (!s3Up) throw new Error('connection refused');
      return {};
    });
    const control = manualSleep();
    const posted: PostedSnapshot[] = [];
    const uploader = new SnapshotUploader({
      s3,
      bucket: 'snaps',
      hostId: 'h1',
      secret: SECRET,
      sequence: counter(),
      sleep: control.sleep,
      onPosted: (p) => posted.push(p),
    });
    const sleeping = control.nextSleep();
    uploader.submit({ state: state(0.2), reason: 'first' });
    await sleeping;
    uploader.submit({ state: state(0.6), reason: 'changed', changes: 1 });
    uploader.submit({ state: state(0.9), reason: 'changed', changes: 1 });
    expect(uploader.pending).toBe(true);
    s3Up = true;
    control.release();
    await uploader.idle();

    expect(posted).toHaveLength(1);
    expect(posted[0]?.state.operational.load).toBe(0.9);
    const bodies = puts();
    expect(bodies.map((b) => b.snapshot.state.operational.load)).toEqual([0.2, 0.9]);
    // the newest state gets its own, higher seq: the failed key is never rewritten with another body
    expect(bodies.map((b) => b.snapshot.seq)).toEqual([1, 2]);
    expect(bodies.every((b) => verifySnapshotSignature(SECRET, b.snapshot))).toBe(true);
  });

  it('re-signs with a fresh signedAt and a new seq once the signature is older than a minute', async () => {
    let now = Date.parse('2030-01-01T00:00:00.000Z');
    s3Mock
      .on(PutObjectCommand)
      .callsFakeOnce(async () => {
        now += 61_000;
        throw new Error('timeout');
      })
      .resolves({});
    const uploader = new SnapshotUploader({
      s3,
      bucket: 'snaps',
      hostId: 'h1',
      secret: SECRET,
      sequence: counter(),
      clock: () => new Date(now),
      sleep: instantSleep([]),
    });
    uploader.submit({ state: state(0.2), reason: 'first' });
    await uploader.idle();

    const [first, second] = puts();
    expect(first?.snapshot).toMatchObject({ seq: 1, signedAt: '2030-01-01T00:00:00.000Z' });
    expect(second?.snapshot).toMatchObject({ seq: 2, signedAt: '2030-01-01T00:01:01.000Z' });
    expect(second?.key).toBe(snapshotKey('h1', 2));
    expect(second && verifySnapshotSignature(SECRET, second.snapshot)).toBe(true);
  });

  it('flush makes one last try with the pending state and reports success', async () => {
    let s3Up = false;
    s3Mock.on(PutObjectCommand).callsFake(async () => {
      if (!s3Up) throw new Error('connection refused');
      return {};
    });
    const control = manualSleep();
    const uploader = new SnapshotUploader({
      s3,
      bucket: 'snaps',
      hostId: 'h1',
      secret: SECRET,
      sequence: counter(),
      sleep: control.sleep,
    });
    const sleeping = control.nextSleep();
    uploader.submit({ state: state(0.2), reason: 'first' });
    await sleeping;
    s3Up = true;
    expect(await uploader.flush(1_000)).toBe(true);
    expect(puts()).toHaveLength(2);
    expect(() => uploader.submit({ state: state(0.3), reason: 'changed' })).toThrow(/closed/);
  });

  it('fails the flush, within its time bound, when S3 stays unreachable', async () => {
    s3Mock.on(PutObjectCommand).callsFake(() => new Promise(() => {}));
    const uploader = new SnapshotUploader({
      s3,
      bucket: 'snaps',
      hostId: 'h1',
      secret: SECRET,
      sequence: counter(),
    });
    uploader.submit({ state: state(0.2), reason: 'first' });
    const started = Date.now();
    expect(await uploader.flush(100)).toBe(false);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(uploader.pending).toBe(true);
  });
});
