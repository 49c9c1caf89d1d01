import type { CliIo } from '../io.ts';
import type { Palette } from '../render/colour.ts';
import { type ChangeView, renderChanges } from '../render/diff.ts';
import {
  exactPositionals,
  OUTPUT_OPTIONS,
  outputFormat,
  parseCommandArgs,
  positiveIntegerOption,
  UsageError,
} from '../usage.ts';
import {
  asRecord,
  CONNECTION_HELP,
  type Command,
  connect,
  encodeSegment,
  OUTPUT_HELP,
  printResource,
  stdoutPalette,
} from './command.ts';

const OPTIONS = {
  ...OUTPUT_OPTIONS,
  from: { type: 'string' },
  to: { type: 'string' },
  with: { type: 'string' },
} as const;

export type DiffQuery = { from: string; to: string } | { with: string };

/** `--from N --to M` (two versions of the host) or `--with OTHER` (another host), checked before any request. */
export function diffQuery(values: { from?: string; to?: string; with?: string }): DiffQuery {
  const versions = values.from !== undefined || values.to !== undefined;
  if (values.with !== undefined) {
    if (versions) throw new UsageError('give --from N --to M or --with OTHER, not both', 'diff');
    if (values.with === '') throw new UsageError('--with needs a host id', 'diff');
    return { with: values.with };
  }
  if (values.from === undefined || values.to === undefined) {
    throw new UsageError(
      versions
        ? `${values.from === undefined ? '--from' : '--to'} is missing: a diff between versions needs both`
        : 'a diff needs --from N --to M (two versions of the host) or --with OTHER (another host)',
      'diff',
    );
  }
  const from = positiveIntegerOption(values.from, '--from', 'diff');
  const to = positiveIntegerOption(values.to, '--to', 'diff');
  return { from: String(from), to: String(to) };
}

/** The heading says what was compared with what; the changes read from the first to the second. */
export function renderDiff(body: unknown, palette?: Palette): string {
  const answer = asRecord(body);
  const host = String(answer.hostId ?? '?');
  const heading =
    answer.with !== undefined
      ? `${host} → ${String(answer.with)}`
      : `${host} version ${String(answer.from ?? '?')} → ${String(answer.to ?? '?')}`;
  const changes = Array.isArray(answer.changes) ? (answer.changes as ChangeView[]) : [];
  const count = `${changes.length} change${changes.length === 1 ? '' : 's'}`;
  return `${heading}: ${count}\n${changes.length > 0 ? renderChanges(changes, palette) : ''}`;
}

export const diffCommand: Command = {
  name: 'diff',
  summary: 'path-level changes between two versions of a host, or between two hosts',
  help: `Usage: fleetfold diff ID --from N --to M [-o F]
       fleetfold diff ID --with OTHER [-o F]

Compares observed states (GET /hosts/ID/diff), one line per changed path:
  ~ /software/media/version  2.1.0 → 2.2.0    changed (old → new)
  + /config/values/codec     opus             added
  - /software/lb             {"version":"1"}  removed (the value it had)

Options:
  --from N         the earlier stream version of host ID (see fleetfold history ID)
  --to M           the later one
  --with OTHER     instead: host ID's current state against host OTHER's
${OUTPUT_HELP}

${CONNECTION_HELP}`,
  options: OPTIONS,
  async run(args: string[], io: CliIo) {
    const { values, positionals } = parseCommandArgs('diff', args, OPTIONS);
    if (values.help) {
      io.stdout.write(`${this.help}\n`);
      return 0;
    }
    const [id] = exactPositionals('diff', positionals, ['ID']) as [string];
    const format = outputFormat(values.output, 'diff');
    const query = diffQuery(values);
    const path = `/hosts/${encodeSegment(id)}/diff`;
    await printResource(
      io,
      await connect(io, values),
      path,
      format,
      renderDiff,
      stdoutPalette(io, values),
      query,
    );
    return 0;
  },
};
