import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { reconcileAsl } from '../infra/local/reconcile-asl.ts';
import {
  invocationsPerRun,
  reconcilePath,
  TRANSITIONS_PER_STEP,
  transitionsPerRun,
} from '../shared/cost/step-functions.ts';

interface AslState {
  Type: string;
  Next?: string;
  End?: boolean;
  Default?: string;
  Choices?: { Next: string }[];
  ItemProcessor?: { StartAt: string; States: Record<string, AslState> };
  Iterator?: { StartAt: string; States: Record<string, AslState> };
}

/** Where each state of the synthesized machine can go next, Map iterations included. */
function successors(): { startAt: string; next: Map<string, Set<string>>; types: Map<string, string> } {
  const asl = reconcileAsl() as unknown as { StartAt: string; States: Record<string, AslState> };
  const next = new Map<string, Set<string>>();
  const types = new Map<string, string>();
  const walk = (states: Record<string, AslState>, map?: { startAt: string; next?: string }) => {
    for (const [name, state] of Object.entries(states)) {
      types.set(name, state.Type);
      const to = new Set<string>();
      if (state.Next) to.add(state.Next);
      if (state.Default) to.add(state.Default);
      for (const choice of state.Choices ?? []) to.add(choice.Next);
      const processor = state.ItemProcessor ?? state.Iterator;
      if (processor) {
        to.add(processor.StartAt);
        walk(processor.States, { startAt: processor.StartAt, ...(state.Next ? { next: state.Next } : {}) });
      }
      // The end of an iteration: the next item, or out of the Map.
      if (map && (state.Type === 'Succeed' || state.End)) {
        to.add(map.startAt);
        if (map.next) to.add(map.next);
      }
      next.set(name, to);
    }
  };
  walk(asl.States);
  return { startAt: asl.StartAt, next, types };
}

describe('the Step Functions part of the bill', () => {
  const machine = successors();

  it('walks a path the synthesized reconcile machine can take, for any number of waves, checks and passes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 4 }),
        (waves, checksPerWave, passes) => {
          const path = reconcilePath({ waves, checksPerWave, passes });
          expect(path[0]).toBe(machine.startAt);
          for (let i = 1; i < path.length; i += 1) {
            const from = path[i - 1] as string;
            expect([...(machine.next.get(from) ?? [])], `${from} → ${path[i]}`).toContain(path[i]);
          }
          expect(machine.types.get(path.at(-1) as string)).toBe('Succeed');
          expect(transitionsPerRun({ waves, checksPerWave, passes })).toBe(path.length);
          const tasks = path.filter((state) => machine.types.get(state) === 'Task');
          expect(invocationsPerRun({ waves, checksPerWave, passes })).toBe(tasks.length);
          expect(tasks.length).toBe(passes * (2 + waves * (1 + checksPerWave)));
        },
      ),
    );
  });

  it('weighs counted steps so they add up to the transitions of the run they came from (but the last pass)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 1, max: 6 }), (waves, checksPerWave) => {
        const path = reconcilePath({ waves, checksPerWave, passes: 1 });
        const steps = path.filter((state) => machine.types.get(state) === 'Task');
        const weighed = steps.reduce(
          (sum, state) => sum + (TRANSITIONS_PER_STEP[state.toLowerCase()] ?? Number.NaN),
          0,
        );
        expect(weighed).toBe(path.length);
      }),
    );
  });
});
