/**
 * The short way in: a target (GPT-2 family), its tokenizer and optional drafters, loaded from
 * checkpoint folders, with generate() bound to them.
 */
import type { Device } from './tensor/device.js';
import { GPT2, type ModelLoadOptions } from './models/gpt2.js';
import { MDLM, type MDLMLoadOptions } from './models/mdlm.js';
import { loadGPT2, loadMDLM, loadTokenizer } from './models/load.js';
import type { CheckpointFolder } from './models/safetensors.js';
import type { Tokenizer } from './models/tokenizer.js';
import { ARDrafter } from './decode/ar-drafter.js';
import { DiffusionDrafter } from './decode/diffusion-drafter.js';
import type { Drafter } from './decode/drafter.js';
import { generate, VocabularyMismatchError, type GenerateOptions, type Generation } from './decode/generate.js';
import { autotuneMatmul, type TuningTable } from './tensor/tune.js';
import { draftLength, draftLengths, draftShapes } from './decode/draft-length.js';
import { resolveSampling, type Method } from './decode/options.js';
import { reachableKernels } from './decode/warmup.js';
import { longestTreeDraft } from './decode/tree.js';
import type { CompileProgress, KernelSpec } from './tensor/device.js';

export interface PipelineSources {
  /** GPT-2 family target; its tokenizer files are read from here too. */
  target: CheckpointFolder;
  /** MDLM drafter for method 'specdiff'. */
  diffusionDrafter?: CheckpointFolder;
  /** Small GPT-2 drafter for method 'speculative'. */
  arDrafter?: CheckpointFolder;
}

export type PipelineGenerateOptions = Omit<GenerateOptions, 'prompt' | 'drafter'>;

export interface WarmupOptions extends PipelineGenerateOptions {
  /** The prompt to be generated from (its length bounds the prefill's shapes); default: any prompt. */
  prompt?: string | readonly number[];
  /** Called as pipelines finish compiling, with the number compiled so far and in all. */
  onProgress?: CompileProgress;
}

export interface WarmupResult {
  /** Kernels a generation with these options can reach. */
  kernels: number;
  /** Of them, compiled by this call (the others were compiled before). */
  compiled: number;
  /** Of them, run once by this call (drivers that compile at the first run do it then). */
  launched: number;
  /** Helper devices that ran some of them first, beside this one (0: it ran them alone; CreateDeviceOptions.warmupDevices). */
  helperDevices: number;
  /** Wall time of this call, finding the kernels included. */
  ms: number;
}

/** Pipeline.warmupStaged: the first stage, done, and the second, to start beside a generation. */
export interface StagedWarmup {
  /** The prompt's prefill and plain target steps: ready. */
  plain: WarmupResult;
  /**
   * Starts the second stage (the drafters' load where loadPipeline deferred it, then drafting's and verifying's
   * kernels, compiling in the background) and returns its promise; later calls return the same one. Pass it as
   * GenerateOptions.draftWhen: the generation calls it once its first token is out.
   */
  drafting(): Promise<WarmupResult>;
  /**
   * Starts no more of drafting's kernels (those not ready compile at their first use) and resolves once none is
   * compiling: call it before the process exits, since llvmpipe can crash when a process ends while it compiles.
   */
  stop(): Promise<void>;
}

export interface PipelineLoadOptions extends ModelLoadOptions {
  /**
   * Load the drafters later, at the first Pipeline.loadDrafters() (a staged start's second stage calls it once
   * the generation's first token is out), without progress reports: loadPipeline then resolves once the tokenizer
   * and the target are loaded. Default false.
   */
  deferDrafters?: boolean;
}

type Drafters = { diffusionDrafter: MDLM | null; arDrafter: GPT2 | null };

export class Pipeline {
  private drafters: Drafters;
  private drafterLoad: Promise<void> | null = null;
  private disposed = false;

  /** `loadLater`: the drafters' load, deferred to loadDrafters() (PipelineLoadOptions.deferDrafters). */
  constructor(
    readonly device: Device,
    readonly tokenizer: Tokenizer,
    readonly target: GPT2,
    diffusionDrafter: MDLM | null,
    arDrafter: GPT2 | null,
    private readonly loadLater: (() => Promise<Drafters>) | null = null,
  ) {
    this.drafters = { diffusionDrafter, arDrafter };
  }

  get diffusionDrafter(): MDLM | null {
    return this.drafters.diffusionDrafter;
  }

  get arDrafter(): GPT2 | null {
    return this.drafters.arDrafter;
  }

  /**
   * Loads the drafters loadPipeline deferred (deferDrafters); resolves at once when it deferred none. Later calls
   * share the first one's load; a pipeline disposed meanwhile frees them as they arrive.
   */
  loadDrafters(): Promise<void> {
    this.drafterLoad ??= (async () => {
      if (!this.loadLater) return;
      const loaded = await this.loadLater();
      if (this.disposed) {
        loaded.diffusionDrafter?.dispose();
        loaded.arDrafter?.dispose();
        throw new Error('the pipeline was disposed while its drafters loaded');
      }
      this.drafters = loaded;
    })();
    return this.drafterLoad;
  }

  /**
   * Streams a generation; method 'specdiff' or 'speculative' uses the matching loaded drafter. Where loadPipeline
   * deferred the drafters, a generation given draftWhen loads them when it settles (a staged start).
   */
  generate(prompt: string | readonly number[], opts: PipelineGenerateOptions = {}): Generation {
    const method = opts.method ?? 'ar';
    const { draftWhen } = opts;
    if (method !== 'ar' && this.loadLater && draftWhen && !this.drafterModel(method)) {
      const late = async () => {
        await (typeof draftWhen === 'function' ? draftWhen() : draftWhen);
        await this.loadDrafters();
        return this.newDrafter(method);
      };
      return generate(this.target, this.tokenizer, { ...opts, prompt, method, draftWhen: late, disposeDrafter: true });
    }
    return generate(this.target, this.tokenizer, { ...opts, prompt, method, drafter: this.newDrafter(method), disposeDrafter: true });
  }

  private drafterModel(method: Method): MDLM | GPT2 | null {
    return method === 'specdiff' ? this.diffusionDrafter : method === 'speculative' ? this.arDrafter : null;
  }

  /** A drafter of the loaded model the method uses (none for 'ar'). */
  private newDrafter(method: Method): Drafter | undefined {
    const later = this.loadLater && !this.drafterLoad ? ' (loadPipeline deferred the drafters: await pipe.loadDrafters() first)' : '';
    if (method === 'specdiff') {
      if (!this.diffusionDrafter) throw new RangeError(`method 'specdiff' needs a diffusion drafter: load one with the pipeline${later}`);
      return new DiffusionDrafter(this.diffusionDrafter);
    }
    if (method === 'speculative') {
      if (!this.arDrafter) throw new RangeError(`method 'speculative' needs an AR drafter: load one with the pipeline${later}`);
      return new ARDrafter(this.arDrafter);
    }
    return undefined;
  }

  /**
   * Compiles, in parallel, every pipeline a generation with these options can reach (every
   * draft length its schedule can take, every context length up to the model's): generations
   * with the same method, sampling and speculation options then compile nothing. Run it again
   * after autotune, which changes kernel choices.
   */
  async warmup(opts: WarmupOptions = {}): Promise<WarmupResult> {
    const t0 = performance.now();
    const specs = await this.reachable(opts, 'all');
    const { compiled, launched, helperDevices } = await this.device.warmup(specs, opts.onProgress);
    return { kernels: specs.length, compiled, launched, helperDevices, ms: performance.now() - t0 };
  }

  /**
   * A warm-up in two stages, for a first token sooner: resolves once the kernels of the prompt's prefill and of
   * plain target steps are ready (the target's alone). Pass its `drafting` to generate as draftWhen: once the first
   * token is out the generation calls it, which loads the drafters where loadPipeline deferred them and compiles
   * drafting's and verifying's kernels beside the generation (Device.warmupInBackground); the generation takes plain
   * target steps until that is done, or, given `waitForDrafting` here as the generation will be, takes one and waits
   * (the second stage then compiles only what drafting after that one step reaches). For a method without a drafter,
   * `drafting` has nothing to compile.
   */
  async warmupStaged(opts: WarmupOptions = {}): Promise<StagedWarmup> {
    const t0 = performance.now();
    const plainSpecs = await this.reachable(opts, 'plain');
    const first = await this.device.warmup(plainSpecs, opts.onProgress);
    const plain = { kernels: plainSpecs.length, ...first, ms: performance.now() - t0 };
    const stopping = new AbortController();
    let second: Promise<WarmupResult> | null = null;
    const drafting = () =>
      (second ??= (async () => {
        const t1 = performance.now();
        await this.loadDrafters();
        // Finding the kernels records every pass the drafter can make: after the first token, not before it.
        const plainKeys = new Set(plainSpecs.map((k) => k.key));
        const rest = (await this.reachable(opts, 'staged')).filter((k) => !plainKeys.has(k.key));
        const r = await this.device.warmupInBackground(rest, undefined, stopping.signal);
        return { kernels: rest.length, ...r, ms: performance.now() - t1 };
      })());
    const stop = async () => {
      stopping.abort();
      await second?.catch(() => undefined);
    };
    return { plain, drafting, stop };
  }

  /**
   * The kernels a generation with these options can reach: all of them, only the target's prefill and plain steps,
   * or all of them for a staged start (the drafter reading the context after plain steps).
   */
  private async reachable(opts: WarmupOptions, part: 'all' | 'plain' | 'staged'): Promise<KernelSpec[]> {
    const method = part === 'plain' ? 'ar' : (opts.method ?? 'ar');
    const sampling = resolveSampling(opts);
    const capacity = this.target.config.nPositions;
    let drafter = this.newDrafter(method) ?? null;
    let maxGamma = 0;
    const drafts = sampling.temperature > 0 ? (opts.drafts ?? 1) : 1;
    if (drafter) {
      const defaults = drafter.defaults(sampling);
      const gamma = opts.gamma ?? defaults.gamma;
      maxGamma = Math.max(gamma, opts.maxGamma ?? (opts.gamma === undefined ? defaults.maxGamma : gamma));
      // A token tree of several drafts holds at most 31 drafted tokens (as generate() clamps).
      maxGamma = Math.max(1, Math.min(maxGamma, drafter.maxGamma, capacity - 1, longestTreeDraft(drafts, opts.branchLength)));
      drafter = drafter.configure(opts, gamma);
    }
    const prompt = opts.prompt === undefined ? undefined : typeof opts.prompt === 'string' ? this.tokenizer.encode(opts.prompt).length : opts.prompt.length;
    const maxNewTokens = opts.maxNewTokens ?? 64;
    try {
      return await reachableKernels(this.target, drafter, {
        sampling,
        maxGamma,
        withConfidence: (opts.confidenceCutoff ?? 0) > 0,
        drafts,
        verification: opts.verification,
        promptTokens: prompt === undefined ? undefined : Math.max(1, prompt),
        maxNewTokens,
        // A generation that waits for drafting takes exactly one plain step first.
        plainFirst: part === 'staged' ? (opts.waitForDrafting ? 1 : maxNewTokens) : undefined,
        exactPrompt: part === 'plain',
        // Only the second stage searches beside a generation; elsewhere a yield would only delay the first token.
        sliceMs: part === 'staged' ? undefined : Infinity,
      });
    } finally {
      drafter?.dispose();
    }
  }

  /**
   * Times the candidate matmul kernels for the shapes decoding runs and keeps the fastest per
   * shape: one-token steps, and for each draft length the (γ + 1)-row verification and the
   * drafters' passes (the diffusion drafter's with window W when bidirectional). The draft
   * lengths are those of `gamma` growing to `maxGamma`; by default each method's own, SpecDiff's
   * greedy (adaptive) and sampled ones.
   */
  async autotune(opts: { gamma?: number; maxGamma?: number; window?: number } = {}): Promise<TuningTable> {
    const { gamma } = opts;
    const sigs = [...this.target.matmulSignatures(1)];
    if (this.arDrafter) {
      const drafter = new ARDrafter(this.arDrafter);
      for (const g of draftLengths(draftLength(gamma ?? drafter.defaults().gamma, opts.maxGamma))) sigs.push(...this.target.matmulSignatures(g + 1));
      sigs.push(...this.arDrafter.matmulSignatures(1));
    }
    if (this.diffusionDrafter) {
      const drafter = new DiffusionDrafter(this.diffusionDrafter, { window: opts.window });
      // Without a given gamma, the draft lengths of its greedy (growing) and sampled defaults.
      const defaults = [drafter.defaults(resolveSampling({ temperature: 0 })), drafter.defaults(resolveSampling({}))];
      const schedules = gamma === undefined ? defaults.map((d) => draftLength(d.gamma, d.maxGamma)) : [draftLength(gamma, opts.maxGamma)];
      for (const { gamma: g, added } of schedules.flatMap(draftShapes)) {
        sigs.push(...this.target.matmulSignatures(g + 1), ...drafter.matmulSignatures(g, added));
      }
    }
    return autotuneMatmul(this.device, sigs);
  }

  dispose(): void {
    this.disposed = true;
    this.target.dispose();
    this.diffusionDrafter?.dispose();
    this.arDrafter?.dispose();
  }
}

/**
 * The tokenizer first, then the models, each config checked against the tokenizer's vocabulary
 * before its weights are read; a failure frees the models already loaded. With `deferDrafters`, the
 * drafters load at the pipeline's first loadDrafters() instead.
 */
export async function loadPipeline(device: Device, sources: PipelineSources, opts: PipelineLoadOptions = {}): Promise<Pipeline> {
  const { deferDrafters = false, ...modelOpts } = opts;
  const tokenizer = await loadTokenizer(sources.target);
  const tokenizerFile = sources.target.name;
  const vocab = (what: string, size: number, source: string) => {
    if (size !== tokenizer.vocabSize) {
      throw new VocabularyMismatchError(`${source}: ${what} ${size} does not match the ${tokenizer.vocabSize} tokens of the tokenizer in ${tokenizerFile}`);
    }
    const missing = tokenizer.missingIds();
    if (missing.length > 0) {
      throw new VocabularyMismatchError(`${tokenizerFile}: the tokenizer has no token for id ${missing.join(', ')}${missing.length === 5 ? ' …' : ''} of the ${size} of ${source}`);
    }
  };
  const loadDrafters = async (drafterOpts: MDLMLoadOptions, loaded: Array<{ dispose(): void }>): Promise<Drafters> => {
    const keep = <M extends { dispose(): void }>(m: M): M => (loaded.push(m), m);
    const mdlm = sources.diffusionDrafter ? keep(await loadMDLM(device, sources.diffusionDrafter, drafterOpts, (c, src) => vocab('vocab_size less its mask token', c.vocabSize - 1, src))) : null;
    const ar = sources.arDrafter ? keep(await loadGPT2(device, sources.arDrafter, drafterOpts, (c, src) => vocab('vocab_size', c.vocabSize, src))) : null;
    return { diffusionDrafter: mdlm, arDrafter: ar };
  };
  const loaded: Array<{ dispose(): void }> = [];
  try {
    const target = await loadGPT2(device, sources.target, modelOpts, (c, src) => vocab('vocab_size', c.vocabSize, src));
    loaded.push(target);
    if (deferDrafters) {
      const later = async () => {
        const drafters: Array<{ dispose(): void }> = [];
        try {
          // A generation may be decoding meanwhile: what the load runs compiles on helper devices first.
          return await loadDrafters({ dtype: modelOpts.dtype, compileFirst: (kernels) => device.warmupInBackground(kernels) }, drafters);
        } catch (e) {
          for (const m of drafters) m.dispose();
          throw e;
        }
      };
      return new Pipeline(device, tokenizer, target, null, null, later);
    }
    const { diffusionDrafter, arDrafter } = await loadDrafters(modelOpts, loaded);
    return new Pipeline(device, tokenizer, target, diffusionDrafter, arDrafter);
  } catch (e) {
    for (const m of loaded) m.dispose();
    throw e;
  }
}
