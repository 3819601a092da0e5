/**
 * Diffusion drafter (SpecDiff): the MDLM sees the last W context tokens followed by γ mask
 * tokens and fills the masks in T denoising steps; drafting costs T forwards whatever γ is.
 * Each step samples every masked position from its current distribution and keeps the tokens
 * (and their distributions, as q) of the positions the schedule fills at that step. Steps that
 * fill nothing reuse the previous result, as MDLM's ddpm_cache does, and cost no forward.
 * Everything stays on the GPU; the loop reads back the γ tokens once.
 */
import { Tensor } from '../tensor/tensor.js';
import { copy2d, copyRows } from '../tensor/ops/gather.js';
import type { MDLM } from '../models/mdlm.js';
import type { Draft, Drafter } from './drafter.js';
import type { ResolvedSampling, UnmaskSchedule } from './options.js';
import type { Rng } from './rng.js';
import { selectTokens } from './sample.js';
import { unmaskPlan } from './schedule.js';

/** Defaults measured fastest by bench:decode on the bundled models (README, Performance). */
export const DEFAULT_STEPS = 1;
/**
 * Context tokens a diffusion draft sees by default: 8 was fastest at greedy in the interleaved
 * head-to-head `bench:decode --compare --gammas 4,5 --windows 4,8 --steps 1` (γ = 4: 1.27x AR against
 * 1.21x at W = 4; at temperature 1, W = 4 led, 0.92x against 0.81x).
 */
export const DEFAULT_WINDOW = 8;

export interface DiffusionDrafterOptions {
  /** Denoising steps T (default DEFAULT_STEPS). */
  steps?: number;
  /**
   * Context tokens the drafter sees (default DEFAULT_WINDOW). Every denoising step is a bidirectional pass
   * over W + γ tokens, so W sets the cost of a draft; undefined in the options keeps the default,
   * Infinity means as many as fit.
   */
  window?: number;
  schedule?: UnmaskSchedule;
}

export class DiffusionDrafter implements Drafter {
  readonly kind = 'diffusion';
  steps: number;
  /** Context tokens seen (capped by what fits beside the γ masks). */
  window: number;
  schedule: UnmaskSchedule;

  constructor(
    readonly model: MDLM,
    opts: DiffusionDrafterOptions = {},
  ) {
    this.steps = opts.steps ?? DEFAULT_STEPS;
    this.window = opts.window ?? DEFAULT_WINDOW;
    this.schedule = opts.schedule ?? 'left-to-right';
  }

  /** The mask token is the drafter's own: it proposes from the rest of its vocabulary. */
  get vocabSize(): number {
    return this.model.vocabSize - 1;
  }

  get maxGamma(): number {
    return this.model.config.modelLength - 1;
  }

  draft(context: readonly number[], gamma: number, sampling: ResolvedSampling, rng: Rng): Draft {
    const dev = this.model.device;
    const mask = this.model.maskTokenId;
    const W = Math.min(this.window, context.length, this.model.config.modelLength - gamma);
    const ids = Tensor.from(dev, Int32Array.from([...context.slice(context.length - W), ...new Array(gamma).fill(mask)]), [W + gamma]);
    const tail = Array.from({ length: gamma }, (_, i) => W + i);
    const V = this.vocabSize;
    const tokens = Tensor.empty(dev, [gamma], 'i32');
    const q = sampling.temperature === 0 ? null : Tensor.empty(dev, [gamma, V]);
    let passes = 0;
    for (const fill of unmaskPlan(this.schedule, gamma, this.steps, rng)) {
      if (fill.length === 0) continue;
      const logits = this.model.logits(ids, tail); // (γ, V + 1)
      passes++;
      const { ids: drawn, probs } = selectTokens(dev, logits, sampling, rng);
      const rows = Tensor.from(dev, Int32Array.from(fill), [fill.length]);
      copyRows(drawn.reshape([gamma, 1]), rows, ids.reshape([W + gamma, 1]), Tensor.from(dev, Int32Array.from(fill, (i) => W + i), [fill.length]));
      copyRows(drawn.reshape([gamma, 1]), rows, tokens.reshape([gamma, 1]), rows);
      if (q && probs) {
        // Drop the mask column (SUBS gives it probability 0) so q lives on the target's vocabulary.
        const qStep = Tensor.empty(dev, [gamma, V]);
        copy2d(probs, qStep, { rows: gamma, cols: V, srcOffset: 0, srcStride: V + 1, dstOffset: 0, dstStride: V });
        copyRows(qStep, rows, q, rows);
      }
    }
    return { tokens, q, passes };
  }

  afterVerify(): void {}

  dispose(): void {}
}
