/**
 * One speculative iteration's verification: the target scores [pending, d_1 … d_γ] in one
 * forward (γ + 1 logit rows), and the GPU reduces them to what the acceptance decision needs:
 * p_i(d_i) and q_i(d_i), a residual draw per position (block verification: and its mass) and a
 * bonus draw, or, greedy, the target's argmax per row. The draft stays on the GPU: its tokens feed
 * the forward directly, so the verify can be recorded before the draft has run, and they come back
 * to the CPU with the verdict in one readback.
 */
import { Tensor, readTensors } from '../tensor/tensor.js';
import { argmax } from '../tensor/ops/rowwise.js';
import { filteredProbs, residualDraws } from '../tensor/ops/sample.js';
import type { GPT2, GPT2Cache, HiddenStates } from '../models/gpt2.js';
import { acceptedBlock, acceptedPrefix, acceptedPrefixGreedy } from './accept.js';
import { checkSampledIds } from '../models/errors.js';
import type { ResolvedSampling, Verification } from './options.js';
import type { Rng } from './rng.js';

export interface Verdict {
  /** The drafted tokens, read back with the verdict. */
  draft: number[];
  /** Drafted tokens accepted. */
  accepted: number;
  /** The target's token after them: residual draw, bonus draw, or argmax. */
  next: number;
  /** When sampling: p(d_i) and q(d_i) of each drafted token, the numbers the acceptance test compared. */
  p?: number[];
  q?: number[];
}

/**
 * `draft`: i32 [γ] on the GPU; `q`: [γ, V], the distributions it was drawn from (null when greedy);
 * `states`: where the target also writes its hidden states, for a drafter that reads them;
 * `verification`: the rule a sampled draft is judged by.
 */
export async function verifyDraft(
  target: GPT2,
  cache: GPT2Cache,
  pending: number,
  draft: Tensor,
  q: Tensor | null,
  sampling: ResolvedSampling,
  rng: Rng,
  states: HiddenStates | undefined,
  verification: Verification,
): Promise<Verdict> {
  const g = draft.size;
  const uAccept = rng.uniforms(g);
  const out = recordVerify(target, cache, pending, draft, q, sampling, rng, states, verification);
  if (out.greedy) {
    const [d, am] = await readTensors([draft, out.argmax]);
    out.argmax.dispose();
    checkSampledIds(d, target.vocabSize, 'the drafter');
    checkSampledIds(am, target.vocabSize, 'the target');
    const accepted = acceptedPrefixGreedy(d, am);
    return { draft: Array.from(d), accepted, next: am[accepted] };
  }
  const { px, qx, draws, pDraws, mass } = out;
  const read = [draft, px, qx, draws, pDraws, ...(mass ? [mass] : [])];
  const [d, p, qv, r, b, m] = await readTensors(read);
  for (const t of read.slice(1)) t.dispose();
  checkSampledIds(d, target.vocabSize, 'the drafter');
  // Only the draw that is used must be a token: residual rows past the accepted prefix may be empty.
  const accepted = m ? acceptedBlock({ p, q: qv, mass: m, u: uAccept }) : acceptedPrefix({ p, q: qv, u: uAccept });
  const next = accepted < g ? r[accepted] : b[g];
  checkSampledIds([next], target.vocabSize, 'the target');
  return { draft: Array.from(d), accepted, next, p: Array.from(p), q: Array.from(qv) };
}

/** Records the verification pass and the draws it needs (nothing is read back). */
export function recordVerify(
  target: GPT2,
  cache: GPT2Cache,
  pending: number,
  draft: Tensor,
  q: Tensor | null,
  sampling: ResolvedSampling,
  rng: Rng,
  states: HiddenStates | undefined,
  verification: Verification,
) {
  const dev = target.device;
  const g = draft.size;
  const uDraw = rng.uniforms(g + 1);
  return dev.scope(() => {
    const ids = Tensor.empty(dev, [1 + g], 'i32');
    dev.upload(ids.buffer, 0, Int32Array.of(pending));
    dev.copy(draft.buffer, 0, ids.buffer, 4, 4 * g);
    const logits = target.forward(ids, cache, g + 1, states); // (γ + 1, V)
    if (sampling.temperature === 0 || !q) return { greedy: true as const, argmax: argmax(logits) };
    // Every row of p draws with uDraw (in the dispatch that filters it); only the last row's, the bonus token, is used.
    const pDraws = Tensor.empty(dev, [g + 1], 'i32');
    const p = filteredProbs(logits, { temperature: sampling.temperature, topK: sampling.topK, topP: sampling.topP }, undefined, {
      draw: { uniforms: Tensor.from(dev, uDraw, [g + 1]), ids: { tensor: pDraws, row: 0 } },
    });
    const block = verification === 'block';
    const { px, qx, draws, mass } = residualDraws(p, q, draft, Tensor.from(dev, uDraw.subarray(0, g), [g]), { block });
    return { greedy: false as const, px, qx, draws, pDraws, mass };
  });
}
