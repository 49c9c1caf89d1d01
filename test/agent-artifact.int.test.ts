import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, parse, resolve } from 'node:path';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGENT_BUNDLE_FILE,
  type AgentArtifact,
  buildAgentArtifact,
} from '../agent/package/build-artifact.ts';
import type { LocalCloud } from '../infra/local/cloud.ts';
import { LocalFleet } from '../infra/local/local-fleet.ts';
import { LocalStateSigner } from '../shared/adapters/local-state-signer.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import {
  AGENT_ENV_FILE,
  AGENT_INSTALL_DIR,
  AGENT_NODE_MAJOR,
  AGENT_UNIT,
  shellQuote,
} from '../shared/groups/user-data.ts';
import { signEnvelope } from '../shared/state-envelope.ts';
import { apiEvent, eventually, registerHost, testCloud } from './support/cloud.ts';
import { FakeImds } from './support/fake-imds.ts';
import { BOOT_TOOLS, toolbox } from './support/toolbox.ts';

/*
 * The artifact EC2 hosts install, proven complete: built, unpacked and installed (by its own install.sh, into a
 * temporary root) far from this repository, then run in EC2 mode (instance metadata from a stand-in) against
 * the embedded cloud until its snapshots are ingested and a signed desired state reaches its apply hook.
 */

const REPO = resolve(import.meta.dirname, '..');
/** A bare Node 22 binary: the runtime the boot script would have installed, without the repo's node_modules. */
const NODE = join(REPO, 'node_modules', 'node', 'bin', 'node');
const HOST = 'artifact-1';

let work: string;
let root: string;
let unpacked: string;
let artifact: AgentArtifact;
let systemctlCalls: string;
let cloud: LocalCloud;
let imds: FakeImds;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fleetfold-artifact-'));
  artifact = buildAgentArtifact(join(work, 'dist'));
  unpacked = join(work, 'unpacked');
  mkdirSync(unpacked);
  execFileSync('tar', ['-xzf', artifact.file, '-C', unpacked]);

  // install.sh as the boot script runs it, with systemctl a stand-in that records its calls.
  root = join(work, 'root');
  const stubs = toolbox(join(work, 'stubs'), BOOT_TOOLS);
  systemctlCalls = join(work, 'systemctl.log');
  writeFileSync(
    join(stubs, 'systemctl'),
    `#!/bin/sh\nprintf 'systemctl %s\\n' "$*" >> ${shellQuote(systemctlCalls)}\n`,
  );
  chmodSync(join(stubs, 'systemctl'), 0o755);
  execFileSync(join(unpacked, 'install.sh'), {
    env: { PATH: stubs, FLEETFOLD_ROOT: root, FLEETFOLD_NODE: NODE },
  });

  [cloud, imds] = await Promise.all([testCloud(), Promise.resolve(new FakeImds())]);
  await new Promise<void>((done) => imds.server.listen(0, '127.0.0.1', done));
  imds.metadata = new Map([
    ['meta-data/local-ipv4', '10.0.1.17'],
    ['meta-data/instance-type', 'c7g.large'],
    ['meta-data/placement/region', cloud.endpoints.region],
  ]);
}, 120_000);

afterAll(async () => {
  await cloud?.stop();
  if (imds) await new Promise((done) => imds.server.close(done));
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the agent artifact', () => {
  it('holds one bundle, its source map, the wrapper, the unit, install.sh and a manifest, and no node_modules', () => {
    const entries = execFileSync('tar', ['-tzf', artifact.file], { encoding: 'utf8' }).trim().split('\n');
    expect(entries.sort()).toEqual(
      [
        'bin/',
        'bin/fleetfold-agent',
        'lib/',
        `lib/${AGENT_BUNDLE_FILE}`,
        `lib/${AGENT_BUNDLE_FILE}.map`,
        AGENT_UNIT,
        'install.sh',
        'manifest.json',
      ].sort(),
    );
    const bundle = join(unpacked, 'lib', AGENT_BUNDLE_FILE);
    expect(statSync(bundle).size).toBe(artifact.bundleBytes);
    // esbuild parses the bundle again, far from any node_modules: every import left in it (static, dynamic or
    // require) must be one of Node's own modules, or resolving it fails here.
    const { metafile } = buildSync({
      entryPoints: [bundle],
      absWorkingDir: unpacked,
      bundle: true,
      platform: 'node',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const imports = Object.values(metafile.inputs).flatMap((input) => input.imports);
    expect(imports.length).toBeGreaterThan(0);
    for (const { path, external } of imports) {
      expect(external, path).toBe(true);
      expect(builtinModules).toContain(path.replace(/^node:/, ''));
    }
    expect(JSON.parse(readFileSync(join(unpacked, 'manifest.json'), 'utf8'))).toMatchObject({
      name: 'fleetfold-agent',
      node: `>=${AGENT_NODE_MAJOR}`,
    });
  });

  it('is the same bytes when built again from the same sources', () => {
    const again = buildAgentArtifact(join(work, 'again'));
    expect(again.sha256).toBe(artifact.sha256);
    expect(readFileSync(again.file).equals(readFileSync(artifact.file))).toBe(true);
  });

  it('installs under the boot script’s paths, linked to the Node it was given, and (re)starts the unit', () => {
    const installed = join(root, AGENT_INSTALL_DIR);
    expect(readdirSync(installed).sort()).toEqual(['bin', 'lib', 'manifest.json']);
    expect(statSync(join(installed, 'bin', 'fleetfold-agent')).mode & 0o777).toBe(0o755);
    expect(readlinkSync(join(installed, 'bin', 'node'))).toBe(NODE);
    const unit = readFileSync(join(root, 'etc', 'systemd', 'system', AGENT_UNIT), 'utf8');
    expect(unit).toBe(readFileSync(join(unpacked, AGENT_UNIT), 'utf8'));
    expect(unit).toContain(`\nEnvironmentFile=${AGENT_ENV_FILE}\n`);
    expect(unit).toContain(`\nExecStart=${AGENT_INSTALL_DIR}/bin/fleetfold-agent\n`);
    expect(unit).toContain('\nRestart=always\n');
    expect(readFileSync(systemctlCalls, 'utf8').trim().split('\n')).toEqual([
      'systemctl daemon-reload',
      `systemctl enable ${AGENT_UNIT}`,
      `systemctl restart ${AGENT_UNIT}`,
    ]);
  });

  it('refuses to install onto a Node older than the bundle targets, naming it', () => {
    const old = join(work, 'old-node');
    writeFileSync(old, '#!/bin/sh\n[ "$1" = --version ] && { echo v20.0.0; exit 0; }\nexit 1\n');
    chmodSync(old, 0o755);
    let message = '';
    try {
      execFileSync(join(unpacked, 'install.sh'), {
        env: { PATH: join(work, 'stubs'), FLEETFOLD_ROOT: join(work, 'other-root'), FLEETFOLD_NODE: old },
        stdio: 'pipe',
      });
    } catch (error) {
      message = String((error as { stderr: Buffer }).stderr);
    }
    expect(message).toContain(`${old} is Node.js v20.0.0; the agent needs >= ${AGENT_NODE_MAJOR}`);
    expect(existsSync(join(work, 'other-root'))).toBe(false);
  });

  it('runs from the install in EC2 mode until the cloud ingests its snapshots and applies a signed state', async () => {
    // Nothing between the install and / holds a node_modules the bundle could lean on.
    for (let dir = join(root, AGENT_INSTALL_DIR); dir !== parse(dir).root; dir = dirname(dir)) {
      expect(existsSync(join(dir, 'node_modules')), dir).toBe(false);
    }
    const secret = await registerHost(cloud, HOST, 'media', 'voice');
    const secretFile = join(work, 'secret');
    writeFileSync(secretFile, secret, { mode: 0o600 });
    const signer = await LocalStateSigner.fromKeyFile(join(work, 'control.pem'));
    const queue = `fleetfold-inbox-${HOST}`;
    cloud.emulators.fauxqs.createQueue(queue, { region: cloud.endpoints.region });
    const queueUrl = `${cloud.endpoints.sqs}/000000000000/${queue}`;
    const hooks = join(work, 'hooks.log');

    const output: string[] = [];
    const fleet = new LocalFleet({
      bucket: cloud.endpoints.bucket,
      s3Endpoint: cloud.endpoints.s3,
      region: cloud.endpoints.region,
      agentsDir: join(work, 'agents'),
      pollSeconds: 0.5,
      command: { executable: join(root, AGENT_INSTALL_DIR, 'bin', 'fleetfold-agent'), args: [], cwd: work },
      onOutput: (_hostId, line) => output.push(line),
    });
    const host = await hostView().catch(() => undefined);
    expect(host?.lastSeq ?? 0).toBe(0);
    fleet.launch({
      hostId: HOST,
      group: 'voice',
      hostType: 'media',
      roles: ['media'],
      services: {},
      secretFile,
      env: {
        // What /etc/fleetfold/agent.env gives an EC2 host, pointed at the embedded cloud and the stand-in IMDS.
        FLEETFOLD_MODE: 'ec2',
        FLEETFOLD_IMDS_URL: imds.url,
        FLEETFOLD_INBOX_QUEUE_URL: queueUrl,
        FLEETFOLD_SQS_ENDPOINT: cloud.endpoints.sqs,
        FLEETFOLD_CONTROL_PUBLIC_KEY_FILE: `${join(work, 'control.pem')}.pub`,
        FLEETFOLD_APPLY_COMMAND: `printf '%s %s %s\\n' "$FLEETFOLD_ACTION" "$FLEETFOLD_SERVICE" "$FLEETFOLD_SERVICE_VERSION" >> ${shellQuote(hooks)}`,
        // The default credential chain's first link, as the instance role would be on EC2.
        AWS_ACCESS_KEY_ID: 'fleetfold-local',
        AWS_SECRET_ACCESS_KEY: 'fleetfold-local',
        // No way back to the repository: no tsx, no node_modules, not even a `node` on the PATH.
        PATH: toolbox(join(work, 'agent-path'), ['readlink', 'dirname']),
        NODE_PATH: '',
        NODE_OPTIONS: '',
      },
    });
    const failWithOutput = (error: Error) => {
      throw new Error(`${error.message}; the agent said:\n${output.join('\n')}`);
    };
    try {
      const first = await eventually(async () => {
        const view = await hostView();
        return view && view.lastSeq >= 1 ? view : undefined;
      }, 30_000).catch(failWithOutput);
      expect(first.state?.hostType).toBe('media');

      const state: DesiredHostState = {
        hostId: HOST,
        group: 'voice',
        hostType: 'media',
        stateVersion: 1,
        services: { media: { version: '2.2.0' } },
        config: {},
        mode: 'running',
      };
      const envelope = await signEnvelope(signer, { state }, new Date());
      await cloud.clients.sqs.send(
        new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(envelope) }),
      );
      const applied = await eventually(async () => {
        const view = await hostView();
        return view?.state?.appliedStateVersion === 1 ? view : undefined;
      }, 30_000).catch(failWithOutput);
      expect(applied.lastSeq).toBeGreaterThan(first.lastSeq);
      expect(readFileSync(hooks, 'utf8')).toBe('start media 2.2.0\n');
    } finally {
      const exit = await fleet.stop(HOST);
      // SIGTERM reached Node through the wrapper's exec: the agent flushed and ended cleanly.
      expect(exit, output.join('\n')).toEqual({ code: 0, signal: null, requested: true });
    }
  });
});

async function hostView(): Promise<{ lastSeq: number; state?: Record<string, unknown> } | undefined> {
  const response = await cloud.apiHandler(apiEvent('GET', `/hosts/${HOST}`));
  if (response.statusCode === 404) return undefined;
  if (response.statusCode !== 200)
    throw new Error(`GET /hosts/${HOST}: ${response.statusCode} ${response.body}`);
  return JSON.parse(response.body);
}
