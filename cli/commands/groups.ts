import type { CompiledGroup, GroupDefinition } from '../../shared/groups/model.ts';
import type { CliIo } from '../io.ts';
import { type Palette, PLAIN, statusTone } from '../render/colour.ts';
import { renderDetails, renderTable } from '../render/table.ts';
import {
  CONNECTION_OPTIONS,
  exactPositionals,
  OUTPUT_OPTIONS,
  outputFormat,
  parseCommandArgs,
} from '../usage.ts';
import {
  asRecord,
  asString,
  CONNECTION_HELP,
  type Command,
  connect,
  encodeSegment,
  OUTPUT_HELP,
  printList,
  printResource,
  stdoutPalette,
} from './command.ts';

/**
 * A group as the API may show it: the stored document ({definition, compiled, running, definitionVersion})
 * or a summary of it. Every member is optional so a leaner list entry still renders.
 */
export interface GroupView {
  name?: string;
  running?: boolean;
  definitionVersion?: number;
  version?: number;
  definition?: Partial<GroupDefinition>;
  compiled?: Partial<CompiledGroup>;
  /** In list entries: each host type's name and desired count. */
  hostTypes?: { name: string; desired?: number }[];
}

export function groupName(group: GroupView): string | undefined {
  return group.name ?? group.compiled?.name ?? group.definition?.name;
}

function hostTypesOf(group: GroupView): { name: string; desired?: number }[] {
  if (Array.isArray(group.hostTypes)) return group.hostTypes;
  return Object.entries(group.compiled?.hostTypes ?? group.definition?.hostTypes ?? {}).map(
    ([name, type]) => ({
      name,
      ...('desired' in type && typeof type.desired === 'number' ? { desired: type.desired } : {}),
    }),
  );
}

function desiredHosts(group: GroupView): number | undefined {
  const counts = hostTypesOf(group).map((type) => type.desired);
  return counts.some((count) => count === undefined) || counts.length === 0
    ? undefined
    : counts.reduce((sum: number, count) => sum + (count ?? 0), 0);
}

function runningLabel(running: boolean | undefined): string | undefined {
  return running === undefined ? undefined : running ? 'running' : 'stopped';
}

/** GET /groups may answer with an array or with `{groups: [...]}`; both list the same thing. */
export function groupsOf(body: unknown): GroupView[] {
  if (Array.isArray(body)) return body as GroupView[];
  const groups = asRecord(body).groups ?? asRecord(body).items;
  return Array.isArray(groups) ? (groups as GroupView[]) : [];
}

export function renderGroups(body: unknown, palette: Palette = PLAIN): string {
  const groups = groupsOf(body);
  if (groups.length === 0) return 'no groups defined\n';
  return renderTable<GroupView>(
    [
      { header: 'NAME', value: groupName },
      {
        header: 'STATE',
        value: (g) => runningLabel(g.running),
        tone: (g) => statusTone(runningLabel(g.running)),
      },
      { header: 'VERSION', value: (g) => g.definitionVersion ?? g.version, align: 'right' },
      { header: 'HOSTS', value: desiredHosts, align: 'right' },
      {
        header: 'HOST TYPES',
        value: (g) =>
          hostTypesOf(g)
            .map((type) => (type.desired === undefined ? type.name : `${type.name}×${type.desired}`))
            .join(','),
      },
      { header: 'ROLLOUT', value: (g) => asString((g as Record<string, unknown>).activeRollout) },
    ],
    groups,
    palette,
  );
}

interface HostTypeRow {
  name: string;
  roles?: string[];
  instanceType?: string;
  desired?: number;
  count?: number;
  min?: number;
  max?: number;
  level?: number;
  services?: Record<string, { version?: string }>;
  balances?: string[];
}

export function renderGroup(body: unknown, palette: Palette = PLAIN): string {
  const group = body as GroupView;
  const compiled = group.compiled;
  const configuration = compiled?.configuration ?? group.definition?.configuration;
  const details = renderDetails(
    [
      ['name', groupName(group)],
      ['state', runningLabel(group.running), statusTone(runningLabel(group.running))],
      ['version', group.definitionVersion ?? group.version],
      ['rollout', asString((group as Record<string, unknown>).activeRollout)],
      ['start order', compiled?.startOrder?.join(' → ')],
      ['rollout wave', configuration?.rollout?.wave],
      ['disruption', configuration?.disruptionBudget],
    ],
    palette,
  );
  const types = compiled?.hostTypes ?? group.definition?.hostTypes ?? {};
  const rows: HostTypeRow[] = Object.entries(types).map(([name, type]) => ({ ...(type as object), name }));
  if (rows.length === 0) return details;
  const table = renderTable<HostTypeRow>(
    [
      { header: 'HOST TYPE', value: (t) => t.name },
      { header: 'ROLES', value: (t) => t.roles?.join(',') },
      { header: 'INSTANCE', value: (t) => t.instanceType },
      { header: 'DESIRED', value: (t) => t.desired ?? t.count ?? t.min, align: 'right' },
      { header: 'LEVEL', value: (t) => t.level, align: 'right' },
      {
        header: 'SERVICES',
        value: (t) =>
          [
            ...Object.entries(t.services ?? {}).map(([service, spec]) => `${service}@${spec.version ?? '?'}`),
            ...(t.balances ?? []).map((service) => `lb(${service})`),
          ].join(','),
      },
    ],
    rows,
    palette,
  );
  return `${details}\n${table}`;
}

export const groupsCommand: Command = {
  name: 'groups',
  summary: 'list groups',
  help: `Usage: fleetfold groups [-o F]

Lists the defined groups: running or stopped, definition version, desired hosts, host types.

Options:
${OUTPUT_HELP}

${CONNECTION_HELP}`,
  options: OUTPUT_OPTIONS,
  async run(args: string[], io: CliIo) {
    const { values, positionals } = parseCommandArgs('groups', args, OUTPUT_OPTIONS);
    if (values.help) {
      io.stdout.write(`${this.help}\n`);
      return 0;
    }
    exactPositionals('groups', positionals, []);
    const format = outputFormat(values.output, 'groups');
    const list = { path: '/groups', key: 'groups', xmlRoot: 'groups' };
    await printList(io, await connect(io, values), list, format, renderGroups, stdoutPalette(io, values));
    return 0;
  },
};

export const groupCommand: Command = {
  name: 'group',
  summary: 'show one group: its state, definition version and host types',
  help: `Usage: fleetfold group NAME [-o F]

Shows one group: running or stopped, definition version, start order and each host type.

Options:
${OUTPUT_HELP}

${CONNECTION_HELP}`,
  options: OUTPUT_OPTIONS,
  async run(args: string[], io: CliIo) {
    const { values, positionals } = parseCommandArgs('group', args, OUTPUT_OPTIONS);
    if (values.help) {
      io.stdout.write(`${this.help}\n`);
      return 0;
    }
    const [name] = exactPositionals('group', positionals, ['NAME']) as [string];
    const format = outputFormat(values.output, 'group');
    const path = `/groups/${encodeSegment(name)}`;
    await printResource(io, await connect(io, values), path, format, renderGroup, stdoutPalette(io, values));
    return 0;
  },
};

function lifecycleCommand(verb: 'start' | 'stop'): Command {
  return {
    name: verb,
    summary: verb === 'start' ? 'start a group (reconcile brings its hosts up)' : 'stop a group',
    help: `Usage: fleetfold ${verb} GROUP

${
  verb === 'start'
    ? 'Marks the group as running and starts a reconcile: the group controller first, then its hosts in\ndependency order.'
    : 'Marks the group as stopped and starts a reconcile that drains and stops its hosts, dependents first.'
}

${CONNECTION_HELP}`,
    options: CONNECTION_OPTIONS,
    async run(args: string[], io: CliIo) {
      const { values, positionals } = parseCommandArgs(verb, args, CONNECTION_OPTIONS);
      if (values.help) {
        io.stdout.write(`${this.help}\n`);
        return 0;
      }
      const [group] = exactPositionals(verb, positionals, ['GROUP']) as [string];
      const client = await connect(io, values);
      const { body } = await client.json<unknown>('POST', `/groups/${encodeSegment(group)}/${verb}`);
      const answer = asRecord(body);
      const execution = asString(answer.executionId);
      const state =
        answer.running === undefined
          ? verb === 'start'
            ? 'starting'
            : 'stopping'
          : answer.running
            ? 'running'
            : 'stopped';
      io.stdout.write(`group ${group}: ${state}${execution ? ` (reconcile ${execution})` : ''}\n`);
      return 0;
    },
  };
}

export const startCommand = lifecycleCommand('start');
export const stopCommand = lifecycleCommand('stop');
