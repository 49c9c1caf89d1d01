import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/*
 * The layout the write model relies on, checked on the sources themselves: the domain in shared/ and the handlers
 * in functions/ talk to AWS only through shared/adapters/ (or a Lambda's entry point), and no module imports
 * itself round a cycle.
 */

const ROOT = resolve(import.meta.dirname, '..');

function sources(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => relative(ROOT, join(entry.parentPath, entry.name)));
}

const IMPORT = /^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gms;

function importsOf(file: string): string[] {
  return [...readFileSync(join(ROOT, file), 'utf8').matchAll(IMPORT)].map((match) => match[1] as string);
}

const files = [...sources('shared'), ...sources('functions')];

describe('the layout', () => {
  it('imports the AWS SDK only in shared/adapters/ and the Lambda entry points (functions/*/index.ts)', () => {
    const allowed = (file: string) =>
      file.startsWith('shared/adapters/') || /^functions\/[^/]+\/index\.ts$/.test(file);
    const offenders = files.filter(
      (file) => !allowed(file) && importsOf(file).some((specifier) => specifier.startsWith('@aws-sdk/')),
    );
    expect(offenders).toEqual([]);
  });

  it('has no import cycle in shared/ and functions/', () => {
    const graph = new Map(
      files.map((file) => [
        file,
        importsOf(file)
          .filter((specifier) => specifier.startsWith('.'))
          .map((specifier) => relative(ROOT, resolve(ROOT, dirname(file), specifier)))
          .filter((target) => target.startsWith('shared/') || target.startsWith('functions/')),
      ]),
    );
    const cycles: string[][] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'visiting') {
        cycles.push([...path.slice(path.indexOf(file)), file]);
        return;
      }
      state.set(file, 'visiting');
      for (const target of graph.get(file) ?? []) visit(target, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of graph.keys()) visit(file, []);
    expect(cycles.map((cycle) => cycle.join(' → '))).toEqual([]);
  });
});
