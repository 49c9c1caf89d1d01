import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Validator } from '@seriousme/openapi-schema-validator';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod/mini';
import { openApiDocument, problemSchemaName, snapshotJsonSchema } from '../functions/api/openapi.ts';
import { PROBLEM_TYPES, problemTypeUri } from '../functions/api/problem-types.ts';
import { ROUTE_TABLE, type RouteSpec } from '../functions/api/route-table.ts';
import { matchRoute } from '../functions/api/router.ts';
import { ControlApi } from '../infra/constructs/control-api.ts';
import { DEMO_YAML, groupsHarness, type Response } from './support/groups-harness.ts';

type Json = Record<string, unknown>;
type Operation = { operationId: string; responses: Record<string, Json>; parameters: Json[] };

const ROOT = path.resolve(import.meta.dirname, '..');
const document = openApiDocument(ROUTE_TABLE) as Json & {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Json> };
};

function operationOf(route: RouteSpec): Operation {
  const operation = document.paths[route.path]?.[route.method.toLowerCase()];
  if (!operation) throw new Error(`${route.method} ${route.path} is not in the document`);
  return operation;
}

/** Every `$ref` anywhere under `value`. */
function refsIn(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(refsIn);
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, inner]) =>
    key === '$ref' && typeof inner === 'string' ? [inner] : refsIn(inner),
  );
}

function resolvePointer(root: unknown, ref: string): unknown {
  return ref
    .slice(2)
    .split('/')
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'))
    .reduce<unknown>((node, part) => (node as Json | undefined)?.[part], root);
}

function sourceFiles(directory: string): string[] {
  return readdirSync(directory).flatMap((entry) => {
    const full = path.join(directory, entry);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return full.endsWith('.ts') ? [full] : [];
  });
}

/**
 * Every (status, kind) a source file can answer with, found the way a reviewer would grep: `problem(413,
 * 'too-large', …)`, `new FleetfoldError('validation', 415, …)` and the error classes' `super('conflict', 412, …)`.
 */
function problemsInSources(): { status: number; kind: string; file: string }[] {
  const files = ['functions', 'shared', 'infra/local'].flatMap((directory) =>
    sourceFiles(path.join(ROOT, directory)),
  );
  return files.flatMap((file) => {
    const text = readFileSync(file, 'utf8');
    const found = [
      ...[...text.matchAll(/\bproblem\(\s*(\d{3}),\s*'([a-z-]+)'/g)].map((m) => ({
        status: m[1],
        kind: m[2],
      })),
      ...[...text.matchAll(/(?:\bsuper|new FleetfoldError)\(\s*'([a-z-]+)',\s*(\d{3})\b/g)].map((m) => ({
        status: m[2],
        kind: m[1],
      })),
    ];
    return found.map(({ status, kind }) => ({ status: Number(status), kind: String(kind), file }));
  });
}

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3.1 by @seriousme/openapi-schema-validator', async () => {
    const validator = new Validator();
    const result = await validator.validate(document);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('has exactly the route table: each route one path and method, with its operation id', () => {
    const documented = Object.entries(document.paths).flatMap(([pathName, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${pathName}`),
    );
    expect(documented.sort()).toEqual(ROUTE_TABLE.map((route) => `${route.method} ${route.path}`).sort());
    for (const route of ROUTE_TABLE) expect(operationOf(route).operationId).toBe(route.operationId);
    const operationIds = ROUTE_TABLE.map((route) => route.operationId);
    expect(new Set(operationIds).size).toBe(operationIds.length);
  });

  it('declares each path parameter of a route, in the order its path names them', () => {
    for (const route of ROUTE_TABLE) {
      const inPath = [...route.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      expect(Object.keys(route.pathParameters), route.path).toEqual(inPath);
      const documented = operationOf(route)
        .parameters.filter((parameter) => parameter.in === 'path')
        .map((parameter) => parameter.name);
      expect(documented, route.path).toEqual(inPath);
    }
  });

  it('lists every problem type the sources can answer, with its status', () => {
    const found = problemsInSources();
    // The scan itself must see the handler's and the domain's problems, or it proves nothing.
    expect(found.map((entry) => entry.kind)).toEqual(
      expect.arrayContaining(['no-route', 'method-not-allowed', 'not-found', 'conflict', 'too-large']),
    );
    for (const { status, kind, file } of found) {
      const type = PROBLEM_TYPES.find((entry) => entry.kind === kind);
      expect(type?.statuses, `${kind} ${status} in ${path.relative(ROOT, file)}`).toContain(status);
      const schema = document.components.schemas[problemSchemaName(kind)];
      expect(schema?.properties ?? {}, kind).toMatchObject({
        type: { const: problemTypeUri(kind) },
        status: { enum: expect.arrayContaining([status]) },
      });
    }
  });

  it("answers each route's problems under their status as application/problem+json", () => {
    for (const route of ROUTE_TABLE) {
      const { responses } = operationOf(route);
      for (const { status, kind } of [
        ...route.problems,
        { status: 400, kind: 'validation' },
        { status: 500, kind: 'internal' },
      ]) {
        const content = responses[String(status)]?.content as Record<string, { schema: Json }> | undefined;
        const schema = content?.['application/problem+json']?.schema;
        expect(schema, `${route.operationId} ${status}`).toBeDefined();
        expect(refsIn(schema), `${route.operationId} ${status}`).toContain(
          `#/components/schemas/${problemSchemaName(kind)}`,
        );
      }
    }
  });

  it('offers JSON and XML where the route serves both, and JSON only for the documents', () => {
    for (const route of ROUTE_TABLE) {
      for (const response of route.responses) {
        const content = operationOf(route).responses[String(response.status)]?.content as Json;
        expect(Object.keys(content).sort(), route.operationId).toEqual(
          route.representations === 'json+xml'
            ? ['application/json', 'application/xml']
            : ['application/json'],
        );
      }
    }
  });

  it('resolves every $ref inside the document', () => {
    const refs = refsIn(document);
    expect(refs.length).toBeGreaterThan(ROUTE_TABLE.length);
    for (const ref of refs) {
      expect(ref.startsWith('#/'), ref).toBe(true);
      expect(resolvePointer(document, ref), ref).toBeDefined();
    }
  });

  it('offers SigV4 (AWS) and bearer (local) security', () => {
    expect(document.security).toEqual([{ sigv4: [] }, { bearer: [] }]);
    expect(document.components).toMatchObject({
      securitySchemes: {
        sigv4: { type: 'apiKey', in: 'header', name: 'Authorization' },
        bearer: { type: 'http', scheme: 'bearer' },
      },
    });
  });

  it('carries the snapshot schema as a component, the same one GET /schemas/snapshot.json serves', () => {
    const { $schema, title: _title, description: _d, ...served } = snapshotJsonSchema();
    expect($schema).toBe('https://json-schema.org/draft/2020-12/schema');
    const { description: _description, ...component } = document.components.schemas.Snapshot as Json;
    expect(component).toEqual(served);
    expect(served).toMatchObject({
      type: 'object',
      required: expect.arrayContaining(['hostId', 'seq', 'signedAt', 'state', 'signature']),
      additionalProperties: false,
    });
  });
});

describe('GET /openapi.json and GET /schemas/snapshot.json through the api handler', () => {
  it('serves the generated documents as JSON, even to a client asking for XML', async () => {
    const api = groupsHarness();
    const openapi = await api.request('GET', '/openapi.json', { headers: { Accept: 'application/xml' } });
    expect(openapi.status).toBe(200);
    expect(openapi.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(openapi.body).toEqual(document);
    const schema = await api.request('GET', '/schemas/snapshot.json');
    expect(schema.status).toBe(200);
    expect(schema.body).toEqual(snapshotJsonSchema());
    expect((await api.request('GET', '/openapi.json', { query: { pretty: '1' } })).status).toBe(400);
    expect((await api.request('POST', '/openapi.json')).headers.allow).toBe('GET');
  });
});

describe('npm run openapi', () => {
  let outDir: string;
  beforeAll(() => {
    outDir = mkdtempSync(path.join(tmpdir(), 'fleetfold-openapi-'));
  });
  afterAll(() => rmSync(outDir, { recursive: true, force: true }));

  it('writes the documents the api serves', async () => {
    const tsx = path.join(ROOT, 'node_modules', '.bin', 'tsx');
    await promisify(execFile)(tsx, [path.join(ROOT, 'scripts', 'openapi.ts'), outDir], { cwd: ROOT });
    expect(JSON.parse(readFileSync(path.join(outDir, 'openapi.json'), 'utf8'))).toEqual(document);
    expect(JSON.parse(readFileSync(path.join(outDir, 'snapshot.schema.json'), 'utf8'))).toEqual(
      snapshotJsonSchema(),
    );
  }, 30_000);
});

describe('the responses the api really gives', () => {
  /** Checks one answer against the route's documented response: its schema, or a problem listed for it. */
  function expectDocumented(method: string, requestPath: string, response: Response): RouteSpec {
    const match = matchRoute(ROUTE_TABLE, method, requestPath);
    if (match.kind !== 'found') throw new Error(`${method} ${requestPath} matches no route`);
    const { route } = match;
    const label = `${method} ${requestPath} → ${response.status}`;
    const documented = route.responses.find((entry) => entry.status === response.status);
    if (documented) {
      const parsed = z.safeParse(documented.schema, response.body);
      expect(parsed.success ? [] : parsed.error.issues, label).toEqual([]);
    } else {
      const problems = operationOf(route).responses[String(response.status)];
      expect(problems, label).toBeDefined();
      expect(refsIn(problems), label).toContain(
        `#/components/schemas/${problemSchemaName(String(response.body.type).replace(problemTypeUri(''), ''))}`,
      );
    }
    return route;
  }

  it('match the documented schemas along an operator session', async () => {
    const api = groupsHarness();
    const succeeded = new Set<string>();
    const call = async (
      method: string,
      requestPath: string,
      options: Parameters<typeof api.request>[2] = {},
    ) => {
      const response = await api.request(method, requestPath, options);
      const route = expectDocumented(method, requestPath, response);
      if (response.status < 300) succeeded.add(route.operationId);
      return response;
    };
    const json = (body: unknown) => ({
      body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json' },
    });

    await call('PUT', '/groups/demo', { body: DEMO_YAML, headers: { 'Content-Type': 'application/yaml' } });
    await call('PUT', '/groups/demo', { body: DEMO_YAML, headers: { 'Content-Type': 'text/plain' } });
    await call('GET', '/groups');
    await call('GET', '/groups/demo');
    await call('GET', '/groups/demo/history');
    await call('POST', '/groups/demo/start');
    const rollout = await call(
      'POST',
      '/groups/demo/rollouts',
      json({ service: 'call-router', version: '1.5.0' }),
    );
    const id = String(rollout.body.id);
    await call('GET', `/rollouts/${id}`);
    await call('POST', `/rollouts/${id}/pause`);
    await call('POST', `/rollouts/${id}/resume`);
    await call('POST', `/rollouts/${id}/abort`);
    await call('POST', `/rollouts/${id}/revert`);
    await call('POST', '/groups/demo/services/media/stop', json({}));
    await call('POST', '/groups/demo/stop');
    await call('DELETE', '/groups/demo');
    await call('GET', '/alarms');
    await call(
      'POST',
      '/hosts',
      json({ hostId: 'cr-1', group: 'demo', hostType: 'call-router', roles: ['call-router'] }),
    );
    await call(
      'POST',
      '/hosts',
      json({ hostId: 'cr-1', group: 'demo', hostType: 'call-router', roles: ['call-router'] }),
    );
    await call('POST', '/hosts', json({ group: 'demo', hostType: 'call-router', roles: ['call-router'] }));
    await call('GET', '/hosts');
    await call('GET', '/hosts', { query: { stauts: 'running' } });
    await call('GET', '/hosts/cr-1');
    await call('GET', '/hosts/nobody');
    await call('GET', '/hosts/cr-1/history');
    await call('GET', '/hosts/cr-1/state');
    await call('GET', '/hosts/cr-1/diff', { query: { from: '1', to: '1' } });
    await call('GET', '/hosts/cr-1/desired');
    await call('GET', '/hosts/cr-1/drift');
    await call('GET', '/cost');
    await call('GET', '/openapi.json');
    await call('GET', '/schemas/snapshot.json');

    expect([...succeeded].sort()).toEqual(
      expect.arrayContaining([
        'putGroup',
        'listGroups',
        'getGroup',
        'groupHistory',
        'startGroup',
        'stopGroup',
        'requestRollout',
        'getRollout',
        'pauseRollout',
        'listAlarms',
        'registerHost',
        'listHosts',
        'getHost',
        'hostHistory',
        'hostStateAt',
        'hostDiff',
        'getCost',
        'getOpenApi',
        'getSnapshotSchema',
      ]),
    );
  });
});

describe('matching requests against the route table', () => {
  const segment = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/);

  it('finds each route by its own path, handing the parameters over in order', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ROUTE_TABLE),
        fc.array(segment, { minLength: 3, maxLength: 3 }),
        (route, values) => {
          let index = 0;
          const names: string[] = [];
          const concrete = route.path.replace(/\{([^}]+)\}/g, () => {
            names.push(String(values[index]));
            return encodeURIComponent(String(values[index++]));
          });
          const match = matchRoute(ROUTE_TABLE, route.method, concrete);
          expect(match).toMatchObject({ kind: 'found', parameters: names });
          // A literal segment of another route may take precedence (none does today): then it is that route's path.
          if (match.kind === 'found') expect(match.route.path).toBe(route.path);
        },
      ),
    );
  });

  it("answers an unlisted method with the path's methods, in table order", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ROUTE_TABLE),
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'),
        (route, method) => {
          const methods = ROUTE_TABLE.filter((entry) => entry.path === route.path).map(
            (entry) => entry.method,
          );
          const match = matchRoute(ROUTE_TABLE, method, route.path.replace(/\{[^}]+\}/g, 'x'));
          if (methods.includes(method as RouteSpec['method'])) expect(match.kind).toBe('found');
          else expect(match).toEqual({ kind: 'wrong-method', allow: methods });
        },
      ),
    );
  });
});

describe('the API Gateway resources', () => {
  let template: Template;
  beforeAll(() => {
    const stack = new Stack(new App(), 'OpenApiTest');
    const handler = new lambda.Function(stack, 'Handler', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('export const handler = async () => ({ statusCode: 200, body: "" });'),
    });
    new ControlApi(stack, 'ControlApi', { handler });
    template = Template.fromStack(stack);
  });

  type Resource = { Properties: Json & { ParentId?: unknown; PathPart?: string; ResourceId?: unknown } };

  /** The path of every API Gateway resource, walking PathParts up to the root. */
  function resourcePaths(): Map<string, string> {
    const resources = template.findResources('AWS::ApiGateway::Resource') as Record<string, Resource>;
    const pathOf = (logicalId: string): string => {
      const resource = resources[logicalId] as Resource;
      const parent = resource.Properties.ParentId as { Ref?: string };
      const prefix = parent.Ref ? pathOf(parent.Ref) : '';
      return `${prefix}/${resource.Properties.PathPart}`;
    };
    return new Map(Object.keys(resources).map((logicalId) => [logicalId, pathOf(logicalId)]));
  }

  it('has one method per route, named by its operation id, with IAM auth and validation', () => {
    const paths = resourcePaths();
    const methods = Object.values(
      template.findResources('AWS::ApiGateway::Method') as Record<string, Resource>,
    ).map(({ Properties: method }) => {
      const resource = method.ResourceId as { Ref?: string };
      const at = resource.Ref ? paths.get(resource.Ref) : '/';
      expect(method.AuthorizationType).toBe('AWS_IAM');
      expect(method.RequestValidatorId).toBeDefined();
      return `${method.HttpMethod} ${at} ${method.OperationName}`;
    });
    expect(methods.sort()).toEqual(
      ROUTE_TABLE.map((route) => `${route.method} ${route.path} ${route.operationId}`).sort(),
    );
  });

  it('requires the path parameters each route names', () => {
    const methods = Object.values(
      template.findResources('AWS::ApiGateway::Method') as Record<string, Resource>,
    );
    for (const route of ROUTE_TABLE) {
      const method = methods.find(
        (entry) => entry.Properties.OperationName === route.operationId,
      ) as Resource;
      const expected = Object.keys(route.pathParameters).map((name) => [`method.request.path.${name}`, true]);
      expect(method.Properties.RequestParameters ?? {}, route.operationId).toEqual(
        Object.fromEntries(expected),
      );
    }
  });

  it('validates each required JSON body against a draft-4 model generated from its zod schema', () => {
    const models = template.findResources('AWS::ApiGateway::Model') as Record<string, Resource>;
    const byName = Object.fromEntries(
      Object.entries(models).map(([logicalId, model]) => [
        model.Properties.Name as string,
        { logicalId, model },
      ]),
    );
    expect(Object.keys(byName).sort()).toEqual(['RegisterHost', 'RolloutRequest']);
    for (const { model } of Object.values(byName)) {
      expect(model.Properties.Schema).toMatchObject({ $schema: 'http://json-schema.org/draft-04/schema#' });
      // Draft 4 has no propertyNames or const: zod's draft-4 target must have left them out.
      expect(JSON.stringify(model.Properties.Schema)).not.toMatch(/"propertyNames"|"const"/);
    }
    const methods = Object.values(
      template.findResources('AWS::ApiGateway::Method') as Record<string, Resource>,
    );
    for (const [operationId, name] of [
      ['registerHost', 'RegisterHost'],
      ['requestRollout', 'RolloutRequest'],
    ] as const) {
      const method = methods.find((entry) => entry.Properties.OperationName === operationId);
      expect(method?.Properties.RequestModels).toEqual({
        'application/json': { Ref: byName[name]?.logicalId },
      });
    }
  });

  it('answers requests API Gateway refuses as validation problems', () => {
    for (const type of ['BAD_REQUEST_BODY', 'BAD_REQUEST_PARAMETERS']) {
      template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
        ResponseType: type,
        StatusCode: '400',
        ResponseParameters: { 'gatewayresponse.header.Content-Type': "'application/problem+json'" },
        ResponseTemplates: {
          'application/json': `{"type":"${problemTypeUri('validation')}","title":"Bad Request","status":400,"detail":$context.error.messageString}`,
        },
      });
    }
  });
});
