import { access, chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type HostCommandDeps, retireHost } from '../../shared/hosts/host-commands.ts';
import type { ApiHandler } from './api-server.ts';

export interface HostIdentity {
  hostId: string;
  group: string;
  hostType: string;
  roles: string[];
}

export type Registration = 'registered' | 'reused';

/**
 * Makes sure the host is registered (through the real api handler, in-process) and its secret is on disk.
 * The secret is shown only at registration, so a host the control plane knows but whose secret file is gone
 * cannot be recovered: that fails, naming the way out.
 */
export async function ensureRegistered(
  api: ApiHandler,
  host: HostIdentity,
  secretFile: string,
): Promise<Registration> {
  const existing = await api(apiEvent('GET', `/hosts/${encodeURIComponent(host.hostId)}`));
  const haveSecret = await access(secretFile).then(
    () => true,
    () => false,
  );
  if (existing.statusCode === 200) {
    if (haveSecret) return 'reused';
    throw new Error(
      `host ${host.hostId} is registered but ${secretFile} is missing; delete the state folder to start afresh`,
    );
  }
  if (existing.statusCode !== 404) {
    throw new Error(`GET /hosts/${host.hostId} answered ${existing.statusCode}: ${existing.body}`);
  }
  const { hostId, group, hostType, roles } = host;
  const response = await api(apiEvent('POST', '/hosts', JSON.stringify({ hostId, group, hostType, roles })));
  if (response.statusCode !== 201) {
    throw new Error(`registering ${host.hostId} answered ${response.statusCode}: ${response.body}`);
  }
  const { secret } = JSON.parse(response.body) as { secret?: unknown };
  if (typeof secret !== 'string' || secret === '')
    throw new Error(`registering ${hostId} returned no secret`);
  // A secret file left from an earlier, wiped store is replaced: the new registration is the truth.
  await mkdir(dirname(secretFile), { recursive: true, mode: 0o700 });
  await writeFile(secretFile, `${secret}\n`, { mode: 0o600 });
  await chmod(secretFile, 0o600);
  return 'registered';
}

/**
 * What SSM's DeleteParameter is on EC2: the host's registration ends (the ingest refuses it from then on) and
 * its secret file goes. Idempotent: a missing file, or a host never registered, is no error.
 */
export async function revokeRegistration(
  stores: HostCommandDeps,
  hostId: string,
  secretFile: string,
): Promise<void> {
  await retireHost(stores, hostId, 'secret revoked');
  await rm(secretFile, { force: true });
}

/** The members of an API Gateway proxy event the api handler reads (see ApiEvent in functions/api/handler.ts). */
export function apiEvent(method: string, path: string, body?: string, contentType = 'application/json') {
  return {
    httpMethod: method,
    path,
    headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': contentType }) },
    queryStringParameters: null,
    body: body ?? null,
    isBase64Encoded: false,
  } as unknown as Parameters<ApiHandler>[0];
}
