// Hostile or malformed tokenizer files and configs: each ends quickly in a typed error naming the file, the field
// and the limit, before anything is sized by the bad value.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseGPT2Config, parseMDLMConfig } from '../src/models/config.js';
import { loadGPT2, loadTokenizer } from '../src/models/load.js';
import { MAX_MERGES, Tokenizer, TokenizerError } from '../src/models/tokenizer.js';
import { memoryFolder } from './helpers/memory-folder.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dirFolder } from '../src/models/safetensors-node.js';
import { SafetensorsError } from '../src/models/safetensors.js';

const VOCAB = { a: 0, b: 1, ab: 2, '<|endoftext|>': 3 };

function tokenizerJson(vocab: Record<string, number>, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model: { type: 'BPE', vocab, merges: ['a b'] }, ...extra });
}

async function loadError(files: Record<string, string>): Promise<Error> {
  const error = await loadTokenizer(memoryFolder('ckpt', files)).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(TokenizerError);
  return error as Error;
}

describe('malformed tokenizer files name the file', () => {
  it('tokenizer.json that is not JSON', async () => {
    const error = await loadError({ 'tokenizer.json': '{"model": ' });
    expect(error.message).toMatch(/^ckpt\/tokenizer\.json: invalid JSON \(/);
  });

  it('vocab.json that is not JSON', async () => {
    const error = await loadError({ 'vocab.json': '{"a": 0,', 'merges.txt': '' });
    expect(error.message).toMatch(/^ckpt\/vocab\.json: invalid JSON \(/);
  });

  it('a bad merges.txt line names the file and the line', async () => {
    const error = await loadError({ 'vocab.json': JSON.stringify(VOCAB), 'merges.txt': '#version: 0.2\na b\na c\n' });
    expect(error.message).toBe('ckpt/merges.txt line 3: symbol "c" is not in the vocab');
  });
});

describe('token ids are checked before anything is sized by them', () => {
  it.each([1e9, 2 ** 31, 2 ** 53])('a vocab id of %d is over the limit, refused at once', async (id) => {
    const started = performance.now();
    const error = await loadError({ 'tokenizer.json': tokenizerJson({ ...VOCAB, huge: id }) });
    expect(error.message).toContain(`ckpt/tokenizer.json: vocab "huge" has id ${id}, over the limit of ${2 ** 24 - 1}`);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('an id of 1e7 among 5 tokens leaves ids unused past the limit instead of making a vocabulary of 10,000,001', async () => {
    const error = await loadError({ 'tokenizer.json': tokenizerJson({ ...VOCAB, stray: 1e7 }) });
    expect(error.message).toContain('ckpt/tokenizer.json: id 10000000 of "stray" leaves 9999996 or more ids unused among 5 tokens (the limit is 1024)');
  });

  it('an added token id of 2^31 is refused too', async () => {
    const error = await loadError({ 'tokenizer.json': tokenizerJson(VOCAB, { added_tokens: [{ id: 2 ** 31, content: '<x>' }] }) });
    expect(error.message).toContain(`special token "<x>" has id ${2 ** 31}, over the limit`);
  });

  it('a few unused ids below the largest are allowed', () => {
    expect(Tokenizer.fromVocabMerges({ a: 0, b: 5 }, '').vocabSize).toBe(6);
  });
});

describe('special tokens and merges', () => {
  it('an added token with empty content is refused (it would match between every two characters)', () => {
    const json = tokenizerJson(VOCAB, { added_tokens: [{ id: 4, content: '' }] });
    expect(() => Tokenizer.fromTokenizerJson(json)).toThrow('tokenizer.json: special token with id 4 has empty content');
  });

  it(`more than ${MAX_MERGES} merges are refused at the first one past the limit`, () => {
    const merges = 'a b\n'.repeat(MAX_MERGES + 1);
    expect(() => Tokenizer.fromVocabMerges(VOCAB, merges)).toThrow(`merges.txt line ${MAX_MERGES + 1}: more than ${MAX_MERGES} merges, over the limit`);
  });

  it('a merges.txt naming a missing symbol fails at that line, before later lines are parsed and held', () => {
    // Were every line parsed first, the malformed line 3 would be reported instead.
    expect(() => Tokenizer.fromVocabMerges(VOCAB, 'a c\na b\na b c\n')).toThrow('merges.txt line 1: symbol "c" is not in the vocab');
  });
});

describe('config numbers are bounded before they size a loop or a list', () => {
  const gpt2 = { model_type: 'gpt2', vocab_size: 16, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2 };
  const mdlm = { model_type: 'mdlm', vocab_size: 17, hidden_dim: 32, n_blocks: 2, n_heads: 2, cond_dim: 16, model_length: 32 };

  it.each([1e7, 2 ** 31, 2 ** 53 - 1])('GPT-2 n_layer of %d', (n) => {
    expect(() => parseGPT2Config({ ...gpt2, n_layer: n }, 'ckpt/config.json')).toThrow(new ConfigError(`ckpt/config.json: "n_layer" is ${n}, over the limit of 1024`));
  });

  it.each([1e7, 2 ** 31])('MDLM n_blocks of %d', (n) => {
    expect(() => parseMDLMConfig({ ...mdlm, n_blocks: n }, 'ckpt/config.json')).toThrow(new ConfigError(`ckpt/config.json: "n_blocks" is ${n}, over the limit of 1024`));
  });

  it.each(['target_features', 'draft_head_features'])('MDLM %s past its limit', (field) => {
    expect(() => parseMDLMConfig({ ...mdlm, draft_head: true, [field]: 2 ** 20 }, 'ckpt/config.json')).toThrow(new ConfigError(`ckpt/config.json: "${field}" is ${2 ** 20}, over the limit of ${2 ** 16}`));
  });

  it('MDLM draft_head_features without a draft head', () => {
    expect(() => parseMDLMConfig({ ...mdlm, draft_head_features: 512 }, 'ckpt/config.json')).toThrow(new ConfigError('ckpt/config.json: draft_head_features 512 needs "draft_head": true'));
  });

  it('MDLM shift_logits that is not a boolean', () => {
    expect(() => parseMDLMConfig({ ...mdlm, shift_logits: 1 }, 'ckpt/config.json')).toThrow(new ConfigError('ckpt/config.json: "shift_logits" must be true or false, got 1'));
  });

  it('a vocab_size past the tokenizer limit', () => {
    expect(() => parseGPT2Config({ ...gpt2, vocab_size: 2 ** 30 })).toThrow(`"vocab_size" is ${2 ** 30}, over the limit of ${2 ** 24}`);
  });

  it('an odd GPT-2 head size, which the attention kernels cannot run', () => {
    expect(() => parseGPT2Config({ ...gpt2, n_embd: 8, n_head: 8 })).toThrow(new ConfigError('config.json: n_embd 8 / n_head 8 is an odd head size (1); it must be even'));
  });

  it('an eos_token_id outside the vocabulary', () => {
    expect(() => parseGPT2Config({ ...gpt2, eos_token_id: 16 })).toThrow('"eos_token_id" must be an id in [0, 16), got 16');
  });

  it('loadGPT2 refuses n_layer 1e7 from config.json before opening the weights', async () => {
    const folder = memoryFolder('ckpt', { 'config.json': JSON.stringify({ ...gpt2, n_layer: 1e7 }) });
    await expect(loadGPT2(null as never, folder)).rejects.toThrow('ckpt/config.json: "n_layer" is 10000000, over the limit of 1024');
  });
});

describe('a missing folder is not a folder without a tokenizer', () => {
  it('loadTokenizer names the folder and the system error', async () => {
    const dir = join(tmpdir(), `specdiff-missing-${process.pid}-${Date.now()}`);
    const e = await loadTokenizer(dirFolder(dir)).then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(SafetensorsError);
    expect((e as Error).message).toBe(`${dir}: cannot read the folder (ENOENT)`);
  });

  it('a folder without tokenizer files says what it looked for', async () => {
    await expect(loadTokenizer(memoryFolder('ckpt', { 'vocab.json': '{}' }))).rejects.toThrow(
      new ConfigError('ckpt: no tokenizer (tokenizer.json, or vocab.json and merges.txt): tokenizer.json: not found; merges.txt: not found'),
    );
  });
});
