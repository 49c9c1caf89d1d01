/** The when/then rules engine: compile a definition's rules, add the defaults, evaluate them against a tick. */
export { checkRules, compileRules, type RuleProblem } from './compile.ts';
export { DEFAULT_RULES, type DefaultRule, effectiveRules } from './defaults.ts';
export { evaluateRules } from './evaluate.ts';
export { RuleSyntaxError } from './lexer.ts';
export { fieldType, mentionsHost, parseActions, parseCondition } from './parser.ts';
export { printActions, printCondition } from './printer.ts';
export * from './types.ts';
