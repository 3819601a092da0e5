/** Small random GPT-2 and MDLM models built in memory, for decoding tests. */
import type { Device } from '../../src/tensor/device.js';
import { GPT2 } from '../../src/models/gpt2.js';
import { MDLM } from '../../src/models/mdlm.js';
import { parseGPT2Config, parseMDLMConfig } from '../../src/models/config.js';
import { memorySource, openSafetensors, writeSafetensors, type TensorToWrite } from '../../src/models/safetensors.js';
import { randn } from './reference.js';

export interface TinySpec {
  vocab: number;
  d?: number;
  layers?: number;
  heads?: number;
  positions?: number;
  seed: number;
  /** Weight scale: larger makes sharper (less uniform) distributions. */
  scale?: number;
  /** MDLM: width of the target hidden states it reads (config "target_features"; 0: none). */
  targetFeatures?: number;
  /** MDLM: with a draft head (config "draft_head"; block-causal). */
  draftHead?: boolean;
  /** MDLM: width of the target state its draft head reads at the first position (config "draft_head_features"; needs draftHead). */
  draftHeadFeatures?: number;
  /** MDLM: row i's logits predict token i + 1 (config "shift_logits"). */
  shiftLogits?: boolean;
  /** MDLM: the AR drafter's layout, learned positions and attention biases (configs "learned_positions", "attention_bias"). */
  arLayout?: boolean;
}

/** Random F32 tensors of the given shapes; LayerNorm-like weights (`ones`) sit around 1. */
export function randomTensors(shapes: Record<string, number[]>, seed: number, scale: number, ones: (n: string) => boolean): Record<string, TensorToWrite & { data: Float32Array }> {
  const out: Record<string, TensorToWrite & { data: Float32Array }> = {};
  let s = seed * 1000;
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = ones(name) ? randn(n, s++, 0.1).map((v) => 1 + v) : randn(n, s++, scale);
    out[name] = { dtype: 'F32', shape, data };
  }
  return out;
}

/** Tensor shapes of a GPT-2 checkpoint in HF key names (Conv1D weights [in, out]). */
export function gpt2Shapes(V: number, d: number, layers: number, positions: number): Record<string, number[]> {
  const shapes: Record<string, number[]> = { 'wte.weight': [V, d], 'wpe.weight': [positions, d], 'ln_f.weight': [d], 'ln_f.bias': [d] };
  for (let i = 0; i < layers; i++) {
    Object.assign(shapes, {
      [`h.${i}.ln_1.weight`]: [d], [`h.${i}.ln_1.bias`]: [d],
      [`h.${i}.attn.c_attn.weight`]: [d, 3 * d], [`h.${i}.attn.c_attn.bias`]: [3 * d],
      [`h.${i}.attn.c_proj.weight`]: [d, d], [`h.${i}.attn.c_proj.bias`]: [d],
      [`h.${i}.ln_2.weight`]: [d], [`h.${i}.ln_2.bias`]: [d],
      [`h.${i}.mlp.c_fc.weight`]: [d, 4 * d], [`h.${i}.mlp.c_fc.bias`]: [4 * d],
      [`h.${i}.mlp.c_proj.weight`]: [4 * d, d], [`h.${i}.mlp.c_proj.bias`]: [d],
    });
  }
  return shapes;
}

/** Tensor shapes of an MDLM (mdlm-owt layout) checkpoint with V ids (mask included) and conditioning size c. */
export function mdlmShapes(V: number, d: number, layers: number, c: number): Record<string, number[]> {
  const shapes: Record<string, number[]> = {
    'backbone.vocab_embed.embedding': [V, d],
    'backbone.sigma_map.mlp.0.weight': [c, 256], 'backbone.sigma_map.mlp.0.bias': [c],
    'backbone.sigma_map.mlp.2.weight': [c, c], 'backbone.sigma_map.mlp.2.bias': [c],
    'backbone.output_layer.norm_final.weight': [d],
    'backbone.output_layer.linear.weight': [V, d], 'backbone.output_layer.linear.bias': [V],
    'backbone.output_layer.adaLN_modulation.weight': [2 * d, c], 'backbone.output_layer.adaLN_modulation.bias': [2 * d],
  };
  for (let i = 0; i < layers; i++) {
    const p = `backbone.blocks.${i}`;
    Object.assign(shapes, {
      [`${p}.norm1.weight`]: [d], [`${p}.attn_qkv.weight`]: [3 * d, d], [`${p}.attn_out.weight`]: [d, d],
      [`${p}.norm2.weight`]: [d], [`${p}.mlp.0.weight`]: [4 * d, d], [`${p}.mlp.0.bias`]: [4 * d],
      [`${p}.mlp.2.weight`]: [d, 4 * d], [`${p}.mlp.2.bias`]: [d],
      [`${p}.adaLN_modulation.weight`]: [6 * d, c], [`${p}.adaLN_modulation.bias`]: [6 * d],
    });
  }
  return shapes;
}

export async function tinyGPT2(device: Device, spec: TinySpec): Promise<GPT2> {
  const { vocab: V, d = 32, layers = 2, heads = 2, positions = 64, seed, scale = 0.3 } = spec;
  const shapes = gpt2Shapes(V, d, layers, positions);
  const bytes = writeSafetensors(randomTensors(shapes, seed, scale, (n) => /ln_.*weight$/.test(n)));
  const config = parseGPT2Config({ model_type: 'gpt2', vocab_size: V, n_positions: positions, n_embd: d, n_layer: layers, n_head: heads });
  return GPT2.load(device, await openSafetensors(memorySource(bytes, `tiny-gpt2-${seed}`)), config, { dtype: 'f32' });
}

/** The tensors a draft head adds to an MDLM of mdlmShapes(V, d, _, c): token_proj, feature_proj if `features`, one block. */
export function draftHeadShapes(V: number, d: number, c: number, features = 0): Record<string, number[]> {
  const shapes: Record<string, number[]> = { 'backbone.draft_head.token_proj.weight': [d, d] };
  if (features) shapes['backbone.draft_head.feature_proj.weight'] = [d, features];
  for (const [k, shape] of Object.entries(mdlmShapes(V, d, 1, c))) if (k.startsWith('backbone.blocks.0.')) shapes[k.replace('backbone.blocks.0.', 'backbone.draft_head.block.')] = shape;
  return shapes;
}

/** vocab = the target's vocabulary; the MDLM gets one more id, its mask. */
export async function tinyMDLM(device: Device, spec: TinySpec): Promise<MDLM> {
  const { vocab, d = 32, layers = 2, heads = 2, positions = 64, seed, scale = 0.3, targetFeatures = 0, draftHead = false, draftHeadFeatures = 0, shiftLogits = false, arLayout = false } = spec;
  const V = vocab + 1;
  const c = 16;
  const shapes = mdlmShapes(V, d, layers, c);
  if (arLayout) {
    shapes['backbone.pos_embed.weight'] = [positions, d];
    for (let i = 0; i < layers; i++) Object.assign(shapes, { [`backbone.blocks.${i}.attn_qkv.bias`]: [3 * d], [`backbone.blocks.${i}.attn_out.bias`]: [d] });
  }
  if (targetFeatures) shapes['backbone.feature_proj.weight'] = [d, targetFeatures];
  if (draftHead) {
    Object.assign(shapes, draftHeadShapes(V, d, c, draftHeadFeatures));
  }
  const bytes = writeSafetensors(randomTensors(shapes, seed, scale, (n) => /norm.*weight$/.test(n)));
  const config = parseMDLMConfig({
    model_type: 'mdlm', vocab_size: V, hidden_dim: d, n_blocks: layers, n_heads: heads, cond_dim: c, model_length: positions, time_conditioning: false,
    ...(targetFeatures ? { target_features: targetFeatures } : {}),
    ...(draftHead ? { draft_head: true, block_causal: true } : {}),
    ...(draftHeadFeatures ? { draft_head_features: draftHeadFeatures } : {}),
    ...(shiftLogits ? { shift_logits: true } : {}),
    ...(arLayout ? { learned_positions: true, attention_bias: true } : {}),
  });
  return MDLM.load(device, await openSafetensors(memorySource(bytes, `tiny-mdlm-${seed}`)), config, { dtype: 'f32' });
}
