import { readFileSync } from 'node:fs';

/*
 * `npm start` runs npm → sh → tsx → this process. A SIGTERM sent to npm reaches sh, which dies without
 * passing it on, and would leave tsx and this process (with everything it started) running unattended.
 * So the chain is watched: when this process's parent, or the parent's parent, is reparented away, the
 * launcher is gone and `onGone` runs. Linux only (/proc); elsewhere it watches nothing.
 */

function parentOf(pid: number): number | undefined {
  try {
    // The command name (field 2) is parenthesised and may contain spaces: read after its closing bracket.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[1]);
  } catch {
    return undefined;
  }
}

export function watchLauncher(onGone: () => void, intervalMs = 1000): () => void {
  const parent = process.ppid;
  const grandparent = parentOf(parent);
  if (grandparent === undefined) return () => {};
  const timer = setInterval(() => {
    if (process.ppid !== parent || parentOf(parent) !== grandparent) {
      clearInterval(timer);
      onGone();
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
