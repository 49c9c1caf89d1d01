import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../shared/errors.ts';
import {
  assertAcyclic,
  DependencyCycleError,
  type DependencyGraph,
  dependencyLevels,
  dependentsOf,
  findCycle,
  groupByLevel,
} from '../shared/groups/graph.ts';

function cycleError(graph: DependencyGraph): DependencyCycleError {
  try {
    dependencyLevels(graph);
  } catch (error) {
    if (error instanceof DependencyCycleError) return error;
    throw error;
  }
  throw new Error('no cycle reported');
}

/** A random DAG: node i may only depend on nodes with a smaller index, so there is no cycle by construction. */
const dag = fc.integer({ min: 1, max: 14 }).chain((size) =>
  fc
    .tuple(
      ...Array.from({ length: size }, (_, i) =>
        fc.uniqueArray(fc.integer({ min: 0, max: Math.max(0, i - 1) }), { maxLength: i === 0 ? 0 : 3 }),
      ),
    )
    .chain((edges) =>
      fc.shuffledSubarray(
        edges.map((deps, i) => [i, deps] as const),
        { minLength: size },
      ),
    )
    .map((entries) =>
      Object.fromEntries(
        entries.map(([i, deps]) => [`s${i}`, deps.filter((d) => d < i).map((d) => `s${d}`)]),
      ),
    ),
);

/** Every dependency path from one node to another, for choosing a back edge that closes a cycle. */
function reachable(graph: DependencyGraph, from: string): Set<string> {
  const seen = new Set<string>();
  const stack = [...(graph[from] ?? [])];
  while (stack.length > 0) {
    const node = stack.pop() as string;
    if (seen.has(node)) continue;
    seen.add(node);
    stack.push(...(graph[node] ?? []));
  }
  return seen;
}

describe('dependencyLevels', () => {
  it('puts nodes that depend on nothing at level 0 and every other one above its highest dependency', () => {
    expect(dependencyLevels({ lb: [], db: [], media: ['db'], 'call-router': ['media', 'db'] })).toEqual({
      'call-router': 2,
      db: 0,
      lb: 0,
      media: 1,
    });
  });

  it('ignores edges to unknown nodes (the compiler names them)', () => {
    expect(dependencyLevels({ a: ['ghost'] })).toEqual({ a: 0 });
  });

  it('copes with nodes named like object members', () => {
    expect(dependencyLevels({ constructor: [], toString: ['constructor'] })).toEqual({
      constructor: 0,
      toString: 1,
    });
  });

  it('rejects a cycle, naming it as a path that returns to its start', () => {
    const error = cycleError({ a: ['b'], b: ['c'], c: ['a'], d: [] });
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.message).toBe('dependency cycle: a → b → c → a');
    expect(error.details).toEqual({ cycle: ['a', 'b', 'c', 'a'] });
  });

  it('rejects a service that depends on itself', () => {
    expect(cycleError({ a: ['a'] }).cycle).toEqual(['a', 'a']);
  });

  it('names only the cycle, not the path that led to it', () => {
    expect(findCycle({ a: ['b'], b: ['c'], c: ['d'], d: ['c'] })).toEqual(['c', 'd', 'c']);
  });

  it('names the same cycle whatever the order of keys and edges', () => {
    const one = findCycle({ x: ['y', 'a'], y: ['x'], a: ['b'], b: ['a'] });
    const other = findCycle({ b: ['a'], a: ['b'], y: ['x'], x: ['a', 'y'] });
    expect(one).toEqual(['a', 'b', 'a']);
    expect(other).toEqual(one);
  });

  it('lets assertAcyclic say what kind of cycle it found', () => {
    expect(() => assertAcyclic({ a: ['b'], b: ['a'] }, 'load balancer cycle')).toThrow(
      'load balancer cycle: a → b → a',
    );
  });
});

describe('groupByLevel and dependentsOf', () => {
  it('groups nodes by level, sorted by name', () => {
    expect(groupByLevel({ media: 1, db: 0, lb: 0, 'call-router': 2 })).toEqual([
      ['db', 'lb'],
      ['media'],
      ['call-router'],
    ]);
  });

  it('reverses the edges, listing every node', () => {
    expect(dependentsOf({ db: [], media: ['db'], 'call-router': ['media', 'db'] })).toEqual({
      'call-router': [],
      db: ['call-router', 'media'],
      media: ['call-router'],
    });
  });
});

describe('graph properties', () => {
  it('compiles every random DAG into levels where each edge climbs from dependency to dependent', () => {
    fc.assert(
      fc.property(dag, (graph) => {
        const levels = dependencyLevels(graph);
        for (const [node, deps] of Object.entries(graph)) {
          for (const dep of deps) expect(levels[dep]).toBeLessThan(levels[node] as number);
          const expected = deps.length === 0 ? 0 : Math.max(...deps.map((d) => levels[d] as number)) + 1;
          expect(levels[node]).toBe(expected);
        }
      }),
    );
  });

  it('leaves no gap between levels, so serviceLevels has no empty group', () => {
    fc.assert(
      fc.property(dag, (graph) => {
        const groups = groupByLevel(dependencyLevels(graph));
        expect(groups.every((group) => group.length > 0)).toBe(true);
        expect(groups.flat().sort()).toEqual(Object.keys(graph).sort());
      }),
    );
  });

  it('rejects a DAG plus one back edge with a cycle that starts and ends on the same node and follows real edges', () => {
    const withBackEdge = dag
      .filter((graph) => Object.keys(graph).some((node) => reachable(graph, node).size > 0))
      .chain((graph) => {
        const sources = Object.keys(graph).filter((node) => reachable(graph, node).size > 0);
        return fc.constantFrom(...sources).chain((from) =>
          fc.constantFrom(...reachable(graph, from)).map((to) => ({
            graph: { ...graph, [to]: [...(graph[to] ?? []), from] } as DependencyGraph,
          })),
        );
      });
    fc.assert(
      fc.property(withBackEdge, ({ graph }) => {
        const error = cycleError(graph);
        const cycle = error.cycle;
        expect(cycle.length).toBeGreaterThanOrEqual(3);
        expect(cycle[0]).toBe(cycle.at(-1));
        expect(new Set(cycle.slice(1)).size).toBe(cycle.length - 1);
        for (let i = 0; i + 1 < cycle.length; i++) {
          expect(graph[cycle[i] as string]).toContain(cycle[i + 1]);
        }
        expect(error.message).toBe(`dependency cycle: ${cycle.join(' → ')}`);
      }),
    );
  });

  it('finds a cycle exactly when the graph cannot be peeled leaf by leaf', () => {
    const nodes = ['a', 'b', 'c', 'd', 'e'] as const;
    const anyGraph = fc.dictionary(
      fc.constantFrom(...nodes),
      fc.uniqueArray(fc.constantFrom(...nodes), { maxLength: 3 }),
    );
    const peelable = (graph: DependencyGraph): boolean => {
      const left = new Set(Object.keys(graph));
      for (let progress = true; progress; ) {
        progress = false;
        for (const node of left) {
          if ((graph[node] ?? []).every((dep) => !left.has(dep))) {
            left.delete(node);
            progress = true;
          }
        }
      }
      return left.size === 0;
    };
    fc.assert(
      fc.property(anyGraph, (graph) => {
        expect(findCycle(graph) === undefined).toBe(peelable(graph));
      }),
    );
  });
});
