/**
 * Checkpoint layouts: one nested structure per model names every tensor, and the loaders' key checks
 * follow it (the checkpoints here are spelled independently, in test/helpers/tiny-models.ts).
 */
import { describe, expect, it } from 'vitest';
import { keyNames, keysOf, tensor } from '../src/models/keys.js';
import { GPT2 } from '../src/models/gpt2.js';
import { MDLM } from '../src/models/mdlm.js';
import { parseGPT2Config, parseMDLMConfig } from '../src/models/config.js';
import { SafetensorsError, memorySource, openSafetensors, writeSafetensors } from '../src/models/safetensors.js';
import { getDevice } from './helpers/device.js';
import { gpt2Shapes, mdlmShapes, randomTensors } from './helpers/tiny-models.js';

const V = 16;
const D = 32;

describe('checkpoint layouts', () => {
  it('name every tensor by its path, array items by their index, in layout order', () => {
    const keys = keysOf({ wte: { weight: tensor(V, D) }, h: [{ mlp: { 0: { bias: tensor(4) } } }, { mlp: { 0: { bias: tensor(4) } } }] }, 'transformer.');
    expect(keys.h[1].mlp[0].bias).toEqual({ name: 'transformer.h.1.mlp.0.bias', shape: [4] });
    expect(keyNames(keys)).toEqual(['transformer.wte.weight', 'transformer.h.0.mlp.0.bias', 'transformer.h.1.mlp.0.bias']);
  });
});

describe('the loaders check the key set their layout gives', async () => {
  const dev = await getDevice();
  const checkpoint = (shapes: Record<string, number[]>) => openSafetensors(memorySource(writeSafetensors(randomTensors(shapes, 1, 0.3, () => false)), 'ckpt.safetensors'));
  const rejection = (p: Promise<unknown>) => p.then(() => expect.unreachable('the load succeeded'), (e: Error) => e);
  const gpt2Config = parseGPT2Config({ model_type: 'gpt2', vocab_size: V, n_positions: 32, n_embd: D, n_layer: 2, n_head: 2 });

  it('GPT-2: a missing and an unexpected tensor are both named, with the file', async () => {
    const shapes = gpt2Shapes(V, D, 2, 32);
    delete shapes['h.1.mlp.c_proj.bias'];
    shapes['h.0.mlp.c_gate.weight'] = [D];
    const e = await rejection(GPT2.load(dev, await checkpoint(shapes), gpt2Config));
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e.message).toBe('ckpt.safetensors: 1 missing tensor: "h.1.mlp.c_proj.bias"; 1 unexpected tensor: "h.0.mlp.c_gate.weight"');
  });

  it('GPT-2: under "transformer." every key carries the prefix, and a missing one is named with it', async () => {
    const shapes = Object.fromEntries(Object.entries(gpt2Shapes(V, D, 2, 32)).map(([k, s]) => [`transformer.${k}`, s]));
    const model = await GPT2.load(dev, await checkpoint(shapes), gpt2Config);
    model.dispose();
    delete shapes['transformer.ln_f.bias'];
    const e = await rejection(GPT2.load(dev, await checkpoint(shapes), gpt2Config));
    expect(e.message).toBe('ckpt.safetensors: 1 missing tensor: "transformer.ln_f.bias"');
  });

  it('MDLM: a missing tensor of the last block is named with its backbone prefix', async () => {
    const shapes = mdlmShapes(V + 1, D, 2, 16);
    delete shapes['backbone.blocks.1.mlp.2.bias'];
    const config = parseMDLMConfig({ model_type: 'mdlm', vocab_size: V + 1, hidden_dim: D, n_blocks: 2, n_heads: 2, cond_dim: 16, model_length: 32 });
    const e = await rejection(MDLM.load(dev, await checkpoint(shapes), config));
    expect(e.message).toBe('ckpt.safetensors: 1 missing tensor: "backbone.blocks.1.mlp.2.bias"');
  });
});
