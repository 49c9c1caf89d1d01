import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A folder of links to just the named commands, to use as a script's whole PATH: what the script may run is
 * then exactly what a test says (no stray `node`, package manager or AWS CLI of the machine running it).
 */
export function toolbox(dir: string, tools: readonly string[]): string {
  mkdirSync(dir, { recursive: true });
  for (const tool of tools) {
    const found = execFileSync('bash', ['-c', 'command -v "$1"', 'which', tool], { encoding: 'utf8' }).trim();
    symlinkSync(found, join(dir, tool));
  }
  return dir;
}

/** What the boot script and the artifact's install.sh run, besides aws, systemctl, node and a package manager. */
export const BOOT_TOOLS = [
  'bash',
  'sh',
  'install',
  'chmod',
  'mktemp',
  'tar',
  'gzip',
  'rm',
  'mv',
  'ln',
  'readlink',
  'dirname',
  'cp',
] as const;
