"""Sample text from the trained target (temperature 1, KV cache) to distil the drafters on.

  nice -n 19 /usr/bin/python3 tools/train/sample_distil.py [--tokens 1500000]
  nice -n 19 /usr/bin/python3 tools/train/sample_distil.py --temperature 0 --length 96 --out distil-greedy

Temperature 0 writes the target's greedy continuations: what a drafter must predict to be accepted at greedy
decoding (the target's own outputs, i.e. on-policy distillation); --temperature 0.8 --top-k 50 the continuations
of the demo's sampled setting.

Each row: a 32-token prompt cut from the training split, then 480 tokens sampled from the target; rows are
written back to back, separated by <|endoftext|>, to tools/train/runs/distil/train.bin (uint16). Resumable: rows
already in the file are kept and sampling continues with the next batch (seeded per batch).
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import GPT2, matmul_dtype  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EOT_ID = 8191


@torch.no_grad()
def sample_cached(model, prompt, n_new, temperature=1.0, generator=None, dt=None, top_k=0):
    """prompt (B, P) -> tokens (B, P + n_new), logits after the last one (B, V). Incremental forward, KV cache;
    temperature 0 takes the argmax; top_k > 0 samples among the k largest logits only, as the runtime does.
    Matmuls and the KV cache in dt (default: models.matmul_dtype()), the residual stream, layer norms, GELU and
    softmax in fp32 (bf16 element-wise ops are slow on CPUs); tokens drawn by inverse CDF."""
    cfg = model.cfg
    dt = dt or matmul_dtype()
    B, P = prompt.shape
    H, hd, T = cfg.n_head, cfg.n_embd // cfg.n_head, P + n_new
    assert T <= cfg.n_positions
    lin = lambda conv, x: torch.addmm(conv.bias.to(dt), x.reshape(-1, x.shape[-1]).to(dt), w[conv]) \
        .view(*x.shape[:-1], -1).float()
    w = {conv: conv.weight.to(dt) for blk in model.h for conv in (blk.attn.c_attn, blk.attn.c_proj, blk.mlp.c_fc,
                                                                   blk.mlp.c_proj)}
    head = model.wte.weight.to(dt)
    kc = [torch.zeros(B, H, T, hd, dtype=dt) for _ in model.h]   # (B, H, T, hd) per layer
    vc = [torch.zeros(B, H, T, hd, dtype=dt) for _ in model.h]
    out = torch.cat([prompt, torch.zeros(B, n_new, dtype=torch.long)], dim=1)
    pos, x_ids = 0, prompt
    while True:
        t = x_ids.shape[1]
        x = model.wte(x_ids) + model.wpe(torch.arange(pos, pos + t))                 # (B, t, d) fp32
        for i, blk in enumerate(model.h):
            q, k, v = lin(blk.attn.c_attn, blk.ln_1(x)).to(dt).split(cfg.n_embd, dim=2)
            q, k, v = (z.reshape(B, t, H, hd).transpose(1, 2) for z in (q, k, v))
            kc[i][:, :, pos:pos + t], vc[i][:, :, pos:pos + t] = k, v
            att = (q @ kc[i][:, :, :pos + t].transpose(-2, -1)).float() / math.sqrt(hd)   # (B, H, t, pos+t)
            causal = torch.ones(t, pos + t, dtype=torch.bool).triu(pos + 1)
            att = att.masked_fill(causal, float('-inf')).softmax(-1).to(dt)
            o = (att @ vc[i][:, :, :pos + t]).transpose(1, 2).reshape(B, t, cfg.n_embd)
            x = x + lin(blk.attn.c_proj, o)
            x = x + lin(blk.mlp.c_proj, F.gelu(lin(blk.mlp.c_fc, blk.ln_2(x)), approximate='tanh'))
        logits = (model.ln_f(x[:, -1]).to(dt) @ head.t()).float()
        pos += t
        if pos == T:
            return out, logits
        if temperature == 0:
            nxt = logits.argmax(-1, keepdim=True)
        else:
            scaled = logits / temperature
            if top_k > 0:
                kth = scaled.topk(top_k, dim=-1).values[:, -1:]
                scaled = scaled.masked_fill(scaled < kth, float('-inf'))
            cdf = scaled.softmax(-1).cumsum(-1)
            u = torch.rand(B, 1, generator=generator) * cdf[:, -1:]
            nxt = torch.searchsorted(cdf, u).clamp_(max=cfg.vocab_size - 1)
        out[:, pos] = nxt[:, 0]
        x_ids = nxt


def load_target(path=None):
    path = path or os.path.join(HERE, 'runs', 'target', 'final.pt')
    ck = torch.load(path)
    model = GPT2(ck['cfg'])
    model.load_state_dict(ck['model'])
    return model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--tokens', type=int, default=1_500_000)
    ap.add_argument('--batch', type=int, default=96)
    ap.add_argument('--prompt', type=int, default=32)
    ap.add_argument('--length', type=int, default=512)
    ap.add_argument('--temperature', type=float, default=1.0)
    ap.add_argument('--top-k', type=int, default=0, help='sample among the k most likely tokens (0: all)')
    ap.add_argument('--seed', type=int, default=4242)
    ap.add_argument('--target-run', default='target')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', default='distil', help='folder under runs/')
    args = ap.parse_args()
    # One thread: decode steps are many small ops, and with two threads on this shared 2-core machine every op
    # waits for the slower thread (measured 7x slower).
    torch.set_num_threads(args.threads)
    model = load_target(os.path.join(HERE, 'runs', args.target_run, 'final.pt'))
    train = np.fromfile(os.path.join(HERE, 'runs', 'data', 'train.bin'), dtype=np.uint16)
    out_dir = os.path.join(HERE, 'runs', args.out)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, 'train.bin')
    part = path + '.part'
    row = args.length + 1                                            # row tokens + EOT separator
    done_rows = os.path.getsize(part) // 2 // row if os.path.exists(part) else 0
    if os.path.exists(part):
        os.truncate(part, done_rows * row * 2)
    n_rows = math.ceil(args.tokens / row / args.batch) * args.batch
    t0 = time.time()
    for b0 in range(done_rows - done_rows % args.batch, n_rows, args.batch):
        g = torch.Generator().manual_seed(args.seed + b0)
        starts = torch.randint(0, len(train) - args.prompt, (args.batch,), generator=g)
        prompt = torch.stack([torch.from_numpy(train[s:s + args.prompt].astype(np.int64)) for s in starts.tolist()])
        rows, _ = sample_cached(model, prompt, args.length - args.prompt, args.temperature, g,
                                top_k=args.top_k)
        rows = torch.cat([rows, torch.full((args.batch, 1), EOT_ID)], dim=1).numpy().astype(np.uint16)
        with open(part, 'ab') as f:
            f.write(rows[max(0, done_rows - b0):].tobytes())
        done_rows = b0 + args.batch
        print(f'{done_rows}/{n_rows} rows, {done_rows * row} tokens, '
              f'{(done_rows * row) / (time.time() - t0):.0f} tok/s this process', flush=True)
    os.replace(part, path)
    print('wrote', path)


if __name__ == '__main__':
    main()
