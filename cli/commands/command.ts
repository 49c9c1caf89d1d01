import { ApiClient } from '../api-client.ts';
import { resolveEndpoint } from '../endpoints.ts';
import type { CliIo } from '../io.ts';
import type { OutputFormat } from '../usage.ts';

export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** The full `--help` text. */
  help: string;
  /** Resolves to the exit code; throws UsageError (2) or ApiError (1). */
  run(args: string[], io: CliIo): Promise<number>;
}

export const CONNECTION_HELP = `Connection:
  --api URL        the API (default: FLEETFOLD_API, else "api" in .fleetfold/endpoints.json or
                   $FLEETFOLD_STATE_DIR/endpoints.json); an execute-api URL is called with SigV4 (AWS credentials)
  --token T        bearer token for the local API (default: FLEETFOLD_TOKEN, else "token" in endpoints.json)
  -h, --help       this help`;

export const OUTPUT_HELP = `  -o, --output F   table (default), json, or xml (asks the API for XML and prints it as sent)`;

export async function connect(io: CliIo, flags: { api?: string; token?: string }): Promise<ApiClient> {
  const endpoint = await resolveEndpoint({ flags, env: io.env, cwd: io.cwd });
  return new ApiClient(endpoint, io.fetch);
}

export function encodeSegment(value: string): string {
  return encodeURIComponent(value);
}

/**
 * A read command's output: XML straight from the API, JSON pretty-printed, or the command's table. The
 * table and JSON views share one JSON response so both show the same data.
 */
export async function printResource(
  io: CliIo,
  client: ApiClient,
  path: string,
  format: OutputFormat,
  table: (body: unknown) => string,
  query: Record<string, string | undefined> = {},
): Promise<void> {
  if (format === 'xml') {
    const { text } = await client.request('GET', path, { query, accept: 'xml' });
    io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    return;
  }
  const { body } = await client.json<unknown>('GET', path, { query });
  io.stdout.write(format === 'json' ? `${JSON.stringify(body, null, 2)}\n` : table(body));
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
