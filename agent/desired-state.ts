import * as z from 'zod/mini';
import '../shared/zod.ts';
import type { DesiredHostState } from '../shared/groups/model.ts';
import { Name } from '../shared/schemas.ts';

const Text = z.string().check(z.minLength(1), z.maxLength(256));

const ServiceSpec = z.object({
  version: z.string().check(z.minLength(1), z.maxLength(64)),
  config: z.optional(z.record(z.string(), z.string())),
  /** 0 (as the demo group says) means "any free port": the host reports the one it got. */
  port: z.optional(z.int().check(z.minimum(0), z.maximum(65535))),
  /** Stopped on purpose: kept in the state, not run, reported stopped. */
  stopped: z.optional(z.literal(true)),
});

/**
 * What the agent needs of a desired state before acting on it. Signed by the control plane, so this guards
 * against a bug, not an attacker; unknown members are kept out of the way (not strict) so an older agent
 * still applies a state from a newer control plane.
 */
const DesiredHostStateSchema = z.object({
  hostId: Name,
  group: Text,
  hostType: Text,
  stateVersion: z.int().check(z.minimum(1)),
  services: z.record(Name, ServiceSpec),
  config: z.record(z.string().check(z.maxLength(256)), z.string().check(z.maxLength(4096))),
  upstreams: z.optional(z.record(Name, z.array(Text).check(z.maxLength(1000)))),
  mode: z.enum(['running', 'draining', 'stopped']),
});

export class DesiredStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DesiredStateError';
  }
}

export function parseDesiredState(raw: unknown): DesiredHostState {
  const parsed = DesiredHostStateSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'state';
    throw new DesiredStateError(`${where}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
