"""CosyVoice3LM in plain PyTorch: a Qwen2 backbone, a speech-token embedding and a speech-token decoder.

Implements ``../shared/upstream_ref/README.md`` section "L. LLM (CosyVoice3LM)", items 1-2. Written from that
description (no upstream / transformers code). Parameter names mirror upstream's ``llm.pt`` keys so that a
checkpoint loads with a strict key/shape check and ``state_dict()`` round-trips to upstream's format.

Shapes: batch is always 1. ``D`` hidden size, ``H`` query heads, ``Hk`` KV heads, ``g = H / Hk`` query heads per KV
head, ``hd = D / H`` head size, ``T`` new positions, ``P`` cached positions, ``Ly`` layers, ``S`` speech_token_size.
KV cache tensors are ``[Ly, 1, Hk, len, hd]`` (HF DynamicCache layout stacked over layers; keys after RoPE).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from packager.build.checkpoint import check_state_dict
from packager.contract.errors import CheckpointError

# Finite "minus infinity" for masked scores: exp(MASK_VALUE - max) underflows to exactly 0 for any realistic score,
# no inf arithmetic reaches Sentis, and it fits float16 (max 65504), so fp16 policies need no float32 island.
MASK_VALUE = -3.0e4


@dataclass(frozen=True)
class LLMConfig:
    """Hyperparameters (cosyvoice3.yaml ``llm`` section + CosyVoice-BlankEN/config.json)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    text_vocab: int
    speech_token_size: int
    rms_eps: float = 1e-6
    rope_theta: float = 1e6
    max_positions: int = 32768

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads

    @property
    def speech_vocab(self) -> int:  # S speech tokens + 200 special ids (SOS, EOS, TASK_ID, FILL, unused)
        return self.speech_token_size + 200

    def to_json(self) -> dict:
        return asdict(self)


# The "tiny" preset: tiny_a's values (upstream_ref/tiny_a/README.md, "Hyperparameters"), except the text vocabulary:
# 1024 ids hold the preset's own tokenizer with all 280 CosyVoice3 specials (packager/components/llm/tiny_tokenizer.py;
# tiny_a's checkpoint has 300 and no tokenizer files).
TINY = LLMConfig(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, text_vocab=1024, speech_token_size=64)
TINY_INIT_STD = 0.1  # tiny_a's initializer_range: big enough that attention/MLP matter against the residual stream


def expected_shapes(cfg: LLMConfig) -> dict[str, tuple[int, ...]]:
    """Every key of upstream's ``llm.pt`` with its shape (upstream_ref/README.md, "Key-name details")."""
    D, hd, I = cfg.hidden, cfg.head_dim, cfg.intermediate
    kv = cfg.kv_heads * hd
    p = "llm.model.model."
    shapes: dict[str, tuple[int, ...]] = {p + "embed_tokens.weight": (cfg.text_vocab, D)}
    for i in range(cfg.layers):
        q = f"{p}layers.{i}."
        shapes.update({
            q + "self_attn.q_proj.weight": (D, D), q + "self_attn.q_proj.bias": (D,),
            q + "self_attn.k_proj.weight": (kv, D), q + "self_attn.k_proj.bias": (kv,),
            q + "self_attn.v_proj.weight": (kv, D), q + "self_attn.v_proj.bias": (kv,),
            q + "self_attn.o_proj.weight": (D, D),
            q + "mlp.gate_proj.weight": (I, D), q + "mlp.up_proj.weight": (I, D), q + "mlp.down_proj.weight": (D, I),
            q + "input_layernorm.weight": (D,), q + "post_attention_layernorm.weight": (D,),
        })
    shapes[p + "norm.weight"] = (D,)
    shapes["llm.model.lm_head.weight"] = (cfg.text_vocab, D)  # tied to embed_tokens; present but never used
    shapes["llm_decoder.weight"] = (cfg.speech_vocab, D)
    shapes["speech_embedding.weight"] = (cfg.speech_vocab, D)
    return shapes


# ----------------------------------------------------------------------------------------------------------------
# Building blocks (README §L.2)
# ----------------------------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    """``w * x / sqrt(mean(x^2) + eps)`` over the last dim."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_inv_freq(cfg: LLMConfig) -> torch.Tensor:
    """theta^(-2i/hd), i < hd/2, computed in float32 as the reference implementation does."""
    exponent = torch.arange(0, cfg.head_dim, 2, dtype=torch.int64, device="cpu").to(torch.float32) / cfg.head_dim
    return 1.0 / (cfg.rope_theta ** exponent)


def rope_cos_sin(positions: torch.Tensor, inv_freq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate-half RoPE tables for float positions [T] -> cos, sin [T, hd] (dims i and i+hd/2 share an angle)."""
    ang = positions[:, None] * inv_freq[None, :]  # [T, hd/2]
    ang = torch.cat([ang, ang], dim=-1)  # [T, hd]
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [..., T, hd] -> x cos + rotate_half(x) sin, rotate_half(a, b) = (-b, a) on the two halves."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    """Grouped-KV causal self-attention written with MatMul/Softmax (no SDPA, no repeat of KV heads)."""

    def __init__(self, cfg: LLMConfig):
        super().__init__()
        D, hd = cfg.hidden, cfg.head_dim
        self.cfg = cfg
        self.q_proj = nn.Linear(D, D, bias=True)
        self.k_proj = nn.Linear(D, cfg.kv_heads * hd, bias=True)
        self.v_proj = nn.Linear(D, cfg.kv_heads * hd, bias=True)
        self.o_proj = nn.Linear(D, D, bias=False)

    def project(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """x [T, D] -> q [Hk, g, T, hd], k [Hk, T, hd], v [Hk, T, hd]; q and k rotated."""
        c = self.cfg
        q = self.q_proj(x).reshape(-1, c.kv_heads, c.group, c.head_dim).permute(1, 2, 0, 3)
        k = self.k_proj(x).reshape(-1, c.kv_heads, c.head_dim).transpose(0, 1)
        v = self.v_proj(x).reshape(-1, c.kv_heads, c.head_dim).transpose(0, 1)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def attend(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """q [Hk, g, T, hd], keys/values [Hk, L, hd], allowed bool [T, L] -> o_proj output [T, D].

        Query head ``j*g + r`` uses KV head ``j``: broadcasting keys as [Hk, 1, hd, L] gives exactly that grouping.
        """
        c = self.cfg
        scores = torch.matmul(q, keys.unsqueeze(1).transpose(-1, -2)) * (1.0 / math.sqrt(c.head_dim))  # [Hk,g,T,L]
        scores = torch.where(allowed, scores, torch.full_like(scores, MASK_VALUE))
        out = torch.matmul(torch.softmax(scores, dim=-1), values.unsqueeze(1))  # [Hk, g, T, hd]
        return self.o_proj(out.permute(2, 0, 1, 3).reshape(-1, c.hidden))


class MLP(nn.Module):
    """SiLU-gated MLP: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: LLMConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden, cfg.intermediate, bias=False)
        self.up_proj = nn.Linear(cfg.hidden, cfg.intermediate, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate, cfg.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LLMConfig):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden, cfg.rms_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden, cfg.rms_eps)


class Qwen2Backbone(nn.Module):
    """``llm.model.model``: token embedding (text ids only), decoder layers, final RMSNorm."""

    def __init__(self, cfg: LLMConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.text_vocab, cfg.hidden)
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.layers)])
        self.norm = RMSNorm(cfg.hidden, cfg.rms_eps)


class _Holder(nn.Module):
    """Empty container so that parameter names nest as upstream's (``llm.model.model.*``)."""


class CosyVoice3LM(nn.Module):
    """The whole LLM. ``step`` is one transformer call over T new positions with a growing KV cache."""

    def __init__(self, cfg: LLMConfig):
        super().__init__()
        self.cfg = cfg
        self.llm = _Holder()
        self.llm.model = _Holder()
        self.llm.model.model = Qwen2Backbone(cfg)
        self.speech_embedding = nn.Embedding(cfg.speech_vocab, cfg.hidden)
        self.llm_decoder = nn.Linear(cfg.hidden, cfg.speech_vocab, bias=False)
        self.register_buffer("inv_freq", rope_inv_freq(cfg), persistent=False)  # not in llm.pt, as upstream

    @property
    def backbone(self) -> Qwen2Backbone:
        return self.llm.model.model

    # -- embeddings (README §L.1) ----------------------------------------------------------------------------------
    def embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        """int ids [1, n] -> [1, n, D] from Qwen2 ``embed_tokens``."""
        return self.backbone.embed_tokens.weight[ids.long()]

    def embed_speech(self, ids: torch.Tensor) -> torch.Tensor:
        """int ids [1, n] (speech tokens and special ids) -> [1, n, D]."""
        return self.speech_embedding.weight[ids.long()]

    # -- transformer ------------------------------------------------------------------------------------------------
    def layers_forward(self, x: torch.Tensor, positions: torch.Tensor, cache_fn) -> tuple[torch.Tensor, list, list]:
        """x [T, D], float positions [T]; ``cache_fn(i, k, v) -> (keys, values, allowed)`` merges the new k/v
        [Hk, T, hd] of layer i with its cache. Returns the final-norm hidden [T, D] and the per-layer merged k/v."""
        cos, sin = rope_cos_sin(positions, self.inv_freq)
        keys_out, values_out = [], []
        for i, layer in enumerate(self.backbone.layers):
            q, k, v = layer.self_attn.project(layer.input_layernorm(x), cos, sin)
            keys, values, allowed = cache_fn(i, k, v)
            x = x + layer.self_attn.attend(q, keys, values, allowed)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
            keys_out.append(keys)
            values_out.append(values)
        return self.backbone.norm(x), keys_out, values_out

    def step(self, embeds: torch.Tensor, past_key: torch.Tensor, past_value: torch.Tensor):
        """Prefill (T > 1, P = 0) or decode (T = 1) with a growing cache.

        embeds [1, T, D], past_key/past_value [Ly, 1, Hk, P, hd] ->
        hidden [1, T, D] (after the final norm), logits [1, S+200] (last position, raw), present_* [Ly, 1, Hk, P+T, hd].
        Positions are absolute: P .. P+T-1 (README §L.2).
        """
        T, P = embeds.shape[1], past_key.shape[3]
        new_pos = torch.arange(T, dtype=torch.int64) + P  # [T]
        key_pos = torch.arange(P + T, dtype=torch.int64)  # [P+T]
        allowed = key_pos[None, :] <= new_pos[:, None]  # causal over cache + new tokens [T, P+T]

        def merge(i, k, v):
            return torch.cat([past_key[i, 0], k], dim=1), torch.cat([past_value[i, 0], v], dim=1), allowed

        h, ks, vs = self.layers_forward(embeds[0], new_pos.to(torch.float32), merge)
        logits = self.llm_decoder(h[-1:])  # [1, S+200]
        return h.unsqueeze(0), logits, torch.stack(ks).unsqueeze(1), torch.stack(vs).unsqueeze(1)

    def step_static(self, embeds: torch.Tensor, position: torch.Tensor, key_cache: torch.Tensor,
                    value_cache: torch.Tensor):
        """The same step with a fixed-size cache: key/value_cache [Ly, 1, Hk, Lmax, hd], ``position`` int [1] =
        number of valid cached positions P. Rows P..P+T-1 are written with a one-hot MatMul blend (exact: each
        output element is one product by 1.0 plus zeros), so no ScatterND is needed; attention masks rows >= P+T."""
        T, Lmax = embeds.shape[1], key_cache.shape[3]
        P = position.reshape(1).to(torch.int64)
        new_pos = torch.arange(T, dtype=torch.int64) + P  # [T]
        key_pos = torch.arange(Lmax, dtype=torch.int64)  # [Lmax]
        allowed = key_pos[None, :] <= new_pos[:, None]  # [T, Lmax]
        write = (key_pos[:, None] == new_pos[None, :]).to(embeds.dtype)  # [Lmax, T] one-hot
        keep = 1.0 - write.sum(dim=1, keepdim=True)  # [Lmax, 1]

        def merge(i, k, v):
            keys = key_cache[i, 0] * keep + torch.matmul(write, k)  # [Hk, Lmax, hd]
            values = value_cache[i, 0] * keep + torch.matmul(write, v)
            return keys, values, allowed

        h, ks, vs = self.layers_forward(embeds[0], new_pos.to(torch.float32), merge)
        logits = self.llm_decoder(h[-1:])
        return h.unsqueeze(0), logits, torch.stack(ks).unsqueeze(1), torch.stack(vs).unsqueeze(1)

    def empty_cache(self) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.cfg
        z = torch.zeros(c.layers, 1, c.kv_heads, 0, c.head_dim)
        return z, z.clone()


# ----------------------------------------------------------------------------------------------------------------
# Weights: strict loading and the seeded preset
# ----------------------------------------------------------------------------------------------------------------

def load_llm(cfg: LLMConfig, sd: dict[str, torch.Tensor], file: str = "llm.pt") -> CosyVoice3LM:
    """Build the model from an upstream-format state dict after a strict key/shape check."""
    check_state_dict(sd, expected_shapes(cfg), file)
    bad = [k for k, v in sd.items() if v.dtype != torch.float32]
    if bad:
        raise CheckpointError("expected float32 tensors", file=file, key=bad[0], found=str(sd[bad[0]].dtype))
    # Build on the meta device and adopt the loaded tensors (assign=True): no random init, no second copy of the
    # weights (at full size that saves ~2 GB and ~10 s).
    with torch.device("meta"):
        model = CosyVoice3LM(cfg)
    # lm_head is tied to embed_tokens upstream and never used for speech logits: not a parameter here.
    weights = {k: v for k, v in sd.items() if k != "llm.model.lm_head.weight"}
    model.load_state_dict(weights, strict=True, assign=True)
    model.register_buffer("inv_freq", rope_inv_freq(cfg), persistent=False)  # rebuilt off the meta device
    return model.eval()


def random_state_dict(cfg: LLMConfig, seed: int, std: float = TINY_INIT_STD) -> dict[str, torch.Tensor]:
    """Seeded random weights in upstream's key format (deterministic for a seed).

    Matrices and embeddings ~ N(0, std) like the reference init; biases and norm weights get small random values
    (instead of 0 / 1) so that those code paths are exercised. Then the README's "Weight adjustments" item 1:
    ``llm_decoder`` x4 and its rows S+2..S+199 x0.1 more, otherwise a special (stop) id wins step 0.
    """
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for key, shape in expected_shapes(cfg).items():
        if key == "llm.model.lm_head.weight":
            continue
        if key.endswith("norm.weight"):  # input/post_attention layernorms and the final norm
            sd[key] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:  # matrices, embeddings, q/k/v biases
            sd[key] = std * torch.randn(shape, generator=gen)
    S = cfg.speech_token_size
    dec = sd["llm_decoder.weight"] * 4.0
    dec[S + 2:] *= 0.1
    sd["llm_decoder.weight"] = dec
    sd["llm.model.lm_head.weight"] = sd["llm.model.model.embed_tokens.weight"]  # tied, as upstream saves it
    return sd
