import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { type LocalCloud, type LocalCloudOptions, startLocalCloud } from '../../infra/local/cloud.ts';

/** A fresh embedded cloud in a temporary folder; `stop` also removes the folder. */
export async function testCloud(options: Partial<LocalCloudOptions> = {}): Promise<LocalCloud> {
  const stateDir = await mkdtemp(join(tmpdir(), 'fleetfold-test-'));
  const cloud = await startLocalCloud({
    stateDir,
    withApi: false,
    pollerWaitSeconds: 1,
    log: () => {},
    ...options,
  });
  return {
    ...cloud,
    stop: async () => {
      await cloud.stop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

export function apiEvent(
  method: string,
  path: string,
  options: { query?: Record<string, string>; body?: unknown; headers?: Record<string, string> } = {},
): APIGatewayProxyEvent {
  return {
    httpMethod: method,
    path,
    resource: '/{proxy+}',
    headers: { 'content-type': 'application/json', ...options.headers },
    multiValueHeaders: {},
    queryStringParameters: options.query ?? null,
    multiValueQueryStringParameters: null,
    pathParameters: null,
    stageVariables: null,
    body: options.body === undefined ? null : JSON.stringify(options.body),
    isBase64Encoded: false,
    requestContext: { requestId: 'test' } as APIGatewayProxyEvent['requestContext'],
  };
}

/** Registers a host through the real api handler and returns its secret. */
export async function registerHost(
  cloud: LocalCloud,
  hostId: string,
  hostType = 'call-router',
  group = 'demo',
): Promise<string> {
  const response = await cloud.apiHandler(
    apiEvent('POST', '/hosts', { body: { hostId, group, hostType, roles: [hostType] } }),
  );
  if (response.statusCode !== 201)
    throw new Error(`register ${hostId}: ${response.statusCode} ${response.body}`);
  return JSON.parse(response.body).secret;
}

export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
