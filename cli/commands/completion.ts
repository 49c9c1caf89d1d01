import { completionScript, type LeadingOptions, SHELLS, type Shell } from '../completion.ts';
import type { CliIo } from '../io.ts';
import { exactPositionals, parseCommandArgs, UsageError } from '../usage.ts';
import type { Command } from './command.ts';

const OPTIONS = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * `completion bash|zsh`: the script for the commands `commands()` returns (the CLI's own table, this command
 * included, read when it runs so the table can list this command too).
 */
export function completionCommand(commands: () => readonly Command[], leading: LeadingOptions): Command {
  return {
    name: 'completion',
    summary: 'print a bash or zsh completion script (commands, their flags and values)',
    help: `Usage: fleetfold completion bash|zsh

Prints a completion script for the shell: commands, subcommands, each command's flags and the -o formats.
  bash   eval "$(fleetfold completion bash)"            (e.g. in ~/.bashrc)
  zsh    eval "$(fleetfold completion zsh)" after compinit (e.g. in ~/.zshrc), or save it as _fleetfold in a
         directory of your $fpath`,
    options: OPTIONS,
    subcommands: SHELLS,
    async run(args: string[], io: CliIo) {
      const { values, positionals } = parseCommandArgs('completion', args, OPTIONS);
      if (values.help) {
        io.stdout.write(`${this.help}\n`);
        return 0;
      }
      const [shell] = exactPositionals('completion', positionals, ['bash|zsh']) as [string];
      if (!(SHELLS as readonly string[]).includes(shell)) {
        throw new UsageError(`no completion for "${shell}": bash or zsh`, 'completion');
      }
      io.stdout.write(completionScript(shell as Shell, commands(), leading));
      return 0;
    },
  };
}
