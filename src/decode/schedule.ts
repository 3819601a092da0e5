/**
 * Unmasking schedules of the diffusion drafter: for each of T steps, which of the γ masked
 * positions receive a token.
 *  - 'left-to-right': step s fills the s-th of T contiguous blocks. Every token is drawn given
 *    only the context and the blocks to its left, so its recorded q is exactly the distribution
 *    it came from and speculative sampling stays exact for any T.
 *  - 'random': MDLM's own ddpm_cache order: from time t to s = t − 1/T a still-masked position is
 *    filled with probability (t − s)/t; the last step fills the rest. A token may then be drawn
 *    after tokens to its right, so q is an approximation for T > 1 at temperature > 0.
 */
import type { UnmaskSchedule } from './options.js';
import type { Rng } from './rng.js';

export function unmaskPlan(schedule: UnmaskSchedule, gamma: number, steps: number, rng: Rng): number[][] {
  const T = Math.min(steps, gamma);
  if (schedule === 'left-to-right') {
    return Array.from({ length: T }, (_, s) => {
      const lo = Math.floor((s * gamma) / T);
      const hi = Math.floor(((s + 1) * gamma) / T);
      return Array.from({ length: hi - lo }, (_, i) => lo + i);
    });
  }
  // MDLM's timesteps: linspace(1, eps, T + 1).
  const eps = 1e-5;
  const ts = Array.from({ length: T + 1 }, (_, i) => 1 + ((eps - 1) * i) / T);
  const masked = new Set(Array.from({ length: gamma }, (_, i) => i));
  const plan: number[][] = [];
  for (let s = 0; s < T; s++) {
    const last = s === T - 1;
    const pUnmask = (ts[s] - ts[s + 1]) / ts[s];
    const fill = [...masked].filter(() => last || rng.uniform() < pUnmask);
    for (const i of fill) masked.delete(i);
    plan.push(fill);
  }
  return plan;
}
