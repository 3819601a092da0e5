#!/usr/bin/env node
/**
 * Command line: `specdiff generate "prompt" [options]` streams a generation; `specdiff demo`
 * runs AR and SpecDiff side by side on the bundled models and prints the measured speedup.
 */
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  bundledModelPath,
  bundledModelsDir,
  createNodeDevice,
  defaultCacheDir,
  dirFolder,
  lavapipeThreads,
  loadPipeline,
  loadTuning,
  saveTuning,
  urlFolder,
  VERIFICATIONS,
  type BundledModel,
  type GenerationStats,
  type Pipeline,
  type StagedWarmup,
  type StepTrace,
  type Verification,
  type WarmupOptions,
} from './node.js';
import type { CheckpointFolder } from './models/safetensors.js';
import { formatBytes, ProgressBars } from './cli-progress.js';

const here = dirname(fileURLToPath(import.meta.url));

const HELP = `usage:
  specdiff generate "prompt" [options]   stream a generation
  specdiff demo [options]                AR vs SpecDiff on a bundled prompt, side by side
                                         (temperature 0.8, top-k 50 unless given)

options:
  --method ar|speculative|specdiff  (default specdiff)
  --gamma N          draft length (default for specdiff 6 greedy, growing to 31; 6 sampled;
                     4 for speculative)
  --max-gamma N      let the draft length grow after wholly accepted drafts (2γ + 1 each
                     time) up to N, back to γ after a rejection (default: specdiff greedy 31
                     when --gamma is not given; otherwise γ, a fixed length)
  --steps N          diffusion steps T (default 1)
  --cutoff X         verify a draft only up to its first token the drafter gives
                     probability < X (default 0: verify all γ)
  --drafts K         when sampling, K independent drafts per target pass, verified together
                     as a token tree (specdiff with --steps 1 or a draft head; up to 8, at
                     most 31 drafted tokens in all; default 1)
  --branch-length N  with --drafts, the length of each draft after the first (default γ)
  --verification block|token
                     when sampling, judge a draft as a whole (block verification) or token
                     by token; both are exact (default block)
  --window N         drafter context window W of bidirectional drafting (default 8)
  --draft-attention bidirectional|block-causal
                     how the MDLM drafter sees the context (default: its config.json;
                     block-causal caches the whole context's keys and values)
  --draft-head on|off  draft through the MDLM drafter's draft head, when its config.json
                     has one (default: on; off with --steps above 1)
  --head-positions N draft positions the draft head draws from --head-start on (default
                     12); the rest come from the drafter's one pass
  --head-start N     the first draft position the draft head draws (default 1 with shifted
                     logits, as the bundled drafter has, else 0); earlier ones come from
                     the drafter's one pass
  --head-draw sequential|parallel
                     a head step per position, or one for all of them reading the
                     drafter's own coupled draws (default sequential)
  --schedule left-to-right|random
  --temperature X    0 = greedy (default 0)
  --top-k N  --top-p X  --seed N  --max-new-tokens N (default 64)
  --target DIR|URL   GPT-2 checkpoint folder (default: the bundled models, from the
                     specdiff-webgpu-models package or the repository's models/)
  --drafter DIR|URL  MDLM drafter folder (default: bundled)
  --ar-drafter DIR|URL  GPT-2 drafter folder (default: bundled)
  --cache-dir DIR    where files loaded by URL, --autotune's choices and the names of the
                     kernels compiled on this adapter are kept (default: the user's cache
                     folder, e.g. ~/.cache/specdiff-webgpu)
  --f32              keep weights in f32 (default: f16, half the memory and bandwidth)
  --autotune         time the matmul kernel variants for these shapes first and use the fastest;
                     the choices are kept per adapter in the cache folder: later runs use
                     them, and --autotune then times only the shapes not seen yet
  --json             print the result and statistics as JSON (stdout); otherwise the
                     generated text alone goes to stdout, the prompt and statistics to stderr
  --version          print the version
  --trace FILE       write one JSON line per decoding iteration to FILE: drafted ids, p and q of
                     each (when sampling), accepted count, emitted tokens, draft and verify ms
`;

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(here, '..', 'package.json'), 'utf8')) as { version: string }).version;
}

/** A bad command line: reported before anything loads, exit code 2. */
class UsageError extends Error {
  override name = 'UsageError';
}

const CHOICES: Record<string, readonly string[]> = {
  method: ['ar', 'speculative', 'specdiff'],
  schedule: ['left-to-right', 'random'],
  'draft-attention': ['bidirectional', 'block-causal'],
  'draft-head': ['on', 'off'],
  'head-draw': ['sequential', 'parallel'],
  verification: VERIFICATIONS,
};
/** Numeric flags: [least value, integer?, greatest value]. */
const NUMBERS: Record<string, [number, boolean, number?]> = {
  gamma: [1, true],
  'max-gamma': [1, true],
  steps: [1, true],
  'head-positions': [1, true],
  'head-start': [0, true],
  window: [1, true],
  'top-k': [0, true],
  seed: [0, true],
  'max-new-tokens': [1, true],
  temperature: [0, false],
  'top-p': [Number.MIN_VALUE, false, 1],
  cutoff: [0, false, 1],
  drafts: [1, true, 8],
  'branch-length': [1, true],
};

/** Every flag's value checked against what it allows, naming both, before anything is loaded. */
function checkFlags(values: Record<string, unknown>): void {
  for (const [flag, allowed] of Object.entries(CHOICES)) {
    const v = values[flag];
    if (v !== undefined && !allowed.includes(v as string)) throw new UsageError(`--${flag} must be one of ${allowed.join(', ')}; got '${String(v)}'`);
  }
  for (const [flag, [least, integer, most]] of Object.entries(NUMBERS)) {
    const v = values[flag];
    if (v === undefined) continue;
    const x = Number(v);
    const kind = integer ? 'an integer' : 'a number';
    const range = most === undefined ? `>= ${least === Number.MIN_VALUE ? '> 0' : least}` : `in ${least === Number.MIN_VALUE ? '(0' : `[${least}`}, ${most}]`;
    if (String(v).trim() === '' || !Number.isFinite(x) || (integer && !Number.isInteger(x)) || x < least || (most !== undefined && x > most)) {
      throw new UsageError(`--${flag} must be ${kind} ${range}; got '${String(v)}'`);
    }
  }
}

/** The folder a model flag names (a directory or a URL, downloads cached), or the bundled model; bars labelled by the flag. */
function folder(values: Record<string, unknown>, flag: 'target' | 'drafter' | 'ar-drafter', bundled: BundledModel, bars: ProgressBars | null): CheckpointFolder {
  const spec = values[flag] as string | undefined;
  if (spec === undefined) return dirFolder(bundledModelPath(bundled));
  if (!/^https?:\/\//.test(spec)) return dirFolder(spec);
  const base = spec.endsWith('/') ? spec : `${spec}/`;
  const label = (url: string) => `${flag}: ${url.slice(base.length)}`;
  return urlFolder(base, {
    cacheDir: values['cache-dir'] as string | undefined,
    onProgress: (loaded, total, url) => bars?.update(label(url), loaded, total, `${formatBytes(loaded)} / ${formatBytes(total)}`),
    onFile: (url, fromCache, bytes) => bars?.finish(label(url), `${formatBytes(bytes)}${fromCache ? ' (cached)' : ''}`),
  });
}

/** Compiles what a generation with these options can reach, showing "compiling kernels n/N" on stderr. */
async function warmup(pipe: Pipeline, opts: WarmupOptions, quiet: boolean): Promise<void> {
  const t = performance.now();
  let shown = -1;
  const w = await pipe.warmup({
    ...opts,
    onProgress: (done, total) => {
      if (quiet || !process.stderr.isTTY || total === 0 || done === shown) return;
      shown = done;
      process.stderr.write(`\rcompiling kernels ${done}/${total}${done === total ? '\n' : ''}`);
    },
  });
  if (!quiet) process.stderr.write(`${w.kernels} kernels ready (${w.compiled} compiled, ${w.launched} first runs${w.helperDevices ? `, ${w.helperDevices + 1} devices compiling` : ''}) in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);
}

/** Warms up what plain target steps need and starts the rest beside the generation (`drafting`, for draftWhen). */
async function stagedWarmup(pipe: Pipeline, opts: WarmupOptions, quiet: boolean): Promise<StagedWarmup> {
  const t = performance.now();
  const staged = await pipe.warmupStaged({
    ...opts,
    onProgress: (done, total) => {
      if (quiet || !process.stderr.isTTY || total === 0) return;
      process.stderr.write(`\rcompiling kernels ${done}/${total}${done === total ? '\n' : ''}`);
    },
  });
  const { plain } = staged;
  if (!quiet) process.stderr.write(`${plain.kernels} kernels ready for the first tokens (${plain.compiled} compiled, ${plain.launched} first runs) in ${((performance.now() - t) / 1000).toFixed(1)} s; drafting starts once the drafter has loaded and its kernels are ready\n`);
  return staged;
}

function summary(s: GenerationStats): string {
  const lines = [
    `${s.method}: ${s.generatedTokens} tokens in ${(s.wallMs / 1000).toFixed(2)} s = ${s.tokensPerSecond.toFixed(1)} tok/s (prefill ${s.prefillMs.toFixed(0)} ms, stop: ${s.stopReason}${s.pipelinesCompiled ? `; ${s.pipelinesCompiled} kernels compiled in ${s.compileMs.toFixed(0)} ms, not counted` : ''})`,
    `  target passes ${s.targetPasses}, tokens per target pass ${s.tokensPerTargetPass.toFixed(2)}${s.method !== 'ar' ? `, rows scored per pass ${(s.targetRows / Math.max(1, s.targetPasses)).toFixed(2)}` : ''}${s.stepsBeforeDrafting ? ` (the first ${s.stepsBeforeDrafting} plain, while the drafter loaded and its kernels compiled${s.draftingWaitMs ? `; then it waited ${s.draftingWaitMs.toFixed(0)} ms for them, not counted` : ''})` : ''}`,
  ];
  if (s.method !== 'ar') {
    lines.push(
      `  drafted ${s.draftedTokens}, accepted ${s.acceptedTokens} (${(100 * s.acceptanceRate).toFixed(1)}%), mean accepted per iteration ${s.meanAccepted.toFixed(2)}, drafter passes per token ${s.drafterPassesPerToken.toFixed(2)}${s.draftHeadSteps ? `, draft-head steps per token ${(s.draftHeadSteps / s.generatedTokens).toFixed(2)}` : ''}`,
      // γ is unknown when a staged start never drafted (its drafter arrived after the last token).
      `  time: draft ${s.draftMs.toFixed(0)} ms, verify ${s.verifyMs.toFixed(0)} ms, accept ${s.acceptMs.toFixed(0)} ms${s.gamma === undefined ? '' : ` (γ=${s.gamma}${s.maxGamma !== s.gamma ? `..${s.maxGamma}, mean ${s.meanDrafted.toFixed(1)}` : ''}${s.steps ? `, T=${s.steps}` : ''}${s.verification ? `, ${s.verification} verification` : ''})`}`,
      `  acceptance by draft position: ${s.acceptanceByPosition.slice(0, 8).map((a, i) => `${i + 1}: ${(100 * a).toFixed(0)}%`).join(', ')}${s.acceptanceByPosition.length > 8 ? ', …' : ''}`,
      `  accepted per draft (0, 1, 2, …): ${s.acceptedLengthCounts.join(' ')}`,
    );
  }
  return lines.join('\n');
}

/** Loads the target and only the drafter the methods use, with a progress bar per downloaded file and per model. */
/** `deferDrafters`: a staged start loads the drafters after the first token (PipelineLoadOptions), without progress bars. */
async function load(values: Record<string, unknown>, methods: readonly string[], deferDrafters = false): Promise<{ pipe: Pipeline; keep: () => void }> {
  const bars = values.json ? null : new ProgressBars();
  const sources = {
    target: folder(values, 'target', 'target', bars),
    diffusionDrafter: methods.includes('specdiff') ? folder(values, 'drafter', 'drafter-mdlm', bars) : undefined,
    arDrafter: methods.includes('speculative') ? folder(values, 'ar-drafter', 'drafter-ar', bars) : undefined,
  };
  // loadPipeline loads the models in this order, each one's progress ending at its total.
  const models = ['target', ...(deferDrafters ? [] : [...(sources.diffusionDrafter ? ['drafter'] : []), ...(sources.arDrafter ? ['ar-drafter'] : [])])];
  let loading = 0;
  const onProgress = (loaded: number, total: number) => {
    const label = `${models[loading]} weights to the GPU`;
    if (loaded < total) return bars?.update(label, loaded, total, formatBytes(total));
    bars?.finish(label, formatBytes(total));
    loading++;
  };
  // Read by lavapipe (Mesa's software driver) when Dawn starts: the recommended count, unless set.
  process.env.LP_NUM_THREADS ??= String(lavapipeThreads());
  const device = await createNodeDevice();
  // No dtype: the library's default (f16).
  const pipe = await loadPipeline(device, sources, { dtype: values.f32 ? 'f32' : undefined, onProgress, deferDrafters });
  if (!values.json) process.stderr.write(`adapter: ${device.info.adapter}\n`);
  const say = (line: string): void => {
    if (!values.json) process.stderr.write(`${line}\n`);
  };
  // Choices an earlier --autotune measured on this adapter, with this version (kernels change between versions),
  // and the kernels earlier runs compiled.
  const cacheDir = (values['cache-dir'] as string | undefined) ?? defaultCacheDir();
  const stamp = `specdiff-webgpu ${packageVersion()}`;
  const kept = loadTuning(device, cacheDir, stamp);
  if (kept.ignored) say(`ignoring the tuning kept in ${kept.path}: ${kept.ignored}`);
  else if (kept.restored) say(`restored ${kept.restored} matmul choices measured earlier on this adapter (${kept.path})`);
  if (values.autotune) {
    const t = performance.now();
    const { gamma, maxGamma, window } = genOptions(values);
    const table = await pipe.autotune({ gamma, maxGamma, window });
    say(`autotuned ${Object.keys(table).length} matmul shapes in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    if (Object.keys(table).length) {
      try {
        say(`kept the choices in ${saveTuning(device, cacheDir, stamp)}`);
      } catch (e) {
        say(`could not keep the choices in ${cacheDir}: ${(e as Error).message}`);
      }
    }
  }
  // After the run: the kernels it compiled, so that the next run's background warm-up knows which ones the driver's
  // cache lacks (saveTuning). Quiet unless it fails.
  const keep = () => {
    if (device.firstRuns().length === kept.firstRuns) return;
    try {
      saveTuning(device, cacheDir, stamp);
    } catch (e) {
      say(`could not keep the kernels compiled in ${cacheDir}: ${(e as Error).message}`);
    }
  };
  return { pipe, keep };
}

function genOptions(v: Record<string, unknown>) {
  const num = (k: string) => (v[k] === undefined ? undefined : Number(v[k]));
  return {
    gamma: num('gamma'),
    maxGamma: num('max-gamma'),
    steps: num('steps'),
    confidenceCutoff: num('cutoff'),
    drafts: num('drafts'),
    branchLength: num('branch-length'),
    window: num('window'),
    schedule: v.schedule as 'left-to-right' | 'random' | undefined,
    draftAttention: v['draft-attention'] as 'bidirectional' | 'block-causal' | undefined,
    draftHead: v['draft-head'] === undefined ? undefined : v['draft-head'] === 'on',
    headPositions: num('head-positions'),
    headStart: num('head-start'),
    headDraw: v['head-draw'] as 'sequential' | 'parallel' | undefined,
    verification: v.verification as Verification | undefined,
    temperature: num('temperature') ?? 0,
    topK: num('top-k'),
    topP: num('top-p'),
    seed: num('seed'),
    maxNewTokens: num('max-new-tokens') ?? 64,
  };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      method: { type: 'string' },
      gamma: { type: 'string' },
      'max-gamma': { type: 'string' },
      steps: { type: 'string' },
      cutoff: { type: 'string' },
      drafts: { type: 'string' },
      'branch-length': { type: 'string' },
      verification: { type: 'string' },
      window: { type: 'string' },
      schedule: { type: 'string' },
      'draft-attention': { type: 'string' },
      'draft-head': { type: 'string' },
      'head-positions': { type: 'string' },
      'head-start': { type: 'string' },
      'head-draw': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      'max-new-tokens': { type: 'string' },
      target: { type: 'string' },
      drafter: { type: 'string' },
      'ar-drafter': { type: 'string' },
      'cache-dir': { type: 'string' },
      f32: { type: 'boolean' },
      autotune: { type: 'boolean' },
      json: { type: 'boolean' },
      trace: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.version) {
    process.stdout.write(`${packageVersion()}\n`);
    return;
  }
  if (values.help || !command) {
    process.stdout.write(HELP);
    return;
  }
  if (command !== 'generate' && command !== 'demo') throw new UsageError(`unknown command '${command}' (commands: generate, demo)`);
  checkFlags(values);
  if (command === 'generate') {
    const prompt = rest.join(' ');
    if (prompt.trim() === '') throw new UsageError('generate needs a prompt: specdiff generate "The ship sailed"');
    const method = (values.method ?? 'specdiff') as 'ar' | 'speculative' | 'specdiff';
    const options = { ...genOptions(values), method, prompt };
    // A staged start: the first token from plain target steps while the drafter loads and its kernels compile. Greedy
    // tokens do not depend on when drafting starts, so a greedy run takes plain steps meanwhile; a sampled one waits
    // after its first token, so that a seed gives the same tokens every run. --autotune times the drafter's shapes first.
    const stagedStart = method !== 'ar' && !values.autotune;
    const waitForDrafting = options.temperature > 0;
    const { pipe, keep } = await load(values, [method], stagedStart);
    const staged = stagedStart ? await stagedWarmup(pipe, { ...options, waitForDrafting }, !!values.json) : (await warmup(pipe, options, !!values.json), undefined);
    let drafting: Promise<unknown> | undefined;
    try {
      const trace = values.trace ? openSync(values.trace, 'w') : undefined;
      const onStep = trace === undefined ? undefined : (step: StepTrace) => writeSync(trace, `${JSON.stringify(step)}\n`);
      const draftWhen = staged && (() => (drafting = staged.drafting()));
      const run = pipe.generate(prompt, { ...genOptions(values), method, onStep, draftWhen, waitForDrafting });
      // The generated text alone goes to stdout; the prompt, progress and statistics to stderr.
      if (!values.json) process.stderr.write(prompt);
      for await (const chunk of run) if (!values.json) process.stdout.write(chunk.text);
      const result = await run.result();
      if (values.json) process.stdout.write(`${JSON.stringify({ prompt, text: result.text, tokens: result.tokens, stats: result.stats }, null, 2)}\n`);
      else process.stderr.write(`\n\n${summary(result.stats)}\n`);
      if (trace !== undefined) closeSync(trace);
      // The rest compile to the end, so that Mesa's shader cache holds them for the next run.
      await drafting;
    } finally {
      // The process exits next: no kernel may be compiling then.
      await staged?.stop();
      keep();
    }
    pipe.dispose();
    return;
  }
  if (command === 'demo') {
    const prompt = rest.join(' ') || readFileSync(join(bundledModelsDir(), 'prompt.txt'), 'utf8').trim();
    const { pipe, keep } = await load(values, ['ar', 'specdiff']);
    // Sampled by default: the small bundled target's greedy text soon repeats itself.
    const opts = { ...genOptions(values), temperature: Number(values.temperature ?? 0.8), topK: Number(values['top-k'] ?? 50), seed: Number(values.seed ?? 0) };
    const results: Record<string, GenerationStats> = {};
    for (const method of ['ar', 'specdiff'] as const) {
      // Compile time is not counted against either method: everything the timed run can reach is compiled first.
      await warmup(pipe, { ...opts, method, prompt }, !!values.json);
      const r = await pipe.generate(prompt, { ...opts, method }).result();
      results[method] = r.stats;
      if (!values.json) process.stdout.write(`\n=== ${method} ===\n${prompt}${r.text}\n\n${summary(r.stats)}\n`);
    }
    const speedup = results.specdiff.tokensPerSecond / results.ar.tokensPerSecond;
    const total = (s: GenerationStats) => s.prefillMs + s.wallMs;
    const endToEnd = total(results.ar) / total(results.specdiff);
    if (values.json) process.stdout.write(`${JSON.stringify({ prompt, results, speedup, endToEnd }, null, 2)}\n`);
    else process.stdout.write(`\nSpecDiff speedup over AR: ${speedup.toFixed(2)}x decoding, ${endToEnd.toFixed(2)}x with the prompt's prefill (same process, same adapter)\n`);
    keep();
    pipe.dispose();
    return;
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (e: Error) => {
    process.stderr.write(e instanceof UsageError ? `usage error: ${e.message}\n(specdiff --help lists the options)\n` : `error: ${e.message}\n`);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
