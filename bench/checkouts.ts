/**
 * npm run bench:checkouts -- DIR_A DIR_B [...] — decoding speed of two or more checkouts of this project
 * (a commit's kernels against another's), each in its own process, the checkouts taking turns round by
 * round so the shared machine's drift hits them alike. Every process loads its checkout's bundled models,
 * warms up, then generates from the same held-out passages (this checkout's bench/passages.json) with AR,
 * speculative decoding and SpecDiff, greedy and at temperature 0.8 / top-k 50. A checkout needs its own
 * node_modules (`npm ci`). `--tuning JSON` passes kernel tuning overrides to every process (compare
 * tunings by giving the same checkout twice with `--tuning-b`).
 *
 *   npm run bench:checkouts -- OLD . [--rounds 3] [--passages 4] [--tokens 48] [--tuning JSON] [--tuning-b JSON]
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import './lib/lavapipe-env.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '3' },
    passages: { type: 'string', default: '4' },
    tokens: { type: 'string', default: '48' },
    tuning: { type: 'string' },
    'tuning-b': { type: 'string' },
    /** Internal: run one checkout's measurement in this process and print its JSON. */
    child: { type: 'string' },
  },
});
const here = join(dirname(fileURLToPath(import.meta.url)), '..');

const SETTINGS = [
  ['ar greedy', { method: 'ar', temperature: 0 }],
  ['speculative greedy', { method: 'speculative', temperature: 0 }],
  ['specdiff greedy', { method: 'specdiff', temperature: 0 }],
  ['ar t0.8-k50', { method: 'ar', temperature: 0.8, topK: 50 }],
  ['speculative t0.8-k50', { method: 'speculative', temperature: 0.8, topK: 50 }],
  ['specdiff t0.8-k50', { method: 'specdiff', temperature: 0.8, topK: 50 }],
] as const;

interface Figures { tokPerS: number; tokPerPass: number }

async function child(root: string): Promise<void> {
  const { createNodeDevice, loadPipeline, dirFolder } = await import(join(root, 'src/node.ts'));
  const passages = (JSON.parse(readFileSync(join(here, 'bench/passages.json'), 'utf8')) as Array<string | { text?: string; prompt?: string }>)
    .slice(0, Number(values.passages))
    .map((p) => (typeof p === 'string' ? p : p.text ?? p.prompt ?? ''));
  const dev = await createNodeDevice(values.tuning ? { tuning: JSON.parse(values.tuning) } : {});
  const model = (name: string) => dirFolder(join(root, 'models', name));
  const pipe = await loadPipeline(dev, { target: model('target'), diffusionDrafter: model('drafter-mdlm'), arDrafter: model('drafter-ar') }, { dtype: 'f16' });
  const maxNewTokens = Number(values.tokens);
  for (const [, o] of SETTINGS) await pipe.warmup({ ...o, maxNewTokens });
  const sums: Record<string, { ms: number; tokens: number; passes: number }> = {};
  for (const p of passages) {
    for (const [name, o] of SETTINGS) {
      const { stats } = await pipe.generate(p, { ...o, maxNewTokens, seed: 1 }).result();
      const s = (sums[name] ??= { ms: 0, tokens: 0, passes: 0 });
      s.ms += stats.wallMs;
      s.tokens += stats.generatedTokens;
      s.passes += stats.targetPasses;
    }
  }
  const out: Record<string, Figures> = {};
  for (const [name, s] of Object.entries(sums)) out[name] = { tokPerS: (1000 * s.tokens) / s.ms, tokPerPass: s.tokens / s.passes };
  console.log(JSON.stringify(out));
  process.exit(0);
}

if (values.child) {
  await child(values.child);
} else {
  if (positionals.length < 2) throw new Error('give two or more checkouts: npm run bench:checkouts -- DIR_A DIR_B');
  const runs = positionals.map((dir, i) => ({
    label: `${dir}${i === 1 && values['tuning-b'] ? ' (tuning-b)' : ''}`,
    root: resolve(dir),
    tuning: i === 1 && values['tuning-b'] ? values['tuning-b'] : values.tuning,
  }));
  const results = runs.map(() => [] as Array<Record<string, Figures>>);
  for (let round = 0; round < Number(values.rounds); round++) {
    runs.forEach((r, i) => {
      const args = ['tsx', join(here, 'bench/checkouts.ts'), '--child', r.root, '--passages', values.passages!, '--tokens', values.tokens!];
      if (r.tuning) args.push('--tuning', r.tuning);
      const p = spawnSync('npx', args, { cwd: here, encoding: 'utf8', maxBuffer: 1 << 24 });
      const line = p.stdout.trim().split('\n').pop() ?? '';
      if (p.status !== 0 || !line.startsWith('{')) throw new Error(`${r.label}: exit ${p.status}\n${p.stderr.slice(-2000)}`);
      results[i].push(JSON.parse(line));
      console.error(`round ${round + 1}, ${r.label} done`);
    });
  }
  console.log(`tok/s per round (tokens per target pass), ${values.passages} passages x ${values.tokens} tokens`);
  for (const [name] of SETTINGS) {
    console.log(name);
    runs.forEach((r, i) => {
      const per = results[i].map((x) => x[name].tokPerS.toFixed(1)).join(' / ');
      console.log(`  ${r.label.padEnd(40)} ${per}  (${results[i][0][name].tokPerPass.toFixed(3)})`);
    });
  }
}
