"""The two spectral features of upstream's zero-shot frontend, in numpy (float64 inside, float32 out; no torch).

* ``whisper_log_mel``: Whisper's 128-bin log-mel at 16 kHz, the input of speech_tokenizer_v3 (design/frontend.md
  §4a): n_fft 400, hop 160, periodic Hann(400), centred with reflect padding, power spectrum, last frame dropped,
  log10(max(mel, 1e-10)), floor at max - 8, (x + 4) / 4. 100 frames/s, T = N // 160.
* ``matcha_mel``: the Matcha-TTS 80-bin mel at 24 kHz that CosyVoice3 uses as the prompt feature (§4b): n_fft 1920,
  hop 480, Hann(1920), reflect padding of 720 each side and no centring, magnitude sqrt(re² + im² + 1e-9), natural
  log of max(mel, 1e-5). 50 frames/s, F = N // 480.

Both use ``mel_filterbank``: the Slaney mel scale with Slaney area normalisation (librosa's default filters).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

WHISPER_MEL = {"sample_rate": 16000, "n_fft": 400, "hop": 160, "window": "periodic hann 400", "n_mels": 128,
               "fmin": 0.0, "fmax": 8000.0, "mel_scale": "slaney", "norm": "slaney",
               "center": "reflect pad 200", "power": 2, "log": "log10(max(mel, 1e-10))", "floor": "max - 8",
               "scale": "(x + 4) / 4", "frames": "N // 160 (last STFT frame dropped)"}
MATCHA_MEL = {"sample_rate": 24000, "n_fft": 1920, "hop": 480, "window": "periodic hann 1920", "n_mels": 80,
              "fmin": 0.0, "fmax": 12000.0, "mel_scale": "slaney", "norm": "slaney",
              "center": "reflect pad 720 each side, no centring",
              "magnitude": "sqrt(re^2 + im^2 + 1e-9)", "log": "ln(max(mel, 1e-5))", "frames": "N // 480"}


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney: linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4)."""
    f = np.asarray(f, np.float64)
    lin = f / (200.0 / 3.0)
    logstep = np.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) / logstep, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * (200.0 / 3.0))


@lru_cache(maxsize=8)
def _filterbank64(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    bins = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)  # the rfft bin centres (odd n_fft too)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    width = np.diff(edges)
    rise = (bins[None, :] - edges[:-2, None]) / width[:-1, None]
    fall = (edges[2:, None] - bins[None, :]) / width[1:, None]
    weights = np.maximum(0.0, np.minimum(rise, fall))
    out = weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]  # Slaney: each triangle has unit area in Hz/2
    out.setflags(write=False)  # cached: shared by every caller
    return out


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
                   ) -> np.ndarray:
    """float32 [n_mels, n_fft // 2 + 1]: Slaney-scale triangles with Slaney (area) normalisation.

    The filters librosa.filters.mel builds by default (htk=False, norm='slaney'): ``n_mels + 2`` edges evenly spaced
    on the Slaney mel scale between ``fmin`` and ``fmax`` (default: Nyquist), triangle ``m`` rising from edge ``m`` to
    ``m + 1`` and falling to ``m + 2``, scaled by ``2 / (f[m + 2] - f[m])``. Computed in float64.
    """
    top = float(sample_rate / 2.0 if fmax is None else fmax)
    if not 0.0 <= fmin < top:
        raise ValueError(f"mel_filterbank needs 0 <= fmin < fmax, got fmin={fmin}, fmax={top}")
    return _filterbank64(int(sample_rate), int(n_fft), int(n_mels), float(fmin), top).astype(np.float32)


def _hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)  # periodic


def _spectrum(padded: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Complex one-sided STFT [bins, frames] of an already padded signal (no centring)."""
    if padded.size < n_fft:
        return np.zeros((n_fft // 2 + 1, 0), np.complex128)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    return np.fft.rfft(frames * _hann(n_fft), axis=1).T


def whisper_log_mel(wave16k: np.ndarray, n_mels: int = 128) -> np.ndarray:
    """Whisper's log-mel of a 16 kHz wave (N >= 201 samples) -> float32 [n_mels, N // 160] (see ``WHISPER_MEL``)."""
    x = np.asarray(wave16k, np.float64).reshape(-1)
    if x.size < 201:
        raise ValueError("whisper_log_mel needs at least 201 samples (reflect padding of 200)")
    spec = _spectrum(np.pad(x, 200, mode="reflect"), 400, 160)[:, :-1]
    w = WHISPER_MEL
    mel = _filterbank64(w["sample_rate"], w["n_fft"], n_mels, w["fmin"], w["fmax"]) @ (spec.real ** 2 + spec.imag ** 2)
    log = np.log10(np.maximum(mel, 1e-10))
    if log.size:
        log = np.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0).astype(np.float32)


def matcha_mel(wave24k: np.ndarray) -> np.ndarray:
    """CosyVoice3's Matcha mel of a 24 kHz wave (N >= 721 samples) -> float32 [80, N // 480] (see ``MATCHA_MEL``)."""
    x = np.asarray(wave24k, np.float64).reshape(-1)
    if x.size < 721:
        raise ValueError("matcha_mel needs at least 721 samples (reflect padding of 720)")
    spec = _spectrum(np.pad(x, 720, mode="reflect"), 1920, 480)
    mag = np.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9)
    m = MATCHA_MEL
    mel = _filterbank64(m["sample_rate"], m["n_fft"], m["n_mels"], m["fmin"], m["fmax"]) @ mag
    return np.log(np.maximum(mel, 1e-5)).astype(np.float32)
