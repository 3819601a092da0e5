/**
 * npm run bench:model — GPT-2 forward costs on GPT-2-small-shaped random weights (12 × 768,
 * vocab 50257, tied 154 MB embedding): prefill, decode ms/token, and verify cost for k = 1, 4,
 * 8, 16 tokens relative to k = 1 (what speculative decoding pays per target pass).
 *
 *   npm run bench:model [-- --f16] [--layers N]
 */
import { parseArgs } from 'node:util';
import { createNodeDevice, GPT2, memorySource, openSafetensors, parseGPT2Config, writeSafetensors } from '../src/node.js';
import './lib/lavapipe-env.js';

const { values } = parseArgs({ options: { f16: { type: 'boolean' }, layers: { type: 'string' } } });
const d = 768;
const L = Number(values.layers ?? 12);
const V = 50257;
const P = 1024;

function random(n: number, scale: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s >>> 8) / 16777216 - 0.5) * 2 * scale;
  }
  return a;
}

const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
const add = (name: string, shape: number[], scale = 0.02, base = 0) => {
  const data = random(shape.reduce((a, b) => a * b, 1), scale, Object.keys(tensors).length + 1);
  if (base) for (let i = 0; i < data.length; i++) data[i] += base;
  tensors[name] = { dtype: 'F32', shape, data };
};
add('wte.weight', [V, d]);
add('wpe.weight', [P, d]);
add('ln_f.weight', [d], 0.1, 1);
add('ln_f.bias', [d]);
for (let i = 0; i < L; i++) {
  add(`h.${i}.ln_1.weight`, [d], 0.1, 1);
  add(`h.${i}.ln_1.bias`, [d]);
  add(`h.${i}.attn.c_attn.weight`, [d, 3 * d]);
  add(`h.${i}.attn.c_attn.bias`, [3 * d]);
  add(`h.${i}.attn.c_proj.weight`, [d, d]);
  add(`h.${i}.attn.c_proj.bias`, [d]);
  add(`h.${i}.ln_2.weight`, [d], 0.1, 1);
  add(`h.${i}.ln_2.bias`, [d]);
  add(`h.${i}.mlp.c_fc.weight`, [d, 4 * d]);
  add(`h.${i}.mlp.c_fc.bias`, [4 * d]);
  add(`h.${i}.mlp.c_proj.weight`, [4 * d, d]);
  add(`h.${i}.mlp.c_proj.bias`, [d]);
}
const device = await createNodeDevice();
const config = parseGPT2Config({ model_type: 'gpt2', vocab_size: V, n_positions: P, n_embd: d, n_layer: L, n_head: 12 });
const model = await GPT2.load(device, await openSafetensors(memorySource(writeSafetensors(tensors))), config, { dtype: values.f16 ? 'f16' : 'f32' });
const weightBytes = Object.values(tensors).reduce((s, t) => s + t.data.byteLength, 0) / (values.f16 ? 2 : 1);
console.log(`adapter: ${device.info.adapter}; GPT-2 small shape (${L} layers), weights ${values.f16 ? 'f16' : 'f32'} ${(weightBytes / 1e6).toFixed(0)} MB`);

const cache = model.createCache();
const prompt = Array.from({ length: 64 }, (_, i) => (i * 7919) % V);
let t = performance.now();
await model.forward(prompt, cache).read();
console.log(`prefill 64 tokens (first call, includes pipeline compilation): ${(performance.now() - t).toFixed(0)} ms`);
t = performance.now();
cache.truncate(0);
await model.forward(prompt, cache).read();
console.log(`prefill 64 tokens: ${(performance.now() - t).toFixed(0)} ms`);

async function timeForward(k: number, reps: number): Promise<number> {
  const base = cache.length;
  await model.forward(prompt.slice(0, k), cache, k).read(); // warm: compile this k's variants
  cache.truncate(base);
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await model.forward(prompt.slice(0, k), cache, k).read();
    times.push(performance.now() - t0);
    cache.truncate(base);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const decode = await timeForward(1, 9);
console.log(`decode: ${decode.toFixed(1)} ms/token (${((weightBytes / 1e9) / (decode / 1000)).toFixed(2)} GB/s of weights streamed)`);
for (const k of [1, 4, 8, 16]) {
  const ms = await timeForward(k, 5);
  console.log(`verify k=${String(k).padStart(2)}: ${ms.toFixed(1)} ms = ${(ms / decode).toFixed(2)}x k=1`);
}
process.exit(0);
