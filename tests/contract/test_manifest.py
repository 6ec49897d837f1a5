"""packager/contract/manifest.py: each rule of the bundle format in one place, and the places that must repeat a constant (the
JSON schema, the C# reader) kept equal to the Python definition."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

from packager import GENERATOR_NAME
from packager.contract import manifest as B
from packager.sentis import rules as R
from packager.contract.errors import PackagerError
from tests.csharp.core_vectors import mini_bundle

REPO = Path(__file__).resolve().parents[2]
CORE_CS = REPO / "unity_project" / "Assets" / "CosyVoice3" / "Runtime" / "Core"


def test_schema_repeats_the_python_constants():
    s = B.schema()
    assert s["properties"]["generator"]["properties"]["name"]["const"] == GENERATOR_NAME
    assert s["properties"]["format_version"]["const"] == B.FORMAT_VERSION
    assert s["$defs"]["dtype"]["enum"] == list(B.DTYPES)
    target = s["properties"]["target"]["properties"]
    assert target["runtime"]["enum"] == list(R.TARGETS)
    assert sorted(target["unity_package"]["enum"]) == sorted({t.package for t in R.TARGETS.values()})
    assert sorted(target["namespace"]["enum"]) == sorted({t.namespace for t in R.TARGETS.values()})
    assert target["backend"]["enum"] == sorted({t.backend for t in R.TARGETS.values()})
    opset = s["$defs"]["graph"]["properties"]["opset"]
    assert (opset["minimum"], opset["maximum"]) == (R.OPSET_MIN, R.OPSET_MAX)


def test_csharp_reader_repeats_the_python_constants():
    manifest_cs = (CORE_CS / "BundleManifest.cs").read_text(encoding="utf-8")
    reader_cs = (CORE_CS / "BundleManifest.Reader.cs").read_text(encoding="utf-8")
    assert re.search(r'const string Generator = "([^"]+)"', manifest_cs).group(1) == GENERATOR_NAME
    assert f'r.Int(g, "opset", {R.OPSET_MIN}, {R.OPSET_MAX})' in manifest_cs
    assert 'r.Enum(t, "runtime", ' + ", ".join(f'"{n}"' for n in R.TARGETS) + ")" in manifest_cs
    assert 'Enum(obj, "dtype", ' + ", ".join(f'"{d}"' for d in B.DTYPES) + ")" in reader_cs
    files_cs = (CORE_CS / "Bundle.cs").read_text(encoding="utf-8")
    assert f'ManifestFile = "{B.MANIFEST_FILE}"' in files_cs


def test_built_manifest_target_is_the_rules_table(tiny_bundle):
    m = B.open_manifest(tiny_bundle)
    assert m["target"] == R.TARGETS[m["target"]["runtime"]].manifest()
    pkg = json.loads((tiny_bundle / B.PACKAGE_FILE).read_text())
    t = R.TARGETS[m["target"]["runtime"]]
    assert pkg["dependencies"] == {t.package: t.version}
    assert all(g["opset"] == R.DEFAULT_OPSET for c in m["components"] for g in c["graphs"])
    assert all(g["file"].startswith(B.MODELS_DIR + "/") for c in m["components"] for g in c["graphs"])
    assert all(d["file"].startswith(B.DATA_DIR + "/") for c in m["components"] for d in c["data"])
    assert all(t["file"].startswith(B.GOLDEN_DIR + "/") for field, t in B.listed_files(m) if "goldens" in field)


@pytest.mark.parametrize("text, message", [
    ('{"a": NaN}', "NaN"),
    ('{"a": -Infinity}', "Infinity"),
    ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ('{"a": 1,}', "not valid JSON"),
])
def test_manifest_json_is_strict(text, message):
    with pytest.raises(PackagerError, match=re.escape(message)):
        B.parse_json(text, "manifest.json")


@pytest.fixture
def mini(tmp_path):
    return tmp_path, mini_bundle(tmp_path)


def test_cross_reference_rules_report_each_problem(mini):
    _, m = mini
    assert B.manifest_problems(m) == []
    bad = copy.deepcopy(m)
    enc = bad["components"][0]["graphs"][0]
    enc["goldens"][0]["inputs"].pop(1)  # no "ids"
    enc["goldens"][0]["outputs"][0]["shape"] = [4]  # rank 1 vs [1, "t"]
    bad["components"].append({**copy.deepcopy(m["components"][0]), "name": "other", "data": []})
    problems = B.cross_reference_problems(bad)
    assert "duplicate graph name 'enc'" in problems and "duplicate graph name 'step'" in problems
    assert any("golden inputs ['x'] differ from the graph inputs ['x', 'ids']" in p for p in problems)
    assert any("golden output 'y' is float32 [4], the graph's is float32 [1, 't']" in p for p in problems)
    with pytest.raises(PackagerError, match="cross-reference rules"):
        B.check_manifest(bad)


def test_pipeline_output_needs_a_tolerance(mini):
    _, m = mini
    m["pipeline"] = {"goldens": [{"name": "tts", "settings": {"sampling": "greedy", "stream": False,
                                                               "upstream_quirks": True},
                                  "inputs": [], "outputs": [m["components"][0]["data"][0]], "tolerances": []}]}
    assert B.schema_problems(m) == []
    assert B.cross_reference_problems(m) == ["pipeline/tts: output 'noise' has no tolerance"]


def test_load_array_checks_size_digest_npy_rules_and_entry(mini):
    root, m = mini
    entry = m["components"][0]["data"][0]
    assert B.load_array(root, entry, "data").shape == tuple(entry["shape"])
    path = root / entry["file"]
    with pytest.raises(PackagerError, match="does not match its manifest entry"):
        B.load_array(root, {**entry, "shape": [3, 2]}, "data")
    with open(path, "wb") as f:  # np.save(path) would append ".npy"
        np.save(f, np.asfortranarray(np.ones((2, 3), np.float32)))
    fortran = path.read_bytes()
    assert np.load(path).flags.f_contiguous  # numpy reads it; the bundle rules (and C#) do not
    with pytest.raises(PackagerError, match="fortran_order"):
        B.load_array(root, entry, "data", check_digest=False)
    with pytest.raises(PackagerError, match="wrong size"):
        B.load_array(root, {**entry, "bytes": len(fortran) + 1}, "data")
    with pytest.raises(PackagerError, match="sha256 differs"):
        B.load_array(root, {**entry, "bytes": len(fortran)}, "data")


def test_check_graph_files_checks_external_data(mini):
    root, m = mini
    g = copy.deepcopy(m["components"][0]["graphs"][0])
    assert B.check_graph_files(root, g, "enc") == root / g["file"]
    g["external_data"] = {"file": "Models/enc.onnx.data", "sha256": "0" * 64, "bytes": 3}
    with pytest.raises(PackagerError, match="listed file is missing"):
        B.check_graph_files(root, g, "enc")


def test_preflight_resolves_bundle_paths_with_the_bundle_rules(mini):
    from packager.sentis.preflight import check_bundle

    root, m = mini
    m["components"][0]["graphs"][0]["file"] = "../outside.onnx"
    (root / B.MANIFEST_FILE).write_text(json.dumps(m))
    with pytest.raises(PackagerError, match="enc.file: path must not contain '..'"):
        check_bundle(root)


@pytest.mark.parametrize("version", [1, 3])
def test_a_bundle_of_another_format_version_gets_one_message(tmp_path, version):
    """A bundle written by an older (or newer) packager: exit 2, one line naming format_version and the fix,
    not the schema's list of differences; nothing is written."""
    from tests.conftest import run_cli

    bundle = tmp_path / "old"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps({"format_version": version, "components": []}))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for verb in (["inspect", bundle], ["synth", bundle, "--text", "hi", "--voice", tmp_path / "none.voice",
                                       "-o", tmp_path / "out.wav"]):
        code, out, err = run_cli(*verb)
        assert code == 2, (verb, err)
        assert err.count("error:") == 1 and "format_version" in err and "rebuild the bundle" in err, err
        assert ("an older packager" if version < B.FORMAT_VERSION else "a newer packager") in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
