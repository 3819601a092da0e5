"""MDLM DiT backbone + SUBS parameterization in plain torch (no flash-attn, no einops).

Written from kuleshov-group/mdlm `models/dit.py` (class DIT / DDiTBlock / DDitFinalLayer /
TimestepEmbedder / Rotary) and `diffusion.py` (`_subs_parameterization`, `_process_sigma`),
and the HF remote code of kuleshov-group/mdlm-owt (`modeling_mdlm.py`, DITBackbone), which
uses the same math and the key names below. Unbatched: every activation is (L, ...).

  c      = SiLU(sigma_map(sigma))                    sigma_map = Linear(256->cond) SiLU Linear(cond->cond)
           sigma_map input: [cos(sigma*f_i) for i<128] ++ [sin(sigma*f_i) for i<128],
           f_i = exp(-ln(10000) * i / 128);  sigma is forced to 0 when time_conditioning is false
  x      = vocab_embed.embedding[ids]                 (L, D)
  block:   (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp) = chunk6(adaLN(c))
           h   = LN(x) * norm1.weight * (1 + scale_msa) + shift_msa
           qkv = h @ attn_qkv.weight^T  -> (L, 3, H, hd)  [q | k | v], heads contiguous inside each
           q, k rotated (rotate-half, positions 0..L-1, base 10000, dim hd); v untouched
           x   = x + gate_msa * (softmax(q k^T / sqrt(hd)) v  @ attn_out.weight^T)   (no mask)
           x   = x + gate_mlp * MLP(LN(x) * norm2.weight * (1 + scale_mlp) + shift_mlp)
           MLP = Linear(D->4D, bias) GELU(tanh) Linear(4D->D, bias)
  final:   (shift, scale) = chunk2(output_layer.adaLN(c))
           logits = (LN(x) * norm_final.weight * (1 + scale) + shift) @ linear.weight^T + linear.bias
  LN = layer norm without affine params, eps 1e-5, computed in float32 in the original.
"""
import math

import torch
import torch.nn.functional as F

P = "backbone."
FREQ_EMB = 256          # TimestepEmbedder.frequency_embedding_size
NEG_INF = -1000000.0    # diffusion.py: self.neg_infinity


def mdlm_config(vocab_size, model_length, hidden_dim, cond_dim, n_blocks, n_heads,
                dropout=0.1, time_conditioning=False, name_or_path="kuleshov-group/mdlm-owt"):
    """config.json with the fields (and key order) of kuleshov-group/mdlm-owt's config.json."""
    return {
        "_name_or_path": name_or_path,
        "architectures": ["MDLM"],
        "auto_map": {
            "AutoConfig": "configuration_mdlm.MDLMConfig",
            "AutoModelForMaskedLM": "modeling_mdlm.MDLM",
        },
        "cond_dim": cond_dim,
        "dropout": dropout,
        "hidden_dim": hidden_dim,
        "model_length": model_length,
        "model_type": "mdlm",
        "n_blocks": n_blocks,
        "n_heads": n_heads,
        "return_dict": False,
        "time_conditioning": time_conditioning,
        "torch_dtype": "float32",
        "transformers_version": "4.38.2",
        "vocab_size": vocab_size,
    }


def param_shapes(cfg):
    D, C, V = cfg["hidden_dim"], cfg["cond_dim"], cfg["vocab_size"]
    hd = D // cfg["n_heads"]
    s = {
        P + "vocab_embed.embedding": [V, D],
        P + "sigma_map.mlp.0.weight": [C, FREQ_EMB], P + "sigma_map.mlp.0.bias": [C],
        P + "sigma_map.mlp.2.weight": [C, C], P + "sigma_map.mlp.2.bias": [C],
        P + "rotary_emb.inv_freq": [hd // 2],
    }
    if cfg.get("learned_positions"):
        s[P + "pos_embed.weight"] = [cfg["model_length"], D]

    def block_shapes(b, attention_bias):
        return {
            b + "norm1.weight": [D],
            b + "attn_qkv.weight": [3 * D, D],
            **({b + "attn_qkv.bias": [3 * D]} if attention_bias else {}),
            b + "attn_out.weight": [D, D],
            **({b + "attn_out.bias": [D]} if attention_bias else {}),
            b + "norm2.weight": [D],
            b + "mlp.0.weight": [4 * D, D], b + "mlp.0.bias": [4 * D],
            b + "mlp.2.weight": [D, 4 * D], b + "mlp.2.bias": [D],
            b + "adaLN_modulation.weight": [6 * D, C], b + "adaLN_modulation.bias": [6 * D],
        }
    for i in range(cfg["n_blocks"]):
        s.update(block_shapes(f"{P}blocks.{i}.", cfg.get("attention_bias", False)))
    if cfg.get("draft_head"):
        h = P + "draft_head."
        s[h + "token_proj.weight"] = [D, D]
        if cfg.get("draft_head_features"):
            s[h + "feature_proj.weight"] = [D, cfg["draft_head_features"]]
        s.update(block_shapes(h + "block.", False))           # the head's block has no attention biases
    s.update({
        P + "output_layer.norm_final.weight": [D],
        P + "output_layer.linear.weight": [V, D], P + "output_layer.linear.bias": [V],
        P + "output_layer.adaLN_modulation.weight": [2 * D, C],
        P + "output_layer.adaLN_modulation.bias": [2 * D],
    })
    return s


def inv_freq(head_dim, base=10000):
    """Rotary(dim).inv_freq = 1 / base^(arange(0, dim, 2) / dim), float32."""
    return 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))


def random_params(cfg, gen):
    """Random weights; non-zero adaLN so that shift/scale/gate all matter (the original inits
    adaLN and the output linear to zero, which would make a useless fixture)."""
    p = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith("rotary_emb.inv_freq"):
            p[name] = inv_freq(shape[0] * 2)
        elif name.endswith("norm1.weight") or name.endswith("norm2.weight") or name.endswith("norm_final.weight"):
            p[name] = 1.0 + 0.2 * torch.randn(shape, generator=gen)
        elif "adaLN_modulation" in name:
            p[name] = (0.1 if name.endswith("weight") else 0.2) * torch.randn(shape, generator=gen)
        elif "sigma_map" in name:
            p[name] = 0.1 * torch.randn(shape, generator=gen)
        elif name.endswith("vocab_embed.embedding"):
            p[name] = 0.5 * torch.randn(shape, generator=gen)
        elif name.endswith(".bias"):
            p[name] = 0.05 * torch.randn(shape, generator=gen)
        elif "output_layer.linear" in name:
            p[name] = 0.4 * torch.randn(shape, generator=gen)
        else:
            p[name] = 0.08 * torch.randn(shape, generator=gen)
    return p


def timestep_embedding(sigma, dim=FREQ_EMB, max_period=10000):
    """TimestepEmbedder.timestep_embedding for one scalar sigma -> (dim,), computed in float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = torch.tensor(float(sigma), dtype=torch.float32) * freqs
    return torch.cat([torch.cos(args), torch.sin(args)])


def conditioning(p, sigma):
    """c = SiLU(sigma_map(sigma)) -> (cond_dim,). Note the two SiLUs (inside and after the MLP)."""
    w0 = p[P + "sigma_map.mlp.0.weight"]
    t = timestep_embedding(sigma).to(w0.dtype)
    h = F.silu(t @ w0.T + p[P + "sigma_map.mlp.0.bias"])
    h = h @ p[P + "sigma_map.mlp.2.weight"].T + p[P + "sigma_map.mlp.2.bias"]
    return F.silu(h)


def norm(x, w, eps=1e-5):
    """LayerNorm(no affine) * weight; no bias."""
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w


def rotary_cos_sin(L, head_dim, dtype):
    """Rotary.forward: freqs = outer(positions, inv_freq) in float32; emb = cat(freqs, freqs)."""
    t = torch.arange(L, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq(head_dim))                       # (L, hd/2)
    emb = torch.cat([freqs, freqs], dim=-1)                          # (L, hd)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate(x, cos, sin):
    """Rotate-half (GPT-NeoX / flash_attn interleaved=False). x: (L, H, hd); cos, sin: (L, hd)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    rot = torch.cat([-x2, x1], dim=-1)
    return x * cos[:, None, :] + rot * sin[:, None, :]


def block(p, b, x, c, cos, sin, n_heads, prefix=None):
    L, D = x.shape
    hd = D // n_heads
    mod = c @ p[b + "adaLN_modulation.weight"].T + p[b + "adaLN_modulation.bias"]  # (6D,)
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6)
    h = norm(x, p[b + "norm1.weight"]) * (1 + scale_msa) + shift_msa
    qkv = h @ p[b + "attn_qkv.weight"].T
    if b + "attn_qkv.bias" in p:                                                    # config "attention_bias"
        qkv = qkv + p[b + "attn_qkv.bias"]
    qkv = qkv.reshape(L, 3, n_heads, hd)                                            # (L, 3, H, hd)
    q, k, v = rotate(qkv[:, 0], cos, sin), rotate(qkv[:, 1], cos, sin), qkv[:, 2]    # (L, H, hd)
    q, k, v = (t.transpose(0, 1) for t in (q, k, v))                                # (H, L, hd)
    s = q @ k.transpose(1, 2) / math.sqrt(hd)                                       # (H, L, L)
    if prefix is not None:
        # Block-causal: query i < prefix sees keys j <= i only; queries >= prefix see all keys.
        i = torch.arange(L)
        s = s.masked_fill(~((i[None] <= i[:, None]) | (i[:, None] >= prefix)), float("-inf"))
    a = torch.softmax(s, dim=-1) @ v                                                # bidirectional without prefix
    a = a.transpose(0, 1).reshape(L, D)
    o = a @ p[b + "attn_out.weight"].T
    if b + "attn_out.bias" in p:
        o = o + p[b + "attn_out.bias"]
    x = x + gate_msa * o
    h = norm(x, p[b + "norm2.weight"]) * (1 + scale_mlp) + shift_mlp
    h = F.gelu(h @ p[b + "mlp.0.weight"].T + p[b + "mlp.0.bias"], approximate="tanh")
    return x + gate_mlp * (h @ p[b + "mlp.2.weight"].T + p[b + "mlp.2.bias"])


def backbone(p, cfg, ids, sigma, honor_time_conditioning=True, prefix=None, target_feats=None):
    """DIT.forward for one sequence. Returns (logits (L, V), extras dict).

    prefix P: block-causal attention (this project's drafter with a KV cache; not in upstream MDLM):
    positions < P attend causally, positions >= P (the masked block) attend to every position.

    target_feats (L, F): this project's target-feature conditioning (config "target_features": F, not in
    upstream MDLM): x = embedding + target_feats @ feature_proj.weight^T before the first block.

    Config "learned_positions" (this project's, for a drafter made from an AR model): x += pos_embed.weight[0..L-1]
    and no rotary; config "attention_bias": attn_qkv and attn_out add their biases (GPT-2's c_attn, c_proj).

    With honor_time_conditioning (the default, like DITBackbone / _process_sigma) sigma is
    replaced by 0 when cfg["time_conditioning"] is false; pass False to feed sigma regardless."""
    if honor_time_conditioning and not cfg["time_conditioning"]:
        sigma = 0.0
    dtype = p[P + "vocab_embed.embedding"].dtype
    c = conditioning(p, sigma)
    x = p[P + "vocab_embed.embedding"][ids]                                         # (L, D)
    if target_feats is not None:
        x = x + target_feats @ p[P + "feature_proj.weight"].T                          # (L, F) x (F, D)
    cos, sin = rotary_cos_sin(ids.shape[0], cfg["hidden_dim"] // cfg["n_heads"], dtype)
    if cfg.get("learned_positions"):                                                # no rotation: angle 0
        x = x + p[P + "pos_embed.weight"][:ids.shape[0]]
        cos, sin = torch.ones_like(cos), torch.zeros_like(sin)
    extras = {"c": c}
    for i in range(cfg["n_blocks"]):
        x = block(p, f"{P}blocks.{i}.", x, c, cos, sin, cfg["n_heads"], prefix)
        extras[f"hidden_after_block{i}"] = x
    o = P + "output_layer."
    shift, scale = (c @ p[o + "adaLN_modulation.weight"].T + p[o + "adaLN_modulation.bias"]).chunk(2)
    x = norm(x, p[o + "norm_final.weight"]) * (1 + scale) + shift
    return x @ p[o + "linear.weight"].T + p[o + "linear.bias"], extras


def output_layer(p, x, c):
    o = P + "output_layer."
    shift, scale = (c @ p[o + "adaLN_modulation.weight"].T + p[o + "adaLN_modulation.bias"]).chunk(2)
    return (norm(x, p[o + "norm_final.weight"]) * (1 + scale) + shift) @ p[o + "linear.weight"].T + p[o + "linear.bias"]


def draft_head(p, cfg, hidden, prev_ids, c, feature=None):
    """This project's draft head (config "draft_head": true, not in upstream MDLM). hidden (G, D): the last block's
    output at the G masks of a draft; prev_ids (G,): the token before each drafted position. Logits (G, V):
    x = hidden + vocab_embed[prev_ids] @ token_proj.weight^T, then one DiT block (draft_head.block.*) with causal
    attention over the G positions and rotary positions 0..G-1, then the backbone's output layer.
    feature (F,) (config "draft_head_features": F): the target's hidden state that predicted prev_ids[0];
    x[0] += feature @ draft_head.feature_proj.weight^T."""
    G = hidden.shape[0]
    x = hidden + p[P + "vocab_embed.embedding"][prev_ids] @ p[P + "draft_head.token_proj.weight"].T
    if feature is not None:
        x = torch.cat([x[:1] + feature @ p[P + "draft_head.feature_proj.weight"].T, x[1:]])
    cos, sin = rotary_cos_sin(G, cfg["hidden_dim"] // cfg["n_heads"], hidden.dtype)
    x = block(p, P + "draft_head.block.", x, c, cos, sin, cfg["n_heads"], prefix=G)   # prefix G: causal everywhere
    return output_layer(p, x, c)


def subs(logits, ids, mask_id):
    """diffusion.py `_subs_parameterization`: +(-1e6) on the mask column of the raw logits,
    then log-softmax (logits - logsumexp), then rows of unmasked positions are set to -1e6
    everywhere except 0 at their own token."""
    logits = logits.clone()
    logits[:, mask_id] += NEG_INF
    logp = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    unmasked = ids != mask_id
    logp[unmasked] = NEG_INF
    logp[unmasked, ids[unmasked]] = 0.0
    return logp
