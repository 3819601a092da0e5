/**
 * GPT-2 byte-level BPE tokenizer (REFERENCE.md §3). Browser-safe: no node: imports, no dependencies.
 *
 * Text is split with the GPT-2 regex, each piece's UTF-8 bytes start as single-byte tokens, and adjacent pairs are
 * merged lowest rank first. Pieces repeat a lot in natural text, so their token ids are cached.
 */

/** The parts of an HF tokenizer.json that are read: the BPE model, and added tokens (all treated as special). */
export interface TokenizerJson {
  model: { type?: string; vocab: Record<string, number>; merges: Array<string | [string, string]> };
  added_tokens?: Array<{ id: number; content: string }>;
}

export interface VocabMergesOptions {
  /** Extra special tokens, e.g. an MDLM mask token. `<|endoftext|>` is special whenever the vocab has it. */
  specialTokens?: Record<string, number>;
  /** File names for error messages (default vocab.json and merges.txt). */
  vocabSource?: string;
  mergesSource?: string;
}

export interface EncodeOptions {
  /** Emit special tokens found in the text as their ids; otherwise they are encoded as ordinary text. */
  allowSpecial?: boolean;
}

/** Decodes one token at a time without splitting a UTF-8 sequence that spans tokens. */
export interface StreamDecoder {
  /** Text completed by this token; bytes of an unfinished character are held back. */
  push(id: number): string;
  /** Whatever is held back (U+FFFD for an incomplete sequence); the decoder can then be reused. */
  flush(): string;
}

/** Malformed vocab, merges or tokenizer.json; the message names the entry or line. */
export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

const EOS_TOKEN = '<|endoftext|>';

// Contractions, letter runs, digit runs, other-symbol runs (each with one optional leading space), then whitespace:
// `\s+(?!\S)` leaves the last space of a run to prefix the following word.
const PRETOKENIZE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

// Bounds memory in long-lived pages; a full reset is cheap because common pieces come back within a few KB of text.
const CACHE_LIMIT = 100_000;

// Heap entries pack (rank, position) into one number, rank in the high bits, so ties go to the leftmost pair;
// exact while ranks stay below 2^21 (GPT-2 has 50k merges).
const POSITION_RANGE = 2 ** 32;
export const MAX_MERGES = 2 ** 21;
/** Largest vocabulary (merge keys pack two ids below it into one exact number); real ones are under 2^18. */
export const MAX_VOCAB_SIZE = 2 ** 24;
/** Ids the vocabulary may leave unused below its largest one: a stray huge id must not size every table. */
export const MAX_UNUSED_IDS = 1024;

const utf8Encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF in the output, so decode(encode(x)) === x holds for every x.
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * GPT-2 maps every byte to a printable character so that tokens never hold whitespace or control characters:
 * printable Latin-1 bytes stand for themselves, the other 68 take U+0100 onwards in byte order.
 */
export const BYTE_CHARS: readonly string[] = (() => {
  const chars: string[] = [];
  let next = 0x100;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars.push(String.fromCharCode(printable ? b : next++));
  }
  return chars;
})();
const CHAR_BYTES = new Map(BYTE_CHARS.map((c, b) => [c, b]));

interface Merge {
  left: string;
  right: string;
  /** Where the merge came from, for error messages. */
  source: string;
}

export class Tokenizer {
  /** One more than the largest id, special tokens included. */
  readonly vocabSize: number;
  readonly eosTokenId: number | undefined;
  /** A special token whose text contains "mask" (MDLM checkpoints add one), if any. */
  readonly maskTokenId: number | undefined;

  private readonly ids = new Map<string, number>();
  private readonly tokens: Array<string | undefined> = [];
  private readonly specials: Map<string, number>;
  private readonly specialPattern: RegExp | undefined;
  /** Token id of each single byte, -1 where the vocab lacks it. */
  private readonly byteIds = new Int32Array(256);
  /** (left id · vocabSize + right id) → merge rank. */
  private readonly mergeRanks = new Map<number, number>();
  /** Merge rank → id of the merged token. */
  private readonly mergedIds: Int32Array;
  /** Bytes of token i are tokenBytes[tokenOffsets[i] .. tokenOffsets[i + 1]). */
  private readonly tokenBytes: Uint8Array;
  private readonly tokenOffsets: Int32Array;
  private readonly cache = new Map<string, number[]>();

  /** From vocab.json (token → id, parsed or as text) and the text of merges.txt. */
  static fromVocabMerges(vocab: Record<string, number> | string, merges: string, options: VocabMergesOptions = {}): Tokenizer {
    const vocabSource = options.vocabSource ?? 'vocab.json';
    const mergesSource = options.mergesSource ?? 'merges.txt';
    const parsed = (typeof vocab === 'string' ? parseJson(vocab, vocabSource) : vocab) as Record<string, number>;
    function* mergeList(): Generator<Merge> {
      let i = 0;
      for (let start = 0; start <= merges.length; i++) {
        let end = merges.indexOf('\n', start);
        if (end < 0) end = merges.length;
        const line = merges.slice(start, end > start && merges.charCodeAt(end - 1) === 0x0d ? end - 1 : end);
        start = end + 1;
        if (line.trim() === '' || (i === 0 && line.startsWith('#'))) continue;
        yield parseMerge(line, `${mergesSource} line ${i + 1}`);
      }
    }
    return new Tokenizer(parsed, mergeList(), new Map(Object.entries(options.specialTokens ?? {})), vocabSource);
  }

  /** From an HF tokenizer.json, parsed or as text; `source` names it in errors. */
  static fromTokenizerJson(json: TokenizerJson | string, source = 'tokenizer.json'): Tokenizer {
    const parsed = (typeof json === 'string' ? parseJson(json, source) : json) as TokenizerJson;
    const model = parsed?.model;
    if (model?.type !== undefined && model.type !== 'BPE') {
      throw new TokenizerError(`${source}: model.type is "${model.type}", expected "BPE"`);
    }
    if (typeof model?.vocab !== 'object' || !Array.isArray(model.merges)) {
      throw new TokenizerError(`${source}: model.vocab (object) and model.merges (array) are required`);
    }
    if (model.merges.length > MAX_MERGES) {
      throw new TokenizerError(`${source}: model.merges has ${model.merges.length} entries, over the limit of ${MAX_MERGES}`);
    }
    function* mergeList(): Generator<Merge> {
      for (const [i, merge] of model.merges.entries()) {
        const where = `${source} model.merges[${i}]`;
        if (typeof merge === 'string') yield parseMerge(merge, where);
        else if (Array.isArray(merge) && merge.length === 2 && merge.every((s) => typeof s === 'string')) yield { left: merge[0], right: merge[1], source: where };
        else throw new TokenizerError(`${where}: expected "a b" or ["a", "b"], got ${truncate(JSON.stringify(merge))}`);
      }
    }
    const specials = new Map<string, number>();
    const added = parsed.added_tokens ?? [];
    if (!Array.isArray(added)) throw new TokenizerError(`${source}: added_tokens must be an array`);
    added.forEach((t, i) => {
      if (typeof t?.content !== 'string') throw new TokenizerError(`${source} added_tokens[${i}]: no content`);
      specials.set(t.content, t.id);
    });
    return new Tokenizer(model.vocab, mergeList(), specials, source);
  }

  private constructor(vocab: Record<string, number>, merges: Iterable<Merge>, specials: Map<string, number>, source: string) {
    if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab)) throw new TokenizerError(`${source}: vocab must be an object token → id`);
    checkIds(vocab, specials, source);
    for (const [token, id] of Object.entries(vocab)) this.addToken(token, id, 'vocab', source);
    if (vocab[EOS_TOKEN] !== undefined && !specials.has(EOS_TOKEN)) specials.set(EOS_TOKEN, vocab[EOS_TOKEN]);
    for (const [token, id] of specials) this.addToken(token, id, 'special token', source);
    this.specials = specials;
    this.vocabSize = this.tokens.length;
    this.eosTokenId = this.ids.get(EOS_TOKEN);
    this.maskTokenId = [...specials].find(([token]) => /mask/i.test(token))?.[1];
    this.specialPattern = specials.size === 0 ? undefined : new RegExp(
      // Longest first, so that a special token containing another one wins.
      [...specials.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|'), 'g');

    for (let b = 0; b < 256; b++) this.byteIds[b] = this.ids.get(BYTE_CHARS[b]) ?? -1;

    // Each merge is checked as it is parsed, so a bad file fails at its first bad line, before the rest is held.
    const merged: number[] = [];
    for (const { left, right, source } of merges) {
      const leftId = this.ids.get(left);
      const rightId = this.ids.get(right);
      const mergedId = this.ids.get(left + right);
      for (const [symbol, id] of [[left, leftId], [right, rightId], [left + right, mergedId]] as const) {
        if (id === undefined) throw new TokenizerError(`${source}: symbol ${truncate(JSON.stringify(symbol))} is not in the vocab`);
      }
      if (merged.length === MAX_MERGES) throw new TokenizerError(`${source}: more than ${MAX_MERGES} merges, over the limit`);
      this.mergeRanks.set(leftId! * this.vocabSize + rightId!, merged.length);
      merged.push(mergedId!);
    }
    this.mergedIds = Int32Array.from(merged);

    const bytes: number[] = [];
    this.tokenOffsets = new Int32Array(this.vocabSize + 1);
    for (let id = 0; id < this.vocabSize; id++) {
      this.tokenOffsets[id] = bytes.length;
      const token = this.tokens[id];
      if (token === undefined) continue;
      // Special tokens are literal text; everything else is spelled in the byte alphabet.
      bytes.push(...(specials.has(token) ? utf8Encoder.encode(token) : tokenToBytes(token, id)));
    }
    this.tokenOffsets[this.vocabSize] = bytes.length;
    this.tokenBytes = Uint8Array.from(bytes);
  }

  /** Ids below vocabSize that no token has (up to `limit` of them): a model could emit them, and they cannot be decoded. */
  missingIds(limit = 5): number[] {
    const missing: number[] = [];
    for (let id = 0; id < this.vocabSize && missing.length < limit; id++) if (this.tokens[id] === undefined) missing.push(id);
    return missing;
  }

  tokenToId(token: string): number | undefined {
    return this.ids.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (!options.allowSpecial || this.specialPattern === undefined) {
      this.encodeOrdinary(text, out);
      return out;
    }
    let start = 0;
    for (const match of text.matchAll(this.specialPattern)) {
      this.encodeOrdinary(text.slice(start, match.index), out);
      out.push(this.specials.get(match[0])!);
      start = match.index + match[0].length;
    }
    this.encodeOrdinary(text.slice(start), out);
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    const offsets = this.tokenOffsets;
    let length = 0;
    for (let i = 0; i < ids.length; i++) {
      this.checkId(ids[i]);
      length += offsets[ids[i] + 1] - offsets[ids[i]];
    }
    // Byte by byte: tokens average ~4 bytes, too short for a subarray per token to pay off.
    const bytes = new Uint8Array(length);
    let n = 0;
    for (let i = 0; i < ids.length; i++) {
      for (let j = offsets[ids[i]]; j < offsets[ids[i] + 1]; j++) bytes[n++] = this.tokenBytes[j];
    }
    return utf8Decoder.decode(bytes);
  }

  createStreamDecoder(): StreamDecoder {
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    return {
      push: (id) => {
        this.checkId(id);
        const bytes = this.tokenBytes.subarray(this.tokenOffsets[id], this.tokenOffsets[id + 1]);
        return decoder.decode(bytes, { stream: true });
      },
      flush: () => decoder.decode(),
    };
  }

  private addToken(token: string, id: number, kind: string, source: string): void {
    // An empty special token would match between every two characters.
    if (token === '' && kind !== 'vocab') throw new TokenizerError(`${source}: ${kind} with id ${id} has empty content`);
    const existing = this.tokens[id];
    if (existing !== undefined && existing !== token && kind === 'vocab') {
      throw new TokenizerError(`${source}: vocab id ${id} is given to both ${truncate(JSON.stringify(existing))} and ${truncate(JSON.stringify(token))}`);
    }
    this.tokens[id] = token;
    this.ids.set(token, id);
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`token id ${id} is out of range for vocab size ${this.vocabSize}`);
    }
    if (this.tokens[id] === undefined) throw new RangeError(`token id ${id} is not in the vocab`);
  }

  private encodeOrdinary(text: string, out: number[]): void {
    const pattern = new RegExp(PRETOKENIZE); // exec moves lastIndex, so each call needs its own copy
    for (let match; (match = pattern.exec(text)) !== null; ) {
      const piece = match[0];
      let ids = this.cache.get(piece);
      if (ids === undefined) {
        ids = this.bpe(piece);
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(piece, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /**
   * Merges one piece: symbols form a linked list over the piece's bytes and a heap holds the candidate pairs.
   * Entries go stale when a neighbour merges; they are recognised on pop because the pair's rank has changed.
   */
  private bpe(piece: string): number[] {
    const bytes = utf8Encoder.encode(piece);
    const n = bytes.length;
    const ids = new Int32Array(n); // -1 once merged into the symbol on its left
    const prev = new Int32Array(n);
    const next = new Int32Array(n); // -1 at the end
    for (let i = 0; i < n; i++) {
      ids[i] = this.byteIds[bytes[i]];
      if (ids[i] < 0) throw new TokenizerError(`the vocab has no token for byte 0x${bytes[i].toString(16)}`);
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap = new MinHeap();
    const pushPair = (left: number): void => {
      const rank = this.mergeRanks.get(ids[left] * this.vocabSize + ids[next[left]]);
      if (rank !== undefined) heap.push(rank * POSITION_RANGE + left);
    };
    for (let i = 0; i + 1 < n; i++) pushPair(i);

    while (heap.size > 0) {
      const entry = heap.pop();
      const left = entry % POSITION_RANGE;
      const rank = (entry - left) / POSITION_RANGE;
      const right = next[left];
      if (ids[left] < 0 || right < 0) continue;
      if (this.mergeRanks.get(ids[left] * this.vocabSize + ids[right]) !== rank) continue;
      ids[left] = this.mergedIds[rank];
      ids[right] = -1;
      next[left] = next[right];
      if (next[left] >= 0) prev[next[left]] = left;
      if (prev[left] >= 0) pushPair(prev[left]);
      if (next[left] >= 0) pushPair(left);
    }

    const result: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) result.push(ids[i]);
    return result;
  }
}

function parseMerge(line: string, source: string): Merge {
  const parts = line.split(' ', 3);
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
    throw new TokenizerError(`${source}: expected two symbols separated by one space, got ${truncate(JSON.stringify(line))}`);
  }
  return { left: parts[0], right: parts[1], source };
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${source}: invalid JSON (${truncate((e as Error).message)})`);
  }
}

/**
 * Ids are validated before anything is sized by them: integers, below MAX_VOCAB_SIZE, and leaving at most
 * MAX_UNUSED_IDS ids unused below the largest (tables are indexed by id, so one stray huge id would size them all).
 */
function checkIds(vocab: Record<string, number>, specials: Map<string, number>, source: string): void {
  let largest = -1;
  let largestToken = '';
  let count = 0;
  const check = (token: string, id: unknown, kind: string) => {
    count++;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw new TokenizerError(`${source}: ${kind} ${truncate(JSON.stringify(token))} has invalid id ${truncate(String(id))}`);
    if (id >= MAX_VOCAB_SIZE) throw new TokenizerError(`${source}: ${kind} ${truncate(JSON.stringify(token))} has id ${id}, over the limit of ${MAX_VOCAB_SIZE - 1}`);
    if (id > largest) [largest, largestToken] = [id, token];
  };
  for (const token in vocab) if (Object.hasOwn(vocab, token)) check(token, vocab[token], 'vocab');
  for (const [token, id] of specials) check(token, id, 'special token');
  if (largest + 1 - count > MAX_UNUSED_IDS) {
    throw new TokenizerError(`${source}: id ${largest} of ${truncate(JSON.stringify(largestToken))} leaves ${largest + 1 - count} or more ids unused among ${count} tokens (the limit is ${MAX_UNUSED_IDS})`);
  }
}

function truncate(text: string, max = 120): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

function tokenToBytes(token: string, id: number): number[] {
  return Array.from(token, (char) => {
    const byte = CHAR_BYTES.get(char);
    if (byte === undefined) {
      const code = char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
      throw new TokenizerError(`vocab token "${token}" (id ${id}) has U+${code}, which is outside the byte alphabet`);
    }
    return byte;
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Binary min-heap of numbers. */
class MinHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(value: number): void {
    const items = this.items;
    let i = items.length;
    items.push(value);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent] <= value) break;
      items[i] = items[parent];
      i = parent;
    }
    items[i] = value;
  }

  pop(): number {
    const items = this.items;
    const top = items[0];
    const last = items.pop()!;
    if (items.length > 0) {
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= items.length) break;
        if (child + 1 < items.length && items[child + 1] < items[child]) child++;
        if (items[child] >= last) break;
        items[i] = items[child];
        i = child;
      }
      items[i] = last;
    }
    return top;
  }
}
