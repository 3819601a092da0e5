export { matmul, type MatmulOptions } from './matmul.js';
export { add, sub, mul, gelu, silu, scale, unary, binary } from './elementwise.js';
export { layerNorm, softmax, logSoftmax, argmax, type LayerNormOptions } from './rowwise.js';
export { embedding, slice, concat, copy2d, copyRows } from './gather.js';
export { KVCache, LayerKVCaches, appendQKV, attention, rotary, ropeTable, type AttentionOptions } from './attention.js';
export { filteredProbs, sampleRows, gather2d, residualChain, type SamplingFilter } from './sample.js';
export type { IdRows, RowsOf } from './rows.js';
