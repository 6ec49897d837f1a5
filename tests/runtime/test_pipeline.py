"""End-to-end synthesis over a bundle: parity with upstream tts() on tiny_a, streaming, bad input."""
from __future__ import annotations

import copy
import wave

import numpy as np
import pytest

from packager.contract.errors import PackagerError
from packager.runtime.pipeline import CASE_KEYS, Pipeline, synthesize
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def tiny_a_bundle(tiny_a, tmp_path_factory):
    out = tmp_path_factory.mktemp("ta") / "bundle"
    code, _, err = run_cli("build", "--checkpoint", tiny_a, "--out", out, "--components", "llm,flow,hift",
                           "--precision", "fp32")
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def reference(tiny_a):
    return np.load(tiny_a / "pipeline_reference.npz")


@pytest.fixture(scope="module")
def case(reference):
    r = reference
    return {"text": r["tts_text"], "prompt_text": r["tts_prompt_text"],
            "llm_prompt_speech_token": r["tts_prompt_speech_token"],
            "flow_prompt_speech_token": r["tts_prompt_speech_token"],
            "prompt_speech_feat": r["tts_prompt_speech_feat"],
            "llm_embedding": r["tts_embedding"], "flow_embedding": r["tts_embedding"]}


def _sqnr(actual, expected) -> float:
    return 10 * np.log10(np.sum(expected.astype(np.float64) ** 2) / np.sum((actual - expected.astype(np.float64)) ** 2))


def test_tiny_a_parity_with_upstream_tts(tiny_a_bundle, case, reference, tmp_path):
    np.savez(tmp_path / "case.npz", **case)
    code, out, err = run_cli("synth", tiny_a_bundle, "--inputs", tmp_path / "case.npz",
                             "--output", tmp_path / "out.npz", "--wav", tmp_path / "out.wav")
    assert code == 0, err
    got = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(got["speech_tokens"], reference["tts_tokens_to_flow"])
    assert got["mel"].shape == reference["tts_mel"].shape
    assert np.abs(got["mel"] - reference["tts_mel"]).max() <= 1e-3
    assert got["speech"].shape == reference["tts_speech"].shape
    assert _sqnr(got["speech"], reference["tts_speech"]) >= 40.0
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (24000, 1, reference["tts_speech"].shape[1])


def test_streaming_schedule(tiny_a_bundle, case):
    """A longer utterance goes through several stream chunks (hop 46 then 50 ...); every emitted sample is new and
    the stream covers the whole mel."""
    p = Pipeline.open(tiny_a_bundle)
    long = dict(case, text=np.tile(case["text"], (1, 6)))  # max_len = 20 * 30 tokens
    s = synthesize(p, long, stream=True)
    n = s["speech_tokens"].shape[1]
    assert s["mel"].shape[2] == 2 * n
    assert s["speech"].shape[1] == 480 * s["mel"].shape[2]
    assert np.isfinite(s["speech"]).all() and np.abs(s["speech"]).max() <= 0.99


def test_streaming_schedule_comes_from_the_manifest(tiny_a_bundle, case):
    """The hops are the flow constants' ``stream`` entry (C# reads the same): a first hop longer than the utterance
    leaves one chunk; a manifest without the schedule is refused for streaming, not guessed."""
    p = Pipeline.open(tiny_a_bundle)
    assert {k: p.constants["flow"]["stream"][k] for k in ("token_hop", "token_max_hop", "scale")} == \
        {"token_hop": 25, "token_max_hop": 100, "scale": 2}
    long = dict(case, text=np.tile(case["text"], (1, 6)))

    def chunks(constants) -> int:
        pieces: list = []
        synthesize(Pipeline(p.runners, constants, p.data), long, stream=True, on_audio=pieces.append)
        return len(pieces)

    assert chunks(p.constants) > 1
    flow = copy.deepcopy(p.constants["flow"])
    flow["stream"]["token_hop"] = 10_000
    assert chunks({**p.constants, "flow": flow}) == 1
    del flow["stream"]
    with pytest.raises(PackagerError, match="streaming schedule"):
        chunks({**p.constants, "flow": flow})


def test_ras_sampling_is_seeded(tiny_a_bundle, case):
    p = Pipeline.open(tiny_a_bundle)
    a = synthesize(p, case, sampling="ras", seed=3)
    b = synthesize(p, case, sampling="ras", seed=3)
    np.testing.assert_array_equal(a["speech_tokens"], b["speech_tokens"])
    np.testing.assert_array_equal(a["speech"], b["speech"])


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c.pop("prompt_speech_feat"), "missing keys"),
    (lambda c: c.__setitem__("text", c["text"].astype(np.float32)), "dtype"),
    (lambda c: c.__setitem__("llm_embedding", c["llm_embedding"].astype(np.int32)), "dtype"),
    (lambda c: c.__setitem__("flow_embedding", c["flow_embedding"][0]), "shape"),
    (lambda c: c.__setitem__("text", np.zeros((1, 0), np.int32)), "empty text"),
    (lambda c: c.__setitem__("text", c["text"] + 10_000), "out of range"),
    (lambda c: c.__setitem__("flow_prompt_speech_token", c["flow_prompt_speech_token"] + 10_000), "out of range"),
    (lambda c: c.__setitem__("llm_prompt_speech_token", -c["llm_prompt_speech_token"] - 1), "out of range"),
])
def test_bad_input_names_the_key(tiny_a_bundle, case, tmp_path, mutate, message):
    bad = {k: np.array(v) for k, v in case.items()}
    mutate(bad)
    np.savez(tmp_path / "case.npz", **bad)
    code, _, err = run_cli("synth", tiny_a_bundle, "--inputs", tmp_path / "case.npz", "--output", tmp_path / "o.npz")
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert any(k in err for k in CASE_KEYS)
    assert not (tmp_path / "o.npz").exists()
