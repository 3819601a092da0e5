/**
 * MDLM (kuleshov-group/mdlm DiT backbone, mdlm-owt layout) on the tensor runtime.
 *
 * With time_conditioning false the conditioning vector c = SiLU(sigma_map(0)) is a constant,
 * so every adaLN modulation is a constant too. It is folded into the weights at load:
 *   LN(x)·w·(1 + scale) + shift   →  LayerNorm with weight w·(1 + scale) and bias shift
 *   x + gate ⊙ (o·Wᵀ)             →  x + o·(diag(gate)·W)ᵀ
 * leaving a plain pre-LN transformer with rotary, bidirectional attention. SUBS's
 * "mask logit −= 1e6" is folded into the output bias the same way.
 */
import type { Device } from '../tensor/device.js';
import { Tensor } from '../tensor/tensor.js';
import { embedding } from '../tensor/ops/gather.js';
import { matmul } from '../tensor/ops/matmul.js';
import { layerNorm, logSoftmax } from '../tensor/ops/rowwise.js';
import { appendQKV, attention, KVCache, LayerKVCaches, ropeTable, type AttentionOptions } from '../tensor/ops/attention.js';
import { ConfigError, type MDLMConfig } from './config.js';
import type { Checkpoint } from './safetensors.js';
import { WeightReader, type WeightDType } from './weights.js';
import { checkTokenIds, ContextError } from './errors.js';
import type { ModelLoadOptions } from './gpt2.js';
import type { MatmulSignature } from '../tensor/tune.js';

/** SUBS: the value that stands for log(0). */
export const NEG_INF = -1e6;

interface Norm {
  weight: Tensor;
  bias: Tensor;
}
interface Block {
  norm1: Norm; // modulated by (shift_msa, scale_msa)
  attn_qkv: Tensor; // (3d, d)
  attn_out: Tensor; // (d, d), rows scaled by gate_msa
  norm2: Norm; // modulated by (shift_mlp, scale_mlp)
  mlp0: { w: Tensor; b: Tensor }; // (4d, d)
  mlp2: { w: Tensor; b: Tensor }; // (d, 4d), scaled by gate_mlp
}

/** c = SiLU(Linear(SiLU(Linear([cos σf, sin σf])))), f_i = 10000^(−i/128): computed on the CPU once. */
export function conditioning(sigma: number, w0: Float32Array, b0: Float32Array, w2: Float32Array, b2: Float32Array, cond: number): Float64Array {
  const half = 128;
  const freq = new Float64Array(2 * half);
  for (let i = 0; i < half; i++) {
    const f = Math.exp((-Math.log(10000) * i) / half);
    freq[i] = Math.cos(sigma * f);
    freq[half + i] = Math.sin(sigma * f);
  }
  const silu = (v: number) => v / (1 + Math.exp(-v));
  const h = linearHost(w0, b0, freq, cond).map(silu);
  return linearHost(w2, b2, h, cond).map(silu);
}

/** y = W·x + b for a PyTorch Linear weight W [out, in]. */
function linearHost(w: Float32Array, b: Float32Array, x: Float64Array, out: number): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b[o];
    for (let i = 0; i < n; i++) s += w[o * n + i] * x[i];
    y[o] = s;
  }
  return y;
}

function scaleRows(w: Float32Array, gate: Float64Array): Float32Array {
  const cols = w.length / gate.length;
  const out = new Float32Array(w.length);
  for (let r = 0; r < gate.length; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = w[r * cols + c] * gate[r];
  return out;
}

/** Keys and values of a block-causal MDLM's context, one cache per block. */
export type MDLMCache = LayerKVCaches;

export class MDLM {
  private constructor(
    readonly device: Device,
    readonly config: MDLMConfig,
    private readonly vocab_embed: Tensor, // (V, d)
    private readonly blocks: Block[],
    private readonly norm_final: Norm, // modulated by the final (shift, scale)
    private readonly linear: { w: Tensor; b: Tensor }, // (V, d), bias with the mask logit at −1e6
    private readonly rope: Tensor, // (model_length, hd/2, 2)
    private readonly feature_proj: Tensor | null, // (d, target_features): reads the target's hidden states
  ) {}

  static async load(device: Device, ckpt: Checkpoint, config: MDLMConfig, opts: ModelLoadOptions = {}): Promise<MDLM> {
    if (config.timeConditioning) {
      throw new ConfigError(`${ckpt.name}: time_conditioning true is not supported (the drafter's conditioning is folded into its weights)`);
    }
    const dtype: WeightDType = opts.dtype ?? 'f32';
    const r = new WeightReader(ckpt, 'backbone.', opts.onProgress);
    const { nBlocks } = config;
    const blockKeys = ['norm1.weight', 'attn_qkv.weight', 'attn_out.weight', 'norm2.weight', 'mlp.0.weight', 'mlp.0.bias', 'mlp.2.weight', 'mlp.2.bias', 'adaLN_modulation.weight', 'adaLN_modulation.bias'];
    const expected = [
      ...(config.targetFeatures ? ['feature_proj.weight'] : []),
      'vocab_embed.embedding',
      'sigma_map.mlp.0.weight',
      'sigma_map.mlp.0.bias',
      'sigma_map.mlp.2.weight',
      'sigma_map.mlp.2.bias',
      'output_layer.norm_final.weight',
      'output_layer.linear.weight',
      'output_layer.linear.bias',
      'output_layer.adaLN_modulation.weight',
      'output_layer.adaLN_modulation.bias',
      ...Array.from({ length: nBlocks }, (_, i) => blockKeys.map((k) => `blocks.${i}.${k}`)).flat(),
    ].map((k) => r.key(k));
    ckpt.checkTensorSet(expected, [r.key('rotary_emb.inv_freq')]);
    try {
      return await MDLM.loadChecked(device, r, config, dtype);
    } catch (e) {
      r.disposeAll();
      throw e;
    }
  }

  private static async loadChecked(device: Device, r: WeightReader, config: MDLMConfig, dtype: WeightDType): Promise<MDLM> {
    const { hiddenDim: d, nBlocks, condDim, vocabSize: V, nHeads, modelLength } = config;

    const c = conditioning(
      0,
      await r.host('sigma_map.mlp.0.weight', [condDim, 256]),
      await r.host('sigma_map.mlp.0.bias', [condDim]),
      await r.host('sigma_map.mlp.2.weight', [condDim, condDim]),
      await r.host('sigma_map.mlp.2.bias', [condDim]),
      condDim,
    );
    const modulation = async (prefix: string, chunks: number) => {
      const m = linearHost(await r.host(`${prefix}.adaLN_modulation.weight`, [chunks * d, condDim]), await r.host(`${prefix}.adaLN_modulation.bias`, [chunks * d]), c, chunks * d);
      return Array.from({ length: chunks }, (_, i) => m.subarray(i * d, (i + 1) * d));
    };
    const modulatedNorm = async (name: string, shift: Float64Array, scale: Float64Array): Promise<Norm> => {
      const w = await r.host(name, [d]);
      const weight = w.map((v, i) => v * (1 + scale[i]));
      const bias = Float32Array.from(shift);
      r.checkFinite(`${r.key(name)} (modulated)`, weight);
      r.checkFinite(`${r.key(name)} (shift)`, bias);
      return { weight: r.track(Tensor.from(device, weight, [d])), bias: r.track(Tensor.from(device, bias, [d])) };
    };

    const blocks: Block[] = [];
    for (let i = 0; i < nBlocks; i++) {
      const p = `blocks.${i}`;
      const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = await modulation(p, 6);
      blocks.push({
        norm1: await modulatedNorm(`${p}.norm1.weight`, shiftMsa, scaleMsa),
        attn_qkv: await r.gpu(device, `${p}.attn_qkv.weight`, [3 * d, d], dtype),
        attn_out: await r.gpu(device, `${p}.attn_out.weight`, [d, d], dtype, (w) => scaleRows(w, gateMsa)),
        norm2: await modulatedNorm(`${p}.norm2.weight`, shiftMlp, scaleMlp),
        mlp0: { w: await r.gpu(device, `${p}.mlp.0.weight`, [4 * d, d], dtype), b: await r.gpu(device, `${p}.mlp.0.bias`, [4 * d]) },
        mlp2: {
          w: await r.gpu(device, `${p}.mlp.2.weight`, [d, 4 * d], dtype, (w) => scaleRows(w, gateMlp)),
          b: await r.gpu(device, `${p}.mlp.2.bias`, [d], 'f32', (b) => b.map((v, j) => v * gateMlp[j])),
        },
      });
    }
    const [shift, scale] = await modulation('output_layer', 2);
    const normFinal = await modulatedNorm('output_layer.norm_final.weight', shift, scale);
    const mask = config.maskTokenId;
    const linear = {
      w: await r.gpu(device, 'output_layer.linear.weight', [V, d], dtype),
      b: await r.gpu(device, 'output_layer.linear.bias', [V], 'f32', (b) => b.map((v, j) => (j === mask ? v + NEG_INF : v))),
    };
    const vocabEmbed = await r.gpu(device, 'vocab_embed.embedding', [V, d], dtype);
    const rope = r.track(ropeTable(device, modelLength, d / nHeads));
    const featureProj = config.targetFeatures ? await r.gpu(device, 'feature_proj.weight', [d, config.targetFeatures], dtype) : null;
    return new MDLM(device, config, vocabEmbed, blocks, normFinal, linear, rope, featureProj);
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  get maskTokenId(): number {
    return this.config.maskTokenId;
  }

  /**
   * The matmuls one draft pass over `context` tokens and γ masks runs (for autotuning): every
   * block's at context + γ rows, the vocabulary projection at the γ masked rows.
   */
  matmulSignatures(gamma: number, context: number): MatmulSignature[] {
    const { hiddenDim: d, vocabSize: V } = this.config;
    const dtype = this.linear.w.dtype as 'f32' | 'f16';
    const rows = context + gamma;
    const nk = (rows: number, K: number, N: number): MatmulSignature => ({ layout: 'nk', dtype, rows, K, N });
    const features = this.config.targetFeatures ? [nk(rows, this.config.targetFeatures, d)] : [];
    return [...features, nk(rows, d, 3 * d), nk(rows, d, d), nk(rows, d, 4 * d), nk(rows, 4 * d, d), nk(gamma, d, V)];
  }

  /**
   * Logits [positions, V] at the given positions of the sequence `ids`, with SUBS's mask-logit
   * offset applied (so the mask token gets ~zero probability). The vocabulary projection is
   * computed only at those positions. `features` (L, target_features): the target's hidden state
   * that predicted each token (zero rows where there is none); omitted, none anywhere.
   */
  logits(ids: ArrayLike<number> | Tensor, positions: ArrayLike<number>, features?: Tensor): Tensor {
    const L = this.checkInput(ids, positions, 'MDLM.logits', features);
    if (L > this.config.modelLength) throw new ContextError(`MDLM.logits: ${L} tokens exceed the model length of ${this.config.modelLength}`);
    return this.device.scope(() => {
      const kv = this.newKV(L); // one cache reused by every block
      const out = this.forward(ids, positions, () => {
        kv.truncate(0);
        return kv;
      }, { causal: false }, features);
      kv.dispose();
      return out;
    });
  }

  /** Per-block caches of keys and values for block-causal drafting (capacity: the model length). */
  createCache(): MDLMCache {
    return new LayerKVCaches(Array.from({ length: this.config.nBlocks }, () => this.newKV(this.config.modelLength)));
  }

  /**
   * Block-causal pass over `ids` appended at the end of `cache`: the first ids.length − block
   * rows are context, which attends causally and whose keys and values stay in the cache; the
   * last `block` rows (the masked draft) attend to every position, and their keys and values are
   * dropped afterwards. Logits [positions, V] at the given indices into `ids`, SUBS offset applied;
   * `features` as in logits().
   */
  logitsCached(ids: ArrayLike<number> | Tensor, cache: MDLMCache, block: number, positions: ArrayLike<number>, features?: Tensor): Tensor {
    const L = this.checkInput(ids, positions, 'MDLM.logitsCached', features);
    if (!Number.isInteger(block) || block < 0 || block > L) throw new RangeError(`MDLM.logitsCached: block of ${block} rows outside 0..${L}`);
    const base = cache.length;
    if (base + L > this.config.modelLength) {
      throw new ContextError(`MDLM.logitsCached: ${base} cached + ${L} new positions exceed the model length of ${this.config.modelLength}`);
    }
    const out = this.device.scope(() => this.forward(ids, positions, (i) => cache.layers[i], { causal: true, bidirectionalTail: block }, features));
    cache.truncate(base + L - block);
    return out;
  }

  private checkInput(ids: ArrayLike<number> | Tensor, positions: ArrayLike<number>, op: string, features?: Tensor): number {
    const L = ids instanceof Tensor ? ids.size : ids.length;
    if (!(ids instanceof Tensor)) checkTokenIds(ids, this.config.vocabSize, op);
    if (L === 0) throw new RangeError(`${op}: no tokens`);
    if (features) {
      const width = this.config.targetFeatures;
      if (!width) throw new RangeError(`${op}: this MDLM reads no target features (its config has no "target_features")`);
      if (features.shape.length !== 2 || features.shape[0] !== L || features.shape[1] !== width) {
        throw new RangeError(`${op}: features must be [${L}, ${width}], got [${features.shape}]`);
      }
    }
    checkTokenIds(positions, L, `${op} positions`);
    return L;
  }

  private newKV(capacity: number): KVCache {
    const { nHeads, hiddenDim: d } = this.config;
    return new KVCache(this.device, nHeads, capacity, d / nHeads);
  }

  /** The DiT: block i appends its keys and values to kvFor(i) (at positions from its length on). */
  private forward(ids: ArrayLike<number> | Tensor, positions: ArrayLike<number>, kvFor: (block: number) => KVCache, attn: AttentionOptions, features?: Tensor): Tensor {
    const tokens = ids instanceof Tensor ? ids : Tensor.from(this.device, Int32Array.from(ids), [ids.length]);
    let x = embedding(this.vocab_embed, tokens); // (L, d)
    if (features && this.feature_proj) x = matmul(features, this.feature_proj, { layout: 'nk', residual: x });
    this.blocks.forEach((b, i) => {
      const kv = kvFor(i);
      const q = appendQKV(matmul(layerNorm(x, b.norm1), b.attn_qkv, { layout: 'nk' }), kv, this.rope);
      x = matmul(attention(q, kv, attn), b.attn_out, { layout: 'nk', residual: x });
      const h = matmul(layerNorm(x, b.norm2), b.mlp0.w, { layout: 'nk', bias: b.mlp0.b, gelu: true });
      x = matmul(h, b.mlp2.w, { layout: 'nk', bias: b.mlp2.b, residual: x });
    });
    const rows = embedding(x, Tensor.from(this.device, Int32Array.from(positions), [positions.length])); // (P, d)
    return matmul(layerNorm(rows, this.norm_final), this.linear.w, { layout: 'nk', bias: this.linear.b });
  }

  /**
   * SUBS log-probabilities [positions, V]: log-softmax of the logits at masked inputs; at
   * unmasked inputs the token is carried over (0 at the input token, −1e6 elsewhere).
   * σ is ignored, as in MDLM with time_conditioning false.
   */
  logProbs(ids: ArrayLike<number>, positions: ArrayLike<number>, _sigma = 0): Tensor {
    const lp = this.device.scope(() => logSoftmax(this.logits(ids, positions)));
    const V = this.config.vocabSize;
    for (let r = 0; r < positions.length; r++) {
      const token = ids[positions[r]];
      if (token === this.maskTokenId) continue;
      const row = new Float32Array(V).fill(NEG_INF);
      row[token] = 0;
      this.device.upload(lp.buffer, r * V * 4, row);
    }
    return lp;
  }

  dispose(): void {
    const ts: Tensor[] = [this.vocab_embed, this.rope, this.norm_final.weight, this.norm_final.bias, this.linear.w, this.linear.b];
    if (this.feature_proj) ts.push(this.feature_proj);
    for (const b of this.blocks) ts.push(b.norm1.weight, b.norm1.bias, b.attn_qkv, b.attn_out, b.norm2.weight, b.norm2.bias, b.mlp0.w, b.mlp0.b, b.mlp2.w, b.mlp2.b);
    for (const t of ts) t.dispose();
  }
}
