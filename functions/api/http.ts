import * as z from 'zod/mini';
import { TooLargeError, ValidationError } from '../../shared/errors.ts';
import { zodIssues } from '../../shared/problem.ts';

export type Format = 'json' | 'xml';

/** A request as the routes see it: headers lower-cased, query flattened, the response format settled. */
export interface ApiRequest {
  method: string;
  path: string;
  headers: Readonly<Record<string, string>>;
  /** Query parameters other than `format`, which only chooses the representation. */
  query: Readonly<Record<string, string>>;
  body?: string;
  isBase64Encoded: boolean;
  format: Format;
}

/** What a route returns; the handler renders it as JSON or as XML under `xmlRoot`. */
export interface ApiResponse {
  status: number;
  body: unknown;
  xmlRoot: string;
  headers?: Record<string, string>;
}

export const MAX_BODY_BYTES = 64 * 1024;

export function lowerCaseHeaders(headers: Readonly<Record<string, string | undefined>> | null | undefined) {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {}))
    if (value !== undefined) out[name.toLowerCase()] = value;
  return out;
}

export function definedQuery(query: Readonly<Record<string, string | undefined>> | null | undefined) {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(query ?? {})) if (value !== undefined) out[name] = value;
  return out;
}

/** Highest quality any of `types` gets in an Accept header (0 when none is listed). Wildcards are ignored. */
function acceptQuality(accept: string, types: readonly string[]): number {
  let best = 0;
  for (const range of accept.split(',')) {
    const [type = '', ...parameters] = range.split(';').map((part) => part.trim().toLowerCase());
    if (!types.includes(type)) continue;
    const q = parameters.find((parameter) => parameter.startsWith('q='));
    const quality = q === undefined ? 1 : Number(q.slice(2));
    if (Number.isFinite(quality)) best = Math.max(best, quality);
  }
  return best;
}

/**
 * JSON unless the client asks for XML: `?format=` wins (a link can carry it where a header can't), then an
 * Accept header that rates XML above JSON. Browsers rate application/xml above the wildcard, so they get XML.
 */
export function negotiateFormat(format: string | undefined, accept: string | undefined): Format {
  if (format !== undefined) {
    if (format === 'json' || format === 'xml') return format;
    throw new ValidationError(`query parameter "format" must be "json" or "xml", got "${format}"`, {
      parameter: 'format',
    });
  }
  if (accept === undefined) return 'json';
  const xml = acceptQuality(accept, ['application/xml', 'text/xml']);
  const json = acceptQuality(accept, ['application/json']);
  return xml > json ? 'xml' : 'json';
}

/** The body as text, refusing oversized ones before decoding so a huge body costs no CPU. */
export function bodyText(request: ApiRequest): string {
  const raw = request.body ?? '';
  const bytes = request.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
  if (bytes.byteLength > MAX_BODY_BYTES) {
    throw new TooLargeError(`body is ${bytes.byteLength} bytes; at most ${MAX_BODY_BYTES} are accepted`, {
      limit: MAX_BODY_BYTES,
    });
  }
  return bytes.toString('utf8');
}

/** Parses a JSON body, refusing oversized ones before parsing. */
export function parseJsonBody(request: ApiRequest): unknown {
  const text = bodyText(request);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ValidationError('body is not valid JSON', {}, { cause: error });
  }
}

/** The media type of the body, lower-cased and without parameters; undefined when the header is absent. */
export function mediaType(request: ApiRequest): string | undefined {
  const header = request.headers['content-type'];
  if (header === undefined || header.trim() === '') return undefined;
  return (header.split(';')[0] ?? '').trim().toLowerCase();
}

/** Validates a body against a schema; each failing field is listed with its JSON pointer. */
export function parseBody<T extends z.ZodMiniType>(schema: T, body: unknown): z.output<T> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const errors = zodIssues(result.error);
  const listed = errors.map((issue) => `${issue.path || '(body)'}: ${issue.message}`).join('; ');
  throw new ValidationError(`body is invalid: ${listed}`, { errors }, { cause: result.error });
}

/**
 * Validates query parameters. Unknown parameters are refused, so a typo such as `?stauts=running` fails
 * instead of silently listing every host. The first offending parameter is named in `parameter`.
 */
export function parseQuery<T extends z.ZodMiniType>(
  schema: T,
  query: Readonly<Record<string, string>>,
): z.output<T> {
  const result = schema.safeParse(query);
  if (result.success) return result.data;
  const issues = result.error.issues;
  const parameters = issues.flatMap((issue) =>
    issue.code === 'unrecognized_keys' ? issue.keys : [String(issue.path[0] ?? '')],
  );
  const messages = issues.map((issue) =>
    issue.code === 'unrecognized_keys'
      ? `unknown query parameter(s) ${issue.keys.map((key) => `"${key}"`).join(', ')}`
      : `query parameter "${String(issue.path[0] ?? '')}": ${issue.message}`,
  );
  throw new ValidationError(
    messages.join('; '),
    { parameter: parameters[0], errors: zodIssues(result.error) },
    { cause: result.error },
  );
}

/** A whole number in [min, max] written in decimal digits (no "1e2", no "0x10", no blanks). */
export function intParam(min: number, max: number) {
  return z.pipe(
    z.pipe(z.string().check(z.regex(/^[0-9]{1,16}$/, 'must be a whole number')), z.transform(Number)),
    z.int().check(z.minimum(min), z.maximum(max)),
  );
}
