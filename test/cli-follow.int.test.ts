import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { CliIo } from '../cli/io.ts';
import { run } from '../cli/main.ts';
import type { LocalCloud } from '../infra/local/cloud.ts';
import { snapshotKey } from '../shared/keys.ts';
import { signSnapshot } from '../shared/signing.ts';
import { eventually, registerHost, testCloud } from './support/cloud.ts';
import { machineState } from './support/fixtures.ts';

/*
 * The new read commands against the embedded cloud, served over HTTP as `npm start` serves it: snapshots go in
 * through the emulated S3 and the real ingest, and the CLI (its `run`, in-process, with captured output) reads
 * what they became. --follow is seen picking up an event that arrives while it runs.
 */

const REPO = resolve(import.meta.dirname, '..');
let cloud: LocalCloud;
const secrets: Record<string, string> = {};
const seqs: Record<string, number> = {};
let scratch: string;

beforeAll(async () => {
  cloud = await testCloud({ withApi: true, ingestConfig: { heartbeatCoalesceSeconds: 0 } });
  scratch = await mkdtemp(join(tmpdir(), 'fleetfold-cli-follow-'));
  for (const hostId of ['cr-1', 'cr-2']) secrets[hostId] = await registerHost(cloud, hostId);
  await report('cr-1', '1.0.0');
  await report('cr-2', '1.1.0');
}, 60_000);

afterAll(async () => {
  await cloud?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** The host posts a signed snapshot running call-router at `version`; resolves once it is ingested. */
async function report(hostId: string, version: string): Promise<void> {
  const seq = (seqs[hostId] ?? 0) + 1;
  seqs[hostId] = seq;
  const state = machineState({ software: { 'call-router': { version } } });
  const body = signSnapshot(secrets[hostId] as string, {
    hostId,
    seq,
    signedAt: new Date().toISOString(),
    state,
  });
  await cloud.clients.s3.send(
    new PutObjectCommand({
      Bucket: cloud.endpoints.bucket,
      Key: snapshotKey(hostId, seq),
      Body: JSON.stringify(body),
    }),
  );
  await eventually(async () => {
    const response = await fetch(`${cloud.endpoints.api}/hosts/${hostId}`, {
      headers: { authorization: `Bearer ${cloud.endpoints.token}` },
    });
    const host = (await response.json()) as { lastSeq?: number };
    return (host.lastSeq ?? 0) >= seq ? true : undefined;
  });
}

interface Running {
  done: Promise<number>;
  stdout: () => string;
  stderr: () => string;
}

function start(argv: string[]): Running {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: {
      write: (text) => {
        stdout += text;
      },
    },
    stderr: {
      write: (text) => {
        stderr += text;
      },
    },
    env: { FLEETFOLD_API: cloud.endpoints.api, FLEETFOLD_TOKEN: cloud.endpoints.token },
    cwd: REPO,
  };
  return { done: run(argv, io), stdout: () => stdout, stderr: () => stderr };
}

async function cli(argv: string[]) {
  const running = start(argv);
  const code = await running.done;
  return { code, stdout: running.stdout(), stderr: running.stderr() };
}

describe('fleetfold host, history and diff on the embedded cloud', () => {
  it('shows one host: its status, services, config, last seen, and that it was never assigned a state', async () => {
    const { code, stdout, stderr } = await cli(['host', 'cr-1']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^host\s+cr-1$/m);
    expect(stdout).toMatch(/^status\s+running$/m);
    expect(stdout).toMatch(/^last seen\s+\d{4}-\d\d-\d\dT/m);
    expect(stdout).toMatch(/^call-router\s+1\.0\.0\s+running$/m);
    expect(stdout).toMatch(/^sip\.port\s+5060$/m);
    expect(stdout).toMatch(/^drift\s+never assigned a state$/m);
  });

  it('names an unknown host (exit 1)', async () => {
    const { code, stderr } = await cli(['host', 'nobody']);
    expect(code).toBe(1);
    expect(stderr).toContain('host "nobody" not found');
  });

  it('lists the history and compares two hosts, as a table and as YAML equal to the JSON', async () => {
    const history = await cli(['history', 'cr-1']);
    expect(history.code).toBe(0);
    const rows = history.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^VERSION\s+RECORDED\s+TYPE\s+SUMMARY$/);
    expect(rows[1]).toMatch(/^\s*1\s+\S+\s+HostRegistered\s+group demo, type call-router/);
    expect(rows[2]).toMatch(/^\s*2\s+\S+\s+StateObserved\s+seq 1:/);

    const diff = await cli(['diff', 'cr-1', '--with', 'cr-2']);
    expect(diff.stdout).toContain('cr-1 → cr-2: ');
    expect(diff.stdout).toMatch(/^~ \/software\/call-router\/version\s+1\.0\.0 → 1\.1\.0$/m);

    for (const argv of [
      ['history', 'cr-1'],
      ['diff', 'cr-1', '--with', 'cr-2'],
      ['host', 'cr-2'],
    ]) {
      const [json, yaml] = await Promise.all([cli([...argv, '-o', 'json']), cli([...argv, '-o', 'yaml'])]);
      expect(parseYaml(yaml.stdout)).toEqual(JSON.parse(json.stdout));
    }
  });

  it('history --follow prints the event that arrives while it runs, then diff shows the change by version', async () => {
    const following = start(['history', 'cr-1', '--follow', '--count', '1', '--interval', '0.2']);
    await eventually(async () => (following.stdout().includes('StateObserved') ? true : undefined));
    const before = following.stdout();
    await report('cr-1', '1.2.0');
    expect(await following.done).toBe(0);
    expect(following.stderr()).toBe('');
    const added = following.stdout().slice(before.length).trimEnd().split('\n');
    expect(added).toHaveLength(1);
    expect(added[0]).toMatch(
      /^ {6}3 {2}\S+ {2}StateObserved {2}seq 2: \/software\/call-router\/version 1\.0\.0 → 1\.2\.0/,
    );

    const diff = await cli(['diff', 'cr-1', '--from', '2', '--to', '3']);
    expect(diff.code).toBe(0);
    expect(diff.stdout).toContain('cr-1 version 2 → 3: 1 change\n');
    expect(diff.stdout).toMatch(/^~ \/software\/call-router\/version\s+1\.0\.0 → 1\.2\.0$/m);
    const beyond = await cli(['diff', 'cr-1', '--from', '2', '--to', '99']);
    expect(beyond.code).toBe(1);
    expect(beyond.stderr).toContain('no version 99');
  }, 30_000);

  it('events GROUP --follow prints a new definition of the group as it is applied', async () => {
    const applied = await cli(['apply', '-f', 'events/groups/demo-telephony.yaml']);
    expect(applied.stdout).toContain('group demo created');
    const following = start([
      'events',
      'demo',
      '--follow',
      '--count',
      '1',
      '--interval',
      '0.2',
      '-o',
      'json',
    ]);
    await eventually(async () => (following.stdout().includes('GroupDefined') ? true : undefined));
    const definition = parseYaml(await readFile(join(REPO, 'events/groups/demo-telephony.yaml'), 'utf8'));
    definition.hostTypes.media.count = 3;
    const changed = join(scratch, 'demo.json');
    await writeFile(changed, JSON.stringify(definition));
    expect((await cli(['apply', '-f', changed])).stdout).toContain('group demo updated');
    expect(await following.done).toBe(0);
    const events = following
      .stdout()
      .trimEnd()
      .split('\n')
      .map(
        (line) =>
          JSON.parse(line) as {
            type: string;
            version: number;
            data: { definition?: { hostTypes: { media: { count: number } } } };
          },
      );
    expect(events.map((event) => [event.type, event.version])).toEqual([
      ['GroupDefined', 1],
      ['GroupDefined', 2],
    ]);
    expect(events[1]?.data.definition?.hostTypes.media.count).toBe(3);
  }, 30_000);
});
