"""Train one model of the family; resumable, wall-clock bounded.

  nice -n 19 /usr/bin/python3 tools/train/train.py --model target          [--budget-min 110]
  nice -n 19 /usr/bin/python3 tools/train/train.py --model drafter-ar      [--distil]
  nice -n 19 /usr/bin/python3 tools/train/train.py --model drafter-mdlm    [--distil]

State lives in tools/train/runs/<run>/ (run = model name, '+distil' appended with --distil):
  ckpt.pt    model + optimizer + RNG + data cursor, rewritten atomically every --ckpt-min minutes and at exit;
             when present the run resumes from it (same schedule, same batches as an uninterrupted run)
  log.txt    train loss, tokens/s, held-out loss / perplexity
  final.pt   fp32 weights + config + held-out metrics, written when the schedule is complete (then 'done' exists)
Matmuls run in bfloat16 autocast where that is faster than fp32 on the CPU (models.matmul_dtype: mkldnn's bf16
is ~10x fp32 with AVX-512, ~30x slower with AVX2 alone), weights and optimizer state stay fp32.

Fine-tuning a drafter for drafting (how the bundled MDLM drafter was finished; run_all.sh, README.md):
  train.py --model drafter-mdlm --run drafter-mdlm+ar-init --init-run mdlm-from-ar \
           --data distil-greedy=1 --data distil-t1=1 --draft-batch 64 --batch 4 --steps 1000 --lr 5e-4
--init-run starts from another run's final.pt (fresh optimizer and schedule); --data NAME=W mixes in
runs/NAME/train.bin with sampling weight W (real text has 1); --draft-batch adds, for the MDLM, the drafting
objective on short windows: W clean context tokens followed by gamma masks, cross-entropy of every masked token;
with --block-causal that objective runs with block-causal attention (the context causal, the masked block sees
everything), the way the runtime drafts with a KV cache of the context.
"""
import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import GPT2, GPT2Config, MDLM, MDLMConfig, autocast  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, 'runs', 'data')
VOCAB = 8192
EOT_ID = VOCAB - 1

# MDLM config fields that describe how a drafter was made (ar_to_mdlm.py); fine-tuning keeps them.
LAYOUT = ('shift_logits', 'learned_positions', 'attention_bias')

# One entry per model. tokens = batch * seq_len * steps. Timings measured here are in README.md. Step counts are
# sized so that the whole family trains in about three hours on a 2-core machine (README.md, 'Budget').
RECIPES = {
    'target': dict(kind='gpt2', cfg=GPT2Config(n_embd=512, n_layer=6, n_head=8),
                   batch=8, seq_len=512, steps=1000, lr=8e-4, min_lr=8e-5, warmup=150,
                   weight_decay=0.1, grad_clip=1.0, eval_every=100, eval_batches=4),
    'drafter-ar': dict(kind='gpt2', cfg=GPT2Config(n_embd=256, n_layer=4, n_head=4),
                       batch=16, seq_len=512, steps=320, lr=2e-3, min_lr=2e-4, warmup=32,
                       weight_decay=0.1, grad_clip=1.0, eval_every=100, eval_batches=4),
    'drafter-mdlm': dict(kind='mdlm', cfg=MDLMConfig(hidden_dim=256, n_blocks=4, n_heads=4, cond_dim=64),
                         batch=16, seq_len=512, steps=320, lr=2e-3, min_lr=2e-4, warmup=32,
                         weight_decay=0.03, grad_clip=1.0, eval_every=200, eval_batches=4,
                         prefix_frac=0.5),
}


def build(recipe):
    return GPT2(recipe['cfg']) if recipe['kind'] == 'gpt2' else MDLM(recipe['cfg'])


def lr_at(step, r):
    if step < r['warmup']:
        return r['lr'] * (step + 1) / r['warmup']
    p = min(1.0, (step - r['warmup']) / max(1, r['steps'] - r['warmup']))
    return r['min_lr'] + 0.5 * (r['lr'] - r['min_lr']) * (1 + math.cos(math.pi * p))


class Batches:
    """Random windows of seq_len (+1 for AR targets) tokens from a uint16 token file; seeded, resumable."""

    def __init__(self, paths_weights, seq_len, seed):
        self.arrays = [(np.fromfile(p, dtype=np.uint16), w) for p, w in paths_weights]
        self.seq_len = seq_len
        self.g = torch.Generator().manual_seed(seed)

    def next(self, batch, n=None):
        """batch rows of n tokens (default seq_len + 1)."""
        n = n or self.seq_len + 1
        rows = []
        weights = torch.tensor([w for _, w in self.arrays], dtype=torch.float)
        which = torch.multinomial(weights, batch, replacement=True, generator=self.g)
        for i in which.tolist():
            arr = self.arrays[i][0]
            start = torch.randint(0, len(arr) - n, (1,), generator=self.g).item()
            rows.append(torch.from_numpy(arr[start:start + n].astype(np.int64)))
        return torch.stack(rows)


def val_windows(seq_len, limit=None):
    """Non-overlapping held-out windows of seq_len + 1 tokens (the last token of one is the first of the next)."""
    arr = np.fromfile(os.path.join(DATA, 'val.bin'), dtype=np.uint16).astype(np.int64)
    n = (len(arr) - 1) // seq_len
    if limit:
        # spread the quick-eval windows over the whole held-out set
        idx = np.linspace(0, n - 1, min(n, limit)).astype(np.int64)
    else:
        idx = np.arange(n)
    return torch.from_numpy(np.stack([arr[i * seq_len:i * seq_len + seq_len + 1] for i in idx]))


def ar_loss(model, x):
    logits = model(x[:, :-1])
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))


def mdlm_train_loss(model, x, r, g):
    """Half the rows (prefix_frac) keep a clean prefix and mask only a suffix (log-uniform length 4..T) at rate t:
    the conditional NELBO of the suffix, i.e. the drafting situation (prompt + masked block). Others: plain MDLM."""
    x0 = x[:, :-1]
    B, T = x0.shape
    keep = torch.zeros(B, dtype=torch.long)
    cond = torch.rand(B, generator=g) < r.get('prefix_frac', 0.0)
    suffix = torch.exp(torch.rand(B, generator=g) * math.log(T / 4)) * 4
    keep[cond] = (T - suffix[cond].long()).clamp(0, T - 1)
    return model.loss(x0, keep_prefix=keep, generator=g)


DRAFT_CONTEXT = (4, 64)   # clean context tokens of a drafting window, uniform
DRAFT_GAMMA = (1, 16)     # masked tokens after it, uniform


def shifted_features(hidden, T):
    """Target hidden states of W context tokens (B, W, Dt) -> what the drafter reads beside each of T >= W tokens
    (B, T, Dt): position i < W gets the state at i - 1 (the one that predicted token i), position 0 and the masks
    none (zeros). The last context state, which predicts the first mask, is not used: at run time the target has not
    computed it yet (its token is the one the last verify drew)."""
    W = hidden.shape[1]
    feats = hidden.new_zeros(hidden.shape[0], T, hidden.shape[2])
    feats[:, 1:W] = hidden[:, :W - 1]
    return feats


@torch.no_grad()
def sample_head_draft(model, h, first_prev, c, g, feature=None):
    """A draft sampled through the draft head at temperature 1, as the runtime draws it: position i from the head's
    q given the tokens drawn before it. h (B, G, d) the masks' hidden states, first_prev (B,) the last context token,
    feature as in draft_logits. Returns the tokens before each position (B, G): first_prev, then the draft but its last token."""
    B, G = h.shape[:2]
    prev = first_prev.new_zeros(B, G)
    prev[:, 0] = first_prev
    m = model.cfg.mask_index
    for i in range(G - 1):
        # Causal: the logits at position i do not depend on the (still placeholder) tokens after it.
        logits = model.backbone.draft_logits(h[:, :i + 1], prev[:, :i + 1], c, feature)[:, i, :m].float()
        prev[:, i + 1] = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=g).squeeze(1)
    return prev


def filtered(logits, temperature, top_k=0):
    """The runtime's sampling distribution (filteredProbs): logits / temperature, the top_k largest kept (0: all),
    softmax."""
    z = logits.float() / temperature
    if 0 < top_k < z.shape[-1]:
        z = z.masked_fill(z < z.topk(top_k, dim=-1).values[..., -1:], float('-inf'))
    return z.softmax(-1)


def acceptance_rate(p, log_q, samplings=((1.0, 0),)):
    """sum_v min(p, q) per row: the chance the sampled acceptance rule accepts a draw from q, with the teacher's p
    and the drafter's log q both filtered at each (temperature, top_k) of samplings, averaged over them."""
    rates = [torch.minimum(filtered(p.clamp_min(1e-30).log(), t, k), filtered(log_q, t, k)).sum(-1)
             for t, k in samplings]
    return sum(rates) / len(rates)


def mdlm_draft_loss(model, data, batch, g, context=DRAFT_CONTEXT, block_causal=False, teacher=None,
                    teacher_weight=0.0, accept_weight=0.0, gammas=DRAFT_GAMMA, on_policy=0.0, backbone_too=False,
                    context_rows=0, head_start=0, accept_samplings=((1.0, 0),)):
    """The SpecDiff drafting situation: W clean tokens then gamma mask tokens, every mask predicted in one pass
    (the T = 1 draft; with the left-to-right schedule every later pass is again a clean prefix + masked suffix).
    Mean cross-entropy of the masked tokens under SUBS (mask column excluded), and the tokens the windows hold.
    One (W, gamma) per call. block_causal: the context attends causally and only the masked block sees everything
    (the runtime's drafter with a KV cache of the context).
    teacher (a GPT-2): mix in, with teacher_weight, the cross-entropy against the teacher's teacher-forced
    distribution of each masked token (soft labels: for position 1 exactly the p that the acceptance rule
    compares q with; averaged over the data, the teacher's marginal at later positions).
    A drafter with target_features reads the teacher's hidden states of the context (shifted_features); the
    masked positions get none, as at run time, where the verify has not reached them.
    accept_weight (needs teacher): subtract, with this weight, the expected accepted length of the draft under the
    sampled acceptance rule, sum_i prod_{j<=i} sum_v min(p_j, q_j) with the teacher's p, per window; it weighs a
    position by the chance that the draft gets there, where cross-entropy weighs every position alike.
    accept_samplings: the (temperature, top_k) settings of that rule, its term averaged over them.
    on_policy (draft head and teacher): the chance that this call's windows are drafted by the head itself
    (sample_head_draft) instead of teacher-forced; each position is then trained only against the teacher's p given
    the context and the tokens the head drew before it, the p the acceptance rule compares its q with.
    backbone_too (draft head, teacher-forced): add the backbone's own T = 1 objective, which a drafter drafting
    without its head (greedy, by default) relies on, to the head's.
    context_rows (shifted logits, block-causal): also score the next-token predictions of the last N context rows
    (the same objective, against the tokens after them): what a drafter made from an AR model already does, kept
    while the masks learn; the draft's first position is such a row.
    head_start S (draft head, teacher-forced): the runtime's headStart; the head's chain starts at draft position S,
    its first step reading the token before S and its rotary positions counting from there, and positions before S
    are trained only as the backbone's own (backbone_too), which drafts them."""
    W = int(torch.randint(context[0], context[1] + 1, (1,), generator=g))
    gamma = int(torch.randint(gammas[0], gammas[1] + 1, (1,), generator=g))
    drafted = on_policy > 0 and float(torch.rand(1, generator=g)) < on_policy
    x0 = data.next(batch, W + gamma)
    m = model.cfg.mask_index
    # With shift_logits row i predicts token i + 1: the last context token's row drafts the first position and the
    # window holds gamma - 1 masks.
    shift = int(model.cfg.shift_logits)
    assert not context_rows or (shift and block_causal), 'context rows: a block-causal drafter with shifted logits'
    assert not head_start or (model.cfg.draft_head and backbone_too and not on_policy and not model.cfg.draft_head_features), \
        'head_start: a teacher-forced draft head without head features, beside the backbone\'s own objective'
    xt = x0[:, :W + gamma - shift].clone()
    xt[:, W:] = m
    hidden = None
    if teacher is not None:
        with torch.no_grad():
            hidden = teacher.hidden(x0[:, :-1])
    feats = None
    if model.cfg.target_features:
        feats = shifted_features(hidden[:, :W], xt.shape[1])
    x, c = model.backbone.features(xt, torch.zeros(batch), W if block_causal else None, feats)
    rows = x
    x = x[:, W - shift:W - shift + gamma]                    # the rows that draft the gamma positions
    # A head with draft_head_features reads the state that predicted the last context token (W >= 2).
    head_feature = hidden[:, W - 2] if model.cfg.draft_head_features else None
    if model.cfg.draft_head and drafted:
        prev = sample_head_draft(model, x, x0[:, W - 1], c, g, head_feature)
        with torch.no_grad():
            # The teacher's p at each drafted position, given the context and the drafted tokens before it.
            p_hidden = teacher.hidden(torch.cat([x0[:, :W], prev[:, 1:]], 1))[:, W - 1:]
            p = F.softmax((p_hidden @ teacher.wte.weight.t()).float(), dim=-1).reshape(-1, m)
        logits = model.backbone.draft_logits(x, prev, c, head_feature).reshape(batch * gamma, -1)
        log_q = F.log_softmax(logits.float()[:, :m], dim=-1)
        loss = -(p * log_q).sum(-1).mean()
        if accept_weight > 0:
            accept = acceptance_rate(p, log_q, accept_samplings).view(batch, gamma)
            loss = loss - accept_weight * accept.cumprod(1).sum(1).mean()
        return loss, batch * (W + gamma)
    p = None
    if teacher is not None and teacher_weight > 0:
        with torch.no_grad():
            p = F.softmax((hidden[:, W - 1:] @ teacher.wte.weight.t()).float(), dim=-1).reshape(-1, m)

    def objective(logits, first=W, n=gamma, p=p, accept_weight=accept_weight):
        """The loss of logits (batch * n, V) predicting tokens first..first + n - 1 of each window; p the teacher's."""
        log_q = F.log_softmax(logits.float()[:, :m], dim=-1)
        loss = F.nll_loss(log_q, x0[:, first:first + n].reshape(-1))
        if p is not None:
            loss = (1 - teacher_weight) * loss - teacher_weight * (p * log_q).sum(-1).mean()
            if accept_weight > 0:
                accept = acceptance_rate(p, log_q, accept_samplings).view(batch, n)
                loss = loss - accept_weight * accept.cumprod(1).sum(1).mean()
        return loss

    def context_objective():
        n = min(context_rows, W - 1)                         # rows W-1-n .. W-2 predict tokens W-n .. W-1
        if n <= 0:
            return 0.0
        h = rows[:, W - 1 - n:W - 1].reshape(-1, rows.shape[-1])
        cp = None if p is None else F.softmax((hidden[:, W - 1 - n:W - 1] @ teacher.wte.weight.t()).float(), dim=-1).reshape(-1, m)
        return objective(model.backbone.output_layer(h, c.repeat_interleave(n, 0)), W - n, n, cp, 0.0)

    own = lambda: objective(model.backbone.output_layer(x.reshape(-1, x.shape[-1]), c.repeat_interleave(gamma, 0)))
    if model.cfg.draft_head:
        # Teacher-forced: each position reads the true token before it, as a draft does wherever it gets accepted.
        S = min(head_start, gamma)
        loss = 0.0
        if S < gamma:
            n = gamma - S
            head_p = None if p is None else p.view(batch, gamma, -1)[:, S:].reshape(batch * n, -1)
            logits = model.backbone.draft_logits(x[:, S:], x0[:, W - 1 + S:-1], c, head_feature).reshape(batch * n, -1)
            loss = objective(logits, W + S, n, head_p)
        if backbone_too:
            loss = loss + own() + context_objective()
    else:
        loss = own() + context_objective()
    return loss, batch * (W + gamma)


@torch.no_grad()
def evaluate(model, r, windows, batch, seed=0):
    """Mean held-out loss per token (nats). GPT-2: cross-entropy. MDLM: NELBO (t antithetic, fixed seed)."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        x = windows[i:i + batch]
        with autocast():
            if r['kind'] == 'gpt2':
                loss = ar_loss(model, x)
            else:
                loss = model.loss(x[:, :-1], generator=g)
        n = x.shape[0] * (x.shape[1] - 1)
        total += loss.item() * n
        count += n
    model.train()
    return total / count


def save_atomic(obj, path):
    tmp = path + '.tmp'
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True, choices=sorted(RECIPES))
    ap.add_argument('--distil', action='store_true', help='mix in runs/distil/train.bin (text sampled from target)')
    ap.add_argument('--distil-weight', type=float, default=0.35, help='sampling weight of distil rows vs 1.0 real')
    ap.add_argument('--distil-data', default=os.path.join(HERE, 'runs', 'distil', 'train.bin'))
    ap.add_argument('--budget-min', type=float, default=110, help='save and exit after this many minutes')
    ap.add_argument('--ckpt-min', type=float, default=5)
    ap.add_argument('--steps', type=int, default=0, help='override the schedule length (smoke tests)')
    ap.add_argument('--run', default='', help='run directory name under runs/ (default: model name)')
    ap.add_argument('--final-val-windows', type=int, default=0, help='cap the final evaluation (smoke tests)')
    ap.add_argument('--init-run', default='', help="start from runs/<run>/final.pt's weights (fine-tuning)")
    ap.add_argument('--data', action='append', default=[], metavar='NAME=WEIGHT',
                    help='also sample windows from runs/NAME/train.bin with this weight (real text: 1)')
    ap.add_argument('--draft-batch', type=int, default=0, help='MDLM: rows of the drafting objective per step')
    ap.add_argument('--draft-context', default=f'{DRAFT_CONTEXT[0]},{DRAFT_CONTEXT[1]}', metavar='MIN,MAX',
                    help='clean context tokens of a drafting window, uniform in MIN..MAX')
    ap.add_argument('--block-causal', action='store_true', help='drafting objective with block-causal attention '
                    '(context causal, masked block bidirectional); exported models get "block_causal": true')
    ap.add_argument('--teacher-run', default='', help="MDLM drafting objective: soft labels from runs/<run>/final.pt")
    ap.add_argument('--teacher-weight', type=float, default=0.5, help='weight of the soft labels against the tokens')
    ap.add_argument('--accept-weight', type=float, default=0.0, help='MDLM drafting objective: weight of the '
                    'expected accepted length (soft labels of --teacher-run) subtracted from the loss')
    ap.add_argument('--accept-sampling', action='append', default=[], metavar='T,K', help='--accept-weight: the '
                    'acceptance rule at temperature T with top-k K (0: none), the term averaged over every one given '
                    '(default: 1,0)')
    ap.add_argument('--head-features', action='store_true', help='--draft-head: the head\'s first position also '
                    'reads the teacher\'s hidden state that predicted the last context token (needs --teacher-run)')
    ap.add_argument('--target-features', action='store_true', help='MDLM: the drafter reads the teacher\'s final '
                    'hidden states of the context (needs --teacher-run; starts from --init-run with the new '
                    'projection at zero)')
    ap.add_argument('--feature-lr-scale', type=float, default=0.1, help='learning rate of the target-feature '
                    'projection relative to the rest')
    ap.add_argument('--draft-head', action='store_true', help='MDLM: add a draft head (models.DraftHead) to the '
                    '--init-run drafter and train it alone on the drafting objective; the backbone stays frozen')
    ap.add_argument('--train-backbone', type=float, default=0.0, metavar='LR_SCALE', help='--draft-head: train the '
                    'backbone too, at this fraction of the learning rate, on its NELBO and its own drafting objective '
                    'beside the head\'s (0: the backbone stays frozen)')
    ap.add_argument('--context-rows', type=int, default=0, metavar='N', help='drafting objective of a block-causal '
                    'drafter with shifted logits: also train the next-token predictions of the last N context rows')
    ap.add_argument('--nelbo-weight', type=float, default=1.0, help='MDLM: weight of the NELBO term (0: the drafting '
                    'objective alone)')
    ap.add_argument('--head-from', default='', metavar='RUN', help='--draft-head: start the head from runs/RUN\'s '
                    'draft head (a warm start) instead of zero')
    ap.add_argument('--head-start', type=int, default=0, metavar='S', help='--draft-head with --train-backbone: the '
                    'head\'s chain starts at draft position S, as the runtime\'s headStart; the backbone alone drafts '
                    'the positions before it')
    ap.add_argument('--draft-gamma', default=f'{DRAFT_GAMMA[0]},{DRAFT_GAMMA[1]}', metavar='MIN,MAX',
                    help='masked tokens of a drafting window, uniform in MIN..MAX')
    ap.add_argument('--on-policy', type=float, default=0.0, metavar='FRACTION', help='with --draft-head and '
                    '--teacher-run: the fraction of steps whose drafting windows the head drafts itself (sampled at '
                    'temperature 1), trained against the teacher\'s p given its own drafted tokens')
    ap.add_argument('--batch', type=int, default=0, help='override the recipe batch')
    ap.add_argument('--lr', type=float, default=0, help='override the peak learning rate (min: a tenth of it)')
    ap.add_argument('--seed', type=int, default=1337)
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    r = dict(RECIPES[args.model])
    if args.steps:
        r['steps'] = args.steps
        r['warmup'] = min(r['warmup'], max(1, args.steps // 10))
        r['eval_every'] = min(r['eval_every'], max(1, args.steps // 2))
    if args.batch:
        r['batch'] = args.batch
    if args.lr:
        r['lr'], r['min_lr'] = args.lr, args.lr / 10
    assert not args.draft_batch or r['kind'] == 'mdlm', '--draft-batch is the MDLM drafting objective'
    assert not args.block_causal or args.draft_batch, '--block-causal applies to the drafting objective (--draft-batch)'
    assert not args.teacher_run or args.draft_batch, '--teacher-run applies to the drafting objective (--draft-batch)'
    assert not args.accept_weight or args.teacher_run, '--accept-weight compares with the p of --teacher-run'
    assert not args.accept_sampling or args.accept_weight, '--accept-sampling sets the rule of --accept-weight'
    accept_samplings = tuple((float(t), int(k)) for t, k in (a.split(',') for a in args.accept_sampling)) or ((1.0, 0),)
    assert not args.target_features or args.teacher_run, '--target-features reads the hidden states of --teacher-run'
    assert not args.on_policy or (args.draft_head and args.teacher_run), '--on-policy trains the draft head against ' \
        'the p of --teacher-run'
    assert not args.draft_head or (args.draft_batch and args.init_run), '--draft-head trains on the drafting ' \
        'objective (--draft-batch) of an --init-run drafter'
    assert not args.head_from or args.draft_head, '--head-from starts the head of --draft-head'
    assert not args.train_backbone or args.draft_head, '--train-backbone trains the backbone beside --draft-head'
    assert not args.head_start or (args.train_backbone and not args.on_policy and not args.head_features), \
        '--head-start: a teacher-forced head (--draft-head, no --on-policy or --head-features) beside --train-backbone'
    assert not args.head_features or (args.draft_head and args.teacher_run), '--head-features reads the hidden ' \
        'states of --teacher-run into the draft head (--draft-head)'
    draft_context = tuple(int(v) for v in args.draft_context.split(','))
    draft_gamma = tuple(int(v) for v in args.draft_gamma.split(','))
    if args.draft_head:
        r['cfg'] = dataclasses.replace(r['cfg'], draft_head=True)
    if args.head_features:
        teacher_cfg = torch.load(os.path.join(HERE, 'runs', args.teacher_run, 'final.pt'))['cfg']
        r['cfg'] = dataclasses.replace(r['cfg'], draft_head_features=teacher_cfg.n_embd)
    if args.target_features:
        teacher_cfg = torch.load(os.path.join(HERE, 'runs', args.teacher_run, 'final.pt'))['cfg']
        r['cfg'] = dataclasses.replace(r['cfg'], target_features=teacher_cfg.n_embd)
    run = args.run or args.model + ('+distil' if args.distil else '')
    out = os.path.join(HERE, 'runs', run)
    os.makedirs(out, exist_ok=True)
    ckpt_path, log_path = os.path.join(out, 'ckpt.pt'), os.path.join(out, 'log.txt')
    if os.path.exists(os.path.join(out, 'done')):
        print(f'{run}: already complete ({out}/final.pt)')
        return

    def log(msg):
        line = time.strftime('%Y-%m-%d %H:%M:%S ') + msg
        print(line, flush=True)
        with open(log_path, 'a') as f:
            f.write(line + '\n')

    torch.manual_seed(args.seed)
    init = torch.load(os.path.join(HERE, 'runs', args.init_run, 'final.pt')) if args.init_run else None
    if init and r['kind'] == 'mdlm':  # a drafter keeps the layout it was made with
        r['cfg'] = dataclasses.replace(r['cfg'], **{k: getattr(init['cfg'], k, False) for k in LAYOUT})
    model = build(r)
    if args.init_run:
        same = dataclasses.replace(init['cfg'], target_features=r['cfg'].target_features, draft_head=r['cfg'].draft_head,
                                   draft_head_features=r['cfg'].draft_head_features) == r['cfg']
        assert same, f'--init-run {args.init_run}: {init["cfg"]} is not this recipe ({r["cfg"]})'
        missing, unexpected = model.load_state_dict(init['model'], strict=False)
        new = ['backbone.feature_proj.weight'] if r['cfg'].target_features and not init['cfg'].target_features else []
        if r['cfg'].draft_head and not getattr(init['cfg'], 'draft_head', False):
            new += [k for k in model.state_dict() if k.startswith('backbone.draft_head.')]
        elif r['cfg'].draft_head_features and not getattr(init['cfg'], 'draft_head_features', 0):
            new.append('backbone.draft_head.feature_proj.weight')
        assert missing == new and not unexpected, f'--init-run {args.init_run}: missing {missing}, unexpected {unexpected}'
    if args.head_from:
        donor = torch.load(os.path.join(HERE, 'runs', args.head_from, 'final.pt'))['model']
        head = {k: v for k, v in donor.items() if k.startswith('backbone.draft_head.')}
        mine = [k for k in model.state_dict() if k.startswith('backbone.draft_head.')]
        assert sorted(head) == sorted(mine), f'--head-from {args.head_from}: its head has {sorted(head)}, this one {mine}'
        model.load_state_dict(head, strict=False)
    if args.draft_head and not args.train_backbone:
        for n, p in model.named_parameters():
            p.requires_grad_(n.startswith('backbone.draft_head.'))
    teacher = None
    if args.teacher_run:
        ck = torch.load(os.path.join(HERE, 'runs', args.teacher_run, 'final.pt'))
        teacher = GPT2(ck['cfg'])
        teacher.load_state_dict(ck['model'])
        teacher.eval().requires_grad_(False)
        assert teacher.cfg.vocab_size == model.cfg.mask_index, \
            f'--teacher-run {args.teacher_run}: vocabulary {teacher.cfg.vocab_size} is not the drafter\'s ' \
            f'{model.cfg.mask_index}'
    # The target's hidden states are ~25x the drafter's embeddings in norm, so the projection that reads them learns
    # at a fraction of the rate: a full-rate Adam step on 512 inputs would swamp the embeddings at once.
    params = dict(model.named_parameters())
    slow = [n for n in ('backbone.feature_proj.weight', 'backbone.draft_head.feature_proj.weight')
            if n in params and params[n].requires_grad]
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if p.dim() >= 2 and n not in slow]
    no_decay = [p for n, p in trained if p.dim() < 2]
    groups = [{'params': decay, 'weight_decay': r['weight_decay']}, {'params': no_decay, 'weight_decay': 0.0}]
    if slow:
        groups.append({'params': [params[n] for n in slow], 'weight_decay': 0.0, 'lr_scale': args.feature_lr_scale})
    if args.draft_head and args.train_backbone:  # the backbone learns slower than the head it feeds
        head_params = {id(p) for n, p in trained if n.startswith('backbone.draft_head.')}
        groups = [dict(grp, params=[q for q in grp['params'] if id(q) not in head_params],
                       lr_scale=grp.get('lr_scale', 1.0) * args.train_backbone) for grp in groups] + \
                 [dict(grp, params=[q for q in grp['params'] if id(q) in head_params]) for grp in groups]
        groups = [grp for grp in groups if grp['params']]
    opt = torch.optim.AdamW(groups, lr=r['lr'], betas=(0.9, 0.95), eps=1e-8)
    sources = [(os.path.join(DATA, 'train.bin'), 1.0)]
    if args.distil:
        sources.append((args.distil_data, args.distil_weight))
    for spec in args.data:
        name, weight = spec.split('=')
        sources.append((os.path.join(HERE, 'runs', name, 'train.bin'), float(weight)))
    data = Batches(sources, r['seq_len'], seed=args.seed)
    g_noise = torch.Generator().manual_seed(args.seed + 1)
    step, tokens, train_s = 0, 0, 0.0
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck['model'])
        opt.load_state_dict(ck['opt'])
        data.g.set_state(ck['data_rng'])
        g_noise.set_state(ck['noise_rng'])
        torch.set_rng_state(ck['torch_rng'])
        step, tokens, train_s = ck['step'], ck['tokens'], ck['train_s']
        log(f'resume {run} at step {step}/{r["steps"]} ({tokens} tokens, {train_s / 60:.1f} min trained)')
    else:
        log(f'start {run}: {r["cfg"]}  params {sum(p.numel() for p in model.parameters())} '
            f'non-embedding {model.non_embedding_params()}  batch {r["batch"]}x{r["seq_len"]} steps {r["steps"]} '
            f'lr {r["lr"]} sources {sources}' + (f' init {args.init_run}' if args.init_run else '') +
            (f' draft-batch {args.draft_batch} context {draft_context}' if args.draft_batch else '') +
            (' block-causal' if args.block_causal else '') +
            (f' teacher {args.teacher_run} weight {args.teacher_weight}' if teacher is not None else '') +
            (f' accept-weight {args.accept_weight} at {accept_samplings}' if args.accept_weight else ''))

    def checkpoint():
        save_atomic({'model': model.state_dict(), 'opt': opt.state_dict(), 'data_rng': data.g.get_state(),
                     'noise_rng': g_noise.get_state(), 'torch_rng': torch.get_rng_state(), 'step': step,
                     'tokens': tokens, 'train_s': train_s, 'recipe': {k: str(v) for k, v in r.items()},
                     'cfg': r['cfg']}, ckpt_path)

    stop = []  # SIGTERM / SIGINT: finish the current step, checkpoint, exit
    signal.signal(signal.SIGTERM, lambda *_: stop.append('SIGTERM'))
    signal.signal(signal.SIGINT, lambda *_: stop.append('SIGINT'))
    quick_val = val_windows(r['seq_len'], limit=r['eval_batches'] * r['batch'])
    t_start = last_ckpt = time.time()
    t_log, tok_log, loss_acc, n_acc = time.time(), 0, 0.0, 0
    model.train()
    while step < r['steps']:
        if time.time() - t_start > args.budget_min * 60 or stop:
            checkpoint()
            why = stop[0] if stop else f'budget of {args.budget_min} min reached'
            log(f'{why} at step {step}: checkpoint saved, rerun to resume')
            sys.exit(3 if stop else 0)
        for grp in opt.param_groups:
            grp['lr'] = lr_at(step, r) * grp.get('lr_scale', 1.0)
        t0 = time.time()
        x = data.next(r['batch'])  # drawn every step, used or not, so that every run's data stream is the same
        with autocast():
            if args.draft_head and not args.train_backbone:  # the backbone is frozen: its NELBO would train nothing
                loss, step_tokens = 0.0, 0
            else:
                if r['kind'] == 'gpt2':
                    loss, step_tokens = ar_loss(model, x), r['batch'] * r['seq_len']
                elif args.nelbo_weight > 0:
                    loss = args.nelbo_weight * mdlm_train_loss(model, x, r, g_noise)
                    step_tokens = r['batch'] * r['seq_len']
                else:
                    loss, step_tokens = 0.0, 0
            if args.draft_batch:
                draft_loss, draft_tokens = mdlm_draft_loss(model, data, args.draft_batch, g_noise, draft_context,
                                                           args.block_causal, teacher, args.teacher_weight,
                                                           args.accept_weight, draft_gamma, args.on_policy,
                                                           backbone_too=args.train_backbone > 0,
                                                           context_rows=args.context_rows, head_start=args.head_start,
                                                           accept_samplings=accept_samplings)
                loss, step_tokens = loss + draft_loss, step_tokens + draft_tokens
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), r['grad_clip'])
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        tokens += step_tokens
        train_s += time.time() - t0
        loss_acc, n_acc, tok_log = loss_acc + loss.item(), n_acc + 1, tok_log + step_tokens
        if step % 10 == 0 or step == r['steps']:
            now = time.time()
            log(f'step {step}/{r["steps"]} loss {loss_acc / n_acc:.4f} gnorm {gnorm:.2f} lr {lr_at(step - 1, r):.2e} '
                f'tok/s {tok_log / (now - t_log):.0f} tokens {tokens}')
            t_log, tok_log, loss_acc, n_acc = now, 0, 0.0, 0
        if step % r['eval_every'] == 0 or step == r['steps']:
            vl = evaluate(model, r, quick_val, r['batch'])
            what = 'NELBO bound' if r['kind'] == 'mdlm' else 'ppl'
            log(f'eval step {step} val_loss {vl:.4f} val_{what.split()[0].lower()} {math.exp(vl):.2f} '
                f'({len(quick_val)} windows)')
            t_log = time.time()
        if time.time() - last_ckpt > args.ckpt_min * 60:
            checkpoint()
            last_ckpt = time.time()
    checkpoint()
    log('schedule complete: full held-out evaluation')
    full = val_windows(r['seq_len'], limit=args.final_val_windows or None)
    vl = evaluate(model, r, full, r['batch'])
    metric = {'val_loss': vl, 'val_ppl': math.exp(vl), 'val_tokens': int(full.shape[0] * (full.shape[1] - 1)),
              'metric': 'MDLM NELBO perplexity bound (upper bound on ppl)' if r['kind'] == 'mdlm'
              else 'perplexity (teacher-forced, context up to seq_len)',
              'train_tokens': tokens, 'train_minutes': train_s / 60, 'steps': step}
    if args.init_run:
        metric['init'] = dict(init['metrics'], run=args.init_run)
    if args.block_causal:
        metric['block_causal'] = True
    if r['cfg'].target_features:
        metric['target_features'] = r['cfg'].target_features
    if teacher is not None:
        metric['teacher'] = {'run': args.teacher_run, 'weight': args.teacher_weight}
    if args.accept_weight:
        metric['accept_weight'] = args.accept_weight
        metric['accept_samplings'] = accept_samplings
    if args.draft_head:
        metric['draft_head'] = True
    if r['cfg'].draft_head_features:
        metric['draft_head_features'] = r['cfg'].draft_head_features
    if args.on_policy:
        metric['on_policy'] = args.on_policy
    if args.head_from:
        metric['head_from'] = args.head_from
    if args.train_backbone:
        metric['train_backbone'] = args.train_backbone
    if args.context_rows:
        metric['context_rows'] = args.context_rows
    if args.head_start:
        metric['head_start'] = args.head_start
    if args.nelbo_weight != 1:
        metric['nelbo_weight'] = args.nelbo_weight
    log(f'final {json.dumps(metric)}')
    save_atomic({'model': model.state_dict(), 'kind': r['kind'], 'cfg': r['cfg'], 'metrics': metric}, 
                os.path.join(out, 'final.pt'))
    with open(os.path.join(out, 'metrics.json'), 'w') as f:
        json.dump(metric, f, indent=2)
    open(os.path.join(out, 'done'), 'w').close()


if __name__ == '__main__':
    main()
