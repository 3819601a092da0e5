/**
 * Fuzzing of model loading: small valid checkpoint folders (GPT-2 target with tokenizer.json or
 * vocab.json + merges.txt, MDLM drafter) are mutated with a seeded PRNG and loaded with
 * loadPipeline, and what loads generates three tokens. Each case ends as a load, a typed error, another error (a bug: a message that names
 * nothing), a hang (over hangMs) or leaked GPU bytes (live bytes after the case above those before).
 * Most mutations hit the config, the tokenizer or the safetensors header, so most cases fail
 * before anything reaches the GPU.
 */
import { ConfigError } from '../../src/models/config.js';
import { ContextError, NumericalError } from '../../src/models/errors.js';
import { memorySource, SafetensorsError, writeSafetensors, type CheckpointFolder, type TensorToWrite } from '../../src/models/safetensors.js';
import { BYTE_CHARS, TokenizerError } from '../../src/models/tokenizer.js';
import { WeightError } from '../../src/models/weights.js';
import { VocabularyMismatchError } from '../../src/decode/generate.js';
import { loadPipeline } from '../../src/pipeline.js';
import type { Device } from '../../src/tensor/device.js';

const TYPED = [ConfigError, TokenizerError, SafetensorsError, WeightError, VocabularyMismatchError, ContextError, NumericalError];

export interface FuzzOptions {
  seed: number;
  cases: number;
  /** A case that uses more CPU time counts as a hang (default 5000 ms; the hangs found took minutes). */
  hangMs?: number;
  onProgress?: (done: number, counts: FuzzCounts) => void;
}

export interface FuzzCounts {
  cases: number;
  loaded: number;
  typed: number;
  other: number;
  hangs: number;
  leakedBytes: number;
  /** Cases that leaked. */
  leaks: number;
  /** A few examples of each kind of failure, for the report. */
  examples: { other: string[]; hangs: string[]; leaks: string[] };
  /** Typed errors by class. */
  byType: Record<string, number>;
}

/** xorshift32: the same seed gives the same cases. */
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = (seed >>> 0) || 0x9e3779b9;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (this.s = x >>> 0);
  }
  int(n: number): number {
    return this.u32() % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
}

const NASTY: readonly unknown[] = [
  -1, 0, 1, 2, 3, 7, 8, 15, 16, 17, 1.5, -0, 1e7, 1e9, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 - 1, 1e308, -1e308,
  '8', '', null, true, false, [], {}, [0, 8], 'F32', 'F16', 'gpt2', 'mdlm', '<|endoftext|>', 'a', 'a b', '__proto__',
];

// ---- base folders ----

const V = 16; // 15 byte tokens + <|endoftext|>
const D = 8;
const P = 8;
const TOKENS = Array.from({ length: V - 1 }, (_, i) => BYTE_CHARS[0x61 + i]); // 'a' … 'o'

function floats(n: number, seed: number, around = 0): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => around + (r.u32() / 2 ** 32 - 0.5) * 0.2);
}

function tensors(shapes: Record<string, number[]>, ones: RegExp): Record<string, TensorToWrite> {
  let seed = 1;
  return Object.fromEntries(Object.entries(shapes).map(([name, shape]) => [name, { dtype: 'F32', shape, data: floats(shape.reduce((a, b) => a * b, 1), seed++, ones.test(name) ? 1 : 0) }]));
}

function gpt2Folder(): Record<string, string | Uint8Array<ArrayBuffer>> {
  const shapes: Record<string, number[]> = {
    'wte.weight': [V, D], 'wpe.weight': [P, D], 'ln_f.weight': [D], 'ln_f.bias': [D],
    'h.0.ln_1.weight': [D], 'h.0.ln_1.bias': [D], 'h.0.attn.c_attn.weight': [D, 3 * D], 'h.0.attn.c_attn.bias': [3 * D],
    'h.0.attn.c_proj.weight': [D, D], 'h.0.attn.c_proj.bias': [D], 'h.0.ln_2.weight': [D], 'h.0.ln_2.bias': [D],
    'h.0.mlp.c_fc.weight': [D, 4 * D], 'h.0.mlp.c_fc.bias': [4 * D], 'h.0.mlp.c_proj.weight': [4 * D, D], 'h.0.mlp.c_proj.bias': [D],
  };
  const vocab = Object.fromEntries([...TOKENS, '<|endoftext|>'].map((t, i) => [t, i]));
  vocab[TOKENS[0] + TOKENS[1]] = V; // one merge: its result needs an id
  const vocabSize = V + 1;
  const sizedShapes = { ...shapes, 'wte.weight': [vocabSize, D] };
  return {
    'config.json': JSON.stringify({ model_type: 'gpt2', vocab_size: vocabSize, n_positions: P, n_embd: D, n_layer: 1, n_head: 2, eos_token_id: V - 1 }),
    'model.safetensors': writeSafetensors(tensors(sizedShapes, /ln_.*weight$/)),
    'tokenizer.json': JSON.stringify({
      model: { type: 'BPE', vocab, merges: [`${TOKENS[0]} ${TOKENS[1]}`] },
      added_tokens: [{ id: V - 1, content: '<|endoftext|>' }],
    }),
    'vocab.json': JSON.stringify(vocab),
    'merges.txt': `#version: 0.2\n${TOKENS[0]} ${TOKENS[1]}\n`,
  };
}

function mdlmFolder(): Record<string, string | Uint8Array<ArrayBuffer>> {
  const Vm = V + 2; // the target's 17 ids and a mask
  const c = 4;
  const shapes: Record<string, number[]> = {
    'backbone.vocab_embed.embedding': [Vm, D],
    'backbone.sigma_map.mlp.0.weight': [c, 256], 'backbone.sigma_map.mlp.0.bias': [c],
    'backbone.sigma_map.mlp.2.weight': [c, c], 'backbone.sigma_map.mlp.2.bias': [c],
    'backbone.output_layer.norm_final.weight': [D], 'backbone.output_layer.linear.weight': [Vm, D], 'backbone.output_layer.linear.bias': [Vm],
    'backbone.output_layer.adaLN_modulation.weight': [2 * D, c], 'backbone.output_layer.adaLN_modulation.bias': [2 * D],
    'backbone.blocks.0.norm1.weight': [D], 'backbone.blocks.0.attn_qkv.weight': [3 * D, D], 'backbone.blocks.0.attn_out.weight': [D, D],
    'backbone.blocks.0.norm2.weight': [D], 'backbone.blocks.0.mlp.0.weight': [4 * D, D], 'backbone.blocks.0.mlp.0.bias': [4 * D],
    'backbone.blocks.0.mlp.2.weight': [D, 4 * D], 'backbone.blocks.0.mlp.2.bias': [D],
    'backbone.blocks.0.adaLN_modulation.weight': [6 * D, c], 'backbone.blocks.0.adaLN_modulation.bias': [6 * D],
  };
  return {
    'config.json': JSON.stringify({ model_type: 'mdlm', vocab_size: Vm, hidden_dim: D, n_blocks: 1, n_heads: 2, cond_dim: c, model_length: P }),
    'model.safetensors': writeSafetensors(tensors(shapes, /norm.*weight$/)),
  };
}

// ---- mutations ----

type Files = Record<string, string | Uint8Array<ArrayBuffer>>;
const enc = new TextEncoder();
const dec = new TextDecoder();

function mutateJsonValue(r: Rng, value: unknown, depth = 0): unknown {
  if (value !== null && typeof value === 'object' && depth < 4 && r.chance(0.75)) {
    if (Array.isArray(value)) {
      if (value.length === 0 || r.chance(0.15)) return [...value, r.pick(NASTY)];
      const copy = [...value];
      const i = r.int(copy.length);
      copy[i] = mutateJsonValue(r, copy[i], depth + 1);
      return copy;
    }
    const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    const keys = Object.keys(copy);
    if (keys.length === 0 || r.chance(0.1)) {
      copy[String(r.pick(NASTY))] = r.pick(NASTY);
      return copy;
    }
    const key = r.pick(keys);
    if (r.chance(0.15)) delete copy[key];
    else copy[key] = mutateJsonValue(r, copy[key], depth + 1);
    return copy;
  }
  return r.pick(NASTY);
}

function mutateText(r: Rng, text: string): string {
  switch (r.int(5)) {
    case 0: // structured: one value, key or element replaced
      try {
        return JSON.stringify(mutateJsonValue(r, JSON.parse(text)));
      } catch {
        return text.slice(0, r.int(text.length + 1));
      }
    case 1: // truncated
      return text.slice(0, r.int(text.length + 1));
    case 2: { // a character replaced
      const i = r.int(Math.max(1, text.length));
      return text.slice(0, i) + r.pick(['"', '{', '}', ',', ':', '9', '-', ' ', '\n', 'e', '\\', '\u0000']) + text.slice(i + 1);
    }
    case 3: { // a line or a slice repeated
      const i = r.int(text.length + 1);
      const j = Math.min(text.length, i + r.int(40));
      return text.slice(0, j) + text.slice(i, j) + text.slice(j);
    }
    default: { // a number replaced by a nasty one
      const numbers = [...text.matchAll(/-?\d+(\.\d+)?(e-?\d+)?/g)];
      if (numbers.length === 0) return text + String(r.pick(NASTY));
      const m = r.pick(numbers);
      return text.slice(0, m.index) + JSON.stringify(r.pick(NASTY.filter((v) => typeof v === 'number'))) + text.slice(m.index! + m[0].length);
    }
  }
}

function mutateSafetensors(r: Rng, bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  const headerLength = Number(view.getBigUint64(0, true));
  switch (r.int(6)) {
    case 0: { // the header rewritten with one value mutated, framing kept valid
      const header = dec.decode(out.subarray(8, 8 + headerLength)).trimEnd();
      const json = enc.encode(mutateText(r, header));
      const padded = Math.ceil(json.length / 8) * 8;
      const data = out.subarray(8 + headerLength);
      const file = new Uint8Array(8 + padded + data.length).fill(0x20, 8 + json.length, 8 + padded);
      new DataView(file.buffer).setBigUint64(0, BigInt(padded), true);
      file.set(json, 8);
      file.set(data, 8 + padded);
      return file;
    }
    case 1: // header length off by a little or a lot
      view.setBigUint64(0, BigInt(Math.max(0, headerLength + r.pick([-9, -8, -1, 1, 8, 1e6, 2 ** 40]))), true);
      return out;
    case 2: // a header byte replaced
      out[8 + r.int(headerLength)] = r.pick([0x22, 0x7b, 0x7d, 0x2c, 0x30, 0x39, 0x5b, 0x5d, 0x00, 0xff, r.int(256)]);
      return out;
    case 3: // truncated
      return out.slice(0, r.int(out.length));
    case 4: // a data byte replaced (may make a weight NaN or Inf)
      if (out.length > 8 + headerLength) out[8 + headerLength + r.int(out.length - 8 - headerLength)] = r.pick([0x7f, 0xff, 0x80, r.int(256)]);
      return out;
    default: // bytes appended
      return Uint8Array.from([...out, ...Array.from({ length: 1 + r.int(16) }, () => r.int(256))]);
  }
}

function mutate(r: Rng, files: Files): Files {
  const out = { ...files };
  const count = 1 + (r.chance(0.2) ? 1 : 0);
  for (let k = 0; k < count; k++) {
    const names = Object.keys(out);
    // Weights are mutated less often: their valid cases cost a GPU upload.
    const name = r.chance(0.25) ? 'model.safetensors' : r.pick(names.filter((n) => n !== 'model.safetensors'));
    if (!(name in out)) continue;
    if (r.chance(0.04)) {
      delete out[name];
      continue;
    }
    const f = out[name];
    out[name] = typeof f === 'string' ? mutateText(r, f) : mutateSafetensors(r, f);
  }
  return out;
}

function folder(name: string, files: Files): CheckpointFolder {
  return {
    name,
    exists: async (rel) => Object.hasOwn(files, rel),
    open: async (rel) => {
      if (!Object.hasOwn(files, rel)) throw new Error(`${name}/${rel}: not found`);
      const f = files[rel];
      return memorySource(typeof f === 'string' ? enc.encode(f) : f, `${name}/${rel}`);
    },
  };
}

// ---- the run ----

export interface CaseResult {
  index: number;
  /** 'killed': the case never returned (npm run fuzz's watchdog ended its process); counted as a hang. */
  outcome: 'loaded' | 'typed' | 'other' | 'killed';
  /** The typed error's class, or the other error's name and message. */
  detail?: string;
  ms: number;
  /** CPU time of this process during the case (the driver's threads included): unlike wall time, other processes barely change it. */
  cpuMs: number;
  leakedBytes: number;
}

/** The base folders, built once per run. */
export interface Fixtures {
  target: Files;
  targetVocabMerges: Files;
  drafter: Files;
}

export function fixtures(): Fixtures {
  // Each tokenizer layout on its own, so that every mutation of a tokenizer file is read.
  const target: Files = gpt2Folder();
  const targetVocabMerges: Files = { ...target };
  delete target['vocab.json'];
  delete target['merges.txt'];
  delete targetVocabMerges['tokenizer.json'];
  return { target, targetVocabMerges, drafter: mdlmFolder() };
}

/** Case `index` of run `seed`: the same pair always makes the same folders, so any case can be replayed alone. */
export async function runCase(device: Device, base: Fixtures, seed: number, index: number): Promise<CaseResult> {
  const r = new Rng(Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b));
  r.u32();
  // Which folder is mutated: the target (with either tokenizer layout) or the drafter.
  const which = r.int(10);
  const t = which < 8 ? mutate(r, which < 2 ? base.targetVocabMerges : base.target) : base.target;
  const d = which >= 8 ? mutate(r, base.drafter) : base.drafter;
  const withDrafter = which >= 8 || r.chance(0.1);
  const before = device.memoryStats().liveBytes;
  const started = performance.now();
  const cpu = process.cpuUsage();
  let outcome: CaseResult['outcome'] = 'loaded';
  let detail: string | undefined;
  try {
    const pipe = await loadPipeline(device, { target: folder('target', t), diffusionDrafter: withDrafter ? folder('drafter', d) : undefined });
    try {
      // A few tokens from what loaded: mutated weights may overflow only once they run.
      const method = pipe.diffusionDrafter ? 'specdiff' : 'ar';
      await pipe.generate('abc', { method, maxNewTokens: 3, temperature: r.chance(0.5) ? 0 : 1, stopAtEos: false }).result();
    } finally {
      pipe.dispose();
    }
  } catch (e) {
    const type = TYPED.find((T) => e instanceof T);
    outcome = type ? 'typed' : 'other';
    detail = type ? type.name : `${(e as Error)?.name}: ${String((e as Error)?.message ?? e).slice(0, 200)}`;
  }
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { index, outcome, detail, ms, cpuMs: (used.user + used.system) / 1000, leakedBytes: Math.max(0, device.memoryStats().liveBytes - before) };
}

export function emptyCounts(): FuzzCounts {
  return { cases: 0, loaded: 0, typed: 0, other: 0, hangs: 0, leakedBytes: 0, leaks: 0, examples: { other: [], hangs: [], leaks: [] }, byType: {} };
}

/** Adds one case to the counts; a case that used more than hangMs of CPU, or never returned, counts as a hang. */
export function tally(counts: FuzzCounts, c: CaseResult, seed: number, hangMs: number): void {
  const label = `case ${c.index} (seed ${seed})`;
  const note = (list: string[], text: string) => list.length < 5 && list.push(text);
  counts.cases++;
  if (c.outcome === 'loaded') counts.loaded++;
  else if (c.outcome === 'typed') {
    counts.typed++;
    counts.byType[c.detail!] = (counts.byType[c.detail!] ?? 0) + 1;
  } else if (c.outcome === 'other') {
    counts.other++;
    note(counts.examples.other, `${label}: ${c.detail}`);
  }
  if (c.cpuMs > hangMs || c.outcome === 'killed') {
    counts.hangs++;
    note(counts.examples.hangs, `${label}: ${c.detail ?? `${c.cpuMs.toFixed(0)} ms of CPU, ${c.ms.toFixed(0)} ms`}`);
  }
  if (c.leakedBytes > 0) {
    counts.leaks++;
    counts.leakedBytes += c.leakedBytes;
    note(counts.examples.leaks, `${label}: ${c.leakedBytes} bytes`);
  }
}

/** Cases from..from + cases - 1 in this process (a case that never returns stalls it: npm run fuzz runs this in a child it can kill). */
export async function runFuzz(device: Device, opts: FuzzOptions & { from?: number; onReady?: () => void; onCase?: (c: CaseResult) => void }): Promise<FuzzCounts> {
  const hangMs = opts.hangMs ?? 5000;
  const base = fixtures();
  // Compiles every kernel the cases run, so that the first cases are not timed with shader compilation.
  const pipe = await loadPipeline(device, { target: folder('target', base.target), diffusionDrafter: folder('drafter', base.drafter) });
  for (const method of ['ar', 'specdiff'] as const) for (const temperature of [0, 1]) await pipe.generate('abc', { method, maxNewTokens: 3, temperature, stopAtEos: false }).result();
  pipe.dispose();
  opts.onReady?.();
  const counts = emptyCounts();
  const from = opts.from ?? 0;
  for (let i = from; i < from + opts.cases; i++) {
    const c = await runCase(device, base, opts.seed, i);
    tally(counts, c, opts.seed, hangMs);
    opts.onCase?.(c);
    if (opts.onProgress && (i + 1) % 5000 === 0) opts.onProgress(i + 1, counts);
  }
  return counts;
}
