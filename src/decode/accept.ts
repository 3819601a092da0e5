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

/**
 * Block verification (Sun et al., "Block Verification Accelerates Speculative Decoding", ICLR 2025): the
 * draft is judged as a whole. The weight of the prefix of i drafted tokens is w_i = min(1, w_{i−1} · p_i(x_i) /
 * q_i(x_i)), w_0 = 1. The draft is cut after its last position i with u_i < h_i, where h_γ = w_γ and, for i < γ,
 * h_i = s_i / (s_i + 1 − w_i), s_i the mass of max(0, w_i · p_{i+1} − q_{i+1}); none: 0 tokens are kept. The
 * target's token after i kept ones is drawn from norm(max(0, w_i · p_{i+1} − q_{i+1})), or from p_{γ+1} after all γ.
 * The output is distributed exactly as the target's (test/decode-accept.test.ts enumerates it), and the expected
 * number of tokens kept is at least the token rule's: the weights let a likely draft token make up for an unlikely
 * one before it.
 */
export interface BlockAcceptInput extends AcceptInput {
  /** s_i, i < γ: the mass of the residual max(0, w_i · p_{i+1} − q_{i+1}) of row i (s_0 is not read). */
  mass: ArrayLike<number>;
}

/** w_0 … w_γ: the weights of the drafted prefixes. A token q could not draw passes iff p > 0, as in acceptedPrefix. */
export function prefixWeights(p: ArrayLike<number>, q: ArrayLike<number>): Float64Array {
  const w = new Float64Array(p.length + 1);
  w[0] = 1;
  for (let i = 0; i < p.length; i++) {
    const next = q[i] > 0 ? Math.min(1, w[i] * (p[i] / q[i])) : p[i] > 0 ? 1 : 0;
    w[i + 1] = w[i] > 0 ? next : 0;
  }
  return w;
}

/** h_1 … h_γ (index i − 1): the chance that block verification keeps exactly i tokens given it keeps no more. */
export function blockStopChances({ p, q, mass }: Omit<BlockAcceptInput, 'u'>): Float64Array {
  const g = p.length;
  const w = prefixWeights(p, q);
  const h = new Float64Array(g);
  for (let i = 1; i <= g; i++) {
    if (i === g) {
      h[i - 1] = w[g];
      continue;
    }
    // An empty residual never stops the draft: with w_i < 1 its chance is 0 anyway, and with w_i = 1 it means
    // p_{i+1} = q_{i+1}, after which every weight is 1 and the draft is kept whole (h_γ = 1) whatever h_i is.
    // So no draw from an empty residual is ever asked for, also where rounding empties it.
    h[i - 1] = mass[i] > 0 ? Math.min(1, mass[i] / (mass[i] + 1 - w[i])) : 0;
  }
  return h;
}

/** Number of drafted tokens block verification keeps (0..γ), with u_i the uniform of position i. */
export function acceptedBlock(input: BlockAcceptInput): number {
  const h = blockStopChances(input);
  for (let i = h.length; i >= 1; i--) if (input.u[i - 1] < h[i - 1]) return i;
  return 0;
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
