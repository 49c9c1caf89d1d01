/** Where the CLI writes. `isTTY` and `columns` decide whether a progress bar redraws in place. */
export interface Writer {
  write(text: string): void;
  isTTY?: boolean;
  columns?: number;
}

/**
 * Everything the CLI takes from its process, so `run` can be driven in-process by tests and other tools:
 * nothing in cli/ reads `process` directly except the launcher.
 */
export interface CliIo {
  stdout: Writer;
  stderr: Writer;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Defaults to a real timer; `rollout status --watch` waits with it between polls. */
  sleep?: (milliseconds: number) => Promise<void>;
  /** Ends `--follow` and `hosts --watch` when it aborts (tests, embedding); the launcher leaves Ctrl-C to the shell. */
  signal?: AbortSignal;
}

export function defaultSleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

/** Waits between polls; false when the io's signal aborted (before or during the wait): time to stop. */
export async function pause(io: CliIo, milliseconds: number): Promise<boolean> {
  const { signal } = io;
  if (signal?.aborted) return false;
  const sleep = io.sleep ?? defaultSleep;
  if (signal === undefined) {
    await sleep(milliseconds);
    return true;
  }
  let onAbort = () => {};
  const aborted = new Promise<void>((resolve) => {
    onAbort = resolve;
    signal.addEventListener('abort', onAbort, { once: true });
  });
  await Promise.race([sleep(milliseconds), aborted]);
  signal.removeEventListener('abort', onAbort);
  return !signal.aborted;
}

/**
 * Runs `step` every `intervalMs` (first after one interval) until it says "stop" or the io's signal aborts:
 * the one poll loop of `--follow` and `--watch`.
 */
export async function pollEvery(
  io: CliIo,
  intervalMs: number,
  step: () => Promise<'stop' | undefined>,
): Promise<void> {
  while (await pause(io, intervalMs)) {
    if ((await step()) === 'stop') return;
  }
}

/**
 * `--watch` of a table: draws it again every interval when it changed — on a terminal in place of the last one
 * (screen cleared, a line saying when), elsewhere appended after a blank line, so a log keeps each.
 */
export async function redrawOnChange(
  io: CliIo,
  intervalMs: number,
  first: string,
  draw: () => Promise<string>,
): Promise<void> {
  let last = first;
  await pollEvery(io, intervalMs, async () => {
    const table = await draw();
    if (table === last) return undefined;
    last = table;
    const at = new Date().toISOString();
    io.stdout.write(
      io.stdout.isTTY
        ? `\x1b[H\x1b[2J${at}  (every ${intervalMs / 1000} s, Ctrl-C stops)\n${table}`
        : `\n${table}`,
    );
    return undefined;
  });
}
