/** What the decoding loop needs from a drafter; AR and diffusion drafters implement it. */
import type { Tensor } from '../tensor/tensor.js';
import type { HiddenStates } from '../models/gpt2.js';
import type { ResolvedSampling, SpeculationOptions } from './options.js';
import type { Rng } from './rng.js';

export interface Draft {
  /**
   * i32 [K·γ] on the GPU: the proposed tokens, K drafts one after another (K = 1 unless asked for more);
   * a draft shorter than γ (DraftTree.branchLength) leaves its later slots unspecified.
   */
  tokens: Tensor;
  /**
   * [K·γ, V] on the GPU: row i is the distribution token i was drawn from, over the target's
   * vocabulary (null when greedy: then only the tokens matter).
   */
  q: Tensor | null;
  /**
   * f32 [γ] on the GPU, when asked for: the probability the drafter gave each proposed token
   * (greedy: its softmax maximum). A function of the draft alone, so cutting the draft where it
   * falls keeps speculative decoding exact.
   */
  confidence: Tensor | null;
  /** Drafter forward passes spent on this draft. */
  passes: number;
  /**
   * Steps of a draft head (one block and the output layer at one position each) spent on this draft;
   * several drafts' rows stepped together count once.
   */
  headSteps?: number;
}

/** Several drafts of one context at once: `drafts` of them, the first γ long and the others `branchLength` (≤ γ). */
export interface DraftTree {
  drafts: number;
  branchLength: number;
}

/** A drafter's own draft lengths for a sampling setting. */
export interface DraftDefaults {
  /** Draft length γ when the caller gives none. */
  gamma: number;
  /** Longest draft of the adaptive draft length when the caller gives neither gamma nor maxGamma (= gamma: fixed). */
  maxGamma: number;
}

export interface Drafter {
  readonly kind: string;
  /** The generate() method it drafts for. */
  readonly method: 'speculative' | 'specdiff';
  /** Denoising steps per draft, for a drafter that has them (statistics report min(steps, γ)). */
  readonly steps?: number;
  /** Vocabulary the drafter proposes from; must equal the target's. */
  readonly vocabSize: number;
  /** Most tokens it can propose at once. */
  readonly maxGamma: number;
  /** Most independent drafts of one context it proposes at once (Drafter.draft's tree; 1: one). */
  readonly maxDrafts?: number;
  /**
   * Without a cache: the most context tokens a draft reads (a bidirectional diffusion drafter's window), which it
   * reaches as the context grows. Absent: a draft reads what its cache lacks.
   */
  readonly contextWindow?: number;
  /** Width of the target's hidden states it reads beside the context (0 or absent: none). */
  readonly targetFeatures?: number;
  /** Its default draft lengths when sampling this way. */
  defaults(sampling: ResolvedSampling): DraftDefaults;
  /**
   * A drafter with the speculation options that concern it, checked against drafts of up to
   * `gamma` tokens: this one when they change nothing, otherwise a new drafter sharing this one's
   * model (its weights) with caches of its own. This drafter is never changed.
   */
  configure(options: SpeculationOptions, gamma: number): Drafter;
  /**
   * Proposes γ tokens to follow `context` (prompt + everything generated). Tensors are owned
   * by the caller's device scope. `states`: the target's hidden states of the context, for a
   * drafter with targetFeatures > 0 (written by the target's forwards before this is recorded).
   * `tree` (drafts ≤ maxDrafts): independent drafts of the context, each drawn as a single one would be.
   */
  draft(context: readonly number[], gamma: number, sampling: ResolvedSampling, rng: Rng, withConfidence?: boolean, states?: HiddenStates, tree?: DraftTree): Draft;
  /**
   * Records the prompt's pass through the drafter's cache (all but its last token, which the
   * first draft feeds), so that prompt processing happens with the target's prefill rather than
   * inside the first draft. A drafter without a cache does nothing. The caller owns the scope
   * and the sync.
   */
  prefill(context: readonly number[], states?: HiddenStates): void;
  /** Told, after verification, which tokens it drafted and how many the target accepted. */
  afterVerify(drafted: readonly number[], accepted: number): void;
  /** Releases GPU memory (caches). */
  dispose(): void;
}
