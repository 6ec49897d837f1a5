"""Our PyTorch definition of the CosyVoice3 flow: token frontend + DiT estimator (+ a torch CFM loop for parity).

Written from ``shared/upstream_ref/README.md`` sections "F. Flow" and "F-DiT" (no upstream code). Submodule names
follow upstream's ``flow.pt`` keys so that the checkpoint loads with ``load_state_dict(strict=True)``:
``input_embedding``, ``spk_embed_affine_layer``, ``pre_lookahead_layer.conv{1,2}``, ``decoder.estimator.*``.

Layout conventions: "channels-first" ``[B, C, T]`` at the DiT boundary (upstream's estimator I/O), time-major
``[B, T, C]`` inside the DiT. ``T`` = mel frames, ``N`` = speech tokens, ``R`` = token_mel_ratio.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

MEL_BINS = 80  # hard-coded in upstream's Euler solver (README "Kept official everywhere")
SPK_DIM = 192
TIME_FREQ_DIM = 256  # sinusoidal time embedding width (README F-DiT 1: 128 sin + 128 cos)
CONV_POS_KERNEL, CONV_POS_GROUPS = 31, 16  # CausalConvPositionEmbedding (README F-DiT 2)
LN_EPS = 1e-6
MASK_NEG = -1e9  # additive attention bias for masked keys: exp() underflows to exactly 0, like upstream's -inf


@dataclass(frozen=True)
class FlowConfig:
    """Flow hyperparameters (``cosyvoice3.yaml`` section ``flow``; see packager/components/flow/component.py for parsing)."""

    vocab_size: int  # S: rows of input_embedding
    token_mel_ratio: int  # R: mel frames per speech token
    pre_lookahead_len: int  # Lk: right-context tokens of the PreLookahead conv
    pre_lookahead_channels: int  # C of conv1
    chunk_size: int  # streaming chunk, in tokens
    static_chunk_size: int  # DiT streaming attention chunk, in frames (= chunk_size * R upstream)
    dim: int
    depth: int
    heads: int
    dim_head: int
    ff_mult: int
    n_timesteps: int = 10  # hard-coded at upstream's call site
    cfg_rate: float = 0.7  # inference_cfg_rate
    t_scheduler: str = "cosine"


# ---------------------------------------------------------------- frontend (README F.1-F.4)

class PreLookaheadLayer(nn.Module):
    """README F.3: right-context conv (k = Lk+1) -> LeakyReLU(0.01) -> causal conv (k = 3) -> residual."""

    def __init__(self, channels_in: int, channels: int, lookahead: int):
        super().__init__()
        self.lookahead = lookahead
        self.conv1 = nn.Conv1d(channels_in, channels, lookahead + 1)
        self.conv2 = nn.Conv1d(channels, channels_in, 3)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        # x: [B, N, 80] token embeddings; context: [B, Lk, 80] (finalize=False) or None (finalize=True: zeros)
        h = x.transpose(1, 2)  # [B, 80, N]
        if context is None:
            h = F.pad(h, (0, self.lookahead))
        else:
            h = torch.cat([h, context.transpose(1, 2)], dim=2)
        h = F.leaky_relu(self.conv1(h), 0.01)  # [B, C, N]
        h = self.conv2(F.pad(h, (2, 0)))  # [B, 80, N]
        return h.transpose(1, 2) + x


def l2_normalize(e: torch.Tensor) -> torch.Tensor:
    """``e / max(||e||_2, 1e-12)`` over the last dim (README F.1), written with plain reductions."""
    return e / e.pow(2).sum(dim=-1, keepdim=True).sqrt().clamp_min(1e-12)


def repeat_frames(h: torch.Tensor, ratio: int) -> torch.Tensor:
    """[B, N, C] -> [B, N*R, C]: token i -> frames iR..iR+R-1 (README F.4), as unsqueeze/expand/reshape."""
    b, n, c = h.shape
    return h.unsqueeze(2).expand(b, n, ratio, c).reshape(b, -1, c)


# ---------------------------------------------------------------- DiT estimator (README F-DiT)

class TimestepEmbedding(nn.Module):
    """README F-DiT 1: ``[sin(1000 t f), cos(1000 t f)]``, f_j = exp(-j ln(1e4)/127) -> Linear -> SiLU -> Linear."""

    def __init__(self, dim: int):
        super().__init__()
        half = TIME_FREQ_DIM // 2
        self.register_buffer("freqs", torch.exp(torch.arange(half).float() * -(math.log(10000) / (half - 1))),
                             persistent=False)
        self.time_mlp = nn.Sequential(nn.Linear(TIME_FREQ_DIM, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        a = 1000 * t.unsqueeze(1) * self.freqs.unsqueeze(0)  # [B, 128]; same product order as upstream
        return self.time_mlp(torch.cat([a.sin(), a.cos()], dim=-1))  # [B, dim]


class CausalConvPositionEmbedding(nn.Module):
    """README F-DiT 2: twice [left pad 30, grouped conv k=31, Mish]."""

    def __init__(self, dim: int):
        super().__init__()
        conv = lambda: nn.Sequential(nn.Conv1d(dim, dim, CONV_POS_KERNEL, groups=CONV_POS_GROUPS), nn.Mish())
        self.conv1, self.conv2 = conv(), conv()

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # [B, T, D] -> [B, T, D]
        y = h.transpose(1, 2)
        y = self.conv1(F.pad(y, (CONV_POS_KERNEL - 1, 0)))
        y = self.conv2(F.pad(y, (CONV_POS_KERNEL - 1, 0)))
        return y.transpose(1, 2)


class InputEmbedding(nn.Module):
    """README F-DiT 2: ``h = Linear([x, cond, mu, spks])``; ``h + conv_pos_embed(h)``."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(4 * MEL_BINS, dim)
        self.conv_pos_embed = CausalConvPositionEmbedding(dim)

    def forward(self, x, cond, mu, spks):  # [B, T, 80] x3, spks [B, 80] -> [B, T, D]
        spks_t = spks.unsqueeze(1).expand(-1, x.shape[1], -1)
        h = self.proj(torch.cat([x, cond, mu, spks_t], dim=-1))
        return h + self.conv_pos_embed(h)


class RotaryEmbedding(nn.Module):
    """README F-DiT 3. ``inv_freq`` [dh/2] is a persistent buffer in upstream's flow.pt, so it is loaded, not derived."""

    def __init__(self, dim_head: int):
        super().__init__()
        self.register_buffer("inv_freq", 10000.0 ** (-torch.arange(0, dim_head, 2).float() / dim_head))

    def angles(self, n: int) -> torch.Tensor:
        """[T, dh/2] angles p * inv[i]; one per adjacent channel pair (2i, 2i+1). Outer product, no Einsum."""
        pos = torch.arange(n, dtype=torch.float32)
        return pos.unsqueeze(1) * self.inv_freq.unsqueeze(0)


def apply_rotary_head0(q: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate only the first dh channels of q/k [B, T, H*dh] (upstream quirk: only head 0 is rotated)."""
    dh = 2 * angles.shape[1]
    rot, rest = q[..., :dh], q[..., dh:]
    pairs = rot.reshape(rot.shape[0], rot.shape[1], dh // 2, 2)  # [B, T, dh/2, 2]
    x0, x1 = pairs[..., 0], pairs[..., 1]
    cos, sin = angles.cos(), angles.sin()  # [T, dh/2], broadcast over B
    out = torch.stack([x0 * cos - x1 * sin, x1 * cos + x0 * sin], dim=-1)
    return torch.cat([out.reshape(rot.shape), rest], dim=-1)


class Attention(nn.Module):
    """README F-DiT 4: softmax attention by hand (MatMul/Softmax; no SDPA), scale 1/sqrt(dh), additive mask bias."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, inner), nn.Linear(dim, inner), nn.Linear(dim, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])  # key names to_out.0.*

    def forward(self, n, angles, bias):  # n [B,T,D], angles [T,dh/2], bias [B,1,T|1,T] -> [B,T,D]
        b, t, _ = n.shape
        q = apply_rotary_head0(self.to_q(n), angles)
        k = apply_rotary_head0(self.to_k(n), angles)
        v = self.to_v(n)
        split = lambda y: y.reshape(b, t, self.heads, self.dim_head).transpose(1, 2)  # [B, H, T, dh]
        q, k, v = split(q), split(k), split(v)
        scores = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(self.dim_head)) + bias  # [B,H,T,T]
        o = torch.matmul(scores.softmax(dim=-1), v)  # [B, H, T, dh]
        return self.to_out[0](o.transpose(1, 2).reshape(b, t, self.heads * self.dim_head))


class AdaLayerNormZero(nn.Module):
    def __init__(self, dim: int, chunks: int):
        super().__init__()
        self.linear = nn.Linear(dim, chunks * dim)


class IdentityAffineLayerNorm(nn.Module):
    """Upstream's affine-free LayerNorm, computed as LN(x) * ones[D] + zeros[D] (exactly LN(x) in float32).

    At opset 15 the exporter decomposes LayerNorm into ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div. Sentis's optimizer
    fuses that chain *together with the Mul and Add that follow it* into one LayerNormalization whose scale and bias
    must be rank 1 [D] (docs/sentis_checker.md, "AdaLN"). Without an affine of our own, the AdaLN modulation
    ``LN(h) * (1 + scale) + shift`` (scale, shift [B, 1, D]) is what follows, and Sentis 2.4.1's shape inference
    asserts (rank 3, expecting 1). The explicit identity affine is what gets fused instead; the modulation stays
    a separate Mul/Add. The constants are non-persistent buffers: no state-dict keys, as upstream.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.register_buffer("weight", torch.ones(dim), persistent=False)
        self.register_buffer("bias", torch.zeros(dim), persistent=False)

    def forward(self, x):
        return F.layer_norm(x, (self.dim,), self.weight, self.bias, LN_EPS)


def layer_norm(dim: int) -> IdentityAffineLayerNorm:
    return IdentityAffineLayerNorm(dim)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int):
        super().__init__()
        # key names ff.ff.0.0 / ff.ff.2: Sequential(Sequential(Linear, GELU), Dropout, Linear)
        self.ff = nn.Sequential(nn.Sequential(nn.Linear(dim, mult * dim), nn.GELU(approximate="tanh")),
                                nn.Dropout(0.0), nn.Linear(mult * dim, dim))

    def forward(self, h):
        return self.ff(h)


class DiTBlock(nn.Module):
    """README F-DiT 4: AdaLayerNormZero -> attention -> gated residual; AdaLN -> tanh-GELU FF -> gated residual."""

    def __init__(self, cfg: FlowConfig):
        super().__init__()
        self.attn_norm = AdaLayerNormZero(cfg.dim, 6)
        self.attn = Attention(cfg.dim, cfg.heads, cfg.dim_head)
        self.ln = layer_norm(cfg.dim)
        self.ff = FeedForward(cfg.dim, cfg.ff_mult)

    def forward(self, h, silu_temb, angles, bias, row_mask):  # h [B,T,D]; row_mask [B,T,1]
        m = self.attn_norm.linear(silu_temb).unsqueeze(1)  # [B, 1, 6D]
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = m.chunk(6, dim=-1)
        a = self.attn(self.ln(h) * (1 + scale_a) + shift_a, angles, bias) * row_mask
        h = h + gate_a * a
        return h + gate_f * self.ff(self.ln(h) * (1 + scale_f) + shift_f)


class DiT(nn.Module):
    """``DiT.forward(x, mask, mu, t, spks, cond, streaming)`` of README F-DiT; channels-first I/O.

    ``streaming`` becomes ``chunk_frames``: ``static_chunk_size`` for upstream's streaming=True, ``None`` (or
    any value >= T) for streaming=False.
    """

    def __init__(self, cfg: FlowConfig):
        super().__init__()
        self.time_embed = TimestepEmbedding(cfg.dim)
        self.input_embed = InputEmbedding(cfg.dim)
        self.rotary_embed = RotaryEmbedding(cfg.dim_head)
        self.transformer_blocks = nn.ModuleList([DiTBlock(cfg) for _ in range(cfg.depth)])
        self.norm_out = AdaLayerNormZero(cfg.dim, 2)
        self.ln = layer_norm(cfg.dim)
        self.proj_out = nn.Linear(cfg.dim, MEL_BINS)

    @staticmethod
    def attention_bias(mask: torch.Tensor, chunk_frames: torch.Tensor | None) -> torch.Tensor:
        """README F-DiT 5 as an additive bias: allowed(i, j) = mask[j] and j < (floor(i / c) + 1) * c.

        ``chunk_frames`` c (float32 [1], a run-time graph input): c = static_chunk_size is upstream's streaming mask
        (chunked causal, full left context); any c >= T gives floor(i / c) = 0, j < c for every key, i.e. exactly
        the non-streaming mask, so one graph serves both modes. ``None`` (PyTorch only): the key mask alone,
        [B, 1, 1, T] -- the independent full-attention path the chunked one is tested against.
        i / c is exact enough for floor: i, c are integers < 2^24 and a non-integer i / c is >= 1/c away from
        the next integer, far above float32 rounding.
        """
        keys = mask[:, :, None, :]  # [B, 1, 1, T]
        if chunk_frames is not None:
            pos = torch.arange(mask.shape[-1], dtype=torch.float32)  # [T] (Range)
            chunk_end = (torch.floor(pos / chunk_frames) + 1) * chunk_frames  # [T], per query i
            keys = keys * (pos.unsqueeze(0) < chunk_end.unsqueeze(1)).float()  # [B, 1, T, T]
        return (1.0 - keys) * MASK_NEG

    def forward(self, x, mask, mu, t, spks, cond, chunk_frames: torch.Tensor | float | None = None,
                debug: dict | None = None):
        # x, mu, cond: [B, 80, T]; mask: [B, 1, T]; t: [B]; spks: [B, 80]; chunk_frames: [1] -> [B, 80, T]
        if chunk_frames is not None and not torch.is_tensor(chunk_frames):
            chunk_frames = torch.tensor([float(chunk_frames)])
        temb = self.time_embed(t)  # [B, D]
        silu_temb = F.silu(temb)
        h = self.input_embed(x.transpose(1, 2), cond.transpose(1, 2), mu.transpose(1, 2), spks)  # [B, T, D]
        angles = self.rotary_embed.angles(x.shape[2])
        bias = self.attention_bias(mask, chunk_frames)
        row_mask = mask.transpose(1, 2)  # [B, T, 1]: zero attention rows of masked frames
        if debug is not None:
            debug.update(time_embed=temb, input_embed=h, rope_angles=angles)
        for i, block in enumerate(self.transformer_blocks):
            h = block(h, silu_temb, angles, bias, row_mask)
            if debug is not None:
                debug[f"block{i}_out"] = h
        scale, shift = self.norm_out.linear(silu_temb).unsqueeze(1).chunk(2, dim=-1)  # note: scale first
        n = self.ln(h) * (1 + scale) + shift
        if debug is not None:
            debug["norm_out"] = n
        return self.proj_out(n).transpose(1, 2)


# ---------------------------------------------------------------- the whole flow (state-dict root of flow.pt)

class _Decoder(nn.Module):
    """Holds only ``estimator`` (upstream's CFM has no other parameters; its noise table is host data)."""

    def __init__(self, cfg: FlowConfig):
        super().__init__()
        self.estimator = DiT(cfg)


class FlowModel(nn.Module):
    """``CausalMaskedDiffWithDiT`` (README F), state-dict compatible with upstream ``flow.pt``."""

    def __init__(self, cfg: FlowConfig):
        super().__init__()
        self.cfg = cfg
        self.input_embedding = nn.Embedding(cfg.vocab_size, MEL_BINS)
        self.spk_embed_affine_layer = nn.Linear(SPK_DIM, MEL_BINS)
        self.pre_lookahead_layer = PreLookaheadLayer(MEL_BINS, cfg.pre_lookahead_channels, cfg.pre_lookahead_len)
        self.decoder = _Decoder(cfg)

    def speaker(self, embedding: torch.Tensor) -> torch.Tensor:
        """README F.1: [1, 192] -> spks [1, 80]."""
        return self.spk_embed_affine_layer(l2_normalize(embedding))

    def token_mu(self, tokens: torch.Tensor, finalize: bool = True) -> torch.Tensor:
        """README F.2-F.4: tokens [1, N] (prompt ++ target) -> mu [1, 80, R*N] (or R*(N-Lk) if not finalize)."""
        e = self.input_embedding(tokens.long().clamp(min=0))  # [1, N, 80]
        if finalize:
            h = self.pre_lookahead_layer(e)
        else:
            lk = self.cfg.pre_lookahead_len
            h = self.pre_lookahead_layer(e[:, :-lk], context=e[:, -lk:])
        return repeat_frames(h, self.cfg.token_mel_ratio).transpose(1, 2)

    @torch.no_grad()
    def inference(self, token, prompt_token, prompt_feat, embedding, noise, streaming=False, finalize=True):
        """README F.1-F.7 in torch (an independent check of packager/runtime/euler_cfg.py): -> mel [1, 80, T']."""
        spks = self.speaker(embedding)
        mu = self.token_mu(torch.cat([prompt_token, token], dim=1), finalize)
        t_len, p_len = mu.shape[2], prompt_feat.shape[1]
        cond = torch.zeros_like(mu)
        cond[:, :, :p_len] = prompt_feat.transpose(1, 2)
        x = noise[:, :, :t_len].clone()
        steps = self.cfg.n_timesteps
        t_span = 1 - torch.cos(torch.linspace(0, 1, steps + 1) * 0.5 * torch.pi)
        t, dt = t_span[0], t_span[1] - t_span[0]
        zeros_2d = torch.zeros_like(spks)
        chunk = self.cfg.static_chunk_size if streaming else None
        for step in range(1, steps + 1):
            out = self.decoder.estimator(
                torch.cat([x, x]), torch.ones(2, 1, t_len), torch.cat([mu, torch.zeros_like(mu)]),
                t.reshape(1).expand(2), torch.cat([spks, zeros_2d]), torch.cat([cond, torch.zeros_like(cond)]),
                chunk_frames=chunk)
            v = (1.0 + self.cfg.cfg_rate) * out[:1] - self.cfg.cfg_rate * out[1:]
            x = x + dt * v
            t = t + dt
            if step < steps:
                dt = t_span[step + 1] - t
        return x[:, :, p_len:]
