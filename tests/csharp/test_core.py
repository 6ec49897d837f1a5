"""C# checks that run without Unity: the engine-free assembly (CosyVoice3.Runtime; every assembly's compile, layer by
layer, is tests/csharp/test_assemblies.py) runs as unit tests under mono, and C# and Python give the same verdicts on
the same vectors (tests/csharp/core_vectors.py), failing ones included.

Needs ``mcs`` and ``mono`` (Debian: ``apt-get install -y --no-install-recommends mono-mcs mono-runtime``).
Without them these tests fail, not skip: a silent skip would let C# compile errors through CI.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.csharp.assemblies import assemblies
from tests.csharp.core_vectors import write_vectors

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CORE_CS = assemblies()["CosyVoice3.Runtime"].files  # the engine-free assembly: Runtime/Core, Host, Speech
TESTS_CS = sorted((HERE / "cs").glob("*.cs")) + sorted((HERE / "harness").glob("*.cs"))
MCS = ["mcs", "-langversion:7.2", "-warn:4", "-nologo"]
INSTALL_HINT = "install mono: apt-get install -y --no-install-recommends mono-mcs mono-runtime"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found; {INSTALL_HINT}")
    return path


def _mcs(args: list[str]) -> subprocess.CompletedProcess:
    _tool("mcs")
    return subprocess.run(MCS + args, capture_output=True, text=True, timeout=300)


def _diagnostics(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if ": error " in line or ": warning " in line]


def run_mono_tests(work: Path, vectors: Path, env_prefix: str, test_filter: str | None = None
                   ) -> tuple[subprocess.CompletedProcess, dict]:
    """Build the mono test runner (NUnit stub + core runtime + csharp/tests) in ``work``, run it with the vectors at
    ``$<env_prefix>_VECTORS`` (and only the tests matching ``test_filter``); (the run, {(kind, name): result line}
    from ``$<env_prefix>_RESULTS``)."""
    exe = work / "tests.exe"
    proc = _mcs([f"-out:{exe}", str(HERE / "stubs" / "NUnit.cs"), *map(str, CORE_CS), *map(str, TESTS_CS)])
    assert proc.returncode == 0 and not _diagnostics(proc), proc.stdout + proc.stderr
    results = work / "results.jsonl"
    env = {**os.environ, f"{env_prefix}_VECTORS": str(vectors), f"{env_prefix}_RESULTS": str(results)}
    run = subprocess.run([_tool("mono"), str(exe), *(["--filter", test_filter] if test_filter else [])],
                         capture_output=True, text=True, timeout=300, env=env)
    lines = [json.loads(x) for x in results.read_text(encoding="utf-8").splitlines()] if results.exists() else []
    return run, {(r["kind"], r["name"]): r for r in lines}


def mono_passed(proc: subprocess.CompletedProcess) -> int:
    """How many tests the runner passed, after asserting that it exited 0 and failed none."""
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert tail.startswith("mono tests:") and " 0 failed" in tail, tail
    return int(tail.split()[2])


@pytest.fixture(scope="module")
def mono_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Write the vectors, build the mono test runner (NUnit stub + core runtime + tests), run it once."""
    work = tmp_path_factory.mktemp("csharp")
    index = write_vectors(work / "vectors")
    run, results = run_mono_tests(work, work / "vectors", "COSY")
    return {"index": index, "proc": run, "results": results}


def test_mono_unit_tests_pass(mono_run: dict) -> None:
    passed = mono_passed(mono_run["proc"])
    assert passed >= 150, passed  # vectors + unit tests: a runner that finds nothing must not pass


def _num(x):
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(x, x) if isinstance(x, str) else float(x)


def _close(a, b) -> bool:
    a, b = _num(a), _num(b)
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return abs(a - b) <= 1e-12 + 1e-9 * abs(a)


def test_every_vector_has_a_csharp_verdict(mono_run: dict) -> None:
    index, results = mono_run["index"], mono_run["results"]
    want = {(k, v["name"] if k != "paths" else v["path"]) for k in ("npy", "tolerance", "manifest", "paths", "sha")
            for v in index[k]}
    assert want - set(results) == set(), sorted(want - set(results))[:10]


def test_tolerance_verdicts_agree(mono_run: dict) -> None:
    results = mono_run["results"]
    fails = 0
    for v in mono_run["index"]["tolerance"]:
        py, cs = v["python"], results[("tolerance", v["name"])]
        assert cs["passed"] == py["passed"], (v["name"], cs["summary"])
        assert cs["worst_index"] == py["worst_index"], v["name"]
        assert cs["reasons"] == py["reasons"], v["name"]
        for key in ("max_abs", "actual_at_worst", "expected_at_worst"):
            assert _close(py[key], cs[key]), (v["name"], key, py[key], cs[key])
        assert sorted(cs["metrics"]) == sorted(py["metrics"]), v["name"]
        for k, x in py["metrics"].items():
            assert _close(x, cs["metrics"][k]), (v["name"], k, x, cs["metrics"][k])
        fails += not py["passed"]
    assert fails >= 15  # the failing vectors are part of the agreement, not just the passing ones


def test_npy_manifest_path_sha_verdicts_agree(mono_run: dict) -> None:
    results = mono_run["results"]
    for kind in ("npy", "manifest", "sha"):
        for v in mono_run["index"][kind]:
            cs = results[(kind, v["name"])]
            assert cs["ok"] == v["python"]["ok"], (kind, v["name"], cs.get("error"))
            if kind == "npy" and cs["ok"]:
                assert cs["dtype"] == v["python"]["dtype"] and cs["shape"] == v["python"]["shape"], v["name"]
                assert all(_close(a, b) for a, b in zip(cs["values"], v["python"]["values"])), v["name"]
            if not cs["ok"]:
                assert cs["error"], (kind, v["name"])  # a rejection always says why
    for v in mono_run["index"]["paths"]:
        assert results[("paths", v["path"])]["ok"] == v["python"]["ok"], repr(v["path"])
    # rejections with a clear message: the file or field is named
    assert "components[0].graphs[0].file" in results[("manifest", "bad_path_dotdot")]["error"]
    assert "'>f4'" in results[("npy", "bad_big_endian")]["error"]
