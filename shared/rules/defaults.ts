/**
 * Rules every group has, before its own: they are what keeps a group at its desired state without anyone
 * writing a rule, and GET /groups/{name} shows them first so the effective behaviour is all in one place.
 */
import { compileRule } from './compile.ts';
import type { CompiledRule } from './types.ts';

export interface DefaultRule {
  name: string;
  when: string;
  then: string;
}

function defaultRule(name: string, when: string, then: string): DefaultRule {
  return { name, when, then };
}

export const DEFAULT_RULES: readonly DefaultRule[] = [
  defaultRule('boot-missing-hosts', 'group.running and hosts.count < hosts.desired', 'boot'),
  defaultRule('replace-failed-host', 'host.status == failed or host.status == lost', 'replace'),
  defaultRule(
    'restart-failed-service',
    'host.status == running and host.services.failed > 0 and host.restarts < 3',
    'restart-service',
  ),
  defaultRule(
    'replace-after-restarts',
    'host.services.failed > 0 and host.restarts >= 3',
    'replace, alarm("service keeps failing after 3 restarts in 10 minutes")',
  ),
  defaultRule('add-to-lb', 'host.balanced and host.healthy and not host.inLb', 'add-to-lb'),
  defaultRule('remove-from-lb', 'host.balanced and not host.healthy and host.inLb', 'remove-from-lb'),
  // Crashes over the whole group: a per-host-type alarm would need one rule per host type.
  defaultRule('alarm-repeated-crashes', 'hosts.crashes >= 3', 'alarm("repeated host failures")'),
];

function compileDefaults(): readonly CompiledRule[] {
  return DEFAULT_RULES.map((rule) => {
    // The defaults name no host type or service, so they compile for every group.
    const compiled = compileRule(
      rule,
      { id: `default:${rule.name}`, source: 'default', index: -1 },
      undefined,
      `default rule ${rule.name}`,
      (part) => `defaults.${rule.name}.${part}`,
    );
    if (Array.isArray(compiled)) throw new Error(compiled.map((problem) => problem.message).join('; '));
    return compiled;
  });
}

const COMPILED_DEFAULTS = compileDefaults();

/** The rules a group runs by: the defaults, then its definition's own, in order. Fresh copies each call. */
export function effectiveRules(definition: readonly CompiledRule[]): CompiledRule[] {
  return [...COMPILED_DEFAULTS, ...definition].map((rule) => structuredClone(rule));
}
