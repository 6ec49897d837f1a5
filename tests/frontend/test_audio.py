"""Reading reference recordings: bad input, mono mix, soxr resampling to 16/24 kHz, WAV writing (packager/frontend/audio.py)."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile

from packager.frontend import audio
from packager.contract.errors import InputError
from tests.speech import espeak_wav


def _tone(seconds: float, sr: int, amp: float = 0.3, hz: float = 300.0) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * hz * np.arange(int(round(seconds * sr))) / sr)).astype(np.float32)


def _write(path: Path, x: np.ndarray, sr: int, subtype: str = "FLOAT") -> Path:
    soundfile.write(str(path), x, sr, subtype=subtype)
    return path


def _nan_wav(p: Path) -> Path:
    x = _tone(2.0, 16000)
    x[1000] = np.nan
    return _write(p, x, 16000)


def _inf_wav(p: Path) -> Path:
    x = _tone(2.0, 16000)
    x[5] = np.inf
    return _write(p, x, 16000)


# (name, make(path) -> path, words the message must contain, the "expected ..." text)
BAD = [
    ("missing", lambda p: p, "file not found", "reference recording"),
    ("folder", lambda p: (p.mkdir(), p)[1], "is not a file", "reference recording"),
    ("text", lambda p: (p.write_text("RIFF? no, just some text\n" * 40), p)[1], "cannot be read as audio",
     "libsndfile reads"),
    ("truncated", lambda p: (p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), p)[1], "cannot be read as audio",
     "libsndfile reads"),
    ("empty", lambda p: _write(p, np.zeros(0, np.float32), 16000), "no audio samples", "1..30 s of speech"),
    ("zeros", lambda p: _write(p, np.zeros(32000, np.float32), 16000), "every sample is zero", "1..30 s of speech"),
    ("nan", _nan_wav, "NaN or Inf", "finite samples"),
    ("inf", _inf_wav, "NaN or Inf", "finite samples"),
    ("8k", lambda p: _write(p, _tone(2.0, 8000), 8000, "PCM_16"), "upstream refuses sources below 16 kHz",
     ">= 16000 Hz, found 8000 Hz"),
    ("short", lambda p: _write(p, _tone(0.5, 16000), 16000), "too short", ">= 1 s, found 0.50 s"),
    ("long", lambda p: _write(p, _tone(30.5, 16000), 16000, "PCM_16"), "at most 30 s", "<= 30 s, found 30.50 s"),
]


@pytest.mark.parametrize("name,make,words,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_reference_is_an_input_error_naming_the_file(tmp_path: Path, name, make, words, expected) -> None:
    path = make(tmp_path / f"{name}.wav")
    with pytest.raises(InputError) as info:
        audio.load_reference(path)
    err = info.value
    assert err.file == str(path)
    assert err.expected and f"(expected {err.expected}" in str(err)
    assert expected in str(err).split("(expected ", 1)[1]  # what was expected (and found) is in the message
    assert str(err).startswith(f"{path}: ") and words in str(err)
    assert "Traceback" not in str(err) and "\n" not in str(err) and str(err).count(str(path)) == 1


def test_refusals_say_what_to_do(tmp_path: Path) -> None:
    low = _write(tmp_path / "8k.wav", _tone(2.0, 8000), 8000, "PCM_16")
    with pytest.raises(InputError, match=r"record it again at 16 kHz or more; .* above 4 kHz \(expected"):
        audio.load_reference(low)
    long = _write(tmp_path / "long.wav", _tone(40.0, 16000), 16000, "PCM_16")
    with pytest.raises(InputError, match=r"use a part of it with --trim START-END \(seconds\), and give the "
                                         r"transcript of that part only; .* --trim \d+\.\d\d-\d+\.\d\d \(expected"):
        audio.load_reference(long)


def _bursts(seconds: float, sr: int, dense: tuple[float, float], seed: int = 0) -> np.ndarray:
    """Speech-like: 1-3 s noise bursts between 0.4-1.2 s pauses, 0.2 s pauses inside ``dense`` (a near-silent floor)."""
    rng = np.random.default_rng(seed)
    x = (1e-4 * rng.standard_normal(int(seconds * sr))).astype(np.float32)
    t = 0.5
    while t < seconds:
        burst = rng.uniform(1.0, 3.0)
        a, b = int(t * sr), min(int((t + burst) * sr), x.size)
        x[a:b] += 0.2 * rng.standard_normal(b - a).astype(np.float32)
        t += burst + (0.2 if dense[0] <= t <= dense[1] else rng.uniform(0.4, 1.2))
    return x


def test_too_long_reference_suggests_its_most_voiced_span_between_pauses(tmp_path: Path) -> None:
    sr = 16000
    x = _bursts(180.0, sr, dense=(100.0, 116.0))
    path = _write(tmp_path / "three-minutes.wav", x, sr, "PCM_16")
    with pytest.raises(InputError) as info:
        audio.load_reference(path)
    message = str(info.value)
    assert "found 180.00 s" in message and "\n" not in message
    start, end = (float(v) for v in message.split("--trim ")[-1].split(" ")[0].split("-"))
    assert 3.0 <= end - start <= audio.SUGGESTED_SECONDS and 96.0 <= start and end <= 121.0, (start, end)
    energy = audio.frame_energy_db(soundfile.SoundFile(str(path)))
    frame = lambda t: int(round(t / audio.FRAME_SECONDS))  # noqa: E731
    assert energy[frame(start)] < -60 and energy[frame(end) - 1] < -60  # both ends in a pause
    ref = audio.load_reference(path, trim=(start, end))  # the suggestion is usable as it is
    assert ref.trim == (start, end) and abs(ref.seconds - (end - start)) < 1e-3
    # no pause at all: the most voiced window of SUGGESTED_SECONDS
    assert audio.suggest_span(np.r_[np.full(500, -100.0), np.full(3000, -20.0)]) == (10.0, 25.0)
    assert audio.suggest_span(np.full(100, -200.0)) is None and audio.suggest_span(np.zeros(0)) is None


def test_trim_reads_only_the_span(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.wav", _tone(40.0, 16000), 16000, "PCM_16")
    ref = audio.load_reference(path, trim=(10.0, 22.5))
    assert ref.seconds == 12.5 and ref.trim == (10.0, 22.5) and ref.wave16k.shape == (200000,)
    assert ref.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()  # the file as given
    for trim, words in (((30.0, 41.0), "not inside the recording"), ((5.0, 36.0), "span too long"),
                        ((0.0, 0.5), "too short")):
        with pytest.raises(InputError, match=words) as info:
            audio.load_reference(path, trim=trim)
        assert str(info.value).startswith(f"{path}: ")


def test_length_bounds_are_parameters(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.wav", _tone(2.0, 16000), 16000)
    with pytest.raises(InputError, match=r"too long .*expected <= 1.5 s, found 2.00 s"):
        audio.load_reference(path, max_seconds=1.5)
    with pytest.raises(InputError, match=r"too short .*expected >= 3 s, found 2.00 s"):
        audio.load_reference(path, min_seconds=3.0)
    assert audio.load_reference(path, min_seconds=2.0, max_seconds=2.0).seconds == 2.0  # bounds are inclusive


def test_stereo_44k_is_mixed_and_resampled(tmp_path: Path) -> None:
    sr, n = 44100, 44100 * 2
    left, right = _tone(2.0, sr, 0.4), _tone(2.0, sr, 0.2)
    path = _write(tmp_path / "st.wav", np.stack([left, right], 1), sr)
    ref = audio.load_reference(path)
    assert (ref.source_rate, ref.source_channels, ref.seconds) == (sr, 2, 2.0)
    assert ref.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ref.wave16k.dtype == ref.wave24k.dtype == np.float32
    assert ref.wave16k.shape == (32000,) and ref.wave24k.shape == (48000,)
    # the mean of the channels is a 0.3-amplitude 300 Hz tone; the resampler keeps its amplitude and phase
    for wave, rate in ((ref.wave16k, 16000), (ref.wave24k, 24000)):
        mid = slice(rate // 10, -rate // 10)
        np.testing.assert_allclose(wave[mid], _tone(2.0, rate, 0.3)[mid], atol=1e-4)


def test_48k_flac_and_16k_passthrough(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(48000 * 3 // 2)).astype(np.float32)
    soundfile.write(str(tmp_path / "a.flac"), x, 48000)  # FLAC: PCM_16 inside
    ref = audio.load_reference(tmp_path / "a.flac")
    assert (ref.source_rate, ref.source_channels, ref.seconds) == (48000, 1, 1.5)
    assert ref.wave16k.size == 24000 and ref.wave24k.size == 36000
    y = (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32)
    ref16 = audio.load_reference(_write(tmp_path / "b.wav", y, 16000))
    np.testing.assert_array_equal(ref16.wave16k, y)  # no resampling at 16 kHz
    assert ref16.wave24k.size == 48000


def _bandlimited_resample(x: np.ndarray, src: int, dst: int, cutoff: float) -> tuple[np.ndarray, int]:
    """Ideal band-limited resampling by DFT (no soxr): x zero-padded so that the period holds a whole number of
    samples at both rates, spectrum kept below ``cutoff`` Hz. Returns (y, padded length at dst)."""
    step = src // math.gcd(src, dst)
    n = -(-(x.size + src // 10) // step) * step
    m = n * dst // src
    spec = np.fft.rfft(np.pad(x, (0, n - x.size)))
    keep = int(cutoff * n / src)
    out = np.zeros(m // 2 + 1, complex)
    out[:keep] = spec[:keep] * (m / n)
    return np.fft.irfft(out, m), m


def _lowpass(y: np.ndarray, sr: int, cutoff: float, n: int) -> np.ndarray:
    spec = np.fft.rfft(np.pad(y, (0, n - y.size)))
    spec[int(cutoff * n / sr):] = 0
    return np.fft.irfft(spec, n)


def test_espeak_speech_resampled_against_an_ideal_resampler(tmp_path: Path) -> None:
    path = espeak_wav(tmp_path / "s.wav", "The quick brown fox jumps over the lazy dog, twice.")
    x, src = soundfile.read(str(path), dtype="float64")
    assert src == 22050 and x.ndim == 1
    ref = audio.load_reference(path)
    for wave, dst in ((ref.wave16k, 16000), (ref.wave24k, 24000)):
        assert wave.size == math.floor(x.size * dst / src + 0.5)  # soxr's length rule
        w = wave.astype(np.float64)
        # energy per second is preserved (espeak keeps almost nothing above 8 kHz)
        assert abs(np.sum(w ** 2) / dst / (np.sum(x ** 2) / src) - 1.0) < 5e-3
        # below 6 kHz the soxr output is the ideal band-limited resampling of the source
        ideal, m = _bandlimited_resample(x, src, dst, 6000.0)
        ours = _lowpass(w, dst, 6000.0, m)
        inner = slice(dst // 20, wave.size - dst // 20)
        assert np.abs(ours - ideal)[inner].max() < 1e-4  # measured: 6.3e-6 at 16 kHz, 2.6e-8 at 24 kHz


def test_resample_identity_and_lengths() -> None:
    x = np.random.default_rng(1).standard_normal(1001).astype(np.float32)
    y = audio.resample(x, 24000, 24000)
    np.testing.assert_array_equal(y, x)
    assert y is not x and y.dtype == np.float32
    assert audio.resample(x, 22050, 16000).size == 726  # round(1001 * 16000 / 22050) = round(726.35)
    assert audio.resample(x.astype(np.float64), 16000, 24000).dtype == np.float32


def test_write_wav_round_trip(tmp_path: Path) -> None:
    x = np.linspace(-1.2, 1.2, 2400, dtype=np.float32)
    out = tmp_path / "sub" / "deeper" / "o.wav"
    audio.write_wav(out, x, 24000)
    y, sr = soundfile.read(str(out), dtype="float32")
    info = soundfile.info(str(out))
    assert (sr, info.format, info.subtype, info.channels, info.frames) == (24000, "WAV", "PCM_16", 1, 2400)
    np.testing.assert_allclose(y, np.clip(x, -1, 1), atol=1.0 / 32767 + 1e-6)
    assert y.min() == -1.0 and y.max() == pytest.approx(32767 / 32768)  # clipped, not wrapped
    audio.write_wav(out, x[None, :], 16000)  # [1, N] is mono too
    assert soundfile.info(str(out)).frames == 2400
    with pytest.raises(ValueError, match="mono"):
        audio.write_wav(out, np.zeros((2, 10)), 16000)
    # written then loaded: the reference path reads our own output
    audio.write_wav(tmp_path / "tone.wav", _tone(1.5, 16000), 16000)
    np.testing.assert_allclose(audio.load_reference(tmp_path / "tone.wav").wave16k, _tone(1.5, 16000), atol=1 / 32767)
