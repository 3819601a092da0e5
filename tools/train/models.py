"""GPT-2 and MDLM (DiT backbone) in plain PyTorch 1.13, named after the HF checkpoint keys (REFERENCE.md §2, §3).

GPT2.state_dict() keys == openai-community/gpt2 model.safetensors keys (wte.weight, h.0.attn.c_attn.weight [in,out], ...).
MDLM.state_dict() keys == kuleshov-group/mdlm-owt keys (backbone.vocab_embed.embedding, backbone.blocks.0.attn_qkv.weight, ...).
"""
import math
import time
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


# ------------------------------------------------------------------------------------------------- compute dtype
_MATMUL_DTYPE = None


def matmul_dtype():
    """bfloat16 or float32, whichever multiplies faster on this CPU, timed once per process. mkldnn's bf16 is ~10x
    fp32 on CPUs with AVX-512 and ~30x slower than fp32 on AVX2-only ones (docs/training.md, "Time")."""
    global _MATMUL_DTYPE
    if _MATMUL_DTYPE is None:
        def rate(dt):
            a, b = torch.randn(256, 512, dtype=dt), torch.randn(512, 1024, dtype=dt)
            a @ b
            t = time.perf_counter()
            for _ in range(4):
                a @ b
            return 1 / (time.perf_counter() - t)
        _MATMUL_DTYPE = torch.bfloat16 if rate(torch.bfloat16) > rate(torch.float32) else torch.float32
    return _MATMUL_DTYPE


def autocast():
    """CPU autocast to matmul_dtype() (a no-op context where that is float32)."""
    dt = matmul_dtype()
    return torch.autocast('cpu', dtype=torch.bfloat16, enabled=dt == torch.bfloat16)


# ----------------------------------------------------------------------------------------------------------- configs
@dataclass
class GPT2Config:
    vocab_size: int = 8192
    n_positions: int = 512
    n_embd: int = 512
    n_layer: int = 6
    n_head: int = 8
    layer_norm_epsilon: float = 1e-5
    dropout: float = 0.0

    def hf(self, eot_id):
        """config.json in the layout of openai-community/gpt2."""
        return {
            'architectures': ['GPT2LMHeadModel'], 'model_type': 'gpt2', 'activation_function': 'gelu_new',
            'vocab_size': self.vocab_size, 'n_positions': self.n_positions, 'n_ctx': self.n_positions,
            'n_embd': self.n_embd, 'n_layer': self.n_layer, 'n_head': self.n_head, 'n_inner': None,
            'layer_norm_epsilon': self.layer_norm_epsilon, 'initializer_range': 0.02,
            'attn_pdrop': self.dropout, 'embd_pdrop': self.dropout, 'resid_pdrop': self.dropout,
            'scale_attn_weights': True, 'tie_word_embeddings': True, 'use_cache': True,
            'bos_token_id': eot_id, 'eos_token_id': eot_id, 'torch_dtype': 'float16',
        }


@dataclass
class MDLMConfig:
    vocab_size: int = 8193          # tokenizer vocab + 1 mask token
    model_length: int = 512
    hidden_dim: int = 256
    cond_dim: int = 64
    n_blocks: int = 4
    n_heads: int = 4
    dropout: float = 0.0
    time_conditioning: bool = False
    noise_eps: float = 1e-3         # log-linear noise: move_chance(t) = (1 - eps) t
    target_features: int = 0        # width of the target's hidden states the drafter reads (0: none)
    draft_head: bool = False        # a causal block over the draft that reads the token drafted before each position
    draft_head_features: int = 0    # width of the target's hidden state the draft head's first position reads (0: none)
    shift_logits: bool = False      # row i's logits predict the token at i + 1, as an AR model's (DiffuLLaMA / Dream)
    learned_positions: bool = False # the backbone adds a learned position table (GPT-2's wpe) instead of rotary
    attention_bias: bool = False    # the backbone's attn_qkv and attn_out have biases (GPT-2's c_attn, c_proj)

    @property
    def mask_index(self):
        return self.vocab_size - 1

    def hf(self):
        """config.json in the layout of kuleshov-group/mdlm-owt."""
        return {
            'architectures': ['MDLM'], 'model_type': 'mdlm', 'auto_map': {
                'AutoConfig': 'configuration_mdlm.MDLMConfig', 'AutoModelForMaskedLM': 'modeling_mdlm.MDLM'},
            'vocab_size': self.vocab_size, 'model_length': self.model_length, 'hidden_dim': self.hidden_dim,
            'cond_dim': self.cond_dim, 'n_blocks': self.n_blocks, 'n_heads': self.n_heads, 'dropout': self.dropout,
            'time_conditioning': self.time_conditioning, 'torch_dtype': 'float16',
            # not in mdlm-owt's config; stated for readers of this export
            'mask_token_id': self.mask_index, 'noise_schedule': 'loglinear', 'noise_eps': self.noise_eps,
            'parameterization': 'subs',
            **({'target_features': self.target_features} if self.target_features else {}),
            **({'draft_head': True} if self.draft_head else {}),
            **({'draft_head_features': self.draft_head_features} if self.draft_head_features else {}),
            **({'shift_logits': True} if self.shift_logits else {}),
            **({'learned_positions': True} if self.learned_positions else {}),
            **({'attention_bias': True} if self.attention_bias else {}),
        }


def count_params(model, exclude=()):
    return sum(p.numel() for n, p in model.state_dict().items()
               if not any(n.startswith(e) or n == e for e in exclude) and not n.endswith('inv_freq'))


# ------------------------------------------------------------------------------------------------------------- GPT-2
class Conv1D(nn.Module):
    """HF GPT-2 Conv1D: y = x W + b, W stored [in, out]."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out).normal_(std=0.02))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class GPT2Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = Conv1D(cfg.n_embd, 3 * cfg.n_embd)   # [d, 3d], output [q | k | v]
        self.c_proj = Conv1D(cfg.n_embd, cfg.n_embd)

    def forward(self, x):                                   # x (B, T, d)
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        att = att.float().masked_fill(causal, float('-inf')).softmax(dim=-1).to(v.dtype)  # softmax in fp32
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


class GPT2MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = Conv1D(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = Conv1D(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate='tanh'))


class GPT2Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.attn = GPT2Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.mlp = GPT2MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        x = x + self.drop(self.attn(self.ln_1(x)))
        return x + self.drop(self.mlp(self.ln_2(x)))


class GPT2(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.h = nn.ModuleList(GPT2Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)
        for b in self.h:  # GPT-2: residual projections scaled by 1/sqrt(2 n_layer)
            for proj in (b.attn.c_proj, b.mlp.c_proj):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * cfg.n_layer))

    def hidden(self, idx):                                   # idx (B, T) -> ln_f output (B, T, d)
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.ln_f(x)

    def forward(self, idx):                                  # idx (B, T) -> logits (B, T, V)
        return self.hidden(idx) @ self.wte.weight.t()        # tied LM head

    def non_embedding_params(self):
        return count_params(self, exclude=('wte.', 'wpe.'))

    @torch.no_grad()
    def generate(self, idx, n, temperature=1.0, top_k=0, generator=None):
        for _ in range(n):
            logits = self(idx[:, -self.cfg.n_positions:])[:, -1]
            if temperature == 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k:
                    kth = logits.topk(top_k, dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float('-inf'))
                nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


# ------------------------------------------------------------------------------------------------------ MDLM (DiT)
class TimestepEmbedder(nn.Module):
    """sigma_map: 256-dim frequency embedding [cos, sin] -> Linear -> SiLU -> Linear."""

    def __init__(self, cond_dim, freq_dim=256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

    def forward(self, sigma):                                # sigma (B,) -> (B, cond_dim)
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=sigma.device) / half)
        args = sigma[:, None].float() * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class Rotary(nn.Module):
    def __init__(self, head_dim, base=10000):
        super().__init__()
        self.register_buffer('inv_freq', 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim))

    def forward(self, T, device):                            # -> cos, sin (T, head_dim)
        f = torch.outer(torch.arange(T, device=device, dtype=torch.float32), self.inv_freq)
        f = torch.cat([f, f], dim=-1)
        return f.cos(), f.sin()


def apply_rotary(x, cos, sin):                              # x (B, T, H, hd); rotate-half, non-interleaved
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos[None, :, None] + torch.cat([-x2, x1], dim=-1) * sin[None, :, None]


class LayerNormNoBias(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], eps=1e-5) * self.weight


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


class DDiTBlock(nn.Module):
    def __init__(self, cfg, attention_bias=False):
        super().__init__()
        d = cfg.hidden_dim
        self.n_heads = cfg.n_heads
        self.norm1 = LayerNormNoBias(d)
        self.attn_qkv = nn.Linear(d, 3 * d, bias=attention_bias)     # [3d, d], output [q | k | v]
        self.attn_out = nn.Linear(d, d, bias=attention_bias)
        self.norm2 = LayerNormNoBias(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate='tanh'), nn.Linear(4 * d, d))
        self.adaLN_modulation = nn.Linear(cfg.cond_dim, 6 * d)
        self.drop = nn.Dropout(cfg.dropout)
        nn.init.zeros_(self.adaLN_modulation.weight)
        nn.init.zeros_(self.adaLN_modulation.bias)

    def forward(self, x, cos, sin, c, allowed=None):         # x (B, T, d), c (B, cond), allowed (T, T) or None
        B, T, d = x.shape
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c)[:, None].chunk(6, dim=2)
        qkv = self.attn_qkv(modulate(self.norm1(x), shift_msa, scale_msa)).view(B, T, 3, self.n_heads, d // self.n_heads)
        q, k, v = apply_rotary(qkv[:, :, 0], cos, sin), apply_rotary(qkv[:, :, 1], cos, sin), qkv[:, :, 2]
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)   # (B, H, T, hd)
        att = ((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))).float()
        if allowed is not None:
            att = att.masked_fill(~allowed, float('-inf'))
        att = att.softmax(dim=-1).to(v.dtype)
        o = (att @ v).transpose(1, 2).reshape(B, T, d)
        x = x + gate_msa * self.drop(self.attn_out(o))
        return x + gate_mlp * self.drop(self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp)))


class DDiTFinalLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.norm_final = LayerNormNoBias(cfg.hidden_dim)
        self.linear = nn.Linear(cfg.hidden_dim, cfg.vocab_size)
        self.adaLN_modulation = nn.Linear(cfg.cond_dim, 2 * cfg.hidden_dim)
        for p in (self.linear.weight, self.linear.bias, self.adaLN_modulation.weight, self.adaLN_modulation.bias):
            nn.init.zeros_(p)

    def forward(self, x, c):                                 # x (B, T, d) with c (B, cond), or x (N, d) with c (N, cond)
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        if x.dim() == 3:
            shift, scale = shift[:, None], scale[:, None]
        return self.linear(modulate(self.norm_final(x), shift, scale))


class EmbeddingLayer(nn.Module):
    def __init__(self, dim, vocab):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(vocab, dim))
        nn.init.kaiming_uniform_(self.embedding, a=math.sqrt(5))

    def forward(self, x):
        return self.embedding[x]


def block_causal(T, prefix, device=None):
    """(T, T) attention mask: row i < prefix sees keys j <= i; rows >= prefix see every key."""
    i = torch.arange(T, device=device)
    return (i[None] <= i[:, None]) | (i[:, None] >= prefix)


def causal(T, device=None):
    i = torch.arange(T, device=device)
    return i[None] <= i[:, None]


class DraftHead(nn.Module):
    """Conditions each drafted position on the tokens drafted before it (the factorisation gap of a T = 1 draft).
    Position i of the draft reads the backbone's hidden state of its mask plus token_proj of the embedding of the
    token before it (the last context token for i = 0), then one DiT block attending causally over the draft alone,
    with rotary positions counted from the draft's start. The output layer is the backbone's. token_proj and the
    block's adaLN start at zero, so an untrained head leaves the drafter's distributions as they are.
    With draft_head_features, position 0 also reads feature_proj of the target's hidden state that predicted the
    token before it (EAGLE's feature + shifted token; the later positions have no target state). Zero-initialised too."""

    def __init__(self, cfg):
        super().__init__()
        self.token_proj = nn.Linear(cfg.hidden_dim, cfg.hidden_dim, bias=False)
        nn.init.zeros_(self.token_proj.weight)
        if cfg.draft_head_features:
            self.feature_proj = nn.Linear(cfg.draft_head_features, cfg.hidden_dim, bias=False)
            nn.init.zeros_(self.feature_proj.weight)
        self.block = DDiTBlock(cfg)

    def forward(self, h, prev_embedding, c, rotary, feature=None):  # h, prev_embedding (B, G, d), feature (B, Dt)
        G = h.shape[1]
        cos, sin = rotary(G, h.device)
        x = h + self.token_proj(prev_embedding)
        if feature is not None:
            x = torch.cat([x[:, :1] + self.feature_proj(feature)[:, None], x[:, 1:]], 1)
        return self.block(x, cos, sin, c, causal(G, h.device))


class DIT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.vocab_embed = EmbeddingLayer(cfg.hidden_dim, cfg.vocab_size)
        if cfg.target_features:
            # Target-feature conditioning: position i also reads the target's final hidden state at i - 1 (the one
            # that predicted token i). Zero-initialised, so a drafter without it is where training starts.
            self.feature_proj = nn.Linear(cfg.target_features, cfg.hidden_dim, bias=False)
            nn.init.zeros_(self.feature_proj.weight)
        self.sigma_map = TimestepEmbedder(cfg.cond_dim)
        self.rotary_emb = Rotary(cfg.hidden_dim // cfg.n_heads)  # the backbone's, unless learned_positions; the head's
        self.learned_positions = cfg.learned_positions
        if cfg.learned_positions:
            self.pos_embed = nn.Embedding(cfg.model_length, cfg.hidden_dim)
            nn.init.normal_(self.pos_embed.weight, std=0.01)
        self.blocks = nn.ModuleList(DDiTBlock(cfg, cfg.attention_bias) for _ in range(cfg.n_blocks))
        self.output_layer = DDiTFinalLayer(cfg)
        if cfg.draft_head:
            self.draft_head = DraftHead(cfg)

    def draft_logits(self, h, prev, c, feature=None):
        """Logits (B, G, V) of a draft through the draft head: h (B, G, d) the backbone's hidden states of the G masks,
        prev (B, G) the token before each drafted position (teacher-forced, or drafted so far), feature (B, Dt) the
        target's hidden state that predicted prev[:, 0] (a head with draft_head_features)."""
        x = self.draft_head(h, self.vocab_embed(prev), c, self.rotary_emb, feature)
        return self.output_layer(x, c)

    def features(self, idx, sigma, prefix=None, target_feats=None):  # idx (B, T), sigma (B,) -> x (B, T, d), c (B, cond)
        """prefix P (block-causal attention): positions < P see only positions up to themselves, so their keys and
        values do not depend on what follows and can be cached across drafts; positions >= P (the masked block) see
        everything. None: bidirectional everywhere (MDLM). target_feats (B, T, Dt): the target's hidden state that
        predicted each position's token (zeros where there is none: the first position and the masks)."""
        x = self.vocab_embed(idx)
        if target_feats is not None:
            x = x + self.feature_proj(target_feats)
        c = F.silu(self.sigma_map(sigma))
        T = idx.shape[1]
        cos, sin = self.rotary_emb(T, idx.device)
        if self.learned_positions:                           # rotary by angle 0
            x = x + self.pos_embed.weight[:T]
            cos, sin = torch.ones_like(cos), torch.zeros_like(sin)
        allowed = None if prefix is None else block_causal(T, prefix, idx.device)
        for block in self.blocks:
            x = block(x, cos, sin, c, allowed)
        return x, c

    def forward(self, idx, sigma, prefix=None, target_feats=None):  # -> logits (B, T, V)
        x, c = self.features(idx, sigma, prefix, target_feats)
        return self.output_layer(x, c)


class MDLM(nn.Module):
    """Masked diffusion LM: SUBS parameterization, log-linear noise, continuous-time NELBO."""
    NEG_INF = -1e6

    def __init__(self, cfg: MDLMConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = DIT(cfg)

    def non_embedding_params(self):
        return count_params(self, exclude=('backbone.vocab_embed.', 'backbone.pos_embed.', 'backbone.output_layer.linear.'))

    def sigma(self, t):                                      # total noise sigma(t) = -log(1 - (1 - eps) t)
        return -torch.log1p(-(1 - self.cfg.noise_eps) * t)

    def subs_log_probs(self, xt, sigma, prefix=None, target_feats=None):
        """log p(x0 | xt): mask logit -inf, log-softmax, unmasked positions carried over."""
        if not self.cfg.time_conditioning:
            sigma = torch.zeros_like(sigma)
        logits = self.backbone(xt, sigma, prefix, target_feats).float()
        if self.cfg.shift_logits:  # position i reads row i - 1; position 0, which nothing predicts, its own row
            logits = torch.cat([logits[:, :1], logits[:, :-1]], 1)
        logits[:, :, self.cfg.mask_index] += self.NEG_INF
        logits = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
        unmasked = xt != self.cfg.mask_index
        logits[unmasked] = self.NEG_INF
        logits[unmasked, xt[unmasked]] = 0
        return logits

    def sample_t(self, n, generator=None, device='cpu'):
        """Antithetic (stratified) t in [eps, 1]."""
        u = torch.rand(n, generator=generator, device=device)
        t = (u / n + torch.arange(n, device=device) / n) % 1
        return (1 - self.cfg.noise_eps) * t + self.cfg.noise_eps

    def loss(self, x0, t=None, keep_prefix=None, generator=None):
        """Per-token NELBO (nats), averaged over all positions like MDLM. keep_prefix (B,) optional: positions
        < keep_prefix[b] stay clean (prompt-conditioned rows: the loss is then the conditional NELBO of the suffix)."""
        B, T = x0.shape
        if t is None:
            t = self.sample_t(B, generator, x0.device)
        move_chance = (1 - self.cfg.noise_eps) * t           # = 1 - exp(-sigma(t))
        masked = torch.rand(B, T, generator=generator, device=x0.device) < move_chance[:, None]
        if keep_prefix is not None:
            masked &= torch.arange(T, device=x0.device)[None] >= keep_prefix[:, None]
        if self.cfg.shift_logits:
            masked[:, 0] = False                             # nothing before it predicts the first token
        xt = torch.where(masked, torch.full_like(x0, self.cfg.mask_index), x0)
        # SUBS gives log p = 0 at unmasked positions, so only masked positions are scored: output layer on those rows,
        # log-softmax without the mask column (its logit is -inf under SUBS; the mask id is the last one).
        sigma = self.sigma(t) if self.cfg.time_conditioning else torch.zeros_like(t)
        x, c = self.backbone.features(xt, sigma)
        b, pos = masked.nonzero(as_tuple=True)
        rows = pos - 1 if self.cfg.shift_logits else pos
        logits = self.backbone.output_layer(x[b, rows], c[b]).float()[:, :self.cfg.mask_index]
        nll = F.cross_entropy(logits, x0[b, pos], reduction='none')
        return (nll / t[b]).sum() / (B * T)                  # weight 1/t = dsigma / expm1(sigma), log-linear noise

    @torch.no_grad()
    def sample(self, n_tokens, steps, prefix=None, generator=None, batch=1):
        """ddpm_cache sampler: t -> s, each masked position stays masked w.p. s/t, else draws from p_x0;
        the cached p_x0 is reused when nothing changed; final step takes the argmax."""
        m = self.cfg.mask_index
        P = 0 if prefix is None else prefix.shape[1]
        x = torch.full((batch, P + n_tokens), m, dtype=torch.long)
        if prefix is not None:
            x[:, :P] = prefix
        ts = torch.linspace(1, 1e-5, steps + 1)
        p_x0 = None
        for i in range(steps):
            t, s = ts[i], ts[i + 1]
            if p_x0 is None:
                p_x0 = self.subs_log_probs(x, self.sigma(t.expand(batch))).exp()
            probs = p_x0 * (1 - s / t)
            probs[:, :, m] = s / t
            draw = torch.multinomial(probs.view(-1, probs.shape[-1]), 1, generator=generator).view(batch, -1)
            new = torch.where(x == m, draw, x)
            if not torch.equal(new, x):
                p_x0 = None
            x = new
        still = x == m
        if still.any():
            final = self.subs_log_probs(x, self.sigma(ts[-1].expand(batch))).argmax(-1)
            x = torch.where(still, final, x)
        return x
