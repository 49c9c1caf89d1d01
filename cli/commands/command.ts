import { ApiClient, DEFAULT_TIMEOUT_MS } from '../api-client.ts';
import { resolveEndpoint } from '../endpoints.ts';
import type { CliIo } from '../io.ts';
import { type Palette, paletteFor } from '../render/colour.ts';
import { printDocument } from '../render/documents.ts';
import { type OptionSpecs, type OutputFormat, secondsOption } from '../usage.ts';

export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** The full `--help` text. */
  help: string;
  /** Every option it accepts (all its subcommands'): the shell completion is generated from these. */
  options: OptionSpecs;
  /** Words it takes first (`rollout status`, `service stop`), for the completion too. */
  subcommands?: readonly string[];
  /** Resolves to the exit code; throws UsageError (2) or ApiError (1). */
  run(args: string[], io: CliIo): Promise<number>;
}

export const CONNECTION_HELP = `Connection:
  --api URL        the API (default: FLEETFOLD_API, else "api" in .fleetfold/endpoints.json or
                   $FLEETFOLD_STATE_DIR/endpoints.json); an execute-api URL is called with SigV4 (AWS credentials)
  --token T        bearer token for the local API (default: FLEETFOLD_TOKEN, else "token" in endpoints.json)
  --timeout S      give up on a request after S seconds (default: FLEETFOLD_TIMEOUT, else ${DEFAULT_TIMEOUT_MS / 1000})
  --no-color       no colour (colour is also off when NO_COLOR is set or stdout is not a terminal)
  -h, --help       this help`;

export const OUTPUT_HELP = `  -o, --output F   table (default), json, yaml, or xml (asks the API for XML and prints it as sent)`;

/** The connection options as parsed, which every command hands to `connect`. */
export interface ConnectionFlags {
  api?: string;
  token?: string;
  timeout?: string;
}

/** --timeout wins over FLEETFOLD_TIMEOUT; either is refused, named, when it is not a positive number. */
export function requestTimeoutMs(flag: string | undefined, env: CliIo['env']): number {
  if (flag !== undefined) return secondsOption(flag, '--timeout');
  const fromEnv = env.FLEETFOLD_TIMEOUT;
  if (fromEnv !== undefined && fromEnv !== '') return secondsOption(fromEnv, 'FLEETFOLD_TIMEOUT');
  return DEFAULT_TIMEOUT_MS;
}

export async function connect(io: CliIo, flags: ConnectionFlags): Promise<ApiClient> {
  const timeoutMs = requestTimeoutMs(flags.timeout, io.env);
  const endpoint = await resolveEndpoint({ flags, env: io.env, cwd: io.cwd });
  return new ApiClient(endpoint, io.fetch, timeoutMs);
}

/** Colour for what goes to stdout, decided once per command from --no-color, NO_COLOR and the terminal. */
export function stdoutPalette(io: CliIo, flags: { 'no-color'?: boolean }): Palette {
  return paletteFor({ env: io.env, isTTY: io.stdout.isTTY, noColorFlag: flags['no-color'] });
}

export function encodeSegment(value: string): string {
  return encodeURIComponent(value);
}

/** A table renderer: the API's JSON document in, text out, coloured by the palette. */
export type TableRenderer = (body: unknown, palette: Palette) => string;

/**
 * A read command's output: XML straight from the API, JSON pretty-printed, YAML, or the command's table. The
 * table, JSON and YAML views share one JSON response so all show the same data.
 */
export async function printResource(
  io: CliIo,
  client: ApiClient,
  path: string,
  format: OutputFormat,
  table: TableRenderer,
  palette: Palette,
  query: Record<string, string | undefined> = {},
): Promise<void> {
  if (format === 'xml') {
    writeXml(io, (await client.request('GET', path, { query, accept: 'xml' })).text);
    return;
  }
  const { body } = await client.json<unknown>('GET', path, { query });
  io.stdout.write(format === 'table' ? table(body, palette) : printDocument(body, format));
}

function writeXml(io: CliIo, xml: string): void {
  io.stdout.write(xml.endsWith('\n') ? xml : `${xml}\n`);
}

/** A list command's paged resource: its path, the key of its items and the XML root its pages have. */
export interface PagedList {
  path: string;
  key: string;
  xmlRoot: string;
  query?: Record<string, string | undefined>;
}

/**
 * A list command's output over every page: XML joined into one document, JSON and YAML as `{<key>: items}`,
 * or the table. Returns the items read (none for XML), e.g. for a watch to start from.
 */
export async function printList(
  io: CliIo,
  client: ApiClient,
  list: PagedList,
  format: OutputFormat,
  table: (items: unknown[], palette: Palette) => string,
  palette: Palette,
): Promise<unknown[]> {
  if (format === 'xml') {
    writeXml(io, await allPagesXml(client, list.path, list.xmlRoot, list.query));
    return [];
  }
  const items = await allPagesJson(client, list.path, list.key, list.query);
  io.stdout.write(format === 'table' ? table(items, palette) : printDocument({ [list.key]: items }, format));
  return items;
}

export function asRecord(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

export function asString(value: unknown): string | undefined {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
    ? String(value)
    : undefined;
}

/** An ETag's value without quotes or the weak marker: `W/"3"` → `3`. */
export function etagValue(etag: string | null): string | undefined {
  if (etag === null) return undefined;
  return etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

/** The API's largest page: fewer round trips for commands that always read every page. */
const PAGE_SIZE = '100';

/** Every item of a paged list (`{<key>: [...], next}`), following the `next` cursor. */
export async function allPagesJson(
  client: ApiClient,
  path: string,
  key: string,
  query: Record<string, string | undefined> = {},
): Promise<unknown[]> {
  const items: unknown[] = [];
  let next: string | undefined;
  do {
    const { body } = await client.json<unknown>('GET', path, { query: { ...query, limit: PAGE_SIZE, next } });
    const page = asRecord(body);
    const list = page[key];
    items.push(...(Array.isArray(list) ? list : []));
    next = asString(page.next);
  } while (next !== undefined);
  return items;
}

/**
 * XML pages are joined into one document, so the output stays a single root an XSLT can take. The API's
 * serializer puts the cursor last, as `<next>`, directly under the root; a `next` key deeper down (a host's
 * config may have one) is therefore never mistaken for it.
 */
export async function allPagesXml(
  client: ApiClient,
  path: string,
  root: string,
  query: Record<string, string | undefined> = {},
): Promise<string> {
  const document = new RegExp(
    `^(<\\?xml[^>]*\\?>)?\\s*<${root}(?:\\s[^>]*)?(?:/>|>([\\s\\S]*)</${root}>)\\s*$`,
  );
  const bodies: string[] = [];
  let head = '';
  let next: string | undefined;
  do {
    const { text } = await client.request('GET', path, {
      query: { ...query, limit: PAGE_SIZE, next },
      accept: 'xml',
    });
    const match = document.exec(text);
    // Not the shape this joins: show the page as the API sent it rather than guess.
    if (!match) return bodies.length === 0 ? text : `${head}<${root}>${bodies.join('')}</${root}>`;
    head = match[1] ?? '';
    const inner = match[2] ?? '';
    const cursor = /<next>([^<]*)<\/next>\s*$/.exec(inner);
    next = cursor?.[1];
    bodies.push(cursor ? inner.slice(0, cursor.index) : inner);
  } while (next !== undefined);
  return `${head}<${root}>${bodies.join('')}</${root}>`;
}
