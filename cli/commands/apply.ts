import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { type ApiClient, ApiError } from '../api-client.ts';
import type { CliIo } from '../io.ts';
import { CONNECTION_OPTIONS, parseCommandArgs, UsageError } from '../usage.ts';
import {
  asRecord,
  asString,
  CONNECTION_HELP,
  type Command,
  connect,
  encodeSegment,
  etagValue,
} from './command.ts';

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  file: { type: 'string', short: 'f', multiple: true },
} as const;

const DEFINITION_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

export interface DefinitionFile {
  path: string;
  name: string;
  format: 'yaml' | 'json';
  /** The definition as parsed, to read its name. */
  definition: unknown;
  /** Sent as written, so the API's messages point into the operator's own YAML or JSON. */
  text: string;
}

/** The files `-f PATH` names: the file itself, or a directory's definition files sorted by name. */
export async function definitionPaths(path: string, cwd: string): Promise<string[]> {
  const absolute = resolve(cwd, path);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(absolute);
  } catch {
    throw new UsageError(`-f ${path}: no such file or directory`, 'apply');
  }
  if (info.isDirectory()) {
    const entries = await readdir(absolute, { withFileTypes: true });
    const files = entries
      .filter((entry) => entry.isFile() && DEFINITION_EXTENSIONS.has(extname(entry.name).toLowerCase()))
      .map((entry) => entry.name)
      .sort();
    if (files.length === 0) throw new UsageError(`-f ${path}: no .yaml, .yml or .json files in it`, 'apply');
    return files.map((file) => join(absolute, file));
  }
  if (!DEFINITION_EXTENSIONS.has(extname(absolute).toLowerCase())) {
    throw new UsageError(`-f ${path}: a group definition must be a .yaml, .yml or .json file`, 'apply');
  }
  return [absolute];
}

/** Reads a definition far enough to know its group's name; the API validates the rest. */
export function parseDefinitionFile(path: string, text: string): DefinitionFile {
  const format = extname(path).toLowerCase() === '.json' ? 'json' : 'yaml';
  let definition: unknown;
  try {
    definition = format === 'json' ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new UsageError(
      `${path} is not valid ${format.toUpperCase()}: ${(error as Error).message}`,
      'apply',
    );
  }
  const name = asRecord(definition).name;
  if (typeof name !== 'string' || name === '') {
    throw new UsageError(`${path} has no "name": a group definition names its group`, 'apply');
  }
  return { path, name, format, definition, text };
}

export type ApplyOutcome = 'created' | 'updated' | 'unchanged';

const CONTENT_TYPES = { yaml: 'application/yaml', json: 'application/json' } as const;

/**
 * The API says whether the definition was created, updated or unchanged; an API that does not say is read by
 * status: 201 created, anything else updated.
 */
async function applyOne(client: ApiClient, file: DefinitionFile) {
  const result = await client.request('PUT', `/groups/${encodeSegment(file.name)}`, {
    raw: { text: file.text, contentType: CONTENT_TYPES[file.format] },
  });
  const body = asRecord(parseJson(result.text));
  const stated = asString(body.outcome);
  const outcome: ApplyOutcome =
    stated === 'created' || stated === 'updated' || stated === 'unchanged'
      ? stated
      : result.status === 201
        ? 'created'
        : 'updated';
  // A changed running group rolls its change out: the rollout to watch.
  const rolloutId = asString(asRecord(body.rollout).id);
  return { outcome, etag: etagValue(result.headers.get('etag')), rolloutId };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export const applyCommand: Command = {
  name: 'apply',
  summary: 'create or update groups from definition files (YAML or JSON)',
  help: `Usage: fleetfold apply -f FILE|DIR [-f FILE|DIR …]

Puts each group definition (PUT /groups/NAME, NAME read from the file). A directory applies every .yaml,
.yml and .json file in it, in name order. Prints, per group, created, updated or unchanged and its ETag
(the definition version). A file the API refuses is reported and the others are still applied;
the exit code is then 1.

Options:
  -f, --file PATH  a definition file or a directory of them (repeatable)

${CONNECTION_HELP}`,
  options: OPTIONS,
  async run(args: string[], io: CliIo) {
    const { values, positionals } = parseCommandArgs('apply', args, OPTIONS);
    if (values.help) {
      io.stdout.write(`${this.help}\n`);
      return 0;
    }
    if (positionals.length > 0) {
      throw new UsageError(`unexpected argument "${positionals[0]}": name files with -f`, 'apply');
    }
    if (!values.file || values.file.length === 0) throw new UsageError('-f FILE|DIR is required', 'apply');
    const paths = (await Promise.all(values.file.map((path) => definitionPaths(path, io.cwd)))).flat();
    const files = await Promise.all(
      paths.map(async (path) => parseDefinitionFile(path, await readFile(path, 'utf8'))),
    );
    const client = await connect(io, values);
    let failed = 0;
    for (const file of files) {
      try {
        const { outcome, etag, rolloutId } = await applyOne(client, file);
        io.stdout.write(`group ${file.name} ${outcome}${etag !== undefined ? ` (ETag "${etag}")` : ''}\n`);
        if (rolloutId !== undefined)
          io.stdout.write(`  rolls out as ${rolloutId}: fleetfold rollout status ${rolloutId} --watch\n`);
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        failed += 1;
        io.stderr.write(`error: ${file.path}: ${error.message}\n`);
      }
    }
    return failed > 0 ? 1 : 0;
  },
};
