/** Options of generate(), validated with errors that name the option and its allowed range. */

export type Method = 'ar' | 'speculative' | 'specdiff';
export type UnmaskSchedule = 'left-to-right' | 'random';
/** How a diffusion drafter sees the context (diffusion-drafter.ts). */
export type DraftAttention = 'bidirectional' | 'block-causal';
/**
 * How a draft head draws its positions: 'sequential', one head step per position, each reading the token
 * drawn before it; 'parallel', one head step for all of them, each reading the token the backbone drew
 * before it with the same random numbers (a coupled draw, so mostly the token the head then draws).
 * Both are exact proposals; 'parallel' trades some acceptance for one step instead of headPositions.
 */
export type HeadDraw = 'sequential' | 'parallel';
/**
 * How a sampled draft is verified: 'block' judges it as a whole (block verification, accept.ts), 'token' position
 * by position (Leviathan et al.). Both leave the output distributed as the target's; 'block' keeps at least as many
 * drafted tokens on average. Greedy drafts and token trees have rules of their own.
 */
export type Verification = 'block' | 'token';
export const VERIFICATIONS: readonly Verification[] = ['block', 'token'];
/** The default verification: more tokens per target pass for the same verify (docs/performance.md, "Decoding defaults"). */
export const DEFAULT_VERIFICATION: Verification = 'block';

export interface SamplingOptions {
  /** 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = all. */
  topK?: number;
  /** Nucleus: the smallest set of most likely tokens with mass ≥ topP; 1 = all. */
  topP?: number;
}

export interface SpeculationOptions {
  /**
   * Draft length γ (tokens proposed per target pass). Default: the drafter's (Drafter.defaults):
   * 4 with an AR drafter; with a diffusion drafter 6 greedy (growing to maxGamma) and 6 when sampling.
   */
  gamma?: number;
  /**
   * Longest draft of an adaptive draft length (≥ gamma): after a draft the target accepts whole,
   * the next drafts 2γ + 1 tokens, up to this; after a rejection it drafts gamma again. Default:
   * gamma (a fixed length), except where the drafter's default grows without a given gamma
   * (SpecDiff greedy: DEFAULT_DIFFUSION_MAX_GAMMA, 31).
   */
  maxGamma?: number;
  /**
   * Verify the draft only up to its first token whose drafter probability is below this (0 = verify
   * all γ; in [0, 1]). Costs a readback of the draft before the verify is recorded. Default: 0.
   */
  confidenceCutoff?: number;
  /**
   * Independent drafts per target pass, verified together as a token tree (SpecInfer's multi-draft
   * rule, exact). A drafter that draws several from one pass (diffusion, T = 1 or a draft head) allows
   * up to 8, with at most 31 drafted tokens in all. Sampling only: greedy drafts coincide, so greedy
   * generation verifies one. Default: 1.
   */
  drafts?: number;
  /**
   * With several drafts: how long each draft after the first is (1..γ; the first is γ long). Shorter
   * branches spend the tree's rows and the drafter's steps near the root, where acceptance is likeliest.
   * Default: γ.
   */
  branchLength?: number;
  /** How a sampled draft is verified (Verification). Default: DEFAULT_VERIFICATION, 'block'. */
  verification?: Verification;
  /** Diffusion drafter: denoising steps T per draft (≤ γ). Default: the drafter's. */
  steps?: number;
  /** Diffusion drafter: how many context tokens it sees (W). Default: the drafter's. */
  window?: number;
  /** Diffusion drafter: which masked positions each step fills. Default: the drafter's. */
  schedule?: UnmaskSchedule;
  /**
   * Diffusion drafter: 'bidirectional' (a pass over the last W context tokens and the masks) or
   * 'block-causal' (the whole context, its keys and values cached across drafts). Default: the
   * drafter's, which follows the model's config.json ("block_causal").
   */
  draftAttention?: DraftAttention;
  /**
   * Diffusion drafter whose model has a draft head (config.json "draft_head"): draft through it (one
   * backbone pass, then the head position by position, each reading the token drafted before it) or
   * not (the backbone's T-step draft). Default: the drafter's (true when the model has one), false when
   * steps other than 1 are given.
   */
  draftHead?: boolean;
  /** Diffusion drafter with a draft head: how many positions of a draft it draws from headStart on; the rest come from the backbone's pass. Default: the drafter's (12). */
  headPositions?: number;
  /**
   * Diffusion drafter with a draft head: 'sequential' (a head step per position, each reading the token drawn
   * before it) or 'parallel' (one head step, each position reading the backbone's coupled draw before it).
   * Default: the drafter's ('sequential').
   */
  headDraw?: HeadDraw;
  /**
   * Diffusion drafter with a draft head: the first draft position the head draws; the earlier ones come from the
   * backbone's pass. Default: the drafter's (1 for a drafter with shifted logits, as the bundled one, else 0).
   */
  headStart?: number;
}

export interface ResolvedSampling {
  temperature: number;
  topK: number;
  topP: number;
}

export function resolveSampling(o: SamplingOptions): ResolvedSampling {
  const temperature = o.temperature ?? 1;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) {
    throw new RangeError(`temperature must be a finite number >= 0 (0 = greedy), got ${o.temperature}`);
  }
  const topK = o.topK ?? 0;
  if (!Number.isInteger(topK) || topK < 0) throw new RangeError(`topK must be an integer >= 0 (0 = off), got ${o.topK}`);
  const topP = o.topP ?? 1;
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${o.topP}`);
  return { temperature, topK, topP };
}

export function checkInt(name: string, v: number, lo: number, hi: number): number {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${name} must be an integer in [${lo}, ${hi}], got ${v}`);
  return v;
}

export function resolveVerification(v: Verification | undefined): Verification {
  const out = v ?? DEFAULT_VERIFICATION;
  if (!VERIFICATIONS.includes(out)) throw new RangeError(`verification must be one of ${VERIFICATIONS.join(', ')}, got ${String(v)}`);
  return out;
}
