/**
 * One speculative iteration's verification: the target scores [pending, d_1 … d_γ] in one
 * forward (γ + 1 logit rows), and the GPU reduces them to what the acceptance decision needs:
 * p_i(d_i) and q_i(d_i), a residual draw per position and a bonus draw (or, greedy, the
 * target's argmax per row). One readback.
 */
import { Tensor, readTensors } from '../tensor/tensor.js';
import { binary } from '../tensor/ops/elementwise.js';
import { slice } from '../tensor/ops/gather.js';
import { argmax } from '../tensor/ops/rowwise.js';
import { filteredProbs, gather2d, sampleRows } from '../tensor/ops/sample.js';
import type { GPT2, GPT2Cache } from '../models/gpt2.js';
import { acceptedPrefix, acceptedPrefixGreedy } from './accept.js';
import type { ResolvedSampling } from './options.js';
import type { Rng } from './rng.js';

export interface Verdict {
  /** Drafted tokens accepted. */
  accepted: number;
  /** The target's token after them: residual draw, bonus draw, or argmax. */
  next: number;
}

export async function verifyDraft(
  target: GPT2,
  cache: GPT2Cache,
  pending: number,
  draft: number[],
  q: Tensor | null,
  sampling: ResolvedSampling,
  rng: Rng,
): Promise<Verdict> {
  const dev = target.device;
  const g = draft.length;
  const uAccept = rng.uniforms(g);
  const uDraw = rng.uniforms(g + 1);
  const out = dev.scope(() => {
    const logits = target.forward([pending, ...draft], cache, g + 1); // (γ + 1, V)
    if (sampling.temperature === 0 || !q) return { greedy: true as const, argmax: argmax(logits) };
    const p = filteredProbs(logits, { temperature: sampling.temperature, topK: sampling.topK, topP: sampling.topP });
    const rows = Tensor.from(dev, Int32Array.from(draft, (_, i) => i), [g]);
    const cols = Tensor.from(dev, Int32Array.from(draft), [g]);
    const residual = binary('subRelu', slice(p, 0, g, 0), q); // max(0, p_i − q_i), unnormalised
    return {
      greedy: false as const,
      px: gather2d(p, rows, cols),
      qx: gather2d(q, rows, cols),
      draws: sampleRows(residual, Tensor.from(dev, uDraw.subarray(0, g), [g])),
      bonus: sampleRows(slice(p, g, g + 1, 0), Tensor.from(dev, uDraw.subarray(g), [1])),
    };
  });
  if (out.greedy) {
    const [am] = await readTensors([out.argmax]);
    out.argmax.dispose();
    const accepted = acceptedPrefixGreedy(draft, am);
    return { accepted, next: am[accepted] };
  }
  const { px, qx, draws, bonus } = out;
  const [p, qv, r, b] = await readTensors([px, qx, draws, bonus]);
  for (const t of [px, qx, draws, bonus]) t.dispose();
  const accepted = acceptedPrefix({ p, q: qv, u: uAccept });
  return { accepted, next: accepted < g ? r[accepted] : b[0] };
}
