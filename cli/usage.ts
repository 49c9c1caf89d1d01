import { type ParseArgsConfig, parseArgs } from 'node:util';

/** The command line is wrong: exit code 2, with the command's usage. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly command: string | undefined;

  constructor(message: string, command?: string) {
    super(message);
    this.command = command;
  }
}

export type OptionSpecs = NonNullable<ParseArgsConfig['options']>;

/**
 * Options every command takes: where the API is, how to authenticate, how long to wait for it, whether to
 * colour, and the help flag.
 */
export const CONNECTION_OPTIONS = {
  api: { type: 'string' },
  token: { type: 'string' },
  timeout: { type: 'string' },
  'no-color': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpecs;

/** Read commands also choose a representation. */
export const OUTPUT_OPTIONS = {
  ...CONNECTION_OPTIONS,
  output: { type: 'string', short: 'o' },
} as const satisfies OptionSpecs;

export const OUTPUT_FORMATS = ['table', 'json', 'yaml', 'xml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function outputFormat(value: string | undefined, command: string): OutputFormat {
  if (value === undefined) return 'table';
  if ((OUTPUT_FORMATS as readonly string[]).includes(value)) return value as OutputFormat;
  throw new UsageError(`--output must be table, json, yaml or xml, got "${value}"`, command);
}

/** A positive number of seconds (fractions allowed: `--interval 0.5`), as milliseconds. */
export function secondsOption(value: string, flag: string, command?: string): number {
  const seconds = /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!(seconds > 0) || !Number.isFinite(seconds)) {
    throw new UsageError(`${flag} must be a positive number of seconds, got "${value}"`, command);
  }
  return Math.round(seconds * 1000);
}

/**
 * The poll interval of a `--watch` command: `--interval S` only together with `--watch`, else the default.
 */
export function watchIntervalMs(
  values: { watch?: boolean; interval?: string },
  command: string,
  defaultMs: number,
): number {
  if (values.interval === undefined) return defaultMs;
  if (!values.watch) throw new UsageError('--interval is how often --watch reads: give --watch too', command);
  return secondsOption(values.interval, '--interval', command);
}

/** A whole number ≥ 1 (a stream version, a count). */
export function positiveIntegerOption(value: string, flag: string, command?: string): number {
  const number = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < 1) {
    throw new UsageError(`${flag} must be a whole number of at least 1, got "${value}"`, command);
  }
  return number;
}

/** parseArgs in strict mode, its errors turned into usage errors naming the command. */
export function parseCommandArgs<const O extends OptionSpecs>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message, command);
  }
}

export function exactPositionals(command: string, positionals: string[], names: readonly string[]): string[] {
  if (positionals.length !== names.length) {
    const wanted = names.length === 0 ? 'no arguments' : names.join(' ');
    const got = positionals.length === 0 ? 'none' : positionals.map((p) => `"${p}"`).join(' ');
    throw new UsageError(`expected ${wanted}, got ${got}`, command);
  }
  return positionals;
}
