/**
 * npm run bench:decode -- --compare: only a head-to-head, to choose defaults, of AR, speculative at
 * every γ and SpecDiff at every γ × T (≤ γ) × window, each drafted one at every confidence cutoff of
 * --cutoffs (default 0: verify every drafted token) and at every longest draft of --max-gammas
 * (generate's maxGamma: the draft length grows after wholly accepted drafts; default 0: fixed γ).
 * The contenders take turns prompt by prompt for --rounds rounds; ratios are per round (median, range).
 *
 *   npm run bench:decode -- --compare [--gammas G1,G2,..] [--steps T1,T2,..] [--windows W1,W2,..]
 *       [--cutoffs C1,C2,..] [--max-gammas M1,M2,..] and the grid's flags (grid.ts)
 * e.g. --compare --gammas 4,5 --windows 4,8 --steps 1
 */
import { DecodeBench, writeResults, type Contender, type Rates } from '../lib/decode.js';

const bench = await DecodeBench.open();
const { flags } = bench;
const roofline = await bench.introduce();
if (flags.autotune) await bench.autotune();
for (const W of flags.windowList) await bench.compileDraftShapes(flags.longestDraft, W);

const contenders: Contender[] = [
  { name: 'ar', method: 'ar' } as Contender,
  ...flags.gammas.map((gamma): Contender => ({ name: `speculative γ=${gamma}`, method: 'speculative', gamma })),
  ...flags.gammas.flatMap((gamma) =>
    flags.stepsList.filter((T) => T <= gamma).flatMap((T) => flags.windowList.map((window): Contender => ({ name: `specdiff γ=${gamma} T=${T} W=${window}`, method: 'specdiff', gamma, steps: T, window }))),
  ),
]
  .flatMap((c) => (c.method === 'ar' ? [c] : flags.cutoffs.map((cutoff): Contender => (cutoff ? { ...c, name: `${c.name} c=${cutoff}`, cutoff } : c))))
  .flatMap((c) => (c.method === 'ar' ? [c] : [...new Set(flags.maxGammas.map((m) => Math.max(m, c.gamma!)))].map((maxGamma): Contender => (maxGamma > c.gamma! ? { ...c, name: `${c.name} ..${maxGamma}`, maxGamma } : c))));

const results: Record<string, { contenders: Contender[] } & Rates> = {};
console.log(`\nhead-to-head (${flags.rounds} rounds, methods alternating prompt by prompt):`);
for (const temperature of flags.temperatures) {
  // Untimed: pipelines and bind groups exist before the rounds (every prompt: prefill shapes differ by length).
  for (const c of contenders) for (const prompt of flags.prompts) await bench.decode(c, prompt, temperature, 0, 8);
  results[`temp ${temperature}`] = { contenders, ...(await bench.compete(temperature, contenders)) };
}
console.log(`\npipelines compiled during timed runs (grid): ${bench.compiledInTimedRuns}`);
const { device, dtype } = bench;
const out = writeResults('compare', { adapter: device.info.adapter, dtype, roofline, promptSet: flags.promptSet, prompts: flags.prompts, maxNewTokens: flags.maxNewTokens, rounds: flags.rounds, headToHead: results });
console.log(`\nwrote ${out}.json`);
bench.close();
