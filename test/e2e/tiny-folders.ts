/**
 * Small random checkpoints written as Hugging Face folders (config.json + model.safetensors, and a
 * byte-level tokenizer for the target), for tests that load models the way users do: by URL or path.
 *
 * The vocabulary is the 256 GPT-2 byte tokens plus <|endoftext|>, with no merges. Both models are
 * nudged towards a few common letters so that the text reads as letters, not control bytes.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../../src/models/safetensors.js';

const EOS = 256;
const VOCAB = 257;
/** Favoured bytes: the space most, then letters by English frequency. */
const COMMON = ' etaoinshrdlu';

/** Per token id: how much its logit is raised. */
function boosts(strength: number): Float32Array {
  const b = new Float32Array(VOCAB);
  [...COMMON].forEach((c, i) => (b[c.charCodeAt(0)] = i === 0 ? strength : 0.6 * strength * (1 - i / (2 * COMMON.length))));
  return b;
}

/** Seeded normal samples (mulberry32 + Box–Muller). */
function randn(n: number, seed: number, scale: number): Float32Array {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(Math.max(uniform(), 1e-12))) * Math.cos(2 * Math.PI * uniform()) * scale;
  return out;
}

/** GPT-2's byte → printable character map (REFERENCE §3). */
function byteChars(): string[] {
  const chars: string[] = [];
  let next = 0x100;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars.push(String.fromCharCode(printable ? b : next++));
  }
  return chars;
}

function random(shapes: Record<string, number[]>, seed: number, isNormWeight: (name: string) => boolean): Record<string, TensorToWrite & { data: Float32Array }> {
  const out: Record<string, TensorToWrite & { data: Float32Array }> = {};
  let s = seed * 1000;
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = isNormWeight(name) ? randn(n, s++, 0.1).map((v) => 1 + v) : randn(n, s++, 0.3);
    out[name] = { dtype: 'F32', shape, data };
  }
  return out;
}

async function writeFolder(dir: string, config: object, tensors: Record<string, TensorToWrite>): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  await writeFile(join(dir, 'model.safetensors'), writeSafetensors(tensors));
}

export interface TinyFolders {
  target: string;
  drafter: string;
}

/** Writes root/target (GPT-2 + tokenizer), root/drafter-mdlm (MDLM) and root/prompt.txt. */
export async function writeTinyFolders(root: string, { d = 32, layers = 2, heads = 2, positions = 128, seed = 1, DRAFT_NOISE = 0.2 } = {}): Promise<TinyFolders> {
  const target = join(root, 'target');
  const drafter = join(root, 'drafter-mdlm');
  const bias = boosts(10);

  // GPT-2: logits = ln_f(x) · wteᵀ. Dimension 0 of row i is bias[i]/LIFT and ln_f's
  // bias puts LIFT there, so their logits rise by about bias[i] (the random part spreads about 2).
  const g: Record<string, number[]> = { 'wte.weight': [VOCAB, d], 'wpe.weight': [positions, d], 'ln_f.weight': [d], 'ln_f.bias': [d] };
  for (let i = 0; i < layers; i++) {
    Object.assign(g, {
      [`h.${i}.ln_1.weight`]: [d], [`h.${i}.ln_1.bias`]: [d],
      [`h.${i}.attn.c_attn.weight`]: [d, 3 * d], [`h.${i}.attn.c_attn.bias`]: [3 * d],
      [`h.${i}.attn.c_proj.weight`]: [d, d], [`h.${i}.attn.c_proj.bias`]: [d],
      [`h.${i}.ln_2.weight`]: [d], [`h.${i}.ln_2.bias`]: [d],
      [`h.${i}.mlp.c_fc.weight`]: [d, 4 * d], [`h.${i}.mlp.c_fc.bias`]: [4 * d],
      [`h.${i}.mlp.c_proj.weight`]: [4 * d, d], [`h.${i}.mlp.c_proj.bias`]: [d],
    });
  }
  const gt = random(g, seed, (n) => /ln_.*weight$/.test(n));
  const LIFT = 20;
  gt['ln_f.bias'].data.fill(0)[0] = LIFT; // no other constant per-token offset: the context picks the letter
  for (let t = 0; t < VOCAB; t++) gt['wte.weight'].data[t * d] = bias[t] / LIFT;
  await writeFolder(target, { model_type: 'gpt2', vocab_size: VOCAB, n_positions: positions, n_embd: d, n_layer: layers, n_head: heads, eos_token_id: EOS }, gt);
  const vocab: Record<string, number> = Object.fromEntries(byteChars().map((c, b) => [c, b]));
  vocab['<|endoftext|>'] = EOS;
  await writeFile(join(target, 'vocab.json'), JSON.stringify(vocab));
  await writeFile(join(target, 'merges.txt'), '#version: 0.2\n');

  // MDLM: the target's vocabulary plus its mask token; the output bias carries the same preference.
  const V = VOCAB + 1;
  const c = 16;
  const m: Record<string, number[]> = {
    'backbone.vocab_embed.embedding': [V, d],
    'backbone.sigma_map.mlp.0.weight': [c, 256], 'backbone.sigma_map.mlp.0.bias': [c],
    'backbone.sigma_map.mlp.2.weight': [c, c], 'backbone.sigma_map.mlp.2.bias': [c],
    'backbone.output_layer.norm_final.weight': [d],
    'backbone.output_layer.linear.weight': [V, d], 'backbone.output_layer.linear.bias': [V],
    'backbone.output_layer.adaLN_modulation.weight': [2 * d, c], 'backbone.output_layer.adaLN_modulation.bias': [2 * d],
  };
  for (let i = 0; i < layers; i++) {
    const p = `backbone.blocks.${i}`;
    Object.assign(m, {
      [`${p}.norm1.weight`]: [d], [`${p}.attn_qkv.weight`]: [3 * d, d], [`${p}.attn_out.weight`]: [d, d],
      [`${p}.norm2.weight`]: [d], [`${p}.mlp.0.weight`]: [4 * d, d], [`${p}.mlp.0.bias`]: [4 * d],
      [`${p}.mlp.2.weight`]: [d, 4 * d], [`${p}.mlp.2.bias`]: [d],
      [`${p}.adaLN_modulation.weight`]: [6 * d, c], [`${p}.adaLN_modulation.bias`]: [6 * d],
    });
  }
  const mt = random(m, seed + 1, (n) => /norm.*weight$/.test(n));
  mt['backbone.output_layer.linear.bias'].data.set(bias);
  mt['backbone.output_layer.linear.weight'].data.forEach((v, i, a) => (a[i] = v * DRAFT_NOISE));
  await writeFolder(drafter, { model_type: 'mdlm', vocab_size: V, hidden_dim: d, n_blocks: layers, n_heads: heads, cond_dim: c, model_length: positions, time_conditioning: false }, mt);

  await writeFile(join(root, 'prompt.txt'), 'The ship sailed\n');
  return { target, drafter };
}
