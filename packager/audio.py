"""Reference recordings in, WAV files out: soundfile for reading/writing, soxr for resampling (no torch).

``load_reference`` applies upstream's frontend rules (design/frontend.md §4, ``cosyvoice/utils/file_utils.py``
``load_wav``): any rate >= 16 kHz, any channel count mixed to mono by the mean over channels, float samples as read
(not rescaled, not clipped), at most 30 s (upstream's speech tokenizer refuses longer audio), plus our own lower bound
of 1 s. Every bad file is an ``InputError`` naming the file and saying what was expected.

Resampling is soxr at its "VHQ" (very high quality) setting. Upstream resamples with torchaudio's windowed-sinc
``Resample``; the two differ slightly near Nyquist and soxr's output has ``round(N * dst / src)`` samples where
torchaudio's has ``ceil(N * dst / src)`` (at most one sample more).
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

_AUDIO = "a reference recording libsndfile reads (WAV, FLAC, OGG, MP3 ...)"
# what soundfile raises for unreadable input (LibsndfileError is a RuntimeError; the others cover odd headers)
_READ_ERRORS = (soundfile.LibsndfileError, RuntimeError, OSError, ValueError, TypeError, EOFError)


@dataclass(frozen=True)
class Reference:
    wave16k: np.ndarray  # float32 [N16], mono, 16 kHz
    wave24k: np.ndarray  # float32 [N24], mono, 24 kHz
    source_rate: int
    source_channels: int
    seconds: float  # duration of the source
    sha256: str  # hex sha256 of the file's bytes


def resample(wave: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """1-D float32 ``wave`` at ``src_rate`` -> float32 at ``dst_rate`` with soxr "VHQ"; a copy when rates are equal.

    Output length: ``round(N * dst_rate / src_rate)`` (soxr's own rule; halves round up).
    """
    wave = np.asarray(wave, np.float64)
    if wave.ndim != 1:
        raise ValueError(f"resample expects a 1-D wave, got shape {wave.shape}")
    if int(src_rate) == int(dst_rate):
        return wave.astype(np.float32)
    return soxr.resample(wave, int(src_rate), int(dst_rate), quality=SOXR_QUALITY).astype(np.float32)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reason(exc: BaseException, where: str) -> str:
    """libsndfile's reason, without the "Error opening '<path>': " soundfile puts before it (the path is ours)."""
    text = str(exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    return text.replace(f"Error opening {where!r}: ", "").strip() or type(exc).__name__


def load_reference(path: Path | str, *, min_seconds: float = MIN_SECONDS, max_seconds: float = MAX_SECONDS
                   ) -> Reference:
    """Read a reference recording -> mono float32 waves at 16 and 24 kHz (soxr "VHQ"), with the source's facts.

    Raises ``InputError`` (``file=str(path)``) for: a missing path or a directory; a file libsndfile cannot decode;
    no samples; NaN/Inf samples; all-zero audio; a sample rate below 16 kHz; shorter than ``min_seconds``; longer
    than ``max_seconds``. Rate and duration are checked from the header before the samples are decoded, so a long
    recording is refused without being read into memory.
    """
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise InputError("file not found", file=where, expected=_AUDIO)
    if not path.is_file():
        raise InputError("is not a file", file=where, expected=_AUDIO)
    span = f"{min_seconds:g}..{max_seconds:g} s of speech"
    try:
        sha256 = _sha256(path)
        with soundfile.SoundFile(where) as f:
            rate, channels, frames = int(f.samplerate), int(f.channels), int(f.frames)
            if rate < MIN_SOURCE_RATE:
                raise InputError("sample rate too low (upstream refuses sources below 16 kHz)", file=where,
                                 expected=f">= {MIN_SOURCE_RATE} Hz", found=f"{rate} Hz")
            if frames / rate > max_seconds:  # header says too long: refuse before decoding
                raise InputError("reference too long (upstream's speech tokenizer takes at most 30 s)", file=where,
                                 expected=f"<= {max_seconds:g} s", found=f"{frames / rate:.2f} s")
            data = f.read(dtype="float64", always_2d=True)
    except _READ_ERRORS as exc:
        raise InputError(f"cannot be read as audio ({_reason(exc, where)})", file=where, expected=_AUDIO) from None
    if data.size == 0:
        raise InputError("holds no audio samples", file=where, expected=span, found="0 samples")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise InputError("holds NaN or Inf samples", file=where, expected="finite samples in [-1, 1]",
                         found=f"{bad} non-finite samples")
    if not np.any(data):
        raise InputError("is silent (every sample is zero)", file=where, expected=span)
    seconds = data.shape[0] / rate
    if seconds < min_seconds:
        raise InputError("reference too short", file=where, expected=f">= {min_seconds:g} s", found=f"{seconds:.2f} s")
    if seconds > max_seconds:
        raise InputError("reference too long (upstream's speech tokenizer takes at most 30 s)", file=where,
                         expected=f"<= {max_seconds:g} s", found=f"{seconds:.2f} s")
    mono = data.mean(axis=1)
    return Reference(wave16k=resample(mono, rate, 16000), wave24k=resample(mono, rate, 24000), source_rate=rate,
                     source_channels=channels, seconds=float(seconds), sha256=sha256)


def write_wav(path: Path | str, samples: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM mono WAV via soundfile (samples clipped to [-1, 1]); creates the parent folders.

    ``samples``: 1-D, or any shape with one non-unit axis (e.g. [1, N]).
    """
    path = Path(path)
    x = np.asarray(samples, np.float32)
    if x.ndim != 1:
        if sum(d != 1 for d in x.shape) > 1:
            raise ValueError(f"write_wav writes mono audio, got shape {x.shape}")
        x = x.reshape(-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.clip(x, -1.0, 1.0), int(sample_rate), subtype="PCM_16", format="WAV")
