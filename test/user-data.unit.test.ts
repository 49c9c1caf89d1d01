import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactEntries } from '../agent/package/build-artifact.ts';
import { tarGz } from '../agent/package/tar.ts';
import { ValidationError } from '../shared/errors.ts';
import {
  AGENT_ENV_FILE,
  AGENT_INSTALL_DIR,
  AGENT_NODE_MAJOR,
  AGENT_UNIT,
  agentEnvFile,
  agentEnvironment,
  renderUserData,
  shellQuote,
  type UserDataInput,
} from '../shared/groups/user-data.ts';
import { BOOT_TOOLS, toolbox } from './support/toolbox.ts';

const controlPublicKeyPem = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  .publicKey.export({ type: 'spki', format: 'pem' })
  .toString();

const REPO = resolve(import.meta.dirname, '..');
const REPO_NODE = join(REPO, 'node_modules', 'node', 'bin', 'node');

let dir: string;
let marker: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fleetfold-user-data-'));
  marker = join(dir, 'pwned');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Values that would run a command, end a quote or a line early if any quoting were wrong. */
const hostile = () => [
  `$(touch ${marker})`,
  `\`touch ${marker}\``,
  `'; touch ${marker}; '`,
  `"; touch ${marker}; "`,
  `\\"; touch ${marker} #`,
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${…} the shell must not expand
  '$HOME ${PATH} \\$ \\\\ \\',
  'it\'s "quoted" \t tabbed',
];

function input(overrides: Partial<UserDataInput> = {}): UserDataInput {
  const [a, b, c, d, e, f, g] = hostile();
  return {
    hostId: 'media-1',
    group: a as string,
    hostType: b as string,
    roles: [c as string, d as string],
    bucket: 'fleetfold-snapshots',
    secretRef: e as string,
    agentArtifactUrl: 's3://fleetfold-artifacts/agent/1.0.0.tar.gz',
    controlPublicKeyPem,
    extraEnv: { FLEETFOLD_NOTE: f as string, FLEETFOLD_OTHER: g as string },
    ...overrides,
  };
}

/** Reads an env file back the way a shell does, returning each variable's exact value. */
function readBack(envFile: string, names: readonly string[]): Record<string, string> {
  const file = join(dir, `read-${process.hrtime.bigint()}.env`);
  writeFileSync(file, envFile);
  const script = `set -a; . "$1"; shift; for name in "$@"; do printf '%s\\0' "\${!name}"; done`;
  const output = execFileSync('bash', ['-c', script, 'read', file, ...names], { encoding: 'utf8' });
  const values = output.split('\0').slice(0, -1);
  return Object.fromEntries(names.map((name, index) => [name, values[index] as string]));
}

describe('agentEnvFile', () => {
  it('writes the identity, secret parameter and inbox queue of the host for the agent in EC2 mode', () => {
    const plain = input({
      group: 'voice',
      hostType: 'media',
      roles: ['media', 'rtp'],
      secretRef: '/fleetfold/hosts/media-1/secret',
      extraEnv: {},
    });
    expect(agentEnvFile(plain)).toBe(
      [
        'FLEETFOLD_MODE="ec2"',
        'FLEETFOLD_HOST_ID="media-1"',
        'FLEETFOLD_GROUP="voice"',
        'FLEETFOLD_HOST_TYPE="media"',
        'FLEETFOLD_ROLES="media,rtp"',
        'FLEETFOLD_BUCKET="fleetfold-snapshots"',
        'FLEETFOLD_SECRET_PARAMETER="/fleetfold/hosts/media-1/secret"',
        'FLEETFOLD_INBOX_QUEUE="fleetfold-inbox-media-1"',
        'FLEETFOLD_CONTROL_PUBLIC_KEY_FILE="/etc/fleetfold/control-public.pem"',
        'FLEETFOLD_STATE_DIR="/var/lib/fleetfold"',
        '',
      ].join('\n'),
    );
  });

  it('reads back every hostile value byte for byte and runs none of them', () => {
    const values = input();
    const names = agentEnvironment(values).map(([name]) => name);
    const read = readBack(agentEnvFile(values), names);
    expect(read).toEqual(Object.fromEntries(agentEnvironment(values)));
    expect(read.FLEETFOLD_GROUP).toBe(values.group);
    expect(read.FLEETFOLD_ROLES).toBe(values.roles.join(','));
    expect(existsSync(marker)).toBe(false);
  });

  it('reads back any value without a line break or NUL unchanged', () => {
    const nasty = fc.constantFrom(
      '$',
      '`',
      '"',
      "'",
      '\\',
      ' ',
      '\t',
      '#',
      ';',
      '(',
      ')',
      '*',
      '!',
      '{',
      '}',
      '&',
      '|',
      '<',
      '>',
      '~',
      '\x1b',
      '=',
    );
    const value = fc
      .array(fc.oneof(nasty, fc.string({ unit: 'grapheme', maxLength: 4 })), { maxLength: 20 })
      .map((parts) => parts.join(''))
      .filter((text) => !/[\0\r\n]/.test(text));
    fc.assert(
      fc.property(value, value, (group, secretRef) => {
        const values = input({ group, secretRef, extraEnv: {} });
        const read = readBack(agentEnvFile(values), ['FLEETFOLD_GROUP', 'FLEETFOLD_SECRET_PARAMETER']);
        expect(read).toEqual({ FLEETFOLD_GROUP: group, FLEETFOLD_SECRET_PARAMETER: secretRef });
      }),
      { numRuns: 40 },
    );
  });

  it('rejects values with a line break or NUL, which an EnvironmentFile cannot carry', () => {
    expect(() => agentEnvFile(input({ group: 'a\nFLEETFOLD_MODE=local' }))).toThrow(ValidationError);
    expect(() => agentEnvFile(input({ secretRef: 'a\rb' }))).toThrow(/line break/);
    expect(() => agentEnvFile(input({ hostType: 'a\0b' }))).toThrow(ValidationError);
  });

  it('rejects an extra variable whose name is not an environment variable name', () => {
    expect(() => agentEnvFile(input({ extraEnv: { 'X; rm -rf /': '1' } }))).toThrow(ValidationError);
  });

  it('never lets extra settings override the host identity', () => {
    const values = input({ extraEnv: { FLEETFOLD_HOST_ID: 'someone-else', FLEETFOLD_MODE: 'local' } });
    const read = readBack(agentEnvFile(values), ['FLEETFOLD_HOST_ID', 'FLEETFOLD_MODE']);
    expect(read).toEqual({ FLEETFOLD_HOST_ID: 'media-1', FLEETFOLD_MODE: 'ec2' });
  });
});

describe('renderUserData', () => {
  /** Node 22 (the one running the tests under npm scripts, else the repository's devDependency). */
  const node22 =
    Number(process.versions.node.split('.')[0]) >= AGENT_NODE_MAJOR ? process.execPath : REPO_NODE;

  /**
   * Runs the boot script in a temporary root with the real install.sh, unit and wrapper of the artifact (around
   * a stand-in bundle), on a PATH of only the tools it needs plus `stubs`: stand-ins for the AWS CLI, systemd
   * and whatever Node or package manager the image is to have.
   */
  function boot(name: string, stubs: Record<string, string>) {
    const base = join(dir, name);
    const root = join(base, 'root');
    const bin = join(base, 'bin');
    const calls = join(base, 'calls.log');
    const artifact = join(base, 'artifact.tar.gz');
    toolbox(bin, BOOT_TOOLS);
    const bundle = {
      code: Buffer.from("console.log('agent on', process.version);\n"),
      map: Buffer.from('{}'),
    };
    writeFileSync(artifact, tarGz(artifactEntries(bundle)));
    const log = (command: string) => `printf '${command} %s\\n' "$*" >> ${shellQuote(calls)}`;
    const scripts: Record<string, string> = {
      aws: `${log('aws')}\ncp ${shellQuote(artifact)} "\${@: -1}"`,
      systemctl: log('systemctl'),
      ...stubs,
    };
    for (const [command, body] of Object.entries(scripts)) {
      writeFileSync(
        join(bin, command),
        `#!/bin/bash\n${body.replaceAll('$LOG', log(command)).replaceAll('$BIN', bin)}\n`,
      );
      chmodSync(join(bin, command), 0o755);
    }
    const values = input({ root });
    const scriptFile = join(base, 'user-data.sh');
    writeFileSync(scriptFile, renderUserData(values));
    const run = spawnSync(join(bin, 'bash'), [scriptFile], { env: { PATH: bin }, encoding: 'utf8' });
    const lines = existsSync(calls) ? readFileSync(calls, 'utf8').split('\n').filter(Boolean) : [];
    return { root, bin, values, run, calls: lines };
  }

  const started = [
    'systemctl daemon-reload',
    'systemctl enable fleetfold-agent.service',
    'systemctl restart fleetfold-agent.service',
  ];

  it('installs the agent with its unit from the artifact on the image’s Node, writes the env file, runs no value', () => {
    const { root, bin, values, run, calls } = boot('has-node', {
      node: `exec ${shellQuote(node22)} "$@"`,
      dnf: '$LOG\nexit 1',
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain(`fleetfold boot: Node.js v`);
    expect(run.stdout).toContain(` at ${join(bin, 'node')}\n`);

    expect(existsSync(marker)).toBe(false);
    const envPath = join(root, 'etc', 'fleetfold', 'agent.env');
    expect(readFileSync(envPath, 'utf8')).toBe(agentEnvFile(values));
    expect(statSync(envPath).mode & 0o777).toBe(0o600);
    expect(readBack(readFileSync(envPath, 'utf8'), ['FLEETFOLD_SECRET_PARAMETER'])).toEqual({
      FLEETFOLD_SECRET_PARAMETER: values.secretRef,
    });
    const keyPath = join(root, 'etc', 'fleetfold', 'control-public.pem');
    expect(readFileSync(keyPath, 'utf8')).toBe(controlPublicKeyPem);
    expect(readBack(readFileSync(envPath, 'utf8'), ['FLEETFOLD_CONTROL_PUBLIC_KEY_FILE'])).toEqual({
      FLEETFOLD_CONTROL_PUBLIC_KEY_FILE: keyPath,
    });

    const installed = join(root, AGENT_INSTALL_DIR);
    expect(readlinkSync(join(installed, 'bin', 'node'))).toBe(join(bin, 'node'));
    expect(execFileSync(join(installed, 'bin', 'fleetfold-agent'), { encoding: 'utf8' })).toMatch(
      /^agent on v\d+/,
    );
    const unit = readFileSync(join(root, 'etc', 'systemd', 'system', AGENT_UNIT), 'utf8');
    expect(unit).toBe(readFileSync(join(REPO, 'agent', 'package', AGENT_UNIT), 'utf8'));
    expect(unit).toContain(`\nEnvironmentFile=${AGENT_ENV_FILE}\n`);
    expect(unit).toContain(`\nExecStart=${AGENT_INSTALL_DIR}/bin/fleetfold-agent\n`);
    expect(calls).toEqual([
      expect.stringMatching(
        /^aws s3 cp --only-show-errors s3:\/\/fleetfold-artifacts\/agent\/1\.0\.0\.tar\.gz \S+$/,
      ),
      ...started,
    ]);
  });

  it('installs the distribution’s nodejs22 when the image’s Node is too old, and runs the agent on it', () => {
    const { root, bin, run, calls } = boot('old-node', {
      node: '[ "$1" = --version ] && { echo v20.19.0; exit 0; }\nexit 1',
      // What Amazon Linux 2023's package provides: a versioned binary (node-22) beside the alternatives link.
      dnf: `$LOG\nln -s ${shellQuote(node22)} "$BIN/node-22"`,
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(calls[0]).toBe(`dnf install -y nodejs${AGENT_NODE_MAJOR}`);
    expect(calls.slice(2)).toEqual(started);
    const installed = join(root, AGENT_INSTALL_DIR);
    expect(readlinkSync(join(installed, 'bin', 'node'))).toBe(join(bin, 'node-22'));
    expect(execFileSync(join(installed, 'bin', 'fleetfold-agent'), { encoding: 'utf8' })).toMatch(
      /^agent on v22\./,
    );
  });

  it('fails the boot, saying why, when no Node.js >= 22 can be had, before installing anything', () => {
    const failed = boot('no-node', { dnf: '$LOG\nexit 1' });
    expect(failed.run.status).toBe(1);
    expect(failed.run.stderr).toContain(`fleetfold boot: dnf install nodejs${AGENT_NODE_MAJOR} failed`);
    expect(failed.calls).toEqual([`dnf install -y nodejs${AGENT_NODE_MAJOR}`]);
    expect(existsSync(join(failed.root, AGENT_INSTALL_DIR))).toBe(false);

    const stale = boot('stale-node', {
      dnf: '$LOG',
      node: '[ "$1" = --version ] && { echo v18.20.0; exit 0; }\nexit 1',
    });
    expect(stale.run.status).toBe(1);
    expect(stale.run.stderr).toContain(`Node.js is older than ${AGENT_NODE_MAJOR}`);

    const bare = boot('no-package-manager', {});
    expect(bare.run.status).toBe(1);
    expect(bare.run.stderr).toContain('neither dnf nor apt-get');
    expect(bare.calls).toEqual([]);
  });

  it('writes to the machine root by default and stops at the first failing step', () => {
    const script = renderUserData(input());
    expect(script).toMatch(/^#!\/bin\/bash\n/);
    expect(script).toContain('\nset -euo pipefail\n');
    expect(script).toContain("> '/etc/fleetfold/agent.env'");
    // The artifact's install.sh writes the unit; a boot at the machine root passes it no prefix.
    expect(script).toContain('\nFLEETFOLD_NODE="$node" "$artifact/install.sh"\n');
    expect(script).not.toContain('FLEETFOLD_ROOT');
    expect(script).not.toContain('<<');
  });

  it('rejects a control plane key that is not a PEM public key', () => {
    expect(() => renderUserData(input({ controlPublicKeyPem: "'; touch /tmp/x; '" }))).toThrow(
      ValidationError,
    );
    expect(() => renderUserData(input({ controlPublicKeyPem: `${controlPublicKeyPem}$(reboot)` }))).toThrow(
      ValidationError,
    );
  });

  it('rejects an agent artifact URL that is not s3://bucket/key', () => {
    expect(() => renderUserData(input({ agentArtifactUrl: 'https://example.com/agent.tgz' }))).toThrow(
      ValidationError,
    );
    expect(() => renderUserData(input({ agentArtifactUrl: 's3://bucket/a b' }))).toThrow(ValidationError);
  });
});
