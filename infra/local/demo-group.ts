import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApiHandler } from './api-server.ts';
import { apiEvent } from './host-registration.ts';
import { repoRoot } from './state-dir.ts';

/** The group `npm start` runs: a small telephony cluster (load balancer, call routers, media, a database). */
export const DEMO_GROUP = 'demo';
export const DEMO_DEFINITION = join(repoRoot(), 'events', 'groups', 'demo-telephony.yaml');

export interface DemoGroupOutcome {
  /** created, updated or unchanged, as PUT /groups/{name} says. */
  definition: string;
  definitionVersion: string;
  executionId?: string;
}

/**
 * Defines the demo group from its YAML file (a new version only when the file changed) and starts it, through
 * the real api handler: the same requests `fleetfold apply` and `fleetfold start` make.
 */
export async function applyDemoGroup(api: ApiHandler): Promise<DemoGroupOutcome> {
  const yaml = await readFile(DEMO_DEFINITION, 'utf8');
  const put = await api(apiEvent('PUT', `/groups/${DEMO_GROUP}`, yaml, 'application/yaml'));
  if (put.statusCode !== 200 && put.statusCode !== 201) {
    throw new Error(`PUT /groups/${DEMO_GROUP} answered ${put.statusCode}: ${put.body}`);
  }
  const { outcome } = JSON.parse(put.body) as { outcome: string };
  const started = await api(apiEvent('POST', `/groups/${DEMO_GROUP}/start`));
  if (started.statusCode !== 202) {
    throw new Error(`POST /groups/${DEMO_GROUP}/start answered ${started.statusCode}: ${started.body}`);
  }
  const { executionId } = JSON.parse(started.body) as { executionId?: string };
  return {
    definition: outcome,
    definitionVersion: String(put.headers?.ETag ?? '').replaceAll('"', ''),
    ...(executionId ? { executionId } : {}),
  };
}
