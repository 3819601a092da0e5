// safetensors reader and writer (format: u64 LE header length, JSON header, data area).
// Browser-safe: no dependencies. Hostile files must end in a SafetensorsError, never a crash, hang or huge allocation,
// so every number from the header is checked against the file size before it is used.
// Typed-array views assume a little-endian host, as every WebGPU platform is.

import { f16BitsToF32Bits, f32BitsToF16Bits } from '../tensor/half.js';

/** Random access to the bytes of one file: a Node file handle, a Blob, or bytes already in memory. */
export interface ByteSource {
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes from `offset`; callers keep the range inside `size`. */
  read(offset: number, length: number): Promise<Bytes>;
  close?(): Promise<void>;
}

/** Bytes in an ArrayBuffer (not shared), as GPU uploads require. */
export type Bytes = Uint8Array<ArrayBuffer>;

/** Called as bytes arrive; `name` is the tensor (loading) or the file (downloading). */
export type ProgressCallback = (loadedBytes: number, totalBytes: number, name: string) => void;

export class SafetensorsError extends Error {
  override readonly name: string = 'SafetensorsError';

  constructor(
    readonly file: string,
    detail: string,
    readonly tensor?: string,
  ) {
    super(`${file}${tensor === undefined ? '' : `: tensor ${quote(tensor)}`}: ${detail}`);
  }
}

const DTYPE_BYTES = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
} as const;

/** Every dtype the format defines; `load` converts F32, F16, BF16, I32, I64, U8 and BOOL. */
export type Dtype = keyof typeof DTYPE_BYTES;
const dtypeBytes: ReadonlyMap<string, number> = new Map(Object.entries(DTYPE_BYTES));

/** The reference implementation's cap: bigger headers are refused before anything is allocated. */
const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** The file (shard) holding the tensor. */
  readonly file: string;
}

/** Loaded data; float tensors become f32 or raw f16 bits, integers i32, U8/BOOL bytes. May share memory with an
 * in-memory source. */
export type LoadedTensor =
  | { readonly dtype: 'f32'; readonly shape: readonly number[]; readonly data: Float32Array<ArrayBuffer> }
  | { readonly dtype: 'f16'; readonly shape: readonly number[]; readonly data: Uint16Array<ArrayBuffer> }
  | { readonly dtype: 'i32'; readonly shape: readonly number[]; readonly data: Int32Array<ArrayBuffer> }
  | { readonly dtype: 'u8'; readonly shape: readonly number[]; readonly data: Bytes };

export type FloatFormat = 'f32' | 'f16';
export type FloatArray<F extends FloatFormat> = F extends 'f16' ? Uint16Array<ArrayBuffer> : Float32Array<ArrayBuffer>;

export interface LoadOptions {
  /** What float tensors (F32, F16, BF16) become; default f32. */
  readonly float?: FloatFormat;
  /** When given, a tensor of another shape is an error. */
  readonly shape?: readonly number[];
}

export interface LoadAllOptions {
  readonly names?: Iterable<string>;
  readonly float?: FloatFormat;
  readonly onProgress?: ProgressCallback;
}

/** Tensors by name across one file or the shards of an index. Owns its sources: `close` closes them. */
export interface Checkpoint {
  readonly name: string;
  readonly metadata: ReadonlyMap<string, string>;
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  readRaw(name: string): Promise<Bytes>;
  load(name: string, options?: LoadOptions): Promise<LoadedTensor>;
  /** A float tensor in the given format; an integer tensor is an error. */
  loadFloat<F extends FloatFormat>(name: string, format: F, shape?: readonly number[]): Promise<FloatArray<F>>;
  /** Loads one tensor after another (never two in flight), reporting progress in file bytes. */
  loadAll(options?: LoadAllOptions): Promise<Map<string, LoadedTensor>>;
  /** Throws, naming them, if expected tensors are missing or tensors neither expected nor optional are present. */
  checkTensorSet(expected: Iterable<string>, optional?: Iterable<string> | ((name: string) => boolean)): void;
  close(): Promise<void>;
}

/** Files relative to a checkpoint folder (a directory, a URL base). Without `exists`, a failed open means absent. */
export interface CheckpointFolder {
  readonly name: string;
  open(relPath: string): Promise<ByteSource>;
  exists?(relPath: string): Promise<boolean>;
}

// ---- sources ----

export function memorySource(bytes: ArrayBuffer | Bytes, name = '<memory>'): ByteSource {
  const all = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return { name, size: all.length, read: async (offset, length) => all.subarray(offset, offset + length) };
}

/** Reads each range with Blob.slice, so a File is never held in memory whole. */
export function blobSource(blob: Blob, name = (blob as Partial<File>).name ?? '<blob>'): ByteSource {
  return {
    name,
    size: blob.size,
    read: async (offset, length) => new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer()),
  };
}

export interface FetchOptions {
  readonly onProgress?: ProgressCallback;
  readonly fetch?: (url: string, init?: { signal?: AbortSignal }) => Promise<Response>;
  /** Milliseconds to wait for the response's status and headers (default 30 000). */
  readonly connectTimeoutMs?: number;
  /** Milliseconds the body may go without a byte (default 30 000). */
  readonly stallTimeoutMs?: number;
  /** Cancels the download. */
  readonly signal?: AbortSignal;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/** A download that failed: the HTTP status, the system error code, a timeout or an abort, with the URL. */
export class FetchError extends SafetensorsError {
  override readonly name = 'FetchError';

  constructor(
    url: string,
    detail: string,
    /** HTTP status, when the server answered. */
    readonly status?: number,
    /** System error (ECONNREFUSED, ENOTFOUND …), 'TIMEOUT' or 'ABORTED'. */
    readonly code?: string,
  ) {
    super(url, detail);
  }

  /** The server says the file does not exist (as opposed to failing to say anything). */
  get notFound(): boolean {
    return this.status === 404 || this.status === 410;
  }
}

/**
 * Downloads a whole file into memory, streaming into one buffer sized by Content-Length when the server sends it.
 * Fails with a FetchError when no response comes within connectTimeoutMs, when the body stalls for stallTimeoutMs,
 * when it ends short of its Content-Length, or on `signal`; the fetch is then aborted, so nothing partial is kept
 * (a caching fetch stores only complete bodies).
 */
export async function fetchSource(url: string, options: FetchOptions = {}): Promise<ByteSource> {
  const connectMs = timeout(options.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS, 'connectTimeoutMs');
  const stallMs = timeout(options.stallTimeoutMs, DEFAULT_STALL_TIMEOUT_MS, 'stallTimeoutMs');
  const controller = new AbortController();
  let failure: FetchError | undefined;
  const fail = (error: FetchError) => {
    failure ??= error;
    controller.abort(failure);
  };
  const failed = new Promise<never>((_, reject) => controller.signal.addEventListener('abort', () => reject(failure), { once: true }));
  failed.catch(() => undefined);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = (ms: number, detail: () => string) => {
    clearTimeout(timer);
    timer = setTimeout(() => fail(new FetchError(url, detail(), undefined, 'TIMEOUT')), ms);
  };
  const outer = options.signal;
  const onAbort = () => fail(new FetchError(url, `aborted (${errorMessage(outer?.reason)})`, undefined, 'ABORTED'));
  if (outer?.aborted) onAbort();
  outer?.addEventListener('abort', onAbort, { once: true });
  try {
    arm(connectMs, () => `no response within ${connectMs} ms (connectTimeoutMs)`);
    let response: Response;
    try {
      response = await Promise.race([(options.fetch ?? fetch)(url, { signal: controller.signal }), failed]);
    } catch (error) {
      throw failure ?? networkError(url, error);
    }
    if (!response.ok) {
      response.body?.cancel().catch(() => undefined);
      throw new FetchError(url, `HTTP ${response.status} ${response.statusText}`.trim(), response.status);
    }
    return memorySource(await readBody(response, url, options.onProgress, failed, (length) => arm(stallMs, () => `stalled: no data for ${stallMs} ms after ${length} bytes (stallTimeoutMs)`)), url);
  } catch (error) {
    controller.abort(error);
    throw failure ?? (error instanceof SafetensorsError ? error : networkError(url, error));
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onAbort);
  }
}

function timeout(value: number | undefined, fallback: number, name: string): number {
  const ms = value ?? fallback;
  if (!(ms > 0 && ms <= 2 ** 31 - 1)) throw new RangeError(`${name} must be in (0, ${2 ** 31 - 1}] ms, got ${value}`);
  return ms;
}

/** fetch() reports a refused connection as TypeError("fetch failed") with the system error as its cause. */
function networkError(url: string, error: unknown): FetchError {
  const cause = (error as { cause?: unknown })?.cause;
  const code = (cause as { code?: unknown })?.code ?? (error as { code?: unknown })?.code;
  const detail = cause instanceof Error ? `${errorMessage(error)}: ${cause.message}` : errorMessage(error);
  return new FetchError(url, detail, undefined, typeof code === 'string' ? code : undefined);
}

async function readBody(response: Response, url: string, onProgress: ProgressCallback | undefined, failed: Promise<never>, onData: (length: number) => void): Promise<Bytes> {
  const header = response.headers.get('content-length');
  const declared = header === null ? NaN : Number(header);
  const known = Number.isSafeInteger(declared) && declared >= 0;
  if (response.body === null) return new Uint8Array(0);
  let buffer = allocate(url, known ? declared : 1 << 20);
  let length = 0;
  const reader = response.body.getReader();
  try {
    onData(0);
    for (let chunk = await Promise.race([reader.read(), failed]); !chunk.done; chunk = await Promise.race([reader.read(), failed])) {
      onData(length + chunk.value.length);
      // A compressed transfer can deliver more than Content-Length: grow geometrically.
      if (length + chunk.value.length > buffer.length) {
        const grown = allocate(url, Math.max(length + chunk.value.length, buffer.length * 2));
        grown.set(buffer.subarray(0, length));
        buffer = grown;
      }
      buffer.set(chunk.value, length);
      length += chunk.value.length;
      onProgress?.(length, known ? Math.max(declared, length) : length, url);
    }
  } catch (error) {
    reader.cancel().catch(() => undefined);
    throw error;
  }
  const encoding = response.headers.get('content-encoding');
  if (known && length < declared && (encoding === null || encoding === 'identity')) {
    throw new FetchError(url, `the body ended after ${length} of the ${declared} bytes of its Content-Length`);
  }
  return buffer.subarray(0, length);
}

function allocate(file: string, bytes: number): Bytes {
  try {
    return new Uint8Array(bytes);
  } catch {
    throw new SafetensorsError(file, `cannot allocate ${bytes} bytes for the download`);
  }
}

/** Ensures a ByteSource kept its contract, so a short read cannot masquerade as data. */
async function readExact(source: ByteSource, offset: number, length: number): Promise<Bytes> {
  const bytes = await source.read(offset, length);
  if (bytes.length !== length) {
    throw new SafetensorsError(source.name, `read ${bytes.length} bytes at ${offset}, expected ${length}`);
  }
  return bytes;
}

// ---- header parsing ----

interface Entry {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Absolute file offset of the first byte. */
  readonly offset: number;
  readonly byteLength: number;
}

interface ParsedFile {
  readonly source: ByteSource;
  readonly metadata: ReadonlyMap<string, string>;
  readonly tensors: ReadonlyMap<string, Entry>;
}

type Fail = (detail: string, tensor?: string) => SafetensorsError;

async function parseFile(source: ByteSource): Promise<ParsedFile> {
  const fail: Fail = (detail, tensor) => new SafetensorsError(source.name, detail, tensor);
  if (source.size < 8) throw fail(`file is ${source.size} bytes, shorter than the 8-byte header length`);
  const prefix = await readExact(source, 0, 8);
  const declared = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER_BYTES)) {
    throw fail(`header length ${declared} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  }
  const headerBytes = Number(declared);
  if (headerBytes > source.size - 8) {
    throw fail(`header length ${headerBytes} runs past the end of the file (${source.size - 8} bytes follow it)`);
  }
  const header = parseJson(await readExact(source, 8, headerBytes), 'header', fail);
  if (!isRecord(header)) throw fail(`header is ${describe(header)}, not a JSON object`);
  const dataStart = 8 + headerBytes;
  let metadata: ReadonlyMap<string, string> = new Map();
  const tensors = new Map<string, Entry>();
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') metadata = parseMetadata(value, fail);
    else tensors.set(name, parseEntry(name, value, dataStart, source.size - dataStart, fail));
  }
  checkLayout(tensors, dataStart, source.size - dataStart, fail);
  return { source, metadata, tensors };
}

function parseJson(bytes: Uint8Array, what: string, fail: Fail): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw fail(`${what} is not valid UTF-8`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw fail(`${what} is not valid JSON (${truncate(errorMessage(error), 200)})`);
  }
  const duplicate = duplicateKey(text);
  if (duplicate !== undefined) throw fail(`${what} has the key ${quote(duplicate)} twice (JSON.parse would keep the last silently)`);
  return json;
}

/** The first key repeated within one object of valid JSON text, if any. */
export function duplicateKey(text: string): string | undefined {
  // One entry per open container: the keys seen (objects) or null (arrays).
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let end = text.indexOf('"', i + 1);
      while (isEscaped(text, end)) end = text.indexOf('"', end + 1);
      const keys = stack[stack.length - 1];
      if (expectKey && keys) {
        const raw = text.slice(i + 1, end);
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      i = end;
    } else if (c === 0x7b) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b) {
      stack.push(null);
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
    } else if (c === 0x2c) {
      expectKey = stack[stack.length - 1] != null;
    }
  }
  return undefined;
}

function isEscaped(text: string, quoteAt: number): boolean {
  let backslashes = 0;
  while (text.charCodeAt(quoteAt - 1 - backslashes) === 0x5c) backslashes++;
  return backslashes % 2 === 1;
}

function parseMetadata(value: unknown, fail: Fail): ReadonlyMap<string, string> {
  if (!isRecord(value)) throw fail(`__metadata__ is ${describe(value)}, not an object of strings`);
  const metadata = new Map<string, string>();
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') throw fail(`__metadata__ value for ${quote(key)} is ${describe(item)}, not a string`);
    metadata.set(key, item);
  }
  return metadata;
}

function parseEntry(name: string, value: unknown, dataStart: number, dataSize: number, fail: Fail): Entry {
  const bad = (detail: string) => fail(detail, name);
  if (!isRecord(value)) throw bad(`entry is ${describe(value)}, not an object`);
  const dtype = field(value, 'dtype', bad);
  const shape = field(value, 'shape', bad);
  const offsets = field(value, 'data_offsets', bad);
  if (typeof dtype !== 'string') throw bad(`dtype is ${describe(dtype)}, not a string`);
  const size = dtypeBytes.get(dtype);
  if (size === undefined) throw bad(`unknown dtype ${quote(dtype)} (known: ${[...dtypeBytes.keys()].join(', ')})`);
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw bad(`shape must be an array of non-negative safe integers, got ${describe(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw bad(`data_offsets must be [begin, end] of non-negative safe integers, got ${describe(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw bad(`data_offsets begin ${begin} > end ${end}`);
  if (end > dataSize) throw bad(`data_offsets end ${end} is past the end of the data area (${dataSize} bytes)`);
  const needed = byteCount(shape, size) ?? `more than ${MAX_BYTES}`;
  if (needed !== BigInt(end - begin)) {
    throw bad(`byte length ${end - begin} != shape ${formatShape(shape)} x ${size} bytes (${dtype}) = ${needed}`);
  }
  return { dtype: dtype as Dtype, shape, offset: dataStart + begin, byteLength: end - begin };
}

const MAX_BYTES = BigInt(Number.MAX_SAFE_INTEGER);

/** Bytes the shape needs, exact in BigInt; undefined once past any possible file size, so that a hostile shape of
 * many huge dims never grows a huge BigInt. */
function byteCount(shape: readonly number[], size: number): bigint | undefined {
  if (shape.includes(0)) return 0n;
  let bytes = BigInt(size);
  for (const dim of shape) {
    bytes *= BigInt(dim);
    if (bytes > MAX_BYTES) return undefined;
  }
  return bytes;
}

/** Tensors must tile the data area exactly, as the reference reader requires: an overlap, a gap or trailing bytes
 * mean the header and the data disagree (e.g. a header length off by a padding byte shifts every tensor). */
function checkLayout(tensors: ReadonlyMap<string, Entry>, dataStart: number, dataSize: number, fail: Fail): void {
  // Empty tensors occupy no bytes and so cannot overlap anything.
  const ranges = [...tensors].filter(([, e]) => e.byteLength > 0).sort(([, a], [, b]) => a.offset - b.offset);
  const span = (e: Entry) => `[${e.offset - dataStart}, ${e.offset - dataStart + e.byteLength})`;
  let covered = 0;
  for (let i = 0; i < ranges.length; i++) {
    const [name, entry] = ranges[i];
    const begin = entry.offset - dataStart;
    if (begin < covered) {
      const [prevName, prev] = ranges[i - 1];
      throw fail(`data_offsets ${span(entry)} overlap tensor ${quote(prevName)} at ${span(prev)}`, name);
    }
    if (begin > covered) throw fail(`data_offsets ${span(entry)} leave bytes [${covered}, ${begin}) of the data area in no tensor`, name);
    covered = begin + entry.byteLength;
  }
  if (covered !== dataSize) {
    throw fail(`bytes [${covered}, ${dataSize}) of the data area belong to no tensor (is the header length ${dataStart - 8} right?)`);
  }
}

// ---- sharded checkpoints ----

const SINGLE_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';

/** A checkpoint of one file. */
export async function openSafetensors(source: ByteSource): Promise<Checkpoint> {
  const file = await parseOwned(source);
  const tensors = new Map([...file.tensors].map(([name, entry]) => [name, { file, entry }]));
  return new FileCheckpoint(source.name, file.metadata, tensors);
}

/** Opens `model.safetensors`, or else the shards listed in `model.safetensors.index.json`. */
export async function openCheckpoint(folder: CheckpointFolder): Promise<Checkpoint> {
  const single = await tryOpen(folder, SINGLE_FILE);
  if (typeof single !== 'string') return openSafetensors(single);
  const index = await tryOpen(folder, INDEX_FILE);
  if (typeof index !== 'string') return openSharded(folder, index);
  throw new SafetensorsError(folder.name, `no checkpoint found (${single}; ${index})`);
}

/** A checkpoint under a URL base (e.g. a Hugging Face `resolve/main/` URL); each file is downloaded whole. */
export function openCheckpointUrl(base: string, options: FetchOptions = {}): Promise<Checkpoint> {
  const root = base.endsWith('/') ? base : `${base}/`;
  return openCheckpoint({ name: root, open: (relPath) => fetchSource(root + relPath, options) });
}

/** The source, or why it is absent. */
async function tryOpen(folder: CheckpointFolder, relPath: string): Promise<ByteSource | string> {
  if (folder.exists) return (await folder.exists(relPath)) ? folder.open(relPath) : `${relPath}: not found`;
  try {
    return await folder.open(relPath);
  } catch (error) {
    // A server that failed to answer says nothing about whether the file exists.
    if (error instanceof FetchError && !error.notFound) throw error;
    return `${relPath}: ${errorMessage(error)}`;
  }
}

async function parseOwned(source: ByteSource): Promise<ParsedFile> {
  try {
    return await parseFile(source);
  } catch (error) {
    await source.close?.();
    throw error;
  }
}

async function openSharded(folder: CheckpointFolder, indexSource: ByteSource): Promise<Checkpoint> {
  const index = await readIndex(indexSource);
  const files = new Map<string, ParsedFile>();
  try {
    for (const shard of new Set(index.weightMap.values())) {
      files.set(shard, await openShard(folder, shard, indexSource));
    }
    const tensors = new Map<string, Located>();
    for (const [name, shard] of index.weightMap) {
      const file = files.get(shard)!;
      const entry = file.tensors.get(name);
      if (!entry) throw new SafetensorsError(file.source.name, `listed in ${indexSource.name} but absent`, name);
      tensors.set(name, { file, entry });
    }
    return new FileCheckpoint(indexSource.name, index.metadata, tensors);
  } catch (error) {
    await Promise.all([...files.values()].map((f) => f.source.close?.()));
    throw error;
  }
}

async function openShard(folder: CheckpointFolder, shard: string, index: ByteSource): Promise<ParsedFile> {
  let source: ByteSource;
  try {
    source = await folder.open(shard);
  } catch (error) {
    throw new SafetensorsError(index.name, `cannot open shard ${quote(shard)} (${errorMessage(error)})`);
  }
  return parseOwned(source);
}

interface Index {
  readonly metadata: ReadonlyMap<string, string>;
  readonly weightMap: ReadonlyMap<string, string>;
}

async function readIndex(source: ByteSource): Promise<Index> {
  const fail: Fail = (detail, tensor) => new SafetensorsError(source.name, detail, tensor);
  try {
    if (source.size > MAX_HEADER_BYTES) {
      throw fail(`index is ${source.size} bytes, over the limit of ${MAX_HEADER_BYTES}`);
    }
    const json = parseJson(await readExact(source, 0, source.size), 'index', fail);
    if (!isRecord(json)) throw fail(`index is ${describe(json)}, not a JSON object`);
    const weightMap = field(json, 'weight_map', fail);
    if (!isRecord(weightMap)) throw fail(`weight_map is ${describe(weightMap)}, not an object`);
    const shards = new Map<string, string>();
    for (const [name, shard] of Object.entries(weightMap)) {
      if (typeof shard !== 'string' || !isShardPath(shard)) {
        throw fail(`shard must be a relative file name, got ${describe(shard)}`, name);
      }
      shards.set(name, shard);
    }
    const metadata = Object.hasOwn(json, 'metadata') ? json.metadata : {};
    if (!isRecord(metadata)) throw fail(`metadata is ${describe(metadata)}, not an object`);
    // Index metadata holds numbers (total_size); keep everything as text.
    const text = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value));
    return { metadata: new Map(Object.entries(metadata).map(([k, v]) => [k, text(v)])), weightMap: shards };
  } finally {
    await source.close?.();
  }
}

/** Shard names come from the file: refuse anything that could leave the folder or change a URL. */
function isShardPath(path: string): boolean {
  return /^[\w.-]+(\/[\w.-]+)*$/.test(path) && !path.split('/').some((part) => part === '.' || part === '..');
}

// ---- checkpoint ----

interface Located {
  readonly file: ParsedFile;
  readonly entry: Entry;
}

class FileCheckpoint implements Checkpoint {
  constructor(
    readonly name: string,
    readonly metadata: ReadonlyMap<string, string>,
    private readonly tensors: ReadonlyMap<string, Located>,
  ) {}

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const { file, entry } = this.locate(name);
    return { dtype: entry.dtype, shape: entry.shape, byteLength: entry.byteLength, file: file.source.name };
  }

  readRaw(name: string): Promise<Bytes> {
    const { file, entry } = this.locate(name);
    return readExact(file.source, entry.offset, entry.byteLength);
  }

  async load(name: string, options: LoadOptions = {}): Promise<LoadedTensor> {
    const { file, entry } = this.locate(name);
    const fail = (detail: string) => new SafetensorsError(file.source.name, detail, name);
    if (options.shape && !sameShape(options.shape, entry.shape)) {
      throw fail(`shape ${formatShape(entry.shape)} != expected ${formatShape(options.shape)}`);
    }
    const bytes = await readExact(file.source, entry.offset, entry.byteLength);
    return decode(bytes, entry, options.float ?? 'f32', fail);
  }

  async loadFloat<F extends FloatFormat>(name: string, format: F, shape?: readonly number[]): Promise<FloatArray<F>> {
    const tensor = await this.load(name, { float: format, shape });
    if (tensor.dtype !== format) {
      const { file, dtype } = this.info(name);
      throw new SafetensorsError(file, `dtype ${dtype} is not a float type`, name);
    }
    return tensor.data as FloatArray<F>;
  }

  async loadAll(options: LoadAllOptions = {}): Promise<Map<string, LoadedTensor>> {
    const names = [...(options.names ?? this.names())];
    const total = names.reduce((sum, name) => sum + this.locate(name).entry.byteLength, 0);
    const loaded = new Map<string, LoadedTensor>();
    let bytes = 0;
    for (const name of names) {
      loaded.set(name, await this.load(name, { float: options.float }));
      bytes += this.locate(name).entry.byteLength;
      options.onProgress?.(bytes, total, name);
    }
    return loaded;
  }

  checkTensorSet(expected: Iterable<string>, optional: Iterable<string> | ((name: string) => boolean) = []): void {
    const wanted = new Set(expected);
    const allowed = typeof optional === 'function' ? optional : setMember(new Set(optional));
    const missing = [...wanted].filter((name) => !this.tensors.has(name));
    const unexpected = this.names().filter((name) => !wanted.has(name) && !allowed(name));
    if (missing.length === 0 && unexpected.length === 0) return;
    const parts = [nameList(missing, 'missing'), nameList(unexpected, 'unexpected')].filter((p) => p !== '');
    throw new SafetensorsError(this.name, parts.join('; '));
  }

  async close(): Promise<void> {
    const sources = new Set([...this.tensors.values()].map(({ file }) => file.source));
    await Promise.all([...sources].map((source) => source.close?.()));
  }

  private locate(name: string): Located {
    const located = this.tensors.get(name);
    if (!located) {
      throw new SafetensorsError(this.name, `no such tensor (the checkpoint has ${this.tensors.size})`, name);
    }
    return located;
  }
}

function setMember(set: ReadonlySet<string>): (name: string) => boolean {
  return (name) => set.has(name);
}

function nameList(names: readonly string[], what: string): string {
  if (names.length === 0) return '';
  const shown = names.slice(0, 10).map(quote).join(', ');
  const more = names.length > 10 ? ` and ${names.length - 10} more` : '';
  return `${names.length} ${what} tensor${names.length === 1 ? '' : 's'}: ${shown}${more}`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((dim, i) => dim === b[i]);
}

// ---- dtype conversion ----

const bf16ToF16Bits = (bits: number) => f32BitsToF16Bits(bits << 16);
const bf16ToF32Bits = (bits: number) => bits << 16;

function decode(bytes: Bytes, entry: Entry, float: FloatFormat, fail: (d: string) => SafetensorsError): LoadedTensor {
  const shape = entry.shape;
  const half = float === 'f16';
  switch (entry.dtype) {
    case 'F32':
      return half
        ? { dtype: 'f16', shape, data: mapBits(view(bytes, Uint32Array), f32BitsToF16Bits, Uint16Array) }
        : { dtype: 'f32', shape, data: view(bytes, Float32Array) };
    case 'F16':
      return half
        ? { dtype: 'f16', shape, data: view(bytes, Uint16Array) }
        : { dtype: 'f32', shape, data: asF32(mapBits(view(bytes, Uint16Array), f16BitsToF32Bits, Uint32Array)) };
    case 'BF16':
      return half
        ? { dtype: 'f16', shape, data: mapBits(view(bytes, Uint16Array), bf16ToF16Bits, Uint16Array) }
        : { dtype: 'f32', shape, data: asF32(mapBits(view(bytes, Uint16Array), bf16ToF32Bits, Uint32Array)) };
    case 'I32':
      return { dtype: 'i32', shape, data: view(bytes, Int32Array) };
    case 'I64':
      return { dtype: 'i32', shape, data: narrowI64(view(bytes, Int32Array), fail) };
    case 'U8':
    case 'BOOL':
      return { dtype: 'u8', shape, data: bytes };
    default:
      throw fail(`dtype ${entry.dtype} cannot be loaded (supported: F32, F16, BF16, I32, I64, U8, BOOL)`);
  }
}

interface TypedArrayClass<T> {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  new (length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/** A typed view of the bytes, copied first only when the offset is misaligned for the element type. */
function view<T>(bytes: Bytes, Type: TypedArrayClass<T>): T {
  const aligned = bytes.byteOffset % Type.BYTES_PER_ELEMENT === 0 ? bytes : bytes.slice();
  return new Type(aligned.buffer, aligned.byteOffset, aligned.length / Type.BYTES_PER_ELEMENT);
}

function mapBits<T extends Uint16Array<ArrayBuffer> | Uint32Array<ArrayBuffer>>(
  src: Uint16Array | Uint32Array,
  convert: (bits: number) => number,
  Type: TypedArrayClass<T>,
): T {
  const out = new Type(src.length);
  for (let i = 0; i < src.length; i++) out[i] = convert(src[i]);
  return out;
}

function asF32(bits: Uint32Array<ArrayBuffer>): Float32Array<ArrayBuffer> {
  return new Float32Array(bits.buffer, bits.byteOffset, bits.length);
}

/** Little-endian (lo, hi) word pairs to int32; a value that does not fit is an error, not a silent wrap. */
function narrowI64(words: Int32Array, fail: (d: string) => SafetensorsError): Int32Array<ArrayBuffer> {
  const out = new Int32Array(words.length / 2);
  for (let i = 0; i < out.length; i++) {
    const lo = words[2 * i];
    const hi = words[2 * i + 1];
    if (hi !== lo >> 31) {
      const value = (BigInt(hi) << 32n) + BigInt(lo >>> 0);
      throw fail(`I64 element ${i} = ${value} does not fit in int32 [-2147483648, 2147483647]`);
    }
    out[i] = lo;
  }
  return out;
}

// ---- writer ----

export interface TensorToWrite {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Raw little-endian elements, e.g. Uint16Array bits for F16/BF16, BigInt64Array or Int32Array pairs for I64. */
  readonly data: ArrayBufferView;
}

/** A safetensors file: header padded with spaces to 8 bytes, tensors stored largest dtype first so each is
 * aligned to its element size with no gaps (as the reference writer does). */
export function writeSafetensors(
  tensors: Readonly<Record<string, TensorToWrite>> | ReadonlyMap<string, TensorToWrite>,
  metadata?: Readonly<Record<string, string>>,
): Bytes {
  const entries: [string, TensorToWrite][] = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  entries.forEach(([name, tensor]) => checkWritable(name, tensor));
  entries.sort(([a, x], [b, y]) => DTYPE_BYTES[y.dtype] - DTYPE_BYTES[x.dtype] || (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = Object.create(null);
  if (metadata) {
    parseMetadata(metadata, writerFail);
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, { dtype, shape, data }] of entries) {
    header[name] = { dtype, shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerBytes = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerBytes + offset).fill(0x20, 8 + json.length, 8 + headerBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes), true);
  out.set(json, 8);
  let position = 8 + headerBytes;
  for (const [, { data }] of entries) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), position);
    position += data.byteLength;
  }
  return out;
}

const writerFail: Fail = (detail, tensor) => new SafetensorsError('writeSafetensors', detail, tensor);

function checkWritable(name: string, { dtype, shape, data }: TensorToWrite): void {
  if (name === '__metadata__') throw writerFail('__metadata__ is reserved', name);
  const size = dtypeBytes.get(dtype);
  if (size === undefined) throw writerFail(`unknown dtype ${quote(String(dtype))}`, name);
  if (!shape.every((dim) => isCount(dim))) throw writerFail(`shape ${formatShape(shape)} has an invalid dim`, name);
  const needed = byteCount(shape, size) ?? `more than ${MAX_BYTES}`;
  if (needed !== BigInt(data.byteLength)) {
    throw writerFail(`data is ${data.byteLength} bytes, shape ${formatShape(shape)} x ${size} needs ${needed}`, name);
  }
}

// ---- helpers ----

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** An own property: keys such as `constructor` must never resolve through the prototype. */
function field(record: Record<string, unknown>, key: string, fail: (detail: string) => SafetensorsError): unknown {
  if (!Object.hasOwn(record, key)) throw fail(`lacks ${key}`);
  return record[key];
}

/** A short description of a JSON value for messages; hostile values can be huge or deeply nested. */
function describe(value: unknown): string {
  if (Array.isArray(value)) {
    const flat = value.length <= 4 && value.every((item) => item === null || typeof item !== 'object');
    return flat ? `[${value.map(describe).join(', ')}]` : `an array of ${value.length}`;
  }
  if (value !== null && typeof value === 'object') return 'an object';
  return typeof value === 'string' ? quote(value) : String(value);
}

function formatShape(shape: readonly unknown[]): string {
  return shape.length <= 8 ? `[${shape.join(', ')}]` : `[${shape.slice(0, 8).join(', ')}, … (${shape.length} dims)]`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function quote(text: string): string {
  return JSON.stringify(truncate(text, 120));
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
