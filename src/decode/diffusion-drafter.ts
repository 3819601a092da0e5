/**
 * Diffusion drafter (SpecDiff): the MDLM sees the context followed by γ mask tokens and fills
 * the masks in T denoising steps; drafting costs T forwards whatever γ is. Each step samples
 * every masked position from its current distribution and keeps the tokens (and their
 * distributions, as q) of the positions the schedule fills at that step. Steps that fill nothing
 * reuse the previous result, as MDLM's ddpm_cache does, and cost no forward. Everything stays on
 * the GPU; the loop reads back the γ tokens once.
 *
 * Two ways to see the context:
 *  - 'bidirectional' (MDLM as trained upstream): every step is a bidirectional pass over the last
 *    W context tokens and the γ masks, so W sets the cost of a draft and bounds what it sees.
 *  - 'block-causal': the context attends causally and its keys and values are cached across
 *    drafts, like an AR drafter's; only the masked block attends to everything. A draft then
 *    costs the new context tokens + γ rows (the first step; later steps γ) and sees the whole
 *    context. Needs a model that works that way (config.json "block_causal": true).
 *
 * A model with shifted logits (config.json "shift_logits": true) predicts from each row the token after it, as
 * an AR model does: a draft of γ runs γ − 1 masks, and its first position is read from the last context token's
 * row. The draft's rows are then the context's last and the masks but the last one.
 *
 * A model with a draft head (config.json "draft_head": true) drafts in one backbone pass and then
 * the head, position by position: each position reads its mask's hidden state and the token drafted
 * before it, so later positions are drawn given earlier ones (a T = 1 draft draws them independently).
 */
import { Tensor } from '../tensor/tensor.js';
import { copy2d, copyRows, embedding, slice } from '../tensor/ops/gather.js';
import type { IdRows } from '../tensor/ops/rows.js';
import type { MDLM, MDLMCache } from '../models/mdlm.js';
import type { KVCache } from '../tensor/ops/attention.js';
import type { HiddenStates } from '../models/gpt2.js';
import type { MatmulSignature } from '../tensor/tune.js';
import type { Draft, DraftDefaults, Drafter, DraftTree } from './drafter.js';
import { checkInt, type DraftAttention, type HeadDraw, type ResolvedSampling, type SpeculationOptions, type UnmaskSchedule } from './options.js';
import type { Rng } from './rng.js';
import { selectTokens, selectTokensInto } from './sample.js';
import { unmaskPlan } from './schedule.js';
import { MAX_TREE_ROWS } from '../shaders/attention.js';

export type { DraftAttention } from './options.js';

// Defaults chosen by bench:decode on the bundled models: docs/performance.md, "Decoding defaults".
/** Denoising steps per draft: one pass drafts the whole block. */
export const DEFAULT_STEPS = 1;
/** Context tokens a bidirectional draft sees. */
export const DEFAULT_WINDOW = 8;
/** Draft length at greedy, growing to DEFAULT_DIFFUSION_MAX_GAMMA after wholly accepted drafts. */
export const DEFAULT_DIFFUSION_GAMMA = 6;
/**
 * Draft length when sampling, fixed: with block verification a sixth position pays for its head step and verify row
 * here; grown drafts cost more head steps and verify rows than their tokens bring.
 */
export const DEFAULT_DIFFUSION_GAMMA_SAMPLED = 6;
/** Longest greedy draft (6 → 13 → 27 → 31): one drafter pass whatever its length, and greedy loops accept long runs. */
export const DEFAULT_DIFFUSION_MAX_GAMMA = 31;
/**
 * Draft positions drawn through a draft head (from DEFAULT_HEAD_START on); the others come from the backbone's pass. Each head step
 * costs a block and the output layer in sequence; the bundled drafter's backbone alone predicts little past a
 * draft's first position, inside the target's greedy loops too, so greedy drafts, which grow long there, take
 * the head further (docs/performance.md, "Decoding defaults").
 */
export const DEFAULT_HEAD_POSITIONS = 12;
/**
 * The first draft position the head draws, for a drafter with shifted logits; those before it come from the
 * backbone's pass. There the backbone's first position is the next-token prediction of the whole context, which a
 * head step hardly improves (docs/training.md, "The backbone draws the first position"). Other drafters' heads
 * start at position 0, as does one that reads the target's state there ("draft_head_features").
 */
export const DEFAULT_HEAD_START = 1;

function defaultHeadStart(config: MDLM['config']): number {
  return config.shiftLogits && !config.draftHeadFeatures ? DEFAULT_HEAD_START : 0;
}

/** Most denoising steps a draft may be given. */
const MAX_STEPS = 1024;
/** Most drafts of one context verified together as a token tree. */
export const MAX_DRAFTS = 8;

export interface DiffusionDrafterOptions {
  /** Denoising steps T (default DEFAULT_STEPS). */
  steps?: number;
  /**
   * Bidirectional drafting: context tokens the drafter sees (default DEFAULT_WINDOW). Every denoising
   * step is a bidirectional pass over W + γ tokens, so W sets the cost of a draft; undefined in the
   * options keeps the default, Infinity means as many as fit. Block-causal drafting sees everything.
   */
  window?: number;
  schedule?: UnmaskSchedule;
  /** How the context is seen (default: 'block-causal' if the model's config says it supports it). */
  attention?: DraftAttention;
  /** Draft through the model's draft head (then steps must be 1). Default: when it has one. */
  draftHead?: boolean;
  /** With a draft head: how many positions it draws from headStart on (default DEFAULT_HEAD_POSITIONS); the rest come from the backbone's pass. */
  headPositions?: number;
  /** With a draft head: position by position, or all in one step (default 'sequential'; see HeadDraw). */
  headDraw?: HeadDraw;
  /** With a draft head: the first position it draws (default DEFAULT_HEAD_START with shifted logits, else 0); earlier ones come from the backbone's pass. */
  headStart?: number;
}

/** What a draft's head chains read: the backbone's pass and the draft's sampling. */
interface HeadChainInputs {
  /** The masks' hidden states (γ, d). */
  hidden: Tensor;
  /** The backbone's logits of the positions before the head's first (null if none). */
  lead: Tensor | null;
  /** The backbone's logits: of every position for a parallel draw, else of those past the head's (null if none). */
  backbone: Tensor | null;
  headCache: KVCache;
  /** The target's state at the first position, for a head that reads it. */
  feature: Tensor | undefined;
  /** The last context token, which the head's first position reads when it is the draft's first. */
  last: number;
  /** The first position the head draws. */
  start: number;
  sampling: ResolvedSampling;
  rng: Rng;
}

/** Where a draft's tokens and distributions go: K drafts of γ rows, one after another. */
interface DraftOutputs {
  tokens: Tensor;
  q: Tensor | null;
}

export class DiffusionDrafter implements Drafter {
  readonly kind = 'diffusion';
  readonly method = 'specdiff';
  readonly steps: number;
  /** Bidirectional drafting: context tokens seen (capped by what fits beside the γ masks). */
  readonly window: number;
  readonly schedule: UnmaskSchedule;
  readonly attention: DraftAttention;
  readonly draftHead: boolean;
  readonly headPositions: number;
  readonly headDraw: HeadDraw;
  readonly headStart: number;
  /** Context tokens the last draft saw (the window, or everything cached when block-causal). */
  contextLength = 0;
  /** Block-causal: the context's keys and values, the tokens they are of, and where in the context those start. */
  private cache: MDLMCache | null = null;
  private cached: number[] = [];
  private offset = 0;
  private headCache: KVCache | null = null;

  constructor(
    readonly model: MDLM,
    opts: DiffusionDrafterOptions = {},
  ) {
    this.steps = opts.steps ?? DEFAULT_STEPS;
    this.window = opts.window ?? DEFAULT_WINDOW;
    this.schedule = opts.schedule ?? 'left-to-right';
    const attention = opts.attention ?? (model.config.blockCausal ? 'block-causal' : 'bidirectional');
    if (attention !== 'bidirectional' && attention !== 'block-causal') throw new RangeError(`draft attention must be 'bidirectional' or 'block-causal', got ${String(attention)}`);
    this.attention = attention;
    this.draftHead = opts.draftHead ?? model.config.draftHead;
    this.headPositions = checkInt('headPositions', opts.headPositions ?? DEFAULT_HEAD_POSITIONS, 1, Math.max(DEFAULT_HEAD_POSITIONS, model.config.modelLength));
    this.headDraw = opts.headDraw ?? 'sequential';
    if (this.headDraw !== 'sequential' && this.headDraw !== 'parallel') throw new RangeError(`headDraw must be 'sequential' or 'parallel', got ${String(this.headDraw)}`);
    this.headStart = checkInt('headStart', opts.headStart ?? defaultHeadStart(model.config), 0, model.config.modelLength);
    if (this.draftHead && !model.config.draftHead) throw new RangeError('draftHead: this drafter\'s model has no draft head (its config.json has no "draft_head")');
    if (this.draftHead && this.steps !== 1) throw new RangeError(`steps: a draft through the draft head takes one backbone pass (steps 1), got ${this.steps}; set draftHead false to denoise in T steps`);
  }

  /** At greedy a short draft that grows while drafts are accepted whole; sampling, a shorter fixed one. */
  defaults(sampling: ResolvedSampling): DraftDefaults {
    return sampling.temperature === 0
      ? { gamma: DEFAULT_DIFFUSION_GAMMA, maxGamma: DEFAULT_DIFFUSION_MAX_GAMMA }
      : { gamma: DEFAULT_DIFFUSION_GAMMA_SAMPLED, maxGamma: DEFAULT_DIFFUSION_GAMMA_SAMPLED };
  }

  /** Steps, window, schedule, attention and the draft head from `o` where given, this drafter's elsewhere. */
  configure(o: SpeculationOptions, gamma: number): DiffusionDrafter {
    const steps = checkInt('steps', o.steps ?? this.steps, 1, MAX_STEPS);
    const window = o.window === undefined ? this.window : checkInt('window', o.window, 1, this.model.config.modelLength - gamma);
    const schedule = o.schedule ?? this.schedule;
    if (schedule !== 'left-to-right' && schedule !== 'random') throw new RangeError(`schedule must be 'left-to-right' or 'random', got ${schedule}`);
    const attention = o.draftAttention ?? this.attention;
    // Asking for T > 1 steps asks for the backbone's T-step draft.
    const draftHead = o.draftHead ?? (o.steps !== undefined && o.steps !== 1 ? false : this.draftHead);
    const headPositions = o.headPositions ?? this.headPositions;
    const headDraw = o.headDraw ?? this.headDraw;
    const headStart = o.headStart ?? this.headStart;
    const same = steps === this.steps && window === this.window && schedule === this.schedule && attention === this.attention;
    if (same && draftHead === this.draftHead && headPositions === this.headPositions && headDraw === this.headDraw && headStart === this.headStart) return this;
    return new DiffusionDrafter(this.model, { steps, window, schedule, attention, draftHead, headPositions, headDraw, headStart });
  }

  /**
   * The matmuls its drafts of γ tokens run (for autotuning): over W + γ rows when bidirectional;
   * block-causal, over the tokens the last verification added (`added`, default 1..γ + 1) and the γ masks.
   */
  matmulSignatures(gamma: number, added?: readonly number[]): MatmulSignature[] {
    const contexts = this.attention === 'block-causal' ? (added ?? Array.from({ length: gamma + 1 }, (_, i) => i + 1)) : [this.window];
    const head = this.draftHead ? this.model.draftHeadMatmulSignatures() : [];
    // With shifted logits a pass runs one mask fewer than it drafts: the same rows as one context token fewer.
    return [...contexts.flatMap((c) => this.model.matmulSignatures(gamma, c - this.shift)), ...head];
  }

  /** The mask token is the drafter's own: it proposes from the rest of its vocabulary. */
  get vocabSize(): number {
    return this.model.vocabSize - 1;
  }

  get maxGamma(): number {
    return this.model.config.modelLength - 1;
  }

  /** 1 when the model's rows predict the next token (config "shift_logits"): a draft's rows start one earlier. */
  private get shift(): 0 | 1 {
    return this.model.config.shiftLogits ? 1 : 0;
  }

  get contextWindow(): number | undefined {
    return this.attention === 'bidirectional' ? this.window : undefined;
  }

  get targetFeatures(): number {
    const { targetFeatures, draftHeadFeatures } = this.model.config;
    return targetFeatures || (this.draftHead ? draftHeadFeatures : 0);
  }

  /** Several drafts come from one backbone pass: a T = 1 draft's positions drawn again, or the head's chain run again. */
  get maxDrafts(): number {
    return this.draftHead || this.steps === 1 ? MAX_DRAFTS : 1;
  }

  draft(context: readonly number[], gamma: number, sampling: ResolvedSampling, rng: Rng, withConfidence = false, states?: HiddenStates, tree?: DraftTree): Draft {
    const count = checkInt('drafts', tree?.drafts ?? 1, 1, this.maxDrafts);
    const branchLength = checkInt('branchLength', tree?.branchLength ?? gamma, 1, gamma);
    if (count > 1 && withConfidence) throw new RangeError('DiffusionDrafter.draft: several drafts come without confidences');
    if (this.draftHead) return this.draftThroughHead(context, gamma, sampling, rng, withConfidence, states, count, branchLength);
    const dev = this.model.device;
    const mask = this.model.maskTokenId;
    const { feed, features, cache } = this.feed(context, gamma, states);
    const W = feed.length;
    const shift = this.shift;
    const masks = gamma - shift;
    const ids = Tensor.from(dev, Int32Array.from([...feed, ...new Array(masks).fill(mask)]), [W + masks]);
    const tail = Array.from({ length: gamma }, (_, i) => W - shift + i);
    const V = this.vocabSize;
    const tokens = Tensor.empty(dev, [count * gamma], 'i32');
    const q = sampling.temperature === 0 ? null : Tensor.empty(dev, [count * gamma, V]);
    const confidence = withConfidence ? Tensor.empty(dev, [gamma]) : null;
    let passes = 0;
    const plan = unmaskPlan(this.schedule, gamma, this.steps, rng).filter((fill) => fill.length > 0);
    // maxDrafts allows several drafts only with one step, which fills every position.
    if (count > 1 && plan.length !== 1) throw new RangeError(`DiffusionDrafter.draft: several drafts need steps 1, got ${this.steps}`);
    for (const [step, fill] of plan.entries()) {
      // The first block-causal pass appends the new context to the cache; later ones run the block alone
      // (with shifted logits, from the last context token, whose row drafts the first position).
      // The masks have no target state, so a pass over the block alone reads no features.
      if (cache && passes > 0 && shift) cache.truncate(cache.length - 1);
      const logits = !cache
        ? this.model.logits(ids, tail, features)
        : passes === 0
          ? this.model.logitsCached(ids, cache, masks, tail, features)
          : this.model.logitsCached(slice(ids, W - shift, W + masks, 0), cache, masks, tail.map((i) => i - W + shift)); // (γ, V + 1)
      passes++;
      const rows = Tensor.from(dev, Int32Array.from(fill), [fill.length]);
      for (let k = 0; k < count; k++) {
        const { ids: drawn, probs, confidence: drawnConfidence } = selectTokens(dev, logits, sampling, rng, withConfidence);
        // The next step sees the tokens drawn so far (with shifted logits the last position has no row to fill);
        // the last step has no next step.
        const seen = fill.filter((i) => i < masks);
        if (step < plan.length - 1 && seen.length) {
          copyRows(drawn.reshape([gamma, 1]), Tensor.from(dev, Int32Array.from(seen), [seen.length]), ids.reshape([W + masks, 1]), Tensor.from(dev, Int32Array.from(seen, (i) => W + i), [seen.length]));
        }
        const into = k === 0 ? rows : Tensor.from(dev, Int32Array.from(fill, (i) => k * gamma + i), [fill.length]);
        copyRows(drawn.reshape([gamma, 1]), rows, tokens.reshape([count * gamma, 1]), into);
        if (confidence && drawnConfidence) copyRows(drawnConfidence.reshape([gamma, 1]), rows, confidence.reshape([gamma, 1]), rows);
        if (q && probs) {
          // Drop the mask column (SUBS gives it probability 0) so q lives on the target's vocabulary.
          const drop = { rows: gamma, cols: V, srcOffset: 0, srcStride: V + 1, dstOffset: k * gamma * V, dstStride: V };
          if (fill.length === gamma) copy2d(probs, q, drop);
          else {
            const qStep = Tensor.empty(dev, [gamma, V]);
            copy2d(probs, qStep, { ...drop, dstOffset: 0 });
            copyRows(qStep, rows, q, into);
          }
        }
      }
    }
    return { tokens, q, confidence, passes };
  }

  /** What a draft's first pass reads: block-causal, the context the cache lacks; bidirectional, the window. */
  private feed(context: readonly number[], gamma: number, states?: HiddenStates): { feed: number[]; features: Tensor | undefined; cache: MDLMCache | null } {
    const cache = this.attention === 'block-causal' ? (this.cache ??= this.model.createCache()) : null;
    const feed = cache ? this.uncached(context, gamma, cache) : context.slice(context.length - Math.min(this.window, context.length, this.model.config.modelLength - gamma + this.shift));
    const features = this.features(states, context.length - feed.length, feed.length, gamma - this.shift, 'draft');
    this.contextLength = cache ? this.cached.length : feed.length;
    return { feed, features, cache };
  }

  /**
   * One backbone pass gives the masks' hidden states; the head then draws headPositions positions from headStart
   * on, each from its mask's state and the token drawn before it (the last context token for position 0), and the
   * output layer draws the other positions from their states alone, as a T = 1 draft does. On the GPU throughout.
   */
  private draftThroughHead(context: readonly number[], gamma: number, sampling: ResolvedSampling, rng: Rng, withConfidence: boolean, states: HiddenStates | undefined, count: number, branchLength: number): Draft {
    const dev = this.model.device;
    const { feed, features, cache } = this.feed(context, gamma, states);
    const W = feed.length;
    const masks = gamma - this.shift;
    const ids = [...feed, ...new Array<number>(masks).fill(this.model.maskTokenId)];
    const tail = Array.from({ length: gamma }, (_, i) => W - this.shift + i);
    const hidden = cache ? this.model.hiddenStatesCached(ids, cache, masks, tail, features) : this.model.hiddenStates(ids, tail, features); // (γ, d)
    const headCache = (this.headCache ??= this.model.createDraftHeadCache());
    const V = this.vocabSize;
    const tokens = Tensor.empty(dev, [count * gamma], 'i32');
    const q = sampling.temperature === 0 ? null : Tensor.empty(dev, [count * gamma, V]);
    const confidence = withConfidence ? Tensor.empty(dev, [gamma]) : null;
    // The head draws positions start..headed − 1.
    const start = Math.min(this.headStart, gamma);
    const headed = Math.min(gamma, start + this.headPositions);
    const last = context[context.length - 1];
    const feature = this.headFeature(states, context.length);
    // The backbone's logits: of every position for a parallel draw, else of those before and past the head's.
    const parallel = this.headDraw === 'parallel';
    const lead = !parallel && start > 0 ? this.model.logitsOfStates(slice(hidden, 0, start, 0)) : null;
    const backbone = parallel ? this.model.logitsOfStates(hidden) : headed < gamma ? this.model.logitsOfStates(slice(hidden, headed, gamma, 0)) : null;
    const chain: HeadChainInputs = { hidden, lead, backbone, headCache, feature, last, start, sampling, rng };
    if (count > 1 && !parallel && count * (headed - start) <= MAX_TREE_ROWS) {
      this.headChainsTogether(chain, headed, count, branchLength, { tokens, q });
      return { tokens, q, confidence, passes: 1, headSteps: headed - start };
    }
    let headSteps = 0;
    for (let k = 0; k < count; k++) {
      headCache.truncate(0);
      // A shorter branch takes fewer head steps, and the backbone's positions only if it reaches them.
      const length = k === 0 ? gamma : branchLength;
      const end = parallel ? headed : Math.max(start, Math.min(headed, length));
      this.headChain({ ...chain, backbone: parallel || length > headed ? backbone : null }, end, withConfidence, { tokens, q, confidence, at: k * gamma });
      headSteps += parallel ? (headed > start ? 1 : 0) : end - start;
    }
    return { tokens, q, confidence, passes: 1, headSteps };
  }

  /**
   * K drafts' head chains stepped together, one row per draft (MDLM.draftHeadLogitsForDrafts): headed − start
   * steps in all instead of K times that, each draft still drawn from its own chain. Draft k's position i goes to
   * row k·γ + i of the outputs; each draft draws the positions before and past the head's from the backbone.
   */
  private headChainsTogether(c: HeadChainInputs, headed: number, count: number, branchLength: number, out: DraftOutputs): void {
    const dev = this.model.device;
    const gamma = c.hidden.shape[0];
    c.headCache.truncate(0);
    if (c.lead) for (let k = 0; k < count; k++) selectTokensInto(dev, c.lead, c.sampling, c.rng, { ...out, row: k * gamma });
    let previous: Tensor | IdRows = c.start > 0 ? { tensor: out.tokens, row: c.start - 1, stride: gamma, count } : Tensor.from(dev, new Int32Array(count).fill(c.last), [count]);
    for (let i = c.start; i < headed; i++) {
      const logits = this.model.draftHeadLogitsForDrafts(slice(c.hidden, i, i + 1, 0), previous, c.headCache, i === c.start ? c.feature : undefined); // (K, V + 1)
      // Draft k's position i is row k·γ + i.
      selectTokensInto(dev, logits, c.sampling, c.rng, { ...out, row: i, stride: gamma });
      previous = { tensor: out.tokens, row: i, stride: gamma, count };
    }
    if (!c.backbone) return;
    // Positions past the head's, from the backbone's pass, for each draft that reaches them.
    for (let k = 0; k < count; k++) {
      if ((k === 0 ? gamma : branchLength) <= headed) continue;
      selectTokensInto(dev, c.backbone, c.sampling, c.rng, { ...out, row: k * gamma + headed });
    }
  }

  /** One draft through the head up to position `headed`, written from row `out.at` of the outputs. */
  private headChain(c: HeadChainInputs, headed: number, withConfidence: boolean, out: DraftOutputs & { confidence: Tensor | null; at: number }): void {
    const dev = this.model.device;
    const { hidden, lead, backbone, headCache, feature, last, start, sampling, rng } = c;
    const gamma = hidden.shape[0];
    // Rows from `at` of the draft drawn from logits (rows, V + 1), with the given random numbers if any; the
    // ids drawn, read in place by the next head step.
    const draw = (logits: Tensor, position: number, uniforms?: Float32Array): IdRows => {
      const rows = logits.shape[0];
      const row = out.at + position;
      if (!out.confidence) {
        selectTokensInto(dev, logits, sampling, rng, { ...out, row }, uniforms);
        return { tensor: out.tokens, row, count: rows };
      }
      const { ids: drawn, probs, confidence: drawnConfidence } = selectTokens(dev, logits, sampling, rng, withConfidence, uniforms);
      copy2d(drawn, out.tokens, { rows, cols: 1, srcOffset: 0, srcStride: 1, dstOffset: row, dstStride: 1 });
      // Drop the mask column (SUBS gives it probability 0) so q lives on the target's vocabulary.
      const V = this.vocabSize;
      if (out.q && probs) copy2d(probs, out.q, { rows, cols: V, srcOffset: 0, srcStride: V + 1, dstOffset: row * V, dstStride: V });
      if (drawnConfidence) copy2d(drawnConfidence, out.confidence, { rows, cols: 1, srcOffset: 0, srcStride: 1, dstOffset: position, dstStride: 1 });
      return { tensor: drawn, row: 0, count: rows };
    };
    if (this.headDraw === 'parallel' && backbone) {
      // The backbone draws every position; the head then redraws positions start..headed − 1, each reading the
      // backbone's token before it, with the same random numbers.
      const uniforms = sampling.temperature === 0 ? undefined : rng.uniforms(gamma);
      const drawn = draw(backbone, 0, uniforms);
      if (headed <= start) return;
      // The tokens before each redrawn position: read in place, but for the last context token before position 0.
      let previous: Tensor | IdRows = { ...drawn, row: drawn.row + start - 1, count: headed - start };
      if (start === 0) {
        previous = Tensor.from(dev, Int32Array.of(last, ...new Array<number>(headed - 1).fill(0)), [headed]);
        if (headed > 1) copy2d(drawn.tensor, previous, { rows: headed - 1, cols: 1, srcOffset: drawn.row, srcStride: 1, dstOffset: 1, dstStride: 1 });
      }
      draw(this.model.draftHeadLogits(slice(hidden, start, headed, 0), previous, headCache, feature), start, uniforms?.subarray(start, headed));
      return;
    }
    let previous: Tensor | IdRows = Tensor.from(dev, Int32Array.of(last), [1]);
    if (lead) {
      const drawn = draw(lead, 0);
      previous = { ...drawn, row: drawn.row + drawn.count - 1, count: 1 };
    }
    for (let i = start; i < headed; i++) previous = draw(this.model.draftHeadLogits(slice(hidden, i, i + 1, 0), previous, headCache, i === start ? feature : undefined), i);
    if (backbone) draw(backbone, headed);
  }

  /** Block-causal: appends the prompt but its last token to the cache (bidirectional drafts keep no cache). */
  prefill(context: readonly number[], states?: HiddenStates): void {
    if (this.attention !== 'block-causal' || context.length < 2) return;
    const cache = (this.cache ??= this.model.createCache());
    const feed = this.uncached(context.slice(0, -1), 0, cache);
    if (!feed.length) return;
    const features = this.features(states, context.length - 1 - feed.length, feed.length, 0, 'prefill');
    // The one logit row asked for is discarded: only the keys and values are wanted.
    this.model.logitsCached(feed, cache, 0, [feed.length - 1], features).dispose();
  }

  /**
   * What a drafter with target features reads beside the W tokens from context position `start` and its
   * masks: row i of the states is the target's state that predicted token i (row 0, zeros, for none).
   */
  private features(states: HiddenStates | undefined, start: number, W: number, gamma: number, op: string): Tensor | undefined {
    const width = this.model.config.targetFeatures;
    if (!width) return undefined;
    if (!states) throw new RangeError(`DiffusionDrafter.${op}: this drafter reads the target's hidden states ("target_features": ${width}); pass them`);
    if (states.width !== width) throw new RangeError(`DiffusionDrafter.${op}: the drafter reads target states of width ${width}, got ${states.width}`);
    const rows = Int32Array.from({ length: W + gamma }, (_, i) => (i < W ? start + i : 0));
    return embedding(states.rows, Tensor.from(this.model.device, rows, [W + gamma]));
  }

  /** What a draft head with target features reads at the draft's first position: the state that predicted the last context token. */
  private headFeature(states: HiddenStates | undefined, contextLength: number): Tensor | undefined {
    const width = this.model.config.draftHeadFeatures;
    if (!width) return undefined;
    if (!states) throw new RangeError(`DiffusionDrafter.draft: this drafter's head reads the target's hidden states ("draft_head_features": ${width}); pass them`);
    if (states.width !== width) throw new RangeError(`DiffusionDrafter.draft: the draft head reads target states of width ${width}, got ${states.width}`);
    return embedding(states.rows, Tensor.from(this.model.device, Int32Array.of(contextLength - 1), [1]));
  }

  /**
   * Rolls the cache back to the longest prefix it shares with the context (from where the cached
   * tokens start in it) and returns the rest of the context, which the next pass appends. Past
   * the model length it restarts on the most recent half of it, so that the next drafts are
   * incremental again; a context that shares nothing starts over from its beginning.
   */
  private uncached(context: readonly number[], gamma: number, cache: MDLMCache): number[] {
    const limit = this.model.config.modelLength;
    let keep = 0;
    // With shifted logits the last context token's row drafts, so it is always run.
    const shared = Math.min(this.cached.length, context.length - this.offset - this.shift);
    while (keep < shared && this.cached[keep] === context[this.offset + keep]) keep++;
    if (keep === 0) this.offset = 0;
    let feed = context.slice(this.offset + keep);
    if (keep + feed.length + gamma > limit) {
      keep = 0;
      const recent = Math.min(Math.max(1, Math.floor(limit / 2) - gamma), limit - gamma);
      this.offset = Math.max(0, context.length - recent);
      feed = context.slice(this.offset);
    }
    cache.truncate(keep);
    this.cached.length = keep;
    this.cached.push(...feed);
    return feed;
  }

  afterVerify(): void {}

  dispose(): void {
    this.cache?.dispose();
    this.cache = null;
    this.headCache?.dispose();
    this.headCache = null;
    this.cached = [];
    this.offset = 0;
  }
}
