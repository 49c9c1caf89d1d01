/**
 * Group definitions: text (YAML or JSON) → a checked GroupDefinition → a CompiledGroup the planner can use.
 * Every rejection names its culprit: a field path, a service, a selector position or a cycle.
 */
import { TooLargeError, ValidationError } from '../errors.ts';
import { checkRules } from '../rules/compile.ts';
import { effectiveRules } from '../rules/defaults.ts';
import { checkScalingPolicy } from '../scaling/policy.ts';
import { type DefinitionIssue, describeIssues, validateGroupDefinition } from './definition-schema.ts';
import { assertAcyclic, dependencyLevels, dependentsOf, groupByLevel } from './graph.ts';
import type { CompiledGroup, CompiledHostType, GroupDefinition, HostTypeDefinition } from './model.ts';
import { describeSelector, parseSelector, SelectorError, selectorSize } from './selectors.ts';
import { readDefinitionYaml, YamlReadError } from './yaml-reader.ts';

export { validateGroupDefinition } from './definition-schema.ts';

export type DefinitionFormat = 'yaml' | 'json';

/** A definition is a page of text; anything near this is a mistake or an attack (alias bombs included). */
export const MAX_DEFINITION_BYTES = 256 * 1024;

/** "demo.yaml" → yaml, "demo.json" → json; undefined for anything else. */
export function definitionFormat(fileName: string): DefinitionFormat | undefined {
  if (/\.ya?ml$/i.test(fileName)) return 'yaml';
  if (/\.json$/i.test(fileName)) return 'json';
  return undefined;
}

export function parseGroupDefinition(text: string, format: DefinitionFormat): GroupDefinition {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_DEFINITION_BYTES) {
    throw new TooLargeError(`group definition is ${bytes} bytes, above the ${MAX_DEFINITION_BYTES} limit`, {
      bytes,
      limit: MAX_DEFINITION_BYTES,
    });
  }
  return validateGroupDefinition(format === 'yaml' ? readYaml(text) : readJson(text));
}

function readJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ValidationError(
      `group definition is not valid JSON: ${(error as Error).message}`,
      {},
      { cause: error },
    );
  }
}

/**
 * YAML reads `version: 13.2` as the number 13.2 and `version: 2.10` as 2.1; an operator means the text they
 * typed, so versions and config values keep their source text whatever YAML thinks they are (yaml-reader.ts).
 */
function readYaml(text: string): unknown {
  try {
    return readDefinitionYaml(text);
  } catch (error) {
    if (!(error instanceof YamlReadError)) throw error;
    const { line, column } = error.position ?? {};
    throw new ValidationError(
      `group definition is not valid YAML: ${error.message}`,
      { line, column },
      { cause: error },
    );
  }
}

/* ───────────── compiling ───────────── */

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function checkCounts(at: string, hostType: HostTypeDefinition, problems: DefinitionIssue[]): void {
  const { count, min, max } = hostType;
  if (count === undefined && min === undefined) {
    problems.push({ path: at, message: 'give a count, or a min (and max) to scale between' });
  }
  if (min !== undefined && max !== undefined && min > max) {
    problems.push({ path: `${at}.min`, message: `min ${min} is above max ${max}` });
  }
  if (count !== undefined && min !== undefined && count < min) {
    problems.push({ path: `${at}.count`, message: `count ${count} is below min ${min}` });
  }
  if (count !== undefined && max !== undefined && count > max) {
    problems.push({ path: `${at}.count`, message: `count ${count} is above max ${max}` });
  }
}

/**
 * A scaled host type moves between its min and max, so it needs both; the policy's own checks (targets of
 * channels it serves, thresholds the right way round, schedules under max) name fields under `<at>.scaling`.
 */
function checkScaling(at: string, hostType: HostTypeDefinition, problems: DefinitionIssue[]): void {
  if (hostType.scaling === undefined) return;
  for (const bound of ['min', 'max'] as const) {
    if (hostType[bound] === undefined)
      problems.push({
        path: `${at}.${bound}`,
        message: `is required with scaling (the autoscaler keeps within min and max)`,
      });
  }
  if (hostType.min === undefined || hostType.max === undefined) return;
  problems.push(...checkScalingPolicy(hostType.scaling, hostType, { at: `${at}.scaling` }).problems);
}

/**
 * A wave or budget is a size, and must let at least one host through when there is one, else a rollout could
 * never finish. Sizes only grow with the total, so checking a total of 1 covers every total.
 */
function checkSize(path: string, text: string, problems: DefinitionIssue[]): void {
  let selector: ReturnType<typeof parseSelector>;
  try {
    selector = parseSelector(text);
  } catch (error) {
    if (!(error instanceof SelectorError)) throw error;
    problems.push({ path, message: error.message.split('\n')[0] ?? error.message });
    return;
  }
  if (selector.filters.length > 0) {
    const filters = describeSelector({ filters: selector.filters, sizes: [] });
    problems.push({
      path,
      message: `"${text}" filters hosts (${filters}); expected a size: a count, a percentage, all, max(…) or min(…)`,
    });
  } else if (selectorSize(selector, 1) === 0) {
    problems.push({
      path,
      message: `"${text}" allows no host out of one, so nothing could ever change; use e.g. "max(1, ${text})"`,
    });
  }
}

function checkReferences(definition: GroupDefinition, problems: DefinitionIssue[]): void {
  const known = new Set(Object.keys(definition.dependencies));
  const hostTypes = Object.entries(definition.hostTypes);
  const hosted = new Set(hostTypes.flatMap(([, hostType]) => Object.keys(hostType.services)));

  for (const [typeName, hostType] of hostTypes) {
    const at = `hostTypes.${typeName}`;
    const services = Object.keys(hostType.services);
    if (services.length === 0) {
      problems.push({ path: `${at}.services`, message: 'a host type must run at least one service' });
    }
    for (const service of services) {
      if (!known.has(service)) {
        problems.push({
          path: `${at}.services.${service}`,
          message: `unknown service "${service}" (every service must be listed under dependencies)`,
        });
      }
    }
    checkCounts(at, hostType, problems);
    checkScaling(at, hostType, problems);
    if (hostType.image !== undefined && hostType.launchTemplate !== undefined) {
      problems.push({ path: at, message: 'give an image or a launchTemplate, not both' });
    }
    for (const balanced of hostType.balances ?? []) {
      const ranElsewhere = hostTypes.some(
        ([otherName, other]) => otherName !== typeName && Object.hasOwn(other.services, balanced),
      );
      if (!known.has(balanced)) {
        problems.push({
          path: `${at}.balances`,
          message: `unknown service "${balanced}" (every service must be listed under dependencies)`,
        });
      } else if (!ranElsewhere) {
        problems.push({
          path: `${at}.balances`,
          message: `balances "${balanced}", which no other host type runs: there is nothing to balance`,
        });
      }
    }
  }

  for (const [service, dependencies] of Object.entries(definition.dependencies)) {
    for (const dependency of dependencies) {
      if (!known.has(dependency)) {
        problems.push({
          path: `dependencies.${service}`,
          message: `"${service}" depends on unknown service "${dependency}"`,
        });
      } else if (hosted.has(service) && !hosted.has(dependency)) {
        problems.push({
          path: `dependencies.${service}`,
          message: `"${service}" depends on "${dependency}", which no host type runs`,
        });
      }
    }
  }
}

/**
 * A load balancer starts after what it balances; if a balanced service (transitively) needs a service that runs
 * on the balancer's own hosts, neither can start first.
 */
function assertNoCycleThroughBalancers(definition: GroupDefinition): void {
  const graph = new Map(
    Object.entries(definition.dependencies).map(([service, deps]) => [service, [...deps]]),
  );
  for (const hostType of Object.values(definition.hostTypes)) {
    for (const service of Object.keys(hostType.services)) {
      for (const balanced of hostType.balances ?? []) {
        if (balanced !== service) graph.get(service)?.push(balanced);
      }
    }
  }
  assertAcyclic(
    Object.fromEntries(graph),
    'dependency cycle through a load balancer (it starts after what it balances)',
  );
}

function serviceIndex(
  services: readonly string[],
  hostTypes: readonly [string, HostTypeDefinition][],
  uses: (hostType: HostTypeDefinition, service: string) => boolean,
): Record<string, string[]> {
  return Object.fromEntries(
    services.map((service) => [
      service,
      hostTypes
        .filter(([, hostType]) => uses(hostType, service))
        .map(([name]) => name)
        .sort(byName),
    ]),
  );
}

/**
 * Checks a definition as a whole and derives what the planner needs. Throws a ValidationError listing every
 * problem with its field path (details.errors), or a DependencyCycleError naming the cycle (details.cycle).
 */
export function compileGroup(definition: GroupDefinition, definitionVersion: number): CompiledGroup {
  const checked = validateGroupDefinition(definition);
  const problems: DefinitionIssue[] = [];
  checkReferences(checked, problems);
  checkSize('configuration.rollout.wave', checked.configuration.rollout.wave, problems);
  checkSize('configuration.disruptionBudget', checked.configuration.disruptionBudget, problems);
  const rules = checkRules(checked.configuration.rules, ruleNames(checked));
  problems.push(...rules.problems);
  if (problems.length > 0) {
    throw new ValidationError(`group "${checked.name}" is invalid: ${describeIssues(problems)}`, {
      errors: problems,
    });
  }

  const serviceLevel = dependencyLevels(checked.dependencies);
  assertNoCycleThroughBalancers(checked);
  const levelOf = (service: string) => serviceLevel[service] ?? 0;

  const entries = Object.entries(checked.hostTypes);
  const compiled = entries.map(([name, hostType]): CompiledHostType => {
    const own = Math.max(0, ...Object.keys(hostType.services).map(levelOf));
    const aboveBalanced = Math.max(0, ...(hostType.balances ?? []).map((service) => levelOf(service) + 1));
    return {
      ...hostType,
      name,
      desired: hostType.count ?? hostType.min ?? 0,
      level: Math.max(own, aboveBalanced),
    };
  });
  const startOrder = [...compiled]
    .sort((a, b) => a.level - b.level || byName(a.name, b.name))
    .map((hostType) => hostType.name);
  const services = Object.keys(checked.dependencies).sort(byName);

  return {
    name: checked.name,
    definitionVersion,
    hostTypes: Object.fromEntries(compiled.map((hostType) => [hostType.name, hostType])),
    startOrder,
    serviceLevels: groupByLevel(serviceLevel),
    dependents: dependentsOf(checked.dependencies),
    serviceHosts: serviceIndex(services, entries, (hostType, service) =>
      Object.hasOwn(hostType.services, service),
    ),
    balancedBy: serviceIndex(services, entries, (hostType, service) =>
      (hostType.balances ?? []).includes(service),
    ),
    configuration: checked.configuration,
    rules: effectiveRules(rules.rules),
  };
}

function ruleNames(definition: GroupDefinition): { hostTypes: string[]; services: string[] } {
  return { hostTypes: Object.keys(definition.hostTypes), services: Object.keys(definition.dependencies) };
}

/**
 * Group documents written before rules were compiled have none: the definition's own rules (those that compile
 * now) after the defaults, so a read never shows a group without its effective rules.
 */
export function withEffectiveRules(compiled: CompiledGroup, definition: GroupDefinition): CompiledGroup {
  if (Array.isArray(compiled.rules)) return compiled;
  const own = checkRules(definition.configuration?.rules ?? [], ruleNames(definition)).rules;
  return { ...compiled, rules: effectiveRules(own) };
}
