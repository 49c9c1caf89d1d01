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
}

export function defaultSleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}
