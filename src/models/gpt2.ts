/**
 * GPT-2 (HF GPT2LMHeadModel) on the tensor runtime. Pre-LN blocks, Conv1D weights [in, out],
 * learned positions, tied LM head (or lm_head.weight with tie_word_embeddings false). forward() appends tokens to a KV cache and returns logits
 * for the last rows: prefill (N tokens), decode (1) and verify (k drafted tokens, k rows).
 */
import type { Device } from '../tensor/device.js';
import { Tensor } from '../tensor/tensor.js';
import { add } from '../tensor/ops/elementwise.js';
import { embedding, slice } from '../tensor/ops/gather.js';
import { matmul } from '../tensor/ops/matmul.js';
import { embeddingAddLayerNorm, layerNorm } from '../tensor/ops/rowwise.js';
import { appendQKV, attention, KVCache, LayerKVCaches } from '../tensor/ops/attention.js';
import { MAX_TREE_ROWS } from '../shaders/attention.js';
import type { GPT2Config } from './config.js';
import type { MatmulSignature } from '../tensor/tune.js';
import type { Checkpoint, ProgressCallback } from './safetensors.js';
import { defaultWeightDType, tensorsIn, WeightReader, type WeightDType } from './weights.js';
import { ContextError, checkTokenIds } from './errors.js';
import { keyNames, keysOf, tensor, type Keys, type TensorKey } from './keys.js';

interface Linear {
  w: Tensor; // (out, in)
  b: Tensor;
}

interface Norm {
  weight: Tensor;
  bias: Tensor;
}
interface Block {
  ln_1: Norm;
  attn: { c_attn: Linear; c_proj: Linear };
  ln_2: Norm;
  mlp: { c_fc: Linear; c_proj: Linear };
}

/** HF GPT2Model's tensors, keyed as in its checkpoints (Conv1D weights [in, out]); `transformer.` in front in GPT2LMHeadModel files. */
function transformerLayout({ nEmbd: d, nLayer, nInner, vocabSize: V, nPositions }: GPT2Config) {
  const norm = { weight: tensor(d), bias: tensor(d) };
  const conv1d = (inputs: number, outputs: number) => ({ weight: tensor(inputs, outputs), bias: tensor(outputs) });
  return {
    wte: { weight: tensor(V, d) },
    wpe: { weight: tensor(nPositions, d) },
    ln_f: norm,
    h: Array.from({ length: nLayer }, () => ({
      ln_1: norm,
      attn: { c_attn: conv1d(d, 3 * d), c_proj: conv1d(d, d) },
      ln_2: norm,
      mlp: { c_fc: conv1d(d, nInner), c_proj: conv1d(nInner, d) },
    })),
  };
}
type TransformerKeys = Keys<ReturnType<typeof transformerLayout>>;

export interface ModelLoadOptions {
  /** Storage of the big matrices: 'f16' (the default) halves memory and bandwidth against 'f32', on any adapter. */
  dtype?: WeightDType;
  /** Called after each tensor is on the GPU, with checkpoint bytes loaded so far and in all. */
  onProgress?: ProgressCallback;
}

/** Where a token tree's rows sit and what they see (GPT2.forwardTree): depth below the root and ancestor bit mask (itself included) per row. */
export interface TokenTreeLayout {
  depths: readonly number[];
  ancestors: readonly number[];
}

/** One KV cache per layer, kept at the same length. */
export type GPT2Cache = LayerKVCaches;

/**
 * The target's final hidden states (ln_f output) by position, kept for a drafter that reads them
 * (config "target_features"). Row 0 stays zero and position p's state is row p + 1, so row i holds
 * the state that predicted token i, and row 0 stands for "none" (the first token, the masks).
 * Rows past the verified context are stale until a forward writes them again: no rollback needed.
 */
export class HiddenStates {
  readonly rows: Tensor; // (capacity + 1, d)

  constructor(device: Device, capacity: number, width: number) {
    this.rows = Tensor.empty(device, [capacity + 1, width]).keep();
    device.upload(this.rows.buffer, 0, new Float32Array(width));
  }

  get width(): number {
    return this.rows.shape[1];
  }

  dispose(): void {
    this.rows.dispose();
  }
}

export class GPT2 {
  private constructor(
    readonly device: Device,
    readonly config: GPT2Config,
    private readonly wte: Tensor, // (V, d): token embedding and tied LM head, [N, K] for the head
    private readonly wpe: Tensor, // (P, d)
    private readonly blocks: Block[],
    private readonly ln_f: Norm,
    private readonly lm_head: Tensor, // (V, d): wte when tied
  ) {}

  static async load(device: Device, ckpt: Checkpoint, config: GPT2Config, opts: ModelLoadOptions = {}): Promise<GPT2> {
    const dtype = opts.dtype ?? defaultWeightDType(device);
    const { vocabSize: V, nEmbd: d, tieWordEmbeddings } = config;
    const t = keysOf(transformerLayout(config), ckpt.has('wte.weight') ? '' : 'transformer.');
    // The untied head sits beside the transformer, never under its prefix.
    const head = keysOf({ lm_head: { weight: tensor(V, d) } }).lm_head;
    // Causal-mask buffers of older exports and an explicit (tied) lm_head are not weights we use.
    ckpt.checkTensorSet([...keyNames(t), ...(tieWordEmbeddings ? [] : [head.weight.name])], (n) => /(^|\.)attn\.(masked_)?bias$/.test(n) || n === head.weight.name);
    const r = new WeightReader(ckpt, '', opts.onProgress);
    const vec = (k: TensorKey) => r.gpu(device, k.name, k.shape);
    const norm = async (k: TransformerKeys['ln_f']): Promise<Norm> => ({ weight: await vec(k.weight), bias: await vec(k.bias) });
    // Conv1D stores W [in, out]; it is kept transposed, [out, in], so that each output's weights
    // are contiguous: the few-row kernels then reuse every activation load across four outputs.
    const linear = async ({ weight, bias }: { weight: TensorKey; bias: TensorKey }): Promise<Linear> => {
      const [k, n] = weight.shape;
      return { w: await r.gpuTransposed(device, weight.name, [k, n], dtype), b: await vec(bias) };
    };
    try {
      const wte = await r.gpu(device, t.wte.weight.name, t.wte.weight.shape, dtype);
      const wpe = await vec(t.wpe.weight);
      const blocks: Block[] = [];
      for (const h of t.h) {
        blocks.push({
          ln_1: await norm(h.ln_1),
          attn: { c_attn: await linear(h.attn.c_attn), c_proj: await linear(h.attn.c_proj) },
          ln_2: await norm(h.ln_2),
          mlp: { c_fc: await linear(h.mlp.c_fc), c_proj: await linear(h.mlp.c_proj) },
        });
      }
      const ln_f = await norm(t.ln_f);
      // nn.Linear stores (out, in) = (V, d): the layout the head already uses.
      const lm_head = tieWordEmbeddings ? wte : await r.gpu(device, head.weight.name, head.weight.shape, dtype);
      return new GPT2(device, config, wte, wpe, blocks, ln_f, lm_head);
    } catch (e) {
      r.disposeAll();
      throw e;
    }
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  /** The matmuls a forward of `rows` tokens runs (for autotuning). */
  matmulSignatures(rows: number): MatmulSignature[] {
    const { nEmbd: d, nInner, vocabSize } = this.config;
    const dtype = this.wte.dtype as 'f32' | 'f16';
    const nk = (K: number, N: number): MatmulSignature => ({ layout: 'nk', dtype, rows, K, N });
    return [nk(d, 3 * d), nk(d, d), nk(d, nInner), nk(nInner, d), nk(d, vocabSize)];
  }

  createCache(capacity = this.config.nPositions): GPT2Cache {
    if (capacity > this.config.nPositions) {
      throw new ContextError(`cache capacity ${capacity} exceeds the model's context of ${this.config.nPositions} positions`);
    }
    const { nLayer, nHead, nEmbd } = this.config;
    return new LayerKVCaches(Array.from({ length: nLayer }, () => new KVCache(this.device, nHead, capacity, nEmbd / nHead)));
  }

  createHiddenStates(capacity = this.config.nPositions): HiddenStates {
    return new HiddenStates(this.device, capacity, this.config.nEmbd);
  }

  /**
   * Appends `ids` at the cache's end and returns logits [logitRows, V] of the last `logitRows`
   * positions (1 for decoding; k + 1 to verify k drafted tokens). With `states`, every new
   * position's final hidden state is also written there.
   */
  forward(ids: ArrayLike<number> | Tensor, cache: GPT2Cache, logitRows = 1, states?: HiddenStates): Tensor {
    const n = ids instanceof Tensor ? ids.size : ids.length;
    if (n > 0 && !(logitRows >= 1 && logitRows <= n)) throw new RangeError(`GPT2.forward: logitRows ${logitRows} not in [1, ${n}]`);
    return this.run('GPT2.forward', ids, cache, logitRows, states)!;
  }

  /**
   * Appends a prompt's tokens at the cache's end (and, with `states`, their hidden states), as forward does,
   * for the steps that follow. A prompt of up to tuning.prefillOneRowAttention tokens runs the attention kernel
   * of one-token steps.
   */
  prefill(ids: ArrayLike<number>, cache: GPT2Cache, states?: HiddenStates): void {
    const oneRow = ids.length <= this.device.tuning.prefillOneRowAttention;
    this.run('GPT2.prefill', ids, cache, 0, states, undefined, oneRow ? 1 : undefined);
  }

  /**
   * Scores a token tree in one pass: appends its rows (`ids`, row 0 the root) at the cache's end and
   * returns logits [rows, V] of every row. Row i sits at position cache.length + tree.depths[i] and
   * attends to the cached positions and to the rows of its ancestors (bits of tree.ancestors[i]).
   * The caller keeps the accepted branch's positions afterwards (LayerKVCaches.keep).
   */
  forwardTree(ids: Tensor, cache: GPT2Cache, tree: TokenTreeLayout): Tensor {
    const n = ids.size;
    const depthsOk = tree.depths.length === n && tree.ancestors.length === n && tree.depths.every((d, i) => Number.isInteger(d) && d >= 0 && d <= i);
    if (!depthsOk) throw new RangeError(`GPT2.forwardTree: a tree of ${n} rows needs ${n} depths (each at most its row) and ${n} ancestor masks`);
    if (n > MAX_TREE_ROWS) throw new RangeError(`GPT2.forwardTree: a tree of ${n} rows exceeds ${MAX_TREE_ROWS}`);
    return this.run('GPT2.forwardTree', ids, cache, n, undefined, tree)!;
  }

  /** The pass of forward, prefill (logitRows 0: no output layer, nothing returned) and forwardTree. */
  private run(op: string, ids: ArrayLike<number> | Tensor, cache: GPT2Cache, logitRows: number, states?: HiddenStates, tree?: TokenTreeLayout, attentionRows?: number): Tensor | null {
    const n = ids instanceof Tensor ? ids.size : ids.length;
    const pos0 = cache.length;
    // Ids already on the GPU come from sampling, hence from the vocabulary.
    if (!(ids instanceof Tensor)) checkTokenIds(ids, this.config.vocabSize, op);
    if (n === 0) throw new RangeError(`${op}: no tokens`);
    if (pos0 + n > cache.capacity) {
      throw new ContextError(`${op}: ${pos0} cached + ${n} new tokens exceed the context of ${cache.capacity} positions`);
    }
    if (!(logitRows >= 0 && logitRows <= n)) throw new RangeError(`${op}: logitRows ${logitRows} not in [0, ${n}]`);
    const { layerNormEpsilon: eps, nEmbd: d } = this.config;
    if (states && (states.width !== d || states.rows.shape[0] < pos0 + n + 1)) {
      throw new RangeError(`${op}: hidden states [${states.rows.shape}] cannot hold positions up to ${pos0 + n} of width ${d}`);
    }
    return this.device.scope(() => {
      const tokens = ids instanceof Tensor ? ids : Tensor.from(this.device, Int32Array.from(ids), [n]);
      const mask = tree && Tensor.from(this.device, Uint32Array.from(tree.ancestors), [n]);
      let x: Tensor; // (n, d)
      let normed: Tensor | undefined; // the first block's ln_1 of x, where the input's dispatch made it
      if (!tree && this.wte.byteLength <= this.device.limits.maxStorageBufferBindingSize) {
        ({ sum: x, normed } = embeddingAddLayerNorm(this.wte, tokens, this.wpe, { ...this.blocks[0].ln_1, eps, residualRow: pos0 }));
      } else {
        const positions = tree
          ? embedding(this.wpe, Tensor.from(this.device, Int32Array.from(tree.depths, (depth) => pos0 + depth), [n]))
          : slice(this.wpe, pos0, pos0 + n, 0);
        x = add(embedding(this.wte, tokens), positions);
      }
      this.blocks.forEach((b, i) => {
        const kv = cache.layers[i];
        const { c_attn, c_proj } = b.attn;
        const h1 = i === 0 && normed ? normed : layerNorm(x, { ...b.ln_1, eps });
        const q = appendQKV(matmul(h1, c_attn.w, { layout: 'nk', bias: c_attn.b }), kv); // (n, d)
        x = matmul(attention(q, kv, { scale: this.attnScale(i), tree: mask, rowsPerWorkgroup: attentionRows }), c_proj.w, { layout: 'nk', bias: c_proj.b, residual: x });
        const { c_fc, c_proj: mlp_proj } = b.mlp;
        const h = matmul(layerNorm(x, { ...b.ln_2, eps }), c_fc.w, { layout: 'nk', bias: c_fc.b, gelu: true }); // (n, 4d)
        x = matmul(h, mlp_proj.w, { layout: 'nk', bias: mlp_proj.b, residual: x });
      });
      if (!states) {
        if (logitRows === 0) return null;
        const last = logitRows === n ? x : slice(x, n - logitRows, n, 0);
        return matmul(layerNorm(last, { ...this.ln_f, eps }), this.lm_head, { layout: 'nk' }); // (rows, V)
      }
      const h = layerNorm(x, { ...this.ln_f, eps }); // (n, d)
      this.device.copy(h.buffer, 0, states.rows.buffer, (pos0 + 1) * d * 4, n * d * 4);
      if (logitRows === 0) return null;
      return matmul(logitRows === n ? h : slice(h, n - logitRows, n, 0), this.lm_head, { layout: 'nk' }); // (rows, V)
    });
  }

  /** Attention-score scale of layer i: 1/√head_size unless scale_attn_weights is false, over i + 1 with scale_attn_by_inverse_layer_idx. */
  private attnScale(i: number): number {
    const { nEmbd, nHead, scaleAttnWeights, scaleAttnByInverseLayerIdx } = this.config;
    return (scaleAttnWeights ? 1 / Math.sqrt(nEmbd / nHead) : 1) / (scaleAttnByInverseLayerIdx ? i + 1 : 1);
  }

  dispose(): void {
    const all = tensorsIn([this.wte, this.wpe, this.ln_f, this.blocks]);
    if (this.lm_head !== this.wte) all.push(this.lm_head);
    for (const t of all) t.dispose();
  }
}
