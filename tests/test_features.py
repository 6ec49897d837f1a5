"""Feature parity against implementations we did not write (issue #13): Whisper log-mel vs openai-whisper, the
Matcha mel vs librosa's filters + torch.stft composed as Matcha-TTS does, the Kaldi fbank vs kaldi-native-fbank."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from packager import audio, features
from packager.components import fbank as fb
from tests.speech import espeak_wav

TEXT = "Voice packs let a game speak any line in the voice of a short recording."


@pytest.fixture(scope="module")
def signals(tmp_path_factory) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (16 kHz, 24 kHz) waves: espeak speech, white noise, a chirp."""
    ref = audio.load_reference(espeak_wav(tmp_path_factory.mktemp("f") / "s.wav", TEXT))
    rng = np.random.default_rng(5)
    out = {"speech": (ref.wave16k, ref.wave24k)}
    for name, fn in (("noise", lambda n, sr: 0.1 * rng.standard_normal(n)),
                     ("chirp", lambda n, sr: 0.5 * np.sin(2 * np.pi * (100 + 3000 * np.arange(n) / n) * np.arange(n) / sr))):
        out[name] = tuple(fn(int(2.37 * sr), sr).astype(np.float32) for sr in (16000, 24000))
    return out


def test_mel_filterbank_matches_whisper_and_librosa() -> None:
    import librosa
    import whisper.audio as wa

    ours = features.mel_filterbank(16000, 400, 128)
    shipped = np.load(Path(wa.__file__).parent / "assets" / "mel_filters.npz")["mel_128"]
    assert np.abs(ours - shipped).max() < 1e-6
    for sr, n_fft, n_mels in ((16000, 400, 128), (24000, 1920, 80), (16000, 400, 80)):
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=None)
        assert np.abs(features.mel_filterbank(sr, n_fft, n_mels) - ref).max() < 1e-6


def test_whisper_log_mel_matches_openai_whisper(signals) -> None:
    import whisper.audio as wa

    for name, (w16, _) in signals.items():
        ref = wa.log_mel_spectrogram(torch.from_numpy(w16), n_mels=128).numpy()
        ours = features.whisper_log_mel(w16)
        assert ours.shape == ref.shape == (128, w16.size // 160), name
        err = np.abs(ours - ref).max()
        assert err <= 1e-4, (name, err)  # measured: <= 5e-6


def _matcha_reference(w24: np.ndarray, dtype=torch.float64) -> np.ndarray:
    """Matcha-TTS's mel_spectrogram recipe, composed from librosa's filters and torch.stft (reference only).
    float64: in float32 torch.stft's own rounding reaches 3e-4 in quiet cells (the log amplifies it)."""
    import librosa

    y = torch.from_numpy(w24).to(dtype)[None]
    basis = torch.from_numpy(librosa.filters.mel(sr=24000, n_fft=1920, n_mels=80, fmin=0, fmax=None,
                                                 dtype=np.float64)).to(dtype)
    y = torch.nn.functional.pad(y.unsqueeze(1), (720, 720), mode="reflect").squeeze(1)
    spec = torch.stft(y, 1920, hop_length=480, win_length=1920, window=torch.hann_window(1920, dtype=dtype), center=False,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    spec = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
    return torch.log(torch.clamp(basis @ spec, min=1e-5))[0].numpy()


def test_matcha_mel_matches_librosa_torch_stft(signals) -> None:
    for name, (_, w24) in signals.items():
        ref = _matcha_reference(w24)
        ours = features.matcha_mel(w24)
        assert ours.shape == ref.shape == (80, w24.size // 480), name
        err = np.abs(ours - ref).max()
        assert err <= 1e-4, (name, err)
        # (the same recipe in float32 differs from both by up to 3e-4 on speech and 7e-3 in the chirp's
        # near-empty bands: torch.stft's float32 rounding, which the log amplifies in quiet cells)


def _knf_fbank(w16: np.ndarray) -> np.ndarray:
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = 16000
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = True
    opts.frame_opts.window_type = "povey"
    opts.frame_opts.preemph_coeff = 0.97
    opts.frame_opts.remove_dc_offset = True
    opts.frame_opts.round_to_power_of_two = True
    opts.mel_opts.num_bins = 80
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = 0.0
    opts.use_energy = False
    opts.use_log_fbank = True
    opts.use_power = True
    f = knf.OnlineFbank(opts)
    f.accept_waveform(16000, w16.astype(np.float32).tolist())  # kaldi-native-fbank scales nothing: [-1, 1] in
    f.input_finished()
    return np.stack([np.asarray(f.get_frame(i)) for i in range(f.num_frames_ready)])


def test_kaldi_fbank_matches_kaldi_native_fbank(signals) -> None:
    """kaldi-native-fbank computes in float32: in near-silent cells (log energy < -10, or 10 below the frame's
    loudest band) its own rounding dominates (measured up to 4.9e-4, e.g. at log energy -15.7 in espeak's pauses).
    Everywhere else our float64 reference is within 1e-4, and the float32 graph within 1e-3."""
    graph = fb.FbankGraph().eval()
    for name, (w16, _) in signals.items():
        ref = _knf_fbank(w16)
        ours64 = fb.kaldi_fbank_reference(w16)
        assert ours64.shape == ref.shape == (fb.num_frames(w16.size), 80), name
        audible = (ref > -10.0) & (ref > ref.max(axis=1, keepdims=True) - 10.0)  # within float32's reach
        err64 = np.abs(ours64 - ref)
        # a pure sweep puts all energy in one or two FFT bins: measured 1.8e-4 there (speech, noise <= 1e-4)
        assert err64[audible].max() <= (5e-4 if name == "chirp" else 1e-4), (name, err64[audible].max())
        assert err64.max() <= 2e-2, (name, err64.max())  # near-empty bands of the sweep: float32 noise (1.1e-2)
        with torch.no_grad():
            _, raw = graph(torch.from_numpy(w16)[None])
        err32 = np.abs(raw[0].numpy() - ref)
        assert err32[audible].max() <= 1e-3, (name, err32[audible].max())


def test_reference_is_fast_enough(signals) -> None:
    """Not a timing test: the features of 30 s are computed from one call each (shape check at full length)."""
    w16 = np.tile(signals["speech"][0], 30 * 16000 // signals["speech"][0].size + 1)[:30 * 16000]
    assert features.whisper_log_mel(w16).shape == (128, 3000)
