/**
 * npm run bench:decode -- --regimes: AR, speculative decoding (AR drafter) and SpecDiff with each MDLM
 * drafter given, in the regimes users run (greedy; temperature 0.8 with top-k 50; temperature 1), on
 * held-out passages of the training corpora and on out-of-domain prompts (Debian manual pages).
 * Methods take turns prompt by prompt with the same seed, rounds repeat, and speed ratios are taken
 * per round (median, range), so the shared machine's drift hits every method alike; the ratio to AR is also
 * pooled over every run, with a 95 % bootstrap interval over the (round, prompt) pairs (bench/lib/interval.ts).
 *
 * Per regime and method: tokens/s, ratio to AR and to speculative decoding, tokens per target pass
 * (hardware-independent, per prompt set), acceptance by draft position, drafter passes per token;
 * at greedy also split at the first repetition loop (the first 8-gram that repeats earlier text):
 * tokens per pass and tokens/s before it and inside it. Writes JSON and SVG charts to bench/results/.
 *
 *   npm run bench:decode -- --regimes [--drafters DIR1,DIR2] [--models DIR] [--prompt-sets passages,ood]
 *       [--prompts N] [--tokens N] [--rounds N] [--regime-list greedy,t0.8-k50,t1] [--sampled-gammas G1,G2] [--greedy-gammas G1,G2]
 *       [--sampled-max-gammas M1,M2]
 *       [--steps T1,T2] [--head-positions K1,K2] [--head-starts S1,S2] [--head-parallel] [--drafts K1,K2] [--branch-lengths B1,B2]
 *       [--verifications block,token] [--f32] [--autotune]
 * --sampled-gammas adds SpecDiff contenders with other draft lengths when sampling, --greedy-gammas at greedy
 * with other first lengths of the growing schedule (up to the default longest); --sampled-max-gammas adds sampled
 * contenders whose draft length grows after wholly accepted drafts up to M (from the default length and from each
 * of --sampled-gammas); --steps adds
 * contenders with T denoising steps (every regime); --head-positions adds contenders drafting K positions
 * through a draft head (0: the head off), greedy included, for drafters that have one; --head-starts contenders whose
 * head draws from position S on (the backbone before it); --head-parallel a contender whose head
 * draws its positions in one step (headDraw 'parallel'); --drafts contenders that draft K times per target
 * pass when sampling, verified as a token tree (rows/pass: the rows the target scores per pass), with the
 * default draft length and each of --sampled-gammas, with each of --branch-lengths for the drafts after
 * the first, and with each of --head-positions. --verifications adds, when sampling, speculative and SpecDiff contenders
 * (the default draft length and each of --sampled-gammas) verifying their drafts by each rule other than the
 * default (options.ts, Verification). --autotune times the matmul kernel variants on this adapter first (as
 * `specdiff --autotune` does) for every contender's draft lengths; without it the kernels are DEFAULT_TUNING's.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ARDrafter, createNodeDevice, DiffusionDrafter, dirFolder, generate, loadGPT2, loadMDLM, loadTokenizer, Pipeline, type GenerationStats } from '../../src/node.js';
import type { MDLM } from '../../src/models/mdlm.js';
import { reachableKernels } from '../../src/decode/warmup.js';
import { DEFAULT_VERIFICATION, resolveSampling, VERIFICATIONS, type HeadDraw, type Verification } from '../../src/decode/options.js';
import { MAX_TREE_ROWS } from '../../src/shaders/attention.js';
import { table, fmt } from '../lib/table.js';
import { barChart, lineChart } from '../lib/svg.js';
import { median } from '../lib/timing.js';
import { pairedRatioInterval, type RatioInterval, type RunTime } from '../lib/interval.js';
import { root, writeResults } from '../lib/decode.js';

const { values } = parseArgs({
  options: {
    regimes: { type: 'boolean' },
    drafters: { type: 'string' },
    models: { type: 'string' },
    'prompt-sets': { type: 'string' },
    prompts: { type: 'string' },
    tokens: { type: 'string' },
    rounds: { type: 'string' },
    'regime-list': { type: 'string' },
    'sampled-gammas': { type: 'string' },
    'greedy-gammas': { type: 'string' },
    'sampled-max-gammas': { type: 'string' },
    steps: { type: 'string' },
    'head-positions': { type: 'string' },
    'head-parallel': { type: 'boolean' },
    'head-starts': { type: 'string' },
    drafts: { type: 'string' },
    'branch-lengths': { type: 'string' },
    verifications: { type: 'string' },
    f32: { type: 'boolean' },
    autotune: { type: 'boolean' },
  },
});

const modelsDir = values.models ?? join(root, 'models');
const maxNewTokens = Number(values.tokens ?? 64);
const rounds = Number(values.rounds ?? 2);
const perSet = Number(values.prompts ?? 8);
/** A repeated n-gram of this many tokens marks the start of a repetition loop. */
const LOOP_NGRAM = 8;

const REGIMES: Record<string, { temperature: number; topK?: number }> = {
  greedy: { temperature: 0 },
  't0.8-k50': { temperature: 0.8, topK: 50 },
  t1: { temperature: 1 },
};
const regimes = (values['regime-list'] ?? Object.keys(REGIMES).join(',')).split(',');
for (const r of regimes) if (!Object.hasOwn(REGIMES, r)) throw new RangeError(`--regime-list: unknown regime '${r}' (allowed: ${Object.keys(REGIMES).join(', ')})`);
const sampledGammas = values['sampled-gammas'] ? values['sampled-gammas'].split(',').map(Number) : [];
const greedyGammas = values['greedy-gammas'] ? values['greedy-gammas'].split(',').map(Number) : [];
const sampledMaxGammas = values['sampled-max-gammas'] ? values['sampled-max-gammas'].split(',').map(Number) : [];
/** More SpecDiff contenders with T denoising steps (left to right: later blocks see the earlier ones drawn). */
const stepsList = values.steps ? values.steps.split(',').map(Number) : [];
const headPositionsList = values['head-positions'] ? values['head-positions'].split(',').map(Number) : [];
const headStarts = values['head-starts'] ? values['head-starts'].split(',').map(Number) : [];
/** More SpecDiff contenders verifying K drafts per target pass as a token tree (sampled regimes). */
const draftsList = values.drafts ? values.drafts.split(',').map(Number) : [];
/** With --drafts, more contenders whose drafts after the first have these lengths. */
const branchLengths = values['branch-lengths'] ? values['branch-lengths'].split(',').map(Number) : [];
/** More sampled contenders verifying by these rules (the default's contenders run anyway). */
const verifications = (values.verifications ? values.verifications.split(',') : []).filter((v) => v !== DEFAULT_VERIFICATION) as Verification[];
for (const v of verifications) if (!VERIFICATIONS.includes(v)) throw new RangeError(`--verifications: unknown rule '${v}' (allowed: ${VERIFICATIONS.join(', ')})`);

const PROMPT_SETS: Record<string, string> = { passages: 'bench/passages.json', ood: 'bench/passages-ood.json' };
const setNames = (values['prompt-sets'] ?? 'passages,ood').split(',');
const prompts = setNames.flatMap((set) => {
  if (!Object.hasOwn(PROMPT_SETS, set)) throw new RangeError(`--prompt-sets: unknown set '${set}' (allowed: ${Object.keys(PROMPT_SETS).join(', ')})`);
  const texts: string[] = JSON.parse(readFileSync(join(root, PROMPT_SETS[set]), 'utf8'));
  return texts.slice(0, perSet).map((text) => ({ set, text }));
});

const device = await createNodeDevice();
const dtype = values.f32 ? 'f32' : 'f16';
const tokenizer = await loadTokenizer(dirFolder(join(modelsDir, 'target')));
const target = await loadGPT2(device, dirFolder(join(modelsDir, 'target')), { dtype });
const arModel = await loadGPT2(device, dirFolder(join(modelsDir, 'drafter-ar')), { dtype });
const drafterDirs = (values.drafters ?? join(modelsDir, 'drafter-mdlm')).split(',');
const mdlms: Array<{ name: string; model: MDLM }> = [];
// Named by folder, or by the path from the repository when two folders share a name.
const folderName = (dir: string) => (drafterDirs.filter((d) => basename(d) === basename(dir)).length > 1 ? relative(root, resolve(dir)) : basename(dir));
for (const dir of drafterDirs) mdlms.push({ name: folderName(dir), model: await loadMDLM(device, dirFolder(dir), { dtype }) });

interface Contender {
  name: string;
  method: 'ar' | 'speculative' | 'specdiff';
  mdlm?: MDLM;
  gamma?: number;
  /** Longest draft of the growing schedule (undefined: gamma, or the default when gamma is too). */
  maxGamma?: number;
  steps?: number;
  /** Draft-head positions (0: the head off); undefined: the drafter's default. */
  headPositions?: number;
  headDraw?: HeadDraw;
  /** First position the head draws (undefined: the drafter's default). */
  headStart?: number;
  /** Drafts verified together per target pass (undefined: one). */
  drafts?: number;
  /** Length of each draft after the first (undefined: γ). */
  branchLength?: number;  /** How sampled drafts are verified (undefined: the default). */
  verification?: Verification;
}

function contendersFor(regime: string): Contender[] {
  const sampled = REGIMES[regime].temperature > 0;
  const list: Contender[] = [{ name: 'AR', method: 'ar' }, { name: 'speculative', method: 'speculative' }];
  if (sampled) for (const verification of verifications) list.push({ name: `speculative ${verification}-verified`, method: 'speculative', verification });
  for (const { name, model } of mdlms) {
    list.push({ name: `specdiff ${name}`, method: 'specdiff', mdlm: model });
    const defaults = new DiffusionDrafter(model).defaults(resolveSampling(REGIMES[regime]));
    if (sampled) {
      for (const gamma of sampledGammas) list.push({ name: `specdiff ${name} γ=${gamma}`, method: 'specdiff', mdlm: model, gamma });
      for (const verification of verifications) {
        for (const gamma of [undefined, ...sampledGammas]) list.push({ name: `specdiff ${name}${gamma ? ` γ=${gamma}` : ''} ${verification}-verified`, method: 'specdiff', mdlm: model, gamma, verification });
      }
      for (const gamma of [defaults.gamma, ...sampledGammas]) {
        for (const maxGamma of sampledMaxGammas.filter((m) => m > gamma)) list.push({ name: `specdiff ${name} γ=${gamma}→${maxGamma}`, method: 'specdiff', mdlm: model, gamma, maxGamma });
      }
    } else {
      for (const gamma of greedyGammas) {
        const maxGamma = Math.max(gamma, defaults.maxGamma);
        list.push({ name: `specdiff ${name} γ=${gamma}→${maxGamma}`, method: 'specdiff', mdlm: model, gamma, maxGamma });
      }
    }
    if (sampled) {
      for (const drafts of draftsList) {
        for (const branchLength of [undefined, ...branchLengths]) {
          // A tree holds at most MAX_TREE_ROWS − 1 drafted tokens.
          const fits = (gamma: number) => gamma + (drafts - 1) * Math.min(branchLength ?? gamma, gamma) < MAX_TREE_ROWS;
          const shape = `${drafts} drafts${branchLength ? ` (branches of ${branchLength})` : ''}`;
          for (const headPositions of [undefined, ...(model.config.draftHead ? headPositionsList : [])]) {
            const head = headPositions === undefined ? '' : ` head ${headPositions || 'off'}`;
            for (const gamma of [undefined, ...sampledGammas.filter(fits)]) {
              list.push({ name: `specdiff ${name}${head}${gamma ? ` γ=${gamma}` : ''} ${shape}`, method: 'specdiff', mdlm: model, gamma, drafts, branchLength, headPositions });
            }
          }
        }
      }
    }
    for (const steps of stepsList) list.push({ name: `specdiff ${name} T=${steps}`, method: 'specdiff', mdlm: model, steps });
    if (model.config.draftHead) for (const k of headPositionsList) list.push({ name: `specdiff ${name} head ${k || 'off'}`, method: 'specdiff', mdlm: model, headPositions: k });
    if (model.config.draftHead && values['head-parallel']) list.push({ name: `specdiff ${name} head parallel`, method: 'specdiff', mdlm: model, headDraw: 'parallel' });
    if (model.config.draftHead) for (const headStart of headStarts) list.push({ name: `specdiff ${name} head from ${headStart}`, method: 'specdiff', mdlm: model, headStart });
  }
  return list;
}

/** The generated index where the first repeated LOOP_NGRAM-gram starts (its earlier copy may lie in the prompt). */
function loopStart(promptIds: number[], out: number[]): number {
  const all = [...promptIds, ...out];
  const seen = new Set<string>();
  for (let s = 0; s + LOOP_NGRAM <= all.length; s++) {
    const key = all.slice(s, s + LOOP_NGRAM).join(',');
    if (s >= promptIds.length && seen.has(key)) return s - promptIds.length;
    seen.add(key);
  }
  return out.length;
}

/** Sums over generations; rates and fractions are taken from these at the end. */
interface Tally {
  tokens: number;
  ms: number;
  passes: number;
  /** Rows the target scored in those passes. */
  rows: number;
  drafterPasses: number;
  draftHeadSteps: number;
  drafted: number;
  accepted: number;
  draftedAt: number[];
  acceptedAt: number[];
  /** Greedy stretches: before the first repetition loop and inside it. */
  before: { tokens: number; passes: number; ms: number };
  inside: { tokens: number; passes: number; ms: number };
  bySet: Record<string, { tokens: number; passes: number }>;
  /** Pipelines compiled inside timed generations (0 after a complete warm-up). */
  compiled: number;
}

const newTally = (): Tally => ({
  tokens: 0, ms: 0, passes: 0, rows: 0, drafterPasses: 0, draftHeadSteps: 0, drafted: 0, accepted: 0, draftedAt: [], acceptedAt: [],
  before: { tokens: 0, passes: 0, ms: 0 }, inside: { tokens: 0, passes: 0, ms: 0 }, bySet: {}, compiled: 0,
});

function add(t: Tally, s: GenerationStats, set: string, iterations: Array<{ start: number; n: number; ms: number }>, loop: number): void {
  t.tokens += s.generatedTokens;
  t.ms += s.wallMs;
  t.passes += s.targetPasses;
  t.rows += s.targetRows;
  t.drafterPasses += s.drafterPasses;
  t.draftHeadSteps += s.draftHeadSteps;
  t.drafted += s.draftedTokens;
  t.accepted += s.acceptedTokens;
  t.compiled += s.pipelinesCompiled;
  s.draftedByPosition.forEach((n, i) => {
    t.draftedAt[i] = (t.draftedAt[i] ?? 0) + n;
    t.acceptedAt[i] = (t.acceptedAt[i] ?? 0) + Math.round(n * s.acceptanceByPosition[i]);
  });
  for (const it of iterations) {
    const stretch = it.start < loop ? t.before : t.inside;
    stretch.tokens += it.n;
    stretch.passes++;
    stretch.ms += it.ms;
  }
  const b = (t.bySet[set] ??= { tokens: 0, passes: 0 });
  b.tokens += s.generatedTokens;
  b.passes += s.targetPasses;
}

async function run(c: Contender, prompt: string, regime: string, seed: number) {
  const drafter = c.method === 'specdiff' ? diffusionDrafter(c) : c.method === 'speculative' ? new ARDrafter(arModel) : undefined;
  try {
    const gen = generate(target, tokenizer, { prompt, method: c.method, drafter, gamma: c.gamma, maxGamma: c.maxGamma, drafts: c.drafts, branchLength: c.branchLength, verification: c.verification, ...REGIMES[regime], seed, maxNewTokens, stopAtEos: false });
    // One chunk per target pass: its tokens and the time since the previous one.
    const iterations: Array<{ start: number; n: number; ms: number }> = [];
    let last = performance.now();
    let at = 0;
    for await (const chunk of gen) {
      const now = performance.now();
      if (chunk.tokens.length) iterations.push({ start: at, n: chunk.tokens.length, ms: now - last });
      at += chunk.tokens.length;
      last = now;
    }
    const { stats, tokens } = await gen.result();
    if (iterations.length) iterations[0].ms = Math.max(0, iterations[0].ms - stats.prefillMs);
    return { stats, iterations, loop: loopStart(tokenizer.encode(prompt), tokens) };
  } finally {
    drafter?.dispose();
  }
}

function diffusionDrafter(c: Contender): DiffusionDrafter {
  // A contender with head positions drafts through the head in every regime, greedy included.
  const head = c.headPositions === undefined ? {} : c.headPositions ? { draftHead: true, headPositions: c.headPositions } : { draftHead: false };
  return new DiffusionDrafter(c.mdlm!, { steps: c.steps, headDraw: c.headDraw, headStart: c.headStart, ...head });
}

const rate = (tokens: number, ms: number) => (ms > 0 ? (tokens * 1000) / ms : 0);

console.log(`adapter: ${device.info.adapter}; weights ${dtype}; ${prompts.length} prompts (${setNames.map((s) => `${prompts.filter((p) => p.set === s).length} ${s}`).join(', ')}) × ${maxNewTokens} tokens; ${rounds} rounds; regimes ${regimes.join(', ')}`);
if (values.autotune) {
  // The matmul kernels timed on this adapter for every contender's draft lengths, before the warm-up compiles the chosen ones.
  const t0 = performance.now();
  let shapes = 0;
  for (const { model } of mdlms) {
    const pipe = new Pipeline(device, tokenizer, target, model, arModel);
    const schedules = new Map<string, { gamma?: number; maxGamma?: number }>();
    for (const c of regimes.flatMap(contendersFor)) if (c.mdlm === model) schedules.set(`${c.gamma}→${c.maxGamma}`, { gamma: c.gamma, maxGamma: c.maxGamma });
    for (const schedule of schedules.values()) shapes += Object.keys(await pipe.autotune(schedule)).length;
  }
  console.log(`autotuned ${shapes} matmul shapes in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
// Compile every kernel each contender can reach first (any prompt, every draft length up to the longest
// default), so that no timed generation pays for it; pipelinesCompiled in the results says if one did.
for (const regime of regimes) {
  for (const c of contendersFor(regime)) {
    const drafter = c.method === 'specdiff' ? diffusionDrafter(c) : c.method === 'speculative' ? new ARDrafter(arModel) : null;
    const sampling = resolveSampling(REGIMES[regime]);
    // The longest draft generate() can make with these settings (SpecDiff grows to its maximum at greedy only).
    const maxGamma = drafter ? (c.maxGamma ?? c.gamma ?? drafter.defaults(sampling).maxGamma) : 0;
    await device.warmup(await reachableKernels(target, drafter, { sampling, maxGamma, withConfidence: false, maxNewTokens, drafts: c.drafts, verification: c.verification }));
    drafter?.dispose();
  }
}

/** Per regime: each contender's sums, per round and in all, and each (round, prompt)'s runs, for the intervals. */
const results: Record<string, { contenders: string[]; total: Record<string, Tally>; perRound: Array<Record<string, Tally>>; pairs: Array<Record<string, RunTime>> }> = {};
for (const regime of regimes) results[regime] = { contenders: contendersFor(regime).map((c) => c.name), total: {}, perRound: [], pairs: [] };
for (let round = 0; round < rounds; round++) {
  for (const regime of regimes) {
    const contenders = contendersFor(regime);
    const tallies: Record<string, Tally> = Object.fromEntries(contenders.map((c) => [c.name, newTally()]));
    for (const [p, { set, text }] of prompts.entries()) {
      const pair: Record<string, RunTime> = {};
      // Rotate the order prompt by prompt, so no method always runs first after a switch.
      for (let k = 0; k < contenders.length; k++) {
        const c = contenders[(k + p + round) % contenders.length];
        const { stats, iterations, loop } = await run(c, text, regime, 1000 * round + p);
        add(tallies[c.name], stats, set, iterations, loop);
        add((results[regime].total[c.name] ??= newTally()), stats, set, iterations, loop);
        pair[c.name] = { tokens: stats.generatedTokens, ms: stats.wallMs };
      }
      results[regime].pairs.push(pair);
    }
    results[regime].perRound.push(tallies);
    const ar = tallies.AR;
    process.stderr.write(`round ${round + 1} ${regime}: ` + contenders.map((c) => `${c.name} ${(rate(tallies[c.name].tokens, tallies[c.name].ms) / rate(ar.tokens, ar.ms)).toFixed(2)}x`).join(', ') + '\n');
  }
}

const summary: Record<string, unknown> = {};
for (const regime of regimes) {
  const { contenders, total, perRound, pairs } = results[regime];
  const ratioTo = (name: string, base: string) => perRound.map((t) => rate(t[name].tokens, t[name].ms) / rate(t[base].tokens, t[base].ms));
  const pooled = (name: string, base: string): RatioInterval => pairedRatioInterval(pairs.map((r) => [r[name], r[base]] as const));
  const greedy = REGIMES[regime].temperature === 0;
  const head = ['method', '>tok/s', '>x AR', '>x AR pooled [95% CI]', '>x spec', '>tok/pass', ...setNames.map((s) => `>tok/pass ${s}`), '>rows/pass', '>accept@1', '>@2', '>@3', '>@4', '>@8', '>drafter passes/tok', '>head steps/tok'];
  if (greedy) head.push('>before loop tok/pass', '>inside tok/pass', '>before tok/s', '>inside tok/s', '>tokens inside');
  const rows = contenders.map((name) => {
    const t = total[name];
    const xAr = ratioTo(name, 'AR');
    const xSpec = ratioTo(name, 'speculative');
    const arInterval = pooled(name, 'AR');
    const at = (i: number) => (t.draftedAt[i] ? t.acceptedAt[i] / t.draftedAt[i] : null);
    const row = [
      name,
      rate(t.tokens, t.ms),
      `${fmt(median(xAr))} (${fmt(Math.min(...xAr))}-${fmt(Math.max(...xAr))})`,
      `${fmt(arInterval.ratio)} [${fmt(arInterval.low)}, ${fmt(arInterval.high)}]`,
      fmt(median(xSpec)),
      t.tokens / t.passes,
      ...setNames.map((s) => (t.bySet[s] ? t.bySet[s].tokens / t.bySet[s].passes : null)),
      t.rows / t.passes,
      at(0), at(1), at(2), at(3), at(7),
      t.tokens ? t.drafterPasses / t.tokens : 0,
      t.tokens ? t.draftHeadSteps / t.tokens : 0,
    ];
    if (greedy) {
      row.push(t.before.passes ? t.before.tokens / t.before.passes : null, t.inside.passes ? t.inside.tokens / t.inside.passes : null);
      row.push(rate(t.before.tokens, t.before.ms), t.inside.ms ? rate(t.inside.tokens, t.inside.ms) : null, `${((100 * t.inside.tokens) / t.tokens).toFixed(0)}%`);
    }
    summary[`${regime} ${name}`] = {
      tokensPerSecond: rate(t.tokens, t.ms), xAR: xAr, xSpeculative: xSpec, xARPooled: arInterval, xSpeculativePooled: pooled(name, 'speculative'), tokensPerTargetPass: t.tokens / t.passes, targetRowsPerPass: t.rows / t.passes,
      tokensPerTargetPassBySet: Object.fromEntries(Object.entries(t.bySet).map(([s, b]) => [s, b.tokens / b.passes])),
      acceptanceByPosition: t.draftedAt.map((n, i) => t.acceptedAt[i] / n), draftedByPosition: t.draftedAt,
      drafterPassesPerToken: t.tokens ? t.drafterPasses / t.tokens : 0,
      draftHeadStepsPerToken: t.tokens ? t.draftHeadSteps / t.tokens : 0,
      pipelinesCompiledWhileTimed: t.compiled,
      ...(greedy ? { beforeLoop: t.before, insideLoop: t.inside } : {}),
    };
    return row;
  });
  const compiled = contenders.reduce((n, name) => n + total[name].compiled, 0);
  console.log(`\n${regime} (${JSON.stringify(REGIMES[regime])}): x AR and x spec are medians over rounds of the per-round ratio; x AR pooled is all tokens over all time against AR's, with a bootstrap interval over the ${pairs.length} (round, prompt) pairs; ${compiled} pipelines compiled in timed runs`);
  console.log(table(head, rows));
}

const out = writeResults('regimes', { adapter: device.info.adapter, dtype, maxNewTokens, rounds, prompts, drafters: drafterDirs, regimes, summary });
// Charts: tokens per pass and speed by regime (greedy split at the loop), acceptance by position per regime.
const drafted = (regime: string) => results[regime].contenders.filter((n) => n !== 'AR');
const names = [...new Set(regimes.flatMap(drafted))];
const categories = regimes.flatMap((r) => (REGIMES[r].temperature === 0 ? [`${r} before loop`, `${r} inside loop`] : [r]));
const perPass = (name: string) =>
  regimes.flatMap((r) => {
    const t = results[r].total[name];
    if (!t) return REGIMES[r].temperature === 0 ? [NaN, NaN] : [NaN];
    return REGIMES[r].temperature === 0 ? [t.before.tokens / t.before.passes, t.inside.tokens / t.inside.passes] : [t.tokens / t.passes];
  });
writeFileSync(`${out}-tokens-per-pass.svg`, barChart('Tokens per target pass', 'tokens / pass', categories, names.map((n) => ({ name: n, values: perPass(n) }))));
writeFileSync(`${out}-speed.svg`, barChart('Decoding speed relative to AR (median of rounds)', 'x AR', regimes, names.map((n) => ({ name: n, values: regimes.map((r) => (results[r].total[n] ? median(results[r].perRound.map((t) => rate(t[n].tokens, t[n].ms) / rate(t.AR.tokens, t.AR.ms))) : NaN)) }))));
for (const r of regimes) {
  const series = drafted(r).map((n) => ({ name: n, values: results[r].total[n].draftedAt.slice(0, 16).map((d, i) => results[r].total[n].acceptedAt[i] / d) }));
  writeFileSync(`${out}-acceptance-${r}.svg`, lineChart(`Acceptance by draft position, ${r}`, 'accepted | reached', 'draft position', series));
}
console.log(`\nwrote ${out}.json and its SVG charts`);
for (const { model } of mdlms) model.dispose();
target.dispose();
arModel.dispose();
device.destroy();
