"""Held-out passages for bench:decode: each fragment of bench/prompts.txt with the text before it in its
held-out document, about --tokens tokens in all (whole words, the document's own line breaks kept).

The fragments alone (~12 tokens) are the start of a line; a passage gives the models the context a real prompt has.
Usage: /usr/bin/python3 tools/train/bench_passages.py [--tokens 64]   (writes bench/passages.json)
"""
import argparse
import json
import os

from bpe import EOT, Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))


def passage(doc_lines, i, fragment, tok, budget):
    """The fragment (a prefix of line i) preceded by as many whole words of the lines before it as fit the budget."""
    before = '\n'.join(doc_lines[:i])
    words = before.split(' ')
    for start in range(len(words)):
        text = ' '.join(words[start:]).lstrip() + ('\n' if before else '') + fragment
        if len(tok.encode(text)) <= budget:
            return text.lstrip('\n')
    return fragment


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--tokens', type=int, default=64)
    args = ap.parse_args()
    tok = Tokenizer.load(os.path.join(HERE, 'runs', 'tokenizer'))
    docs = [d.split('\n') for d in open(os.path.join(HERE, 'runs', 'data', 'val.txt'), encoding='utf-8').read().split(EOT)]
    fragments = open(os.path.join(ROOT, 'bench', 'prompts.txt'), encoding='utf-8').read().strip().split('\n')
    out = []
    for f in fragments:
        hits = [(d, i) for d in docs for i, line in enumerate(d) if line.startswith(f)]
        if not hits:
            raise SystemExit(f'fragment not in the held-out split: {f!r}')
        d, i = hits[0]
        p = passage(d, i, f, tok, args.tokens)
        out.append(p)
        print(len(tok.encode(p)), repr(p[:80]))
    with open(os.path.join(ROOT, 'bench', 'passages.json'), 'w', encoding='utf-8') as fh:
        json.dump(out, fh, indent=1, ensure_ascii=False)
        fh.write('\n')


if __name__ == '__main__':
    main()
