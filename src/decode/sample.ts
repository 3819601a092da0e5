/** Token selection on the GPU from logits rows: argmax at temperature 0, else a draw from the filtered distribution. */
import type { Device } from '../tensor/device.js';
import { Tensor } from '../tensor/tensor.js';
import { argmax, argmaxProb } from '../tensor/ops/rowwise.js';
import { filteredProbs, pickPerRow } from '../tensor/ops/sample.js';
import type { ResolvedSampling } from './options.js';
import type { Rng } from './rng.js';
import type { RowsOf } from '../tensor/ops/rows.js';

export interface Selection {
  /** i32 [rows]. */
  ids: Tensor;
  /** [rows, V]: the distribution each id was drawn from; null when greedy. */
  probs: Tensor | null;
  /** f32 [rows]: the probability of each id (greedy: under the unfiltered softmax); when asked for. */
  confidence: Tensor | null;
}

/**
 * One token per logits row. `uniforms` (one per row) replaces rng's next numbers: two selections given
 * the same ones are coupled, each row drawn by inverse CDF, so similar distributions mostly draw alike.
 */
export function selectTokens(device: Device, logits: Tensor, s: ResolvedSampling, rng: Rng, withConfidence = false, uniforms?: Float32Array): Selection {
  if (s.temperature === 0) {
    if (!withConfidence) return { ids: argmax(logits), probs: null, confidence: null };
    const { ids, prob } = argmaxProb(logits);
    return { ids, probs: null, confidence: prob };
  }
  const rows = logits.size / logits.shape[logits.shape.length - 1];
  const ids = Tensor.empty(device, [rows], 'i32');
  const draw = { uniforms: Tensor.from(device, uniforms ?? rng.uniforms(rows), [rows]), ids: { tensor: ids, row: 0 } };
  const probs = filteredProbs(logits, { temperature: s.temperature, topK: s.topK, topP: s.topP }, undefined, { draw });
  const confidence = withConfidence ? pickPerRow(probs, ids) : null;
  return { ids, probs, confidence };
}

/** Where selectTokensInto writes: rows from `row` (`stride` apart) of a draft's tokens and, when sampling, of q. */
export interface SelectionRows {
  tokens: Tensor;
  /** [*, V'] f32 with V' ≤ the logits' width: each row's distribution over the first V' columns (null when greedy). */
  q: Tensor | null;
  row: number;
  stride?: number;
}

/**
 * selectTokens writing its ids and distributions straight into rows of larger tensors (no copies). q keeps the
 * logits' first V' columns only: a drafter's mask column, which SUBS gives probability 0, is left out.
 */
export function selectTokensInto(device: Device, logits: Tensor, s: ResolvedSampling, rng: Rng, into: SelectionRows, uniforms?: Float32Array): void {
  const at: RowsOf = { tensor: into.tokens, row: into.row, stride: into.stride };
  if (s.temperature === 0) {
    argmax(logits, at);
    return;
  }
  if (!into.q) throw new RangeError('selectTokensInto: sampling needs a q to write the distributions into');
  const rows = logits.size / logits.shape[logits.shape.length - 1];
  const V = into.q.shape[into.q.shape.length - 1];
  const draw = { uniforms: Tensor.from(device, uniforms ?? rng.uniforms(rows), [rows]), ids: at };
  filteredProbs(logits, { temperature: s.temperature, topK: s.topK, topP: s.topP }, undefined, { cols: V, into: { tensor: into.q, row: into.row, stride: into.stride }, draw });
}
