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

/** Options every command takes: where the API is, how to authenticate, and the help flag. */
export const CONNECTION_OPTIONS = {
  api: { type: 'string' },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpecs;

/** Read commands also choose a representation. */
export const OUTPUT_OPTIONS = {
  ...CONNECTION_OPTIONS,
  output: { type: 'string', short: 'o' },
} as const satisfies OptionSpecs;

export type OutputFormat = 'table' | 'json' | 'xml';

export function outputFormat(value: string | undefined, command: string): OutputFormat {
  if (value === undefined) return 'table';
  if (value === 'table' || value === 'json' || value === 'xml') return value;
  throw new UsageError(`--output must be table, json or xml, got "${value}"`, command);
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
