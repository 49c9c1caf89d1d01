import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApiHandler } from './api-server.ts';
import { apiEvent } from './host-registration.ts';
import { repoRoot } from './state-dir.ts';

/** The group `npm start` runs: a small telephony cluster (load balancer, call routers, media, a database). */
export const DEMO_GROUP = 'demo';
export const DEMO_DEFINITION = join(repoRoot(), 'events', 'groups', 'demo-telephony.yaml');

export interface DemoGroupOutcome {
  /** created, or kept: a group from an earlier run is left as it is (rollouts may have moved it on). */
  definition: 'created' | 'kept';
  definitionVersion: string;
  executionId?: string;
}

/**
 * Defines the demo group from its YAML file the first time (If-None-Match: *), and starts it, through the real
 * api handler: the same requests `fleetfold apply` and `fleetfold start` make. On later starts the stored group
 * is the truth — a succeeded rollout became its definition — so the file does not overwrite it; `fleetfold
 * apply -f events/groups/demo-telephony.yaml` does that on purpose.
 */
export async function applyDemoGroup(api: ApiHandler): Promise<DemoGroupOutcome> {
  const yaml = await readFile(DEMO_DEFINITION, 'utf8');
  const put = await api({
    ...apiEvent('PUT', `/groups/${DEMO_GROUP}`, yaml, 'application/yaml'),
    headers: { accept: 'application/json', 'content-type': 'application/yaml', 'if-none-match': '*' },
  });
  let definitionVersion: string;
  if (put.statusCode === 201) {
    definitionVersion = etag(put.headers);
  } else if (put.statusCode === 412) {
    const current = await api(apiEvent('GET', `/groups/${DEMO_GROUP}`));
    if (current.statusCode !== 200) {
      throw new Error(`GET /groups/${DEMO_GROUP} answered ${current.statusCode}: ${current.body}`);
    }
    definitionVersion = etag(current.headers);
  } else {
    throw new Error(`PUT /groups/${DEMO_GROUP} answered ${put.statusCode}: ${put.body}`);
  }
  const started = await api(apiEvent('POST', `/groups/${DEMO_GROUP}/start`));
  if (started.statusCode !== 202) {
    throw new Error(`POST /groups/${DEMO_GROUP}/start answered ${started.statusCode}: ${started.body}`);
  }
  const { executionId } = JSON.parse(started.body) as { executionId?: string };
  return {
    definition: put.statusCode === 201 ? 'created' : 'kept',
    definitionVersion,
    ...(executionId ? { executionId } : {}),
  };
}

function etag(headers: Record<string, unknown> | undefined): string {
  const value = headers?.ETag ?? headers?.etag;
  return String(value ?? '').replaceAll('"', '');
}
