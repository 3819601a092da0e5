"""Optional cross-check: run the ORIGINAL kuleshov-group/mdlm code on test/fixtures/mdlm-tiny and
compare with golden.safetensors.

    git clone https://github.com/kuleshov-group/mdlm /tmp/mdlm
    /usr/bin/python3 tools/reference/check_upstream_mdlm.py /tmp/mdlm

Nothing from upstream is copied here: its `models/dit.py` is imported from the given checkout,
and `Diffusion._subs_parameterization` is compiled from its `diffusion.py` at run time. Its
imports that are unavailable on CPU are stubbed: flash_attn (rotary + varlen attention, written
below from flash-attn's documented semantics), einops.rearrange (the three patterns dit.py uses),
omegaconf and huggingface_hub (not used by the math); torch.cuda.amp.autocast becomes a no-op
(it raises on CPU-only torch builds). Runs in float32 (upstream's LayerNorm
casts to float32 anyway; its bf16 autocast is CUDA-only and inert here).
"""
import ast
import importlib.util
import math
import os
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as st  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def install_stubs():
    def rearrange(x, pattern, **kw):
        if pattern == "b s (three h d) -> b s three h d":
            b, s, n = x.shape
            return x.reshape(b, s, kw["three"], kw["h"], n // (kw["three"] * kw["h"]))
        if pattern == "b s ... -> (b s) ...":
            return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])
        if pattern == "(b s) h d -> b s (h d)":
            return x.reshape(kw["b"], -1, x.shape[1] * x.shape[2])
        raise NotImplementedError(pattern)

    def apply_rotary_emb_qkv_(qkv, cos, sin, interleaved=False):
        # flash_attn.layers.rotary: qkv (b, s, 3, h, d); cos/sin (s, rotary_dim/2); q and k rotated
        # in place, non-interleaved: [x1, x2] -> [x1 cos - x2 sin, x1 sin + x2 cos]
        assert not interleaved
        r = cos.shape[-1]
        c, s_ = cos[None, :, None, :], sin[None, :, None, :]
        for i in (0, 1):
            x1 = qkv[:, :, i, :, :r].clone()
            x2 = qkv[:, :, i, :, r:2 * r].clone()
            qkv[:, :, i, :, :r] = x1 * c - x2 * s_
            qkv[:, :, i, :, r:2 * r] = x1 * s_ + x2 * c
        return qkv

    def flash_attn_varlen_qkvpacked_func(qkv, cu_seqlens, max_seqlen, dropout_p, causal=False,
                                         softmax_scale=None):
        # qkv (total, 3, h, d); default softmax_scale = 1/sqrt(d)
        assert dropout_p == 0.0 and not causal
        scale = softmax_scale or 1.0 / math.sqrt(qkv.shape[-1])
        out = torch.empty_like(qkv[:, 0])
        for a, b in zip(cu_seqlens[:-1].tolist(), cu_seqlens[1:].tolist()):
            q, k, v = qkv[a:b, 0], qkv[a:b, 1], qkv[a:b, 2]                    # (s, h, d)
            w = torch.einsum("qhd,khd->hqk", q, k) * scale
            out[a:b] = torch.einsum("hqk,khd->qhd", w.softmax(-1), v)
        return out

    mods = {n: types.ModuleType(n) for n in (
        "flash_attn", "flash_attn.layers", "flash_attn.layers.rotary",
        "flash_attn.flash_attn_interface", "einops", "omegaconf", "huggingface_hub")}
    mods["flash_attn.layers.rotary"].apply_rotary_emb_qkv_ = apply_rotary_emb_qkv_
    mods["flash_attn.flash_attn_interface"].flash_attn_varlen_qkvpacked_func = flash_attn_varlen_qkvpacked_func
    mods["flash_attn"].layers = mods["flash_attn.layers"]
    mods["flash_attn.layers"].rotary = mods["flash_attn.layers.rotary"]
    mods["flash_attn"].flash_attn_interface = mods["flash_attn.flash_attn_interface"]
    mods["einops"].rearrange = rearrange

    class OmegaConf:
        @staticmethod
        def create(d):
            ns = lambda v: types.SimpleNamespace(**{k: ns(x) for k, x in v.items()}) if isinstance(v, dict) else v
            return ns(d)

    mods["omegaconf"].OmegaConf = OmegaConf
    mods["huggingface_hub"].PyTorchModelHubMixin = type("PyTorchModelHubMixin", (), {})
    sys.modules.update(mods)
    # torch.cuda.amp.autocast(dtype=bfloat16) raises on a CPU-only torch build; on CPU it would be
    # inert anyway, so replace it with a no-op context manager.
    import contextlib
    torch.cuda.amp.autocast = lambda *a, **k: contextlib.nullcontext()


def load_subs(diffusion_py):
    """Compiles Diffusion._subs_parameterization from upstream source into a plain function."""
    tree = ast.parse(open(diffusion_py).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "_subs_parameterization":
            mod = ast.Module(body=[node], type_ignores=[])
            ns = {"torch": torch}
            exec(compile(mod, diffusion_py, "exec"), ns)
            return ns["_subs_parameterization"]
    raise RuntimeError("_subs_parameterization not found")


def main(repo):
    torch.set_num_threads(1)
    install_stubs()
    spec = importlib.util.spec_from_file_location("upstream_dit", os.path.join(repo, "models", "dit.py"))
    dit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dit)

    import json
    d = os.path.join(ROOT, "test", "fixtures", "mdlm-tiny")
    cfg = json.load(open(os.path.join(d, "config.json")))
    weights, _ = st.load_file(os.path.join(d, "model.safetensors"))
    golden, meta = st.load_file(os.path.join(d, "golden.safetensors"))
    model = dit.DIT({"model": {"hidden_size": cfg["hidden_dim"], "cond_dim": cfg["cond_dim"],
                               "n_heads": cfg["n_heads"], "n_blocks": cfg["n_blocks"],
                               "dropout": cfg["dropout"], "scale_by_sigma": True}},
                    vocab_size=cfg["vocab_size"])
    model.load_state_dict({k[len("backbone."):]: v for k, v in weights.items()}, strict=True)
    model.eval()

    subs = load_subs(os.path.join(repo, "diffusion.py"))
    host = types.SimpleNamespace(mask_index=int(meta["mask_token_id"]), neg_infinity=-1000000.0)
    ids = golden["input_ids"].long()[None]
    worst = 0.0
    with torch.no_grad():
        for sigma, key in ((0.0, "log_probs"), (float(golden["sigma05"]), "log_probs_sigma05")):
            model.rotary_emb.seq_len_cached = None
            logits = model(ids, torch.tensor([sigma]))
            logp = subs(host, logits.clone(), ids)[0]
            masked = ids[0] == host.mask_index
            ref = golden[key]
            diff = (logp[masked][:, :-1] - ref[masked][:, :-1]).abs().max().item()
            same_unmasked = torch.equal(logp[~masked], ref[~masked])
            mask_col = (logp[masked][:, -1] - ref[masked][:, -1]).abs().max().item()
            print(f"{key}: upstream vs golden, masked rows max |diff| {diff:.2e}, mask column {mask_col:.2e}, "
                  f"unmasked rows identical: {same_unmasked}")
            assert diff < 1e-4 and same_unmasked and mask_col <= 0.125
            worst = max(worst, diff)
            if sigma == 0.0:
                dl = (logits[0] - golden["logits"]).abs().max().item()
                print(f"logits: upstream vs golden max |diff| {dl:.2e}")
                assert dl < 1e-4
    print("upstream MDLM matches the golden outputs")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/mdlm")
