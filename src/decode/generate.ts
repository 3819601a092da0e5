/**
 * generate(): one loop for autoregressive decoding, speculative decoding with an AR drafter and
 * speculative diffusion decoding, sharing the sampler, the verification and the statistics.
 * It streams chunks of tokens and text and ends with statistics.
 */
import type { GPT2, HiddenStates } from '../models/gpt2.js';
import type { Device } from '../tensor/device.js';
import type { Tokenizer } from '../models/tokenizer.js';
import { ContextError } from '../models/errors.js';
import { ConfigError } from '../models/config.js';
import type { Drafter } from './drafter.js';
import { checkInt, resolveSampling, resolveVerification, type Method, type ResolvedSampling, type SamplingOptions, type SpeculationOptions } from './options.js';
import { Rng } from './rng.js';
import { StatsRecorder, type GenerationStats, type StopReason } from './stats.js';
import { TextStreamer } from './text.js';
import { nextDraftLength, type DraftLength } from './draft-length.js';
import { speculativeStep, targetStep, type StepResult } from './step.js';
import { MAX_TREE_ROWS } from '../shaders/attention.js';
import { longestTreeDraft } from './tree.js';
import { DraftingGate, type DraftWhen } from './draft-when.js';
import { prefillPassRows } from './prefill.js';

export class VocabularyMismatchError extends Error {
  override name = 'VocabularyMismatchError';
}

export interface GenerateOptions extends SamplingOptions, SpeculationOptions {
  /** Text (needs a tokenizer) or token ids. */
  prompt: string | readonly number[];
  /** Default 64. */
  maxNewTokens?: number;
  /** Seeds the sampler: the same seed reproduces the same tokens. Default 0. */
  seed?: number;
  /** Generation stops when the text contains one of these (which is not emitted). */
  stop?: string[];
  /** Stop at the end-of-text token (default true). */
  stopAtEos?: boolean;
  signal?: AbortSignal;
  /** 'ar' (default without a drafter), 'speculative' (AR drafter) or 'specdiff' (diffusion drafter). */
  method?: Method;
  drafter?: Drafter;
  /** Dispose the drafter (its caches) when the generation ends (default false: the caller owns it). */
  disposeDrafter?: boolean;
  /** Called after every iteration with what it drafted, verified and emitted (a trace; costs no readback). */
  onStep?: (step: StepTrace) => void;
  /**
   * A staged start (Pipeline.warmupStaged): plain target steps until this settles, then draft → verify, while the
   * drafter's and the verification's kernels compile meanwhile. A function is called once the first token is out,
   * so that what it starts (loading the drafter, compiling) does not delay that token. Without `drafter`, it
   * resolves with the drafter to draft with (one that does not read the target's hidden states). Every token still
   * comes from the target's distribution, and greedy tokens are the same; a sampled run's tokens for a seed then
   * depend on when it settles. A rejection fails the generation.
   */
  draftWhen?: DraftWhen;
  /**
   * With draftWhen: once the first token is out, wait for it to settle instead of taking plain target steps
   * meanwhile (default false). Only the first token comes from a plain step then, so a seeded sampled run gives the
   * same tokens however long the drafter takes to get ready; the wait is not counted in the decoding rate
   * (GenerationStats.draftingWaitMs).
   */
  waitForDrafting?: boolean;
}

/** One iteration of the decoding loop, for a trace (GenerateOptions.onStep). */
export interface StepTrace {
  /** Iteration index from 0. */
  step: number;
  /** Drafted token ids the target verified (empty for a plain AR step). */
  drafted: number[];
  /** When sampling: p(d_i) and q(d_i) of each drafted token, as the acceptance test compared them. */
  p?: number[];
  q?: number[];
  /** Drafted tokens accepted. */
  accepted: number;
  /** Tokens this iteration produced: the accepted drafts and the target's own token (a stop condition may cut the stream inside them). */
  emitted: number[];
  draftMs: number;
  verifyMs: number;
}

export interface GenerationChunk {
  tokens: number[];
  /** Decoded text of these tokens (UTF-8 sequences split across tokens are held back until complete). */
  text: string;
  /** Per token: true if it was a draft token the target accepted, false if the target produced it. */
  drafted: boolean[];
}

export interface GenerationResult {
  tokens: number[];
  text: string;
  stats: GenerationStats;
}

/**
 * An async iterable of chunks; `result` resolves when generation ends. Leaving the loop early ends
 * the run (its KV cache is freed) and `result` resolves with what was generated, stopReason 'closed'.
 */
export class Generation implements AsyncIterable<GenerationChunk> {
  private iterator: AsyncGenerator<GenerationChunk, GenerationResult>;
  private done: Promise<GenerationResult>;
  private resolveDone!: (r: GenerationResult) => void;
  private rejectDone!: (e: unknown) => void;
  private started = false;

  /** `partial`: the result so far, for a run closed early. */
  constructor(run: () => AsyncGenerator<GenerationChunk, GenerationResult>, private readonly partial?: () => GenerationResult) {
    this.iterator = run();
    this.done = new Promise((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
    this.done.catch(() => undefined);
  }

  [Symbol.asyncIterator](): AsyncIterator<GenerationChunk> {
    if (this.started) throw new Error('a Generation can be iterated once');
    this.started = true;
    let settled = false;
    return {
      next: async () => {
        if (settled) return { done: true, value: undefined };
        try {
          const r = await this.iterator.next();
          if (!r.done) return { done: false, value: r.value };
          settled = true;
          this.resolveDone(r.value);
        } catch (e) {
          settled = true;
          this.rejectDone(e);
          throw e;
        }
        return { done: true, value: undefined };
      },
      // The consumer left the loop (break, return or throw): end the run, whose own cleanup frees its caches.
      return: async () => {
        if (!settled) {
          settled = true;
          await this.close();
        }
        return { done: true, value: undefined };
      },
    };
  }

  private async close(): Promise<void> {
    try {
      await this.iterator.return(undefined as never);
      if (this.partial) this.resolveDone(this.partial());
      else this.rejectDone(new Error('the generation was closed before it ended'));
    } catch (e) {
      this.rejectDone(e);
    }
  }

  /** Runs to the end (if nobody iterates) and gives tokens, text and statistics. */
  async result(): Promise<GenerationResult> {
    if (!this.started) for await (const _ of this) void _;
    return this.done;
  }
}

export function generate(target: GPT2, tokenizer: Tokenizer | null, opts: GenerateOptions): Generation {
  const sampling = resolveSampling(opts);
  const method: Method = opts.method ?? opts.drafter?.method ?? 'ar';
  const maxNewTokens = checkInt('maxNewTokens', opts.maxNewTokens ?? 64, 1, 1 << 20);
  if (tokenizer) checkTokenizerCovers(tokenizer, target.vocabSize, 'the target');
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${opts.seed}`);
  const promptIds = tokenizePrompt(target, tokenizer, opts.prompt);
  const capacity = target.config.nPositions;
  if (promptIds.length >= capacity) {
    throw new ContextError(`the prompt has ${promptIds.length} tokens; the model's context is ${capacity}, leaving no room to generate`);
  }
  let given = method === 'ar' ? null : opts.drafter;
  if (given === undefined && opts.draftWhen == null) throw new RangeError(`method '${method}' needs a drafter`);
  const verification = resolveVerification(opts.verification);
  const cutoff = opts.confidenceCutoff ?? 0;
  if (typeof cutoff !== 'number' || !(cutoff >= 0 && cutoff <= 1)) throw new RangeError(`confidenceCutoff must be in [0, 1] (0 = off), got ${opts.confidenceCutoff}`);
  const speculate = (d: Drafter) => {
    const configured = configureSpeculation(target, d, method, sampling, opts);
    if (configured.drafts > 1 && cutoff > 0) throw new RangeError(`confidenceCutoff cuts a single draft; it cannot be combined with drafts ${configured.drafts}`);
    return configured;
  };
  let speculation = given ? speculate(given) : null;
  let drafter = speculation?.drafter ?? null;
  let lengths: DraftLength = speculation?.lengths ?? { base: 0, max: 0 };
  const stops = (opts.stop ?? []).filter((s) => s.length > 0);
  if (stops.length && !tokenizer) throw new RangeError('stop sequences need a tokenizer');
  const eos = opts.stopAtEos === false ? undefined : (tokenizer?.eosTokenId ?? target.config.eosTokenId);

  // Block or token verification applies to one sampled draft per pass; greedy drafts and token trees have their own rules.
  const singleSampledDraft = () => sampling.temperature > 0 && (speculation?.drafts ?? 1) === 1;
  const settings = (): Partial<GenerationStats> =>
    drafter ? { gamma: lengths.base, maxGamma: lengths.max, steps: drafter.steps === undefined ? undefined : Math.min(drafter.steps, lengths.base), verification: singleSampledDraft() ? verification : undefined } : {};
  let partial = (): GenerationResult => ({ tokens: [], text: '', stats: new StatsRecorder().finish(method, promptIds.length, 'closed', settings()) });
  return new Generation(async function* () {
    const dev = target.device;
    const stats = new StatsRecorder(dev);
    const ctx = [...promptIds];
    const text = tokenizer ? new TextStreamer(tokenizer, stops) : null;
    const out: number[] = [];
    partial = () => ({ tokens: [...out], text: text?.text ?? '', stats: stats.finish(method, promptIds.length, 'closed', settings()) });
    let draftLength = lengths.base;
    let stopReason: StopReason = 'length';
    const cache = target.createCache();
    // The target's hidden states, kept only for a drafter that reads them.
    const states = drafter?.targetFeatures ? target.createHiddenStates() : undefined;
    const run = { target, cache, sampling, rng: new Rng(seed), states };
    // A drafter draftWhen brings when none was given is freed like a given one, also if it is never adopted.
    const drafting = new DraftingGate(opts.draftWhen ?? undefined, given === undefined && opts.disposeDrafter === true);
    // Whether the drafter has read the context (at the prefill, or when drafting begins).
    let fed = false;
    const withDrafter = (s: typeof speculation) => s && { ...run, drafter: s.drafter, cutoff, drafts: s.drafts, branchLength: s.branchLength, verification };
    let speculative = withDrafter(speculation);
    try {
      const t0 = performance.now();
      // Every model that decodes reads the prompt here, so the decoding rate counts decoding alone.
      const perPass = prefillPassRows(target, cache, ctx.length - 1, states);
      for (let start = 0; start < ctx.length - 1; start += perPass) {
        const end = Math.min(ctx.length - 1, start + perPass);
        dev.scope(() => target.prefill(ctx.slice(start, end), cache, states));
      }
      const first = drafter;
      if (first && drafting.ready) {
        dev.scope(() => first.prefill(ctx, states));
        fed = true;
      }
      await dev.sync();
      stats.prefillMs = performance.now() - t0;
      stats.begin();
      while (out.length < maxNewTokens) {
        if (opts.waitForDrafting && !drafting.ready && out.length > 0) {
          const [waitStart, compiledBefore] = [performance.now(), dev.compileMs];
          await untilAborted(drafting.settled(), opts.signal);
          // Compiling on this device meanwhile is counted as compilation (GenerationStats.compileMs) already.
          stats.draftingWaitMs += performance.now() - waitStart - (dev.compileMs - compiledBefore);
        }
        if (opts.signal?.aborted) {
          stopReason = 'aborted';
          break;
        }
        const room = capacity - cache.length - 1; // positions left after the pending token
        if (room < 0) {
          stopReason = 'context';
          break;
        }
        const g = Math.min(draftLength, room, maxNewTokens - out.length - 1);
        drafting.check();
        if (drafting.ready && !speculation && method !== 'ar') {
          given = drafting.adopt(method);
          speculation = speculate(given);
          ({ drafter, lengths } = speculation);
          draftLength = lengths.base;
          speculative = withDrafter(speculation);
        }
        if (drafter && drafting.ready && !fed) {
          // A staged start: the drafter reads what the plain steps left it, in passes of shapes the warm-up covered.
          feedDrafter(dev, drafter, ctx, states, dev.tuning.streamedMaxRows);
          fed = true;
        }
        const start = performance.now();
        const step = speculative && drafting.ready && g >= 1 ? await speculativeStep(speculative, ctx, g) : await targetStep(run, ctx);
        if (method !== 'ar' && !drafting.ready) stats.stepsBeforeDrafting++;
        const emitted = [...step.drafted.slice(0, step.accepted), step.next];
        record(stats, step, start);
        if (step.drafted.length) draftLength = nextDraftLength(draftLength, step.drafted.length, step.accepted, lengths);
        opts.onStep?.(trace(stats.targetPasses - 1, step, emitted, start));
        // Emit up to the limits: token budget, end of text, stop sequences.
        const take: number[] = [];
        for (const id of emitted) {
          if (out.length + take.length >= maxNewTokens) break;
          take.push(id);
          if (id === eos) {
            stopReason = 'eos';
            break;
          }
        }
        ctx.push(...take);
        out.push(...take);
        stats.generated = out.length;
        const piece = text?.push(take) ?? { text: '', stopped: false };
        yield { tokens: take, text: piece.text, drafted: take.map((_, i) => i < step.accepted) };
        drafting.tokenOut();
        if (piece.stopped) stopReason = 'stop';
        if (stopReason !== 'length') break;
      }
      const tail = text?.flush() ?? '';
      if (tail) yield { tokens: [], text: tail, drafted: [] };
      const result = stats.finish(method, promptIds.length, stopReason, settings());
      return { tokens: out, text: text?.text ?? '', stats: result };
    } finally {
      cache.dispose();
      states?.dispose();
      // A drafter configured for this generation is its own; the caller's is disposed only when asked.
      if (drafter !== given) drafter?.dispose();
      if (opts.disposeDrafter) given?.dispose();
      drafting.close();
    }
  }, () => partial());
}

/**
 * The drafter configured for a generation and its draft lengths: the given options, checked,
 * or else the drafter's defaults for this sampling (shortened to fit its context and the target's).
 */
function configureSpeculation(
  target: GPT2,
  drafter: Drafter,
  method: Method,
  sampling: ResolvedSampling,
  opts: GenerateOptions,
): { drafter: Drafter; lengths: DraftLength; drafts: number; branchLength?: number } {
  if (method !== drafter.method) throw new RangeError(`method '${method}' does not match the ${drafter.kind} drafter given`);
  if (drafter.vocabSize !== target.vocabSize) {
    throw new VocabularyMismatchError(`the drafter proposes from ${drafter.vocabSize} tokens but the target's vocabulary has ${target.vocabSize}: they must share a tokenizer`);
  }
  if (drafter.targetFeatures && drafter.targetFeatures !== target.config.nEmbd) {
    throw new ConfigError(`the drafter reads target hidden states of width ${drafter.targetFeatures} ("target_features") but the target's n_embd is ${target.config.nEmbd}: it was trained for another target`);
  }
  const asked = opts.drafts ?? 1;
  if (!Number.isInteger(asked) || asked < 1) throw new RangeError(`drafts must be an integer >= 1, got ${opts.drafts}`);
  // Greedy drafts of one drafter coincide: a tree would be one branch drawn several times.
  const drafts = sampling.temperature === 0 ? 1 : asked;
  if (asked > 1 && drafter.targetFeatures) throw new RangeError(`drafts ${asked}: a drafter that reads the target's hidden states verifies one draft per pass`);
  const branch = opts.branchLength;
  if (branch !== undefined && !(Number.isInteger(branch) && branch >= 1)) throw new RangeError(`branchLength must be an integer >= 1, got ${branch}`);
  if (branch !== undefined && opts.gamma !== undefined && branch > opts.gamma) throw new RangeError(`branchLength ${branch} exceeds gamma ${opts.gamma}: a branch is at most as long as the first draft`);
  const treeLongest = longestTreeDraft(drafts, branch);
  if (opts.gamma !== undefined && opts.gamma > treeLongest) {
    throw new RangeError(`gamma ${opts.gamma} with drafts ${drafts}${branch ? ` of ${branch} after the first` : ''}: a token tree holds at most ${MAX_TREE_ROWS - 1} drafted tokens, so gamma must be at most ${treeLongest}`);
  }
  const longest = Math.min(drafter.maxGamma, target.config.nPositions - 1, treeLongest);
  if (longest < 1) throw new ContextError(`the ${drafter.kind} drafter's context of ${drafter.maxGamma + 1} positions leaves no room for a draft`);
  const defaults = drafter.defaults(sampling);
  // A default longer than the drafter's context shrinks to fit; a given one is checked.
  const gamma = checkInt('gamma', opts.gamma ?? Math.min(defaults.gamma, longest), 1, longest);
  const defaultMax = opts.gamma === undefined ? Math.max(gamma, Math.min(defaults.maxGamma, longest)) : gamma;
  const maxGamma = checkInt('maxGamma', opts.maxGamma ?? defaultMax, gamma, longest);
  const configured = drafter.configure(opts, gamma);
  if (asked > (configured.maxDrafts ?? 1)) {
    throw new RangeError(`drafts ${asked}: the ${drafter.kind} drafter, configured this way, proposes at most ${configured.maxDrafts ?? 1} per pass (several need a diffusion drafter with steps 1 or a draft head)`);
  }
  return { drafter: configured, lengths: { base: gamma, max: maxGamma }, drafts, branchLength: branch };
}

/** Resolves when `p` settles or `signal` aborts, whichever comes first. */
function untilAborted(p: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return p;
  if (signal.aborted) return Promise.resolve();
  let onAbort = () => {};
  const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', (onAbort = () => resolve()), { once: true }));
  return Promise.race([p, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}

/** Feeds the drafter the context but its last token (as prefill does) in passes of at most `rows` tokens. */
function feedDrafter(dev: Device, drafter: Drafter, ctx: readonly number[], states: HiddenStates | undefined, rows: number): void {
  for (let end = Math.min(ctx.length, rows + 1); ; end = Math.min(ctx.length, end + rows)) {
    dev.scope(() => drafter.prefill(ctx.slice(0, end), states));
    if (end === ctx.length) return;
  }
}

/** Adds one step's target and drafter passes, its draft's verdict and its phase times to the statistics. */
function record(stats: StatsRecorder, step: StepResult, start: number): void {
  stats.targetPasses++;
  stats.targetRows += step.targetRows;
  stats.drafterPasses += step.drafterPasses;
  stats.draftHeadSteps += step.draftHeadSteps;
  if (!step.drafted.length) {
    stats.verifyMs += step.verifyDone - start;
    return;
  }
  stats.recordDraft(step.drafted.length, step.accepted);
  stats.draftMs += step.draftDone - start;
  stats.verifyMs += step.verifyDone - step.draftDone;
  stats.acceptMs += performance.now() - step.verifyDone;
}

function trace(index: number, step: StepResult, emitted: number[], start: number): StepTrace {
  const timing = { draftMs: step.draftDone - start, verifyMs: step.verifyDone - step.draftDone };
  if (!step.drafted.length) return { step: index, drafted: [], accepted: 0, emitted, ...timing };
  return { step: index, drafted: step.drafted, p: step.p, q: step.q, accepted: step.accepted, emitted, ...timing };
}

/** The model's ids and the tokenizer's must be the same set, or an id the model emits fails mid-generation. */
export function checkTokenizerCovers(tokenizer: Tokenizer, vocabSize: number, model: string): void {
  if (tokenizer.vocabSize !== vocabSize) {
    throw new VocabularyMismatchError(`the tokenizer has ${tokenizer.vocabSize} tokens but ${model}'s vocabulary has ${vocabSize}: ids past the smaller one would fail mid-generation`);
  }
  const missing = tokenizer.missingIds();
  if (missing.length > 0) {
    throw new VocabularyMismatchError(`the tokenizer has no token for id ${missing.join(', ')}${missing.length === 5 ? ' …' : ''} of ${model}'s ${vocabSize}: text could not be decoded`);
  }
}

function tokenizePrompt(target: GPT2, tokenizer: Tokenizer | null, prompt: string | readonly number[]): number[] {
  let ids: number[];
  if (typeof prompt === 'string') {
    if (!tokenizer) throw new RangeError('a text prompt needs a tokenizer; pass token ids instead');
    ids = tokenizer.encode(prompt);
  } else {
    ids = [...prompt];
  }
  for (const [i, t] of ids.entries()) {
    if (!Number.isInteger(t) || t < 0 || t >= target.vocabSize) {
      throw new RangeError(`prompt token ${t} at position ${i} is outside the vocabulary [0, ${target.vocabSize})`);
    }
  }
  if (ids.length === 0) {
    const bos = tokenizer?.eosTokenId ?? target.config.eosTokenId;
    if (bos === undefined) throw new RangeError('empty prompt and no end-of-text token to start from');
    ids = [bos];
  }
  return ids;
}
