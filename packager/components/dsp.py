"""Sentis-safe DSP blocks: STFT / iSTFT as elementwise products with fixed DFT bases, and an exact cumsum.

ONNX has no iSTFT, and its STFT op needs opset 17 (Sentis >= 2.4 only), so both transforms are written with ops every
Sentis version has. They follow ``torch.stft`` / ``torch.istft`` with ``center=True``, reflect padding,
``onesided=True`` and a window of length ``n_fft`` -- the convention of ``upstream_ref/README.md`` section H (steps 5
and 8). Nothing here is HiFT-specific.

The windowed DFT bases are exact numbers, not learned weights (docs/precision.md "DSP constants"): they only ever meet
the signal in an elementwise ``Mul`` followed by a ``ReduceSum``, never in a Conv / ConvTranspose / MatMul / Gather,
the layers whose constant inputs Unity's ``ModelQuantizer`` rounds to uint8 or half (it has no exclusion list), so a
uint8 policy leaves them exact. A graph declares them with ``NodeScope``s of ``DSP_MODULE_NAMES``
(``GraphDef.dsp_constants``). Frames are cut and overlap-added in blocks of ``hop`` samples (Reshape, Slice, Pad,
Add), which needs ``n_fft % hop == 0``.

Spectra are carried as real tensors ``[B, 2*bins, frames]``: the ``bins = n_fft//2 + 1`` real parts, then the
imaginary parts (the layout HiFT's ``conv_post`` produces and its source branch consumes).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Module names of the two transforms: a graph that holds an ``STFT`` / ``ISTFT`` attribute under these names declares
# their constants as DSP constants with ``NodeScope(f"/{name}/")`` (the exported node-name prefix of the module).
DSP_MODULE_NAMES = ("stft", "istft")


def periodic_hann(n: int) -> torch.Tensor:
    """Periodic ("fftbins=True") Hann window, ``0.5 - 0.5 cos(2 pi i / n)``, computed in float64."""
    i = torch.arange(n, dtype=torch.float64)
    return 0.5 - 0.5 * torch.cos(2 * math.pi * i / n)


def _dft_angles(n_fft: int) -> torch.Tensor:
    """``2 pi k i / n_fft`` for bins k (rows) and samples i (columns), float64 [bins, n_fft]."""
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    i = torch.arange(n_fft, dtype=torch.float64)[None, :]
    # (k * i) mod n_fft keeps the angle small, so cos/sin of it are exact to float64 precision.
    return 2 * math.pi * torch.remainder(k * i, n_fft) / n_fft


def _blocks(n_fft: int, hop: int) -> int:
    if n_fft % hop:
        raise ValueError(f"STFT/ISTFT need n_fft to be a multiple of hop (frames are cut and overlap-added in "
                         f"blocks of hop samples), got n_fft={n_fft}, hop={hop}")
    return n_fft // hop


class STFT(nn.Module):
    """``torch.stft(x, n_fft, hop, window=window, center=True, pad_mode='reflect', onesided=True)``.

    ``[B, 1, L]`` -> ``[B, 2*bins, L//hop + 1]`` (real parts, then imaginary parts). The padded signal is cut into
    blocks of ``hop`` samples, laid out ``[B, hop, blocks]``; frame f is blocks f .. f+R-1 (R = n_fft/hop), so the
    spectrum is ``sum_r ReduceSum_taps(blocks[:, :, r + f] * basis_r)``, where ``basis_r`` ``[hop, 2*bins, 1]`` holds
    the kernel taps ``r*hop ...``: elementwise products with the basis, never a Conv. Each product is
    ``[B, hop, 2*bins, F]`` (17 MB for 10 s of 24 kHz audio at n_fft 16, hop 4).
    """

    def __init__(self, n_fft: int, hop: int, window: torch.Tensor | None = None):
        super().__init__()
        self.n_fft, self.hop, self.blocks = n_fft, hop, _blocks(n_fft, hop)
        w = periodic_hann(n_fft) if window is None else window.to(torch.float64)
        ang = _dft_angles(n_fft)
        # X[k] = sum_i x[i] w[i] exp(-2 pi j k i / n): real kernel w cos, imaginary kernel -w sin.
        basis = torch.cat([w * torch.cos(ang), -w * torch.sin(ang)], dim=0)  # [2*bins, n_fft]
        per_block = basis.reshape(basis.shape[0], self.blocks, hop).permute(1, 2, 0)[..., None]  # [R, hop, 2*bins, 1]
        self.register_buffer("basis", per_block.float().contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad, hop, r_max = self.n_fft // 2, self.hop, self.blocks
        x = F.pad(x, (pad, pad), mode="reflect")  # [B, 1, L + n_fft]
        n = x.shape[-1]
        x = x[:, 0, : n - (n % hop)]  # whole blocks only: frame L//hop ends at (L//hop)*hop + n_fft
        blocks = x.reshape(x.shape[0], -1, hop).transpose(1, 2)  # [B, hop, L//hop + R]
        spec = None
        for r in range(r_max):
            part = blocks[:, :, r: (r - r_max + 1) or None]  # [B, hop, F]: samples r*hop ... of every frame
            term = (part[:, :, None, :] * self.basis[r]).sum(1)  # [B, 2*bins, F]
            spec = term if spec is None else spec + term
        return spec  # [B, 2*bins, L//hop + 1]


def overlap_add(blocks: list[torch.Tensor], hop: int) -> torch.Tensor:
    """``blocks[r]`` ``[B, C*hop, F]``: samples ``r*hop ...`` of every frame, for C signals one above the other ->
    ``[B, C, hop*(F+R-1)]``, frames ``hop`` samples apart: block r is shifted r frames later (Pad) and the R shifted
    tensors are added."""
    r_max = len(blocks)
    total = None
    for r, part in enumerate(blocks):
        shifted = F.pad(part, (r, r_max - 1 - r))  # [B, C*hop, F + R - 1]
        total = shifted if total is None else total + shifted
    b, n = total.shape[0], total.shape[-1]
    return total.reshape(b, -1, hop, n).transpose(2, 3).reshape(b, -1, n * hop)


class ISTFT(nn.Module):
    """``torch.istft(complex(re, im), n_fft, hop, window=window, center=True)``.

    ``[B, 2*bins, F]`` -> ``[B, hop*(F-1)]``. Each frame is the one-sided inverse DFT (imaginary parts of the DC and
    Nyquist bins ignored, as ``irfft`` does) times the window: ``sum_rows spec * basis``, summed ``hop`` spectrum rows
    at a time (ReduceSum of ``[B, hop, n_fft, F]`` products, never a ConvTranspose); frames are overlap-added
    (``overlap_add``); the sum is divided by the overlap-added squared window (computed in the graph from the frame
    count, so the first and last samples get exactly torch's partial envelope) and ``n_fft//2`` samples are trimmed
    from both ends (``center=True``).
    """

    def __init__(self, n_fft: int, hop: int, window: torch.Tensor | None = None):
        super().__init__()
        self.n_fft, self.hop, self.blocks = n_fft, hop, _blocks(n_fft, hop)
        w = periodic_hann(n_fft) if window is None else window.to(torch.float64)
        ang = _dft_angles(n_fft)  # [bins, n_fft]
        bins = n_fft // 2 + 1
        # Hermitian weights: DC and (even n_fft) Nyquist appear once, every other bin twice.
        c = torch.full((bins, 1), 2.0, dtype=torch.float64)
        c[0] = 1.0
        if n_fft % 2 == 0:
            c[-1] = 1.0
        re = c * torch.cos(ang) * w / n_fft
        im = -c * torch.sin(ang) * w / n_fft  # sin(0) = sin(pi i) = 0: DC/Nyquist imaginary parts drop out
        self.register_buffer("basis", torch.cat([re, im], 0)[:, :, None].float(), persistent=False)  # [2*bins, n, 1]
        self.register_buffer("window_sq", (w * w)[:, None].float(), persistent=False)  # [n_fft, 1]

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        hop, rows = self.hop, self.basis.shape[0]
        frames = None
        for g in range(0, rows, hop):  # hop spectrum rows at a time bound the product to [B, hop, n_fft, F]
            term = (spec[:, g:g + hop, None, :] * self.basis[g:g + hop]).sum(1)  # [B, n_fft, F]
            frames = term if frames is None else frames + term
        envelope = torch.ones_like(spec[:, :1, :]) * self.window_sq  # [B, n_fft, F]
        # block r of every frame, and below it block r of the squared window: one overlap-add sums both
        blocks = [torch.cat([frames[:, r * hop:(r + 1) * hop], envelope[:, r * hop:(r + 1) * hop]], 1)
                  for r in range(self.blocks)]  # R x [B, 2*hop, F]
        both = overlap_add(blocks, hop)  # [B, 2, hop*(F-1) + n_fft]
        pad = self.n_fft // 2
        return both[:, 0, pad:-pad] / both[:, 1, pad:-pad]  # [B, hop*(F-1)]


def exact_cumsum(x: torch.Tensor, dim: int, grid_bits: int = 10) -> torch.Tensor:
    """Cumulative sum of values in [0, 1) along ``dim``, rounded once to float32 -- what torch's CPU ``cumsum``
    gives (it accumulates float32 in double) -- using float32 ops only.

    Why: a plain float32 CumSum (onnxruntime, Sentis) rounds at every step; HiFT multiplies the running sum by
    2 pi * 480, so one lost ulp becomes a visible phase error. Each value is split into three parts on fixed grids
    (``2^-g``, ``2^-2g``, remainder). The first two partial sums are exact in float32 for up to ``2^(24-g)`` terms
    (g=10: 16384 frames = 327 s of audio at 50 frames/s); the third is tiny; the parts are recombined with an
    error-free TwoSum so that the result is the correctly rounded total in all but vanishingly rare cases.
    """
    hi_scale, mid_scale = float(2 ** grid_bits), float(2 ** (2 * grid_bits))
    hi = torch.floor(x * hi_scale) / hi_scale  # exact: power-of-two scalings and floor
    rest = x - hi  # exact: the low bits of x
    mid = torch.floor(rest * mid_scale) / mid_scale
    lo = rest - mid  # exact, < 2^-2g
    a = torch.cumsum(hi, dim)  # exact
    b = torch.cumsum(mid, dim)  # exact
    c = torch.cumsum(lo, dim)  # rounded, but ~2^-2g smaller than the result's ulp
    s = a + b  # TwoSum: s + e == a + b exactly
    bv = s - a
    e = (a - (s - bv)) + (b - bv)
    return s + (e + c)


# 2 pi as c1 + c2 + c3: c1 and c2 carry 12 significant bits each (c1 a multiple of 2^-9, c2 of 2^-21), so that
# their products with a 12-bit integer are exact in float32; c3 is the float32 rest.
_TWO_PI = 2 * math.pi
_C1 = math.floor(_TWO_PI * 2 ** 9) / 2 ** 9
_C2 = math.floor((_TWO_PI - _C1) * 2 ** 21) / 2 ** 21
_C3 = _TWO_PI - _C1 - _C2


def reduce_angle(x: torch.Tensor) -> torch.Tensor:
    """``x - 2 pi k`` with ``k = round(x / 2 pi)``: the same sine, argument in about [-pi, pi], float32 ops only.

    Why: HiFT's sine phase reaches ~1e6 rad after 10 s (2 pi * 480 * a running sum). onnxruntime's sin reduces
    such arguments exactly, but a fast runtime sin (e.g. Burst's fast float mode) may reduce with a short 2 pi and
    lose ~1e-2 rad. Here k (< 2^23, i.e. |x| < 5e7) is split into 12-bit halves ``kh * 4096 + kl``; every product
    with c1/c2 is then exact and every subtraction is exact (Sterbenz, or a result on a grid it fits), so only the
    tiny ``k * c3`` term and the last step round: absolute error ~2e-7, independent of |x|.
    """
    k = torch.floor(x * (1.0 / _TWO_PI) + 0.5)
    kh = torch.floor(k * (1.0 / 4096.0))
    kl = k - kh * 4096.0
    kh = kh * 4096.0  # exact: a power-of-two scaling
    r = x - kh * _C1
    r = r - kh * _C2
    r = r - kl * _C1
    r = r - kl * _C2
    return r - k * _C3
