"""Initialise an MDLM drafter from a trained GPT-2 drafter of the same width and depth (adaptation from an AR
model, as DiffuLLaMA / Dream do at scale): a masked diffusion LM trained from scratch on this machine's budget
stays at the unigram level (its NELBO bound equals the unigram perplexity), while the AR drafter trained on the
same tokens already uses its context. Fine-tuning (train.py --init-run) then teaches the copied layers
bidirectional attention, rotary positions and to predict the token at a masked position instead of the next one.

  nice -n 19 /usr/bin/python3 tools/train/ar_to_mdlm.py --ar-run drafter-ar-bundled --out mdlm-from-ar

Mapping (GPT-2 Conv1D weights are [in, out], MDLM Linear weights [out, in]):
  vocab_embed <- wte (the mask row: the mean embedding);  output_layer.linear <- wte (GPT-2's tied head), bias 0
  blocks.i.attn_qkv <- c_attn^T, attn_out <- attn.c_proj^T, mlp.0 / mlp.2 <- c_fc^T / mlp.c_proj^T with biases
  norm1 / norm2 / norm_final weights <- ln_1 / ln_2 / ln_f weights
  adaLN_modulation: weight 0, bias = (shift_msa = ln_1.bias, scale 0, gate_msa 1, shift_mlp = ln_2.bias, scale 0,
  gate_mlp 1) and final (shift = ln_f.bias, scale 0): with c constant (no time conditioning) each block computes
  exactly GPT-2's pre-LN block, less the attention biases (MDLM's attention has none) and the learned positions.
  --ar-layout keeps those too (config "learned_positions" and "attention_bias": pos_embed <- wpe, attn_qkv.bias <-
  c_attn.bias, attn_out.bias <- attn.c_proj.bias) and shifts the logits, so the mapped drafter's first position is
  the AR drafter's own prediction, exactly.
"""
import argparse
import dataclasses
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from train import RECIPES, build, save_atomic  # noqa: E402

RUNS = os.path.join(HERE, 'runs')


@torch.no_grad()
def ar_to_mdlm(ar_state, mdlm):
    s = {k: v.float() for k, v in ar_state.items()}
    bb = mdlm.backbone
    V, d = s['wte.weight'].shape
    assert bb.vocab_embed.embedding.shape == (V + 1, d), f'vocabulary/width mismatch: AR {V}x{d}'
    assert len(bb.blocks) == sum(1 for k in s if k.endswith('ln_1.weight')), 'depth mismatch'
    emb = torch.cat([s['wte.weight'], s['wte.weight'].mean(0, keepdim=True)])
    bb.vocab_embed.embedding.copy_(emb)
    bb.output_layer.linear.weight.copy_(torch.cat([s['wte.weight'], torch.zeros(1, d)]))
    bb.output_layer.linear.bias.zero_()
    bb.output_layer.norm_final.weight.copy_(s['ln_f.weight'])
    bb.output_layer.adaLN_modulation.weight.zero_()
    bb.output_layer.adaLN_modulation.bias.copy_(torch.cat([s['ln_f.bias'], torch.zeros(d)]))
    for i, blk in enumerate(bb.blocks):
        p = f'h.{i}.'
        blk.norm1.weight.copy_(s[p + 'ln_1.weight'])
        blk.norm2.weight.copy_(s[p + 'ln_2.weight'])
        blk.attn_qkv.weight.copy_(s[p + 'attn.c_attn.weight'].t())
        blk.attn_out.weight.copy_(s[p + 'attn.c_proj.weight'].t())
        if mdlm.cfg.attention_bias:
            blk.attn_qkv.bias.copy_(s[p + 'attn.c_attn.bias'])
            blk.attn_out.bias.copy_(s[p + 'attn.c_proj.bias'])
        blk.mlp[0].weight.copy_(s[p + 'mlp.c_fc.weight'].t())
        blk.mlp[0].bias.copy_(s[p + 'mlp.c_fc.bias'])
        blk.mlp[2].weight.copy_(s[p + 'mlp.c_proj.weight'].t())
        blk.mlp[2].bias.copy_(s[p + 'mlp.c_proj.bias'])
        blk.adaLN_modulation.weight.zero_()
        one, zero = torch.ones(d), torch.zeros(d)
        blk.adaLN_modulation.bias.copy_(torch.cat([s[p + 'ln_1.bias'], zero, one, s[p + 'ln_2.bias'], zero, one]))
    if mdlm.cfg.learned_positions:
        n = bb.pos_embed.weight.shape[0]
        assert s['wpe.weight'].shape[0] >= n, f'the AR model has {s["wpe.weight"].shape[0]} positions, the MDLM {n}'
        bb.pos_embed.weight.copy_(s['wpe.weight'][:n])
    return mdlm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ar-run', default='drafter-ar-bundled')
    ap.add_argument('--out', default='mdlm-from-ar')
    ap.add_argument('--shift-logits', action='store_true', help='keep the AR layout: row i predicts token i + 1 '
                    '(config "shift_logits"), so a draft\'s first position is the AR drafter\'s own prediction')
    ap.add_argument('--ar-layout', action='store_true', help='also keep the learned positions and attention biases '
                    '(config "learned_positions", "attention_bias"; implies --shift-logits)')
    args = ap.parse_args()
    ar = torch.load(os.path.join(RUNS, args.ar_run, 'final.pt'))
    r = dict(RECIPES['drafter-mdlm'])
    r['cfg'] = dataclasses.replace(r['cfg'], shift_logits=args.shift_logits or args.ar_layout,
                                   learned_positions=args.ar_layout, attention_bias=args.ar_layout)
    mdlm = ar_to_mdlm(ar['model'], build(r))
    out = os.path.join(RUNS, args.out)
    os.makedirs(out, exist_ok=True)
    save_atomic({'model': mdlm.state_dict(), 'kind': 'mdlm', 'cfg': r['cfg'],
                 'metrics': dict(ar['metrics'], source=f'runs/{args.ar_run} (GPT-2 drafter) mapped by ar_to_mdlm.py')},
                os.path.join(out, 'final.pt'))
    open(os.path.join(out, 'done'), 'w').close()
    print(f'runs/{args.ar_run} -> runs/{args.out}/final.pt')


if __name__ == '__main__':
    main()
