import { ApiError, DEFAULT_TIMEOUT_MS } from './api-client.ts';
import { alarmsCommand } from './commands/alarms.ts';
import { applyCommand } from './commands/apply.ts';
import type { Command } from './commands/command.ts';
import { completionCommand } from './commands/completion.ts';
import { diffCommand } from './commands/diff.ts';
import { groupCommand, groupsCommand, startCommand, stopCommand } from './commands/groups.ts';
import { eventsCommand, historyCommand } from './commands/history.ts';
import { hostCommand } from './commands/host.ts';
import { hostsCommand } from './commands/hosts.ts';
import { rolloutCommand } from './commands/rollout.ts';
import { scalingCommand } from './commands/scaling.ts';
import { serviceCommand } from './commands/service.ts';
import { simulateCommand } from './commands/simulate.ts';
import type { CliIo } from './io.ts';
import { UsageError } from './usage.ts';

export type { CliIo, Writer } from './io.ts';

export const EXIT_OK = 0;
export const EXIT_API_ERROR = 1;
export const EXIT_USAGE = 2;

/** Options that may come before the command, and whether each takes a value. */
const LEADING_OPTIONS: Readonly<Record<string, boolean>> = {
  '--api': true,
  '--token': true,
  '--timeout': true,
  '--output': true,
  '-o': true,
  '--no-color': false,
};

export const COMMANDS: readonly Command[] = [
  applyCommand,
  groupsCommand,
  groupCommand,
  startCommand,
  stopCommand,
  eventsCommand,
  hostsCommand,
  hostCommand,
  historyCommand,
  diffCommand,
  rolloutCommand,
  serviceCommand,
  alarmsCommand,
  scalingCommand,
  simulateCommand,
  completionCommand(() => COMMANDS, LEADING_OPTIONS),
];

export function mainHelp(): string {
  const entries = [
    ...COMMANDS.map((command) => [command.name, command.summary] as const),
    ['help [COMMAND]', "this help, or a command's"] as const,
  ];
  const width = Math.max(...entries.map(([name]) => name.length));
  const list = entries.map(([name, summary]) => `  ${name.padEnd(width)}  ${summary}`).join('\n');
  return `Usage: fleetfold COMMAND [OPTIONS]

Operates a fleetfold control plane through its API.

Commands:
${list}

Every command takes --help. Read commands take -o table|json|yaml|xml.
The API and token come from --api/--token, else FLEETFOLD_API/FLEETFOLD_TOKEN, else .fleetfold/endpoints.json
(written by "npm start"; $FLEETFOLD_STATE_DIR/endpoints.json when that is set). A request gives up after
--timeout seconds (default: FLEETFOLD_TIMEOUT, else ${DEFAULT_TIMEOUT_MS / 1000}). Colour only on a terminal, and not with --no-color
or NO_COLOR set.

Exit codes: 0 success, 1 the API refused or could not be reached, 2 usage error.
`;
}

/**
 * Splits off the command name. Connection and output options may precede it (`fleetfold --api URL hosts`);
 * they are handed on to the command, which parses them with its own.
 */
export function splitCommand(argv: readonly string[]): { name: string | undefined; args: string[] } {
  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index] as string;
    if (!arg.startsWith('-')) {
      return { name: arg, args: [...argv.slice(0, index), ...argv.slice(index + 1)] };
    }
    if (arg === '--help' || arg === '-h') continue;
    const [flag] = arg.split('=', 1) as [string];
    if (!(flag in LEADING_OPTIONS)) {
      throw new UsageError(
        `unknown option ${arg} before the command (only ${Object.keys(LEADING_OPTIONS).join(', ')} may come first)`,
      );
    }
    if (LEADING_OPTIONS[flag] && !arg.includes('=')) index += 1;
  }
  return { name: undefined, args: [...argv] };
}

function findCommand(name: string): Command | undefined {
  return COMMANDS.find((command) => command.name === name);
}

async function dispatch(argv: readonly string[], io: CliIo): Promise<number> {
  const { name, args } = splitCommand(argv);
  if (name === undefined) {
    if (args.includes('--help') || args.includes('-h')) {
      io.stdout.write(mainHelp());
      return EXIT_OK;
    }
    throw new UsageError('no command given');
  }
  if (name === 'help') {
    const topic = args.find((arg) => !arg.startsWith('-'));
    if (topic === undefined) {
      io.stdout.write(mainHelp());
      return EXIT_OK;
    }
    const command = findCommand(topic);
    if (!command) throw new UsageError(`unknown command "${topic}"`);
    io.stdout.write(`${command.help}\n`);
    return EXIT_OK;
  }
  const command = findCommand(name);
  if (!command) throw new UsageError(`unknown command "${name}"`);
  return command.run(args, io);
}

/** Runs one command line; never throws for a usage or API problem, it prints it and returns the exit code. */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`error: ${error.message}\n`);
      const hint = error.command ? `fleetfold ${error.command} --help` : 'fleetfold --help';
      io.stderr.write(`see "${hint}"\n`);
      return EXIT_USAGE;
    }
    if (error instanceof ApiError) {
      io.stderr.write(`error: ${error.message}\n`);
      return EXIT_API_ERROR;
    }
    throw error;
  }
}

/** The process's own streams and environment, for the launcher. */
export function processIo(): CliIo {
  const { stdout, stderr } = process;
  return {
    stdout: {
      write: (text) => void stdout.write(text),
      get isTTY() {
        return stdout.isTTY === true;
      },
      get columns() {
        return stdout.columns;
      },
    },
    stderr: { write: (text) => void stderr.write(text), isTTY: stderr.isTTY === true },
    env: process.env,
    cwd: process.cwd(),
  };
}

/** Entry point for cli/bin.mjs: sets the exit code rather than exiting, so pending output is flushed. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  try {
    process.exitCode = await run(argv, processIo());
  } catch (error) {
    process.stderr.write(`fleetfold: unexpected error: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 70;
  }
}
