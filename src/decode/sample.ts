/** Token selection on the GPU from logits rows: argmax at temperature 0, else a draw from the filtered distribution. */
import type { Device } from '../tensor/device.js';
import { Tensor } from '../tensor/tensor.js';
import { argmax } from '../tensor/ops/rowwise.js';
import { filteredProbs, sampleRows } from '../tensor/ops/sample.js';
import type { ResolvedSampling } from './options.js';
import type { Rng } from './rng.js';

export interface Selection {
  /** i32 [rows]. */
  ids: Tensor;
  /** [rows, V]: the distribution each id was drawn from; null when greedy. */
  probs: Tensor | null;
}

export function selectTokens(device: Device, logits: Tensor, s: ResolvedSampling, rng: Rng): Selection {
  if (s.temperature === 0) return { ids: argmax(logits), probs: null };
  const rows = logits.size / logits.shape[logits.shape.length - 1];
  const probs = filteredProbs(logits, { temperature: s.temperature, topK: s.topK, topP: s.topP });
  return { ids: sampleRows(probs, Tensor.from(device, rng.uniforms(rows), [rows])), probs };
}
