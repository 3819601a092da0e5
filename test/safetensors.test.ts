import { describe, it, expect } from 'vitest';
import { f16BitsToF32, f32ToF16Bits } from '../src/tensor/half.js';
import { mkdtemp, readFile, rm, truncate, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  blobSource,
  fetchSource,
  memorySource,
  openCheckpoint,
  openCheckpointUrl,
  openSafetensors,
  SafetensorsError,
  writeSafetensors,
  type ByteSource,
  type Bytes,
  type CheckpointFolder,
  type TensorToWrite,
} from '../src/models/safetensors.js';
import { fileSource, openCheckpointDir, openSafetensorsFile } from '../src/models/safetensors-node.js';

const FILE = 'test.safetensors';

function open(bytes: Bytes, name = FILE) {
  return openSafetensors(memorySource(bytes, name));
}

/** A file with an arbitrary header (object or raw text) and `dataBytes` zero bytes of data. */
function rawFile(header: unknown, dataBytes = 0, declaredLength?: bigint): Bytes {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

async function rejection(promise: Promise<unknown>): Promise<SafetensorsError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SafetensorsError);
  return error as SafetensorsError;
}

/** Rejects with a SafetensorsError naming the file and containing every fragment. */
async function expectFailure(bytes: Bytes, ...fragments: string[]): Promise<SafetensorsError> {
  const error = await rejection(open(bytes));
  expect(error.message).toContain(FILE);
  for (const fragment of fragments) expect(error.message).toContain(fragment);
  return error;
}

function f16Plain(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

const POSITIVE_F16 = Array.from({ length: 0x7c00 }, (_, h) => f16Plain(h));

/** Nearest f16 by search over every finite value; ties go to the even bit pattern. */
function f16Reference(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (POSITIVE_F16[mid] <= a) lo = mid;
    else hi = mid - 1;
  }
  if (lo === 0x7bff) return sign | lo;
  const below = a - POSITIVE_F16[lo];
  const above = POSITIVE_F16[lo + 1] - a;
  return sign | (below < above ? lo : below > above ? lo + 1 : lo % 2 === 0 ? lo : lo + 1);
}

const isF16NaN = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;

function f32Bits(values: number[]): Uint32Array {
  return new Uint32Array(new Float32Array(values).buffer);
}

describe('round trip through writeSafetensors', () => {
  const f32 = new Float32Array([1.5, -2.25, 3.0e-8, 65504, 1e10, -0, Infinity, 0.1]);

  it('F32 loads exactly as f32 and rounds to nearest-even f16 bits', async () => {
    const ckpt = await open(writeSafetensors({ w: { dtype: 'F32', shape: [2, 4], data: f32 } }));
    const loaded = await ckpt.load('w');
    expect(loaded).toMatchObject({ dtype: 'f32', shape: [2, 4] });
    expect([...loaded.data]).toEqual([...f32]);
    const half = await ckpt.loadFloat('w', 'f16');
    expect(half).toBeInstanceOf(Uint16Array);
    expect([...half]).toEqual([...f32].map((x) => f16Reference(x)));
  });

  it('F16 is kept as raw bits for f16 and widened exactly for f32', async () => {
    const bits = new Uint16Array([0x0000, 0x8000, 0x3c00, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x7e01]);
    const ckpt = await open(writeSafetensors({ h: { dtype: 'F16', shape: [9], data: bits } }));
    expect([...(await ckpt.loadFloat('h', 'f16'))]).toEqual([...bits]);
    const wide = await ckpt.loadFloat('h', 'f32');
    [...bits].forEach((b, i) => expect(Object.is(wide[i], f16Plain(b))).toBe(true));
  });

  it('BF16 widens exactly to f32 and narrows to f16 like f32 does', async () => {
    const values = [1, -3.140625, 1e-30, 3.3895314e38, Infinity, -0, 65536, 2 ** -24 * 1.5];
    const bits = new Uint16Array([...f32Bits(values)].map((b) => b >>> 16));
    const ckpt = await open(writeSafetensors({ b: { dtype: 'BF16', shape: [8], data: bits } }));
    const wide = await ckpt.loadFloat('b', 'f32');
    expect([...wide]).toEqual([...new Float32Array(new Uint32Array([...bits].map((b) => b << 16)).buffer)]);
    expect([...(await ckpt.loadFloat('b', 'f16'))]).toEqual([...wide].map((x) => f16Reference(x)));
  });

  it('I32, I64 (in range), U8 and BOOL load as i32 / u8', async () => {
    const i64 = new BigInt64Array([0n, -1n, 2147483647n, -2147483648n]);
    const ckpt = await open(
      writeSafetensors({
        i32: { dtype: 'I32', shape: [3], data: new Int32Array([1, -7, 2 ** 31 - 1]) },
        i64: { dtype: 'I64', shape: [2, 2], data: i64 },
        u8: { dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]) },
        bool: { dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
      }),
    );
    expect(await ckpt.load('i32')).toEqual({ dtype: 'i32', shape: [3], data: new Int32Array([1, -7, 2 ** 31 - 1]) });
    const narrowed = new Int32Array([0, -1, 2 ** 31 - 1, -(2 ** 31)]);
    expect(await ckpt.load('i64')).toEqual({ dtype: 'i32', shape: [2, 2], data: narrowed });
    expect(await ckpt.load('u8')).toMatchObject({ dtype: 'u8', data: new Uint8Array([0, 255]) });
    expect(await ckpt.load('bool')).toMatchObject({ dtype: 'u8', data: new Uint8Array([1, 0, 1]) });
  });

  it('every other dtype round-trips as raw bytes and refuses conversion by name', async () => {
    const others: Record<string, TensorToWrite> = {
      f64: { dtype: 'F64', shape: [2], data: new Float64Array([Math.PI, -1]) },
      u64: { dtype: 'U64', shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) },
      u32: { dtype: 'U32', shape: [1], data: new Uint32Array([4e9]) },
      i16: { dtype: 'I16', shape: [2], data: new Int16Array([-3, 3]) },
      u16: { dtype: 'U16', shape: [1], data: new Uint16Array([65535]) },
      i8: { dtype: 'I8', shape: [1], data: new Int8Array([-5]) },
      e4m3: { dtype: 'F8_E4M3', shape: [1], data: new Uint8Array([0x38]) },
      e5m2: { dtype: 'F8_E5M2', shape: [1], data: new Uint8Array([0x3c]) },
    };
    const ckpt = await open(writeSafetensors(others));
    for (const [name, t] of Object.entries(others)) {
      expect(ckpt.info(name)).toMatchObject({ dtype: t.dtype, shape: t.shape, byteLength: t.data.byteLength });
      expect(await ckpt.readRaw(name)).toEqual(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      expect((await rejection(ckpt.load(name))).message).toContain(`dtype ${t.dtype} cannot be loaded`);
    }
  });

  it('pads the header with spaces to 8 bytes and aligns every tensor to its element size', async () => {
    const bytes = writeSafetensors(
      {
        a: { dtype: 'U8', shape: [3], data: new Uint8Array(3) },
        b: { dtype: 'F16', shape: [1], data: new Uint16Array(1) },
        c: { dtype: 'F32', shape: [5], data: new Float32Array(5) },
        d: { dtype: 'I64', shape: [1], data: new BigInt64Array(1) },
      },
      { format: 'pt' },
    );
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    expect(text).toMatch(/} *$/);
    const header = JSON.parse(text) as Record<string, { dtype: string; data_offsets: [number, number] }>;
    const sizes: Record<string, number> = { U8: 1, F16: 2, F32: 4, I64: 8 };
    let end = 0;
    for (const name of ['d', 'c', 'b', 'a']) {
      const [begin, stop] = header[name].data_offsets;
      expect(begin).toBe(end); // contiguous, as the reference reader demands
      expect(begin % sizes[header[name].dtype]).toBe(0);
      end = stop;
    }
    expect(8 + headerLength + end).toBe(bytes.length);
    expect((await open(bytes)).metadata).toEqual(new Map([['format', 'pt']]));
  });

  it('handles scalars, empty tensors and a source that is misaligned in memory', async () => {
    const file = writeSafetensors({
      scalar: { dtype: 'F32', shape: [], data: new Float32Array([7]) },
      empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
      w: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
    });
    const shifted = new Uint8Array(file.length + 1);
    shifted.set(file, 1);
    const ckpt = await open(shifted.subarray(1));
    expect(await ckpt.load('scalar')).toMatchObject({ shape: [], data: new Float32Array([7]) });
    expect(await ckpt.load('empty')).toMatchObject({ shape: [0, 3], data: new Float32Array(0) });
    expect([...(await ckpt.loadFloat('w', 'f32'))]).toEqual([1, 2]);
  });

  it('treats __proto__, constructor and toString as ordinary tensor names', async () => {
    const tensors: Record<string, TensorToWrite> = Object.create(null);
    for (const [i, name] of ['__proto__', 'constructor', 'toString', 'hasOwnProperty'].entries()) {
      tensors[name] = { dtype: 'F32', shape: [1], data: new Float32Array([i]) };
    }
    const ckpt = await open(writeSafetensors(tensors));
    expect(ckpt.names().sort()).toEqual(['__proto__', 'constructor', 'hasOwnProperty', 'toString']);
    expect([...(await ckpt.loadFloat('__proto__', 'f32'))]).toEqual([0]);
    expect([...(await ckpt.loadFloat('constructor', 'f32'))]).toEqual([1]);
    expect(({} as Record<string, unknown>).dtype).toBeUndefined();
    expect(ckpt.has('valueOf')).toBe(false);
  });
});

describe('files written by the independent PyTorch reference (tools/reference/safetensors_io.py)', () => {
  const dir = join(import.meta.dirname, 'fixtures');
  type Expected = Record<string, { dtype: string; shape: number[]; values: number[] }>;

  it('dtypes.safetensors decodes to the values in expected.json', async () => {
    const expected = JSON.parse(await readFile(join(dir, 'safetensors-dtypes/expected.json'), 'utf8')) as Expected;
    const ckpt = await openSafetensorsFile(join(dir, 'safetensors-dtypes/dtypes.safetensors'));
    expect(Object.fromEntries(ckpt.metadata)).toEqual(expected.__metadata__);
    for (const name of ['f32', 'f16', 'bf16', 'i32', 'scalar_f32', 'empty_f32']) {
      const tensor = await ckpt.load(name);
      expect({ dtype: ckpt.info(name).dtype, shape: tensor.shape }).toEqual({
        dtype: expected[name].dtype,
        shape: expected[name].shape,
      });
      expect([...tensor.data]).toEqual(expected[name].values);
    }
    // Its I64 sample holds 2^40 + 1: narrowing must refuse it, while the raw bytes stay available.
    expect((await rejection(ckpt.load('i64'))).message).toContain('I64 element 2 = 1099511627777 does not fit');
    const raw = await ckpt.readRaw('i64');
    expect([...new BigInt64Array(raw.slice().buffer)].map(Number)).toEqual(expected.i64.values);
    await ckpt.close();
  });

  it('the sharded BF16 GPT-2 fixture holds the single-file F32 weights rounded to BF16', async () => {
    const single = await openCheckpointDir(join(dir, 'gpt2-tiny'));
    const sharded = await openCheckpointDir(join(dir, 'gpt2-tiny-sharded'));
    const names = sharded.names();
    expect([...names].sort()).toEqual(single.names().sort());
    expect(new Set(names.map((k) => sharded.info(k).file)).size).toBe(2);
    expect(sharded.metadata.get('total_size')).toBe(String(names.reduce((n, k) => n + sharded.info(k).byteLength, 0)));
    const toBf16 = (bits: number) => ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16;
    for (const name of names) {
      const wide = f32Bits([...(await single.loadFloat(name, 'f32'))]);
      const rounded = new Float32Array(new Uint32Array(wide.map(toBf16)).buffer);
      expect(await sharded.loadFloat(name, 'f32')).toEqual(rounded);
    }
    await Promise.all([single.close(), sharded.close()]);
  });
});

describe('f16 conversion', () => {
  it('f16BitsToF32 matches the textbook formula for all 65536 bit patterns', () => {
    for (let h = 0; h < 0x10000; h++) {
      const expected = f16Plain(h);
      const actual = f16BitsToF32(h);
      if (Number.isNaN(expected)) expect(Number.isNaN(actual)).toBe(true);
      else if (!Object.is(actual, expected)) expect(actual).toBe(expected);
    }
  });

  it('f32ToF16Bits rounds special values to nearest even, saturating to inf and flushing to signed zero', () => {
    const specials = [
      0, -0, Infinity, -Infinity, 1, -1, 65504, -65504, 65519.99, 65520, 65536, 3.4028234663852886e38,
      2 ** -14, 2 ** -14 - 2 ** -24, 2 ** -24, -(2 ** -24), 2 ** -25, 2 ** -25 + 2 ** -40, 3 * 2 ** -26, 1.5 * 2 ** -24,
      2.5 * 2 ** -24, 1e-45, -1e-45, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 2048 + 1, 2048 + 3, 0.1, -0.333333, 1e-8,
    ].map(Math.fround);
    for (const x of specials) expect([x, f32ToF16Bits(x)]).toEqual([x, f16Reference(x)]);
    expect(f32ToF16Bits(2 ** -25)).toBe(0); // exactly half the smallest subnormal: ties to even zero
    expect(f32ToF16Bits(65520)).toBe(0x7c00);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
  });

  it('f32ToF16Bits keeps NaN a NaN, including payloads that would truncate to zero', () => {
    const nans = new Float32Array(new Uint32Array([0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff]).buffer);
    for (const x of nans) expect(isF16NaN(f32ToF16Bits(x))).toBe(true);
  });

  it('f32ToF16Bits matches the reference on 50,000 random f32 bit patterns', () => {
    let state = 12345;
    const bits = new Uint32Array(50_000).map(() => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0));
    const values = new Float32Array(bits.buffer);
    for (const x of values) {
      if (Number.isNaN(x)) expect(isF16NaN(f32ToF16Bits(x))).toBe(true);
      else if (f32ToF16Bits(x) !== f16Reference(x)) expect([x, f32ToF16Bits(x)]).toEqual([x, f16Reference(x)]);
    }
  });

  it('every non-NaN f16 survives f16 -> f32 -> f16', () => {
    for (let h = 0; h < 0x10000; h++) {
      if (!isF16NaN(h) && f32ToF16Bits(f16BitsToF32(h)) !== h) expect(f32ToF16Bits(f16BitsToF32(h))).toBe(h);
    }
  });
});

describe('checkpoint API', () => {
  const file = writeSafetensors({
    'h.0.w': { dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    'h.0.b': { dtype: 'F32', shape: [2], data: new Float32Array([5, 6]) },
    ids: { dtype: 'I32', shape: [1], data: new Int32Array([9]) },
  });

  it('a missing tensor is an error naming the tensor and the file', async () => {
    const ckpt = await open(file);
    const error = await rejection(ckpt.load('h.1.w'));
    expect(error.message).toContain(FILE);
    expect(error.message).toContain('"h.1.w"');
    expect(error.tensor).toBe('h.1.w');
    expect(() => ckpt.info('nope')).toThrow(SafetensorsError);
  });

  it('a shape other than the expected one is an error showing both', async () => {
    const ckpt = await open(file);
    const error = await rejection(ckpt.load('h.0.w', { shape: [4] }));
    expect(error.message).toContain('shape [2, 2] != expected [4]');
    expect(await ckpt.loadFloat('h.0.w', 'f32', [2, 2])).toEqual(new Float32Array([1, 2, 3, 4]));
  });

  it('loadFloat refuses an integer tensor', async () => {
    const ckpt = await open(file);
    expect((await rejection(ckpt.loadFloat('ids', 'f32'))).message).toContain('dtype I32 is not a float type');
  });

  it('checkTensorSet names missing and unexpected tensors and accepts optional ones', async () => {
    const ckpt = await open(file);
    const check = () => ckpt.checkTensorSet(['h.0.w', 'h.1.w', 'h.2.w']);
    expect(check).toThrow(SafetensorsError);
    expect(check).toThrow(`${FILE}: 2 missing tensors: "h.1.w", "h.2.w"; 2 unexpected tensors: "h.0.b", "ids"`);
    expect(() => ckpt.checkTensorSet(['h.0.w', 'h.0.b'], ['ids'])).not.toThrow();
    expect(() => ckpt.checkTensorSet(['h.0.w'], (name) => name.endsWith('.b') || name === 'ids')).not.toThrow();
  });

  it('loadAll loads in order and reports progress in file bytes per tensor', async () => {
    const ckpt = await open(file);
    const calls: [number, number, string][] = [];
    const all = await ckpt.loadAll({ onProgress: (done, total, name) => calls.push([done, total, name]) });
    expect([...all.keys()]).toEqual(ckpt.names());
    expect(calls).toEqual([
      [8, 28, 'h.0.b'],
      [24, 28, 'h.0.w'],
      [28, 28, 'ids'],
    ]);
    const some = await ckpt.loadAll({ names: ['h.0.b'], float: 'f16' });
    expect(some.get('h.0.b')).toMatchObject({ dtype: 'f16', data: new Uint16Array([0x4500, 0x4600]) });
  });

  it('blobSource reads the tensors through Blob.slice', async () => {
    const ckpt = await openSafetensors(blobSource(new Blob([file]), 'blob.safetensors'));
    expect(await ckpt.loadFloat('h.0.b', 'f32')).toEqual(new Float32Array([5, 6]));
    expect(ckpt.info('h.0.b').file).toBe('blob.safetensors');
  });

  it('a source that returns short reads is an error, not garbage', async () => {
    const honest = memorySource(file, FILE);
    const read = async (offset: number, length: number) =>
      (await honest.read(offset, length)).subarray(0, length > 8 ? length - 1 : length);
    const lying: ByteSource = { ...honest, read };
    expect((await rejection(openSafetensors(lying))).message).toMatch(/read \d+ bytes at 8, expected \d+/);
  });
});

/** An in-memory folder that records what is opened and closed. */
function memoryFolder(files: Record<string, Bytes>) {
  const opened: string[] = [];
  let closed = 0;
  const folder: CheckpointFolder = {
    name: 'mem:',
    open: async (relPath) => {
      if (!Object.hasOwn(files, relPath)) throw new Error(`ENOENT ${relPath}`);
      opened.push(relPath);
      return { ...memorySource(files[relPath], relPath), close: async () => void closed++ };
    },
  };
  return { folder, opened, closedCount: () => closed };
}

const SHARD1 = 'model-00001-of-00002.safetensors';
const SHARD2 = 'model-00002-of-00002.safetensors';

function shardedFiles(indexOverrides: Record<string, unknown> = {}): Record<string, Bytes> {
  const index = {
    metadata: { total_size: 24, note: 'x' },
    weight_map: { a: SHARD1, b: SHARD2, c: SHARD2 },
    ...indexOverrides,
  };
  return {
    'model.safetensors.index.json': new TextEncoder().encode(JSON.stringify(index)),
    [SHARD1]: writeSafetensors({ a: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } }),
    [SHARD2]: writeSafetensors({
      b: { dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) },
      c: { dtype: 'I64', shape: [1], data: new BigInt64Array([-3n]) },
    }),
  };
}

describe('sharded checkpoints', () => {
  it('maps every tensor of the index to its shard and loads it from there', async () => {
    const { folder, opened, closedCount } = memoryFolder(shardedFiles());
    const ckpt = await openCheckpoint(folder);
    expect(ckpt.names().sort()).toEqual(['a', 'b', 'c']);
    expect(ckpt.info('b')).toEqual({ dtype: 'F16', shape: [1], byteLength: 2, file: SHARD2 });
    expect(await ckpt.loadFloat('a', 'f32')).toEqual(new Float32Array([1, 2]));
    expect(await ckpt.loadFloat('b', 'f32')).toEqual(new Float32Array([1]));
    expect(await ckpt.load('c')).toMatchObject({ dtype: 'i32', data: new Int32Array([-3]) });
    expect(ckpt.metadata).toEqual(new Map([['total_size', '24'], ['note', 'x']]));
    expect(opened).toEqual(['model.safetensors.index.json', SHARD1, SHARD2]);
    await ckpt.close();
    expect(closedCount()).toBe(3); // index + both shards
  });

  it('prefers model.safetensors over an index', async () => {
    const single = writeSafetensors({ z: { dtype: 'F32', shape: [1], data: new Float32Array([3]) } });
    const { folder } = memoryFolder({ ...shardedFiles(), 'model.safetensors': single });
    expect((await openCheckpoint(folder)).names()).toEqual(['z']);
  });

  it('an index naming a tensor its shard lacks is an error naming both', async () => {
    const { folder, closedCount } = memoryFolder(shardedFiles({ weight_map: { a: SHARD1, zz: SHARD1 } }));
    const error = await rejection(openCheckpoint(folder));
    expect(error.message).toContain(`${SHARD1}: tensor "zz": listed in model.safetensors.index.json but absent`);
    expect(closedCount()).toBe(2); // nothing left open
  });

  it('a shard that cannot be opened is an error naming the index and the shard', async () => {
    const files = shardedFiles();
    delete files[SHARD2];
    const { folder, closedCount } = memoryFolder(files);
    const error = await rejection(openCheckpoint(folder));
    expect(error.message).toContain(`model.safetensors.index.json: cannot open shard "${SHARD2}"`);
    expect(closedCount()).toBe(2);
  });

  it.each([['../secret.safetensors'], ['/etc/passwd'], ['https://evil.example/x'], ['a/./b'], [''], [7]])(
    'refuses the shard path %j',
    async (shard) => {
      const { folder } = memoryFolder(shardedFiles({ weight_map: { a: shard } }));
      expect((await rejection(openCheckpoint(folder))).message).toContain('shard must be a relative file name');
    },
  );

  it('an index that is not an object with a weight_map object is an error', async () => {
    for (const index of ['[]', '{"weight_map": []}', '{}', '{"weight_map": {}, "metadata": 3}', '{bad']) {
      const { folder } = memoryFolder({ 'model.safetensors.index.json': new TextEncoder().encode(index) });
      expect((await rejection(openCheckpoint(folder))).message).toContain('model.safetensors.index.json');
    }
  });

  it('a folder with neither file says what it tried', async () => {
    const error = await rejection(openCheckpoint(memoryFolder({}).folder));
    expect(error.message).toContain('no checkpoint found (model.safetensors: ENOENT');
    expect(error.message).toContain('model.safetensors.index.json: ENOENT');
  });
});

/** A fetch that serves `files` under https://host/m/, in chunks of 5 bytes. */
function fakeFetch(files: Record<string, Bytes>, contentLength = (bytes: Bytes) => String(bytes.length)) {
  const requested: string[] = [];
  const fetchImpl = async (url: string) => {
    requested.push(url);
    const name = url.replace('https://host/m/', '');
    if (!Object.hasOwn(files, name)) return new Response('missing', { status: 404, statusText: 'Not Found' });
    const bytes = files[name];
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 5) controller.enqueue(bytes.slice(i, i + 5));
        controller.close();
      },
    });
    return new Response(body, { headers: { 'content-length': contentLength(bytes) } });
  };
  return { fetchImpl, requested };
}

describe('URL sources', () => {
  it('fetchSource streams the body with progress against Content-Length', async () => {
    const bytes = shardedFiles()[SHARD1];
    const { fetchImpl } = fakeFetch({ 'x.safetensors': bytes });
    const progress: number[][] = [];
    const onProgress = (done: number, total: number) => progress.push([done, total]);
    const source = await fetchSource('https://host/m/x.safetensors', { fetch: fetchImpl, onProgress });
    expect(await source.read(0, source.size)).toEqual(bytes);
    expect(progress.at(-1)).toEqual([bytes.length, bytes.length]);
    expect(progress.length).toBe(Math.ceil(bytes.length / 5));
  });

  it('fetchSource keeps reading when the body outgrows Content-Length (compressed transfer)', async () => {
    const bytes = shardedFiles()[SHARD2];
    const { fetchImpl } = fakeFetch({ 'x': bytes }, () => '10');
    const source = await fetchSource('https://host/m/x', { fetch: fetchImpl });
    expect(await source.read(0, source.size)).toEqual(bytes);
  });

  it('an HTTP error is a SafetensorsError with the status', async () => {
    const { fetchImpl } = fakeFetch({});
    expect((await rejection(fetchSource('https://host/m/nope', { fetch: fetchImpl }))).message).toBe(
      'https://host/m/nope: HTTP 404 Not Found',
    );
  });

  it('openCheckpointUrl falls back from a 404 on model.safetensors to the index and its shards', async () => {
    const { fetchImpl, requested } = fakeFetch(shardedFiles());
    const names = new Set<string>();
    const onProgress = (_done: number, _total: number, name: string) => names.add(name);
    const ckpt = await openCheckpointUrl('https://host/m', { fetch: fetchImpl, onProgress });
    expect(await ckpt.loadFloat('a', 'f32')).toEqual(new Float32Array([1, 2]));
    expect(requested[0]).toBe('https://host/m/model.safetensors');
    expect(requested.length).toBe(4);
    expect(names.has('https://host/m/model-00002-of-00002.safetensors')).toBe(true);
  });
});

describe('Node file source', () => {
  async function withDir(body: (dir: string) => Promise<void>) {
    const dir = await mkdtemp(join(tmpdir(), 'safetensors-'));
    try {
      await body(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  const big = new Float32Array(4096).map((_, i) => i);
  const file = writeSafetensors({
    big: { dtype: 'F32', shape: [64, 64], data: big },
    small: { dtype: 'F32', shape: [2], data: new Float32Array([-1, 1]) },
  });

  it('reads the header, then only the byte range of each tensor asked for', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'model.safetensors');
      await writeFile(path, file);
      const source = await fileSource(path);
      const reads: [number, number][] = [];
      const ckpt = await openSafetensors({ ...source, read: (o, l) => (reads.push([o, l]), source.read(o, l)) });
      const headerEnd = 8 + Number(new DataView(file.buffer).getBigUint64(0, true));
      expect(reads).toEqual([[0, 8], [8, headerEnd - 8]]);
      expect(await ckpt.loadFloat('small', 'f32')).toEqual(new Float32Array([-1, 1]));
      expect(reads.slice(2)).toEqual([[headerEnd + big.byteLength, 8]]);
      expect(reads.reduce((sum, [, l]) => sum + l, 0)).toBeLessThan(file.length - big.byteLength + 1);
      await ckpt.close();
    });
  });

  it('openSafetensorsFile and openCheckpointDir load single and sharded checkpoints', async () => {
    await withDir(async (dir) => {
      await writeFile(join(dir, 'one.safetensors'), file);
      const one = await openSafetensorsFile(join(dir, 'one.safetensors'));
      expect(await one.loadFloat('big', 'f32', [64, 64])).toEqual(big);
      await one.close();
      const sharded = join(dir, 'sharded');
      await mkdir(sharded);
      for (const [name, bytes] of Object.entries(shardedFiles())) await writeFile(join(sharded, name), bytes);
      const ckpt = await openCheckpointDir(sharded);
      expect(ckpt.info('c').file).toBe(join(sharded, SHARD2));
      expect(await ckpt.load('c')).toMatchObject({ data: new Int32Array([-3]) });
      await ckpt.close();
      expect((await rejection(openCheckpointDir(join(dir, 'none')))).message).toBe(`${join(dir, 'none')}: cannot read the folder (ENOENT)`);
    });
  });

  it('a file truncated after opening is an error at the read, not zeros', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'model.safetensors');
      await writeFile(path, file);
      const ckpt = await openSafetensorsFile(path);
      await truncate(path, file.length - 4);
      expect((await rejection(ckpt.load('small'))).message).toMatch(/file ended at byte \d+ while reading 8 bytes/);
      await ckpt.close();
    });
  });
});

describe('hostile files', () => {
  const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  it('a file shorter than 8 bytes', async () => {
    await expectFailure(new Uint8Array(5), 'file is 5 bytes, shorter than the 8-byte header length');
  });

  it('a header length past the end of the file', async () => {
    await expectFailure(rawFile(ok, 8, 1000n), 'header length 1000 runs past the end of the file');
  });

  it('a header length over the 100 MB cap, checked before any allocation', async () => {
    await expectFailure(rawFile(ok, 8, 100_000_001n), 'header length 100000001 exceeds the limit of 100000000 bytes');
    await expectFailure(rawFile(ok, 8, 2n ** 64n - 1n), `header length ${2n ** 64n - 1n} exceeds`);
  });

  it('a header that is not valid UTF-8', async () => {
    const bytes = rawFile('{"w":"\u00e9"}');
    bytes[8 + 6] = 0xff;
    await expectFailure(bytes, 'header is not valid UTF-8');
  });

  it('a header that is not valid JSON', async () => {
    await expectFailure(rawFile('{"w": {'), 'header is not valid JSON');
    await expectFailure(rawFile(''), 'header is not valid JSON');
  });

  it('a header that is not a JSON object', async () => {
    await expectFailure(rawFile('[1, 2]'), 'header is [1, 2], not a JSON object');
    await expectFailure(rawFile('null'), 'header is null, not a JSON object');
    await expectFailure(rawFile('"text"'), 'header is "text", not a JSON object');
  });

  it('a tensor entry that is not an object', async () => {
    await expectFailure(rawFile({ w: [1, 2] }), 'tensor "w": entry is [1, 2], not an object');
    await expectFailure(rawFile({ w: null }), 'tensor "w": entry is null, not an object');
  });

  it.each(['dtype', 'shape', 'data_offsets'])('a tensor entry lacking %s', async (key) => {
    const entry: Record<string, unknown> = { ...ok.w };
    delete entry[key];
    await expectFailure(rawFile({ w: entry }, 8), `tensor "w": lacks ${key}`);
  });

  it('entry fields are read as own properties only (no prototype lookup)', async () => {
    await expectFailure(rawFile({ constructor: {} }), 'tensor "constructor": lacks dtype');
    const nested = '{"w": {"__proto__": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}}';
    await expectFailure(rawFile(nested, 8), 'tensor "w": lacks dtype');
  });

  it('an unknown dtype', async () => {
    await expectFailure(rawFile({ w: { ...ok.w, dtype: 'F128' } }, 8), 'tensor "w": unknown dtype "F128" (known: BOOL');
    await expectFailure(rawFile({ w: { ...ok.w, dtype: 4 } }, 8), 'dtype is 4, not a string');
  });

  it.each([[[-1]], [[1.5]], [[2 ** 53]], [['2']], [[null]], ['2'], [{ 0: 2 }], [[[2]]]])(
    'a shape of %j (not non-negative safe integers)',
    async (shape) => {
      const message = 'shape must be an array of non-negative safe integers';
      await expectFailure(rawFile({ w: { ...ok.w, shape } }, 8), message);
    },
  );

  it.each([[[0]], [[0, 8, 9]], [[-1, 8]], [[0, 1e300]], [['0', '8']], [{}]])('data_offsets of %j', async (offsets) => {
    await expectFailure(rawFile({ w: { ...ok.w, data_offsets: offsets } }, 8), 'data_offsets must be [begin, end]');
  });

  it('data_offsets past the end of the data area', async () => {
    await expectFailure(rawFile(ok, 7), 'data_offsets end 8 is past the end of the data area (7 bytes)');
  });

  it('data_offsets with begin > end', async () => {
    await expectFailure(rawFile({ w: { ...ok.w, data_offsets: [8, 0] } }, 8), 'data_offsets begin 8 > end 0');
  });

  it('data_offsets overlapping another tensor', async () => {
    const header = { a: ok.w, b: { ...ok.w, data_offsets: [4, 12] } };
    await expectFailure(rawFile(header, 12), 'tensor "b": data_offsets [4, 12) overlap tensor "a" at [0, 8)');
  });

  it('bytes between two tensors that belong to neither', async () => {
    const header = { a: ok.w, b: { ...ok.w, data_offsets: [12, 20] } };
    await expectFailure(rawFile(header, 20), 'tensor "b": data_offsets [12, 20) leave bytes [8, 12) of the data area in no tensor');
  });

  it('trailing bytes after the last tensor', async () => {
    await expectFailure(rawFile(ok, 9), 'bytes [8, 9) of the data area belong to no tensor');
  });

  it('a header length shortened by one padding byte, which would shift every tensor by one byte', async () => {
    const good = writeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
    const declared = new DataView(good.buffer).getBigUint64(0, true);
    expect(good[8 + Number(declared) - 1]).toBe(0x20); // the header ends in padding
    const shifted = good.slice();
    new DataView(shifted.buffer).setBigUint64(0, declared - 1n, true);
    await expectFailure(shifted, 'belong to no tensor');
  });

  it('a tensor named twice in the header, where JSON.parse would keep the last silently', async () => {
    const entry = JSON.stringify(ok.w);
    await expectFailure(rawFile(`{"w": ${entry}, "w": ${entry}}`, 8), 'header has the key "w" twice');
  });

  it('a field named twice inside one entry, also when spelled with an escape', async () => {
    const twice = '{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "\\u0064type": "F16"}}';
    await expectFailure(rawFile(twice, 8), 'header has the key "dtype" twice');
  });

  it('the same key in different objects is not a duplicate', async () => {
    const ckpt = await open(rawFile({ a: ok.w, b: { ...ok.w, data_offsets: [8, 16] } }, 16));
    expect(ckpt.names().sort()).toEqual(['a', 'b']);
  });

  it('a byte length that differs from shape x dtype size', async () => {
    await expectFailure(rawFile({ w: { ...ok.w, shape: [3] } }, 8), 'byte length 8 != shape [3] x 4 bytes (F32) = 12');
  });

  it('huge shapes cannot overflow into a matching byte length', async () => {
    // 2^32 * 2^32 wraps to 0 in 64-bit arithmetic and 2^53-1 squared rounds in doubles: neither may pass.
    const wraps = { w: { dtype: 'U8', shape: [2 ** 32, 2 ** 32], data_offsets: [0, 0] } };
    await expectFailure(rawFile(wraps), 'byte length 0 != shape');
    const shape = [2 ** 53 - 1, 2 ** 53 - 1, ...new Array<number>(100_000).fill(2 ** 53 - 1)];
    const started = performance.now();
    await expectFailure(rawFile({ w: { ...ok.w, shape } }, 8), '= more than 9007199254740991');
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('__metadata__ must be an object of strings', async () => {
    await expectFailure(rawFile({ __metadata__: ['x'] }), '__metadata__ is ["x"], not an object of strings');
    await expectFailure(rawFile({ __metadata__: { n: 3 } }), '__metadata__ value for "n" is 3, not a string');
    await expectFailure(rawFile({ __metadata__: null }), '__metadata__ is null');
  });

  it('an I64 value outside int32 is an error with the value, not a silent wrap', async () => {
    const ids = new BigInt64Array([1n, 2n ** 40n]);
    const ckpt = await open(writeSafetensors({ ids: { dtype: 'I64', shape: [2], data: ids } }));
    const error = await rejection(ckpt.load('ids'));
    expect(error.message).toContain(`tensor "ids": I64 element 1 = ${2n ** 40n} does not fit in int32`);
  });

  it('the writer refuses data that does not match the shape and reserved names', () => {
    expect(() => writeSafetensors({ w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).toThrow(
      'data is 8 bytes, shape [3] x 4 needs 12',
    );
    const empty = { dtype: 'U8', shape: [0], data: new Uint8Array(0) } as const;
    expect(() => writeSafetensors({ __metadata__: empty })).toThrow('reserved');
  });
});
