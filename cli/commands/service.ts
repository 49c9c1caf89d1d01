import type { CliIo } from '../io.ts';
import { CONNECTION_OPTIONS, exactPositionals, parseCommandArgs, UsageError } from '../usage.ts';
import {
  asRecord,
  asString,
  CONNECTION_HELP,
  type Command,
  type ConnectionFlags,
  connect,
  encodeSegment,
} from './command.ts';

const OPTIONS = { ...CONNECTION_OPTIONS, select: { type: 'string' } } as const;

const OPERATIONS = ['stop', 'start', 'remove'] as const;
type Operation = (typeof OPERATIONS)[number];

const HELP = `Usage:
  fleetfold service stop|start|remove GROUP SERVICE [--select EXPR]

Each is a rollout of SERVICE in GROUP, through the same waves, disruption budget and drain as a version
change; it prints the rollout's id (follow it with \`fleetfold rollout status ID --watch\`).
  stop      the hosts keep SERVICE in their state but stop it (it reports stopped; no default rule
            restarts it)                                   POST /groups/GROUP/services/SERVICE/stop
  start     runs it again                                  POST /groups/GROUP/services/SERVICE/start
  remove    takes it off the hosts and, once that succeeded, out of the definition
                                                           DELETE /groups/GROUP/services/SERVICE
  --select EXPR   which hosts: ids, a count, a percentage or an expression (default: all)

${CONNECTION_HELP}`;

export type ServiceInvocation =
  | {
      kind: 'operation';
      operation: Operation;
      group: string;
      service: string;
      select?: string;
      flags: ConnectionFlags;
    }
  | { kind: 'help' };

function isOperation(word: string | undefined): word is Operation {
  return (OPERATIONS as readonly (string | undefined)[]).includes(word);
}

export function parseServiceArgs(args: string[]): ServiceInvocation {
  const { values, positionals } = parseCommandArgs('service', args, OPTIONS);
  if (values.help) return { kind: 'help' };
  const [operation, ...rest] = positionals;
  if (!isOperation(operation)) {
    throw new UsageError(
      `expected stop, start or remove, got ${operation === undefined ? 'none' : `"${operation}"`}`,
      'service',
    );
  }
  const [group, service] = exactPositionals('service', rest, ['GROUP', 'SERVICE']) as [string, string];
  return {
    kind: 'operation',
    operation,
    group,
    service,
    ...(values.select !== undefined ? { select: values.select } : {}),
    flags: values,
  };
}

export const serviceCommand: Command = {
  name: 'service',
  summary: "stop, start or remove a group's service, as a rollout",
  help: HELP,
  options: OPTIONS,
  subcommands: OPERATIONS,
  async run(args: string[], io: CliIo) {
    const invocation = parseServiceArgs(args);
    if (invocation.kind === 'help') {
      io.stdout.write(`${HELP}\n`);
      return 0;
    }
    const client = await connect(io, invocation.flags);
    const path = `/groups/${encodeSegment(invocation.group)}/services/${encodeSegment(invocation.service)}`;
    const body = invocation.select !== undefined ? { select: invocation.select } : undefined;
    const { body: answer } =
      invocation.operation === 'remove'
        ? await client.json<unknown>('DELETE', path, body ? { body } : {})
        : await client.json<unknown>('POST', `${path}/${invocation.operation}`, body ? { body } : {});
    io.stdout.write(`${asString(asRecord(answer).id) ?? '(no id returned)'}\n`);
    return 0;
  },
};
