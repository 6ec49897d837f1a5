"""Our PyTorch definition of upstream's ``CausalHiFTGenerator`` (inference only, float32, weight norm folded).

Implements ``upstream_ref/README.md`` section H ("HiFT") from its math; submodule names follow upstream's state-dict
keys so that ``hift.pt`` loads key-for-key (see ``load_upstream_state_dict``). Notation: T mel frames, L = 480 T
samples, F = L/4 + 1 STFT frames. The randomness (SineGen2's uniform noise table) is an explicit input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from packager.build.checkpoint import check_state_dict
from packager.components.dsp import ISTFT, STFT, exact_cumsum, reduce_angle
from packager.build.config import Tagged, require
from packager.contract.errors import CheckpointError

F0_LOOKAHEAD = 3  # the f0 predictor's first conv has kernel 4: 3 frames of right context (README H1)
SINE_AMP = 0.1  # SineGen2 amplitude (README H3)


@dataclass(frozen=True)
class HiFTConfig:
    """The ``hift:`` section of ``cosyvoice3.yaml`` (upstream argument names)."""

    in_channels: int = 80
    base_channels: int = 512
    nb_harmonics: int = 8
    sampling_rate: int = 24000
    nsf_alpha: float = 0.1
    nsf_sigma: float = 0.003
    nsf_voiced_threshold: float = 10.0
    upsample_rates: tuple[int, ...] = (8, 5, 3)
    upsample_kernel_sizes: tuple[int, ...] = (16, 11, 7)
    n_fft: int = 16
    hop_len: int = 4
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5),) * 3
    source_resblock_kernel_sizes: tuple[int, ...] = (7, 7, 11)
    source_resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5),) * 3
    lrelu_slope: float = 0.1
    audio_limit: float = 0.99
    conv_pre_look_right: int = 4
    f0_in_channels: int = 80
    f0_cond_channels: int = 512

    @property
    def samples_per_frame(self) -> int:  # 8*5*3*4 = 480
        return math.prod(self.upsample_rates) * self.hop_len

    @property
    def stream_trim_frames(self) -> int:
        """Mel frames at the end whose samples are not final when more mel will follow (finalize=False)."""
        return F0_LOOKAHEAD + self.conv_pre_look_right + 1

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], file: str) -> "HiFTConfig":
        """Read every field from the yaml (``n_fft``/``hop_len`` under ``istft_params``, ``f0_*`` under
        ``f0_predictor``); a missing key or a wrong type raises a CheckpointError naming it."""
        node = cfg.get("hift")
        if not isinstance(node, Tagged):
            raise CheckpointError("missing or not an object node", file=file, key="hift",
                                  expected="!new:cosyvoice.hifigan.generator.CausalHiFTGenerator")
        f0 = require(node, "f0_predictor", file, Tagged)
        istft = require(node, "istft_params", file, dict)
        values: dict[str, Any] = {}
        for f in fields(cls):
            where, key = (istft, f.name) if f.name in ("n_fft", "hop_len") else \
                (f0, f.name[3:]) if f.name.startswith("f0_") else (node, f.name)
            if isinstance(f.default, tuple):  # lists of ints, or lists of lists of ints (dilations)
                raw = require(where, key, file, list)
                values[f.name] = tuple(tuple(int(v) for v in x) if isinstance(x, list) else int(x) for x in raw)
            elif isinstance(f.default, float):
                values[f.name] = float(require(where, key, file))
            else:
                values[f.name] = require(where, key, file, int)
        c = cls(**values)
        if require(f0, "num_class", file, int) != 1 or len(c.upsample_rates) != len(c.upsample_kernel_sizes):
            raise CheckpointError("unsupported HiFT layout", file=file, key="hift",
                                  expected="f0_predictor.num_class 1 and one kernel size per upsample rate")
        return c


def causal_conv(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """Conv with ``p = conv.padding`` zeros on the left only (the output keeps the input length).

    Exported as Conv(pads=[p, p]) + Slice: torch's symmetric padding computes p extra frames at the end, which are
    dropped. A separate Pad op would trace into a chain of shape ops that the exporter does not fold.
    """
    p = conv.padding[0]
    y = conv(x)
    return y[:, :, :-p] if p else y


def lookahead_conv(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """Conv with ``p = conv.padding`` zeros on the right only (a p-frame look-ahead; the first p outputs dropped)."""
    p = conv.padding[0]
    return conv(x)[:, :, p:]


def repeat_frames(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest upsampling along time as Unsqueeze/Expand/Reshape: [B, C, T] -> [B, C, T*factor]."""
    b, c = x.shape[0], x.shape[1]
    return x.unsqueeze(-1).expand(b, c, x.shape[2], factor).reshape(b, c, -1)


class Snake(nn.Module):
    """``x + sin(alpha x)^2 / (alpha + 1e-9)`` per channel (README H7)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))
        # [1, C, 1] copies of alpha and 1/(alpha + 1e-9), refreshed by sync(): the graph gets them as constants.
        self.register_buffer("a", torch.ones(1, channels, 1), persistent=False)
        self.register_buffer("inv_a", torch.ones(1, channels, 1), persistent=False)

    def sync(self) -> None:
        with torch.no_grad():
            self.a.copy_(self.alpha[None, :, None])
            self.inv_a.copy_(1.0 / (self.a + 1e-9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sin(x * self.a)
        return x + self.inv_a * (s * s)


class ResBlock(nn.Module):
    """Causal Snake ResBlock(k, dilations): ``x += conv_k(snake(conv_{k,d}(snake(x))))`` per dilation (README H7)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]):
        super().__init__()
        self.kernel, self.dilations = kernel, dilations
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d, padding=(kernel - 1) * d)
                                    for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, padding=kernel - 1) for _ in dilations)
        self.activations1 = nn.ModuleList(Snake(channels) for _ in dilations)
        self.activations2 = nn.ModuleList(Snake(channels) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.activations1, self.activations2):
            x = x + causal_conv(c2, a2(causal_conv(c1, a1(x))))
        return x


class F0Predictor(nn.Module):
    """Causal conv f0 predictor (README H1): ``[1, 80, T]`` -> f0 ``[1, T]`` in Hz. ``condnet`` odd slots are ELUs."""

    def __init__(self, in_channels: int, cond_channels: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(in_channels, cond_channels, F0_LOOKAHEAD + 1, padding=F0_LOOKAHEAD),
                                   nn.ELU()]
        for _ in range(4):
            layers += [nn.Conv1d(cond_channels, cond_channels, 3, padding=2), nn.ELU()]
        self.condnet = nn.Sequential(*layers)
        self.classifier = nn.Linear(cond_channels, 1)

    def hidden(self, mel: torch.Tensor) -> torch.Tensor:
        """``[1, 80, T]`` -> classifier input ``[1, T, C]``."""
        x = mel
        for i, layer in enumerate(self.condnet):
            if isinstance(layer, nn.Conv1d):  # the first conv looks 3 frames ahead (zeros past the end)
                x = lookahead_conv(layer, x) if i == 0 else causal_conv(layer, x)
            else:
                x = layer(x)
        return x.transpose(1, 2)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.abs(self.classifier(self.hidden(mel)))[..., 0]  # [1, T]


class SourceModule(nn.Module):
    """SineGen2 (causal, eval) + merge ``tanh(Linear(9, 1))`` (README H3-H4); randomness = the noise input.

    The phase is constant within each frame (accumulated per frame, then held), so sin() is evaluated at frame rate
    and repeated; upstream's linear downsampling of a frame-constant signal returns the frame value itself.
    """

    def __init__(self, cfg: HiFTConfig):
        super().__init__()
        self.cfg = cfg
        self.l_linear = nn.Linear(cfg.nb_harmonics + 1, 1)
        self.register_buffer("harmonics", torch.arange(1, cfg.nb_harmonics + 2, dtype=torch.float32), persistent=False)

    def sine_waves(self, f0: torch.Tensor, noise: torch.Tensor, reduce: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """f0 ``[1, T]``, uniform noise ``[1, L, 9]`` -> (sine_waves ``[1, L, 9]``, uv ``[1, L, 1]``).
        ``reduce=False`` takes sin() of the raw phase, as upstream does (tests check the phase bit for bit)."""
        c, spf = self.cfg, self.cfg.samples_per_frame
        fn = f0[:, :, None] * self.harmonics  # [1, T, 9]
        rad = fn / float(c.sampling_rate)
        rad = rad - torch.floor(rad)  # (fn / sr) mod 1 for fn >= 0
        cum = exact_cumsum(rad, dim=1)  # what a float32 cumsum accumulated in double gives (upstream on CPU)
        phase = cum * 2 * math.pi * spf  # same float32 op order as upstream: ((cum * 2) * pi) * 480
        # upstream takes sin() of this float32 value; reduce_angle keeps that value's sine (to ~2e-7) while
        # handing sin() an argument in [-pi, pi] that any runtime's sin handles (|phase| ~ 1e6 after 10 s)
        sines = SINE_AMP * torch.sin(reduce_angle(phase) if reduce else phase)  # [1, T, 9]
        uv = (f0 > c.nsf_voiced_threshold).to(torch.float32)[:, :, None]  # [1, T, 1]
        amp = uv * c.nsf_sigma + (1 - uv) * SINE_AMP / 3  # voiced 0.003, unvoiced 0.1/3 (python float constant)
        up = lambda t: repeat_frames(t.transpose(1, 2), spf).transpose(1, 2)  # noqa: E731  [1, T, C] -> [1, L, C]
        uv_l = up(uv)
        return up(sines) * uv_l + up(amp) * noise, uv_l

    def forward(self, f0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        sine_waves, _ = self.sine_waves(f0, noise)
        return torch.tanh(self.l_linear(sine_waves)).transpose(1, 2)  # [1, 1, L]


class HiFTGenerator(nn.Module):
    """mel ``[1, 80, T]`` + uniform noise ``[1, 480 T, 9]`` -> waveform ``[1, 480 T]`` (finalize=True)."""

    def __init__(self, cfg: HiFTConfig):
        super().__init__()
        self.cfg = c = cfg
        n_stages = len(c.upsample_rates)
        ch = [c.base_channels // 2 ** i for i in range(n_stages + 1)]
        spec_ch = c.n_fft + 2
        self.f0_predictor = F0Predictor(c.f0_in_channels, c.f0_cond_channels)
        self.m_source = SourceModule(c)
        self.conv_pre = nn.Conv1d(c.in_channels, ch[0], c.conv_pre_look_right + 1, padding=c.conv_pre_look_right)
        self.ups = nn.ModuleList(nn.Conv1d(ch[i], ch[i + 1], k, padding=k - 1)
                                 for i, k in enumerate(c.upsample_kernel_sizes))
        # Source branch i brings the STFT frame rate (L/hop) down to stage i's rate: stride r = product of later
        # rates, kernel 2r, r-1 zeros prepended. Symmetric padding r-1 gives the same frames: the input has
        # 120T+1 frames and r divides 120T, so the one extra padded frame at the end never completes a window.
        self.down_strides = [math.prod(c.upsample_rates[i + 1:]) for i in range(n_stages)]
        self.source_downs = nn.ModuleList(
            nn.Conv1d(spec_ch, ch[i + 1], 2 * r, stride=r, padding=r - 1) if r > 1 else nn.Conv1d(spec_ch, ch[i + 1], 1)
            for i, r in enumerate(self.down_strides))
        self.source_resblocks = nn.ModuleList(
            ResBlock(ch[i + 1], k, d) for i, (k, d) in
            enumerate(zip(c.source_resblock_kernel_sizes, c.source_resblock_dilation_sizes)))
        self.resblocks = nn.ModuleList(
            ResBlock(ch[i + 1], k, d) for i in range(n_stages)
            for k, d in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes))
        self.conv_post = nn.Conv1d(ch[-1], spec_ch, 7, padding=6)
        self.stft = STFT(c.n_fft, c.hop_len)
        self.istft = ISTFT(c.n_fft, c.hop_len)

    def decode(self, mel: torch.Tensor, source: torch.Tensor) -> dict[str, torch.Tensor]:
        """README H5-H8: mel ``[1, 80, T]``, source ``[1, 1, L]`` -> magnitude, phase ``[1, 9, F]``, waveform."""
        c, nk = self.cfg, len(self.cfg.resblock_kernel_sizes)
        s_stft = self.stft(source)  # [1, 18, F]
        x = lookahead_conv(self.conv_pre, mel)  # [1, C0, T]
        for i, up in enumerate(self.ups):
            x = F.leaky_relu(x, c.lrelu_slope)
            x = causal_conv(up, repeat_frames(x, c.upsample_rates[i]))  # [1, Ci, T * prod(rates[:i+1])]
            if i == len(self.ups) - 1:
                x = F.pad(x, (1, 0), mode="reflect")  # [1, C, 120 T + 1] = STFT frame count
            x = x + self.source_resblocks[i](self.source_downs[i](s_stft))
            xs = self.resblocks[i * nk](x)
            for j in range(1, nk):
                xs = xs + self.resblocks[i * nk + j](x)
            x = xs / nk
        x = causal_conv(self.conv_post, F.leaky_relu(x))  # [1, 18, F]; torch's default slope 0.01
        bins = c.n_fft // 2 + 1
        magnitude = torch.exp(x[:, :bins])
        phase = torch.sin(x[:, bins:])
        mag = torch.clamp(magnitude, max=100.0)
        spec = torch.cat([mag * torch.cos(phase), mag * torch.sin(phase)], dim=1)  # [1, 18, F]
        audio = self.istft(spec)  # [1, L]
        return {"magnitude": magnitude, "phase": phase, "istft_out": audio,
                "waveform": torch.clamp(audio, -c.audio_limit, c.audio_limit)}

    def forward(self, mel: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        f0 = self.f0_predictor(mel)
        return self.decode(mel, self.m_source(f0, noise))["waveform"]


# ----------------------------------------------------------------------------------------------------------------
# Upstream state dicts: weight-normed convs store g (original0, [out,1,1]) and v (original1); we fold w = g v/||v||.

def _weight_normed(name: str) -> bool:
    return name.endswith(".weight") and not name.startswith(("source_downs.", "m_source.", "f0_predictor.classifier"))


def expected_upstream_shapes(model: HiFTGenerator) -> dict[str, list[int]]:
    """Every key of upstream's ``hift.pt`` with its shape (parametrization names), derived from our module tree."""
    shapes: dict[str, list[int]] = {}
    for name, p in model.state_dict().items():
        if _weight_normed(name):
            stem = name[: -len(".weight")] + ".parametrizations.weight"
            shapes[stem + ".original0"] = [p.shape[0], 1, 1]
            shapes[stem + ".original1"] = list(p.shape)
        else:
            shapes[name] = list(p.shape)
    return shapes


def to_upstream_format(folded: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our (folded) names -> upstream's keys, storing each weight-normed weight as g = ||w||, v = w."""
    out = {}
    for name, t in folded.items():
        if _weight_normed(name):
            stem = name[: -len(".weight")] + ".parametrizations.weight"
            out[stem + ".original0"] = torch.linalg.vector_norm(t, dim=(1, 2), keepdim=True)
            out[stem + ".original1"] = t.clone()
        else:
            out[name] = t.clone()
    return out


def normalize_keys(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept what upstream's loader accepts: an optional ``generator.`` prefix and old ``weight_g``/``weight_v``."""
    out = {}
    for k, v in sd.items():
        k = k[len("generator."):] if k.startswith("generator.") else k
        if k.endswith(".weight_g"):
            k = k[: -len(".weight_g")] + ".parametrizations.weight.original0"
        elif k.endswith(".weight_v"):
            k = k[: -len(".weight_v")] + ".parametrizations.weight.original1"
        out[k] = v
    return out


def fold_weight_norm(sd: Mapping[str, torch.Tensor], name: str, dtype: torch.dtype) -> torch.Tensor:
    """Effective weight of parameter ``name`` (our name) from a normalized upstream state dict."""
    if not _weight_normed(name):
        return sd[name].to(dtype)
    stem = name[: -len(".weight")] + ".parametrizations.weight"
    return torch._weight_norm(sd[stem + ".original1"].to(dtype), sd[stem + ".original0"].to(dtype), 0)


def load_upstream_state_dict(model: HiFTGenerator, sd: Mapping[str, torch.Tensor], file: str) -> None:
    """Strict key/shape check, then fold weight norm with torch's own ``_weight_norm``.

    The rest of the network is folded in float32, as upstream's parametrization does at every call (bit-equal);
    the f0 predictor is folded in float64 and rounded, because upstream runs that sub-module in float64.
    """
    sd = normalize_keys(sd)
    check_state_dict(sd, expected_upstream_shapes(model), file)
    folded = {}
    for name in model.state_dict():
        dtype = torch.float64 if name.startswith("f0_predictor.") else torch.float32
        folded[name] = fold_weight_norm(sd, name, dtype).float()
    model.load_state_dict(folded, strict=True)
    for m in model.modules():
        if isinstance(m, Snake):
            m.sync()


def f0_predictor_float64(cfg: HiFTConfig, sd: Mapping[str, torch.Tensor]) -> F0Predictor:
    """Upstream's float64 f0 predictor (for measuring what our float32 graph loses; never exported)."""
    sd = normalize_keys(sd)
    f0 = F0Predictor(cfg.f0_in_channels, cfg.f0_cond_channels).double()
    prefix = "f0_predictor."
    f0.load_state_dict({n: fold_weight_norm(sd, prefix + n, torch.float64) for n in f0.state_dict()}, strict=True)
    return f0
