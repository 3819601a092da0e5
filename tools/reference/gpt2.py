"""GPT-2 (HF GPT2LMHeadModel) forward in plain torch, written from the published definition.

Definition followed (Radford et al. 2019 + HF transformers `modeling_gpt2.py` conventions):
  x = wte[ids] + wpe[pos]
  per block:  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))          (pre-LN)
    attn: qkv = ln_1(x) @ c_attn.weight [d,3d] + bias, laid out [q | k | v], each split into
          n_head contiguous slices of head_dim; softmax(q k^T / sqrt(head_dim) + causal mask) v;
          heads concatenated, then @ c_proj.weight [d,d] + bias
    mlp:  gelu_new(x @ c_fc.weight [d,4d] + b) @ c_proj.weight [4d,d] + b
          gelu_new(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  logits = ln_f(x) @ wte^T                                          (tied LM head)
LayerNorms have weight and bias, eps = config.layer_norm_epsilon. Conv1D weights are [in, out].

Parameters are a dict keyed by the HF names without prefix (`wte.weight`, `h.0.ln_1.weight`, ...).
"""
import math

import torch
import torch.nn.functional as F


def gpt2_config(vocab_size, n_positions, n_embd, n_layer, n_head, layer_norm_epsilon=1e-5,
                bos_token_id=None, eos_token_id=None):
    """config.json with the fields of openai-community/gpt2's config.json (+ n_inner: null)."""
    eos = vocab_size - 1 if eos_token_id is None else eos_token_id
    bos = eos if bos_token_id is None else bos_token_id
    return {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": bos,
        "embd_pdrop": 0.1,
        "eos_token_id": eos,
        "initializer_range": 0.02,
        "layer_norm_epsilon": layer_norm_epsilon,
        "model_type": "gpt2",
        "n_ctx": n_positions,
        "n_embd": n_embd,
        "n_head": n_head,
        "n_inner": None,
        "n_layer": n_layer,
        "n_positions": n_positions,
        "resid_pdrop": 0.1,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "vocab_size": vocab_size,
    }


def param_shapes(cfg):
    d, V, P = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
    inner = cfg.get("n_inner") or 4 * d
    shapes = {"wte.weight": [V, d], "wpe.weight": [P, d]}
    for i in range(cfg["n_layer"]):
        h = f"h.{i}."
        shapes.update({
            h + "ln_1.weight": [d], h + "ln_1.bias": [d],
            h + "attn.c_attn.weight": [d, 3 * d], h + "attn.c_attn.bias": [3 * d],
            h + "attn.c_proj.weight": [d, d], h + "attn.c_proj.bias": [d],
            h + "ln_2.weight": [d], h + "ln_2.bias": [d],
            h + "mlp.c_fc.weight": [d, inner], h + "mlp.c_fc.bias": [inner],
            h + "mlp.c_proj.weight": [inner, d], h + "mlp.c_proj.bias": [d],
        })
    shapes.update({"ln_f.weight": [d], "ln_f.bias": [d]})
    return shapes


def random_params(cfg, gen, std=0.06):
    """Random weights scaled so that outputs are far from uniform; LN weights ~1±0.2, biases ~0.05."""
    p = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            p[name] = 1.0 + 0.2 * torch.randn(shape, generator=gen)
        elif name.endswith(".bias"):
            p[name] = 0.05 * torch.randn(shape, generator=gen)
        elif name == "wte.weight":
            p[name] = 0.3 * torch.randn(shape, generator=gen)
        elif name == "wpe.weight":
            p[name] = 0.05 * torch.randn(shape, generator=gen)
        else:
            p[name] = std * torch.randn(shape, generator=gen)
    return p


def normalize_keys(tensors):
    """HF checkpoint dict -> unprefixed params: strips `transformer.`, drops the attn.bias /
    attn.masked_bias buffers and a tied `lm_head.weight` (checked equal to wte)."""
    out = {}
    for k, v in tensors.items():
        k2 = k[len("transformer."):] if k.startswith("transformer.") else k
        if k2.endswith((".attn.bias", ".attn.masked_bias")):  # causal-mask buffers, not weights
            continue
        out[k2] = v
    lm = out.pop("lm_head.weight", None)
    if lm is not None:
        assert torch.equal(lm, out["wte.weight"]), "lm_head.weight is not tied to wte.weight"
    return out


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased variance, as torch.nn.LayerNorm
    return (x - mu) / torch.sqrt(var + eps) * w + b


def attention(p, h, x, n_head, past=None):
    """x: (T, d) normalized input; past: (k, v) each (H, T0, hd) or None. Returns (out, (k, v))."""
    T, d = x.shape
    hd = d // n_head
    qkv = x @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]           # (T, 3d)
    q, k, v = qkv.split(d, dim=-1)                                                # (T, d) each
    q, k, v = (t.reshape(T, n_head, hd).transpose(0, 1) for t in (q, k, v))       # (H, T, hd)
    if past is not None:
        k = torch.cat([past[0], k], dim=1)
        v = torch.cat([past[1], v], dim=1)
    T0 = k.shape[1] - T                                                           # cached length
    scores = (q @ k.transpose(1, 2)) / math.sqrt(hd)                              # (H, T, T0+T)
    allowed = torch.ones(T, T0 + T, dtype=torch.bool).tril(diagonal=T0)           # key j <= T0 + i
    scores = scores.masked_fill(~allowed, float("-inf"))
    o = torch.softmax(scores, dim=-1) @ v                                         # (H, T, hd)
    o = o.transpose(0, 1).reshape(T, d)
    return o @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"], (k, v)


def forward(p, cfg, ids, past=None, collect=False):
    """ids: (T,) int64 tokens at positions len(past)..; returns (logits (T, V), new_past, extras)."""
    eps = cfg["layer_norm_epsilon"]
    T0 = 0 if past is None else past[0][0].shape[1]
    x = p["wte.weight"][ids] + p["wpe.weight"][T0:T0 + ids.shape[0]]              # (T, d)
    new_past, extras = [], {}
    for i in range(cfg["n_layer"]):
        h = f"h.{i}."
        a, kv = attention(p, h, layer_norm(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"], eps),
                          cfg["n_head"], None if past is None else past[i])
        x = x + a
        m = layer_norm(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"], eps)
        m = gelu_new(m @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"])
        x = x + m @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"]
        new_past.append(kv)
        if collect:
            extras[f"hidden_after_block{i}"] = x
    x = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"], eps)
    if collect:
        extras["hidden_final"] = x
    return x @ p["wte.weight"].T, new_past, extras
