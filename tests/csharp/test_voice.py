"""The C# voice packs and text synthesis (VoicePack.cs, Synthesizer's text API) are packager/frontend/voicepack.py and
packager/runtime/tts.py under mono.

A tiny bundle is built and a voice pack made from espeak-ng speech with ``packager voice``; then
tests/csharp/voice_vectors.py writes the frontend cases (texts x modes, Python's pieces and ids or its error),
broken and good voice packs with Python's verdicts, and recorded ``tts.speak`` runs (zero-shot greedy, cross-lingual
streaming, two-piece instruct RAS). The C# runtime is compiled with mcs (C# 7.2) and tests/csharp/cs/VoiceTests.cs runs
under mono: same verdicts, same pieces and ids, and speech bit-identical to Python's. Its results file is compared
with Python's values here as well. Needs ``mcs``, ``mono`` and ``espeak-ng``; missing tools fail, never skip.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.csharp.voice_vectors import write_voice_vectors
from tests.speech import espeak_wav
from tests.csharp.test_core import mono_passed, run_mono_tests

TRANSCRIPT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def voice_run(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("csharp_voice")
    wav = espeak_wav(work / "ref.wav", TRANSCRIPT)
    voice = work / "fox.voice"
    code, _, err = run_cli("voice", tiny_bundle, "--wav", wav, "--transcript", TRANSCRIPT, "--out", voice)
    assert code == 0, err
    index = write_voice_vectors(work / "vectors", tiny_bundle, voice)
    run, results = run_mono_tests(work, work / "vectors", "COSY_VOICE", "Voice")
    return {"index": index, "proc": run, "results": results}


def test_mono_voice_tests_pass(voice_run: dict) -> None:
    passed = mono_passed(voice_run["proc"])
    index = voice_run["index"]
    cases = sum(len(index[k]) for k in ("frontend", "packs", "speak"))
    assert passed >= cases + 8, passed  # every vector case plus the self-contained unit tests ran


def test_every_vector_has_a_csharp_result(voice_run: dict) -> None:
    index, results = voice_run["index"], voice_run["results"]
    want = {(k, v["name"]) for k, kind in (("frontend", "frontend"), ("pack", "packs"), ("speak", "speak"))
            for v in index[kind]}
    assert want - set(results) == set(), sorted(want - set(results))


def test_frontend_cases_equal_python(voice_run: dict) -> None:
    """Pieces, text ids, prompt_text and LLM prompt tokens per mode; Python's refusals are C#'s refusals."""
    errors = 0
    modes = set()
    for v in voice_run["index"]["frontend"]:
        cs = voice_run["results"][("frontend", v["name"])]
        modes.add(v["mode"])
        if "error" in v:
            assert not cs["ok"] and cs["error"], (v["name"], v["error"])
            errors += 1
            continue
        assert cs["ok"], (v["name"], cs["error"])
        assert cs["pieces"] == v["pieces"], v["name"]
        assert cs["text_ids"] == v["text_ids"], v["name"]
        assert cs["prompt_text"] == v["prompt_text"], v["name"]
        assert cs["llm_prompt_speech_token"] == v["llm_prompt_speech_token"], v["name"]
    assert modes == {"zero_shot", "instruct", "cross_lingual"}
    assert errors >= 10 and len(voice_run["index"]["frontend"]) >= 90
    assert any(len(v.get("pieces", [])) > 1 for v in voice_run["index"]["frontend"])  # splitting is covered


def test_voice_pack_verdicts_agree(voice_run: dict) -> None:
    rejected = 0
    for v in voice_run["index"]["packs"]:
        py, cs = v["python"], voice_run["results"][("pack", v["name"])]
        assert cs["ok"] == py["ok"], (v["name"], py["error"], cs["error"])
        assert cs["model_ok"] == py["model_ok"], (v["name"], py["error"], cs["error"])
        rejected += not py["ok"]
    assert rejected >= 30
    results = voice_run["results"]
    # messages name the file and the field, and what was expected
    assert "prompt_speech_feat.npy.bytes" in results[("pack", "changed_array_byte")]["error"]
    assert "changed since the voice pack was made" in results[("pack", "changed_array_byte")]["error"]
    assert "format_version" in results[("pack", "wrong_format_version_2")]["error"]
    assert "token_mel_ratio" in results[("pack", "missing_field_token_mel_ratio")]["error"]
    assert "arrays[0].file" in results[("pack", "path_with_slash")]["error"]
    assert "symbolic link" in results[("pack", "symlinked_array")]["error"]
    assert "another model" in results[("pack", "other_model_id")]["error"]
    assert "frames" in results[("pack", "frames_mismatch")]["error"]


def test_speech_bit_identical_to_python(voice_run: dict) -> None:
    by_name = {v["name"]: v for v in voice_run["index"]["speak"]}
    for name, v in by_name.items():
        cs = voice_run["results"][("speak", name)]
        assert cs["ok"], (name, cs["error"])
        assert cs["first_difference"] == -1, name
        assert cs["calls"] == v["n_calls"] and cs["pieces"] == v["pieces"] and cs["tokens"] == v["tokens"], name
        assert cs["chunks"] == v["chunks"], name
    # what the runs cover: several pieces (seed + k), a chunk emitted while the LLM still generates
    assert len(by_name["speak_instruct_two_pieces_ras"]["pieces"]) == 2
    assert len(by_name["speak_cross_lingual_greedy_stream"]["chunks"]) >= 2


def test_speaker_core_under_mono(voice_run: dict) -> None:
    """CosyVoiceSpeaker's core (SpeakerCore over SlicedRunner, tests/csharp/cs/SpeakerTests.cs) with the replaying
    backend: Python's samples read back through the streaming buffer, and no unit of work started in a main-thread
    slice unless its expected cost still fitted the budget (only a slice's last unit may cross it; SpeakerTests.cs
    AssertSlices)."""
    results = voice_run["results"]
    by_name = {v["name"]: v for v in voice_run["index"]["speak"]}
    for name in ("speak_cross_lingual_greedy_stream", "speak_zero_shot_greedy", "speak_instruct_two_pieces_ras"):
        cs = results[("speaker", name)]
        assert cs["ok"] is True, name
        assert cs["chunks"] == by_name[name]["chunks"], name
        assert cs["calls"] == by_name[name]["n_calls"], name
        # the scheduler's decision invariant (load-independent): for every unit but a slice's first, the backend-timed
        # work before it plus its last cost fits the budget (+1 us clock granularity); the quiet-machine wall-clock
        # figure (longest slice <= budget + 2 ms) is benchmarks/bench_speaker_slices.py's
        assert cs["max_admitted_end_ms"] <= cs["budget_ms"] + 1e-3, (name, cs)
        assert cs["slices"] > 1, (name, cs)
        assert cs["first_audio_ms"] > 0, name
        assert cs["device_outputs"] > 0 and cs["device_inputs"] > 0, name  # the KV cache stayed on the device
    golden = voice_run["index"]["speak_golden"]
    cs = results[("speaker", "speak_golden")]
    assert cs["ok"] is True and cs["chunks"] == golden["chunks"] and len(golden["chunks"]) >= 2
    assert cs["max_admitted_end_ms"] <= cs["budget_ms"] + 1e-3 and cs["slices"] > 1, cs
    assert results[("speaker", "cancel_then_speak")]["ok"] is True
    errors = results[("speaker", "errors")]["messages"]
    assert len(errors) == 5 and any("flow_frontend" in e for e in errors) and any("another model" in e for e in errors)
