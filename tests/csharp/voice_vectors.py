"""Vectors for the C# voice packs and text synthesis (tests/csharp/test_voice.py; tests/csharp/cs/VoiceTests.cs).

``write_voice_vectors(out, bundle, voice)`` writes, under ``out``, and returns ``index.json``'s content:

* ``frontend``: texts x the three modes (zero-shot, instruct with varied instructions, cross-lingual) through
  ``packager.runtime.tts.frontend_cases(..., use_wetext=False)``: the pieces, each piece's text ids, prompt_text and LLM
  prompt speech tokens, or Python's error (empty / punctuation-only text, empty instruction, a number too long to
  spell out). C# ``Synthesizer.BuildCases`` must reproduce them exactly, errors included;
* ``packs``: copies of the voice pack, most of them broken in one way (a changed array byte, a missing field, a
  wrong format_version, an extra array, a path with '/', a symbolic link, frames != ratio x tokens, ...) and a few
  that are fine, each with ``packager.frontend.voicepack.load``'s verdict (and ``check_model``'s against the bundle): C#
  ``VoicePack.Load`` / ``CheckModel`` must give the same verdicts;
* ``speak``: whole ``tts.speak`` runs over the bundle's graphs on onnxruntime, every graph call recorded (as in
  tests/csharp/host_vectors.py) with the speech: C# ``Synthesizer.Synthesize(text, voice, ...)`` replays them
  (inputs bit for bit) and must give the same speech, bit for bit.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from packager.runtime import tts
from packager.frontend import voicepack
from packager.contract.errors import PackagerError
from packager.runtime.pipeline import Pipeline
from packager.contract.manifest import load_manifest
from tests.csharp.host_vectors import Recorder, Store

MODES = ("zero_shot", "instruct", "cross_lingual")
LONG_EN = ("The children played in the park until it was dark, and then they ran home for dinner with their "
           "parents. We walked along the river and talked about the weather, the news and the long summer holidays "
           "that were coming. She opened the window, looked at the clouds and said that it would probably rain in "
           "the afternoon. My brother likes to read books about history, science and travel; my sister prefers "
           "music and painting. Good night!")
LONG_ZH = ("今天早上我们去了公园，看到很多人在跑步和散步。天气非常好，阳光明媚，微风轻轻地吹着。"
           "中午我们在湖边吃了午饭，有面包、水果和热茶。下午大家一起划船，孩子们玩得很开心。"
           "晚上回家的时候，每个人都觉得有点累，但是心情非常愉快。我们约好下个星期再来一次。")
TEXTS = [
    "Hello from Unity.",
    "Hello from Unity",
    "  Leading and trailing spaces.  ",
    "I have 3 apples and 12 oranges.",
    "The year 2024 was long; 1000000 people came!",
    "Call me at 555 0199?",
    LONG_EN,
    'He said "Stop." Then he left.',
    "What?! Really... yes.",
    "Line one.\nLine two.",
    "Tabs\tand\u00a0non-breaking spaces, too.",
    "Emoji \U0001F600 are symbols.",
    "Ünïcödé façade, naïve café.",
    "Mixed, commas, without, end",
    "A",
    "123",
    "Arabic-Indic digit \u0663 and superscript \u00b2.",
    "Text with <|endofprompt|> inside it.",
    "<|en|>Language tag stays raw",
    "你好，世界。今天天气很好。",
    "我有3个苹果。",
    LONG_ZH,
    "中文 and English 混合 text.",
    "面积是10m²。",
    "（括号）【方括号】`反引号`——破折号 - 结束",
    "逗号结尾，，、",
    "...",
    "",
    "   ",
    "!!! ??? ...",
    "1" * 40,
]
INSTRUCTIONS = ["Please speak slowly.", "  Speak like a pirate.  ",
                "You are a helpful assistant. Talk fast.<|endofprompt|>", "请用广东话说。"]
EMPTY_INSTRUCTION_TEXT = "Hello from Unity."  # + instruct "" and "   ": both errors


def _ids(a: np.ndarray) -> list[int]:
    return [int(x) for x in np.asarray(a).reshape(-1)]


def frontend_vectors(tok, pack: voicepack.VoicePack) -> list[dict[str, Any]]:
    out = []
    runs = [(t, m, INSTRUCTIONS[i % len(INSTRUCTIONS)] if m == "instruct" else None)
            for i, t in enumerate(TEXTS) for m in MODES]
    runs += [(EMPTY_INSTRUCTION_TEXT, "instruct", ""), (EMPTY_INSTRUCTION_TEXT, "instruct", "   ")]
    flow = {"flow_prompt_speech_token": pack.arrays["prompt_speech_token"],
            "prompt_speech_feat": pack.arrays["prompt_speech_feat"], "llm_embedding": pack.arrays["embedding"],
            "flow_embedding": pack.arrays["embedding"]}
    for k, (text, mode, instruct) in enumerate(runs):
        v: dict[str, Any] = {"name": f"f{k:02d}_{mode}", "text": text, "mode": mode, "instruction": instruct}
        try:
            cases = tts.frontend_cases(tok, pack, text, mode, instruct, use_wetext=False)
        except PackagerError as exc:
            v["error"] = str(exc)
        else:
            for _, c in cases:  # the flow side is always the voice's
                assert all(np.array_equal(c[key], a) for key, a in flow.items())
            v["pieces"] = [p for p, _ in cases]
            v["text_ids"] = [_ids(c["text"]) for _, c in cases]
            v["prompt_text"] = _ids(cases[0][1]["prompt_text"])
            v["llm_prompt_speech_token"] = _ids(cases[0][1]["llm_prompt_speech_token"])
            assert all(_ids(c["prompt_text"]) == v["prompt_text"] for _, c in cases)
        out.append(v)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Broken (and a few good) voice packs
# ---------------------------------------------------------------------------------------------------------------

def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(a), version=(1, 0), allow_pickle=False)
    return buf.getvalue()


def _rewrite(folder: Path, name: str, arr: np.ndarray, keep_entry: bool = False) -> None:
    """Replace array ``name``'s file with ``arr``; its entry's sha256 and bytes follow (shape/dtype too unless
    ``keep_entry``): the pack stays self-consistent, so only the property under test is wrong."""
    meta = json.loads((folder / "voice.json").read_text())
    e = next(x for x in meta["arrays"] if x["name"] == name)
    data = _npy(arr)
    (folder / e["file"]).write_bytes(data)
    e["sha256"], e["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    if not keep_entry:
        e["shape"] = [int(d) for d in arr.shape]
    (folder / "voice.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False))


def _meta(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        meta = json.loads((folder / "voice.json").read_text())
        fn(meta)
        (folder / "voice.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    return edit


def _entry(meta: dict, name: str) -> dict:
    return next(x for x in meta["arrays"] if x["name"] == name)


def _flip_byte(folder: Path) -> None:
    f = folder / "prompt_speech_feat.npy.bytes"
    b = bytearray(f.read_bytes())
    b[-3] ^= 0x01
    f.write_bytes(bytes(b))


def _truncate(folder: Path) -> None:
    f = folder / "embedding.npy.bytes"
    f.write_bytes(f.read_bytes()[:-4])


def _subdir_path(folder: Path) -> None:
    (folder / "sub").mkdir()
    shutil.copy(folder / "prompt_text.npy.bytes", folder / "sub" / "prompt_text.npy.bytes")
    _meta(lambda m: _entry(m, "prompt_text").update(file="sub/prompt_text.npy.bytes"))(folder)


def _dotdot_path(folder: Path) -> None:
    shutil.copy(folder / "prompt_text.npy.bytes", folder.parent / "prompt_text.npy.bytes")
    _meta(lambda m: _entry(m, "prompt_text").update(file="../prompt_text.npy.bytes"))(folder)


def _symlink(folder: Path) -> None:
    f = folder / "embedding.npy.bytes"
    outside = folder.parent / f"{folder.name}-embedding.npy.bytes"
    shutil.copy(f, outside)
    f.unlink()
    os.symlink(outside, f)


def _extra_array(m: dict) -> None:
    m["arrays"].append({**_entry(m, "embedding"), "name": "embedding"})


def _duplicate_array(m: dict) -> None:
    m["arrays"][3] = dict(m["arrays"][0])


def _arrays_of(folder: Path) -> dict[str, np.ndarray]:
    return {k: np.load(folder / f"{k}.npy.bytes") for k in voicepack.ARRAYS}


def _frames_mismatch(folder: Path) -> None:
    feat = _arrays_of(folder)["prompt_speech_feat"]
    _rewrite(folder, "prompt_speech_feat", np.concatenate([feat, feat[:, :2]], axis=1))


def _nan(folder: Path) -> None:
    feat = _arrays_of(folder)["prompt_speech_feat"].copy()
    feat[0, 3, 7] = np.nan
    _rewrite(folder, "prompt_speech_feat", feat)


def _inf(folder: Path) -> None:
    emb = _arrays_of(folder)["embedding"].copy()
    emb[0, 5] = -np.inf
    _rewrite(folder, "embedding", emb)


def _batch2(folder: Path) -> None:
    emb = _arrays_of(folder)["embedding"]
    _rewrite(folder, "embedding", np.concatenate([emb, emb], axis=0))


def _float16(folder: Path) -> None:
    feat = _arrays_of(folder)["prompt_speech_feat"]
    _rewrite(folder, "prompt_speech_feat", feat.astype(np.float16))


def _int64_tokens(folder: Path) -> None:
    _rewrite(folder, "prompt_speech_token", _arrays_of(folder)["prompt_speech_token"].astype(np.int64))


def _rank3_embedding(folder: Path) -> None:
    _rewrite(folder, "embedding", _arrays_of(folder)["embedding"][None])


def _not_json(folder: Path) -> None:
    (folder / "voice.json").write_text('{"format": "cosyvoice3-voice", ')


def _bom(folder: Path) -> None:
    f = folder / "voice.json"
    f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())


def _extra_file(folder: Path) -> None:
    (folder / "notes.txt").write_text("not listed: ignored")


def _float_dims(m: dict) -> None:
    m["format_version"] = 1.0
    _entry(m, "embedding")["shape"] = [1.0, 192]


PACK_CASES: list[tuple[str, Callable[[Path], None] | None]] = [
    ("good", None),
    ("good_reordered_arrays", _meta(lambda m: m["arrays"].reverse())),
    ("good_unlisted_extra_file", _extra_file),
    ("good_integral_floats", _meta(_float_dims)),
    ("good_no_descriptions", _meta(lambda m: [e.pop("description") for e in m["arrays"]])),
    ("other_model_id", _meta(lambda m: m["model"].update(model_id="0" * 64))),
    ("changed_array_byte", _flip_byte),
    ("truncated_array", _truncate),
    ("missing_file", lambda f: (f / "prompt_speech_token.npy.bytes").unlink()),
    ("missing_field_token_mel_ratio", _meta(lambda m: m["prompt"].pop("token_mel_ratio"))),
    ("missing_field_speech_tokenizer", _meta(lambda m: m.pop("speech_tokenizer"))),
    ("missing_field_array_sha256", _meta(lambda m: _entry(m, "embedding").pop("sha256"))),
    ("missing_field_model_id", _meta(lambda m: m["model"].pop("model_id"))),
    ("wrong_format_version_2", _meta(lambda m: m.update(format_version=2))),
    ("wrong_format_version_string", _meta(lambda m: m.update(format_version="1"))),
    ("wrong_format", _meta(lambda m: m.update(format="cosyvoice2-voice"))),
    ("unknown_top_level_key", _meta(lambda m: m.update(extra=1))),
    ("unknown_nested_key", _meta(lambda m: m["reference"].update(path="/home/me/ref.wav"))),
    ("extra_array", _meta(_extra_array)),
    ("duplicate_array", _meta(_duplicate_array)),
    ("three_arrays", _meta(lambda m: m["arrays"].pop())),
    ("unknown_array_name", _meta(lambda m: _entry(m, "embedding").update(name="speaker"))),
    ("path_with_slash", _subdir_path),
    ("path_dotdot", _dotdot_path),
    ("path_backslash", _meta(lambda m: _entry(m, "embedding").update(file="sub\\embedding.npy.bytes"))),
    ("path_absolute", _meta(lambda m: _entry(m, "embedding").update(file="/etc/embedding.npy.bytes"))),
    ("path_not_npy_bytes", _meta(lambda m: _entry(m, "embedding").update(file="embedding.npy"))),
    ("path_trailing_newline", _meta(lambda m: _entry(m, "embedding").update(file="embedding.npy.bytes\n"))),
    ("symlinked_array", _symlink),
    ("frames_mismatch", _frames_mismatch),
    ("ratio_mismatch", _meta(lambda m: m["prompt"].update(token_mel_ratio=3))),
    ("entry_dtype_mismatch", _meta(lambda m: _entry(m, "prompt_text").update(dtype="float32"))),
    ("entry_shape_mismatch", _meta(lambda m: _entry(m, "embedding").update(shape=[1, 191]))),
    ("entry_bytes_mismatch", _meta(lambda m: _entry(m, "embedding").update(bytes=_entry(m, "embedding")["bytes"] + 1))),
    ("entry_sha_not_hex", _meta(lambda m: _entry(m, "embedding").update(sha256="Z" * 64))),
    ("nan_in_feat", _nan),
    ("inf_in_embedding", _inf),
    ("batch_2", _batch2),
    ("float16_feat", _float16),
    ("int64_tokens", _int64_tokens),
    ("rank3_embedding", _rank3_embedding),
    ("empty_name", _meta(lambda m: m.update(name=""))),
    ("name_too_long", _meta(lambda m: m.update(name="x" * 201))),
    ("name_200_astral_chars", _meta(lambda m: m.update(name="\U0001F600" * 200))),
    ("empty_transcript", _meta(lambda m: m["reference"].update(transcript=""))),
    ("low_sample_rate", _meta(lambda m: m["reference"].update(sample_rate=8000))),
    ("negative_bytes", _meta(lambda m: m["reference"].update(bytes=-1))),
    ("seconds_string", _meta(lambda m: m["reference"].update(seconds="1.5"))),
    ("source_kind_unknown", _meta(lambda m: m["model"]["source"].update(kind="download"))),
    ("tokenizer_kind_unknown", _meta(lambda m: m["speech_tokenizer"].update(kind="whisper"))),
    ("features_not_object", _meta(lambda m: m.update(features=[]))),
    ("prompt_tokens_zero", _meta(lambda m: m["prompt"].update(tokens=0))),
    ("not_json", _not_json),
    ("utf8_bom", _bom),
    ("no_voice_json", lambda f: (f / "voice.json").unlink()),
]


def pack_vectors(out: Path, voice: Path, bundle: Path) -> list[dict[str, Any]]:
    manifest = load_manifest(bundle)
    vectors = []
    for k, (name, edit) in enumerate(PACK_CASES):
        case_dir = out / "packs" / f"{k:02d}_{name}"  # its own parent: '..' and symlink targets stay per case
        folder = case_dir / f"{name}.voice"
        shutil.copytree(voice, folder)
        if edit is not None:
            edit(folder)
        py: dict[str, Any] = {"ok": True, "error": None, "model_ok": None}
        try:
            pack = voicepack.load(folder)
        except PackagerError as exc:
            py.update(ok=False, error=str(exc))
        else:
            try:
                pack.check_model(manifest, bundle)
                py["model_ok"] = True
            except PackagerError as exc:
                py.update(model_ok=False, error=str(exc))
        vectors.append({"name": name, "path": str(folder), "python": py})
    # the same good pack named by its voice.json
    vectors.append({"name": "good_via_voice_json", "path": str(out / "packs" / "00_good" / "good.voice" / "voice.json"),
                    "python": {"ok": True, "error": None, "model_ok": True}})
    return vectors


# ---------------------------------------------------------------------------------------------------------------
# Recorded tts.speak runs
# ---------------------------------------------------------------------------------------------------------------

SPEAK_RUNS = [
    # name, text, mode, instruction, settings
    ("speak_zero_shot_greedy", "Hello from Unity.", "zero_shot", None,
     {"sampling": "greedy", "seed": 0, "stream": False, "upstream_quirks": True}),
    # streaming: a chunk is made while the LLM still generates (graph calls interleaved), then the finalize call
    ("speak_cross_lingual_greedy_stream", "Good morning.", "cross_lingual", None,
     {"sampling": "greedy", "seed": 0, "stream": True, "upstream_quirks": True}),
    # two pieces: piece k samples with seed + k
    ("speak_instruct_two_pieces_ras", "Hi there. " + LONG_EN, "instruct", "Please speak slowly.",
     {"sampling": "ras", "seed": 3, "stream": False, "upstream_quirks": True}),
]


def speak_vectors(store: Store, bundle: Path, pack: voicepack.VoicePack, runs=SPEAK_RUNS) -> list[dict[str, Any]]:
    pipe = Pipeline.open(bundle)
    out = []
    for name, text, mode, instruct, s in runs:
        rec = Recorder(pipe.runners, store)
        chunks: list[int] = []
        res = tts.speak(Pipeline(rec.runners, pipe.constants, pipe.data), pack, text, mode=mode, instruct=instruct,
                        sampling=s["sampling"], seed=s["seed"], stream=s["stream"],
                        upstream_quirks=s["upstream_quirks"], on_audio=lambda a: chunks.append(int(a.size)),
                        use_wetext=False)
        calls = f"speak/{name}.json"
        (store.root / "speak").mkdir(exist_ok=True)
        (store.root / calls).write_text(json.dumps(rec.calls))
        out.append({"name": name, "text": text, "mode": mode, "instruction": instruct,
                    "settings": {**s, "seed": str(s["seed"])}, "calls": calls, "n_calls": len(rec.calls),
                    "pieces": res.pieces, "tokens": [_ids(t) for t in res.speech_tokens], "chunks": chunks,
                    "speech": store.put(res.speech.reshape(1, -1).astype(np.float32)),
                    "sample_rate": res.sample_rate})
    return out


def speak_golden_vectors(store: Store, bundle: Path, pack: voicepack.VoicePack) -> dict[str, Any]:
    """A bundle-like folder holding the speak golden `unity-install --voice` writes (Golden~/speak/NAME/ and
    Voices~/NAME.voice/), made over recorded graph calls, so the C# side can run SpeakerCore + SpeakGolden on it."""
    from packager.contract.manifest import open_manifest
    from packager.verbs.unity_install import SPEAK_DIR, VOICES_DIR, _copy_tree, write_speak_golden

    pipe = Pipeline.open(bundle)
    rec = Recorder(pipe.runners, store)
    root = store.root / "speak_golden"
    name = "fox"
    _copy_tree(pack.path, root / VOICES_DIR / f"{name}.voice")
    meta = write_speak_golden(bundle, open_manifest(bundle), pack, root / SPEAK_DIR / name,
                              pipe=Pipeline(rec.runners, pipe.constants, pipe.data))
    (store.root / "speak" / "speak_golden.json").write_text(json.dumps(rec.calls))
    return {"dir": "speak_golden", "name": name, "calls": "speak/speak_golden.json", "n_calls": len(rec.calls),
            "chunks": meta["chunks"], "pieces": meta["pieces"]}


def write_voice_vectors(out: Path, bundle: Path, voice: Path) -> dict[str, Any]:
    """All vectors under ``out`` (index.json, blobs/, packs/, speak/); ``voice``: a pack made for ``bundle``."""
    store = Store(out)
    pack = voicepack.load(voice)
    tok = Pipeline.open(bundle).tokenizer()
    index = {"bundle": str(bundle), "voice": str(voice),
             "frontend": frontend_vectors(tok, pack), "packs": pack_vectors(out, voice, bundle),
             "speak": speak_vectors(store, bundle, pack), "speak_golden": speak_golden_vectors(store, bundle, pack)}
    (out / "index.json").write_text(json.dumps(index, indent=1, ensure_ascii=False))
    return index
