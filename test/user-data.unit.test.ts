import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.ts';
import {
  agentEnvFile,
  agentEnvironment,
  renderUserData,
  shellQuote,
  type UserDataInput,
} from '../shared/groups/user-data.ts';

const controlPublicKeyPem = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  .publicKey.export({ type: 'spki', format: 'pem' })
  .toString();

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
  it('installs the agent from its artifact, writes the env file and unit, and starts the agent, running no value', () => {
    // Stand-ins for the AWS CLI and systemd, the only commands the script needs that a test machine lacks.
    const root = join(dir, 'root');
    const stubs = join(dir, 'stubs');
    const calls = join(dir, 'calls.log');
    const artifact = join(dir, 'artifact.tar.gz');
    mkdirSync(join(dir, 'artifact', 'bin'), { recursive: true });
    writeFileSync(join(dir, 'artifact', 'bin', 'fleetfold-agent'), '#!/bin/sh\necho agent\n');
    execFileSync('tar', ['-czf', artifact, '-C', join(dir, 'artifact'), 'bin']);
    mkdirSync(stubs, { recursive: true });
    writeFileSync(
      join(stubs, 'aws'),
      `#!/bin/bash\nprintf 'aws %s\\n' "$*" >> ${shellQuote(calls)}\ncp ${shellQuote(artifact)} "\${@: -1}"\n`,
    );
    writeFileSync(
      join(stubs, 'systemctl'),
      `#!/bin/bash\nprintf 'systemctl %s\\n' "$*" >> ${shellQuote(calls)}\n`,
    );
    chmodSync(join(stubs, 'aws'), 0o755);
    chmodSync(join(stubs, 'systemctl'), 0o755);

    const values = input({ root });
    const script = renderUserData(values);
    const scriptFile = join(dir, 'user-data.sh');
    writeFileSync(scriptFile, script);
    execFileSync('bash', [scriptFile], { env: { ...process.env, PATH: `${stubs}:${process.env.PATH}` } });

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
    const agent = join(root, 'opt', 'fleetfold', 'agent', 'bin', 'fleetfold-agent');
    expect(execFileSync(agent, { encoding: 'utf8' })).toBe('agent\n');
    const unit = readFileSync(join(root, 'etc', 'systemd', 'system', 'fleetfold-agent.service'), 'utf8');
    expect(unit).toContain(`EnvironmentFile=${root}/etc/fleetfold/agent.env\n`);
    expect(unit).toContain(`ExecStart=${agent}\n`);
    expect(unit).toContain('Restart=always\n');
    expect(readFileSync(calls, 'utf8').split('\n').filter(Boolean)).toEqual([
      expect.stringMatching(
        /^aws s3 cp --only-show-errors s3:\/\/fleetfold-artifacts\/agent\/1\.0\.0\.tar\.gz \S+$/,
      ),
      'systemctl daemon-reload',
      'systemctl enable --now fleetfold-agent.service',
    ]);
  });

  it('writes to the machine root by default and stops at the first failing step', () => {
    const script = renderUserData(input());
    expect(script).toMatch(/^#!\/bin\/bash\n/);
    expect(script).toContain('\nset -euo pipefail\n');
    expect(script).toContain("> '/etc/fleetfold/agent.env'");
    expect(script).toContain("> '/etc/systemd/system/fleetfold-agent.service'");
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
