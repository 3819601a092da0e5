/**
 * npm run bench:decode (without --regimes) — AR vs speculative (AR drafter) vs SpecDiff (MDLM drafter) on held-out
 * prompts, in one process on one adapter, over γ and T, greedy and temperature 1. Prints a table,
 * writes JSON to bench/results/, says which settings win, and profiles where a draft and a
 * verify spend their GPU time (timestamp queries, where the adapter has them).
 *
 *   npm run bench:decode [-- --quick] [--tokens N] [--prompts N] [--prompt-set passages|fragments] [--models DIR] [--f32] [--window W] [--windows W1,W2,..]
 *                        [--gammas G1,G2,..] [--steps T1,T2,..] [--temperatures 0,1] [--rounds N] [--autotune] [--compare] [--cutoffs C1,C2,..]
 *                        [--max-gammas M1,M2,..]
 *
 * A drafter window W is a number (a bidirectional pass over the last W context tokens and the γ
 * masks) or 'cached' (block-causal drafting with a KV cache of the whole context). After the γ × T
 * grid (at window W, default the drafter's: 'cached' when its config says block_causal), the best
 * SpecDiff setting of each temperature is run again over the windows in --windows (default
 * 4,8,16,32,64,cached; quick: 8,cached).
 * Then a head-to-head: AR, the best speculative and the best SpecDiff setting, and SpecDiff with
 * generate()'s defaults (at greedy a draft length that grows), take turns prompt by prompt for
 * --rounds rounds (default 3), so the machine's drift hits them alike; the ratios
 * are given per round (median and range). The adapter's roofline is printed first. --compare runs
 * only such a head-to-head, of AR, speculative at every γ and SpecDiff at every γ × T × window (to choose
 * defaults: --compare --gammas 4,5 --windows 4,8 --steps 1), each drafted one at every confidence cutoff
 * of --cutoffs (default 0: verify every drafted token) and at every longest draft of --max-gammas
 * (generate's maxGamma: the draft length grows after wholly accepted drafts; default 0: fixed γ).
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ARDrafter, autotuneMatmul, createNodeDevice, DiffusionDrafter, dirFolder, generate, loadGPT2, loadMDLM, loadTokenizer, readTensors, type GenerationStats } from '../src/node.js';
import { Rng } from '../src/decode/rng.js';
import { verifyDraft } from '../src/decode/verify.js';
import { DEFAULT_WINDOW } from '../src/decode/diffusion-drafter.js';
import { draftLength, draftShapes } from '../src/decode/draft-length.js';
import { DEFAULT_DIFFUSION_GAMMA, DEFAULT_DIFFUSION_GAMMA_SAMPLED, DEFAULT_DIFFUSION_MAX_GAMMA } from '../src/decode/generate.js';
import { gpuPeakGflops, gpuReadBandwidth } from './lib/roofline.js';
import { reachableKernels } from '../src/decode/warmup.js';
import { resolveSampling } from '../src/decode/options.js';
import './lib/lavapipe-env.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    tokens: { type: 'string' },
    prompts: { type: 'string' },
    models: { type: 'string' },
    f32: { type: 'boolean' },
    window: { type: 'string' },
    windows: { type: 'string' },
    autotune: { type: 'boolean' },
    rounds: { type: 'string' },
    compare: { type: 'boolean' },
    gammas: { type: 'string' },
    steps: { type: 'string' },
    'prompt-set': { type: 'string' },
    temperatures: { type: 'string' },
    cutoffs: { type: 'string' },
    'max-gammas': { type: 'string' },
  },
});
const root = new URL('..', import.meta.url).pathname;
const modelsDir = values.models ?? join(root, 'models');
const quick = !!values.quick;
const maxNewTokens = Number(values.tokens ?? (quick ? 24 : 48));
/** Held-out prompts: 'passages' (~64 tokens of a document) or 'fragments' (their last ~12 tokens). */
const promptSets: Record<string, () => string[]> = {
  passages: () => JSON.parse(readFileSync(join(root, 'bench/passages.json'), 'utf8')),
  fragments: () => readFileSync(join(root, 'bench/prompts.txt'), 'utf8').trim().split('\n'),
};
const promptSet = values['prompt-set'] ?? 'passages';
if (!Object.hasOwn(promptSets, promptSet)) throw new RangeError(`--prompt-set must be 'passages' or 'fragments', got '${promptSet}'`);
const prompts = promptSets[promptSet]().slice(0, Number(values.prompts ?? (quick ? 2 : 4)));
const list = (s: string) => s.split(',').map(Number);
const gammas = list(values.gammas ?? (quick ? '4,8' : '4,8,16,24'));
const stepsList = list(values.steps ?? (quick ? '1,4' : '1,2,4,8'));
const temperatures = list(values.temperatures ?? '0,1');
/** --compare: confidence cutoffs to try for each drafted contender (generate's confidenceCutoff; 0 = off). */
const cutoffs = list(values.cutoffs ?? '0');
/** --compare: longest drafts of an adaptive draft length to try for each drafted contender (0 or ≤ γ: fixed γ). */
const maxGammas = list(values['max-gammas'] ?? '0');
/** The longest draft any contender can make. */
const longestDraft = Math.max(...gammas, ...maxGammas);
/** A drafter's view of the context: a bidirectional window of W tokens, or block-causal with a KV cache. */
type View = number | 'cached';
const parseView = (s: string): View => (s === 'cached' ? 'cached' : Number(s));
const windowList = (values.windows ?? (quick ? '8,cached' : '4,8,16,32,64,cached')).split(',').map(parseView);
const rounds = Number(values.rounds ?? 3);

const device = await createNodeDevice();
const dtype = values.f32 || !device.info.features.shaderF16 ? 'f32' : 'f16';
const tokenizer = await loadTokenizer(dirFolder(join(modelsDir, 'target')));
const target = await loadGPT2(device, dirFolder(join(modelsDir, 'target')), { dtype });
const mdlm = await loadMDLM(device, dirFolder(join(modelsDir, 'drafter-mdlm')), { dtype });
const arModel = await loadGPT2(device, dirFolder(join(modelsDir, 'drafter-ar')), { dtype });
const window: View = values.window === undefined ? (mdlm.config.blockCausal ? 'cached' : DEFAULT_WINDOW) : parseView(values.window);
const diffusionDrafter = (steps: number | undefined, view: View) =>
  new DiffusionDrafter(mdlm, view === 'cached' ? { steps, attention: 'block-causal' } : { steps, attention: 'bidirectional', window: view });

/** Weight bytes of each model: on a bandwidth-bound GPU a few-row pass costs about this much. */
const bytesOf = (dir: string) => statSync(join(modelsDir, dir, 'model.safetensors')).size;
const targetBytes = bytesOf('target');
const drafterBytes = { speculative: bytesOf('drafter-ar'), specdiff: bytesOf('drafter-mdlm') };

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

interface Contender {
  name: string;
  method: 'ar' | 'speculative' | 'specdiff';
  gamma?: number;
  steps?: number;
  window?: View;
  cutoff?: number;
  maxGamma?: number;
}

/** One generation with a contender's settings (its drafter made for it and released after). */
async function decode(c: Omit<Contender, 'name'>, prompt: string, temperature: number, seed: number, tokens = maxNewTokens, warm = false): Promise<GenerationStats> {
  const drafter = c.method === 'specdiff' ? diffusionDrafter(c.steps, c.window ?? window) : c.method === 'speculative' ? new ARDrafter(arModel) : undefined;
  try {
    if (warm) {
      // Every kernel these settings reach (any prompt, every draft length up to the longest default), compiled first.
      const maxGamma = drafter ? Math.max(c.gamma ?? DEFAULT_DIFFUSION_MAX_GAMMA, c.maxGamma ?? 0) : 0;
      await device.warmup(reachableKernels(target, drafter ?? null, { sampling: resolveSampling({ temperature }), maxGamma, withConfidence: (c.cutoff ?? 0) > 0, maxNewTokens: tokens }));
      drafter?.dispose();
    }
    const r = await generate(target, tokenizer, { prompt, method: c.method, drafter, gamma: c.gamma, maxGamma: c.maxGamma, steps: c.steps, confidenceCutoff: c.cutoff, temperature, seed, maxNewTokens: tokens, stopAtEos: false }).result();
    return r.stats;
  } finally {
    drafter?.dispose();
  }
}

/** Pipelines compiled during timed generations (0 when the warm-up covers them). */
let compiledInTimedRuns = 0;

/**
 * Runs every prompt with the same settings; sums tokens and times so the rate is tokens / total time.
 * Every kernel the settings can reach is compiled first (warm-up), and the first prompt runs once
 * untimed (buffers for its shapes enter the pool); the report counts pipelines compiled while timed.
 */
async function run(method: 'ar' | 'speculative' | 'specdiff', temperature: number, gamma?: number, steps?: number, W: View = window): Promise<Omit<Row, 'speedup'>> {
  const all: GenerationStats[] = [];
  for (const [i, prompt] of [prompts[0], ...prompts].entries()) {
    const stats = await decode({ method, gamma, steps, window: method === 'specdiff' ? W : undefined }, prompt, temperature, Math.max(0, i - 1), maxNewTokens, i === 0);
    if (i > 0) all.push(stats);
    if (i > 0) compiledInTimedRuns += stats.pipelinesCompiled;
  }
  const sum = (f: (s: GenerationStats) => number) => all.reduce((a, s) => a + f(s), 0);
  const wallMs = sum((s) => s.wallMs);
  const tokens = sum((s) => s.generatedTokens);
  const drafted = sum((s) => s.draftedTokens);
  const iterations = sum((s) => (s.method === 'ar' ? 0 : s.targetPasses));
  const passes = sum((s) => s.targetPasses);
  const draftCost = method === 'ar' ? 0 : (sum((s) => s.drafterPasses) * drafterBytes[method]) / targetBytes;
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

console.log(`adapter: ${device.info.adapter}; weights ${dtype}; ${prompts.length} ${promptSet} × ${maxNewTokens} tokens; drafter window ${window}`);
console.log(`target ${target.config.nLayer}×${target.config.nEmbd}, AR drafter ${arModel.config.nLayer}×${arModel.config.nEmbd}, MDLM ${mdlm.config.nBlocks}×${mdlm.config.hiddenDim}`);
const roofline = { readGBps: (await gpuReadBandwidth(device, 64 << 20)).gbps, peakGflops: (await gpuPeakGflops(device)).gflops };
console.log(`roofline: read bandwidth ${roofline.readGBps.toFixed(1)} GB/s, peak ${roofline.peakGflops.toFixed(1)} GFLOP/s; ` +
  `target weights ${(targetBytes / 1e6).toFixed(1)} MB: a bandwidth-bound AR step would take ${(targetBytes / roofline.readGBps / 1e6).toFixed(1)} ms`);

if (values.autotune) {
  const sigs = [...target.matmulSignatures(1), ...arModel.matmulSignatures(1)];
  const tunedWindows = values.compare ? windowList : [window];
  const shapes = gammas.flatMap((g) => (values.compare ? maxGammas : [0]).flatMap((max) => draftShapes(draftLength(g, max))));
  // The grid's head-to-head also runs generate()'s defaults, which grow the greedy draft.
  if (!values.compare) shapes.push(...draftShapes(draftLength(DEFAULT_DIFFUSION_GAMMA, DEFAULT_DIFFUSION_MAX_GAMMA)), ...draftShapes(draftLength(DEFAULT_DIFFUSION_GAMMA_SAMPLED)));
  for (const { gamma: g, added } of shapes) sigs.push(...target.matmulSignatures(g + 1), ...tunedWindows.flatMap((W) => diffusionDrafter(1, W).matmulSignatures(g, added)));
  const t0 = performance.now();
  const table = await autotuneMatmul(device, sigs);
  console.log(`autotuned ${Object.keys(table).length} matmul shapes in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}


/**
 * Compiles every pipeline a run can meet before anything is timed: llvmpipe compiles at the first
 * dispatch, and a draft of g tokens (g ≤ γ; shorter near the end of the output) has its own matmul
 * shapes in the verify and, with the MDLM, per drafter window.
 */
async function compileDraftShapes(maxGamma: number, W: View = window): Promise<void> {
  const t0 = performance.now();
  const ids = tokenizer.encode(prompts[0]);
  const rng = new Rng(0);
  for (let g = 1; g <= maxGamma; g++) {
    for (const drafter of [new ARDrafter(arModel), diffusionDrafter(1, W)]) {
      for (const temperature of temperatures) {
        const sampling = { temperature, topK: 0, topP: 1 };
        const cache = target.createCache();
        target.forward(ids.slice(0, -1), cache).dispose();
        const draft = device.scope(() => drafter.draft(ids, g, sampling, rng));
        await verifyDraft(target, cache, ids[ids.length - 1], draft.tokens, temperature ? draft.q : null, sampling, rng);
        draft.tokens.dispose();
        draft.q?.dispose();
        cache.dispose();
        // A cached drafter's later drafts run the 1..g + 1 tokens the last verification added, + g masks.
        if (drafter instanceof DiffusionDrafter && W === 'cached') {
          for (let added = 1; added <= g + 1; added++) {
            const fresh = diffusionDrafter(1, W);
            for (const ctx of [ids, [...ids, ...ids.slice(0, added)]]) {
              const d = device.scope(() => fresh.draft(ctx, g, sampling, rng));
              await readTensors([d.tokens]);
              d.tokens.dispose();
              d.q?.dispose();
            }
            fresh.dispose();
          }
        }
      }
      drafter.dispose();
    }
  }
  console.log(`compiled the pipelines of drafts of 1..${maxGamma} tokens (W=${W}) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
if (!values.compare) await compileDraftShapes(longestDraft);

/** Per contender, per round: decoding rate, and the rate over prefill + decoding. */
interface Rates {
  tokensPerSecond: number[][];
  endToEndTokensPerSecond: number[][];
}

/**
 * The contenders take turns on each prompt (the order rotating), round after round, so the machine's
 * drift hits them alike; returns tokens/s per contender per round and prints them, the first
 * contender being the AR baseline.
 */
async function compete(temperature: number, contenders: Contender[]): Promise<Rates> {
  const rates: number[][] = contenders.map(() => []);
  // The same tokens over prefill + decoding: what a user waits for, the drafter's prompt pass included.
  const endToEnd: number[][] = contenders.map(() => []);
  // Hardware-independent counts over all rounds: generated tokens, target passes, drafter passes.
  const counts = contenders.map(() => ({ tokens: 0, passes: 0, drafterPasses: 0 }));
  for (let round = 0; round < rounds; round++) {
    const tokens = contenders.map(() => 0);
    const ms = contenders.map(() => 0);
    const totalMs = contenders.map(() => 0);
    for (const [p, prompt] of prompts.entries()) {
      for (let k = 0; k < contenders.length; k++) {
        const i = (k + round + p) % contenders.length;
        const stats = await decode(contenders[i], prompt, temperature, p);
        tokens[i] += stats.generatedTokens;
        ms[i] += stats.wallMs;
        totalMs[i] += stats.prefillMs + stats.wallMs;
        counts[i].tokens += stats.generatedTokens;
        counts[i].passes += stats.targetPasses;
        counts[i].drafterPasses += stats.drafterPasses;
      }
    }
    contenders.forEach((_, i) => {
      rates[i].push((tokens[i] * 1000) / ms[i]);
      endToEnd[i].push((tokens[i] * 1000) / totalMs[i]);
    });
  }
  for (const [i, c] of contenders.entries()) {
    const n = counts[i];
    const perPass = i ? `   tok/pass ${(n.tokens / n.passes).toFixed(2)}, drafter passes/tok ${(n.drafterPasses / n.tokens).toFixed(2)}` : '';
    const e2e = i ? `, ${spread(ratios(endToEnd, i, 0))} with prefill` : '';
    console.log(`  temp ${temperature}  ${c.name.padEnd(32)} ${rates[i].map((x) => x.toFixed(1)).join(' / ')} tok/s${i ? `   ${spread(ratios(rates, i, 0))} AR${e2e}` : ''}${perPass}`);
  }
  return { tokensPerSecond: rates, endToEndTokensPerSecond: endToEnd };
}

/** Per-round ratios of contender a's rate to b's. */
const ratios = (rates: number[][], a: number, b: number) => rates[a].map((x, r) => x / rates[b][r]);
/** Median (range) of per-round ratios. */
function spread(xs: number[]): string {
  const s = [...xs].sort((x, y) => x - y);
  return `${s[s.length >> 1].toFixed(2)}x (${s[0].toFixed(2)}-${s[s.length - 1].toFixed(2)})`;
}

// --compare: only a head-to-head of AR, speculative at every γ and SpecDiff at every γ × T (≤ γ) × window,
// e.g. to choose defaults: --compare --gammas 4,5 --windows 4,8 --steps 1.
if (values.compare) {
  const results: Record<string, { contenders: Contender[] } & Rates> = {};
  for (const W of windowList) await compileDraftShapes(longestDraft, W);
  const contenders: Contender[] = [
    { name: 'ar', method: 'ar' } as Contender,
    ...gammas.map((gamma): Contender => ({ name: `speculative γ=${gamma}`, method: 'speculative', gamma })),
    ...gammas.flatMap((gamma) =>
      stepsList.filter((T) => T <= gamma).flatMap((T) => windowList.map((window): Contender => ({ name: `specdiff γ=${gamma} T=${T} W=${window}`, method: 'specdiff', gamma, steps: T, window }))),
    ),
  ]
    .flatMap((c) => (c.method === 'ar' ? [c] : cutoffs.map((cutoff): Contender => (cutoff ? { ...c, name: `${c.name} c=${cutoff}`, cutoff } : c))))
    .flatMap((c) => (c.method === 'ar' ? [c] : [...new Set(maxGammas.map((m) => Math.max(m, c.gamma!)))].map((maxGamma): Contender => (maxGamma > c.gamma! ? { ...c, name: `${c.name} ..${maxGamma}`, maxGamma } : c))));
  console.log(`\nhead-to-head (${rounds} rounds, methods alternating prompt by prompt):`);
  for (const temperature of temperatures) {
    // Untimed: pipelines and bind groups exist before the rounds (every prompt: prefill shapes differ by length).
    for (const c of contenders) for (const prompt of prompts) await decode(c, prompt, temperature, 0, 8);
    results[`temp ${temperature}`] = { contenders, ...(await compete(temperature, contenders)) };
  }
  console.log(`\npipelines compiled during timed runs (grid): ${compiledInTimedRuns}`);
mkdirSync(join(root, 'bench/results'), { recursive: true });
  const out = join(root, `bench/results/compare-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, JSON.stringify({ adapter: device.info.adapter, dtype, roofline, promptSet, prompts, maxNewTokens, rounds, headToHead: results }, null, 2));
  console.log(`\nwrote ${out}`);
  process.exit(0);
}

const rows: Row[] = [];
for (const temperature of temperatures) {
  const ar = await run('ar', temperature);
  const push = (r: Omit<Row, 'speedup'>) => {
    const row = { ...r, speedup: r.tokensPerSecond / ar.tokensPerSecond };
    rows.push(row);
    console.log(format(row));
  };
  push(ar);
  for (const gamma of gammas) push(await run('speculative', temperature, gamma));
  for (const gamma of gammas) for (const steps of stepsList) if (steps <= gamma) push(await run('specdiff', temperature, gamma, steps));
  // AR again at the end: how much the machine drifted during the sweep.
  const again = await run('ar', temperature);
  console.log(`  (AR re-measured at the end: ${again.tokensPerSecond.toFixed(2)} tok/s, drift ${((100 * (again.tokensPerSecond - ar.tokensPerSecond)) / ar.tokensPerSecond).toFixed(1)}%)`);
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

console.log('\nbest settings (by tokens/s):');
const best: Record<string, Row> = {};
for (const temperature of temperatures) {
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

// The drafter's context window at the best SpecDiff setting of each temperature, against AR measured again beside it.
const windowRows: Row[] = [];
console.log('\ndrafter window W at the best SpecDiff settings:');
for (const temperature of temperatures) {
  const b = best[`specdiff@${temperature}`];
  const ar = await run('ar', temperature);
  for (const W of windowList) {
    await compileDraftShapes(b.gamma!, W);
    const r = await run('specdiff', temperature, b.gamma, b.steps, W);
    const row = { ...r, speedup: r.tokensPerSecond / ar.tokensPerSecond };
    windowRows.push(row);
    console.log(format(row));
  }
}
for (const temperature of temperatures) {
  const w = windowRows.filter((r) => r.temperature === temperature).reduce((x, y) => (y.tokensPerSecond > x.tokensPerSecond ? y : x));
  console.log(`  temp ${temperature}: best window W=${w.window} (${w.speedup.toFixed(2)}x AR)`);
}

// Head-to-head at the winning settings: the three methods take turns on each prompt, round after round.
const headToHead: Record<string, { contenders: Contender[] } & Rates> = {};
console.log(`\nhead-to-head (${rounds} rounds, methods alternating prompt by prompt):`);
for (const temperature of temperatures) {
  const sp = best[`speculative@${temperature}`];
  const sd = [best[`specdiff@${temperature}`], ...windowRows.filter((r) => r.temperature === temperature)].reduce((x, y) => (y.tokensPerSecond > x.tokensPerSecond ? y : x));
  const contenders: Contender[] = [
    { name: 'ar', method: 'ar' },
    { name: `speculative γ=${sp.gamma}`, method: 'speculative', gamma: sp.gamma },
    { name: `specdiff γ=${sd.gamma} T=${sd.steps} W=${sd.window}`, method: 'specdiff', gamma: sd.gamma, steps: sd.steps, window: sd.window },
    // generate()'s own settings, which at greedy grow the draft (the grid's are fixed lengths).
    { name: 'specdiff defaults', method: 'specdiff' },
  ];
  await compileDraftShapes(Math.max(sd.gamma!, DEFAULT_DIFFUSION_MAX_GAMMA), sd.window);
  if (sd.window !== window) await compileDraftShapes(DEFAULT_DIFFUSION_MAX_GAMMA);
  const measured = await compete(temperature, contenders);
  const rates = measured.tokensPerSecond;
  headToHead[`temp ${temperature}`] = { contenders, ...measured };
  for (const i of [2, 3]) {
    console.log(`  temp ${temperature}: ${contenders[i].name} ${spread(ratios(rates, i, 0))} AR, ${spread(ratios(rates, i, 1))} speculative (median of rounds, range); ` +
      `with the prompt's prefill ${spread(ratios(measured.endToEndTokensPerSecond, i, 0))} AR`);
  }
}

// Where one draft and one verify spend their GPU time, at the best greedy SpecDiff setting.
const profile: Record<string, Array<{ key: string; ms: number; count: number }>> = {};
if (device.info.features.timestampQuery) {
  const b = best['specdiff@0'];
  const gamma = b.gamma ?? 8;
  const ids = tokenizer.encode(prompts[0]);
  const drafter = diffusionDrafter(b.steps, b.window ?? window);
  const sampling = { temperature: 0, topK: 0, topP: 1 };
  const rng = new Rng(0);
  const cache = target.createCache();
  target.forward(ids.slice(0, -1), cache).dispose();
  // Once unprofiled (llvmpipe compiles a kernel at its first dispatch, inside the GPU timeline), then profiled.
  for (const profiled of [false, true]) {
    if (profiled) device.startProfiling();
    const draft = device.scope(() => drafter.draft(ids, gamma, sampling, rng));
    await readTensors([draft.tokens]);
    if (profiled) profile.draft = await device.stopProfiling();
    await device.sync();
    if (profiled) device.startProfiling();
    const base = cache.length;
    await verifyDraft(target, cache, ids[ids.length - 1], draft.tokens, null, sampling, rng);
    cache.truncate(base);
    if (profiled) profile.verify = await device.stopProfiling();
    draft.tokens.dispose();
  }
  cache.dispose();
  for (const [phase, rows] of Object.entries(profile)) {
    const total = rows.reduce((s, r) => s + r.ms, 0);
    console.log(`\nGPU time of one ${phase} (γ=${gamma}${phase === 'draft' ? `, T=${b.steps}` : ''}): ${total.toFixed(1)} ms`);
    for (const r of rows.slice(0, 8)) console.log(`  ${r.key.padEnd(44)} ${r.ms.toFixed(2).padStart(8)} ms  ${String(r.count).padStart(4)} calls  ${((100 * r.ms) / total).toFixed(0).padStart(3)}%`);
  }
}

mkdirSync(join(root, 'bench/results'), { recursive: true });
const out = join(root, `bench/results/decode-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(out, JSON.stringify({ adapter: device.info.adapter, dtype, roofline, promptSet, prompts, maxNewTokens, rows, best, windowRows, headToHead, profile }, null, 2));
console.log(`\nwrote ${out}`);
for (const m of [target, mdlm, arModel]) m.dispose();
device.destroy();
process.exit(0);
