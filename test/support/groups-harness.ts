import { readFileSync } from 'node:fs';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { type ApiDeps, createApiHandler } from '../../functions/api/handler.ts';
import { generatedDocuments } from '../../functions/api/openapi.ts';
import {
  FakeCipher,
  MemoryDocumentStore,
  MemoryEventStore,
  MemoryHostStore,
  RecordingReconcileStarter,
} from './memory-stores.ts';

export const DEMO_YAML = readFileSync(
  new URL('../../events/groups/demo-telephony.yaml', import.meta.url),
  'utf8',
);
export const CYCLIC_YAML = readFileSync(new URL('../../events/groups/cyclic.yaml', import.meta.url), 'utf8');

export interface RequestOptions {
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: string;
}

export interface Response {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
  raw: string;
}

/** The api handler over in-memory stores and a recording reconcile starter, with a clock the test moves. */
export function groupsHarness() {
  const events = new MemoryEventStore();
  const documents = new MemoryDocumentStore();
  const reconcile = new RecordingReconcileStarter();
  let now = new Date('2031-02-03T04:05:06.000Z');
  let ids = 0;
  const deps: ApiDeps = {
    hosts: new MemoryHostStore(),
    events,
    documents,
    reconcile,
    cipher: new FakeCipher(),
    now: () => now,
    newSecret: () => 'secret',
    newId: () => `id${++ids}`,
    published: generatedDocuments(),
  };
  const handler = createApiHandler(deps);

  async function request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const event = {
      httpMethod: method,
      path,
      headers: options.headers ?? {},
      queryStringParameters: options.query ?? null,
      pathParameters: null,
      body: options.body ?? null,
      isBase64Encoded: false,
    } as APIGatewayProxyEvent;
    const result: APIGatewayProxyResult = await handler(event);
    const headers = Object.fromEntries(
      Object.entries(result.headers ?? {}).map(([name, value]) => [name.toLowerCase(), String(value)]),
    );
    const isJson = (headers['content-type'] ?? '').includes('json');
    return {
      status: result.statusCode,
      headers,
      body: isJson ? (JSON.parse(result.body) as Record<string, unknown>) : {},
      raw: result.body,
    };
  }

  const yaml = (text: string, headers: Record<string, string> = {}) => ({
    body: text,
    headers: { 'Content-Type': 'application/yaml', ...headers },
  });

  return {
    deps,
    events,
    documents,
    reconcile,
    request,
    /** PUT /groups/{name} with a YAML body. */
    define: (name: string, text: string, headers: Record<string, string> = {}) =>
      request('PUT', `/groups/${name}`, yaml(text, headers)),
    postJson: (path: string, body: unknown) =>
      request('POST', path, { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } }),
    advance: (ms: number) => {
      now = new Date(now.getTime() + ms);
    },
    now: () => now,
  };
}

export type GroupsHarness = ReturnType<typeof groupsHarness>;
