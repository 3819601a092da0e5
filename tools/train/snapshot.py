"""Turn the latest checkpoint of an unfinished run into a final.pt that export.py can read, so that a
partially trained model can be bundled (and the run resumed later from its untouched ckpt.pt).

    /usr/bin/python3 tools/train/snapshot.py target            # writes runs/target-step<N>/final.pt
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from train import RECIPES  # noqa: E402

RUNS = os.path.join(os.path.dirname(__file__), 'runs')


def main():
    run = sys.argv[1]
    model_name = sys.argv[2] if len(sys.argv) > 2 else run
    ck = torch.load(os.path.join(RUNS, run, 'ckpt.pt'))
    recipe = RECIPES[model_name]
    out = os.path.join(RUNS, f'{run}-step{ck["step"]}')
    os.makedirs(out, exist_ok=True)
    metrics = {'train_tokens': int(ck['tokens']), 'train_minutes': ck['train_s'] / 60, 'steps': int(ck['step']),
               'note': f'snapshot of an unfinished {recipe["steps"]}-step run'}
    # A run that changed the recipe's architecture (--target-features) stored its own config.
    torch.save({'model': ck['model'], 'kind': recipe['kind'], 'cfg': ck.get('cfg', recipe['cfg']), 'metrics': metrics},
               os.path.join(out, 'final.pt'))
    print(out)


if __name__ == '__main__':
    main()
