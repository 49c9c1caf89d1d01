import type { CliIo } from '../../cli/io.ts';

/** A CliIo whose output is kept; `sleeps` polls are let through, the next one ends a --watch by throwing. */
export function captureIo(env: CliIo['env'], cwd: string, options: { sleeps?: number } = {}) {
  let out = '';
  let err = '';
  let sleeps = 0;
  const io: CliIo = {
    stdout: {
      write: (text) => {
        out += text;
      },
    },
    stderr: {
      write: (text) => {
        err += text;
      },
    },
    env,
    cwd,
    sleep: async () => {
      sleeps += 1;
      if (sleeps > (options.sleeps ?? 0)) throw new Error('interrupted');
    },
  };
  return { io, out: () => out, err: () => err };
}
