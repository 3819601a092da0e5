"""Speculative-decoding acceptance of each trained drafter against the trained target, on held-out text.

  nice -n 19 /usr/bin/python3 tools/train/acceptance.py [--contexts 128 --context-len 128 --gamma 8]

For each held-out context (C tokens) the drafter proposes gamma tokens; the target scores context + draft in one
forward. Reported per drafter (no randomness in the acceptance step: expectations are computed exactly):
  sampled (--temperature, --top-k; default 1, none): drafts drawn from q (Gumbel-max, common random numbers across
                           calibrations); E[accepted] = sum_k prod_{j<k} min(1, p_j(x_j) / q_j(x_j)) * alpha_k,
                           alpha_k = sum_v min(p_k(v), q_k(v)) given the drafts before k (alpha_1 reported apart);
                           --draft-scale / --draft-top-k / --draft-min-p calibrate q (the drafter's temperature and filter)
  greedy  (temperature 0): drafts = argmax q; accepted = leading drafts equal to argmax p
Also, given the drafts, the expected tokens kept by the token rule and by block verification (the runtime's default,
block_expected): token_accepted_given_drafts / block_accepted_given_drafts, on the same drafts.
tokens/call = accepted + 1 (the target's own token). MDLM drafts with T = 1: context + gamma masks, one forward,
every drafted token drawn independently from its position's SUBS distribution (exact for the acceptance test);
--window W gives the MDLM only the last W context tokens, like the runtime's drafter window; --continue-greedy N
first extends every context by the target's own N greedy tokens (the situation inside greedy decoding).
--drafts K1 K2 ... also verifies K independent sampled drafts per context as a token tree (multi-draft: exact by
recursive rejection sampling at each node, node_accept, checked against p with a negative control at start).
Writes tools/train/runs/acceptance.json.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import GPT2, MDLM, autocast  # noqa: E402
from sample_distil import sample_cached  # noqa: E402
from train import filtered, shifted_features, val_windows  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, 'runs')


def load(run):
    ck = torch.load(os.path.join(RUNS, run, 'final.pt'))
    model = (GPT2 if ck['kind'] == 'gpt2' else MDLM)(ck['cfg'])
    model.load_state_dict(ck['model'])
    return model.eval(), ck['kind']


@torch.no_grad()
def draft(drafter, kind, ctx, gamma, greedy, g, window=0, block_causal=False, q_of=None, target=None, parallel=False,
          head_start=0):
    """-> tokens (B, gamma), q (B, gamma, V) the distributions they were drawn from: q_of(logits, first) of the
    drafter's logits (B, n, V) at draft positions first.. (default: softmax at temperature 1).
    A drafter with target_features reads the target's hidden states of the context; a draft head with
    draft_head_features the one that predicted the last context token."""
    q_of = q_of or drafter_q(1.0, 0, (1.0,))
    if kind == 'gpt2':
        x, qs = ctx, []
        for i in range(gamma):
            q = q_of(drafter(x)[:, -1:], i)[:, 0]
            nxt = q.argmax(-1, keepdim=True) if greedy else draw(q, g).unsqueeze(-1)
            qs.append(q)
            x = torch.cat([x, nxt], dim=1)
        return x[:, ctx.shape[1]:], torch.stack(qs, 1)
    m = drafter.cfg.mask_index
    hidden = target.hidden(ctx) if drafter.cfg.target_features or drafter.cfg.draft_head_features else None
    head_feature = hidden[:, -2] if drafter.cfg.draft_head_features else None
    if window:
        ctx = ctx[:, -window:]
    shift = int(drafter.cfg.shift_logits)   # row i drafts position i + 1: gamma - 1 masks, rows from the last context token
    x = torch.cat([ctx, torch.full((ctx.shape[0], gamma - shift), m, dtype=torch.long)], dim=1)
    feats = None if not drafter.cfg.target_features else shifted_features(hidden, x.shape[1] + hidden.shape[1] - ctx.shape[1])[:, -x.shape[1]:]
    prefix = ctx.shape[1] if block_causal else None
    if drafter.cfg.draft_head:
        return draft_with_head(drafter, x, ctx, gamma, greedy, g, prefix, feats, q_of, parallel, head_feature, head_start)
    if shift:
        logits = drafter.backbone(x, torch.zeros(x.shape[0]), prefix, feats)[:, ctx.shape[1] - 1:]
        q = q_of(logits[..., :m], 0)
    else:
        logp = drafter.subs_log_probs(x, torch.ones(x.shape[0]), prefix, feats)
        q = q_of(logp[:, ctx.shape[1]:, :m], 0)
    toks = q.argmax(-1) if greedy else draw(q, g)
    return toks, q


def drafter_q(temperature, top_k, scales, min_p=0.0):
    """q_of for draft(): the drafter's logits at draft position i filtered at temperature * scales[i] (the last
    scale for every position past the list), with top_k, and with min_p (tokens below min_p times the row's largest
    probability dropped): a calibration of q that keeps the test exact, since the drafts are drawn from the q
    reported."""
    def q_of(logits, first):
        n = logits.shape[1]
        t = torch.tensor([temperature * scales[min(first + i, len(scales) - 1)] for i in range(n)])
        q = filtered(logits / t.view(1, n, 1), 1.0, top_k)
        if min_p > 0:
            q = q.masked_fill(q < min_p * q.amax(-1, keepdim=True), 0.0)
            q = q / q.sum(-1, keepdim=True)
        return q
    return q_of


def draw(q, g):
    """A draw from each row of q (..., V) by the Gumbel-max trick with noise from g: two calibrations of one
    drafter measured with one seed draw with the same noise, and mostly the same tokens, so their difference is
    little drafting noise (common random numbers)."""
    gumbel = -torch.rand(q.shape, generator=g).clamp_min(1e-20).log().neg().log()
    return (q.clamp_min(1e-38).log() + gumbel).argmax(-1)


def coupled_draw(q, u):
    """Inverse-CDF draws from rows q (..., V) with the uniforms u (...): the first index whose running total
    exceeds u times the row's total, as the runtime's sampling kernel draws."""
    c = q.cumsum(-1)
    return torch.searchsorted(c, (u * c[..., -1]).unsqueeze(-1), right=True).squeeze(-1).clamp(max=q.shape[-1] - 1)


def draft_with_head(drafter, x, ctx, gamma, greedy, g, prefix, feats, q_of, parallel=False, head_feature=None,
                    head_start=0):
    """One backbone pass over context + masks, then the draft head position by position, each reading the token
    drafted before it (the head is causal, so recomputing the prefix gives the same rows). parallel: the runtime's
    headDraw 'parallel': the backbone draws every position, then one head step redraws them, position i reading
    the backbone's token at i - 1, with the same uniforms. head_start S: the runtime's headStart, the backbone's
    output layer draws the first S positions and the head's chain starts at position S."""
    m = drafter.cfg.mask_index
    h, c = drafter.backbone.features(x, torch.zeros(x.shape[0]), prefix, feats)
    h = h[:, ctx.shape[1] - int(drafter.cfg.shift_logits):][:, :gamma]
    if head_start:
        assert not parallel, 'head_start with the sequential head only'
        ql = q_of(drafter.backbone.output_layer(h[:, :head_start], c)[..., :m], 0)
        xl = ql.argmax(-1) if greedy else draw(ql, g)
        xh, qh = draft_with_head_chain(drafter, h[:, head_start:], xl[:, -1:], c, greedy, g, q_of, head_feature,
                                       head_start)
        return torch.cat([xl, xh], 1), torch.cat([ql, qh], 1)
    if parallel:
        u = torch.rand(h.shape[:2], generator=g)
        qb = q_of(drafter.backbone.output_layer(h, c)[..., :m], 0)
        xb = qb.argmax(-1) if greedy else coupled_draw(qb, u)
        q = q_of(drafter.backbone.draft_logits(h, torch.cat([ctx[:, -1:], xb[:, :-1]], 1), c, head_feature)[..., :m], 0)
        return (q.argmax(-1) if greedy else coupled_draw(q, u)), q
    return draft_with_head_chain(drafter, h, ctx[:, -1:], c, greedy, g, q_of, head_feature)


def draft_with_head_chain(drafter, h, before, c, greedy, g, q_of, head_feature=None, first=0):
    """The head's chain over the mask states h (B, n, d) of draft positions first.., its first step reading the
    token `before` (B, 1)."""
    m = drafter.cfg.mask_index
    prev, qs = before, []
    for i in range(h.shape[1]):
        logits = drafter.backbone.draft_logits(h[:, :i + 1], prev, c, head_feature)[:, i:i + 1]
        q = q_of(logits[..., :m], first + i)[:, 0]
        nxt = q.argmax(-1, keepdim=True) if greedy else draw(q, g).unsqueeze(-1)
        qs.append(q)
        prev = torch.cat([prev, nxt], 1)
    return prev[:, 1:], torch.stack(qs, 1)


def node_accept(candidates, r, q, g):
    """Recursive rejection sampling at one tree node (SpecInfer): the candidates, i.i.d. draws from q, are tried
    in turn, each accepted w.p. min(1, r(x) / q(x)), r replaced by norm(max(r - q, 0)) after each rejection.
    Returns the accepted token (None: all rejected) and the residual r, from which the target's own token is drawn
    when none is accepted; either way the token that follows has the target's distribution r0 = p."""
    for x in candidates:
        if float(torch.rand(1, generator=g)) < min(1.0, float(r[x] / q[x].clamp_min(1e-30))):
            return x, r
        r = (r - q).clamp_min(0)
        r = r / r.sum()
    return None, r


def check_node_accept(n=20000, seed=0):
    """node_accept leaves the target's distribution unchanged: over 3 tokens, with 3 candidates, the token that
    follows (accepted, or drawn from the residual) has frequencies within 0.015 of p; the negative control, which
    accepts the first candidate always, lands on q, far from p."""
    g = torch.Generator().manual_seed(seed)
    p, q = torch.tensor([.5, .3, .2]), torch.tensor([.2, .2, .6])
    exact, control = torch.zeros(3), torch.zeros(3)
    for _ in range(n):
        c = torch.multinomial(q, 3, replacement=True, generator=g).tolist()
        x, r = node_accept(c, p, q, g)
        exact[int(torch.multinomial(r, 1, generator=g)) if x is None else x] += 1
        control[c[0]] += 1
    assert (exact / n - p).abs().max() < 0.015, f'node_accept: {exact / n} is not p = {p}'
    assert (control / n - p).abs().max() > 0.1, 'node_accept check: the negative control passed'


def tree_expected(toks, p, q, active=None, n=0):
    """Expected tokens accepted when K drafts of one context are verified as a token tree (branches sharing a
    prefix share a node; their next tokens are i.i.d. draws from that node's q) by node_accept down the accepted
    path: exact over the acceptance step's randomness, given the drafts. toks (K, gamma), p and q (K, gamma, V)
    the target's and the drafter's distributions along each branch."""
    K, gamma = toks.shape
    active = list(range(K)) if active is None else active
    if n == gamma:
        return 0.0
    r, qn = p[active[0], n], q[active[0], n]
    reach, chosen = 1.0, {}
    for k in active:                         # candidate k is tried only if every one before it was rejected
        x = int(toks[k, n])
        a = min(1.0, float(r[x] / qn[x].clamp_min(1e-30)))
        chosen[x] = chosen.get(x, 0.0) + reach * a
        reach *= 1 - a
        r = (r - qn).clamp_min(0)
        if reach <= 0 or float(r.sum()) <= 0:
            break
        r = r / r.sum()
    return sum(w * (1 + tree_expected(toks, p, q, [k for k in active if int(toks[k, n]) == x], n + 1))
               for x, w in chosen.items())


def block_expected(ratio, p, q):
    """Expected drafted tokens accepted by block verification (Sun et al., ICLR 2025) given the drafts: ratio (B, g)
    = p_i(x_i) / q_i(x_i), p and q (B, g, V). Weights w_i = min(1, w_{i-1} ratio_i); the draft is cut at the last i
    with eta_i <= h_i, h_g = w_g, h_i = s_i / (s_i + 1 - w_i) with s_i the mass of max(w_i p_{i+1} - q_{i+1}, 0)."""
    B, g = ratio.shape
    w = torch.ones(B)
    h = []
    for i in range(1, g + 1):
        w = torch.minimum(w * ratio[:, i - 1], torch.ones(B))
        if i < g:
            s = (w[:, None] * p[:, i] - q[:, i]).clamp_min(0).sum(-1)
            h.append(torch.where(s > 0, s / (s + 1 - w).clamp_min(1e-30), torch.zeros(B)))   # as accept.ts
        else:
            h.append(w)
    h = torch.stack(h, 1)                                        # (B, g): h_1 .. h_g
    later_fail = torch.cumprod(torch.flip(1 - h, [1]), 1)        # prod_{j >= k} (1 - h_j), k from g down
    later_fail = torch.cat([torch.flip(later_fail, [1])[:, 1:], torch.ones(B, 1)], 1)  # prod_{j > t} (1 - h_j)
    t = torch.arange(1, g + 1, dtype=h.dtype)
    return (t * h * later_fail).sum(1)


def tree_nodes(toks):
    """Distinct prefixes of K drafts: the rows a tree verification scores."""
    return len({tuple(row[:i + 1]) for row in toks.tolist() for i in range(len(row))})


@torch.no_grad()
def measure_multi(target, drafter, kind, windows, gamma, drafts, batch=8, seed=0, window=0, block_causal=False,
                  parallel=False):
    """Sampled (temperature 1) acceptance of K independent drafts per context verified as a token tree, for each K
    in `drafts`: expected tokens accepted per verification (tree_expected) and tree rows scored. Every K reads the
    first K of the same max(drafts) drafts, so the differences between Ks are not drafting noise."""
    g = torch.Generator().manual_seed(seed)
    most = max(drafts)
    acc, rows, n = [0.0] * len(drafts), [0] * len(drafts), 0
    for i in range(0, len(windows), batch):
        ctx = windows[i:i + batch]
        B = ctx.shape[0]
        rep_ctx = ctx.repeat_interleave(most, 0)
        with autocast():
            toks, q = draft(drafter, kind, rep_ctx, gamma, False, g, window, block_causal, None, target, parallel)
            p = target(torch.cat([rep_ctx, toks], 1))[:, ctx.shape[1] - 1:-1].float().softmax(-1)
        toks, q, p = toks.view(B, most, gamma), q.float().view(B, most, gamma, -1), p.view(B, most, gamma, -1)
        for b in range(B):
            for j, k in enumerate(drafts):
                acc[j] += tree_expected(toks[b, :k], p[b, :k], q[b, :k])
                rows[j] += tree_nodes(toks[b, :k])
        n += B
    return [{'gamma': gamma, 'drafts': k, 'contexts': n, 'sampled_accepted': acc[j] / n,
             'sampled_tokens_per_call': acc[j] / n + 1, 'tree_rows': rows[j] / n} for j, k in enumerate(drafts)]


@torch.no_grad()
def measure(target, drafter, kind, windows, gamma, batch=16, seed=0, window=0, block_causal=False,
            parallel=False, head_start=0, temperature=1.0, top_k=0, scales=(1.0,), draft_top_k=None, greedy=True, draft_min_p=0.0):
    """Sampled acceptance with the target at `temperature` / `top_k` and the drafter calibrated by drafter_q
    (draft_top_k None: the target's top_k); greedy acceptance unless greedy is False."""
    q_of = drafter_q(temperature, top_k if draft_top_k is None else draft_top_k, scales, draft_min_p)
    g = torch.Generator().manual_seed(seed)
    acc_s, acc_g, alpha, n = 0.0, 0.0, 0.0, 0
    tok_x, blk_x = 0.0, 0.0
    pos_s = torch.zeros(gamma)
    for i in range(0, len(windows), batch):
        ctx = windows[i:i + batch]
        with autocast():
            toks, q = draft(drafter, kind, ctx, gamma, False, g, window, block_causal, q_of, target, parallel, head_start)
            p = filtered(target(torch.cat([ctx, toks], 1))[:, ctx.shape[1] - 1:-1], temperature, top_k)  # (B, gamma, V)
            ratio = (p.gather(-1, toks[..., None]) / q.gather(-1, toks[..., None]).clamp_min(1e-30)).squeeze(-1)
            # Position i is reached and accepted when every draft before it was accepted (min(1, p/q) of the
            # tokens drafted) and it is: sum_v min(p_i, q_i) given them, the exact chance, in place of its own draw.
            rate = torch.minimum(p, q).sum(-1)
            reached = torch.cat([torch.ones_like(rate[:, :1]), torch.cumprod(ratio.float().clamp(max=1.0), 1)[:, :-1]], 1)
            pos_s += (reached * rate).sum(0)
            acc_s += (reached * rate).sum().item()
            tok_x += torch.cumprod(ratio.float().clamp(max=1.0), 1).sum().item()
            blk_x += block_expected(ratio.float(), p.float(), q.float()).sum().item()
            alpha += rate[:, 0].sum().item()
            if greedy:
                gt, _ = draft(drafter, kind, ctx, gamma, True, g, window, block_causal, target=target,
                              parallel=parallel, head_start=head_start)
                pg = target(torch.cat([ctx, gt], 1))[:, ctx.shape[1] - 1:-1].argmax(-1)
                acc_g += torch.cumprod((pg == gt).long(), dim=1).sum().item()
        n += ctx.shape[0]
    r = {'gamma': gamma, 'contexts': n, 'sampled_accepted': acc_s / n, 'sampled_tokens_per_call': acc_s / n + 1,
         'alpha_1': alpha / n, 'sampled_reached_by_position': [round(v / n, 4) for v in pos_s.tolist()],
         'token_accepted_given_drafts': tok_x / n, 'block_accepted_given_drafts': blk_x / n}
    if greedy:
        r.update(greedy_accepted=acc_g / n, greedy_tokens_per_call=acc_g / n + 1)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--contexts', type=int, default=128)
    ap.add_argument('--context-len', type=int, default=128)
    ap.add_argument('--gamma', type=int, default=8)
    ap.add_argument('--runs', nargs='*', default=['drafter-ar', 'drafter-ar+distil', 'drafter-mdlm',
                                                   'drafter-mdlm+distil'])
    ap.add_argument('--window', type=int, default=0, help='MDLM drafts see only the last W context tokens, as the '
                    "runtime's DiffusionDrafter does (0: the whole context)")
    ap.add_argument('--continue-greedy', type=int, default=0, metavar='N',
                    help="extend each context by the target's N next greedy tokens first: the situation N tokens "
                    'into greedy decoding, where the target repeats itself more than real text does')
    ap.add_argument('--continue-sampled', type=int, default=0, metavar='N',
                    help="extend each context by N tokens the target samples at --temperature / --top-k first "
                    "(seeded): the situation N tokens into sampled decoding, where the runtime drafts after the "
                    "target's own samples rather than after real text")
    ap.add_argument('--block-causal', action='store_true', help='MDLM drafts with block-causal attention (context '
                    'causal, masked block bidirectional), as a drafter with a KV cache runs')
    ap.add_argument('--temperature', type=float, default=1.0, help='sampled acceptance with the target at this '
                    'temperature')
    ap.add_argument('--top-k', type=int, default=0, help="the target's top-k at sampling (0: none)")
    ap.add_argument('--draft-scale', type=float, nargs='+', default=[1.0], metavar='S', help='the drafter samples '
                    'draft position i at temperature * S_i (the last S for every position past the list): a '
                    'calibration of q; exact acceptance uses the q drafted from')
    ap.add_argument('--draft-top-k', type=int, default=None, help="the drafter's top-k (default: the target's)")
    ap.add_argument('--draft-min-p', type=float, default=0.0, help="the drafter keeps only the tokens of at least "
                    "this times its most likely token's probability (0: off; with --draft-top-k 0, min-p alone)")
    ap.add_argument('--sampled-only', action='store_true', help='skip the greedy acceptance')
    ap.add_argument('--head-draw', choices=['sequential', 'parallel'], default='sequential', help='a drafter with '
                    'a draft head: a head step per position, or one for all reading the backbone\'s coupled draws')
    ap.add_argument('--head-start', type=int, default=0, metavar='S', help='a drafter with a draft head: the '
                    'backbone draws the first S positions and the head the rest (the runtime\'s headStart)')
    ap.add_argument('--drafts', type=int, nargs='*', default=[], metavar='K', help='also: K independent sampled '
                    'drafts per context verified as a token tree (recursive rejection sampling), for each K given '
                    '(the Ks share their drafts: K reads the first K)')
    ap.add_argument('--zero-features', action='store_true', help='zero the drafters\' target-feature projections '
                    '(feature_proj of the backbone and of the draft head) first: what reading the states buys')
    ap.add_argument('--target', default='target')
    ap.add_argument('--out', default=os.path.join(RUNS, 'acceptance.json'))
    args = ap.parse_args()
    torch.set_num_threads(2)
    target, _ = load(args.target)
    windows = val_windows(args.context_len - 1, limit=args.contexts)     # (N, context_len)
    if args.continue_greedy:
        with torch.no_grad(), autocast():
            windows = target.generate(windows, args.continue_greedy, temperature=0)
    if args.continue_sampled:
        assert not args.continue_greedy, '--continue-greedy or --continue-sampled, not both'
        windows = torch.cat([sample_cached(target, windows[i:i + 128], args.continue_sampled, args.temperature,
                                           torch.Generator().manual_seed(1234 + i), top_k=args.top_k)[0]
                             for i in range(0, len(windows), 128)])
    path = args.out
    results = json.load(open(path)) if os.path.exists(path) else {}
    assert not (args.head_start and (args.drafts or args.head_draw == 'parallel')), '--head-start: one sequential draft'
    if args.drafts:
        check_node_accept()
    for run in args.runs:
        if not os.path.exists(os.path.join(RUNS, run, 'final.pt')):
            continue
        drafter, kind = load(run)
        if args.zero_features:
            for name, w in drafter.named_parameters():
                if name.endswith('feature_proj.weight'):
                    w.data.zero_()
        r = measure(target, drafter, kind, windows, args.gamma, window=args.window, block_causal=args.block_causal,
                    parallel=args.head_draw == 'parallel', head_start=args.head_start, temperature=args.temperature,
                    top_k=args.top_k, scales=args.draft_scale, draft_top_k=args.draft_top_k,
                    greedy=not args.sampled_only, draft_min_p=args.draft_min_p)
        r['context_len'] = args.context_len
        if kind == 'mdlm' and args.window:
            r['window'] = args.window
        if kind == 'mdlm' and args.block_causal:
            r['block_causal'] = True
        if args.continue_greedy:
            r['continue_greedy'] = args.continue_greedy
        if args.continue_sampled:
            r['continue_sampled'] = args.continue_sampled
        if kind == 'mdlm' and drafter.cfg.draft_head:
            r['head_draw'] = args.head_draw
            r['head_start'] = args.head_start
        if args.zero_features:
            r['features_zeroed'] = True
        if args.temperature != 1.0 or args.top_k:
            r.update(temperature=args.temperature, top_k=args.top_k)
        if args.draft_scale != [1.0] or args.draft_top_k is not None or args.draft_min_p:
            r.update(draft_scale=args.draft_scale, draft_top_k=args.draft_top_k, draft_min_p=args.draft_min_p)
        if args.drafts:
            r['multi_draft'] = measure_multi(target, drafter, kind, windows, args.gamma, args.drafts, window=args.window,
                                             block_causal=args.block_causal, parallel=args.head_draw == 'parallel')
        results[run] = r
        print(run, json.dumps(r), flush=True)
    with open(path, 'w') as f:
        json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
