/**
 * The speculative-sampling acceptance rule (Leviathan et al. 2023; Chen et al. 2023), on the few
 * numbers it needs. Draft token x_i, drawn from q_i, is accepted if q_i(x_i) ≤ p_i(x_i), else with
 * probability p_i(x_i)/q_i(x_i). At the first rejection the emitted token is a draw from
 * norm(max(0, p_i − q_i)); if all γ pass, a bonus token is drawn from p_γ. The output is then
 * distributed exactly as p, whatever q is.
 */

export interface AcceptInput {
  /** p_i(x_i), i < γ: the target's probability of each drafted token. */
  p: ArrayLike<number>;
  /** q_i(x_i), i < γ: the drafter's probability of each drafted token (what it was drawn from). */
  q: ArrayLike<number>;
  /** One uniform in [0, 1) per drafted token. */
  u: ArrayLike<number>;
}

/** Number of drafted tokens accepted (0..γ). */
export function acceptedPrefix({ p, q, u }: AcceptInput): number {
  for (let i = 0; i < p.length; i++) {
    // u < p/q, written without division; q = 0 (a token the drafter could not draw) never happens
    // for a real draft and is accepted iff p > 0 by the same inequality.
    if (!(q[i] <= p[i] || u[i] * q[i] < p[i])) return i;
  }
  return p.length;
}

/** Greedy verification: accept while the draft equals the target's argmax. */
export function acceptedPrefixGreedy(draft: ArrayLike<number>, targetArgmax: ArrayLike<number>): number {
  let i = 0;
  while (i < draft.length && draft[i] === targetArgmax[i]) i++;
  return i;
}

/** Residual distribution norm(max(0, p − q)) on the CPU (reference and tests). */
export function residual(p: ArrayLike<number>, q: ArrayLike<number>): Float64Array {
  const r = new Float64Array(p.length);
  let s = 0;
  for (let i = 0; i < p.length; i++) s += r[i] = Math.max(0, p[i] - q[i]);
  if (s > 0) for (let i = 0; i < r.length; i++) r[i] /= s;
  return r;
}

/**
 * How much of a draft to verify: up to and including the first token the drafter gave less than
 * `cutoff` probability (all of it if none; cutoff 0 keeps everything). Tokens after an unsure one
 * are seldom accepted, and each costs the verify a row. The cut depends on the draft alone, so
 * the output distribution stays the target's.
 */
export function verifiedLength(confidence: ArrayLike<number>, cutoff: number): number {
  for (let i = 0; i < confidence.length; i++) if (confidence[i] < cutoff) return i + 1;
  return confidence.length;
}
