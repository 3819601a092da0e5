"""Builds the tiny GPT-2 / MDLM fixtures and their golden outputs under test/fixtures/.

Run from the repository root:  /usr/bin/python3 tools/reference/make_fixtures.py
Deterministic (fixed seeds); golden outputs are computed in float64 from the exact stored
weights (F32/F16/BF16 values widened), then rounded to float32.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2  # noqa: E402
import mdlm  # noqa: E402
import safetensors_io as st  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "test", "fixtures")

GPT2_CFG = gpt2.gpt2_config(vocab_size=1000, n_positions=128, n_embd=64, n_layer=2, n_head=4)
MDLM_CFG = mdlm.mdlm_config(vocab_size=1001, model_length=128, hidden_dim=64, cond_dim=32,
                            n_blocks=2, n_heads=4, name_or_path="mdlm-tiny (random, test fixture)")
MDLM_MASK_ID = MDLM_CFG["vocab_size"] - 1
GPT2_N = 40
MDLM_L = 48
MDLM_BLOCK = 12                                                         # masked draft slots at the end
SIGMA2 = 0.5


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def f64(params):
    return {k: v.double() for k, v in params.items()}


def f32(tensors):
    return {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}


def max_diff(a, b):
    return (a.double() - b.double()).abs().max().item()


# ---------------------------------------------------------------------------------------- GPT-2

def gpt2_golden(params, ids):
    """params: stored tensors (any float dtype). Returns golden dict (float32 / int32)."""
    with torch.no_grad():
        logits, _, ex = gpt2.forward(f64(params), GPT2_CFG, ids, collect=True)
    return {
        "input_ids": ids.to(torch.int32),
        "logits": logits.float(),
        "hidden_after_block0": ex["hidden_after_block0"].float(),
        "hidden_final": ex["hidden_final"].float(),
    }


GPT2_META = {
    "format": "golden v1",
    "model": "gpt2",
    "logits": "full causal forward over input_ids at positions 0..N-1, [N, vocab_size]",
    "hidden_after_block0": "residual stream after block 0, [N, n_embd]",
    "hidden_final": "ln_f output, [N, n_embd]",
    "precision": "computed in float64 from the stored weights, rounded to float32",
}


def write_gpt2_variant(folder, tensors, params, ids, metadata, index_shards=None):
    """tensors: the checkpoint dict as stored; params: unprefixed stored weights."""
    d = os.path.join(OUT, folder)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        os.remove(os.path.join(d, name))
    write_json(os.path.join(d, "config.json"), GPT2_CFG)
    if index_shards is None:
        st.save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    else:
        weight_map, total = {}, 0
        for i, names in enumerate(index_shards):
            fname = f"model-{i + 1:05d}-of-{len(index_shards):05d}.safetensors"
            shard = {n: tensors[n] for n in names}
            st.save_file(shard, os.path.join(d, fname), metadata={"format": "pt"})
            for n, t in shard.items():
                weight_map[n] = fname
                total += t.numel() * t.element_size()
        write_json(os.path.join(d, "model.safetensors.index.json"),
                   {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})
    golden = gpt2_golden(params, ids)
    st.save_file(golden, os.path.join(d, "golden.safetensors"), metadata={**GPT2_META, **metadata})
    return golden


def load_gpt2_folder(folder):
    d = os.path.join(OUT, folder)
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        tensors = {}
        for fname in sorted(set(json.load(open(idx))["weight_map"].values())):
            tensors.update(st.load_file(os.path.join(d, fname))[0])
    else:
        tensors = st.load_file(os.path.join(d, "model.safetensors"))[0]
    return json.load(open(os.path.join(d, "config.json"))), gpt2.normalize_keys(tensors)


def make_gpt2():
    gen = torch.Generator().manual_seed(20240805)
    params = gpt2.random_params(GPT2_CFG, gen)                          # float32
    ids = torch.randint(0, GPT2_CFG["vocab_size"], (GPT2_N,), generator=gen)
    ids[5] = ids[25] = 17                                               # a repeated token
    ids[0] = GPT2_CFG["eos_token_id"]                                   # <|endoftext|>-like start
    out = {}

    # 1. gpt2-tiny: plain HF keys, F32
    out["gpt2-tiny"] = write_gpt2_variant("gpt2-tiny", dict(params), params, ids,
                                          {"weights": "model.safetensors F32"})

    # 2. gpt2-tiny-prefixed: `transformer.` keys, F16, + lm_head.weight (tied) + attn.bias buffers
    half = {k: v.half() for k, v in params.items()}
    P = GPT2_CFG["n_positions"]
    tensors = {}
    for k, v in half.items():
        tensors["transformer." + k] = v
    for i in range(GPT2_CFG["n_layer"]):
        tensors[f"transformer.h.{i}.attn.bias"] = torch.ones(1, 1, P, P).tril().half()
    tensors["lm_head.weight"] = half["wte.weight"]
    out["gpt2-tiny-prefixed"] = write_gpt2_variant(
        "gpt2-tiny-prefixed", tensors, half, ids,
        {"weights": "model.safetensors F16, transformer.-prefixed, lm_head.weight tied copy, "
                    "transformer.h.{i}.attn.bias causal-mask buffers to be ignored; golden from the F16 values"})

    # 3. gpt2-tiny-sharded: BF16, two shards + model.safetensors.index.json
    bf = {k: v.bfloat16() for k, v in params.items()}
    names = list(bf)
    shards = [[n for n in names if not n.startswith("h.1.") and not n.startswith("ln_f.")],
              [n for n in names if n.startswith("h.1.") or n.startswith("ln_f.")]]
    out["gpt2-tiny-sharded"] = write_gpt2_variant(
        "gpt2-tiny-sharded", bf, bf, ids,
        {"weights": "2 shards BF16 + model.safetensors.index.json; golden from the BF16 values"},
        index_shards=shards)
    return params, ids, out


def check_gpt2(params, ids, goldens):
    for folder, golden in goldens.items():
        cfg, p = load_gpt2_folder(folder)
        assert cfg == GPT2_CFG
        g, meta = st.load_file(os.path.join(OUT, folder, "golden.safetensors"))
        assert meta["model"] == "gpt2"
        assert torch.equal(g["input_ids"], golden["input_ids"])
        again = gpt2_golden(p, g["input_ids"].long())
        for k in ("logits", "hidden_after_block0", "hidden_final"):
            assert torch.equal(again[k], g[k]), f"{folder}/{k} not reproduced from the files"
        # float32 forward vs the float64 golden: the size of an honest f32 error
        logits32 = gpt2.forward(f32(p), cfg, g["input_ids"].long())[0]
        top2 = g["logits"].topk(2, dim=-1).values
        print(f"  {folder}: f32 forward vs golden max |diff| {max_diff(logits32, g['logits']):.2e}, "
              f"logit std {g['logits'].std():.3f}, mean max-prob "
              f"{g['logits'].softmax(-1).max(-1).values.mean():.3f}, min top1-top2 gap "
              f"{(top2[:, 0] - top2[:, 1]).min():.4f}")
        assert max_diff(logits32, g["logits"]) < 1e-4
    # incremental decoding with a KV cache reproduces the full causal forward
    p = f64(params)
    full = gpt2.forward(p, GPT2_CFG, ids)[0]
    logits, past = gpt2.forward(p, GPT2_CFG, ids[:30])[:2]
    steps = [logits]
    for t in range(30, GPT2_N):
        logits, past = gpt2.forward(p, GPT2_CFG, ids[t:t + 1], past=past)[:2]
        steps.append(logits)
    assert max_diff(torch.cat(steps), full) < 1e-10, "KV-cache decode differs from full forward"
    # attention cross-check against torch's own MultiheadAttention-free formula: causality
    ids2 = ids.clone()
    ids2[-1] = (ids2[-1] + 1) % GPT2_CFG["vocab_size"]
    assert max_diff(gpt2.forward(p, GPT2_CFG, ids2)[0][:-1], full[:-1]) == 0.0, "future token leaked"
    # gelu_new == torch's tanh-approximate GELU
    x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    assert max_diff(gpt2.gelu_new(x), torch.nn.functional.gelu(x, approximate="tanh")) < 1e-12
    # the same network through torch's own layer_norm / multi_head_attention_forward
    assert max_diff(gpt2_via_torch_ops(p, GPT2_CFG, ids), full) < 1e-10
    print("  gpt2: KV-cache decode == full forward, causal, gelu_new == gelu(tanh), "
          "== torch multi_head_attention_forward")


def gpt2_via_torch_ops(p, cfg, ids):
    """Independent formulation: Conv1D weights transposed into F.linear / in_proj layouts."""
    F = torch.nn.functional
    d, H, eps = cfg["n_embd"], cfg["n_head"], cfg["layer_norm_epsilon"]
    T = ids.shape[0]
    x = (p["wte.weight"][ids] + p["wpe.weight"][:T])[:, None, :]       # (T, batch 1, d)
    causal = torch.triu(torch.full((T, T), float("-inf"), dtype=x.dtype), diagonal=1)
    for i in range(cfg["n_layer"]):
        h = f"h.{i}."
        a = F.layer_norm(x, (d,), p[h + "ln_1.weight"], p[h + "ln_1.bias"], eps)
        a, _ = F.multi_head_attention_forward(
            a, a, a, d, H, p[h + "attn.c_attn.weight"].T, p[h + "attn.c_attn.bias"], None, None,
            False, 0.0, p[h + "attn.c_proj.weight"].T, p[h + "attn.c_proj.bias"],
            training=False, need_weights=False, attn_mask=causal)
        x = x + a
        m = F.layer_norm(x, (d,), p[h + "ln_2.weight"], p[h + "ln_2.bias"], eps)
        m = F.gelu(F.linear(m, p[h + "mlp.c_fc.weight"].T, p[h + "mlp.c_fc.bias"]), approximate="tanh")
        x = x + F.linear(m, p[h + "mlp.c_proj.weight"].T, p[h + "mlp.c_proj.bias"])
    x = F.layer_norm(x, (d,), p["ln_f.weight"], p["ln_f.bias"], eps)
    return F.linear(x[:, 0], p["wte.weight"])


# ----------------------------------------------------------------------------------------- MDLM

MDLM_META = {
    "format": "golden v1",
    "model": "mdlm",
    "mask_token_id": str(MDLM_MASK_ID),
    "time_conditioning": "false (config.json); log_probs/logits/c/hidden_* use sigma = 0",
    "log_probs": "SUBS log-probabilities [L, V] (diffusion.py _subs_parameterization), sigma 0",
    "logits": "raw backbone output [L, V] before SUBS, sigma 0",
    "c": "SiLU(sigma_map(0)) [cond_dim]",
    "hidden_after_block0": "residual stream after block 0 [L, hidden_dim]",
    "hidden_after_block1": "residual stream after block 1 (last) [L, hidden_dim]",
    "sigma05": "scalar 0.5",
    "log_probs_sigma05": "SUBS log-probs with sigma 0.5 fed to sigma_map, i.e. what the model gives if "
                         "time_conditioning were true (with the shipped config it equals log_probs)",
    "c_sigma05": "SiLU(sigma_map(0.5)) [cond_dim]",
    "block_causal_prefix": f"scalar P = {MDLM_L - MDLM_BLOCK}",
    "log_probs_block_causal": "SUBS log-probs [L, V] with block-causal attention: positions < P attend "
                              "causally, positions >= P (the last 12, all masks) attend to every position",
    "precision": "computed in float64 from the stored F32 weights (cos/sin tables and the 256-dim "
                 "timestep embedding in float32 as the original), rounded to float32",
}


def mdlm_golden(params, ids):
    with torch.no_grad():
        p = f64(params)
        logits, ex = mdlm.backbone(p, MDLM_CFG, ids, 0.0)
        logits2, ex2 = mdlm.backbone(p, MDLM_CFG, ids, SIGMA2, honor_time_conditioning=False)
    g = {
        "input_ids": ids.to(torch.int32),
        "sigma": torch.tensor(0.0),
        "log_probs": mdlm.subs(logits, ids, MDLM_MASK_ID).float(),
        "logits": logits.float(),
        "c": ex["c"].float(),
    }
    for i in range(MDLM_CFG["n_blocks"]):
        g[f"hidden_after_block{i}"] = ex[f"hidden_after_block{i}"].float()
    g["sigma05"] = torch.tensor(SIGMA2)
    g["log_probs_sigma05"] = mdlm.subs(logits2, ids, MDLM_MASK_ID).float()
    g["c_sigma05"] = ex2["c"].float()
    prefix = MDLM_L - MDLM_BLOCK
    with torch.no_grad():
        logits3, _ = mdlm.backbone(p, MDLM_CFG, ids, 0.0, prefix=prefix)
    g["block_causal_prefix"] = torch.tensor(prefix, dtype=torch.int32)
    g["log_probs_block_causal"] = mdlm.subs(logits3, ids, MDLM_MASK_ID).float()
    return g


def write_mdlm_fixture(name, cfg, params, golden, meta):
    """test/fixtures/<name>/ emptied, then config.json, model.safetensors and golden.safetensors."""
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    write_json(os.path.join(d, "config.json"), cfg)
    st.save_file(params, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    st.save_file(golden, os.path.join(d, "golden.safetensors"), metadata=meta)


def make_mdlm():
    gen = torch.Generator().manual_seed(2406_07524)
    params = mdlm.random_params(MDLM_CFG, gen)
    L = MDLM_L
    ids = torch.randint(0, MDLM_MASK_ID, (L,), generator=gen)          # never the mask id
    ids[-MDLM_BLOCK:] = MDLM_MASK_ID                                    # the draft slots
    for pos in (3, 11, 20, 29):                                         # scattered masks
        ids[pos] = MDLM_MASK_ID
    ids[7] = ids[30] = 5                                                # a repeated token
    golden = mdlm_golden(params, ids)
    write_mdlm_fixture("mdlm-tiny", MDLM_CFG, params, golden, MDLM_META)
    return params, ids, golden


def check_mdlm(params, ids, golden):
    d = os.path.join(OUT, "mdlm-tiny")
    cfg = json.load(open(os.path.join(d, "config.json")))
    assert cfg == MDLM_CFG
    p, _ = st.load_file(os.path.join(d, "model.safetensors"))
    g, meta = st.load_file(os.path.join(d, "golden.safetensors"))
    assert set(p) == set(mdlm.param_shapes(cfg)) and int(meta["mask_token_id"]) == cfg["vocab_size"] - 1
    assert torch.equal(p[mdlm.P + "rotary_emb.inv_freq"], mdlm.inv_freq(cfg["hidden_dim"] // cfg["n_heads"]))
    again = mdlm_golden(p, g["input_ids"].long())
    for k in golden:
        assert torch.equal(again[k], g[k]), f"mdlm-tiny/{k} not reproduced from the files"
    ids = g["input_ids"].long()
    masked = ids == MDLM_MASK_ID
    lp = g["log_probs"]
    # SUBS structure
    assert (lp[~masked].max(-1).values == 0).all() and (lp[~masked] == 0).sum() == (~masked).sum()
    assert (lp[~masked].exp().sum(-1) == 1).all()
    assert (lp[masked, MDLM_MASK_ID] < -9.9e5).all()
    assert (lp[masked].double().exp().sum(-1) - 1).abs().max() < 1e-5
    # float32 forward vs golden
    logits32, ex32 = mdlm.backbone(f32(p), cfg, ids, 0.0)
    lp32 = mdlm.subs(logits32, ids, MDLM_MASK_ID)
    dl = max_diff(logits32, g["logits"])
    dlp = max_diff(lp32[masked][:, :MDLM_MASK_ID], lp[masked][:, :MDLM_MASK_ID])
    print(f"  mdlm-tiny: f32 forward vs golden: logits {dl:.2e}, masked log-probs {dlp:.2e}; "
          f"logit std {g['logits'].std():.3f}; mean max-prob at masks "
          f"{lp[masked].exp().max(-1).values.mean():.3f}; min top1-top2 gap at masks "
          f"{(lp[masked].topk(2, -1).values[:, 0] - lp[masked].topk(2, -1).values[:, 1]).min():.4f}; "
          f"|log_probs - log_probs_sigma05| max {max_diff(lp[masked][:, :-1], g['log_probs_sigma05'][masked][:, :-1]):.3f}")
    assert dl < 1e-4 and dlp < 1e-4
    # with time_conditioning false the backbone ignores sigma
    assert torch.equal(mdlm.backbone(f64(p), cfg, ids, SIGMA2)[0], mdlm.backbone(f64(p), cfg, ids, 0.0)[0])
    # cross-checks of the building blocks against independent formulations
    x = torch.randn(ids.shape[0], cfg["n_heads"], 16, dtype=torch.float64)
    cos, sin = mdlm.rotary_cos_sin(ids.shape[0], 16, torch.float64)
    z = torch.complex(x[..., :8], x[..., 8:]) * torch.complex(cos[:, None, :8], sin[:, None, :8])
    assert max_diff(mdlm.rotate(x, cos, sin), torch.cat([z.real, z.imag], -1)) < 1e-12
    w = torch.rand(64, dtype=torch.float64)
    y = torch.randn(5, 64, dtype=torch.float64)
    assert max_diff(mdlm.norm(y, w), torch.nn.functional.layer_norm(y, (64,), w, None, 1e-5)) < 1e-12
    # bidirectional: changing the last token changes the first position's logits
    ids2 = ids.clone()
    ids2[-1] = 1
    assert max_diff(mdlm.backbone(f64(p), cfg, ids2, 0.0)[0][0], mdlm.backbone(f64(p), cfg, ids, 0.0)[0][0]) > 1e-6
    # block-causal: the prefix's outputs do not depend on the masked block; the block's differ from bidirectional
    P0 = int(g["block_causal_prefix"])
    bc, _ = mdlm.backbone(f64(p), cfg, ids, 0.0, prefix=P0)
    bc2, _ = mdlm.backbone(f64(p), cfg, ids2, 0.0, prefix=P0)
    assert torch.equal(bc[:P0], bc2[:P0]) and max_diff(bc[:P0], mdlm.backbone(f64(p), cfg, ids[:P0], 0.0, prefix=P0)[0]) < 1e-12
    assert max_diff(bc[P0:], mdlm.backbone(f64(p), cfg, ids, 0.0)[0][P0:]) > 1e-6
    print("  mdlm: SUBS structure, rotary == complex rotation, LN == F.layer_norm, bidirectional, block-causal")


# ------------------------------------------------------------ MDLM reading target features

MDLM_FEATURES = 40
MDLM_FEATURES_CFG = dict(MDLM_CFG, target_features=MDLM_FEATURES,
                         _name_or_path="mdlm-tiny-features (random, test fixture)")


def make_mdlm_features(params, ids):
    """test/fixtures/mdlm-tiny-features/: mdlm-tiny's weights plus feature_proj [D, F], random target features
    (zero at position 0 and at the draft slots, as at run time), and block-causal / bidirectional log-probs."""
    gen = torch.Generator().manual_seed(2408_05636)
    D = MDLM_CFG["hidden_dim"]
    fparams = dict(params)
    fparams[mdlm.P + "feature_proj.weight"] = 0.05 * torch.randn(D, MDLM_FEATURES, generator=gen)
    feats = torch.randn(MDLM_L, MDLM_FEATURES, generator=gen)
    feats[0] = 0
    feats[-MDLM_BLOCK:] = 0
    prefix = MDLM_L - MDLM_BLOCK
    with torch.no_grad():
        p = f64(fparams)
        bc, _ = mdlm.backbone(p, MDLM_FEATURES_CFG, ids, 0.0, prefix=prefix, target_feats=feats.double())
        bi, _ = mdlm.backbone(p, MDLM_FEATURES_CFG, ids, 0.0, target_feats=feats.double())
        plain, _ = mdlm.backbone(p, MDLM_FEATURES_CFG, ids, 0.0, prefix=prefix)
    golden = {
        "input_ids": ids.to(torch.int32),
        "target_features": feats,
        "block_causal_prefix": torch.tensor(prefix, dtype=torch.int32),
        "log_probs_block_causal": mdlm.subs(bc, ids, MDLM_MASK_ID).float(),
        "log_probs": mdlm.subs(bi, ids, MDLM_MASK_ID).float(),
    }
    # The features must matter, or the fixture proves nothing.
    assert (mdlm.subs(plain, ids, MDLM_MASK_ID) - mdlm.subs(bc, ids, MDLM_MASK_ID))[ids == MDLM_MASK_ID].abs().max() > 0.1
    meta = {"format": "golden v1", "model": "mdlm", "mask_token_id": str(MDLM_MASK_ID),
            "target_features": f"[L, {MDLM_FEATURES}] what each position reads through feature_proj",
            "log_probs_block_causal": "SUBS log-probs [L, V], block-causal (prefix P), with the features",
            "log_probs": "SUBS log-probs [L, V], bidirectional, with the features",
            "precision": "float64 from the stored F32 weights, rounded to float32"}
    write_mdlm_fixture("mdlm-tiny-features", MDLM_FEATURES_CFG, fparams, golden, meta)


# ------------------------------------------------------------------------------- MDLM with a draft head

MDLM_HEAD_CFG = dict(MDLM_CFG, block_causal=True, draft_head=True, _name_or_path="mdlm-tiny-head (random, test fixture)")
MDLM_HEAD_FEATURES_CFG = dict(MDLM_HEAD_CFG, draft_head_features=MDLM_FEATURES,
                              _name_or_path="mdlm-tiny-head-features (random, test fixture)")


MDLM_AR_LAYOUT_CFG = dict(MDLM_HEAD_CFG, learned_positions=True, attention_bias=True,
                          _name_or_path="mdlm-tiny-ar-layout (random, test fixture)")


def make_mdlm_head(params, ids, cfg=MDLM_HEAD_CFG, name="mdlm-tiny-head"):
    """test/fixtures/mdlm-tiny-head/: mdlm-tiny's weights plus a random draft head; the head's logits over the
    MDLM_BLOCK masks at the end of ids (block-causal backbone, prefix L - MDLM_BLOCK), each position reading the
    token before it from `draft_previous` (the last context token first, then arbitrary drafted tokens).
    With MDLM_HEAD_FEATURES_CFG (mdlm-tiny-head-features/), the head's first position also reads a random target
    state `draft_head_feature` through draft_head.feature_proj. With MDLM_AR_LAYOUT_CFG (mdlm-tiny-ar-layout/), the
    backbone has learned positions and attention biases. Each also holds the backbone's SUBS log-probs, bidirectional
    and block-causal."""
    gen = torch.Generator().manual_seed(2408_05637)
    hparams = dict(params)
    shapes = mdlm.param_shapes(cfg)
    # The head, and with MDLM_AR_LAYOUT_CFG the learned positions and attention biases: whatever mdlm-tiny lacks.
    extra = {k: v for k, v in mdlm.random_params(cfg, gen).items() if k not in params}
    assert sorted(k for k in extra if k.startswith(mdlm.P + "draft_head.")) == sorted(k for k in shapes if k.startswith(mdlm.P + "draft_head."))
    hparams.update(extra)
    assert set(hparams) == set(shapes)
    prefix = MDLM_L - MDLM_BLOCK
    ids = ids.clone()
    ids[prefix:] = MDLM_MASK_ID
    previous = torch.cat([ids[prefix - 1:prefix], torch.randint(0, MDLM_MASK_ID, (MDLM_BLOCK - 1,), generator=gen)])
    width = cfg.get("draft_head_features", 0)
    feature = torch.randn(width, generator=gen, dtype=torch.float32) if width else None
    with torch.no_grad():
        p = f64(hparams)
        f = None if feature is None else feature.double()
        _, extras = mdlm.backbone(p, cfg, ids, 0.0, prefix=prefix)
        hidden = extras[f"hidden_after_block{MDLM_CFG['n_blocks'] - 1}"][prefix:]
        logits = mdlm.draft_head(p, cfg, hidden, previous, extras["c"], f)
        # Causal: position i does not depend on what follows it.
        other = previous.clone()
        other[-1] = (other[-1] + 1) % MDLM_MASK_ID
        again = mdlm.draft_head(p, cfg, hidden, other, extras["c"], f)
        assert torch.equal(logits[:-1], again[:-1]) and max_diff(logits[-1], again[-1]) > 1e-3
        if cfg.get("learned_positions"):  # positions and biases must matter, or the fixture proves nothing
            for gone in ("pos_embed.weight", "attn_qkv.bias", "attn_out.bias"):
                q = {k: (torch.zeros_like(v) if k.endswith(gone) else v) for k, v in p.items()}
                assert max_diff(mdlm.backbone(q, cfg, ids, 0.0, prefix=prefix)[0], mdlm.backbone(p, cfg, ids, 0.0, prefix=prefix)[0]) > 1e-3
        bc, _ = mdlm.backbone(p, cfg, ids, 0.0, prefix=prefix)
        bi, _ = mdlm.backbone(p, cfg, ids, 0.0)
        if f is not None:  # the feature moves every position (position 0 directly, the later ones through attention)
            without = mdlm.draft_head(p, cfg, hidden, previous, extras["c"], torch.zeros_like(f))
            assert all(max_diff(logits[i], without[i]) > 1e-3 for i in range(len(logits)))
    logits[:, MDLM_MASK_ID] += mdlm.NEG_INF
    golden = {
        "input_ids": ids.to(torch.int32),
        "block_causal_prefix": torch.tensor(prefix, dtype=torch.int32),
        "draft_previous": previous.to(torch.int32),
        "draft_head_log_probs": torch.log_softmax(logits, -1).float(),
        "log_probs_block_causal": mdlm.subs(bc, ids, MDLM_MASK_ID).float(),
        "log_probs": mdlm.subs(bi, ids, MDLM_MASK_ID).float(),
        **({"draft_head_feature": feature} if feature is not None else {}),
    }
    meta = {"format": "golden v1", "model": "mdlm", "mask_token_id": str(MDLM_MASK_ID),
            "draft_previous": f"[{MDLM_BLOCK}] the token before each drafted position",
            "draft_head_log_probs": f"[{MDLM_BLOCK}, V] log-softmax of the draft head's logits at the masks "
                                    "(mask logit -1e6), block-causal backbone",
            "log_probs_block_causal": "SUBS log-probs [L, V], block-causal backbone (prefix P)",
            "log_probs": "SUBS log-probs [L, V], bidirectional backbone",
            "precision": "float64 from the stored F32 weights, rounded to float32"}
    if feature is not None:
        meta["draft_head_feature"] = f"[{width}] the target state the head's first position reads"
    write_mdlm_fixture(name, cfg, hparams, golden, meta)


# ------------------------------------------------------------------------------- safetensors I/O

def make_dtype_sample():
    """test/fixtures/safetensors-dtypes/: one small tensor per dtype + expected decoded values."""
    d = os.path.join(OUT, "safetensors-dtypes")
    os.makedirs(d, exist_ok=True)
    vals = [1.0, -2.5, 0.1, 65504.0, 6.103515625e-05, -0.0, 3.140625, -1e-3]
    tensors = {
        "f32": torch.tensor(vals + [1e30, -7.25], dtype=torch.float32).reshape(2, 5),
        "f16": torch.tensor(vals + [5.960464477539063e-08], dtype=torch.float16).reshape(9),  # last: subnormal
        "bf16": torch.tensor(vals + [1e30, 3e-39], dtype=torch.bfloat16).reshape(5, 2),        # last: subnormal
        "i32": torch.tensor([[0, 1, -1], [2147483647, -2147483648, 42]], dtype=torch.int32),
        "i64": torch.tensor([0, -3, 2 ** 40 + 1, 2 ** 53 - 1], dtype=torch.int64),
        "scalar_f32": torch.tensor(0.5, dtype=torch.float32),
        "empty_f32": torch.zeros(0, 3, dtype=torch.float32),
    }
    meta = {"format": "pt", "note": "dtype sample; expected.json lists decoded values row-major"}
    path = os.path.join(d, "dtypes.safetensors")
    st.save_file(tensors, path, metadata=meta)
    expected = {"__metadata__": meta}
    for k, t in tensors.items():
        expected[k] = {
            "dtype": st._TORCH_TO_ST[t.dtype],
            "shape": list(t.shape),
            "values": [float(v) if t.is_floating_point() else int(v) for v in t.reshape(-1).tolist()],
        }
    write_json(os.path.join(d, "expected.json"), expected)
    back, m = st.load_file(path)
    assert m == meta and list(back) == list(tensors)
    for k, t in tensors.items():
        assert back[k].dtype == t.dtype and back[k].shape == t.shape
        assert torch.equal(back[k].view(-1).double(), t.view(-1).double()) or t.numel() == 0
    hdr_len = int.from_bytes(open(path, "rb").read(8), "little")
    assert (8 + hdr_len) % 8 == 0
    print("  safetensors-dtypes: round trip OK (F32 F16 BF16 I32 I64, scalar, empty)")


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT, exist_ok=True)
    print("writing fixtures to", OUT)
    make_dtype_sample()
    params, ids, goldens = make_gpt2()
    check_gpt2(params, ids, goldens)
    mparams, mids, mgolden = make_mdlm()
    check_mdlm(mparams, mids, mgolden)
    make_mdlm_features(mparams, mids)
    make_mdlm_head(mparams, mids)
    make_mdlm_head(mparams, mids, MDLM_HEAD_FEATURES_CFG, "mdlm-tiny-head-features")
    make_mdlm_head(mparams, mids, MDLM_AR_LAYOUT_CFG, "mdlm-tiny-ar-layout")
    total = 0
    for dirpath, _, files in sorted(os.walk(OUT)):
        for f in sorted(files):
            size = os.path.getsize(os.path.join(dirpath, f))
            total += size
            print(f"  {os.path.relpath(os.path.join(dirpath, f), ROOT):60s} {size:>9d}")
    print(f"  total {total} bytes; self-check OK")


if __name__ == "__main__":
    main()
