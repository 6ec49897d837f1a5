"""Reading reference recordings: mono mix, soxr resampling to 16/24 kHz, WAV writing (packager/audio.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from packager import audio


def test_stereo_44k_is_mixed_and_resampled(tmp_path: Path) -> None:
    sr, n = 44100, 44100 * 2
    t = np.arange(n) / sr
    left, right = 0.4 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 300 * t)
    soundfile.write(tmp_path / "st.wav", np.stack([left, right], 1).astype(np.float32), sr, subtype="FLOAT")
    ref = audio.load_reference(tmp_path / "st.wav")
    assert (ref.source_rate, ref.source_channels) == (sr, 2) and abs(ref.seconds - 2.0) < 1e-9
    assert ref.wave16k.dtype == np.float32 and ref.wave16k.size == 32000 and ref.wave24k.size == 48000
    # the mean of the channels: a 0.3-amplitude 300 Hz tone, energy preserved by the resampler
    mid = ref.wave24k[4800:-4800]
    assert abs(np.sqrt(2 * np.mean(mid.astype(np.float64) ** 2)) - 0.3) < 1e-3


def test_48k_flac_and_16k_passthrough(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(48000 * 3 // 2)).astype(np.float32)
    soundfile.write(tmp_path / "a.flac", x, 48000)
    ref = audio.load_reference(tmp_path / "a.flac")
    assert ref.wave16k.size == 24000 and ref.wave24k.size == 36000
    y = (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32)
    soundfile.write(tmp_path / "b.wav", y, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(audio.load_reference(tmp_path / "b.wav").wave16k, y)  # no resampling at 16 kHz


def test_write_wav_round_trip(tmp_path: Path) -> None:
    x = np.linspace(-1.2, 1.2, 2400, dtype=np.float32)
    audio.write_wav(tmp_path / "sub" / "o.wav", x, 24000)
    y, sr = soundfile.read(tmp_path / "sub" / "o.wav", dtype="float32")
    info = soundfile.info(str(tmp_path / "sub" / "o.wav"))
    assert sr == 24000 and info.subtype == "PCM_16" and info.channels == 1
    np.testing.assert_allclose(y, np.clip(x, -1, 1), atol=1.0 / 32767 + 1e-6)
