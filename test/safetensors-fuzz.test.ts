import { describe, it, expect } from 'vitest';
import {
  memorySource,
  openSafetensors,
  SafetensorsError,
  writeSafetensors,
  type Bytes,
  type Checkpoint,
  type Dtype,
} from '../src/models/safetensors.js';
import { rng } from './helpers/reference.js';

// Valid files mutated thousands of times with a seeded PRNG: every outcome must be a SafetensorsError or a
// checkpoint whose tensors all have the byte size their header declares.

const SIZES: Record<Dtype, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, I64: 8, U64: 8, F64: 8,
};
const OUTPUT_BYTES = { f32: 4, f16: 2, i32: 4, u8: 1 } as const;

class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = rng(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

const BASES: Bytes[] = [
  writeSafetensors(
    {
      'h.0.w': { dtype: 'F32', shape: [3, 4], data: new Float32Array(12).map((_, i) => i - 5.5) },
      'h.0.b': { dtype: 'F16', shape: [4], data: new Uint16Array([0x3c00, 0x7c00, 0x8001, 0x7e00]) },
      bf: { dtype: 'BF16', shape: [2, 1], data: new Uint16Array([0x3f80, 0xff80]) },
      ids: { dtype: 'I64', shape: [2], data: new BigInt64Array([7n, -7n]) },
      mask: { dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
    },
    { format: 'pt' },
  ),
  writeSafetensors({
    scalar: { dtype: 'I32', shape: [], data: new Int32Array([42]) },
    empty: { dtype: 'F32', shape: [0], data: new Float32Array(0) },
    d: { dtype: 'F64', shape: [1], data: new Float64Array([1]) },
    u: { dtype: 'U8', shape: [5], data: new Uint8Array([1, 2, 3, 4, 5]) },
  }),
];

const NASTY: readonly unknown[] = [
  -1, 0, 1, 2, 3, 8, 12, 48, 1.5, -0, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e308, -1e308,
  '8', '', null, true, [], {}, [[1]], [0, 8], [8, 0], [0, 2 ** 53], [-1, 7],
  'F32', 'F16', 'BF16', 'I64', 'F128', '__proto__',
];

const HUGE_LENGTHS = [0n, 1n, 7n, 100_000_000n, 100_000_001n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];

function headerLength(bytes: Bytes): number {
  return bytes.length < 8 ? 0 : Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
}

function withHeaderLength(bytes: Bytes, length: bigint): Bytes {
  const out = bytes.slice();
  if (out.length >= 8) new DataView(out.buffer).setBigUint64(0, length, true);
  return out;
}

/** Flips bytes, mostly in the header where the parsing happens. */
function flipBytes(bytes: Bytes, rng: Rng): Bytes {
  const out = bytes.slice();
  const headerEnd = Math.min(out.length, 8 + headerLength(bytes));
  for (let n = 1 + rng.int(6); n > 0 && out.length > 0; n--) {
    const at = rng.int(4) > 0 && headerEnd > 0 ? rng.int(headerEnd) : rng.int(out.length);
    out[at] = rng.int(4) === 0 ? rng.pick([0x00, 0x22, 0x2c, 0x5b, 0x7b, 0x7d, 0xff, 0x30, 0x39]) : rng.int(256);
  }
  return out;
}

/** Random data bytes keep the header valid: exercises conversion of odd values (NaN payloads, huge I64). */
function flipData(bytes: Bytes, rng: Rng): Bytes {
  const out = bytes.slice();
  const start = 8 + headerLength(bytes);
  for (let n = 1 + rng.int(16); n > 0 && start < out.length; n--) {
    out[start + rng.int(out.length - start)] = rng.int(256);
  }
  return out;
}

function truncateBytes(bytes: Bytes, rng: Rng): Bytes {
  return bytes.slice(0, rng.int(bytes.length));
}

function changeHeaderLength(bytes: Bytes, rng: Rng): Bytes {
  const current = BigInt(headerLength(bytes));
  const length = rng.int(2) === 0 ? current + BigInt(rng.int(33) - 16) : rng.pick(HUGE_LENGTHS);
  return withHeaderLength(bytes, length < 0n ? 0n : length);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Rewrites one field of one tensor (or adds odd keys) and re-encodes the header with a consistent length. */
function editJson(bytes: Bytes, rng: Rng): Bytes {
  const length = headerLength(bytes);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  } catch {
    header = undefined;
  }
  const target = isObject(header) ? header[rng.pick(Object.keys(header))] : undefined;
  if (!isObject(header) || !isObject(target)) return flipBytes(bytes, rng);
  const field = rng.pick(['dtype', 'shape', 'data_offsets']);
  const value = target[field];
  switch (rng.int(5)) {
    case 0:
    case 1:
      target[field] = rng.pick(NASTY);
      break;
    case 2:
      // Small shifts of offsets and dims reach the boundary cases (off by one, overlap, past the end).
      if (Array.isArray(value) && value.length > 0) {
        const at = rng.int(value.length);
        value[at] = typeof value[at] === 'number' ? value[at] + rng.int(17) - 8 : rng.pick(NASTY);
      }
      break;
    case 3:
      if (Array.isArray(value)) value.push(rng.pick(NASTY));
      else delete target[field];
      break;
    default:
      Object.defineProperty(header, rng.pick(['__proto__', 'constructor', '__metadata__', 'toString']), {
        value: rng.pick([target, NASTY, { a: 1 }, { a: 'b' }, null]),
        enumerable: true,
      });
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + Math.max(0, bytes.length - 8 - length));
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(bytes.subarray(8 + length), 8 + json.length);
  return out;
}

function spliceBytes(bytes: Bytes, rng: Rng): Bytes {
  const at = rng.int(bytes.length + 1);
  const removed = rng.int(8);
  const inserted = new Uint8Array(rng.int(8)).map(() => rng.int(256));
  const out = new Uint8Array(bytes.length - Math.min(removed, bytes.length - at) + inserted.length);
  out.set(bytes.subarray(0, at));
  out.set(inserted, at);
  out.set(bytes.subarray(at + removed), at + inserted.length);
  return out;
}

const MUTATIONS = [flipBytes, flipData, truncateBytes, changeHeaderLength, editJson, editJson, editJson, spliceBytes];

/** Problems found with one input; empty when it behaved. */
async function check(bytes: Bytes): Promise<{ accepted: boolean; problems: string[] }> {
  let ckpt: Checkpoint;
  try {
    ckpt = await openSafetensors(memorySource(bytes, 'fuzz.safetensors'));
  } catch (error) {
    return { accepted: false, problems: error instanceof SafetensorsError ? [] : [`open threw ${String(error)}`] };
  }
  const problems: string[] = [];
  for (const name of ckpt.names()) {
    const { dtype, shape, byteLength } = ckpt.info(name);
    const elements = shape.reduce((n, d) => n * BigInt(d), 1n);
    if (elements * BigInt(SIZES[dtype]) !== BigInt(byteLength)) {
      problems.push(`${name}: ${byteLength} bytes for ${dtype}[${shape}]`);
    }
    try {
      if ((await ckpt.readRaw(name)).length !== byteLength) problems.push(`${name}: readRaw length`);
      for (const float of ['f32', 'f16'] as const) await checkLoad(ckpt, name, float, elements, problems);
    } catch (error) {
      problems.push(`${name}: readRaw threw ${String(error)}`);
    }
  }
  return { accepted: true, problems };
}

async function checkLoad(ckpt: Checkpoint, name: string, float: 'f32' | 'f16', elements: bigint, problems: string[]) {
  try {
    const tensor = await ckpt.load(name, { float });
    const { data, dtype } = tensor;
    if (BigInt(data.length) !== elements || data.byteLength !== data.length * OUTPUT_BYTES[dtype]) {
      problems.push(`${name}: loaded ${data.length} elements (${data.byteLength} bytes), expected ${elements}`);
    }
  } catch (error) {
    // Accepted headers may still hold data that cannot be converted: those two reasons only.
    const allowed = error instanceof SafetensorsError && /cannot be loaded|does not fit in int32/.test(error.message);
    if (!allowed) problems.push(`${name}: load threw ${String(error)}`);
  }
}

describe('safetensors fuzz', () => {
  it('10,000 mutated files each end in a SafetensorsError or correctly sized tensors', async () => {
    const rng = new Rng(0x5afe7e45);
    const problems: string[] = [];
    let accepted = 0;
    const started = performance.now();
    for (let i = 0; i < 10_000; i++) {
      let bytes = rng.pick(BASES);
      for (let n = 1 + rng.int(2); n > 0; n--) bytes = rng.pick(MUTATIONS)(bytes, rng);
      const result = await check(bytes);
      if (result.accepted) accepted++;
      problems.push(...result.problems.map((p) => `case ${i}: ${p}`));
    }
    expect(problems).toEqual([]);
    // Both outcomes must be common, or the mutations are not exercising the parser.
    expect(accepted).toBeGreaterThan(500);
    expect(accepted).toBeLessThan(9000);
    expect(performance.now() - started).toBeLessThan(15_000);
  });

  it('the unmutated bases load completely', async () => {
    for (const base of BASES) expect(await check(base)).toEqual({ accepted: true, problems: [] });
  });
});
