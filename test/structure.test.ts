import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = new URL('../src/', import.meta.url).pathname;

/** Every specifier a module imports or re-exports, statically or dynamically. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:import|export)[^'";]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^import\s+['"]([^'"]+)['"]/gm)].map((m) => m[1] ?? m[2] ?? m[3]);
}

/** The source files a module imports, by path relative to src/. */
function localImports(file: string): string[] {
  return specifiers(join(SRC, file))
    .filter((s) => s.startsWith('.'))
    .map((s) => relative(SRC, join(dirname(join(SRC, file)), s)).replace(/\.js$/, '.ts'));
}

describe('module structure', () => {
  it('src/tensor and src/shaders have no import cycles', () => {
    const files = ['tensor', 'tensor/ops', 'shaders'].flatMap((d) => readdirSync(join(SRC, d)).filter((f) => f.endsWith('.ts')).map((f) => `${d}/${f}`));
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, path: string[]) => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') return void cycles.push([...path.slice(path.indexOf(f)), f].join(' -> '));
      state.set(f, 'open');
      for (const g of localImports(f)) if (files.includes(g)) visit(g, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });

  it('the browser entry reaches no Node-only module', () => {
    const seen = new Set<string>();
    const nodeOnly: string[] = [];
    const visit = (f: string) => {
      if (seen.has(f)) return;
      seen.add(f);
      for (const s of specifiers(join(SRC, f))) if (s.startsWith('node:')) nodeOnly.push(`${f} imports ${s}`);
      for (const g of localImports(f)) {
        if (/(^|\/)node[.-]|-node\.ts$/.test(g)) nodeOnly.push(`${f} imports ${g}`);
        else visit(g);
      }
    };
    visit('index.ts');
    expect(seen.size).toBeGreaterThan(20);
    expect(nodeOnly).toEqual([]);
  });
});
