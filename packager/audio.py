"""Reference recordings in, WAV files out: soundfile for reading/writing, soxr for resampling (no torch).

``load_reference`` applies upstream's frontend rules (design/frontend.md §4): any rate >= 16 kHz, any channel
count mixed to mono by the mean over channels, at most 30 s (the speech tokenizer's limit), and our own lower bound
of 1 s; every bad file is an ``InputError`` naming it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from packager.errors import InputError

MIN_SOURCE_RATE = 16000
MIN_SECONDS = 1.0
MAX_SECONDS = 30.0
SOXR_QUALITY = "VHQ"
RESAMPLER = {"library": "soxr", "quality": SOXR_QUALITY, "mono": "mean over channels"}


@dataclass(frozen=True)
class Reference:
    wave16k: np.ndarray  # float32 [N16], mono
    wave24k: np.ndarray  # float32 [N24], mono
    source_rate: int
    source_channels: int
    seconds: float  # duration of the source
    sha256: str  # of the file's bytes


def resample(wave: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """soxr, very high quality; identity when the rates are equal."""
    wave = np.asarray(wave, np.float64)
    if src_rate == dst_rate:
        return wave.astype(np.float32)
    return soxr.resample(wave, src_rate, dst_rate, quality=SOXR_QUALITY).astype(np.float32)


def load_reference(path: Path, *, min_seconds: float = MIN_SECONDS, max_seconds: float = MAX_SECONDS) -> Reference:
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise InputError("file not found", file=where, expected="a reference recording (WAV, FLAC, OGG ...)")
    if not path.is_file():
        raise InputError("is not a file", file=where, expected="a reference recording (WAV, FLAC, OGG ...)")
    try:
        raw = path.read_bytes()
        data, rate = soundfile.read(where, dtype="float64", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot be read as audio ({first})", file=where,
                         expected="an audio file libsndfile reads (WAV, FLAC, OGG ...)") from None
    channels = int(data.shape[1]) if data.ndim == 2 else 1
    if data.size == 0:
        raise InputError("holds no audio samples", file=where, expected=f"{min_seconds:g}..{max_seconds:g} s of speech")
    if not np.isfinite(data).all():
        raise InputError("holds NaN or Inf samples", file=where, expected="finite samples in [-1, 1]")
    if not np.any(data):
        raise InputError("is silent (every sample is zero)", file=where, expected="a recording of speech")
    if rate < MIN_SOURCE_RATE:
        raise InputError("sample rate too low (upstream refuses sources below 16 kHz)", file=where,
                         expected=f">= {MIN_SOURCE_RATE} Hz", found=f"{rate} Hz")
    seconds = data.shape[0] / rate
    if seconds < min_seconds:
        raise InputError("reference too short", file=where, expected=f">= {min_seconds:g} s", found=f"{seconds:.2f} s")
    if seconds > max_seconds:
        raise InputError("reference too long (the speech tokenizer takes at most 30 s)", file=where,
                         expected=f"<= {max_seconds:g} s", found=f"{seconds:.2f} s")
    mono = data.mean(axis=1)
    return Reference(resample(mono, rate, 16000), resample(mono, rate, 24000), int(rate), channels, float(seconds),
                     hashlib.sha256(raw).hexdigest())


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM mono WAV (samples clipped to [-1, 1])."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.clip(np.asarray(samples, np.float32).reshape(-1), -1.0, 1.0), sample_rate,
                    subtype="PCM_16", format="WAV")
