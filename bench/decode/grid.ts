/**
 * npm run bench:decode (without --regimes or --compare): AR vs speculative (AR drafter) vs SpecDiff
 * (MDLM drafter) on held-out prompts, in one process on one adapter, over γ and T, greedy and
 * temperature 1. Prints a table, writes JSON and SVG charts (tokens per target pass against γ and T) to
 * bench/results/, says which settings win, and profiles
 * where a draft and a verify spend their GPU time (timestamp queries, where the adapter has them).
 *
 *   npm run bench:decode [-- --quick] [--tokens N] [--prompts N] [--prompt-set passages|fragments] [--models DIR] [--f32] [--window W] [--windows W1,W2,..]
 *                        [--gammas G1,G2,..] [--steps T1,T2,..] [--temperatures 0,1] [--rounds N] [--autotune]
 *
 * A drafter window W is a number (a bidirectional pass over the last W context tokens and the γ
 * masks) or 'cached' (block-causal drafting with a KV cache of the whole context). After the γ × T
 * grid (at window W, default the drafter's: 'cached' when its config says block_causal), the best
 * SpecDiff setting of each temperature is run again over the windows in --windows (default
 * 4,8,16,32,64,cached; quick: 8,cached).
 * Then a head-to-head: AR, the best speculative and the best SpecDiff setting, and SpecDiff with
 * generate()'s defaults (at greedy a draft length that grows), take turns prompt by prompt for
 * --rounds rounds (default 3), so the machine's drift hits them alike; the ratios
 * are given per round (median and range). The adapter's roofline is printed first.
 */
import type { GenerationStats } from '../../src/node.js';
import { DEFAULT_DIFFUSION_MAX_GAMMA } from '../../src/decode/diffusion-drafter.js';
import { DecodeBench, ratios, spread, writeResults, type Contender, type DecodeMethod, type Rates, type View } from '../lib/decode.js';
import { profileDraftAndVerify, type Profile } from '../lib/decode-profile.js';
import { lineChart } from '../lib/svg.js';
import { writeFileSync } from 'node:fs';

/** A contender's figures over all prompts: the rates and times of GenerationStats, summed or pooled. */
interface Row extends Pick<GenerationStats, 'tokensPerSecond' | 'acceptanceRate' | 'meanAccepted' | 'tokensPerTargetPass' | 'drafterPassesPerToken' | 'draftMs' | 'verifyMs' | 'acceptMs' | 'wallMs'> {
  method: string;
  temperature: number;
  gamma?: number;
  steps?: number;
  window?: View;
  speedup: number;
  tokens: number;
  /** Speedup over AR if every pass cost its weight bytes (a bandwidth-bound GPU): hardware-independent. */
  projectedSpeedup: number;
}

const bench = await DecodeBench.open();
const { flags } = bench;
const roofline = await bench.introduce();
if (flags.autotune) await bench.autotune();
await bench.compileDraftShapes(flags.longestDraft);

/**
 * Runs every prompt with the same settings; sums tokens and times so the rate is tokens / total time.
 * Every kernel the settings can reach is compiled first (warm-up), and the first prompt runs once
 * untimed (buffers for its shapes enter the pool); the report counts pipelines compiled while timed.
 */
async function run(method: DecodeMethod, temperature: number, gamma?: number, steps?: number, W: View = bench.window): Promise<Omit<Row, 'speedup'>> {
  const all: GenerationStats[] = [];
  for (const [i, prompt] of [flags.prompts[0], ...flags.prompts].entries()) {
    const stats = await bench.decode({ method, gamma, steps, window: method === 'specdiff' ? W : undefined }, prompt, temperature, Math.max(0, i - 1), flags.maxNewTokens, i === 0);
    if (i > 0) all.push(stats);
    if (i > 0) bench.compiledInTimedRuns += stats.pipelinesCompiled;
  }
  const sum = (f: (s: GenerationStats) => number) => all.reduce((a, s) => a + f(s), 0);
  const wallMs = sum((s) => s.wallMs);
  const tokens = sum((s) => s.generatedTokens);
  const drafted = sum((s) => s.draftedTokens);
  const iterations = sum((s) => (s.method === 'ar' ? 0 : s.targetPasses));
  const passes = sum((s) => s.targetPasses);
  const draftCost = method === 'ar' ? 0 : (sum((s) => s.drafterPasses) * bench.drafterBytes[method]) / bench.targetBytes;
  return {
    projectedSpeedup: tokens / (passes + draftCost),
    method,
    temperature,
    gamma,
    steps,
    window: method === 'specdiff' ? W : undefined,
    tokens,
    wallMs,
    tokensPerSecond: (tokens * 1000) / wallMs,
    acceptanceRate: drafted ? sum((s) => s.acceptedTokens) / drafted : 0,
    meanAccepted: iterations ? sum((s) => s.acceptedTokens) / iterations : 0,
    tokensPerTargetPass: tokens / sum((s) => s.targetPasses),
    drafterPassesPerToken: sum((s) => s.drafterPasses) / tokens,
    draftMs: sum((s) => s.draftMs),
    verifyMs: sum((s) => s.verifyMs),
    acceptMs: sum((s) => s.acceptMs),
  };
}

function format(r: Row): string {
  const setting = r.method === 'ar' ? '' : `γ=${r.gamma}${r.steps ? ` T=${r.steps} W=${r.window}` : ''}`;
  return [
    r.method.padEnd(11),
    `temp ${r.temperature}`.padEnd(7),
    setting.padEnd(15),
    `${r.tokensPerSecond.toFixed(2).padStart(7)} tok/s`,
    `${r.speedup.toFixed(2).padStart(5)}x`,
    `acc ${(100 * r.acceptanceRate).toFixed(0).padStart(3)}%`,
    `mean acc ${r.meanAccepted.toFixed(2).padStart(5)}`,
    `tok/pass ${r.tokensPerTargetPass.toFixed(2).padStart(5)}`,
    `drafter passes/tok ${r.drafterPassesPerToken.toFixed(2).padStart(4)}`,
    `bw-bound ${r.projectedSpeedup.toFixed(2).padStart(5)}x`,
    `draft/verify/accept ${(r.draftMs / r.tokens).toFixed(1)}/${(r.verifyMs / r.tokens).toFixed(1)}/${(r.acceptMs / r.tokens).toFixed(2)} ms/tok`,
  ].join('  ');
}

/** The γ × T grid, AR first and again at the end (how much the machine drifted during the sweep). */
async function grid(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const temperature of flags.temperatures) {
    const ar = await run('ar', temperature);
    const push = (r: Omit<Row, 'speedup'>) => {
      const row = { ...r, speedup: r.tokensPerSecond / ar.tokensPerSecond };
      rows.push(row);
      console.log(format(row));
    };
    push(ar);
    for (const gamma of flags.gammas) push(await run('speculative', temperature, gamma));
    for (const gamma of flags.gammas) for (const steps of flags.stepsList) if (steps <= gamma) push(await run('specdiff', temperature, gamma, steps));
    const again = await run('ar', temperature);
    console.log(`  (AR re-measured at the end: ${again.tokensPerSecond.toFixed(2)} tok/s, drift ${((100 * (again.tokensPerSecond - ar.tokensPerSecond)) / ar.tokensPerSecond).toFixed(1)}%)`);
  }
  return rows;
}

/** The fastest speculative and SpecDiff row of each temperature, printed with the bandwidth-bound projection. */
function bestOf(rows: Row[]): Record<string, Row> {
  console.log('\nbest settings (by tokens/s):');
  const best: Record<string, Row> = {};
  for (const temperature of flags.temperatures) {
    for (const method of ['speculative', 'specdiff']) {
      const cands = rows.filter((r) => r.method === method && r.temperature === temperature);
      const b = cands.reduce((x, y) => (y.tokensPerSecond > x.tokensPerSecond ? y : x));
      best[`${method}@${temperature}`] = b;
      console.log(`  ${format(b)}`);
    }
    const sd = best[`specdiff@${temperature}`];
    const sp = best[`speculative@${temperature}`];
    console.log(`  temp ${temperature}: specdiff ${sd.speedup.toFixed(2)}x AR, ${(sd.tokensPerSecond / sp.tokensPerSecond).toFixed(2)}x speculative (goal at greedy: ≥ 2x and ≥ 1.3x)`);
    const proj = (m: string) => rows.filter((r) => r.method === m && r.temperature === temperature).reduce((x, y) => (y.projectedSpeedup > x.projectedSpeedup ? y : x));
    const ps = proj('specdiff');
    const pa = proj('speculative');
    console.log(`  temp ${temperature}, bandwidth-bound projection: specdiff ${ps.projectedSpeedup.toFixed(2)}x AR at γ=${ps.gamma} T=${ps.steps}; speculative ${pa.projectedSpeedup.toFixed(2)}x at γ=${pa.gamma}`);
  }
  return best;
}

/** The drafter's context window at the best SpecDiff setting of each temperature, against AR measured again beside it. */
async function windowSweep(best: Record<string, Row>): Promise<Row[]> {
  const windowRows: Row[] = [];
  console.log('\ndrafter window W at the best SpecDiff settings:');
  for (const temperature of flags.temperatures) {
    const b = best[`specdiff@${temperature}`];
    const ar = await run('ar', temperature);
    for (const W of flags.windowList) {
      await bench.compileDraftShapes(b.gamma!, W);
      const r = await run('specdiff', temperature, b.gamma, b.steps, W);
      const row = { ...r, speedup: r.tokensPerSecond / ar.tokensPerSecond };
      windowRows.push(row);
      console.log(format(row));
    }
  }
  for (const temperature of flags.temperatures) {
    const w = windowRows.filter((r) => r.temperature === temperature).reduce((x, y) => (y.tokensPerSecond > x.tokensPerSecond ? y : x));
    console.log(`  temp ${temperature}: best window W=${w.window} (${w.speedup.toFixed(2)}x AR)`);
  }
  return windowRows;
}

/** Head-to-head at the winning settings: the methods take turns on each prompt, round after round. */
async function headToHead(best: Record<string, Row>, windowRows: Row[]): Promise<Record<string, { contenders: Contender[] } & Rates>> {
  const results: Record<string, { contenders: Contender[] } & Rates> = {};
  console.log(`\nhead-to-head (${flags.rounds} rounds, methods alternating prompt by prompt):`);
  for (const temperature of flags.temperatures) {
    const sp = best[`speculative@${temperature}`];
    const sd = [best[`specdiff@${temperature}`], ...windowRows.filter((r) => r.temperature === temperature)].reduce((x, y) => (y.tokensPerSecond > x.tokensPerSecond ? y : x));
    const contenders: Contender[] = [
      { name: 'ar', method: 'ar' },
      { name: `speculative γ=${sp.gamma}`, method: 'speculative', gamma: sp.gamma },
      { name: `specdiff γ=${sd.gamma} T=${sd.steps} W=${sd.window}`, method: 'specdiff', gamma: sd.gamma, steps: sd.steps, window: sd.window },
      // generate()'s own settings, which at greedy grow the draft (the grid's are fixed lengths).
      { name: 'specdiff defaults', method: 'specdiff' },
    ];
    await bench.compileDraftShapes(Math.max(sd.gamma!, DEFAULT_DIFFUSION_MAX_GAMMA), sd.window);
    if (sd.window !== bench.window) await bench.compileDraftShapes(DEFAULT_DIFFUSION_MAX_GAMMA);
    const measured = await bench.compete(temperature, contenders);
    const rates = measured.tokensPerSecond;
    results[`temp ${temperature}`] = { contenders, ...measured };
    for (const i of [2, 3]) {
      console.log(`  temp ${temperature}: ${contenders[i].name} ${spread(ratios(rates, i, 0))} AR, ${spread(ratios(rates, i, 1))} speculative (median of rounds, range); ` +
        `with the prompt's prefill ${spread(ratios(measured.endToEndTokensPerSecond, i, 0))} AR`);
    }
  }
  return results;
}

const rows = await grid();
const best = bestOf(rows);
const windowRows = await windowSweep(best);
const h2h = await headToHead(best, windowRows);
// Where one draft and one verify spend their GPU time, at the best greedy SpecDiff setting.
let profile: Profile = {};
if (bench.device.info.features.timestampQuery) {
  const b = best['specdiff@0'];
  profile = await profileDraftAndVerify(bench, b.gamma ?? 8, b.steps, b.window ?? bench.window);
}
const { device, dtype } = bench;
const out = writeResults('decode', { adapter: device.info.adapter, dtype, roofline, promptSet: flags.promptSet, prompts: flags.prompts, maxNewTokens: flags.maxNewTokens, rows, best, windowRows, headToHead: h2h, profile });
// Tokens per target pass against γ, a line per method and T, one chart per temperature.
for (const temperature of flags.temperatures) {
  const at = rows.filter((r) => r.temperature === temperature);
  const line = (name: string, pick: (r: Row) => boolean) => ({ name, values: flags.gammas.map((g) => at.find((r) => r.gamma === g && pick(r))?.tokensPerTargetPass ?? NaN) });
  const series = [line('speculative', (r) => r.method === 'speculative'), ...flags.stepsList.map((T) => line(`SpecDiff T=${T}`, (r) => r.method === 'specdiff' && r.steps === T))];
  const top = Math.max(1, ...series.flatMap((s) => s.values.filter(Number.isFinite)));
  writeFileSync(`${out}-tokens-per-pass-t${temperature}.svg`, lineChart(`Tokens per target pass against draft length, temperature ${temperature}`, 'tokens / pass', 'γ (drafted tokens)', series, Math.ceil(top), flags.gammas));
}
console.log(`\nwrote ${out}.json and its SVG charts`);
bench.close();
