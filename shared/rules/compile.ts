/**
 * A definition's `configuration.rules` → CompiledRules: parsed, checked against the group's host types and
 * services, scoped (a condition that reads a host.* field makes a host rule) and printed in normal form.
 */
import { ValidationError } from '../errors.ts';
import type { Rule } from '../groups/model.ts';
import { RuleSyntaxError } from './lexer.ts';
import { type LocatedAction, mentionsHost, parseCondition, parseLocatedActions } from './parser.ts';
import { printActions, printCondition } from './printer.ts';
import { type CompiledRule, type Condition, HOST_ACTIONS, type RuleNames } from './types.ts';

export interface RuleProblem {
  /** e.g. "configuration.rules[2].when" */
  path: string;
  /** e.g. 'rule 2 (when): unknown field "host.staus" at position 5' */
  message: string;
}

export interface RuleIdentity {
  id: string;
  source: CompiledRule['source'];
  index: number;
}

type Part = 'when' | 'then';

/** Compiles one rule, or returns its problems (one per part at most: each parse stops at its first). */
export function compileRule(
  rule: Rule,
  identity: RuleIdentity,
  names: RuleNames | undefined,
  label: string,
  pathOf: (part: Part) => string,
): CompiledRule | RuleProblem[] {
  const problems: RuleProblem[] = [];
  const attempt = <T>(part: Part, parse: () => T): T | undefined => {
    try {
      return parse();
    } catch (error) {
      if (!(error instanceof RuleSyntaxError)) throw error;
      problems.push({ path: pathOf(part), message: `${label} (${part}): ${error.problem}` });
      return undefined;
    }
  };
  const condition = attempt('when', (): Condition => parseCondition(String(rule.when), names));
  const located = attempt('then', (): LocatedAction[] => parseLocatedActions(String(rule.then), names));
  if (condition === undefined || located === undefined) return problems;

  const scope = mentionsHost(condition) ? 'host' : 'group';
  if (scope === 'group') {
    const onHost = located.find((action) => HOST_ACTIONS.includes(action.action.kind));
    if (onHost) {
      const problem = new RuleSyntaxError(
        String(rule.then),
        onHost.start,
        `"${onHost.action.kind}" acts on a host`,
        'the condition reads no host.* field, so there is no host to act on (e.g. add "host.status == failed")',
      ).problem;
      return [{ path: pathOf('then'), message: `${label} (then): ${problem}` }];
    }
  }
  const actions = located.map((action) => action.action);
  return {
    ...identity,
    when: printCondition(condition),
    // biome-ignore lint/suspicious/noThenProperty: a rule reads "when … then …"; it is never awaited.
    then: printActions(actions),
    scope,
    condition,
    actions,
  };
}

/** Every rule compiled, or every problem with its path; compileGroup adds the problems to its own. */
export function checkRules(
  rules: readonly Rule[],
  names: RuleNames,
  at = 'configuration.rules',
): { rules: CompiledRule[]; problems: RuleProblem[] } {
  const compiled: CompiledRule[] = [];
  const problems: RuleProblem[] = [];
  rules.forEach((rule, index) => {
    const result = compileRule(
      rule,
      { id: `rule[${index}]`, source: 'definition', index },
      names,
      `rule ${index}`,
      (part) => `${at}[${index}].${part}`,
    );
    if (Array.isArray(result)) problems.push(...result);
    else compiled.push(result);
  });
  return { rules: compiled, problems };
}

/** Throws a ValidationError listing every problem (details.errors: [{path, message}]). */
export function compileRules(rules: readonly Rule[], names: RuleNames): CompiledRule[] {
  const { rules: compiled, problems } = checkRules(rules, names);
  if (problems.length > 0) {
    const list = problems.map((problem) => `${problem.path}: ${problem.message}`).join('; ');
    throw new ValidationError(`rules are invalid: ${list}`, { errors: problems });
  }
  return compiled;
}
