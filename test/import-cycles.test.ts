/**
 * The modules form layers: following the imports (type-only ones and re-exports included) from any
 * file under src/ or bench/ never leads back to it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** `import … from '…'`, `export … from '…'`, `import '…'` and `import('…')` of relative paths. */
const IMPORT = /(?:^|[\s;])(?:import|export)\s[^;'"]*?from\s*['"](\.[^'"]+)['"]|(?:^|[\s;])import\s*['"](\.[^'"]+)['"]|\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/g;

/** The files a file imports, resolved from the `.js` the sources name to the `.ts` beside them. */
export function importsOf(file: string, text: string): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3];
    out.add(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
  }
  return [...out];
}

/** Every cycle found by a depth-first walk, each as the chain of files that closes it. */
export function findCycles(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string) => {
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') cycles.push([...path.slice(path.indexOf(next)), next]);
      else if (!state.has(next) && graph.has(next)) visit(next);
    }
    path.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return cycles;
}

describe('import graph', () => {
  it('finds a cycle it is given, and none in a chain (the checker itself)', () => {
    const chain = new Map([['a', ['b']], ['b', ['c']], ['c', []]]);
    expect(findCycles(chain)).toEqual([]);
    expect(findCycles(new Map([...chain, ['c', ['a']]]))).toEqual([['a', 'b', 'c', 'a']]);
    expect(importsOf('/r/x.ts', "import type { A } from './a.js';\nexport { B } from '../b.js';\nawait import('./c.js');\nimport x from 'node:fs';")).toEqual(['/r/a.ts', '/b.ts', '/r/c.ts']);
  });

  it('no file under src/ or bench/ imports itself through a chain of imports', () => {
    const files = [...sources(join(root, 'src')), ...sources(join(root, 'bench'))];
    const graph = new Map(files.map((f) => [f, importsOf(f, readFileSync(f, 'utf8'))]));
    const cycles = findCycles(graph).map((c) => c.map((f) => relative(root, f)).join(' → '));
    expect(cycles).toEqual([]);
  });
});
