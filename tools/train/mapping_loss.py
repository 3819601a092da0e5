"""What mapping the AR drafter onto MDLM's layout costs its first position, before any training.

  nice -n 19 /usr/bin/python3 tools/train/ar_to_mdlm.py --ar-run drafter-ar-bundled --out mdlm-shift-from-ar --shift-logits
  nice -n 19 /usr/bin/python3 tools/train/mapping_loss.py [--mapped mdlm-shift-from-ar --ar-run drafter-ar-bundled]

The mapped drafter (shifted logits, so its first position is a next-token prediction) is measured as exported
(MDLM's rotary positions), with no positions at all (rotary off), and with the AR drafter's learned positions
added to its embeddings (rotary off): the gap from the last to the AR drafter itself is what MDLM's blocks
lack besides positions (attention biases). acceptance.py's measure, block-causal, gamma 4, T = 1.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import acceptance  # noqa: E402
from train import val_windows  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--mapped', default='mdlm-shift-from-ar')
    ap.add_argument('--ar-run', default='drafter-ar-bundled')
    ap.add_argument('--contexts', type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(2)
    target, _ = acceptance.load('target')
    windows = val_windows(127, limit=args.contexts)
    ar, _ = acceptance.load(args.ar_run)
    wpe = ar.state_dict()['wpe.weight'].float()
    for layout in ('rotary', 'no positions', 'learned positions'):
        mdlm, kind = acceptance.load(args.mapped)
        assert mdlm.cfg.shift_logits, f'{args.mapped}: map with ar_to_mdlm.py --shift-logits'
        if layout != 'rotary':
            mdlm.backbone.rotary_emb.inv_freq.zero_()
        if layout == 'learned positions':
            embed = mdlm.backbone.vocab_embed.forward
            mdlm.backbone.vocab_embed.forward = lambda x, embed=embed: embed(x) + wpe[:x.shape[1]][None]
        r = acceptance.measure(target, mdlm, kind, windows, 4, block_causal=True)
        print(layout, json.dumps({k: round(r[k], 4) for k in ('alpha_1', 'sampled_accepted', 'greedy_accepted')}), flush=True)
    r = acceptance.measure(target, ar, 'gpt2', windows, 4)
    print(f'{args.ar_run} (AR)', json.dumps({k: round(r[k], 4) for k in ('alpha_1', 'sampled_accepted', 'greedy_accepted')}), flush=True)


if __name__ == '__main__':
    main()
