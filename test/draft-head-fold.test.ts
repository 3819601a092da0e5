// The draft head's token table (vocab_embed · token_projᵀ), folded on the GPU at load in chunks of rows.
import { describe, expect, it } from 'vitest';
import { FOLD_CHUNK_ROWS, MDLM } from '../src/models/mdlm.js';
import { parseMDLMConfig } from '../src/models/config.js';
import { WeightError } from '../src/models/weights.js';
import { memorySource, openSafetensors, writeSafetensors } from '../src/models/safetensors.js';
import { f16BitsToF32, f32ToF16Bits } from '../src/tensor/half.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { getDevice } from './helpers/device.js';
import { draftHeadShapes, mdlmShapes, randomTensors } from './helpers/tiny-models.js';

const V = 2 * FOLD_CHUNK_ROWS + 3; // three chunks
const D = 16;
const C = 16;
const EMBED = 'backbone.vocab_embed.embedding';
const TOKEN_PROJ = 'backbone.draft_head.token_proj.weight';

function headTensors(seed: number) {
  return randomTensors({ ...mdlmShapes(V, D, 1, C), ...draftHeadShapes(V, D, C) }, seed, 0.3, (n) => /norm.*weight$/.test(n));
}

async function load(tensors: ReturnType<typeof headTensors>, dtype: 'f32' | 'f16'): Promise<MDLM> {
  const ckpt = await openSafetensors(memorySource(writeSafetensors(tensors), 'head.safetensors'));
  const config = parseMDLMConfig({ model_type: 'mdlm', vocab_size: V, hidden_dim: D, n_blocks: 1, n_heads: 2, cond_dim: C, model_length: 32, time_conditioning: false, draft_head: true, block_causal: true });
  return MDLM.load(await getDevice(), ckpt, config, { dtype });
}

const tokenTable = (m: MDLM): Tensor => (m as unknown as { draft_head: { tokenTable: Tensor } }).draft_head.tokenTable;

describe('the draft head fold', () => {
  it.each(['f32', 'f16'] as const)('is vocab_embed · token_projᵀ in every row of every chunk (%s weights)', async (dtype) => {
    const t = headTensors(5);
    const round = dtype === 'f16' ? (x: number) => f16BitsToF32(f32ToF16Bits(x)) : (x: number) => x;
    const embed = t[EMBED].data.map(round);
    const proj = t[TOKEN_PROJ].data.map(round);
    const model = await load(t, dtype);
    const got = (await tokenTable(model).read()) as Float32Array;
    let worst = 0;
    for (let v = 0; v < V; v++) {
      for (let j = 0; j < D; j++) {
        let ref = 0;
        for (let k = 0; k < D; k++) ref += embed[v * D + k] * proj[j * D + k];
        worst = Math.max(worst, Math.abs(got[v * D + j] - round(ref)) / Math.max(1, Math.abs(ref)));
      }
    }
    expect(worst).toBeLessThan(dtype === 'f16' ? 2e-3 : 1e-5);
    model.dispose();
  });

  it('past the f16 range in the last chunk is a WeightError naming the tensor and the element, and frees what it uploaded', async () => {
    const t = headTensors(6);
    const row = V - 2;
    t[EMBED].data.fill(300, row * D, (row + 1) * D);
    t[TOKEN_PROJ].data.fill(300, 3 * D, 4 * D); // table[row][3] = 16 · 300 · 300, the only element past 65504
    const dev = await getDevice();
    const before = dev.memoryStats().liveBytes;
    const e = await load(t, 'f16').then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(WeightError);
    expect((e as Error).message).toBe(`head.safetensors: tensor "${TOKEN_PROJ} (folded into the embedding)" has 1440000, past the largest f16 value 65504 at element ${row * D + 3}; the weights must be finite`);
    expect(dev.memoryStats().liveBytes).toBe(before);
  });
});
