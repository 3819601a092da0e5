/**
 * filteredProbs (temperature, top-k, top-p on the GPU) at decode shapes: 1 row (an AR step) and
 * 6 rows (a γ = 5 draft or verify), the bundled and GPT-2 vocabularies, with the threshold search
 * decoding uses beside a bit-per-pass search (32 passes and reductions), timed in turn.
 */
import type { Device } from '../../src/tensor/device.js';
import { filteredProbs, type SamplingFilter } from '../../src/tensor/ops/sample.js';
import type { ThresholdSearch } from '../../src/shaders/sample.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { timeEach, type Timing } from './timing.js';
import { weightData } from './matmul.js';

export interface SamplingRow {
  rows: number;
  V: number;
  filter: string;
  /** The search decoding uses: its timing, or the error it gave. */
  ours: Timing | string;
  /** A bit per pass, where there is a threshold to search (top-k or top-p). */
  bitPerPass?: Timing | string;
}

const BIT_PER_PASS: ThresholdSearch = { digitBits: 1, wg: 256 };

export async function benchSampling(dev: Device, quick: boolean): Promise<SamplingRow[]> {
  const filters: Array<[string, SamplingFilter]> = [
    ['T 1', { temperature: 1 }],
    ['top-k 50', { temperature: 0.8, topK: 50 }],
    ['top-p 0.9', { temperature: 1, topP: 0.9 }],
  ];
  const out: SamplingRow[] = [];
  for (const V of quick ? [8192] : [8192, 50257]) {
    for (const rows of [1, 6]) {
      // Logits spread like a language model's (a few large, most small).
      const logits = Tensor.from(dev, weightData(rows * V, 9).map((v) => 40 * v), [rows, V]);
      for (const [name, f] of filters) {
        const searches = f.topK || f.topP ? [dev.tuning.thresholdSearch, BIT_PER_PASS] : [dev.tuning.thresholdSearch];
        const timings = await timeEach(searches.map((s) => () => filteredProbs(logits, f, s).dispose()), () => dev.sync(), { budgetMs: 1500 });
        const [ours, bitPerPass] = timings.map((t) => (t instanceof Error ? t.message : t));
        out.push({ rows, V, filter: name, ours, bitPerPass });
      }
      logits.dispose();
    }
  }
  return out;
}
