import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `FLEETFOLD_STATE_DIR` when set, else `.fleetfold/` in the repository root (not the cwd, so it is one place). */
export function resolveStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.FLEETFOLD_STATE_DIR;
  return fromEnv ? resolve(fromEnv) : join(REPO_ROOT, '.fleetfold');
}

export function repoRoot(): string {
  return REPO_ROOT;
}

/** Where each piece of local state lives, so every module agrees on the layout. */
export function statePaths(stateDir: string) {
  return {
    root: stateDir,
    dynamodb: join(stateDir, 'dynamodb'),
    /** fauxqs writes `fauxqs.db` (SQLite) inside this folder. */
    sqs: join(stateDir, 'sqs'),
    s3: join(stateDir, 's3'),
    token: join(stateDir, 'token'),
    masterKey: join(stateDir, 'master.key'),
    endpoints: join(stateDir, 'endpoints.json'),
    hostSecrets: join(stateDir, 'hosts'),
    agents: join(stateDir, 'agents'),
    /** The control plane's ECDSA key that signs desired states (agents get `<file>.pub`). */
    stateSigningKey: join(stateDir, 'state-signing.pem'),
    /** The RSA key that signs hosts' CloudFront upload policies (the CDN stand-in trusts its public half). */
    uploadSigningKey: join(stateDir, 'upload-signing.pem'),
  };
}

/**
 * Reads a secret file, creating it with `create()` (mode 0600) when missing. `wx` makes the creation atomic,
 * so two processes starting together end up with the same secret.
 */
export async function readOrCreateSecret(path: string, create: () => string = randomToken): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await writeFile(path, `${create()}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  // The umask may have widened the mode at creation.
  await chmod(path, 0o600);
  return (await readFile(path, 'utf8')).trim();
}

export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}
