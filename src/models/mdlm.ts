/**
 * MDLM (kuleshov-group/mdlm DiT backbone, mdlm-owt layout) on the tensor runtime.
 *
 * With time_conditioning false the conditioning vector c = SiLU(sigma_map(0)) is a constant,
 * so every adaLN modulation is a constant too. It is folded into the weights at load:
 *   LN(x)·w·(1 + scale) + shift   →  LayerNorm with weight w·(1 + scale) and bias shift
 *   x + gate ⊙ (o·Wᵀ)             →  x + o·(diag(gate)·W)ᵀ
 * leaving a plain pre-LN transformer with rotary (or learned) positions and bidirectional attention. SUBS's
 * "mask logit −= 1e6" is folded into the output bias the same way.
 */
import type { Device } from '../tensor/device.js';
import { Tensor } from '../tensor/tensor.js';
import { concat, embedding, slice } from '../tensor/ops/gather.js';
import type { IdRows } from '../tensor/ops/rows.js';
import { add } from '../tensor/ops/elementwise.js';
import { matmul } from '../tensor/ops/matmul.js';
import { embeddingAddLayerNorm, layerNorm, logSoftmax } from '../tensor/ops/rowwise.js';
import { appendQKV, attention, KVCache, LayerKVCaches, ropeTable, ropeTableAt, type AttentionOptions } from '../tensor/ops/attention.js';
import { MAX_TREE_ROWS } from '../shaders/attention.js';
import { ConfigError, type MDLMConfig } from './config.js';
import type { Checkpoint } from './safetensors.js';
import { defaultWeightDType, F16_MAX, tensorsIn, WeightReader, type WeightDType } from './weights.js';
import { checkTokenIds, ContextError } from './errors.js';
import type { ModelLoadOptions } from './gpt2.js';
import type { KernelSpec } from '../tensor/kernels.js';
import type { MatmulSignature } from '../tensor/tune.js';
import { keyNames, keysOf, tensor, type Keys, type TensorKey } from './keys.js';

/** SUBS: the value that stands for log(0). */
export const NEG_INF = -1e6;
/** Frequencies of the σ embedding: it is [cos σf_i, sin σf_i] over i < SIGMA_FREQUENCIES. */
export const SIGMA_FREQUENCIES = 128;
/** Width of the σ embedding, the input of sigma_map's first Linear (256). */
export const SIGMA_EMBEDDING = 2 * SIGMA_FREQUENCIES;
/** The longest period of the σ embedding's frequencies (f_i = SIGMA_MAX_PERIOD^(−i/SIGMA_FREQUENCIES)). */
export const SIGMA_MAX_PERIOD = 10000;
/** Width of the MLP of a DiT block, in hidden sizes. */
export const MLP_RATIO = 4;
/** A block's adaLN modulation: shift, scale and gate, for the attention and for the MLP. */
export const BLOCK_MODULATIONS = 6;
/** The output layer's adaLN modulation: shift and scale. */
export const FINAL_MODULATIONS = 2;

interface Norm {
  weight: Tensor;
  bias: Tensor;
}
interface Linear {
  w: Tensor; // (out, in)
  b: Tensor;
}
interface Block {
  norm1: Norm; // modulated by (shift_msa, scale_msa)
  attn_qkv: Tensor; // (3d, d)
  attn_qkv_bias: Tensor | null; // (3d): "attention_bias"
  attn_out: Tensor; // (d, d), rows scaled by gate_msa
  attn_out_bias: Tensor | null; // (d), scaled by gate_msa
  norm2: Norm; // modulated by (shift_mlp, scale_mlp)
  mlp: { 0: Linear; 2: Linear }; // (4d, d) and (d, 4d), the second scaled by gate_mlp
}

/** The DiT backbone's tensors (PyTorch Linear weights [out, in]), keyed as in mdlm-owt's checkpoint under `backbone.`. */
function backboneLayout(config: MDLMConfig) {
  const { hiddenDim: d, nBlocks, condDim, vocabSize: V, modelLength, targetFeatures, draftHead, draftHeadFeatures, learnedPositions, attentionBias } = config;
  const linear = (inputs: number, outputs: number) => ({ weight: tensor(outputs, inputs), bias: tensor(outputs) });
  // The draft head's block never has attention biases.
  const block = (biased = false) => ({
    norm1: { weight: tensor(d) },
    attn_qkv: biased ? linear(d, 3 * d) : { weight: tensor(3 * d, d) },
    attn_out: biased ? linear(d, d) : { weight: tensor(d, d) },
    norm2: { weight: tensor(d) },
    mlp: { 0: linear(d, MLP_RATIO * d), 2: linear(MLP_RATIO * d, d) },
    adaLN_modulation: linear(condDim, BLOCK_MODULATIONS * d),
  });
  return {
    ...(targetFeatures ? { feature_proj: { weight: tensor(d, targetFeatures) } } : {}),
    vocab_embed: { embedding: tensor(V, d) },
    ...(learnedPositions ? { pos_embed: { weight: tensor(modelLength, d) } } : {}),
    sigma_map: { mlp: { 0: linear(SIGMA_EMBEDDING, condDim), 2: linear(condDim, condDim) } },
    output_layer: {
      norm_final: { weight: tensor(d) },
      linear: linear(d, V),
      adaLN_modulation: linear(condDim, FINAL_MODULATIONS * d),
    },
    blocks: Array.from({ length: nBlocks }, () => block(attentionBias)),
    ...(draftHead
      ? {
          draft_head: {
            token_proj: { weight: tensor(d, d) },
            ...(draftHeadFeatures ? { feature_proj: { weight: tensor(d, draftHeadFeatures) } } : {}),
            block: block(),
          },
        }
      : {}),
  };
}
type BackboneKeys = Keys<ReturnType<typeof backboneLayout>>;
type BlockKeys = BackboneKeys['blocks'][number] | NonNullable<BackboneKeys['draft_head']>['block'];
/** A buffer some exports save beside the weights; the rotary table is recomputed instead. */
const ROTARY_INV_FREQ = 'rotary_emb.inv_freq';

/** c = SiLU(Linear(SiLU(Linear([cos σf, sin σf])))), f_i = 10000^(−i/128): computed on the CPU once. */
export function conditioning(sigma: number, w0: Float32Array, b0: Float32Array, w2: Float32Array, b2: Float32Array, cond: number): Float64Array {
  const half = SIGMA_FREQUENCIES;
  const freq = new Float64Array(SIGMA_EMBEDDING);
  for (let i = 0; i < half; i++) {
    const f = Math.exp((-Math.log(SIGMA_MAX_PERIOD) * i) / half);
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

export interface MDLMLoadOptions extends ModelLoadOptions {
  /**
   * Called with the kernels the load itself dispatches (the draft head's fold) before it dispatches them, and awaited:
   * a load beside a generation compiles them on helper devices (Device.warmupInBackground), so that their first
   * runs do not hold up the generation's queue. A failure here is left to those first runs.
   */
  compileFirst?: (kernels: KernelSpec[]) => Promise<unknown>;
}

/**
 * The draft head's weights. Its input at a drafted position is the position's mask state plus token_proj (d, d)
 * of the embedding of the token before it; token_proj is folded into the embedding at load, so tokenTable (V, d)
 * holds every token's projected embedding and a head step gathers one row instead of running a matmul.
 * feature_proj (d, draft_head_features), if any, reads the target's state that predicted the last context token.
 */
interface DraftHead {
  tokenTable: Tensor;
  feature_proj: Tensor | null;
  block: Block;
}

/**
 * Rows of the draft head's fold per dispatch. A load beside a generation shares its queue, so the generation's
 * steps wait for one chunk, not for the whole (V, d)·(d, d) product (docs/performance.md, "Compiling kernels").
 */
export const FOLD_CHUNK_ROWS = 1024;

/**
 * vocab_embed · token_projᵀ (V, d): the draft head's token input for every token, computed on the GPU at load from
 * the embedding as stored, in chunks of rows read back one after another, checked and kept in the embedding's
 * dtype, so that a head step gathers it with the backbone's kernel. token_proj (named `name`) is freed; the table
 * is kept by `reader`.
 */
async function projectedEmbedding(device: Device, vocabEmbed: Tensor, tokenProj: Tensor, reader: WeightReader, name: string, compileFirst?: MDLMLoadOptions['compileFirst']): Promise<Tensor> {
  const [V, d] = vocabEmbed.shape;
  // Equal chunks: a short last one could take another kernel (a gemv) and compile it.
  const chunks = Math.ceil(V / FOLD_CHUNK_ROWS);
  const rowsPerChunk = Math.ceil(V / chunks);
  const fold = (start: number) => {
    const rows = Math.min(rowsPerChunk, V - start);
    const ids = Tensor.from(device, Int32Array.from({ length: rows }, (_, i) => start + i), [rows]);
    return matmul(embedding(vocabEmbed, ids), tokenProj, { layout: 'nk' });
  };
  const values = new Float32Array(V * d);
  try {
    if (compileFirst) {
      try {
        await compileFirst(device.collectKernels(() => void fold(0)));
      } catch {
        // The fold's first run compiles what this did not.
      }
    }
    for (let start = 0; start < V; start += rowsPerChunk) {
      const part = device.scope(() => fold(start));
      try {
        values.set((await part.read()) as Float32Array, start * d);
      } finally {
        part.dispose();
      }
    }
  } finally {
    tokenProj.dispose();
  }
  reader.checkFinite(`${name} (folded into the embedding)`, values, vocabEmbed.dtype === 'f16' ? F16_MAX : undefined);
  return reader.track(Tensor.from(device, values, [V, d], vocabEmbed.dtype));
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
    private readonly linear: Linear, // (V, d), bias with the mask logit at −1e6
    private readonly rope: Tensor, // (model_length, hd/2, 2): the draft head's, and the backbone's without learned positions
    private readonly pos_embed: Tensor | null, // (model_length, d): "learned_positions"
    private readonly feature_proj: Tensor | null, // (d, target_features): reads the target's hidden states
    private readonly draft_head: DraftHead | null,
  ) {}

  static async load(device: Device, ckpt: Checkpoint, config: MDLMConfig, opts: MDLMLoadOptions = {}): Promise<MDLM> {
    if (config.timeConditioning) {
      throw new ConfigError(`${ckpt.name}: time_conditioning true is not supported (the drafter's conditioning is folded into its weights)`);
    }
    const dtype: WeightDType = opts.dtype ?? defaultWeightDType(device);
    const r = new WeightReader(ckpt, 'backbone.', opts.onProgress);
    const keys = keysOf(backboneLayout(config));
    ckpt.checkTensorSet(keyNames(keys).map((k) => r.key(k)), [r.key(ROTARY_INV_FREQ)]);
    try {
      return await MDLM.loadChecked(device, r, keys, config, dtype, opts.compileFirst);
    } catch (e) {
      r.disposeAll();
      throw e;
    }
  }

  private static async loadChecked(device: Device, r: WeightReader, keys: BackboneKeys, config: MDLMConfig, dtype: WeightDType, compileFirst: MDLMLoadOptions['compileFirst']): Promise<MDLM> {
    const { hiddenDim: d, condDim, nHeads, modelLength } = config;
    const host = (k: TensorKey) => r.host(k.name, k.shape);
    const gpu = (k: TensorKey, type: WeightDType = 'f32', transform?: (x: Float32Array) => Float32Array) => r.gpu(device, k.name, k.shape, type, transform);

    const sigma = keys.sigma_map.mlp;
    const c = conditioning(0, await host(sigma[0].weight), await host(sigma[0].bias), await host(sigma[2].weight), await host(sigma[2].bias), condDim);
    const modulation = async ({ weight, bias }: BackboneKeys['output_layer']['adaLN_modulation'], chunks: number) => {
      const m = linearHost(await host(weight), await host(bias), c, chunks * d);
      return Array.from({ length: chunks }, (_, i) => m.subarray(i * d, (i + 1) * d));
    };
    const modulatedNorm = async (k: TensorKey, shift: Float64Array, scale: Float64Array): Promise<Norm> => {
      const w = await host(k);
      const weight = w.map((v, i) => v * (1 + scale[i]));
      const bias = Float32Array.from(shift);
      r.checkFinite(`${r.key(k.name)} (modulated)`, weight);
      r.checkFinite(`${r.key(k.name)} (shift)`, bias);
      return { weight: r.track(Tensor.from(device, weight, [d])), bias: r.track(Tensor.from(device, bias, [d])) };
    };

    const loadBlock = async (k: BlockKeys): Promise<Block> => {
      const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = await modulation(k.adaLN_modulation, BLOCK_MODULATIONS);
      return {
        norm1: await modulatedNorm(k.norm1.weight, shiftMsa, scaleMsa),
        attn_qkv: await gpu(k.attn_qkv.weight, dtype),
        attn_qkv_bias: 'bias' in k.attn_qkv ? await gpu(k.attn_qkv.bias) : null,
        attn_out: await gpu(k.attn_out.weight, dtype, (w) => scaleRows(w, gateMsa)),
        attn_out_bias: 'bias' in k.attn_out ? await gpu(k.attn_out.bias, 'f32', (b) => b.map((v, j) => v * gateMsa[j])) : null,
        norm2: await modulatedNorm(k.norm2.weight, shiftMlp, scaleMlp),
        mlp: {
          0: { w: await gpu(k.mlp[0].weight, dtype), b: await gpu(k.mlp[0].bias) },
          2: { w: await gpu(k.mlp[2].weight, dtype, (w) => scaleRows(w, gateMlp)), b: await gpu(k.mlp[2].bias, 'f32', (b) => b.map((v, j) => v * gateMlp[j])) },
        },
      };
    };
    // The draft head's token table is folded on the GPU (a readback to check it) while the other weights load.
    const vocabEmbed = await gpu(keys.vocab_embed.embedding, dtype);
    const headKeys = keys.draft_head;
    const tokenTable = headKeys ? projectedEmbedding(device, vocabEmbed, await gpu(headKeys.token_proj.weight, dtype), r, r.key(headKeys.token_proj.weight.name), compileFirst) : null;
    // Its failure surfaces where it is awaited; a load failing before then waits for it, which leaves nothing allocated.
    tokenTable?.catch(() => undefined);
    try {
      const blocks: Block[] = [];
      for (const k of keys.blocks) blocks.push(await loadBlock(k));
      const out = keys.output_layer;
      const [shift, scale] = await modulation(out.adaLN_modulation, FINAL_MODULATIONS);
      const normFinal = await modulatedNorm(out.norm_final.weight, shift, scale);
      const mask = config.maskTokenId;
      const linear = {
        w: await gpu(out.linear.weight, dtype),
        b: await gpu(out.linear.bias, 'f32', (b) => b.map((v, j) => (j === mask ? v + NEG_INF : v))),
      };
      const rope = r.track(ropeTable(device, modelLength, d / nHeads));
      const posEmbed = keys.pos_embed ? await gpu(keys.pos_embed.weight) : null;
      const featureProj = keys.feature_proj ? await gpu(keys.feature_proj.weight, dtype) : null;
      const headWeights = headKeys
        ? { feature_proj: headKeys.feature_proj ? await gpu(headKeys.feature_proj.weight, dtype) : null, block: await loadBlock(headKeys.block) }
        : null;
      const head = headWeights && tokenTable ? { tokenTable: await tokenTable, ...headWeights } : null;
      return new MDLM(device, config, vocabEmbed, blocks, normFinal, linear, rope, posEmbed, featureProj, head);
    } catch (e) {
      await tokenTable?.catch(() => undefined);
      throw e;
    }
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
    return [...features, nk(rows, d, 3 * d), nk(rows, d, d), nk(rows, d, MLP_RATIO * d), nk(rows, MLP_RATIO * d, d), nk(gamma, d, V)];
  }

  /** The matmuls one draft-head step runs (for autotuning): one row through feature_proj (if any), the head's block and the output layer. */
  draftHeadMatmulSignatures(): MatmulSignature[] {
    const { hiddenDim: d, vocabSize: V, draftHeadFeatures } = this.config;
    const dtype = this.linear.w.dtype as 'f32' | 'f16';
    const nk = (K: number, N: number): MatmulSignature => ({ layout: 'nk', dtype, rows: 1, K, N });
    const features = draftHeadFeatures ? [nk(draftHeadFeatures, d)] : [];
    return [...features, nk(d, 3 * d), nk(d, d), nk(d, MLP_RATIO * d), nk(MLP_RATIO * d, d), nk(d, V)];
  }

  /**
   * Logits [positions, V] at the given positions of the sequence `ids`, with SUBS's mask-logit
   * offset applied (so the mask token gets ~zero probability). The vocabulary projection is
   * computed only at those positions. `features` (L, target_features): the target's hidden state
   * that predicted each token (zero rows where there is none); omitted, none anywhere.
   */
  logits(ids: ArrayLike<number> | Tensor, positions: ArrayLike<number>, features?: Tensor): Tensor {
    return this.device.scope(() => this.project(this.bidirectional(ids, positions, 'MDLM.logits', features)));
  }

  /** The final hidden states [positions, d] of a bidirectional pass (what the draft head reads); arguments as in logits(). */
  hiddenStates(ids: ArrayLike<number> | Tensor, positions: ArrayLike<number>, features?: Tensor): Tensor {
    return this.device.scope(() => this.bidirectional(ids, positions, 'MDLM.hiddenStates', features));
  }

  private bidirectional(ids: ArrayLike<number> | Tensor, positions: ArrayLike<number>, op: string, features?: Tensor): Tensor {
    const L = this.checkInput(ids, positions, op, features);
    if (L > this.config.modelLength) throw new ContextError(`${op}: ${L} tokens exceed the model length of ${this.config.modelLength}`);
    const kv = this.newKV(L); // one cache reused by every block
    const out = this.hidden(ids, positions, 0, () => {
      kv.truncate(0);
      return kv;
    }, { causal: false }, features);
    kv.dispose();
    return out;
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
    return this.device.scope(() => this.project(this.blockCausal(ids, cache, block, positions, 'MDLM.logitsCached', features)));
  }

  /** The final hidden states [positions, d] of a block-causal pass (what the draft head reads); arguments as in logitsCached(). */
  hiddenStatesCached(ids: ArrayLike<number> | Tensor, cache: MDLMCache, block: number, positions: ArrayLike<number>, features?: Tensor): Tensor {
    return this.device.scope(() => this.blockCausal(ids, cache, block, positions, 'MDLM.hiddenStatesCached', features));
  }

  private blockCausal(ids: ArrayLike<number> | Tensor, cache: MDLMCache, block: number, positions: ArrayLike<number>, op: string, features?: Tensor): Tensor {
    const L = this.checkInput(ids, positions, op, features);
    if (!Number.isInteger(block) || block < 0 || block > L) throw new RangeError(`${op}: block of ${block} rows outside 0..${L}`);
    const base = cache.length;
    if (base + L > this.config.modelLength) {
      throw new ContextError(`${op}: ${base} cached + ${L} new positions exceed the model length of ${this.config.modelLength}`);
    }
    const out = this.hidden(ids, positions, base, (i) => cache.layers[i], { causal: true, bidirectionalTail: block }, features);
    cache.truncate(base + L - block);
    return out;
  }

  /** The output layer's logits [rows, V] (SUBS offset applied) of final hidden states [rows, d] from hiddenStates*(). */
  logitsOfStates(states: Tensor): Tensor {
    const d = this.config.hiddenDim;
    if (states.shape.length !== 2 || states.shape[1] !== d) throw new RangeError(`MDLM.logitsOfStates: states must be [rows, ${d}], got [${states.shape}]`);
    return this.device.scope(() => this.project(states));
  }

  /** Keys and values of the draft head over one draft (capacity: the model length); truncate it to 0 before each draft. */
  createDraftHeadCache(): KVCache {
    if (!this.draft_head) throw new RangeError('MDLM.createDraftHeadCache: this MDLM has no draft head (its config has no "draft_head")');
    return this.newKV(this.config.modelLength);
  }

  /**
   * One head step of K drafts at once, all at the same draft position: row k reads `state` (the position's
   * mask state, [1, d]) and draft k's previous token (`previous`, K ids). The drafts share `cache`, K rows
   * per position (row k of position i at index i·K + k), and each row sees only its own draft's rows (tree
   * attention), at rotary position i, so each row's logits are those of draft k's own chain. At most
   * MAX_TREE_ROWS rows in the cache. `feature`: as draftHeadLogits, at the first position, for every draft.
   */
  draftHeadLogitsForDrafts(state: Tensor, previous: Tensor | IdRows, cache: KVCache, feature?: Tensor): Tensor {
    const head = this.draft_head;
    if (!head) throw new RangeError('MDLM.draftHeadLogitsForDrafts: this MDLM has no draft head (its config has no "draft_head")');
    const K = previous instanceof Tensor ? previous.size : previous.count;
    const position = cache.length / K;
    if ((previous instanceof Tensor ? previous : previous.tensor).dtype !== 'i32' || !Number.isInteger(position) || (position + 1) * K > MAX_TREE_ROWS) {
      throw new RangeError(`MDLM.draftHeadLogitsForDrafts: ${K} drafts' i32 tokens after ${cache.length} cached rows (a whole number of positions, at most ${MAX_TREE_ROWS} rows in all)`);
    }
    const d = this.config.hiddenDim;
    if (state.size !== d) throw new RangeError(`MDLM.draftHeadLogitsForDrafts: state must be [1, ${d}], got [${state.shape}]`);
    return this.device.scope(() => {
      // The state is every draft's: [1, d] added to each row.
      const input = embeddingAddLayerNorm(head.tokenTable, previous, state.reshape([1, d]), head.block.norm1);
      let [x, normed]: [Tensor, Tensor | undefined] = [input.sum, input.normed];
      if (position === 0 && feature && head.feature_proj) {
        x = matmul(embedding(feature.reshape([1, feature.size]), Tensor.from(this.device, new Int32Array(K), [K])), head.feature_proj, { layout: 'nk', residual: x });
        normed = undefined;
      }
      const masks = Tensor.from(this.device, Uint32Array.from({ length: K }, (_, k) => Array.from({ length: position + 1 }, (_, i) => 2 ** (i * K + k)).reduce((a, b) => a + b)), [K]);
      return this.project(this.block(head.block, x, cache, { causal: true, tree: masks, treeKeys: (position + 1) * K }, this.headRope(K), normed));
    });
  }

  /** Rotary tables of K drafts' shared head cache: row s at position ⌊s / K⌋. */
  private readonly headRopes = new Map<number, Tensor>();
  private headRope(K: number): Tensor {
    let t = this.headRopes.get(K);
    if (!t) {
      t = ropeTableAt(this.device, Array.from({ length: MAX_TREE_ROWS }, (_, s) => Math.floor(s / K)), this.config.hiddenDim / this.config.nHeads).keep();
      this.headRopes.set(K, t);
    }
    return t;
  }

  /**
   * The draft head at the next R positions of a draft: logits [R, V] (SUBS offset applied) from `states` [R, d],
   * the backbone's hidden states of those positions' masks, and `previous` i32 [R] (or R ids read in place from
   * rows of a draft's tokens), the token before each (the last context token at the first position). The head
   * attends causally over the draft's earlier positions in `cache` and over these, and appends them; its rotary
   * positions count from the draft's start.
   * A head with draft_head_features reads `feature` [1, width] at the draft's first position (when `cache` is
   * empty): the target's final hidden state that predicted the last context token.
   */
  draftHeadLogits(states: Tensor, previous: Tensor | IdRows, cache: KVCache, feature?: Tensor): Tensor {
    const head = this.draft_head;
    if (!head) throw new RangeError('MDLM.draftHeadLogits: this MDLM has no draft head (its config has no "draft_head")');
    const d = this.config.hiddenDim;
    const R = states.size / d;
    if (!Number.isInteger(R) || R < 1 || states.shape[states.shape.length - 1] !== d) throw new RangeError(`MDLM.draftHeadLogits: states must be [R, ${d}], got [${states.shape}]`);
    const [count, ids] = previous instanceof Tensor ? [previous.size, previous] : [previous.count, previous.tensor];
    if (count !== R || ids.dtype !== 'i32') throw new RangeError(`MDLM.draftHeadLogits: previous must be ${R} i32 token ids (one per state), got ${count} ${ids.dtype}`);
    const width = this.config.draftHeadFeatures;
    const first = cache.length === 0;
    if (feature && !width) throw new RangeError('MDLM.draftHeadLogits: this draft head reads no target feature (its config has no "draft_head_features")');
    if (width && first && !feature) throw new RangeError(`MDLM.draftHeadLogits: this draft head reads the target's hidden state at the draft's first position ("draft_head_features": ${width}); pass it`);
    if (feature && (feature.shape.length !== 2 || feature.shape[0] !== 1 || feature.shape[1] !== width)) {
      throw new RangeError(`MDLM.draftHeadLogits: feature must be [1, ${width}], got [${feature.shape}]`);
    }
    return this.device.scope(() => {
      const input = embeddingAddLayerNorm(head.tokenTable, previous, states.reshape([R, d]), head.block.norm1);
      let [x, normed]: [Tensor, Tensor | undefined] = [input.sum, input.normed];
      if (first && feature && head.feature_proj) {
        const projected = matmul(feature, head.feature_proj, { layout: 'nk', residual: slice(x, 0, 1, 0) });
        x = R === 1 ? projected : concat([projected, slice(x, 1, R, 0)], 0);
        normed = undefined;
      }
      return this.project(this.block(head.block, x, cache, { causal: true }, this.rope, normed));
    });
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

  /**
   * The DiT's final hidden states [positions, d] of `ids` at sequence positions base, base + 1, ...:
   * block i appends its keys and values to kvFor(i), which holds the `base` positions before them.
   */
  private hidden(ids: ArrayLike<number> | Tensor, positions: ArrayLike<number>, base: number, kvFor: (block: number) => KVCache, attn: AttentionOptions, features?: Tensor): Tensor {
    const tokens = ids instanceof Tensor ? ids : Tensor.from(this.device, Int32Array.from(ids), [ids.length]);
    let x: Tensor; // (L, d)
    let normed: Tensor | undefined; // the first block's LayerNorm of x, where the input's dispatch made it
    if (this.pos_embed && this.vocab_embed.byteLength <= this.device.limits.maxStorageBufferBindingSize) {
      ({ sum: x, normed } = embeddingAddLayerNorm(this.vocab_embed, tokens, this.pos_embed, { ...this.blocks[0].norm1, residualRow: base }));
    } else {
      x = embedding(this.vocab_embed, tokens);
      if (this.pos_embed) x = add(x, slice(this.pos_embed, base, base + tokens.size, 0));
    }
    if (features && this.feature_proj) {
      x = matmul(features, this.feature_proj, { layout: 'nk', residual: x });
      normed = undefined;
    }
    const rope = this.pos_embed ? null : this.rope;
    this.blocks.forEach((b, i) => {
      x = this.block(b, x, kvFor(i), attn, rope, i === 0 ? normed : undefined);
    });
    return embedding(x, Tensor.from(this.device, Int32Array.from(positions), [positions.length])); // (P, d)
  }

  /**
   * One DiT block over x, appending its keys and values to kv; `rope` null: no rotary (learned positions).
   * `normed`: layerNorm(x, b.norm1) where the caller already has it.
   */
  private block(b: Block, x: Tensor, kv: KVCache, attn: AttentionOptions, rope: Tensor | null = this.rope, normed?: Tensor): Tensor {
    const q = appendQKV(matmul(normed ?? layerNorm(x, b.norm1), b.attn_qkv, { layout: 'nk', bias: b.attn_qkv_bias ?? undefined }), kv, rope ?? undefined);
    x = matmul(attention(q, kv, attn), b.attn_out, { layout: 'nk', bias: b.attn_out_bias ?? undefined, residual: x });
    const h = matmul(layerNorm(x, b.norm2), b.mlp[0].w, { layout: 'nk', bias: b.mlp[0].b, gelu: true });
    return matmul(h, b.mlp[2].w, { layout: 'nk', bias: b.mlp[2].b, residual: x });
  }

  /** The output layer: logits [rows, V] of final hidden states, SUBS offset applied. */
  private project(rows: Tensor): Tensor {
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
    for (const t of tensorsIn([this.vocab_embed, this.rope, this.pos_embed, this.norm_final, this.linear, this.feature_proj, this.blocks, this.draft_head])) t.dispose();
    for (const t of this.headRopes.values()) t.dispose();
    this.headRopes.clear();
  }
}
