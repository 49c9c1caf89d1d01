import { access, chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostSpec } from './local-fleet.ts';

/** What the demo group is made of: host type → count, roles and services. */
export interface DemoHostType {
  hostType: string;
  count: number;
  roles: string[];
  services: Record<string, string>;
}

export const DEMO_GROUP = 'demo';

export const DEMO_HOST_TYPES: readonly DemoHostType[] = [
  { hostType: 'lb', count: 1, roles: ['lb'], services: { lb: '1.0.0' } },
  { hostType: 'call-router', count: 2, roles: ['call-router'], services: { 'call-router': '1.4.0' } },
  { hostType: 'media', count: 2, roles: ['media'], services: { media: '2.1.0' } },
  { hostType: 'db', count: 1, roles: ['db'], services: { db: '13.2' } },
];

/** Stable ids (`demo-media-2`) so a restart finds the hosts it registered before. */
export function demoHostSpecs(hostSecretsDir: string): HostSpec[] {
  const specs: HostSpec[] = [];
  for (const type of DEMO_HOST_TYPES) {
    for (let n = 1; n <= type.count; n++) {
      const hostId = `${DEMO_GROUP}-${type.hostType}-${n}`;
      specs.push({
        hostId,
        group: DEMO_GROUP,
        hostType: type.hostType,
        roles: type.roles,
        services: type.services,
        secretFile: join(hostSecretsDir, `${hostId}.secret`),
        seed: specs.length,
      });
    }
  }
  return specs;
}

export interface ApiAccess {
  url: string;
  token: string;
}

export type Registration = 'registered' | 'reused';

/**
 * Makes sure the host is registered and its secret is on disk. The secret is shown only at registration,
 * so a host the control plane knows but whose secret file is gone cannot be recovered: that fails, naming
 * the way out.
 */
export async function ensureRegistered(api: ApiAccess, spec: HostSpec): Promise<Registration> {
  const headers = { authorization: `Bearer ${api.token}`, accept: 'application/json' };
  const existing = await fetch(`${api.url}/hosts/${encodeURIComponent(spec.hostId)}`, { headers });
  const haveSecret = await access(spec.secretFile).then(
    () => true,
    () => false,
  );
  if (existing.status === 200) {
    if (haveSecret) return 'reused';
    throw new Error(
      `host ${spec.hostId} is registered but ${spec.secretFile} is missing; delete the state folder to start afresh`,
    );
  }
  if (existing.status !== 404) {
    throw new Error(`GET /hosts/${spec.hostId} answered ${existing.status}: ${await existing.text()}`);
  }
  const response = await fetch(`${api.url}/hosts`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({
      hostId: spec.hostId,
      group: spec.group,
      hostType: spec.hostType,
      roles: spec.roles,
    }),
  });
  if (response.status !== 201) {
    throw new Error(`registering ${spec.hostId} answered ${response.status}: ${await response.text()}`);
  }
  const { secret } = (await response.json()) as { secret?: unknown };
  if (typeof secret !== 'string' || secret === '')
    throw new Error(`registering ${spec.hostId} returned no secret`);
  // A secret file left from an earlier, wiped store is replaced: the new registration is the truth.
  await mkdir(join(spec.secretFile, '..'), { recursive: true, mode: 0o700 });
  await writeFile(spec.secretFile, `${secret}\n`, { mode: 0o600 });
  await chmod(spec.secretFile, 0o600);
  return 'registered';
}
