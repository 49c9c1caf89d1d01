/**
 * The boot script of an EC2 host: it writes the agent's identity, makes sure a Node.js >= AGENT_NODE_MAJOR is
 * there (installing the distribution's package when the image has none), and hands the agent artifact's own
 * install.sh the rest: files under /opt/fleetfold/agent, the systemd unit, starting it. Pure: the EC2 fleet
 * adapter base64-encodes the result into RunInstances' UserData.
 *
 * The artifact (agent/package/build-artifact.ts) is a tar.gz of the bundled agent, `bin/fleetfold-agent`, the
 * unit and install.sh, so any Linux AMI with systemd, tar and the AWS CLI runs it; Amazon Linux 2023 (the
 * stack's default image) has all three and packages Node.js 22 as `nodejs22`.
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
/** The Node.js major the agent bundle targets and the boot script insists on. */
export const AGENT_NODE_MAJOR = 22;
/** Where a Node.js may already be, best first: Amazon Linux's versioned names (stable), then the default. */
const NODE_CANDIDATES = ['node-24', `node-${AGENT_NODE_MAJOR}`, 'node'];

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
    ...nodeRuntimeSteps(),
    'artifact="$(mktemp -d)"',
    `aws s3 cp --only-show-errors ${shellQuote(input.agentArtifactUrl)} "$artifact/agent.tar.gz"`,
    'tar -xzf "$artifact/agent.tar.gz" -C "$artifact"',
    // install.sh puts the agent in AGENT_INSTALL_DIR, the unit (AGENT_UNIT) in /etc/systemd/system, starts it.
    `${root ? `FLEETFOLD_ROOT=${shellQuote(root)} ` : ''}FLEETFOLD_NODE="$node" "$artifact/install.sh"`,
    'rm -rf "$artifact"',
    '',
  ].join('\n');
}

/**
 * Sets `$node` to a Node.js >= AGENT_NODE_MAJOR: the image's, else the one `dnf install nodejs22` (Amazon Linux
 * 2023) or `apt-get install nodejs` brings; otherwise the boot fails, saying what it found and tried.
 */
function nodeRuntimeSteps(): string[] {
  const major = AGENT_NODE_MAJOR;
  const fail = (why: string) => `{ echo ${shellQuote(`fleetfold boot: ${why}`)} >&2; exit 1; }`;
  return [
    `node_ok() { "$1" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= ${major} ? 0 : 1)' 2>/dev/null; }`,
    `find_node() { local name found; for name in ${NODE_CANDIDATES.join(' ')}; do found="$(command -v "$name")" && node_ok "$found" && { printf '%s' "$found"; return 0; }; done; return 1; }`,
    'if ! node="$(find_node)"; then',
    '  if command -v dnf >/dev/null; then',
    `    dnf install -y nodejs${major} || ${fail(`dnf install nodejs${major} failed`)}`,
    '  elif command -v apt-get >/dev/null; then',
    `    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs; } || ${fail('apt-get install nodejs failed')}`,
    '  else',
    `    ${fail(`no Node.js >= ${major} on this image and neither dnf nor apt-get to install one; use an image with Node.js >= ${major} (e.g. Amazon Linux 2023)`)}`,
    '  fi',
    `  node="$(find_node)" || ${fail(`the distribution's Node.js is older than ${major}: use an image with Node.js >= ${major} (e.g. Amazon Linux 2023)`)}`,
    'fi',
    'echo "fleetfold boot: Node.js $("$node" --version) at $node"',
  ];
}

/** POSIX single quoting: the only character needing care inside '…' is the quote itself. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
