"""Real Sentis is the judge: the tiny bundle under every precision policy, built for each Sentis target,
runs all its golden cases on Unity-compiled Sentis (tests/sentis_real/: Sentis's own importer, optimizer,
ModelQuantizer and CPU kernels as IL under Mono), chained cases carrying outputs as a host does, assertions thrown as
in Unity 6. Every graph must import without a warning or logged error and every case must pass, both on the models
as the Editor imports them and on the baked .sentis files a player ships (SentisModels.Bake).

Runs wherever the Sentis DLL repositories are available (MIRROR, tests/sentis_real/README.md); CI has none and
skips with that reason.
"""
from __future__ import annotations

import pytest

from tests.sentis_real import matrix

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=sorted(matrix.VERSIONS))
def runner(request, tmp_path_factory):
    version = request.param
    why = matrix.unavailable(version)
    if why:
        pytest.skip(why)
    return version, matrix.build_runner(version, tmp_path_factory.mktemp(f"sentis_runner{version}"))


@pytest.mark.parametrize("policy", matrix.POLICIES)
def test_bundle_passes_on_real_sentis(runner, policy, tmp_path):
    version, exe = runner
    target = matrix.VERSIONS[version][0]
    bundle = matrix.build_bundle(policy, target, tmp_path / "bundle", tmp_path)
    for kind, baked in (("imported", None), ("baked", tmp_path / "sentis")):
        result = matrix.run_cases(exe, bundle, tmp_path / f"{kind}.json", baked)
        rows = matrix.rows(result)
        problems = [p for r in rows for p in r.problems]
        assert rows and all(r.imported for r in rows), problems
        assert sum(r.cases for r in rows) >= len(rows), "every graph has golden cases"
        assert not problems, f"{policy} on {result['sentis']} ({kind}):\n  " + "\n  ".join(problems)
        assert result["exit_code"] == 0, result["log"][-3000:]
        if baked is not None:
            for r in rows:
                assert r.baked_bytes and (baked / f"{r.graph}.sentis").stat().st_size == r.baked_bytes
                if r.unity_quantization != "none":   # quantized weights ship at 2 (float16) or 1 (uint8) byte
                    assert r.baked_bytes < r.asset_bytes, (r.graph, r.baked_bytes, r.asset_bytes)
