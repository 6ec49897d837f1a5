"""Kaldi-compatible log-mel filterbank (the CAMPPlus front end) as a graph, so Unity needs no DSP code.

CosyVoice's frontend computes Kaldi fbank on 16 kHz audio in [-1, 1] with ``num_mel_bins=80, dither=0`` and every
other option at its Kaldi default, then subtracts each bin's mean over time (upstream_ref/campplus/README.md,
"Features"). Kaldi defaults: 25 ms / 10 ms frames with snip-edges (T = 1 + (N - 400) // 160), per-frame DC removal,
pre-emphasis 0.97 (the first sample reuses itself), Povey window (Hann^0.85), zero padding to 512, power spectrum,
80 triangular filters evenly spaced on mel = 1127 ln(1 + f/700) between 20 Hz and 8 kHz, natural log floored at
float32 epsilon.

DC removal, pre-emphasis, windowing and the real DFT are all linear in the frame, so the graph folds them (in float64)
into one strided Conv1d whose 514 output channels are the real and imaginary parts of the 257 DFT bins. The mel
filterbank is one MatMul. ``kaldi_fbank_reference`` is the same computation step by step in float64 numpy: the
independent reference for goldens and tests.

Every constant of the graph (the folded DFT basis, the mel filter bank, the log floor) is an exact DSP number, none is
learned: the graph is declared a DSP graph (``GraphDef.dsp_graph``), which ships fp32 with ``unity_quantization:
none`` under every policy (docs/precision.md "DSP constants"; Unity's uint8 ModelQuantizer left it at 4.1 dB SQNR).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
FRAME_LENGTH = 400  # 25 ms
FRAME_SHIFT = 160  # 10 ms
N_FFT = 512
N_MELS = 80
LOW_FREQ, HIGH_FREQ = 20.0, SAMPLE_RATE / 2
PREEMPH = 0.97
LOG_FLOOR = float(np.finfo(np.float32).eps)


def num_frames(samples: int) -> int:
    return 0 if samples < FRAME_LENGTH else 1 + (samples - FRAME_LENGTH) // FRAME_SHIFT


def _mel(f: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_banks() -> np.ndarray:
    """[257, 80] triangular filters on the Kaldi mel scale (the Nyquist row is zero)."""
    n_bins = N_FFT // 2
    fft_bin_width = SAMPLE_RATE / N_FFT
    mel_lo, mel_hi = _mel(LOW_FREQ), _mel(HIGH_FREQ)
    delta = (mel_hi - mel_lo) / (N_MELS + 1)
    mel_f = _mel(fft_bin_width * np.arange(n_bins))
    banks = np.zeros((N_FFT // 2 + 1, N_MELS), dtype=np.float64)
    for m in range(N_MELS):
        left, center, right = mel_lo + m * delta, mel_lo + (m + 1) * delta, mel_lo + (m + 2) * delta
        up = (mel_f - left) / (center - left)
        down = (right - mel_f) / (right - center)
        banks[:n_bins, m] = np.maximum(0.0, np.minimum(up, down))
    return banks


def povey_window() -> np.ndarray:
    n = np.arange(FRAME_LENGTH, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2 * math.pi * n / (FRAME_LENGTH - 1))) ** 0.85


def frame_operator() -> np.ndarray:
    """[400, 514] matrix: frame -> (DC removal, pre-emphasis, window, DFT) as [re(0..256), im(0..256)]."""
    L = FRAME_LENGTH
    dc = np.eye(L) - np.full((L, L), 1.0 / L)
    pre = np.eye(L)
    pre[np.arange(1, L), np.arange(0, L - 1)] = -PREEMPH  # y[i] = x[i] - 0.97 x[i-1]
    pre[0, 0] = 1.0 - PREEMPH  # y[0] = x[0] - 0.97 x[0]
    win = np.diag(povey_window())
    k = np.arange(N_FFT // 2 + 1)
    n = np.arange(L)[:, None]
    ang = 2 * math.pi * n * k / N_FFT
    dft = np.concatenate([np.cos(ang), -np.sin(ang)], axis=1)  # [400, 514]; zero padding = unused rows
    return (win @ pre @ dc).T @ dft  # columns act on the raw frame


def kaldi_fbank_reference(wave: np.ndarray) -> np.ndarray:
    """Step-by-step float64 Kaldi fbank of a 1-D 16 kHz waveform -> [T, 80] (before mean removal)."""
    w = np.asarray(wave, dtype=np.float64)
    T = num_frames(w.shape[0])
    idx = np.arange(T)[:, None] * FRAME_SHIFT + np.arange(FRAME_LENGTH)[None, :]
    frames = w[idx]
    frames = frames - frames.mean(axis=1, keepdims=True)
    prev = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = (frames - PREEMPH * prev) * povey_window()
    spec = np.fft.rfft(frames, n=N_FFT, axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    return np.log(np.maximum(power @ mel_banks(), LOG_FLOOR))


class FbankGraph(nn.Module):
    """waveform [1, N] -> (features [1, T, 80] mean-subtracted, fbank [1, T, 80] raw); T = 1 + (N - 400) // 160."""

    def __init__(self) -> None:
        super().__init__()
        op = frame_operator()  # [400, 514]
        self.frame_dft = nn.Conv1d(1, op.shape[1], FRAME_LENGTH, stride=FRAME_SHIFT, bias=False)
        self.frame_dft.weight.data = torch.from_numpy(op.T[:, None, :].astype(np.float32))
        self.register_buffer("mel", torch.from_numpy(mel_banks().astype(np.float32)), persistent=False)

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spec = self.frame_dft(waveform.unsqueeze(1))  # [1, 514, T]
        half = spec.shape[1] // 2
        re, im = spec[:, :half], spec[:, half:]
        power = (re * re + im * im).transpose(1, 2)  # [1, T, 257]
        fbank = torch.log(torch.clamp(torch.matmul(power, self.mel), min=LOG_FLOOR))  # [1, T, 80]
        features = fbank - fbank.mean(dim=1, keepdim=True)
        return features, fbank
