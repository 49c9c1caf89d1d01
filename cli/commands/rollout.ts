import type { Rollout, RolloutRequest } from '../../shared/groups/model.ts';
import type { ApiClient } from '../api-client.ts';
import { type CliIo, defaultSleep } from '../io.ts';
import { type Palette, PLAIN, statusTone } from '../render/colour.ts';
import { isFinal, ProgressDrawer, progressBar, progressCounts, renderProgress } from '../render/progress.ts';
import { renderDetails, renderTable } from '../render/table.ts';
import {
  CONNECTION_OPTIONS,
  exactPositionals,
  OUTPUT_OPTIONS,
  outputFormat,
  parseCommandArgs,
  UsageError,
} from '../usage.ts';
import {
  asRecord,
  asString,
  CONNECTION_HELP,
  type Command,
  type ConnectionFlags,
  connect,
  encodeSegment,
  OUTPUT_HELP,
  printResource,
  stdoutPalette,
} from './command.ts';

const CREATE_OPTIONS = {
  ...CONNECTION_OPTIONS,
  version: { type: 'string' },
  config: { type: 'string', multiple: true },
  select: { type: 'string' },
} as const;

const STATUS_OPTIONS = { ...OUTPUT_OPTIONS, watch: { type: 'boolean', short: 'w' } } as const;

const CONTROL_VERBS = ['pause', 'resume', 'abort', 'revert'] as const;
type ControlVerb = (typeof CONTROL_VERBS)[number];

export const POLL_INTERVAL_MS = 1000;

const HELP = `Usage:
  fleetfold rollout GROUP SERVICE --version V [--config KEY=VALUE …] [--select EXPR]
  fleetfold rollout status ID [--watch] [-o F]
  fleetfold rollout pause|resume|abort ID
  fleetfold rollout revert ID

rollout GROUP SERVICE
  Starts a rollout of SERVICE in GROUP (POST /groups/GROUP/rollouts) and prints its id.
  --version V        the new version
  --config K=V       a config value to set (repeatable); a rollout needs --version, --config, or both
  --select EXPR      which hosts: ids, a count, a percentage, a version or an expression such as
                     "max(1, 20%)" (default: all)

rollout status ID
  Shows a rollout: its status, its waves and how many hosts are done.
  -w, --watch        poll every second until the rollout ends, drawing a progress bar (done/total hosts,
                     current wave, one mark per wave: ✔ done, ▶ running, · pending, ✘ failed); exits 1 when
                     it ends other than succeeded
${OUTPUT_HELP}

rollout pause|resume|abort ID
  Pauses a rollout between waves, resumes it, or aborts it: an aborted rollout is reverting while the hosts
  it changed get the previous version back, then aborted. --watch follows it until then.

rollout revert ID
  Undoes a succeeded rollout with a new rollout (POST /rollouts/ID/revert) that gives the hosts it changed
  what they ran before, through the same waves, budget and drain; prints the new rollout's id. A rollout
  still active is not reverted: abort it.

${CONNECTION_HELP}`;

/** `k=v` pairs into a record; the key must be non-empty, the value may be (an empty setting). */
export function parseConfigPairs(pairs: readonly string[]): Record<string, string> {
  const config: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`--config wants KEY=VALUE, got "${pair}"`, 'rollout');
    config[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return config;
}

export type RolloutInvocation =
  | { kind: 'create'; group: string; request: RolloutRequest; flags: ConnectionFlags }
  | {
      kind: 'status';
      id: string;
      watch: boolean;
      output: ReturnType<typeof outputFormat>;
      flags: ConnectionFlags & { 'no-color'?: boolean };
    }
  | { kind: 'control'; verb: ControlVerb; id: string; flags: ConnectionFlags }
  | { kind: 'help' };

function isControlVerb(word: string): word is ControlVerb {
  return (CONTROL_VERBS as readonly string[]).includes(word);
}

/**
 * `status`, `pause`, `resume` and `abort` are subcommands when they come first, unless a rollout's own options
 * (--version, --config, --select) are present: then the first word is a group's name, so a group called
 * "status" can still be rolled out.
 */
export function parseRolloutArgs(args: string[]): RolloutInvocation {
  const [first, ...rest] = args;
  if (first !== undefined && (first === 'status' || isControlVerb(first))) {
    const { values: all } = parseCommandArgs('rollout', rest, { ...CREATE_OPTIONS, ...STATUS_OPTIONS });
    if (all.version !== undefined || all.config !== undefined || all.select !== undefined) {
      return parseCreate(args);
    }
    if (first === 'status') {
      const { values, positionals } = parseCommandArgs('rollout', rest, STATUS_OPTIONS);
      if (values.help) return { kind: 'help' };
      const [id] = exactPositionals('rollout', positionals, ['ID']) as [string];
      const output = outputFormat(values.output, 'rollout');
      if (values.watch && output !== 'table') {
        throw new UsageError('--watch draws a progress bar: use it without --output', 'rollout');
      }
      return { kind: 'status', id, watch: values.watch ?? false, output, flags: values };
    }
    const { values, positionals } = parseCommandArgs('rollout', rest, CONNECTION_OPTIONS);
    if (values.help) return { kind: 'help' };
    const [id] = exactPositionals('rollout', positionals, ['ID']) as [string];
    return { kind: 'control', verb: first, id, flags: values };
  }
  return parseCreate(args);
}

function parseCreate(args: string[]): RolloutInvocation {
  const { values, positionals } = parseCommandArgs('rollout', args, CREATE_OPTIONS);
  if (values.help) return { kind: 'help' };
  const [group, service] = exactPositionals('rollout', positionals, ['GROUP', 'SERVICE']) as [string, string];
  const config = values.config ? parseConfigPairs(values.config) : undefined;
  if (values.version === undefined && config === undefined) {
    throw new UsageError(
      'a rollout changes something: give --version V, --config KEY=VALUE, or both',
      'rollout',
    );
  }
  if (values.version === '') throw new UsageError('--version must not be empty', 'rollout');
  const request: RolloutRequest = {
    service,
    ...(values.version !== undefined ? { version: values.version } : {}),
    ...(config !== undefined ? { config } : {}),
    ...(values.select !== undefined ? { select: values.select } : {}),
  };
  return { kind: 'create', group, request, flags: values };
}

export function renderRollout(body: unknown, palette: Palette = PLAIN): string {
  const rollout = body as Rollout;
  const counts = progressCounts(rollout);
  const change = [
    rollout.version !== undefined
      ? `version ${rollout.version}${rollout.previousVersion ? ` (was ${rollout.previousVersion})` : ''}`
      : undefined,
    rollout.config
      ? `config ${Object.entries(rollout.config)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ')}`
      : undefined,
  ]
    .filter((part) => part !== undefined)
    .join('; ');
  const details = renderDetails(
    [
      ['id', rollout.id],
      ['group', rollout.group],
      ['service', rollout.service],
      [
        'operation',
        rollout.replaceHostType !== undefined
          ? `replace the hosts of ${rollout.replaceHostType}`
          : rollout.operation !== undefined && rollout.operation !== 'update'
            ? rollout.operation
            : undefined,
      ],
      ['change', change || undefined],
      [
        'cause',
        rollout.cause?.kind === 'declared'
          ? `declared by definition version ${rollout.cause.definitionVersion}`
          : rollout.revertOf !== undefined
            ? `revert of ${rollout.revertOf}`
            : undefined,
      ],
      ['select', rollout.select ?? 'all'],
      ['status', rollout.status, statusTone(rollout.status)],
      [
        'progress',
        `${progressBar(counts.done, counts.total, 20, rollout.status === 'succeeded')} ${counts.done}/${counts.total} hosts${counts.failed > 0 ? `, ${counts.failed} failed` : ''}`,
      ],
      ['created', rollout.createdAt],
      ['updated', rollout.updatedAt],
      ['revert', rollout.revert ? `${rollout.revert.outcome}: ${rollout.revert.reason}` : undefined],
      ['error', rollout.error, 'bad'],
    ],
    palette,
  );
  if (rollout.waves.length === 0) return details;
  const waves = renderTable(
    [
      { header: 'WAVE', value: (w: Rollout['waves'][number]) => w.index + 1, align: 'right' },
      { header: 'STATUS', value: (w) => w.status, tone: (w) => statusTone(w.status) },
      { header: 'HOSTS', value: (w) => w.hosts.join(',') },
    ],
    rollout.waves,
    palette,
  );
  return `${details}\n${waves}`;
}

async function fetchRollout(client: ApiClient, id: string): Promise<Rollout> {
  return (await client.json<Rollout>('GET', `/rollouts/${encodeSegment(id)}`)).body;
}

/** Polls until the rollout is final; returns it so the caller can judge the outcome. */
export async function watchRollout(client: ApiClient, id: string, io: CliIo): Promise<Rollout> {
  const sleep = io.sleep ?? defaultSleep;
  const drawer = new ProgressDrawer(io.stdout);
  for (;;) {
    const rollout = await fetchRollout(client, id);
    drawer.draw(renderProgress(rollout));
    if (isFinal(rollout.status)) {
      drawer.finish();
      return rollout;
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

export const rolloutCommand: Command = {
  name: 'rollout',
  summary: 'start a rollout, show or watch one, pause, resume, abort or revert it',
  help: HELP,
  options: { ...CREATE_OPTIONS, ...STATUS_OPTIONS },
  subcommands: ['status', ...CONTROL_VERBS],
  async run(args: string[], io: CliIo) {
    const invocation = parseRolloutArgs(args);
    if (invocation.kind === 'help') {
      io.stdout.write(`${HELP}\n`);
      return 0;
    }
    const client = await connect(io, invocation.flags);
    switch (invocation.kind) {
      case 'create': {
        const { body } = await client.json<unknown>(
          'POST',
          `/groups/${encodeSegment(invocation.group)}/rollouts`,
          {
            body: invocation.request,
          },
        );
        const answer = asRecord(body);
        io.stdout.write(`${asString(answer.id) ?? '(no id returned)'}\n`);
        return 0;
      }
      case 'status': {
        if (!invocation.watch) {
          await printResource(
            io,
            client,
            `/rollouts/${encodeSegment(invocation.id)}`,
            invocation.output,
            renderRollout,
            stdoutPalette(io, invocation.flags),
          );
          return 0;
        }
        const rollout = await watchRollout(client, invocation.id, io);
        if (rollout.status === 'succeeded') return 0;
        io.stderr.write(
          `rollout ${rollout.id} ended ${rollout.status}${rollout.error ? `: ${rollout.error}` : ''}\n`,
        );
        return 1;
      }
      case 'control': {
        const { body } = await client.json<unknown>(
          'POST',
          `/rollouts/${encodeSegment(invocation.id)}/${invocation.verb}`,
        );
        if (invocation.verb === 'revert') {
          io.stdout.write(`${asString(asRecord(body).id) ?? '(no id returned)'}
`);
          return 0;
        }
        const status = asString(asRecord(body).status);
        io.stdout.write(`rollout ${invocation.id}: ${status ?? `${invocation.verb} requested`}\n`);
        return 0;
      }
    }
  },
};
