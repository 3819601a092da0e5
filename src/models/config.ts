/** config.json of the supported checkpoints, validated: a wrong or missing field is named. */

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface GPT2Config {
  vocabSize: number;
  nPositions: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nInner: number;
  layerNormEpsilon: number;
  eosTokenId?: number;
  /** false: the LM head is its own tensor, lm_head.weight (V, d), instead of wte. */
  tieWordEmbeddings: boolean;
  /** Attention scores scaled by 1/√head_size (HF scale_attn_weights, default true). */
  scaleAttnWeights: boolean;
  /** Attention scores of layer i further divided by i + 1 (HF scale_attn_by_inverse_layer_idx). */
  scaleAttnByInverseLayerIdx: boolean;
}

export interface MDLMConfig {
  vocabSize: number;
  hiddenDim: number;
  nBlocks: number;
  nHeads: number;
  condDim: number;
  modelLength: number;
  timeConditioning: boolean;
  /**
   * This project's extension ("block_causal": true in config.json, absent upstream): the model was
   * trained, or is known to work, with block-causal attention, so a drafter drafts with a KV cache of
   * the context by default instead of a bidirectional pass over a window of it.
   */
  blockCausal: boolean;
  /**
   * This project's extension ("target_features": width in config.json, absent upstream): the drafter
   * also reads the target's final hidden state of each context position's predecessor, through a
   * learned projection `feature_proj` [hidden_dim, width] added to the token embedding. 0: it does not.
   */
  targetFeatures: number;
  /**
   * This project's extension ("draft_head": true in config.json, absent upstream): the checkpoint has a
   * draft head (`draft_head.*`), one causal DiT block over the draft that reads the token drafted before
   * each position, so drafted positions depend on each other (docs/training.md, "The draft head").
   */
  draftHead: boolean;
  /**
   * This project's extension ("draft_head_features": width in config.json, with "draft_head"): the draft
   * head's first position also reads the target's final hidden state that predicted the last context token,
   * through `draft_head.feature_proj` [hidden_dim, width]. 0: it does not.
   */
  draftHeadFeatures: number;
  /**
   * This project's extension ("shift_logits": true in config.json, absent upstream): row i's logits predict the
   * token at position i + 1, as an AR model's do (the shift of DiffuLLaMA and Dream, which adapt AR models into
   * diffusion LMs). A draft of γ tokens then runs γ − 1 masks, and its first position is read from the last
   * context token's row (docs/training.md, "Shifted logits").
   */
  shiftLogits: boolean;
  /**
   * This project's extension ("learned_positions": true in config.json, absent upstream): the backbone adds a
   * learned position table `pos_embed` [model_length, hidden_dim] to the embeddings instead of rotating queries
   * and keys (GPT-2's wpe, kept by a drafter made from an AR model; docs/training.md, "The AR drafter's layout").
   * The draft head keeps its rotary positions.
   */
  learnedPositions: boolean;
  /**
   * This project's extension ("attention_bias": true in config.json, absent upstream): the backbone's blocks
   * have `attn_qkv.bias` [3·hidden_dim] and `attn_out.bias` [hidden_dim] (GPT-2's c_attn and c_proj biases).
   */
  attentionBias: boolean;
  /** GPT-2 tokenizer + one mask token: the mask is the last id. */
  maskTokenId: number;
}

/**
 * Upper bounds of sizes, far above any released checkpoint: a hostile config is refused before its numbers size a
 * loop or a list (a checkpoint's tensors must match them anyway).
 */
export const CONFIG_LIMITS: Readonly<Record<string, number>> = {
  vocab_size: 2 ** 24,
  n_positions: 2 ** 20,
  n_embd: 2 ** 16,
  n_layer: 1024,
  n_head: 1024,
  n_inner: 2 ** 20,
  hidden_dim: 2 ** 16,
  n_blocks: 1024,
  n_heads: 1024,
  cond_dim: 2 ** 16,
  model_length: 2 ** 20,
  target_features: 2 ** 16,
  draft_head_features: 2 ** 16,
};

function field(cfg: Record<string, unknown>, source: string, name: string, fallback?: number): number {
  const v = cfg[name] ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new ConfigError(`${source}: "${name}" must be a positive integer, got ${String(JSON.stringify(cfg[name])).slice(0, 80)}`);
  }
  const max = CONFIG_LIMITS[name];
  if (max !== undefined && v > max) throw new ConfigError(`${source}: "${name}" is ${v}, over the limit of ${max}`);
  return v;
}

function flag(cfg: Record<string, unknown>, source: string, name: string, fallback: boolean): boolean {
  const v = cfg[name] ?? fallback;
  if (typeof v !== 'boolean') throw new ConfigError(`${source}: "${name}" must be true or false, got ${String(JSON.stringify(v)).slice(0, 80)}`);
  return v;
}

function asObject(json: unknown, source: string): Record<string, unknown> {
  const cfg = typeof json === 'string' ? safeParse(json, source) : json;
  if (!cfg || typeof cfg !== 'object' || Array.isArray(cfg)) throw new ConfigError(`${source}: config must be a JSON object`);
  return cfg as Record<string, unknown>;
}

function safeParse(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${source}: invalid JSON (${(e as Error).message})`);
  }
}

export function parseGPT2Config(json: unknown, source = 'config.json'): GPT2Config {
  const cfg = asObject(json, source);
  if (cfg.model_type !== undefined && cfg.model_type !== 'gpt2') {
    throw new ConfigError(`${source}: model_type "${String(cfg.model_type)}" is not gpt2`);
  }
  const act = cfg.activation_function ?? 'gelu_new';
  if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') {
    throw new ConfigError(`${source}: activation_function "${String(act)}" is not supported (gelu_new only)`);
  }
  const nEmbd = field(cfg, source, 'n_embd');
  const nHead = field(cfg, source, 'n_head');
  if (nEmbd % nHead !== 0) throw new ConfigError(`${source}: n_embd ${nEmbd} is not divisible by n_head ${nHead}`);
  // The attention kernels read heads in pairs of values.
  if ((nEmbd / nHead) % 2 !== 0) throw new ConfigError(`${source}: n_embd ${nEmbd} / n_head ${nHead} is an odd head size (${nEmbd / nHead}); it must be even`);
  const eps = cfg.layer_norm_epsilon ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0 && eps < 1)) throw new ConfigError(`${source}: layer_norm_epsilon must be in (0, 1), got ${String(eps).slice(0, 80)}`);
  const vocabSize = field(cfg, source, 'vocab_size');
  const eos = cfg.eos_token_id;
  if (eos != null && !(typeof eos === 'number' && Number.isInteger(eos) && eos >= 0 && eos < vocabSize)) {
    throw new ConfigError(`${source}: "eos_token_id" must be an id in [0, ${vocabSize}), got ${String(JSON.stringify(eos)).slice(0, 80)}`);
  }
  return {
    vocabSize,
    nPositions: field(cfg, source, 'n_positions', cfg.n_ctx as number | undefined),
    nEmbd,
    nLayer: field(cfg, source, 'n_layer'),
    nHead,
    nInner: cfg.n_inner == null ? 4 * nEmbd : field(cfg, source, 'n_inner'),
    layerNormEpsilon: eps,
    eosTokenId: typeof eos === 'number' ? eos : undefined,
    tieWordEmbeddings: flag(cfg, source, 'tie_word_embeddings', true),
    scaleAttnWeights: flag(cfg, source, 'scale_attn_weights', true),
    scaleAttnByInverseLayerIdx: flag(cfg, source, 'scale_attn_by_inverse_layer_idx', false),
  };
}

export function parseMDLMConfig(json: unknown, source = 'config.json'): MDLMConfig {
  const cfg = asObject(json, source);
  if (cfg.model_type !== undefined && cfg.model_type !== 'mdlm') {
    throw new ConfigError(`${source}: model_type "${String(cfg.model_type)}" is not mdlm`);
  }
  const hiddenDim = field(cfg, source, 'hidden_dim');
  const nHeads = field(cfg, source, 'n_heads');
  if (hiddenDim % nHeads !== 0 || (hiddenDim / nHeads) % 2 !== 0) {
    throw new ConfigError(`${source}: hidden_dim ${hiddenDim} / n_heads ${nHeads} must be an even head size`);
  }
  const vocabSize = field(cfg, source, 'vocab_size');
  const draftHead = flag(cfg, source, 'draft_head', false);
  const draftHeadFeatures = cfg.draft_head_features === undefined ? 0 : field(cfg, source, 'draft_head_features');
  if (draftHeadFeatures && !draftHead) throw new ConfigError(`${source}: draft_head_features ${draftHeadFeatures} needs "draft_head": true`);
  return {
    vocabSize,
    hiddenDim,
    nBlocks: field(cfg, source, 'n_blocks'),
    nHeads,
    condDim: field(cfg, source, 'cond_dim'),
    modelLength: field(cfg, source, 'model_length'),
    timeConditioning: cfg.time_conditioning === true,
    blockCausal: cfg.block_causal === true,
    targetFeatures: cfg.target_features === undefined ? 0 : field(cfg, source, 'target_features'),
    draftHead,
    draftHeadFeatures,
    shiftLogits: flag(cfg, source, 'shift_logits', false),
    learnedPositions: flag(cfg, source, 'learned_positions', false),
    attentionBias: flag(cfg, source, 'attention_bias', false),
    maskTokenId: vocabSize - 1,
  };
}
