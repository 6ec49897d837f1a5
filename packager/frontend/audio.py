"""Reference recordings in, WAV files out: soundfile for reading/writing, soxr for resampling (no torch).

``load_reference`` applies upstream's frontend rules (design/frontend.md §4, ``cosyvoice/utils/file_utils.py``
``load_wav``): any rate >= 16 kHz, any channel count mixed to mono by the mean over channels, float samples as read
(not rescaled, not clipped), at most 30 s (upstream's speech tokenizer refuses longer audio), plus our own lower bound
of 1 s. Every bad file is an ``InputError`` naming the file and saying what was expected and what to do. A longer
recording can be used through a span of it (``trim``, `voice --trim START-END`): its refusal suggests the most voiced
span of at most ``SUGGESTED_SECONDS`` between two pauses (``suggest_span``, a frame-energy scan read block by block).

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

from packager.contract.errors import InputError
from packager.frontend.features import MATCHA_MEL, WHISPER_MEL

SPEAKER_RATE = WHISPER_MEL["sample_rate"]  # what the speech tokenizer and the speaker embedding hear
PROMPT_MEL_RATE = MATCHA_MEL["sample_rate"]  # what the flow's prompt mel is computed from
MIN_SOURCE_RATE = SPEAKER_RATE  # a recording below it would have to be upsampled for the speaker embedding
MIN_SECONDS = 1.0
MAX_SECONDS = 30.0
SUGGESTED_SECONDS = 15.0  # the longest span a too-long refusal suggests: every prompt second costs each synthesis
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
    seconds: float  # duration of the audio used: the source, or its trimmed span
    sha256: str  # hex sha256 of the file's bytes
    trim: tuple[float, float] | None = None  # (start, end) seconds of the source, when only a span was used


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


FRAME_SECONDS = 0.02  # the energy scan's frame
PAUSE_SECONDS = 0.15  # a run of unvoiced frames at least this long is a pause: a place to cut
VOICED_DB = 30.0  # a frame within this many dB of the loud frames (95th percentile) is voiced
EDGE_SECONDS = 0.1  # a suggested span starts this long before the speech after a pause (and ends as long after)
PAUSED_SHARE = 0.8  # a span between pauses is preferred while it has this share of the best window's voiced frames


def frame_energy_db(f: soundfile.SoundFile, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """Mean-square energy in dB of each ``frame_seconds`` frame of the open file's mono mix (read block by block)."""
    rate = int(f.samplerate)
    hop = max(1, int(round(frame_seconds * rate)))
    out, rest = [], np.zeros(0)
    f.seek(0)
    for block in f.blocks(blocksize=hop * 512, dtype="float64", always_2d=True):
        x = np.concatenate([rest, block.mean(axis=1)])
        n = x.size // hop
        out.append(np.mean(x[:n * hop].reshape(n, hop) ** 2, axis=1))
        rest = x[n * hop:]
    energy = np.concatenate(out) if out else np.zeros(0)
    return 10 * np.log10(np.nan_to_num(energy, nan=0.0, posinf=1.0) + 1e-12)


def suggest_span(energy_db: np.ndarray, *, frame_seconds: float = FRAME_SECONDS, min_seconds: float = 3.0,
                 max_seconds: float = SUGGESTED_SECONDS) -> tuple[float, float] | None:
    """The most voiced span of ``min_seconds``..``max_seconds`` that starts and ends in a pause (``EDGE_SECONDS``
    before the speech after it resumes, after the speech before it stops) or at an end of the recording: the most
    voiced frames, then the shortest; unless it has under ``PAUSED_SHARE`` of the voiced frames of the most voiced
    window of ``max_seconds`` (no pauses where they would be needed): then that window. (start, end) in seconds, or
    None for a recording with no voiced frame."""
    n = energy_db.size
    if n == 0:
        return None
    voiced = energy_db > max(np.percentile(energy_db, 95) - VOICED_DB, -90.0)
    if not voiced.any():
        return None
    count = np.concatenate([[0], np.cumsum(voiced)])
    longest, shortest = int(max_seconds / frame_seconds), int(np.ceil(min_seconds / frame_seconds))
    pause, edge = max(1, int(round(PAUSE_SECONDS / frame_seconds))), max(1, int(round(EDGE_SECONDS / frame_seconds)))
    starts, ends, i = [0], [n], 0
    while i < n:  # every pause [i, j): a span may end just after i or start just before j
        if voiced[i]:
            i += 1
            continue
        j = i
        while j < n and not voiced[j]:
            j += 1
        if j - i >= pause:
            starts.append(max(i, j - edge))
            ends.append(min(j, i + edge))
        i = j
    starts, ends = sorted(set(starts)), sorted(set(ends))
    best, k = None, -1
    for a in starts:  # two pointers: per start, the farthest end within `longest` is the most voiced
        while k + 1 < len(ends) and ends[k + 1] - a <= longest:
            k += 1
        if k >= 0 and ends[k] - a >= shortest:
            key = (int(count[ends[k]] - count[a]), -(ends[k] - a))
            if best is None or key > best[0]:
                best = (key, a, ends[k])
    w = min(longest, n)  # the most voiced window of `longest` frames, wherever it starts
    a = int(np.argmax(count[w:] - count[:-w])) if n > w else 0
    if best is None or best[0][0] < PAUSED_SHARE * (count[a + w] - count[a]):
        best = (None, a, a + w)
    _, a, b = best
    return round(a * frame_seconds, 2), round(b * frame_seconds, 2)


def load_reference(path: Path | str, *, min_seconds: float = MIN_SECONDS, max_seconds: float = MAX_SECONDS,
                   trim: tuple[float, float] | None = None) -> Reference:
    """Read a reference recording -> mono float32 waves at 16 and 24 kHz (soxr "VHQ"), with the source's facts.
    ``trim``: (start, end) seconds: use only that span of the recording (the length bounds apply to it).

    Raises ``InputError`` (``file=str(path)``) for: a missing path or a directory; a file libsndfile cannot decode;
    no samples; NaN/Inf samples; all-zero audio; a sample rate below 16 kHz; shorter than ``min_seconds``; longer
    than ``max_seconds`` (with a suggested ``--trim`` span); a ``trim`` outside the recording. Rate and duration are
    checked from the header before the samples are decoded, so a long recording is refused without being read into
    memory (its energy scan reads it block by block).
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
                raise InputError("sample rate too low (upstream refuses sources below 16 kHz): record it again at "
                                 "16 kHz or more; resampling this file up would pass this check but cannot restore "
                                 f"what it lacks above {rate / 2000:.3g} kHz", file=where,
                                 expected=f">= {MIN_SOURCE_RATE} Hz", found=f"{rate} Hz")
            if trim is not None:
                start, end = trim
                if not 0 <= start < end or end > frames / rate + 0.5 / rate:
                    raise InputError("the span is not inside the recording", file=where, key="--trim",
                                     expected=f"START-END within 0-{frames / rate:.2f} s, START < END",
                                     found=f"{start:g}-{end:g}")
                if end - start > max_seconds:
                    raise InputError("span too long (upstream's speech tokenizer takes at most 30 s)", file=where,
                                     key="--trim", expected=f"<= {max_seconds:g} s", found=f"{end - start:.2f} s")
                f.seek(min(int(round(start * rate)), frames))
                data = f.read(min(int(round(end * rate)), frames) - f.tell(), dtype="float64", always_2d=True)
            elif frames / rate > max_seconds:  # header says too long: refuse before decoding
                raise InputError("reference too long (upstream's speech tokenizer takes at most 30 s): use a part of "
                                 "it with --trim START-END (seconds), and give the transcript of that part only"
                                 + _suggestion(f, min_seconds, max_seconds), file=where,
                                 expected=f"<= {max_seconds:g} s", found=f"{frames / rate:.2f} s")
            else:
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
    return Reference(wave16k=resample(mono, rate, SPEAKER_RATE), wave24k=resample(mono, rate, PROMPT_MEL_RATE), source_rate=rate,
                     source_channels=channels, seconds=float(seconds), sha256=sha256,
                     trim=None if trim is None else (float(trim[0]), float(trim[1])))


def _suggestion(f: soundfile.SoundFile, min_seconds: float, max_seconds: float) -> str:
    """'; its most voiced ... --trim A-B' for a too-long refusal ('' when the scan finds no voiced frame)."""
    got = suggest_span(frame_energy_db(f), min_seconds=max(min_seconds, 3.0),
                       max_seconds=min(SUGGESTED_SECONDS, max_seconds))
    if got is None:
        return ""
    return (f"; its most voiced span of at most {min(SUGGESTED_SECONDS, max_seconds):g} s between pauses: "
            f"--trim {got[0]:.2f}-{got[1]:.2f}")


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
