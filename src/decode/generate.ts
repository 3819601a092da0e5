/**
 * generate(): one loop for autoregressive decoding, speculative decoding with an AR drafter and
 * speculative diffusion decoding, sharing the sampler, the verification and the statistics.
 * It streams chunks of tokens and text and ends with statistics.
 */
import type { GPT2 } from '../models/gpt2.js';
import type { Tokenizer } from '../models/tokenizer.js';
import { ContextError, checkSampledIds } from '../models/errors.js';
import { ConfigError } from '../models/config.js';
import { readTensors } from '../tensor/tensor.js';
import type { Drafter } from './drafter.js';
import { DiffusionDrafter } from './diffusion-drafter.js';
import { checkInt, resolveSampling, type Method, type SamplingOptions, type SpeculationOptions } from './options.js';
import { Rng } from './rng.js';
import { selectTokens } from './sample.js';
import { StatsRecorder, type GenerationStats, type StopReason } from './stats.js';
import { TextStreamer } from './text.js';
import { verifyDraft } from './verify.js';
import { verifiedLength } from './accept.js';
import { nextDraftLength, type DraftLength } from './draft-length.js';
import { slice } from '../tensor/ops/gather.js';

/** Default draft length of speculative decoding (AR drafter): the fastest in bench:decode on the bundled models. */
export const DEFAULT_GAMMA = 4;
/**
 * Default draft length of SpecDiff at greedy, where it grows to DEFAULT_DIFFUSION_MAX_GAMMA after
 * wholly accepted drafts. A diffusion draft costs one pass whatever γ is, so γ stops paying only
 * when the verify's extra rows cost more than the tokens they add. With a fixed length γ = 6 led
 * (1.60x/1.63x/1.50x AR against 1.60x/1.52x/1.42x for γ = 5); growing, the base drafts are the ones
 * mostly rejected, and γ = 4 → 31 led γ = 6 → 31 in both head-to-heads (2.27x/2.00x AR against
 * 1.93x/1.74x; γ = 5 → 31: 2.01x; README, Performance).
 */
export const DEFAULT_DIFFUSION_GAMMA = 4;
/**
 * When sampling, fewer drafted tokens survive (independent draws given the context), so the
 * verify's extra rows buy less: at temperature 1, γ = 3 ran 0.89x AR against 0.76x/0.75x for
 * γ = 5/6 (README, Performance), and γ ≤ 4 led larger γ in the runs before.
 */
export const DEFAULT_DIFFUSION_GAMMA_SAMPLED = 3;
/**
 * Longest draft of SpecDiff's adaptive draft length at greedy (draft-length.ts): 4 → 9 → 19 → 31.
 * A diffusion draft of 31 costs one drafter pass like a draft of 4, and inside the target's greedy
 * loops the drafter gets 17-32 tokens in a row right (README, Performance).
 */
export const DEFAULT_DIFFUSION_MAX_GAMMA = 31;

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
  const method: Method = opts.method ?? (opts.drafter ? (opts.drafter instanceof DiffusionDrafter ? 'specdiff' : 'speculative') : 'ar');
  const maxNewTokens = checkInt('maxNewTokens', opts.maxNewTokens ?? 64, 1, 1 << 20);
  if (tokenizer) checkTokenizerCovers(tokenizer, target.vocabSize, 'the target');
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${opts.seed}`);
  const promptIds = tokenizePrompt(target, tokenizer, opts.prompt);
  const capacity = target.config.nPositions;
  if (promptIds.length >= capacity) {
    throw new ContextError(`the prompt has ${promptIds.length} tokens; the model's context is ${capacity}, leaving no room to generate`);
  }
  const drafter = method === 'ar' ? null : opts.drafter;
  let gamma = 0;
  let maxGamma = 0;
  if (drafter === undefined) throw new RangeError(`method '${method}' needs a drafter`);
  if (drafter) {
    if ((method === 'specdiff') !== drafter instanceof DiffusionDrafter) {
      throw new RangeError(`method '${method}' does not match the ${drafter.kind} drafter given`);
    }
    if (drafter.vocabSize !== target.vocabSize) {
      throw new VocabularyMismatchError(`the drafter proposes from ${drafter.vocabSize} tokens but the target's vocabulary has ${target.vocabSize}: they must share a tokenizer`);
    }
    if (drafter.targetFeatures && drafter.targetFeatures !== target.config.nEmbd) {
      throw new ConfigError(`the drafter reads target hidden states of width ${drafter.targetFeatures} ("target_features") but the target's n_embd is ${target.config.nEmbd}: it was trained for another target`);
    }
    const defaultGamma = drafter instanceof DiffusionDrafter ? (sampling.temperature === 0 ? DEFAULT_DIFFUSION_GAMMA : DEFAULT_DIFFUSION_GAMMA_SAMPLED) : DEFAULT_GAMMA;
    const longest = Math.min(drafter.maxGamma, capacity - 1);
    if (longest < 1) throw new ContextError(`the ${drafter.kind} drafter's context of ${drafter.maxGamma + 1} positions leaves no room for a draft`);
    // A default longer than the drafter's context shrinks to fit; a given one is checked.
    gamma = checkInt('gamma', opts.gamma ?? Math.min(defaultGamma, longest), 1, longest);
    const defaultMax = drafter instanceof DiffusionDrafter && sampling.temperature === 0 && opts.gamma === undefined ? Math.min(DEFAULT_DIFFUSION_MAX_GAMMA, longest) : gamma;
    maxGamma = checkInt('maxGamma', opts.maxGamma ?? defaultMax, gamma, longest);
    if (drafter instanceof DiffusionDrafter) {
      drafter.steps = checkInt('steps', opts.steps ?? drafter.steps, 1, 1024);
      if (opts.window !== undefined) drafter.window = checkInt('window', opts.window, 1, drafter.model.config.modelLength - gamma);
      const schedule = opts.schedule ?? drafter.schedule;
      if (schedule !== 'left-to-right' && schedule !== 'random') throw new RangeError(`schedule must be 'left-to-right' or 'random', got ${schedule}`);
      drafter.schedule = schedule;
      if (opts.draftAttention !== undefined) drafter.attention = opts.draftAttention;
    }
  }
  const cutoff = opts.confidenceCutoff ?? 0;
  if (typeof cutoff !== 'number' || !(cutoff >= 0 && cutoff <= 1)) throw new RangeError(`confidenceCutoff must be in [0, 1] (0 = off), got ${opts.confidenceCutoff}`);
  const stops = (opts.stop ?? []).filter((s) => s.length > 0);
  if (stops.length && !tokenizer) throw new RangeError('stop sequences need a tokenizer');
  const eos = opts.stopAtEos === false ? undefined : (tokenizer?.eosTokenId ?? target.config.eosTokenId);

  const settings = (): Partial<GenerationStats> => (drafter ? { gamma, maxGamma, steps: drafter instanceof DiffusionDrafter ? Math.min(drafter.steps, gamma) : undefined } : {});
  let partial = (): GenerationResult => ({ tokens: [], text: '', stats: new StatsRecorder().finish(method, promptIds.length, 'closed', settings()) });
  return new Generation(async function* () {
    const dev = target.device;
    const rng = new Rng(seed);
    const stats = new StatsRecorder(dev);
    const ctx = [...promptIds];
    const text = tokenizer ? new TextStreamer(tokenizer, stops) : null;
    const out: number[] = [];
    partial = () => ({ tokens: [...out], text: text?.text ?? '', stats: stats.finish(method, promptIds.length, 'closed', settings()) });
    const lengths: DraftLength = { base: gamma, max: maxGamma };
    let draftLength = gamma;
    let stopReason: StopReason = 'length';
    const cache = target.createCache();
    // The target's hidden states, kept only for a drafter that reads them.
    const states = drafter?.targetFeatures ? target.createHiddenStates() : undefined;
    try {
      const t0 = performance.now();
      // Every model that decodes reads the prompt here, so the decoding rate counts decoding alone.
      if (ctx.length > 1) dev.scope(() => target.forward(ctx.slice(0, -1), cache, 1, states).dispose());
      if (drafter) dev.scope(() => drafter.prefill(ctx, states));
      await dev.sync();
      stats.prefillMs = performance.now() - t0;
      stats.begin();
      while (out.length < maxNewTokens) {
        if (opts.signal?.aborted) {
          stopReason = 'aborted';
          break;
        }
        const pending = ctx[ctx.length - 1];
        const room = capacity - cache.length - 1; // positions left after the pending token
        if (room < 0) {
          stopReason = 'context';
          break;
        }
        const g = Math.min(draftLength, room, maxNewTokens - out.length - 1);
        let emitted: number[];
        let drafted: boolean[];
        let trace: StepTrace;
        if (!drafter || g < 1) {
          const t = performance.now();
          const ids = dev.scope(() => selectTokens(dev, target.forward([pending], cache, 1, states), sampling, rng).ids);
          const [id] = await readTensors([ids]);
          ids.dispose();
          checkSampledIds(id, target.vocabSize, 'the target');
          stats.targetPasses++;
          stats.verifyMs += performance.now() - t;
          emitted = [id[0]];
          drafted = [false];
          trace = { step: stats.targetPasses - 1, drafted: [], accepted: 0, emitted, draftMs: 0, verifyMs: performance.now() - t };
        } else {
          const t1 = performance.now();
          const draft = dev.scope(() => drafter.draft(ctx, g, sampling, rng, cutoff > 0, states));
          stats.drafterPasses += draft.passes;
          let { tokens, q } = draft;
          let draftDone: Promise<number>;
          if (draft.confidence) {
            // The cut needs the draft's confidences before the verify is recorded.
            const [confidence] = await readTensors([draft.confidence]);
            draftDone = Promise.resolve(performance.now());
            const n = verifiedLength(confidence, cutoff);
            if (n < g) [tokens, q] = dev.scope(() => [slice(draft.tokens, 0, n, 0), draft.q && slice(draft.q, 0, n, 0)]);
          } else {
            // Submit the draft now and record the verify while it runs; the verify reads the
            // drafted tokens on the GPU. This small readback only times the draft: it resolves
            // when the draft is done (or, if later, when recording the verify ends).
            draftDone = readTensors([draft.tokens]).then(() => performance.now());
            draftDone.catch(() => undefined); // a failure surfaces from the verify's own readback
          }
          const base = cache.length;
          let verdict;
          let t2: number;
          try {
            verdict = await verifyDraft(target, cache, pending, tokens, q, sampling, rng, states);
            t2 = await draftDone;
          } finally {
            await draftDone.catch(() => undefined);
            for (const t of new Set([tokens, q, draft.tokens, draft.q, draft.confidence])) t?.dispose();
          }
          const t3 = performance.now();
          const proposal = verdict.draft;
          cache.truncate(base + 1 + verdict.accepted);
          drafter.afterVerify(proposal, verdict.accepted);
          stats.targetPasses++;
          stats.recordDraft(proposal.length, verdict.accepted);
          draftLength = nextDraftLength(draftLength, proposal.length, verdict.accepted, lengths);
          emitted = [...proposal.slice(0, verdict.accepted), verdict.next];
          drafted = emitted.map((_, i) => i < verdict.accepted);
          stats.draftMs += t2 - t1;
          stats.verifyMs += t3 - t2;
          stats.acceptMs += performance.now() - t3;
          trace = { step: stats.targetPasses - 1, drafted: proposal, p: verdict.p, q: verdict.q, accepted: verdict.accepted, emitted, draftMs: t2 - t1, verifyMs: t3 - t2 };
        }
        opts.onStep?.(trace);
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
        yield { tokens: take, text: piece.text, drafted: drafted.slice(0, take.length) };
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
      if (opts.disposeDrafter) drafter?.dispose();
    }
  }, () => partial());
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
