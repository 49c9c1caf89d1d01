/**
 * The boot script of an EC2 host: it writes the agent's identity, installs the agent and starts it under
 * systemd. Pure: the EC2 fleet adapter base64-encodes the result into RunInstances' UserData.
 *
 * The agent artifact is a tar.gz holding an executable `bin/fleetfold-agent` that needs nothing from the
 * image beyond a shell (e.g. a Node single-executable application, or Node plus the bundled agent), so any
 * Linux AMI with systemd and the AWS CLI (Amazon Linux 2023 has both) can run it.
 */
import { ValidationError } from '../errors.ts';

export interface UserDataInput {
  hostId: string;
  group: string;
  hostType: string;
  roles: readonly string[];
  /** The snapshot bucket the agent uploads to. */
  bucket: string;
  /** SSM SecureString parameter holding the host's HMAC secret; the agent reads it at boot, so it never sits in user data. */
  secretRef: string;
  /** `s3://bucket/key.tar.gz` of the agent artifact. */
  agentArtifactUrl: string;
  /** PEM of the control plane's ECDSA P-256 public key: the agent applies only states signed with it. */
  controlPublicKeyPem: string;
  /** Extra agent settings (e.g. FLEETFOLD_HEARTBEAT_SECONDS); the identity above cannot be overridden. */
  extraEnv?: Readonly<Record<string, string>>;
  /**
   * Prefix of every path the script writes.
   * @default '' (the machine's own root)
   */
  root?: string;
}

export const AGENT_UNIT = 'fleetfold-agent.service';
export const AGENT_ENV_FILE = '/etc/fleetfold/agent.env';
export const CONTROL_PUBLIC_KEY_FILE = '/etc/fleetfold/control-public.pem';
export const AGENT_INSTALL_DIR = '/opt/fleetfold/agent';
export const AGENT_STATE_DIR = '/var/lib/fleetfold';

export function inboxQueueName(hostId: string): string {
  return `fleetfold-inbox-${hostId}`;
}

/** The agent's environment, in the order it is written. */
export function agentEnvironment(input: UserDataInput): [string, string][] {
  const identity: [string, string][] = [
    ['FLEETFOLD_MODE', 'ec2'],
    ['FLEETFOLD_HOST_ID', input.hostId],
    ['FLEETFOLD_GROUP', input.group],
    ['FLEETFOLD_HOST_TYPE', input.hostType],
    ['FLEETFOLD_ROLES', input.roles.join(',')],
    ['FLEETFOLD_BUCKET', input.bucket],
    ['FLEETFOLD_SECRET_PARAMETER', input.secretRef],
    ['FLEETFOLD_INBOX_QUEUE', inboxQueueName(input.hostId)],
    ['FLEETFOLD_CONTROL_PUBLIC_KEY_FILE', `${input.root ?? ''}${CONTROL_PUBLIC_KEY_FILE}`],
    ['FLEETFOLD_STATE_DIR', AGENT_STATE_DIR],
  ];
  const fixed = new Set(identity.map(([name]) => name));
  const extra = Object.entries(input.extraEnv ?? {}).filter(([name]) => !fixed.has(name));
  const entries = [...identity, ...extra];
  for (const [name, value] of entries) {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) {
      throw new ValidationError(`agent environment variable name "${name}" is not valid`, { name });
    }
    // systemd's EnvironmentFile ends a value at a newline whatever the quoting; a NUL cannot be passed at all.
    if (/[\0\r\n]/.test(value)) {
      throw new ValidationError(`${name} contains a line break or NUL`, { name });
    }
  }
  return entries;
}

/**
 * `/etc/fleetfold/agent.env`: one `NAME="value"` per line, which systemd's EnvironmentFile and a POSIX shell
 * both read back byte for byte.
 */
export function agentEnvFile(input: UserDataInput): string {
  return agentEnvironment(input)
    .map(([name, value]) => `${name}=${envFileQuote(value)}\n`)
    .join('');
}

/**
 * Double quotes, because systemd does not join shell-style `'a'\''b'` segments; inside "…" it and the shell
 * agree that a backslash escapes exactly `\ " $` and backquote.
 */
export function envFileQuote(value: string): string {
  return `"${value.replace(/[\\"$`]/g, '\\$&')}"`;
}

export function agentUnit(root = ''): string {
  return [
    '[Unit]',
    'Description=fleetfold host agent',
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    `EnvironmentFile=${root}${AGENT_ENV_FILE}`,
    `ExecStart=${root}${AGENT_INSTALL_DIR}/bin/fleetfold-agent`,
    // A crashed agent comes back by itself; a crashed machine is the control plane's to replace.
    'Restart=always',
    'RestartSec=5',
    'StateDirectory=fleetfold',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/**
 * Every value reaches the script through `shellQuote` only, and file contents are written with `printf '%s'`
 * (never a here-document, whose end marker a value could forge), so no value can run as a command.
 */
export function renderUserData(input: UserDataInput): string {
  if (
    !/^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n?$/.test(
      input.controlPublicKeyPem,
    )
  ) {
    throw new ValidationError('the control plane public key is not a PEM public key');
  }
  if (!/^s3:\/\/[^/\s]+\/\S+$/.test(input.agentArtifactUrl)) {
    throw new ValidationError(
      `agent artifact URL "${input.agentArtifactUrl}" is not an s3://bucket/key URL`,
      { agentArtifactUrl: input.agentArtifactUrl },
    );
  }
  const root = input.root ?? '';
  const path = (absolute: string) => shellQuote(`${root}${absolute}`);
  const envFile = agentEnvFile(input);
  const unitPath = `/etc/systemd/system/${AGENT_UNIT}`;
  return [
    '#!/bin/bash',
    '# fleetfold host boot: identity, agent, systemd unit.',
    'set -euo pipefail',
    'umask 077',
    `install -d -m 0700 ${path('/etc/fleetfold')}`,
    `printf '%s' ${shellQuote(envFile)} > ${path(AGENT_ENV_FILE)}`,
    `chmod 0600 ${path(AGENT_ENV_FILE)}`,
    `printf '%s' ${shellQuote(input.controlPublicKeyPem)} > ${path(CONTROL_PUBLIC_KEY_FILE)}`,
    `chmod 0644 ${path(CONTROL_PUBLIC_KEY_FILE)}`,
    'artifact="$(mktemp)"',
    `aws s3 cp --only-show-errors ${shellQuote(input.agentArtifactUrl)} "$artifact"`,
    `install -d -m 0755 ${path(AGENT_INSTALL_DIR)}`,
    `tar -xzf "$artifact" -C ${path(AGENT_INSTALL_DIR)}`,
    'rm -f "$artifact"',
    `chmod 0755 ${path(`${AGENT_INSTALL_DIR}/bin/fleetfold-agent`)}`,
    `install -d -m 0755 ${path('/etc/systemd/system')}`,
    `printf '%s' ${shellQuote(agentUnit(root))} > ${path(unitPath)}`,
    `chmod 0644 ${path(unitPath)}`,
    'systemctl daemon-reload',
    `systemctl enable --now ${AGENT_UNIT}`,
    '',
  ].join('\n');
}

/** POSIX single quoting: the only character needing care inside '…' is the quote itself. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
