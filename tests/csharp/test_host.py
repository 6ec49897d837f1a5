"""The C# host loops (unity_project/Assets/CosyVoice3/Runtime/Host) are the Python host loops, step for step.

A tiny bundle (llm, flow, hift; fp32) is built, then tests/csharp/host_vectors.py records Python's runs over its
graphs on onnxruntime together with RNG/sampling/filter vectors; the C# runtime is compiled with mcs (C# 7.2) and
tests/csharp/cs/HostTests.cs runs under mono: it replays every recorded graph call (inputs compared bit for bit) and must
reproduce Python's tokens, mel and waveform exactly. Its results file is compared with Python's values here as well.
Needs ``mcs`` and ``mono`` (see tests/csharp/test_core.py); missing tools fail, never skip.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.csharp.host_vectors import write_host_vectors
from tests.csharp.test_core import CORE_CS, REPO, mono_passed, run_mono_tests

HOST_CS = sorted((REPO / "unity_project" / "Assets" / "CosyVoice3" / "Runtime" / "Host").glob("*.cs"))
LOG_SOFTMAX_MAX_ULP = 4  # numpy's SIMD float32 exp/log (<= ~2.5 ulp) vs C#'s correctly rounded ones; measured <= 1


@pytest.fixture(scope="module")
def host_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("csharp_host")
    bundle = work / "bundle"
    code, _, err = run_cli("build", "--out", bundle, "--components", "llm,flow,hift", "--precision", "fp32")
    assert code == 0, err
    index = write_host_vectors(work / "vectors", bundle)
    assert HOST_CS and all(p in CORE_CS for p in HOST_CS)  # the mono build of tests/csharp/test_core.py includes them
    run, results = run_mono_tests(work, work / "vectors", "COSY_HOST", "Host")
    return {"index": index, "proc": run, "vectors": work / "vectors", "results": results}


def test_mono_host_tests_pass(host_run: dict) -> None:
    passed = mono_passed(host_run["proc"])
    index = host_run["index"]
    cases = sum(len(index[k]) for k in ("pcg64", "ras", "log_softmax", "mt", "silent", "replays"))
    assert passed >= cases + 4, passed  # every vector case plus the self-contained unit tests ran


def test_every_vector_has_a_csharp_result(host_run: dict) -> None:
    index, results = host_run["index"], host_run["results"]
    want = {("pcg64", v["seed"]) for v in index["pcg64"]} | {
        (k, v["name"]) for k in ("ras", "log_softmax", "mt", "silent") for v in index[k]} | {
        ("replay", v["name"]) for v in index["replays"]}
    assert want - set(results) == set(), sorted(want - set(results))


def test_pcg64_streams_equal_numpy(host_run: dict) -> None:
    """numpy default_rng(seed): state after SeedSequence seeding, raw uint64s and random() doubles, bit for bit."""
    for v in host_run["index"]["pcg64"]:
        cs = host_run["results"][("pcg64", v["seed"])]
        assert cs["state"] == v["state"], v["seed"]
        assert cs["raw"] == v["raw"], v["seed"]
        assert [float(x) for x in v["doubles"]] == cs["doubles"], v["seed"]


def test_ras_draws_equal_numpy(host_run: dict) -> None:
    for v in host_run["index"]["ras"]:
        cs = host_run["results"][("ras", v["name"])]
        assert cs["tokens"] == [s["token"] for s in v["steps"]], v["name"]
        assert cs["next_double"] == float(v["next_double"]), v["name"]  # same number of draws consumed
    assert len(host_run["index"]["ras"]) >= 6


def test_log_softmax_within_ulps_and_sums_exact(host_run: dict) -> None:
    for v in host_run["index"]["log_softmax"]:
        cs = host_run["results"][("log_softmax", v["name"])]
        assert cs["sum_equal"] and cs["argmax_equal"], v["name"]  # numpy's pairwise summation mirrored exactly
        assert cs["max_ulp"] <= LOG_SOFTMAX_MAX_ULP, (v["name"], cs["max_ulp"])


def test_noise_continuation_and_silent_filter(host_run: dict) -> None:
    for v in host_run["index"]["mt"]:
        assert host_run["results"][("mt", v["name"])]["ok"], v["name"]
    for v in host_run["index"]["silent"]:
        assert host_run["results"][("silent", v["name"])]["tokens"] == v["expected"], v["name"]


def test_replays_reproduce_python(host_run: dict) -> None:
    """LLM decodes, Euler/CFG runs and whole tts() runs: identical calls, tokens, mel and speech."""
    kinds = set()
    for v in host_run["index"]["replays"]:
        cs = host_run["results"][("replay", v["name"])]
        assert cs["ok"], (v["name"], cs["error"])
        assert cs["calls"] == v["n_calls"], v["name"]
        if "tokens" in v:
            assert cs["tokens"] == v["tokens"], v["name"]
        kinds.add(v["kind"])
    assert kinds == {"llm", "flow", "tts"}
    by_name = {v["name"]: v for v in host_run["index"]["replays"]}
    # what the replays cover: a stop id before min_len (quirk L3), HiFT noise past the table's cap, several stream
    # chunks
    ras = by_name["llm_ras_seed7"]
    assert ras["stop_token"] >= 0 and len(ras["tokens"]) < ras["min_len"]
    bundle = Path(host_run["index"]["bundle"])
    manifest = json.loads((bundle / "manifest.json").read_text())
    hift = next(c for c in manifest["components"] if c["name"] == "hift")["constants"]
    mel_frames = np.load(host_run["vectors"] / by_name["tts_greedy"]["outputs"]["mel"]).shape[2]
    assert mel_frames * hift["samples_per_frame"] > hift["noise"]["cap_samples"]
    assert by_name["tts_stream_greedy"]["n_calls"] > by_name["tts_greedy"]["n_calls"]
