/**
 * Dependency graphs as `node → the nodes it depends on`. Edges to nodes that are not keys are ignored here
 * (the compiler reports unknown names separately, with better words).
 */
import { ValidationError } from '../errors.ts';

export type DependencyGraph = Readonly<Record<string, readonly string[]>>;

export class DependencyCycleError extends ValidationError {
  readonly cycle: string[];

  constructor(cycle: string[], what = 'dependency cycle') {
    super(`${what}: ${formatCycle(cycle)}`, { cycle });
    this.cycle = cycle;
  }
}

export function formatCycle(cycle: readonly string[]): string {
  return cycle.join(' → ');
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function sortedDependencies(graph: DependencyGraph, node: string): string[] {
  return [...new Set(graph[node] ?? [])]
    .filter((dependency) => Object.hasOwn(graph, dependency))
    .sort(byName);
}

/**
 * The first cycle a depth-first walk meets, visiting nodes and their dependencies in name order so the same
 * graph always names the same cycle. Returned as a path whose first and last elements are equal.
 */
export function findCycle(graph: DependencyGraph): string[] | undefined {
  const done = new Set<string>();
  const onPath = new Map<string, number>();
  const path: string[] = [];

  const visit = (node: string): string[] | undefined => {
    const start = onPath.get(node);
    if (start !== undefined) return [...path.slice(start), node];
    if (done.has(node)) return undefined;
    onPath.set(node, path.length);
    path.push(node);
    for (const dependency of sortedDependencies(graph, node)) {
      const cycle = visit(dependency);
      if (cycle) return cycle;
    }
    path.pop();
    onPath.delete(node);
    done.add(node);
    return undefined;
  };

  for (const node of Object.keys(graph).sort(byName)) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

/** Throws DependencyCycleError naming the cycle, if there is one. */
export function assertAcyclic(graph: DependencyGraph, what?: string): void {
  const cycle = findCycle(graph);
  if (cycle) throw new DependencyCycleError(cycle, what);
}

/** Level of each node: 0 when it depends on nothing, else one above its highest dependency. */
export function dependencyLevels(graph: DependencyGraph): Record<string, number> {
  assertAcyclic(graph);
  // A Map, not an object: a service may well be called "constructor".
  const levels = new Map<string, number>();
  const levelOf = (node: string): number => {
    const known = levels.get(node);
    if (known !== undefined) return known;
    const level = Math.max(-1, ...sortedDependencies(graph, node).map(levelOf)) + 1;
    levels.set(node, level);
    return level;
  };
  for (const node of Object.keys(graph).sort(byName)) levelOf(node);
  return Object.fromEntries(levels);
}

/** Nodes grouped by level, each group sorted by name: result[0] depends on nothing. */
export function groupByLevel(levels: Readonly<Record<string, number>>): string[][] {
  const groups: string[][] = [];
  for (const node of Object.keys(levels).sort(byName)) {
    const level = levels[node] ?? 0;
    while (groups.length <= level) groups.push([]);
    groups[level]?.push(node);
  }
  return groups;
}

/** The reverse edges: node → the nodes that depend on it directly (every key present, lists sorted). */
export function dependentsOf(graph: DependencyGraph): Record<string, string[]> {
  const nodes = Object.keys(graph).sort(byName);
  const dependents = new Map(nodes.map((node) => [node, [] as string[]]));
  for (const node of nodes) {
    for (const dependency of sortedDependencies(graph, node)) dependents.get(dependency)?.push(node);
  }
  return Object.fromEntries(dependents);
}
