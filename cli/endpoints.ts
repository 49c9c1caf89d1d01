import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UsageError } from './usage.ts';

/** How requests prove who sends them: the local server's bearer token, or IAM (SigV4) on API Gateway. */
export type ApiAuth = { kind: 'bearer'; token: string } | { kind: 'sigv4'; region: string };

export interface Endpoint {
  api: string;
  auth: ApiAuth;
  /** Where the API address came from, for error messages. */
  source: string;
}

export interface EndpointInputs {
  flags: { api?: string; token?: string };
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
}

/** `npm start` writes this file: the local API's address and its token. */
export function endpointsFile(env: EndpointInputs['env'], cwd: string): string {
  const stateDir = env.FLEETFOLD_STATE_DIR;
  return stateDir ? resolve(cwd, stateDir, 'endpoints.json') : join(cwd, '.fleetfold', 'endpoints.json');
}

async function readEndpointsFile(path: string): Promise<{ api?: string; token?: string } | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UsageError(`${path} is not valid JSON; delete it or run npm start again`);
  }
  const record = (parsed ?? {}) as Record<string, unknown>;
  return {
    ...(typeof record.api === 'string' ? { api: record.api } : {}),
    ...(typeof record.token === 'string' ? { token: record.token } : {}),
  };
}

const EXECUTE_API_HOST = /^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/;

/**
 * API Gateway in AWS is behind IAM auth, so a request to it must be SigV4-signed; anything else is taken to
 * be the local server (or a proxy in front of it), which wants the bearer token.
 */
export function authFor(
  api: URL,
  token: string | undefined,
  env: EndpointInputs['env'],
): ApiAuth | undefined {
  const region = EXECUTE_API_HOST.exec(api.hostname)?.[1];
  if (region !== undefined && token === undefined) return { kind: 'sigv4', region };
  if (token !== undefined) return { kind: 'bearer', token };
  if (api.hostname.endsWith('.amazonaws.com')) {
    const fallback = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
    if (fallback) return { kind: 'sigv4', region: fallback };
  }
  return undefined;
}

/**
 * Flags win over FLEETFOLD_API / FLEETFOLD_TOKEN, which win over the endpoints file; address and token are
 * settled separately, so `--api` can point at a second local server while the token still comes from the file.
 */
export async function resolveEndpoint(inputs: EndpointInputs): Promise<Endpoint> {
  const path = endpointsFile(inputs.env, inputs.cwd);
  const needsFile = inputs.flags.api === undefined && inputs.env.FLEETFOLD_API === undefined;
  const needsToken = inputs.flags.token === undefined && inputs.env.FLEETFOLD_TOKEN === undefined;
  const file = needsFile || needsToken ? await readEndpointsFile(path) : undefined;

  const [api, source] =
    inputs.flags.api !== undefined
      ? [inputs.flags.api, '--api']
      : inputs.env.FLEETFOLD_API !== undefined
        ? [inputs.env.FLEETFOLD_API, 'FLEETFOLD_API']
        : [file?.api, path];
  if (api === undefined || api === '') {
    throw new UsageError(
      `no API address: pass --api URL, set FLEETFOLD_API, or run "npm start" here so that ${path} exists`,
    );
  }
  let url: URL;
  try {
    url = new URL(api);
  } catch {
    throw new UsageError(`the API address "${api}" (from ${source}) is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`the API address "${api}" (from ${source}) must be http or https`);
  }
  const token = inputs.flags.token ?? inputs.env.FLEETFOLD_TOKEN ?? file?.token;
  const auth = authFor(url, token === '' ? undefined : token, inputs.env);
  if (!auth) {
    throw new UsageError(
      `no token for ${api}: pass --token T, set FLEETFOLD_TOKEN, or use the token in ${path}`,
    );
  }
  return { api: api.replace(/\/+$/, ''), auth, source };
}
