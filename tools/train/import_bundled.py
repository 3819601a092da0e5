"""Rebuild training runs from the bundled models/ folders, so that a fresh clone can evaluate or fine-tune them
without the original checkpoints (runs/ is gitignored and does not survive a new machine).

  nice -n 19 /usr/bin/python3 tools/train/import_bundled.py

Writes runs/target/final.pt (+ done), runs/drafter-ar-bundled/final.pt, runs/drafter-mdlm-bundled/final.pt.
The weights are the bundled F16 values widened to F32; the architectures are the RECIPES of train.py, and every
tensor of the file must match one of the model's (strict load), so a recipe that drifted from the bundle fails here.
"""
import dataclasses
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, 'tools', 'reference'))
from train import RECIPES, build, save_atomic  # noqa: E402
import safetensors_io  # noqa: E402  (tools/reference)

RUNS = os.path.join(HERE, 'runs')
IMPORTS = {'target': ('target', 'target'),
           'drafter-ar': ('drafter-ar', 'drafter-ar-bundled'),
           'drafter-mdlm': ('drafter-mdlm', 'drafter-mdlm-bundled')}


# config.json keys of this project's MDLM extensions (export.py writes them) -> MDLMConfig fields
EXTENSIONS = ('target_features', 'draft_head', 'draft_head_features', 'shift_logits', 'learned_positions',
              'attention_bias')


def import_model(folder, recipe_name, run):
    r = dict(RECIPES[recipe_name])
    with open(os.path.join(ROOT, 'models', folder, 'config.json')) as f:
        hf = json.load(f)
    if r['kind'] == 'mdlm':
        r['cfg'] = dataclasses.replace(r['cfg'], **{k: hf[k] for k in EXTENSIONS if k in hf})
    model = build(r)
    tensors, meta = safetensors_io.load_file(os.path.join(ROOT, 'models', folder, 'model.safetensors'))
    state = model.state_dict()
    loaded = {k: v.float() for k, v in tensors.items() if k in state}
    extra = sorted(set(tensors) - set(state))
    assert not extra, f'models/{folder}: tensors the recipe {recipe_name} does not have: {extra[:5]}'
    model.load_state_dict(loaded, strict=True)
    out = os.path.join(RUNS, run)
    os.makedirs(out, exist_ok=True)
    save_atomic({'model': model.state_dict(), 'kind': r['kind'], 'cfg': r['cfg'],
                 'metrics': {'source': f'models/{folder}/model.safetensors (F16)', 'source_run': meta.get('source_run'),
                             'train_tokens': int(meta.get('trained_tokens', 0)),
                             **({'block_causal': True} if hf.get('block_causal') else {})}}, os.path.join(out, 'final.pt'))
    open(os.path.join(out, 'done'), 'w').close()
    print(f'models/{folder} -> runs/{run}/final.pt ({sum(v.numel() for v in loaded.values())} weights)')


def main():
    for folder, (recipe_name, run) in IMPORTS.items():
        import_model(folder, recipe_name, run)


if __name__ == '__main__':
    main()
