/**
 * What the bench:decode modes share (bench/decode/*.ts): the bundled models on one Node device,
 * generations with a contender's settings after every kernel they can reach is compiled, and
 * head-to-heads in which the contenders take turns prompt by prompt, round after round, so the
 * machine's drift hits them alike.
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ARDrafter, autotuneMatmul, createNodeDevice, DiffusionDrafter, dirFolder, generate, loadGPT2, loadMDLM, loadTokenizer, readTensors, type GenerationStats } from '../../src/node.js';
import type { Device } from '../../src/tensor/device.js';
import type { GPT2 } from '../../src/models/gpt2.js';
import type { MDLM } from '../../src/models/mdlm.js';
import type { Tokenizer } from '../../src/models/tokenizer.js';
import { Rng } from '../../src/decode/rng.js';
import { verifyDraft } from '../../src/decode/verify.js';
import { DEFAULT_DIFFUSION_GAMMA, DEFAULT_DIFFUSION_GAMMA_SAMPLED, DEFAULT_DIFFUSION_MAX_GAMMA, DEFAULT_WINDOW } from '../../src/decode/diffusion-drafter.js';
import { draftLength, draftShapes } from '../../src/decode/draft-length.js';
import { reachableKernels } from '../../src/decode/warmup.js';
import { resolveSampling, VERIFICATIONS } from '../../src/decode/options.js';
import { gpuPeakGflops, gpuReadBandwidth } from './roofline.js';

/** The repository root. */
export const root = new URL('../..', import.meta.url).pathname;

/** Writes `data` as bench/results/<kind>-<time>.json and returns the path without the extension. */
export function writeResults(kind: string, data: unknown): string {
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  const out = join(root, 'bench/results', `${kind}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  writeFileSync(`${out}.json`, JSON.stringify(data, null, 2));
  return out;
}

/** A drafter's view of the context: a bidirectional window of W tokens, or block-causal with a KV cache. */
export type View = number | 'cached';
const parseView = (s: string): View => (s === 'cached' ? 'cached' : Number(s));

export type DecodeMethod = 'ar' | 'speculative' | 'specdiff';

export interface Contender {
  name: string;
  method: DecodeMethod;
  gamma?: number;
  steps?: number;
  window?: View;
  cutoff?: number;
  maxGamma?: number;
}

/** Per contender, per round: decoding rate, and the rate over prefill + decoding. */
export interface Rates {
  tokensPerSecond: number[][];
  endToEndTokensPerSecond: number[][];
}

/** Per-round ratios of contender a's rate to b's. */
export const ratios = (rates: number[][], a: number, b: number) => rates[a].map((x, r) => x / rates[b][r]);

/** Median (range) of per-round ratios. */
export function spread(xs: number[]): string {
  const s = [...xs].sort((x, y) => x - y);
  return `${s[s.length >> 1].toFixed(2)}x (${s[0].toFixed(2)}-${s[s.length - 1].toFixed(2)})`;
}

/** The flags of the grid and of --compare (one parser: each accepts the other's flags, as one script did). */
function parseGridFlags() {
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
  const quick = !!values.quick;
  /** Held-out prompts: 'passages' (~64 tokens of a document) or 'fragments' (their last ~12 tokens). */
  const promptSets: Record<string, () => string[]> = {
    passages: () => JSON.parse(readFileSync(join(root, 'bench/passages.json'), 'utf8')),
    fragments: () => readFileSync(join(root, 'bench/prompts.txt'), 'utf8').trim().split('\n'),
  };
  const promptSet = values['prompt-set'] ?? 'passages';
  if (!Object.hasOwn(promptSets, promptSet)) throw new RangeError(`--prompt-set must be 'passages' or 'fragments', got '${promptSet}'`);
  const list = (s: string) => s.split(',').map(Number);
  const gammas = list(values.gammas ?? (quick ? '4,8' : '4,8,16,24'));
  /** --compare: longest drafts of an adaptive draft length to try for each drafted contender (0 or ≤ γ: fixed γ). */
  const maxGammas = list(values['max-gammas'] ?? '0');
  return {
    compare: !!values.compare,
    autotune: !!values.autotune,
    f32: !!values.f32,
    modelsDir: values.models ?? join(root, 'models'),
    maxNewTokens: Number(values.tokens ?? (quick ? 24 : 48)),
    promptSet,
    prompts: promptSets[promptSet]().slice(0, Number(values.prompts ?? (quick ? 2 : 4))),
    gammas,
    stepsList: list(values.steps ?? (quick ? '1,4' : '1,2,4,8')),
    temperatures: list(values.temperatures ?? '0,1'),
    /** --compare: confidence cutoffs to try for each drafted contender (generate's confidenceCutoff; 0 = off). */
    cutoffs: list(values.cutoffs ?? '0'),
    maxGammas,
    /** The longest draft any contender can make. */
    longestDraft: Math.max(...gammas, ...maxGammas),
    /** The drafter's view (default: the drafter's own, 'cached' when its config says block_causal). */
    window: values.window === undefined ? undefined : parseView(values.window),
    windowList: (values.windows ?? (quick ? '8,cached' : '4,8,16,32,64,cached')).split(',').map(parseView),
    rounds: Number(values.rounds ?? 3),
  };
}

export type GridFlags = ReturnType<typeof parseGridFlags>;

/** The target, the AR drafter and the MDLM drafter of --models on one device, with the grid's flags. */
export class DecodeBench {
  /** Pipelines compiled during timed generations (0 when the warm-up covers them). */
  compiledInTimedRuns = 0;
  /** Weight bytes of each model: on a bandwidth-bound GPU a few-row pass costs about this much. */
  readonly targetBytes: number;
  readonly drafterBytes: { speculative: number; specdiff: number };

  private constructor(
    readonly flags: GridFlags,
    readonly device: Device,
    readonly dtype: 'f32' | 'f16',
    readonly tokenizer: Tokenizer,
    readonly target: GPT2,
    readonly mdlm: MDLM,
    readonly arModel: GPT2,
    /** The drafter's view where a contender names none. */
    readonly window: View,
  ) {
    const bytesOf = (dir: string) => statSync(join(flags.modelsDir, dir, 'model.safetensors')).size;
    this.targetBytes = bytesOf('target');
    this.drafterBytes = { speculative: bytesOf('drafter-ar'), specdiff: bytesOf('drafter-mdlm') };
  }

  static async open(): Promise<DecodeBench> {
    const flags = parseGridFlags();
    const device = await createNodeDevice();
    const dtype = flags.f32 ? 'f32' : 'f16';
    const dir = (name: string) => dirFolder(join(flags.modelsDir, name));
    const tokenizer = await loadTokenizer(dir('target'));
    const target = await loadGPT2(device, dir('target'), { dtype });
    const mdlm = await loadMDLM(device, dir('drafter-mdlm'), { dtype });
    const arModel = await loadGPT2(device, dir('drafter-ar'), { dtype });
    const window = flags.window ?? (mdlm.config.blockCausal ? 'cached' : DEFAULT_WINDOW);
    return new DecodeBench(flags, device, dtype, tokenizer, target, mdlm, arModel, window);
  }

  /** The adapter, the models and the prompts, then the adapter's roofline (returned for the results). */
  async introduce(): Promise<{ readGBps: number; peakGflops: number }> {
    const { flags, device, target, arModel, mdlm } = this;
    console.log(`adapter: ${device.info.adapter}; weights ${this.dtype}; ${flags.prompts.length} ${flags.promptSet} × ${flags.maxNewTokens} tokens; drafter window ${this.window}`);
    console.log(`target ${target.config.nLayer}×${target.config.nEmbd}, AR drafter ${arModel.config.nLayer}×${arModel.config.nEmbd}, MDLM ${mdlm.config.nBlocks}×${mdlm.config.hiddenDim}`);
    const roofline = { readGBps: (await gpuReadBandwidth(device, 64 << 20)).gbps, peakGflops: (await gpuPeakGflops(device)).gflops };
    console.log(`roofline: read bandwidth ${roofline.readGBps.toFixed(1)} GB/s, peak ${roofline.peakGflops.toFixed(1)} GFLOP/s; ` +
      `target weights ${(this.targetBytes / 1e6).toFixed(1)} MB: a bandwidth-bound AR step would take ${(this.targetBytes / roofline.readGBps / 1e6).toFixed(1)} ms`);
    return roofline;
  }

  diffusionDrafter(steps: number | undefined, view: View): DiffusionDrafter {
    return new DiffusionDrafter(this.mdlm, view === 'cached' ? { steps, attention: 'block-causal' } : { steps, attention: 'bidirectional', window: view });
  }

  /** One generation with a contender's settings (its drafter made for it and released after). */
  async decode(c: Omit<Contender, 'name'>, prompt: string, temperature: number, seed: number, tokens = this.flags.maxNewTokens, warm = false): Promise<GenerationStats> {
    const drafter = c.method === 'specdiff' ? this.diffusionDrafter(c.steps, c.window ?? this.window) : c.method === 'speculative' ? new ARDrafter(this.arModel) : undefined;
    try {
      if (warm) {
        // Every kernel these settings reach (any prompt, every draft length up to the longest default), compiled first.
        const maxGamma = drafter ? Math.max(c.gamma ?? DEFAULT_DIFFUSION_MAX_GAMMA, c.maxGamma ?? 0) : 0;
        await this.device.warmup(await reachableKernels(this.target, drafter ?? null, { sampling: resolveSampling({ temperature }), maxGamma, withConfidence: (c.cutoff ?? 0) > 0, maxNewTokens: tokens }));
        drafter?.dispose();
      }
      const r = await generate(this.target, this.tokenizer, { prompt, method: c.method, drafter, gamma: c.gamma, maxGamma: c.maxGamma, steps: c.steps, confidenceCutoff: c.cutoff, temperature, seed, maxNewTokens: tokens, stopAtEos: false }).result();
      return r.stats;
    } finally {
      drafter?.dispose();
    }
  }

  /**
   * Times the candidate matmul kernels for the shapes the run decodes with (--autotune): the
   * grid's draft lengths, or with --compare every γ growing to every --max-gammas, at every window.
   */
  async autotune(): Promise<void> {
    const { flags, target } = this;
    const sigs = [...target.matmulSignatures(1), ...this.arModel.matmulSignatures(1)];
    const tunedWindows = flags.compare ? flags.windowList : [this.window];
    const shapes = flags.gammas.flatMap((g) => (flags.compare ? flags.maxGammas : [0]).flatMap((max) => draftShapes(draftLength(g, max))));
    // The grid's head-to-head also runs generate()'s defaults, which grow the greedy draft.
    if (!flags.compare) shapes.push(...draftShapes(draftLength(DEFAULT_DIFFUSION_GAMMA, DEFAULT_DIFFUSION_MAX_GAMMA)), ...draftShapes(draftLength(DEFAULT_DIFFUSION_GAMMA_SAMPLED)));
    for (const { gamma: g, added } of shapes) sigs.push(...target.matmulSignatures(g + 1), ...tunedWindows.flatMap((W) => this.diffusionDrafter(1, W).matmulSignatures(g, added)));
    const t0 = performance.now();
    const table = await autotuneMatmul(this.device, sigs);
    console.log(`autotuned ${Object.keys(table).length} matmul shapes in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }

  /**
   * Compiles every pipeline a run can meet before anything is timed: llvmpipe compiles at the first
   * dispatch, and a draft of g tokens (g ≤ γ; shorter near the end of the output) has its own matmul
   * shapes in the verify and, with the MDLM, per drafter window.
   */
  async compileDraftShapes(maxGamma: number, W: View = this.window): Promise<void> {
    const { device, target, tokenizer } = this;
    const t0 = performance.now();
    const ids = tokenizer.encode(this.flags.prompts[0]);
    const rng = new Rng(0);
    for (let g = 1; g <= maxGamma; g++) {
      for (const drafter of [new ARDrafter(this.arModel), this.diffusionDrafter(1, W)]) {
        for (const temperature of this.flags.temperatures) {
          const sampling = { temperature, topK: 0, topP: 1 };
          // Each verification rule has its own kernel when sampling.
          for (const verification of temperature ? VERIFICATIONS : VERIFICATIONS.slice(0, 1)) {
            const cache = target.createCache();
            target.forward(ids.slice(0, -1), cache).dispose();
            const draft = device.scope(() => drafter.draft(ids, g, sampling, rng));
            await verifyDraft(target, cache, ids[ids.length - 1], draft.tokens, temperature ? draft.q : null, sampling, rng, undefined, verification);
            draft.tokens.dispose();
            draft.q?.dispose();
            cache.dispose();
          }
          // A cached drafter's later drafts run the 1..g + 1 tokens the last verification added, + g masks.
          if (drafter instanceof DiffusionDrafter && W === 'cached') {
            for (let added = 1; added <= g + 1; added++) {
              const fresh = this.diffusionDrafter(1, W);
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

  /**
   * The contenders take turns on each prompt (the order rotating), round after round, so the machine's
   * drift hits them alike; returns tokens/s per contender per round and prints them, the first
   * contender being the AR baseline.
   */
  async compete(temperature: number, contenders: Contender[]): Promise<Rates> {
    const { prompts, rounds } = this.flags;
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
          const stats = await this.decode(contenders[i], prompt, temperature, p);
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

  close(): void {
    for (const m of [this.target, this.mdlm, this.arModel]) m.dispose();
    this.device.destroy();
  }
}
