/**
 * The OpenAPI 3.1 document and the snapshot JSON Schema, generated from the route table and its zod schemas
 * with zod's own `toJSONSchema`. The api serves them (GET /openapi.json, GET /schemas/snapshot.json) and
 * `npm run openapi` writes them to dist/; both come from the same functions, so they are the same bytes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as z from 'zod/mini';
import { Snapshot } from '../../shared/schemas.ts';
import { PROBLEM_TYPES, type ProblemType, problemTypeUri, type RouteProblem } from './problem-types.ts';
import { PUBLISHED_FILES, type PublishedDocuments } from './published-documents.ts';
import { type NamedSchema, ROUTE_TABLE, type RouteResponse, type RouteSpec } from './route-table.ts';

type JsonObject = Record<string, unknown>;

export const OPENAPI_VERSION = '3.1.0';
/** Where the snapshot schema is served, relative to the API's base URL. */
export const SNAPSHOT_SCHEMA_PATH = '/schemas/snapshot.json';

const PROBLEM_MEDIA_TYPE = 'application/problem+json';

/** Every route may answer these besides the problems it lists itself. */
const EVERY_ROUTE: readonly RouteProblem[] = [
  { status: 400, kind: 'validation' },
  { status: 401, kind: 'unauthorized' },
  { status: 500, kind: 'internal' },
];

/** What the common query parameters mean; the schemas come from the routes' zod query schemas. */
const QUERY_NOTES: Readonly<Record<string, string>> = {
  limit: 'Page size.',
  next: 'The `next` cursor of the previous page.',
  order: '`asc` (oldest first, the default) or `desc`.',
  from: 'First stream version (inclusive).',
  to: 'Last stream version (inclusive).',
  version: 'Stream version (for hosts/{id}/state and /desired), or the version `service` runs (for /hosts).',
  with: 'Another host to compare with (instead of `from` and `to`).',
  role: "The host's primary role.",
  status: 'Host status.',
  group: 'Group name.',
  service: 'A service the host runs.',
  since: 'ISO 8601 date or time; alarms from then on.',
  hours: 'How many hours back from now (default 24).',
};

const componentRef = (name: string) => ({ $ref: `#/components/schemas/${name}` });

function withoutDialect(schema: JsonObject): JsonObject {
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

/** A standalone JSON Schema of one zod schema (no component references), as a client parses input. */
function inputJsonSchema(schema: z.ZodMiniType): JsonObject {
  return withoutDialect(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonObject);
}

/**
 * Component schemas for named zod schemas: request bodies as the API parses them (`input`: defaults
 * optional), responses as it writes them (`output`). A named schema nested in another becomes a `$ref`.
 */
function componentSchemas(named: readonly NamedSchema[], io: 'input' | 'output'): Record<string, JsonObject> {
  const registry = z.registry<{ id: string }>();
  const byName = new Map<string, z.ZodMiniType>();
  for (const { name, schema } of named) {
    const known = byName.get(name);
    if (known === schema) continue;
    if (known) throw new Error(`two different schemas are both named ${name}`);
    byName.set(name, schema);
    registry.add(schema, { id: name });
  }
  const { schemas } = z.toJSONSchema(registry, {
    io,
    unrepresentable: 'any',
    uri: (id) => componentRef(id).$ref,
  });
  return Object.fromEntries(
    Object.entries(schemas).map(([name, schema]) => {
      const { $id: _id, ...rest } = withoutDialect(schema as JsonObject);
      return [name, rest];
    }),
  );
}

/** The component schema of a problem kind: `not-found` → `NotFoundProblem`. */
export function problemSchemaName(kind: string): string {
  const pascal = kind.replace(/(^|-)([a-z])/g, (_match, _dash, letter: string) => letter.toUpperCase());
  return `${pascal}Problem`;
}

function problemComponents(): Record<string, JsonObject> {
  const base: JsonObject = {
    type: 'object',
    description:
      'An RFC 9457 problem document. Extension members (`errors`, `parameter`, links to the way out …) sit beside the standard ones.',
    required: ['type', 'title', 'status', 'detail'],
    properties: {
      type: { type: 'string', format: 'uri', description: '`urn:fleetfold:problem:<kind>`' },
      title: { type: 'string' },
      status: { type: 'integer' },
      detail: { type: 'string' },
      instance: { type: 'string', description: 'The request path.' },
      parameter: { type: 'string', description: 'The query or path parameter at fault.' },
      errors: {
        type: 'array',
        description: 'Each failing field, addressed by a JSON pointer into the body or query.',
        items: {
          type: 'object',
          required: ['path', 'code', 'message'],
          properties: { path: { type: 'string' }, code: { type: 'string' }, message: { type: 'string' } },
        },
      },
    },
  };
  const kinds = PROBLEM_TYPES.map((type: ProblemType) => [
    problemSchemaName(type.kind),
    {
      description: type.description,
      allOf: [componentRef('Problem')],
      properties: {
        type: { const: problemTypeUri(type.kind) },
        status: { enum: [...type.statuses] },
      },
    },
  ]);
  return { Problem: base, ...Object.fromEntries(kinds) };
}

function problemResponse(problems: readonly RouteProblem[]): JsonObject {
  const kinds = [...new Set(problems.map((problem) => problem.kind))];
  const types = kinds.map((kind) => PROBLEM_TYPES.find((type) => type.kind === kind) as ProblemType);
  const schemas = kinds.map((kind) => componentRef(problemSchemaName(kind)));
  return {
    description: types.map((type) => `${type.kind}: ${type.summary}`).join('; '),
    content: { [PROBLEM_MEDIA_TYPE]: { schema: schemas.length === 1 ? schemas[0] : { oneOf: schemas } } },
  };
}

const RESPONSE_HEADERS: Readonly<Record<string, JsonObject>> = {
  ETag: {
    description: 'The group definition version, quoted: send it back in `If-Match`.',
    schema: { type: 'string' },
  },
  Location: { description: 'The URL path of the resource created or started.', schema: { type: 'string' } },
};

function successResponse(route: RouteSpec, response: RouteResponse): JsonObject {
  const content: JsonObject = { 'application/json': { schema: componentRef(response.name) } };
  if (route.representations === 'json+xml') {
    content['application/xml'] = {
      schema: {
        type: 'string',
        description: `The same document as XML under the root element <${route.xmlRoot}> (mapping in shared/xml.ts); asked for with \`Accept: application/xml\` or \`?format=xml\`.`,
      },
    };
  }
  return {
    description: response.description,
    ...(response.headers
      ? { headers: Object.fromEntries(response.headers.map((name) => [name, RESPONSE_HEADERS[name]])) }
      : {}),
    content,
  };
}

function parameters(route: RouteSpec): JsonObject[] {
  const path = Object.entries(route.pathParameters).map(([name, parameter]) => ({
    name,
    in: 'path',
    required: true,
    description: parameter.description,
    schema: inputJsonSchema(parameter.schema),
  }));
  const query = inputJsonSchema(route.query) as {
    properties?: Record<string, JsonObject>;
    required?: string[];
  };
  const queryParameters = Object.entries(query.properties ?? {}).map(([name, schema]) => ({
    name,
    in: 'query',
    required: (query.required ?? []).includes(name),
    ...(QUERY_NOTES[name] ? { description: QUERY_NOTES[name] } : {}),
    schema,
  }));
  const format =
    route.representations === 'json+xml'
      ? [
          {
            name: 'format',
            in: 'query',
            required: false,
            description: 'The representation, overriding `Accept`.',
            schema: { type: 'string', enum: ['json', 'xml'] },
          },
        ]
      : [];
  const headers = (route.preconditions ?? []).map((name) => ({
    name,
    in: 'header',
    required: false,
    description:
      name === 'If-Match'
        ? 'Only if the definition version is one of these ETags (`*`: the group exists); else 412.'
        : '`*`: only if the group does not exist yet; an ETag: only if it is not at that version; else 412.',
    schema: { type: 'string' },
  }));
  return [...path, ...queryParameters, ...format, ...headers];
}

function operation(route: RouteSpec): JsonObject {
  const responses: Record<string, JsonObject> = {};
  for (const response of route.responses)
    responses[String(response.status)] = successResponse(route, response);
  const problems = [...EVERY_ROUTE, ...route.problems];
  for (const status of [...new Set(problems.map((problem) => problem.status))].sort((a, b) => a - b)) {
    responses[String(status)] = problemResponse(problems.filter((problem) => problem.status === status));
  }
  responses['403'] = { $ref: '#/components/responses/GatewayForbidden' };
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    tags: [route.tag],
    parameters: parameters(route),
    ...(route.body
      ? {
          requestBody: {
            required: route.body.required,
            description: route.body.description,
            content: Object.fromEntries(
              route.body.mediaTypes.map((type) => [type, { schema: componentRef(route.body?.name ?? '') }]),
            ),
          },
        }
      : {}),
    responses,
  };
}

const DESCRIPTION = `The fleetfold control plane: hosts, groups, rollouts, alarms, their history.

Responses are JSON, or XML with \`Accept: application/xml\` or \`?format=xml\` where a route lists both.
Errors are \`application/problem+json\` (RFC 9457) whatever was asked for; their \`type\` is one of:

${PROBLEM_TYPES.map((type) => `- \`${problemTypeUri(type.kind)}\` (${type.statuses.join(', ')}): ${type.description}`).join('\n')}

On AWS every request is signed with SigV4 (IAM auth on API Gateway); locally (\`npm start\`) send
\`Authorization: Bearer <token>\`. The snapshot a host posts is specified by the JSON Schema at
\`${SNAPSHOT_SCHEMA_PATH}\` (also the \`Snapshot\` component here).`;

function buildDocument(routes: readonly RouteSpec[]): JsonObject {
  const paths: Record<string, Record<string, JsonObject>> = {};
  for (const route of routes) {
    paths[route.path] ??= {};
    (paths[route.path] as Record<string, JsonObject>)[route.method.toLowerCase()] = operation(route);
  }
  const bodies = routes.flatMap((route) => (route.body ? [route.body] : []));
  const inputs = componentSchemas([...bodies, { name: 'Snapshot', schema: Snapshot }], 'input');
  const outputs = componentSchemas(
    routes.flatMap((route) => route.responses),
    'output',
  );
  const clash = Object.keys(inputs).find((name) => Object.hasOwn(outputs, name));
  if (clash) throw new Error(`component ${clash} names both a request and a response schema`);
  const snapshot = inputs.Snapshot as JsonObject;
  inputs.Snapshot = {
    ...snapshot,
    description: `A signed snapshot of a host's machine state; served alone as JSON Schema at ${SNAPSHOT_SCHEMA_PATH}.`,
  };
  return {
    openapi: OPENAPI_VERSION,
    info: { title: 'fleetfold control plane API', version: '1', description: DESCRIPTION },
    tags: [...new Set(routes.map((route) => route.tag))].map((name) => ({ name })),
    security: [{ sigv4: [] }, { bearer: [] }],
    paths,
    components: {
      schemas: { ...inputs, ...outputs, ...problemComponents() },
      responses: {
        GatewayForbidden: {
          description:
            'AWS only: API Gateway refused the request before the API saw it (unsigned, badly signed, or not allowed by IAM). The body is API Gateway’s own `{message}`, not a problem document.',
          content: {
            'application/json': {
              schema: { type: 'object', properties: { message: { type: 'string' } } },
            },
          },
        },
        NoRoute: problemResponse([{ status: 404, kind: 'no-route' }]),
        MethodNotAllowed: {
          ...problemResponse([{ status: 405, kind: 'method-not-allowed' }]),
          headers: { Allow: { description: 'The methods the resource has.', schema: { type: 'string' } } },
        },
      },
      securitySchemes: {
        sigv4: {
          type: 'apiKey',
          in: 'header',
          name: 'Authorization',
          description:
            'On AWS: an AWS Signature Version 4 `Authorization` header (service `execute-api`, with `X-Amz-Date` and, for temporary credentials, `X-Amz-Security-Token`). API Gateway verifies it (IAM auth) and IAM policies decide who may call which route.',
          'x-amazon-apigateway-authtype': 'awsSigv4',
        },
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'Local mode (`npm start`): the token stored in `.fleetfold/token`.',
        },
      },
    },
  };
}

const documents = new WeakMap<readonly RouteSpec[], JsonObject>();

/** The OpenAPI document of `routes`, built once per table. */
export function openApiDocument(routes: readonly RouteSpec[]): JsonObject {
  let document = documents.get(routes);
  if (!document) {
    document = buildDocument(routes);
    documents.set(routes, document);
  }
  return document;
}

let snapshotSchema: JsonObject | undefined;

/** The snapshot document as JSON Schema draft 2020-12, generated from shared/schemas.ts `Snapshot`. */
export function snapshotJsonSchema(): JsonObject {
  snapshotSchema ??= {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'fleetfold snapshot',
    description:
      "A host's signed report of its machine state, posted as snapshots/{hostId}/{seq}.json. Members with a default may be left out.",
    ...withoutDialect(z.toJSONSchema(Snapshot, { io: 'input' }) as JsonObject),
  };
  return snapshotSchema;
}

/** Generated in-process, once: what local mode and tests serve, and what the build writes beside the bundle. */
export function generatedDocuments(): PublishedDocuments {
  let openApi: unknown;
  let snapshotSchema: unknown;
  return {
    openApi: async () => {
      openApi ??= openApiDocument(ROUTE_TABLE);
      return openApi;
    },
    snapshotSchema: async () => {
      snapshotSchema ??= snapshotJsonSchema();
      return snapshotSchema;
    },
  };
}

/** Writes both documents into `directory` under the names the api's Lambda reads them by. */
export function writePublishedDocuments(directory: string): void {
  mkdirSync(directory, { recursive: true });
  writeFileSync(
    join(directory, PUBLISHED_FILES.openApi),
    `${JSON.stringify(openApiDocument(ROUTE_TABLE), null, 2)}\n`,
  );
  writeFileSync(
    join(directory, PUBLISHED_FILES.snapshotSchema),
    `${JSON.stringify(snapshotJsonSchema(), null, 2)}\n`,
  );
}
