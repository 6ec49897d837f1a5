"""Voice packs (`packager voice`) and text-to-speech (`packager synth --voice --text`) on the tiny preset bundle."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from packager.frontend import features
from packager.runtime import tts
from packager.frontend import voicepack
from packager.onnx.session import run_onnx, session
from packager.build.stages.convert import target_model
from packager.runtime.pipeline import Pipeline, stream_tokens, synthesize
from packager.contract.manifest import load_manifest
from tests.conftest import run_cli
from tests.speech import espeak_wav

TRANSCRIPT = "The quick brown fox jumps over the lazy dog near the river bank."


@pytest.fixture(scope="module")
def ref_wav(tmp_path_factory) -> Path:
    return espeak_wav(tmp_path_factory.mktemp("ref") / "ref.wav", TRANSCRIPT)


@pytest.fixture(scope="module")
def voice(tiny_bundle: Path, ref_wav: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("voice") / "fox.voice"
    npz = out.parent / "fox.npz"
    code, stdout, err = run_cli("voice", tiny_bundle, "--wav", ref_wav, "--transcript", TRANSCRIPT, "--out", out,
                                "--dump-npz", npz)
    assert code == 0, err
    assert "speech tokens" in stdout
    return out


def test_voice_pack_contents(voice: Path, ref_wav: Path, tiny_bundle: Path) -> None:
    pack = voicepack.load(voice)
    manifest = load_manifest(tiny_bundle)
    assert pack.model_id == manifest["source"]["model_id"] and pack.name == "fox"
    seconds = soundfile.info(str(ref_wav)).duration
    tokens, feat = pack.arrays["prompt_speech_token"], pack.arrays["prompt_speech_feat"]
    # 25 tokens/s and 50 mel frames/s, trimmed 2:1
    assert abs(tokens.shape[1] - 25 * seconds) <= 2, (tokens.shape, seconds)
    assert feat.shape == (1, 2 * tokens.shape[1], 80)
    assert len(np.unique(tokens)) > 3  # the tiny tokenizer gives varied ids on real speech
    # prompt text: the bundle's tokenizer on the upstream convention
    tok = Pipeline.open(tiny_bundle).tokenizer()
    want = tok.encode(voicepack.SYSTEM_PROMPT + voicepack.ENDOFPROMPT + TRANSCRIPT)
    assert pack.arrays["prompt_text"][0].tolist() == want
    assert manifest_eop(manifest) in want
    # the embedding is what the bundle's own campplus graphs compute from the 16 kHz audio
    from packager.frontend import audio

    ref = audio.load_reference(ref_wav)
    graphs = {g["name"]: g for c in manifest["components"] for g in c["graphs"]}
    fb = run_onnx(session(target_model(tiny_bundle / graphs["campplus_fbank"]["file"], graphs["campplus_fbank"])),
                  {"waveform": ref.wave16k[None]})["features"]
    emb = run_onnx(session(target_model(tiny_bundle / graphs["campplus"]["file"], graphs["campplus"])),
                   {"input": fb})["output"]
    np.testing.assert_array_equal(pack.arrays["embedding"], emb)
    # the prompt mel is the Matcha mel of the 24 kHz audio, cut to 2 L frames
    np.testing.assert_array_equal(feat[0], features.matcha_mel(ref.wave24k).T[:feat.shape[1]])
    meta = json.loads((voice / "voice.json").read_text())
    assert meta["reference"]["file_name"] == "ref.wav" and "/" not in json.dumps(meta["reference"]["file_name"])


def manifest_eop(manifest: dict) -> int:
    llm = next(c for c in manifest["components"] if c["name"] == "llm")
    return int(llm["constants"]["text_tokenizer"]["endofprompt_id"])


def test_dump_npz_uses_upstream_names(voice: Path) -> None:
    with np.load(voice.parent / "fox.npz") as z:
        names = sorted(z.files)
        pack = voicepack.load(voice)
        assert names == sorted(["prompt_text", "llm_prompt_speech_token", "flow_prompt_speech_token",
                                "prompt_speech_feat", "llm_embedding", "flow_embedding"])
        np.testing.assert_array_equal(z["flow_prompt_speech_token"], pack.arrays["prompt_speech_token"])
        np.testing.assert_array_equal(z["llm_embedding"], pack.arrays["embedding"])


def test_voice_is_deterministic(tiny_bundle: Path, ref_wav: Path, voice: Path, tmp_path: Path) -> None:
    again = tmp_path / "fox.voice"
    assert run_cli("voice", tiny_bundle, "--wav", ref_wav, "--transcript", TRANSCRIPT, "--out", again)[0] == 0
    for f in sorted(p.name for p in voice.iterdir()):
        assert (again / f).read_bytes() == (voice / f).read_bytes(), f


def test_synth_text_zero_shot(tiny_bundle: Path, voice: Path, tmp_path: Path) -> None:
    wav, npz = tmp_path / "out.wav", tmp_path / "out.npz"
    code, out, err = run_cli("synth", tiny_bundle, "--voice", voice, "--text", "Hello there. I have 3 apples!",
                             "--wav", wav, "--output", npz)
    assert code == 0, err
    data, sr = soundfile.read(wav, dtype="float32")
    assert sr == 24000 and data.ndim == 1 and data.size > 0 and np.abs(data).max() > 1e-3
    with np.load(npz) as z:
        assert z["speech"].shape[1] == data.size


def test_modes_build_upstream_llm_inputs(tiny_bundle: Path, voice: Path) -> None:
    pipe = Pipeline.open(tiny_bundle)
    tok = pipe.tokenizer()
    pack = voicepack.load(voice)
    text = "Good morning, friend."
    (piece, zs), = tts.frontend_cases(tok, pack, text)
    assert zs["prompt_text"][0].tolist() == pack.arrays["prompt_text"][0].tolist()
    assert zs["llm_prompt_speech_token"].shape == pack.arrays["prompt_speech_token"].shape
    assert zs["text"][0].tolist() == tok.encode(piece)
    (_, ins), = tts.frontend_cases(tok, pack, text, mode="instruct", instruct="Please speak slowly.")
    assert ins["prompt_text"][0].tolist() == tok.encode("You are a helpful assistant. Please speak slowly.<|endofprompt|>")
    assert ins["llm_prompt_speech_token"].shape == (1, 0)
    (xl_piece, xl), = tts.frontend_cases(tok, pack, text, mode="cross_lingual")
    assert xl["prompt_text"].shape == (1, 0) and xl["llm_prompt_speech_token"].shape == (1, 0)
    assert xl_piece == "You are a helpful assistant.<|endofprompt|>" + piece
    for case in (zs, ins, xl):  # the flow always gets the voice
        np.testing.assert_array_equal(case["flow_prompt_speech_token"], pack.arrays["prompt_speech_token"])
        np.testing.assert_array_equal(case["prompt_speech_feat"], pack.arrays["prompt_speech_feat"])
        np.testing.assert_array_equal(case["flow_embedding"], pack.arrays["embedding"])


@pytest.mark.parametrize("extra", [["--instruct", "Please speak as fast as you can."], ["--cross-lingual"]])
def test_synth_other_modes(tiny_bundle: Path, voice: Path, tmp_path: Path, extra: list[str]) -> None:
    wav = tmp_path / "m.wav"
    code, _, err = run_cli("synth", tiny_bundle, "--voice", voice, "--text", "A short sentence to speak.",
                           "--wav", wav, *extra)
    assert code == 0, err
    assert soundfile.info(str(wav)).frames > 0


def test_stream_writes_chunks_and_matches_post_hoc_schedule(tiny_bundle: Path, voice: Path, tmp_path: Path) -> None:
    pipe = Pipeline.open(tiny_bundle)
    pack = voicepack.load(voice)
    (_, case), = tts.frontend_cases(pipe.tokenizer(), pack, "This sentence is long enough to need a few chunks.")
    chunks: list[np.ndarray] = []
    live = synthesize(pipe, case, stream=True, on_audio=chunks.append)
    post = stream_tokens(pipe, live["speech_tokens"], case)
    np.testing.assert_array_equal(live["speech"], post["speech"])
    np.testing.assert_array_equal(np.concatenate(chunks, axis=1), live["speech"])
    wav = tmp_path / "s.wav"
    code, out, err = run_cli("synth", tiny_bundle, "--voice", voice, "--wav", wav, "--stream", "--length", "llm",
                             "--text", "This sentence is long enough to need a few chunks.")
    assert code == 0, err
    assert "first audio after" in out
    np.testing.assert_allclose(soundfile.read(wav, dtype="float32")[0], live["speech"][0], atol=1 / 32767)


# ---------------------------------------------------------------- bad input
def _tone(path: Path, seconds: float, sr: int = 22050, scale: float = 0.3) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    soundfile.write(path, (scale * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    return path


def _bad_wavs(tmp: Path) -> dict[str, tuple[Path, str]]:
    (tmp / "text.wav").write_text("this is not audio\n")
    soundfile.write(tmp / "empty.wav", np.zeros(0, np.float32), 22050)
    soundfile.write(tmp / "zeros.wav", np.zeros(22050 * 2, np.float32), 22050)
    nan = np.sin(np.arange(22050 * 2) / 10).astype(np.float32)
    nan[100] = np.nan
    soundfile.write(tmp / "nan.wav", nan, 22050, subtype="FLOAT")
    return {"missing": (tmp / "nope.wav", "not found"), "not_audio": (tmp / "text.wav", ""),
            "empty": (tmp / "empty.wav", ""), "all_zero": (tmp / "zeros.wav", ""), "nan": (tmp / "nan.wav", ""),
            "8khz": (_tone(tmp / "8k.wav", 2.0, sr=8000), "16"), "short": (_tone(tmp / "short.wav", 0.5), "1"),
            "long": (_tone(tmp / "long.wav", 31.0, sr=16000), "30")}


def test_voice_bad_input(tiny_bundle: Path, tmp_path: Path) -> None:
    for name, (wav, hint) in _bad_wavs(tmp_path).items():
        out = tmp_path / f"{name}.voice"
        code, _, err = run_cli("voice", tiny_bundle, "--wav", wav, "--transcript", "words", "--out", out)
        assert code == 2, (name, err)
        assert str(wav) in err and "Traceback" not in err and hint in err, (name, err)
        assert len(err.strip().splitlines()) == 1, (name, err)
        assert not out.exists() and not list(tmp_path.glob(f".{name}.voice*")), name
    ok = _tone(tmp_path / "ok.wav", 2.0)
    code, _, err = run_cli("voice", tiny_bundle, "--wav", ok, "--transcript", "  ", "--out", tmp_path / "t.voice")
    assert code == 2 and "--transcript" in err and not (tmp_path / "t.voice").exists()


def test_voice_from_a_span_of_a_long_recording(tiny_bundle: Path, ref_wav: Path, tmp_path: Path) -> None:
    """A 40 s recording is refused with a suggested --trim span around the speech; that span makes the voice pack."""
    speech, sr = soundfile.read(ref_wav, dtype="float32")
    silence = np.zeros(int(18 * sr), np.float32)
    long = tmp_path / "long.wav"
    soundfile.write(long, np.concatenate([silence, speech, np.zeros(int(22 * sr) - speech.size, np.float32)]), sr)
    args = ["voice", tiny_bundle, "--wav", long, "--transcript", TRANSCRIPT, "--out", tmp_path / "t.voice"]
    code, _, err = run_cli(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "give the transcript of that part only" in err, err
    span = err.split("--trim ")[-1].split(" ")[0]
    start, end = (float(v) for v in span.split("-"))
    assert 17.8 <= start < end <= 18.2 + speech.size / sr and end - start > 1.0, (start, end)  # around the speech
    assert not (tmp_path / "t.voice").exists()
    code, out, err = run_cli(*args, "--trim", span)
    assert code == 0, err
    meta = json.loads((tmp_path / "t.voice" / "voice.json").read_text())
    assert abs(meta["reference"]["seconds"] - (end - start)) < 1e-3 and f"({start:g}-{end:g} s of long.wav)" in out
    code, _, err = run_cli(*args, "--trim", "35-45", "--force")
    assert code == 2 and "--trim" in err and "not inside the recording" in err


def test_synth_bad_voice_and_text(tiny_bundle: Path, voice: Path, tmp_path: Path) -> None:
    def synth(v: Path, text: str = "Hello.") -> tuple[int, str]:
        wav = tmp_path / "x.wav"
        code, _, err = run_cli("synth", tiny_bundle, "--voice", v, "--text", text, "--wav", wav)
        assert not wav.exists() and not list(tmp_path.glob(".x.wav*"))
        assert "Traceback" not in err and (code == 0 or len(err.strip().splitlines()) == 1), err
        return code, err

    assert synth(voice, "")[0] == 2
    code, err = synth(voice, " ?!… ,. ")
    assert code == 2 and "--text" in err
    code, err = synth(tmp_path / "missing.voice")
    assert code == 2 and "missing.voice" in err
    other = tmp_path / "other.voice"
    shutil.copytree(voice, other)
    meta = json.loads((other / "voice.json").read_text())
    meta["model"]["model_id"] = "0" * 64
    (other / "voice.json").write_text(json.dumps(meta))
    code, err = synth(other)
    assert code == 2 and "another model" in err
    changed = tmp_path / "changed.voice"
    shutil.copytree(voice, changed)
    data = bytearray((changed / "embedding.npy.bytes").read_bytes())
    data[-1] ^= 1
    (changed / "embedding.npy.bytes").write_bytes(bytes(data))
    code, err = synth(changed)
    assert code == 2 and "embedding.npy.bytes" in err and "sha256" in err
    nofield = tmp_path / "nofield.voice"
    shutil.copytree(voice, nofield)
    meta = json.loads((nofield / "voice.json").read_text())
    del meta["prompt"]
    (nofield / "voice.json").write_text(json.dumps(meta))
    code, err = synth(nofield)
    assert code == 2 and "prompt" in err


def _rewrite_array(pack: Path, name: str, arr: np.ndarray) -> None:
    """Replace one array and its voice.json entry (size, sha256, shape), as a hand edit that keeps the pack valid."""
    import hashlib
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    data = buf.getvalue()
    meta = json.loads((pack / "voice.json").read_text())
    entry = next(e for e in meta["arrays"] if e["name"] == name)
    (pack / entry["file"]).write_bytes(data)
    entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), shape=list(arr.shape))
    (pack / "voice.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("name, edit, key", [
    ("embedding", lambda a: np.zeros((1, a.shape[1] + 1), np.float32), "embedding"),
    ("prompt_speech_token", lambda a: np.full_like(a, 10_000), "prompt_speech_token"),
    ("prompt_text", lambda a: np.full_like(a, 1 << 20), "prompt_text"),
])
def test_hand_edited_pack_that_does_not_fit_the_bundle_is_refused(tiny_bundle: Path, voice: Path, tmp_path: Path,
                                                                  name: str, edit, key: str) -> None:
    pack = tmp_path / "edited.voice"
    shutil.copytree(voice, pack)
    _rewrite_array(pack, name, edit(voicepack.load(voice).arrays[name]))
    voicepack.load(pack)  # still a well-formed pack
    wav = tmp_path / "x.wav"
    code, _, err = run_cli("synth", tiny_bundle, "--voice", pack, "--text", "Hello.", "--wav", wav)
    assert code == 2 and key in err and "Traceback" not in err and not wav.exists(), err
