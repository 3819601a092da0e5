"""Out-of-domain prompts for bench:decode: technical prose the models never trained on (the training text is fiction,
speeches, news and encyclopaedic sentences), from the DESCRIPTION sections of Debian's manual pages.

  /usr/bin/python3 tools/train/ood_passages.py      # -> bench/passages-ood.json

Each prompt is the first paragraphs of one page's DESCRIPTION, cut at a word boundary near 300 characters
(about 64 tokens of the bundled tokenizer, like bench/passages.json). The file is committed: CI machines need not
have the same manual pages installed.
"""
import json
import os
import re
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
PAGES = ['tar', 'grep', 'find', 'sed', 'make', 'perl', 'dpkg', 'curl', 'ssh', 'xz', 'gzip', 'diff', 'patch', 'cmake',
         'ls', 'cp']
CHARS = 300


def description(page):
    text = subprocess.run(['man', '-P', 'cat', page], capture_output=True, text=True,
                          env=dict(os.environ, MANWIDTH='2000')).stdout
    text = re.sub(r'.\x08', '', text)   # overstrike bold and underline of the terminal formatter
    m = re.search(r'^DESCRIPTION\n(.*?)(?=^\S)', text, re.S | re.M)
    if not m:
        return None
    paras = [re.sub(r'\s+', ' ', p).strip() for p in m.group(1).split('\n\n')]
    prose = ' '.join(p for p in paras if len(p) > 60)
    if len(prose) < CHARS:
        return None
    cut = prose.rfind(' ', 0, CHARS)
    return prose[:cut]


def main():
    prompts = [p for p in (description(page) for page in PAGES) if p]
    out = os.path.join(ROOT, 'bench', 'passages-ood.json')
    with open(out, 'w') as f:
        json.dump(prompts, f, indent=1, ensure_ascii=False)
        f.write('\n')
    print(f'{len(prompts)} prompts -> {os.path.relpath(out, ROOT)}')


if __name__ == '__main__':
    main()
