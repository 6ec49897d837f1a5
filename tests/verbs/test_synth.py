"""`packager synth --voice` as a command-line tool on the tiny preset bundle: where the text
comes from, what may be overwritten, progress, the deprecated spellings, the tiny preset's length rule and skipped
text pieces."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from packager.contract import manifest as B
from packager.verbs import synth as synth_cli
from packager.runtime import tts
from packager.runtime import llm_generate
from packager.runtime.pipeline import bundle_tokenizer, open_components
from tests.conftest import run_cli
from tests.speech import espeak_wav

TRANSCRIPT = "The quick brown fox jumps over the lazy dog near the river bank."
ONE = "The old fisherman walked slowly towards the harbour at dawn."
FOUR = (ONE + " My sister carefully painted a forgotten castle while it was raining. A small dog quietly watched the "
        "busy market square. The orchestra forgot all about an enormous green kite.")
SAMPLES_PER_TOKEN = 960  # token_mel_ratio 2 x 480 samples per mel frame


@pytest.fixture(scope="module")
def voice(tiny_bundle: Path, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("synth_cli")
    out = d / "fox.voice"
    code, _, err = run_cli("voice", tiny_bundle, "--wav", espeak_wav(d / "ref.wav", TRANSCRIPT), "--transcript",
                           TRANSCRIPT, "--out", out)
    assert code == 0, err
    return out


def synth(bundle: Path, voice: Path, *args) -> tuple[int, str, str]:
    return run_cli("synth", bundle, "--voice", voice, *args)


def frames(wav: Path) -> np.ndarray:
    data, sr = soundfile.read(wav, dtype="int16")
    assert sr == 24000 and data.ndim == 1
    return data


@pytest.fixture
def generations(monkeypatch) -> list:
    """Every Generation the host loop returns during the test."""
    seen: list = []
    real = llm_generate.generate

    def record(*a, **kw):
        seen.append(real(*a, **kw))
        return seen[-1]

    monkeypatch.setattr(llm_generate, "generate", record)
    return seen


# ---------------------------------------------------------------- where the text comes from
def test_text_from_stdin_and_from_a_file_is_the_same_speech(tiny_bundle, voice, tmp_path, monkeypatch):
    text = "Grüße aus Köln. Hello again."
    code, _, err = synth(tiny_bundle, voice, "--text", text, "-o", tmp_path / "arg.wav")
    assert code == 0, err
    want = frames(tmp_path / "arg.wav")
    assert want.size > 0
    (tmp_path / "t.txt").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8") + b"\n")  # BOM + newline: same text
    code, _, err = synth(tiny_bundle, voice, "--text-file", tmp_path / "t.txt", "-o", tmp_path / "file.wav")
    assert code == 0, err
    np.testing.assert_array_equal(frames(tmp_path / "file.wav"), want)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8")), encoding="utf-8"))
    code, _, err = synth(tiny_bundle, voice, "--text", "-", "-o", tmp_path / "stdin.wav")
    assert code == 0, err
    np.testing.assert_array_equal(frames(tmp_path / "stdin.wav"), want)


def test_text_source_mistakes(tiny_bundle, voice, tmp_path, monkeypatch):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Un café au lait, s'il vous plaît.".encode("latin-1"))
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    cases = [
        (["--text-file", latin1], [str(latin1), "not UTF-8", "0xe9"]),
        (["--text-file", tmp_path / "missing.txt"], ["missing.txt", "not found"]),
        (["--text-file", tmp_path], [str(tmp_path), "is a folder"]),
        (["--text-file", tmp_path / "empty.txt"], ["--text-file", "empty text"]),
        (["--text", "Hi.", "--text-file", latin1], ["--text-file", "exactly one of"]),
        ([], ["--text", "--text-file"]),
    ]
    for args, words in cases:
        code, out, err = synth(tiny_bundle, voice, *args, "-o", tmp_path / "x.wav")
        assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)
        assert all(w in err for w in words), (args, err)
        assert not (tmp_path / "x.wav").exists() and not list(tmp_path.glob(".x.wav*")) and out == ""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9"), encoding="utf-8"))
    code, _, err = synth(tiny_bundle, voice, "--text", "-", "-o", tmp_path / "x.wav")
    assert code == 2 and "stdin" in err and "not UTF-8" in err and not (tmp_path / "x.wav").exists(), err


# ---------------------------------------------------------------- what may be written
def test_overwrite_rules(tiny_bundle, voice, tmp_path):
    wav = tmp_path / "out.wav"
    assert synth(tiny_bundle, voice, "--text", "Hello.", "-o", wav)[0] == 0
    first = wav.read_bytes()
    code, _, err = synth(tiny_bundle, voice, "--text", "Hello there, friend.", "-o", wav)  # exists: no --force
    assert code == 2 and str(wav) in err and "--force" in err and len(err.strip().splitlines()) == 1, err
    assert wav.read_bytes() == first
    code, _, err = synth(tiny_bundle, voice, "--text", "Hello there, friend.", "-o", wav, "--force")
    assert code == 0, err
    assert wav.read_bytes() != first and frames(wav).size > (len(first) - 44) // 2
    notes = tmp_path / "notes.wav"  # a text file with an audio name is never replaced
    notes.write_text("my notes\n")
    npz_text = tmp_path / "keep.npz"
    npz_text.write_text("not an archive\n")
    for args, target in ((["-o", notes, "--force"], notes), (["-o", tmp_path / "new.wav", "--dump-npz", npz_text,
                                                               "--force"], npz_text)):
        code, _, err = synth(tiny_bundle, voice, "--text", "Hello.", *args)
        assert code == 2 and str(target) in err and "even with --force" in err, err
        assert target.read_text() == ({notes: "my notes\n", npz_text: "not an archive\n"}[target])
        assert not (tmp_path / "new.wav").exists()
    for args, words in (((["-o", tmp_path]), ["is a folder", str(tmp_path / "speech.wav")]),
                        (["-o", notes / "x.wav"], [f"{notes} is not a folder"]),
                        (["-o", tmp_path / "out.mp3"], [".wav", "out.mp3"]),
                        ([], ["nothing to write"])):
        code, _, err = synth(tiny_bundle, voice, "--text", "Hello.", *args, "--force")
        assert code == 2 and all(w in err for w in words) and len(err.strip().splitlines()) == 1, (args, err)


def test_deprecated_spellings_still_work(tiny_bundle, voice, tmp_path):
    wav, npz = tmp_path / "old.wav", tmp_path / "old.npz"
    code, out, err = synth(tiny_bundle, voice, "--text", "Hello there.", "--wav", wav, "--output", npz)
    assert code == 0, err
    assert f"note: --wav is deprecated: use -o {wav}" in err
    assert f"--output {npz} (a .npz name) is deprecated" in err and f"--dump-npz {npz}" in err
    with np.load(npz) as z:
        assert z["speech"].shape == (1, frames(wav).size)
        assert z["piece_token_counts"].sum() == z["speech_tokens"].shape[1]
    code, _, err = synth(tiny_bundle, voice, "--text", "Hi.", "--wav", tmp_path / "a.wav", "-o", tmp_path / "b.wav")
    assert code == 2 and "given twice" in err and not (tmp_path / "a.wav").exists()


# ---------------------------------------------------------------- progress
def test_progress_lines_and_quiet(tiny_bundle, voice, tmp_path):
    code, out, err = synth(tiny_bundle, voice, "--text", FOUR, "-o", tmp_path / "p.wav", "--progress", "plain")
    assert code == 0, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("note:")]  # e.g. no wetext
    assert all(line.startswith("[") and " s] " in line for line in lines), err
    pieces = [line for line in lines if " piece " in line and "RTF" in line]
    assert len(pieces) == 2 and 'piece 1/2 "The old fisherman walked slowly towards…": ' in pieces[0], err
    assert "speech tokens" in out and "RTF" in out
    code, out, err = synth(tiny_bundle, voice, "--text", FOUR, "-o", tmp_path / "q.wav", "--quiet")
    assert code == 0 and out == "" and err == ""
    np.testing.assert_array_equal(frames(tmp_path / "q.wav"), frames(tmp_path / "p.wav"))


# ---------------------------------------------------------------- the tiny preset speaks what it is given
def test_tiny_preset_speech_grows_with_the_text(tiny_bundle, voice, tmp_path, generations):
    """Every piece decodes exactly upstream's min_len = 2 x its text tokens (the stop range masked until then), so
    4 sentences give more audio than 1, and the audio is 960 samples per speech token (after the silent filter)."""
    lengths = {}
    for name, text in (("one", ONE), ("four", FOUR), ("zh", "今天天气很好。我们去公园散步吧。晚上一起吃饭。明天见。")):
        del generations[:]
        wav, npz = tmp_path / f"{name}.wav", tmp_path / f"{name}.npz"
        code, _, err = synth(tiny_bundle, voice, "--text", text, "-o", wav, "--dump-npz", npz)
        assert code == 0, err
        assert generations and all(g.stop_token == -1 and len(g.tokens) == g.min_len == g.max_len
                                   for g in generations)
        with np.load(npz) as z:
            counts = z["piece_token_counts"]
        assert counts.tolist() == [len(g.tokens_for_flow) for g in generations]
        lengths[name] = frames(wav).size
        assert lengths[name] == SAMPLES_PER_TOKEN * counts.sum() > 0
    assert len(generations) == 1  # the Chinese paragraph is one piece
    assert lengths["four"] > 3 * lengths["one"]


def test_length_rule_leaves_checkpoint_bundles_to_upstream():
    assert synth_cli.length_rule({"source": {"kind": "checkpoint"}}, "auto") == "llm"
    assert synth_cli.length_rule({"source": {"kind": "preset", "preset": "tiny"}}, "auto") == "min_len"
    assert synth_cli.length_rule({"source": {"kind": "preset"}}, "llm") == "llm"


# ---------------------------------------------------------------- a piece where the LLM stops at once
def _stop_at_once(monkeypatch, which) -> list:
    """The host loop returns no token (stopped by EOS at step 0) for the calls whose index is in ``which``."""
    real, calls = llm_generate.generate, []

    def generate(runners, constants, *a, **kw):
        calls.append(len(calls))
        if calls[-1] in which:
            eos = constants["special_ids"]["eos"]
            return llm_generate.Generation([], eos, kw.get("min_len") or 0, kw.get("max_len") or 0, [])
        return real(runners, constants, *a, **kw)

    monkeypatch.setattr(llm_generate, "generate", generate)
    return calls


def _pieces(bundle: Path, text: str) -> list[str]:
    manifest = B.open_manifest(bundle)
    _, constants, data = open_components(bundle, manifest, ["llm"], run=())
    return tts.text_pieces(bundle_tokenizer(constants["llm"], data), text)


def test_a_piece_without_speech_is_skipped_and_named(tiny_bundle, voice, tmp_path, monkeypatch):
    text = " ".join([FOUR] * 2)
    pieces = _pieces(tiny_bundle, text)
    assert len(pieces) >= 3
    calls = _stop_at_once(monkeypatch, {1})
    wav, npz = tmp_path / "s.wav", tmp_path / "s.npz"
    code, out, err = synth(tiny_bundle, voice, "--text", text, "-o", wav, "--dump-npz", npz, "--quiet")
    assert code == 0, err
    assert len(calls) == len(pieces)
    assert err.count("warning:") == 1 and "text piece 2" in err and "stop token" in err and "--seed" in err, err
    assert f'"{tts.preview(pieces[1])}"' in err, err  # its first words
    with np.load(npz) as z:
        counts = z["piece_token_counts"].tolist()
    assert counts[1] == 0 and all(c > 0 for k, c in enumerate(counts) if k != 1) and len(counts) == len(pieces)
    assert frames(wav).size == SAMPLES_PER_TOKEN * sum(counts)
    assert out == ""  # --quiet: no summary, the warning still shows

    _stop_at_once(monkeypatch, {0, 1, 2, 3})  # every piece: nothing to write
    none = tmp_path / "none.wav"
    code, _, err = synth(tiny_bundle, voice, "--text", ONE, "-o", none)
    assert code == 2 and "no speech tokens for any of the 1 text piece" in err and "--seed" in err, err
    assert not none.exists() and not list(tmp_path.glob(".none.wav*"))
