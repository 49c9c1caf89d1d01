import { DEFAULT_HEARTBEAT_COALESCE_SECONDS, HEARTBEAT_COALESCE_ENV } from '../shared/hosts/liveness.ts';

/** The only place that reads process.env: each function's config.ts asks for what it needs by name. */
export type Env = Record<string, string | undefined>;

export function required(env: Env, name: string): string {
  const value = env[name];
  if (value === undefined || value === '') throw new Error(`missing environment variable ${name}`);
  return value;
}

export function numberOr(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0)
    throw new Error(`${name} must be a non-negative number, got "${raw}"`);
  return value;
}

/**
 * The ingest's heartbeat coalescing window: the ingest coalesces by it, the monitor and the reconcile allow for
 * it before they call a host lost, so all three read the one variable.
 */
export function heartbeatCoalesceSeconds(env: Env): number {
  return numberOr(env, HEARTBEAT_COALESCE_ENV, DEFAULT_HEARTBEAT_COALESCE_SECONDS);
}
