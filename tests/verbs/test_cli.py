"""The CLI verbs end to end: build, verify, inspect, run; determinism, atomicity, bad input."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from packager import cli
from packager.build import checkpoint
from packager.build import registry
from packager.contract import targets
from tests.conftest import REPO, run_cli


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _no_temps(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


@pytest.mark.parametrize("verb", list(cli.VERBS))
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([verb, "--help"])
    assert exc.value.code == 0
    assert "usage:" in capsys.readouterr().out


HEAVY = ("torch", "onnx", "onnxruntime", "numpy", "huggingface_hub", "matplotlib", "soundfile", "yaml")


@pytest.mark.parametrize("verb", ["", *cli.VERBS])
def test_help_imports_no_heavy_module(verb):
    """`--help` only parses: no verb module and none of the heavy libraries is imported (the time is measured by
    benchmarks/bench_cli_help.py, not here)."""
    argv = [verb, "--help"] if verb else ["--help"]
    code = ("import json, sys, contextlib, io\n"
            "from packager.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            f"        main({argv!r})\n"
            "    except SystemExit as e:\n"
            "        assert e.code == 0, e.code\n"
            f"heavy = {HEAVY!r}\n"
            "verbs = ('packager.build.pipeline', 'packager.sentis.preflight', 'packager.build.hub')\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in verbs\n"
            "                        or m.startswith('packager.verbs.'))))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_cli_facts_match_their_sources():
    """The light copies the parser reads (so that it imports nothing heavy) name what the heavy modules define."""
    from packager.sentis import rules as sentis_rules
    from packager.verbs.report import measure

    assert {n: (t.package, t.version) for n, t in sentis_rules.TARGETS.items()} == targets.RELEASES
    assert targets.DEFAULT_TARGET in sentis_rules.TARGETS
    assert cli.REPORT_POLICIES == measure.POLICIES


def test_missing_extra_names_the_extra(tmp_path, monkeypatch):
    """A verb whose optional dependency is missing says which extra to install, before any work (exit 2)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    code, out, err = run_cli("report", "--out", tmp_path / "r", "--quiet")
    assert code == 2 and "matplotlib" in err and "pip install -e '.[report]'" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
    # a module found missing while a verb runs: the same message, for an extra or a default dependency
    from packager.ui.extras import missing_module

    assert "'.[report]'" in str(missing_module(ModuleNotFoundError(name="matplotlib.pyplot"), "report"))
    assert "pip install -e ." in str(missing_module(ModuleNotFoundError(name="soxr"), "voice"))
    assert missing_module(ModuleNotFoundError(name="packager.nope"), "build") is None  # our own bug: traceback


def test_quiet_build_prints_nothing(tmp_path):
    code, out, err = run_cli("build", "--quiet", "--components", "campplus", "--out", tmp_path / "b")
    assert code == 0 and (out, err) == ("", ""), (out, err)
    assert (tmp_path / "b" / "manifest.json").is_file()


def test_kept_float32_is_reported_as_information():
    from packager.build.pipeline import _report_kept_float32
    from packager.build.stages.convert import Overflow

    lines = []
    _report_kept_float32(lines.append, "[flow] flow_estimator", [
        Overflow("/dit/Constant_13_output_0", 1e9, ("/dit/Constant_13", "/dit/Mul_4")),
        Overflow("/dit/Mul_4_output_0", 1e9, ("/dit/Mul_4", "/dit/attn/Add_2")),
        Overflow("/x/Exp_output_0", 7.1e4, ("/x/Exp",))])
    assert lines[0] == ("  [flow] flow_estimator: kept float32: 2 mask fill tensor(s) and 3 node(s) around them "
                        "(|x| up to 1e+09; expected: -1e9 masks do not fit fp16, whose largest value is 65504)")
    assert lines[1].startswith("  [flow] flow_estimator: kept float32: /x/Exp_output_0 reaches |x| = 7.1e+04")
    assert not any("overflow" in line for line in lines)


def test_int8_quantization_logs_no_advice(caplog):
    """onnxruntime's "consider pre-processing" warning (once per graph: 7 lines in `report --quiet`) is dropped."""
    import logging

    from onnx import TensorProto, helper, numpy_helper

    from packager.build.stages.convert import to_int8

    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    with caplog.at_level(logging.WARNING):
        q = to_int8(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]))
    assert any(n.op_type == "MatMulInteger" for n in q.graph.node)
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()], caplog.text
    assert not [f for f in logging.getLogger().filters if type(f).__name__ == "_NoPreprocessingAdvice"]


def test_build_verify_inspect(tiny_bundle):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert [c["name"] for c in manifest["components"]] == registry.names()
    assert manifest["source"] == {"kind": "preset", "preset": "tiny", "seed": 1234,
                                  "model_id": checkpoint.model_id(manifest["source"])}
    assert len(manifest["source"]["model_id"]) == 64
    assert (tiny_bundle / "package.json").is_file() and (tiny_bundle / "README.md").is_file()
    assert all(g["file"].startswith("Models/") for c in manifest["components"] for g in c["graphs"])
    goldens = [t["file"] for c in manifest["components"] for g in c["graphs"] for k in g["goldens"]
               for t in k["inputs"] + k["outputs"]]
    assert goldens and all(f.split("/")[0].endswith("~") for f in goldens)
    code, out, _ = run_cli("verify", tiny_bundle)
    assert code == 0, out
    assert " 0 failed" in out
    code, out, _ = run_cli("inspect", tiny_bundle)
    assert code == 0
    assert "campplus_fbank" in out and "waveform float32[1, samples]" in out


def test_builds_are_byte_identical(tiny_bundle, tmp_path):
    """A second build, in a fresh process with torch's default thread count (the fixture's ran single-threaded)."""
    out = tmp_path / "again"
    proc = subprocess.run([sys.executable, "-m", "packager", "build", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr
    first, second = _tree(tiny_bundle), _tree(out)
    assert sorted(first) == sorted(second)
    assert [k for k in first if first[k] != second[k]] == []


@pytest.mark.parametrize("kind", ["model", "golden"])
def test_verify_names_a_file_changed_by_one_byte(tiny_bundle, tmp_path, kind):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    g = manifest["components"][0]["graphs"][0]
    rel = g["file"] if kind == "model" else g["goldens"][0]["outputs"][0]["file"]
    data = bytearray((bundle / rel).read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / rel).write_bytes(bytes(data))
    code, out, _ = run_cli("verify", bundle)
    assert code == 1
    bad = [line for line in out.splitlines() if "FAIL" in line]
    assert len(bad) == 1 and rel in bad[0] and "sha256" in bad[0]


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.onnx", "Models/../../x.onnx", "Models/link.onnx"])
def test_verify_rejects_unsafe_paths(tiny_bundle, tmp_path, path):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    g = manifest["components"][0]["graphs"][0]
    if path.endswith("link.onnx"):
        (bundle / path).symlink_to(bundle / g["file"])
    g["file"] = path
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    code, out, _ = run_cli("verify", bundle)
    assert code == 1 and "FAIL" in out


def test_existing_bundle_needs_force_and_survives_failed_build(tiny_bundle, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(tiny_bundle, out)
    before = _tree(out)
    code, _, err = run_cli("build", "--out", out, "--components", "campplus")
    assert code == 2 and "--force" in err
    broken = tmp_path / "ckpt"
    broken.mkdir()
    code, _, err = run_cli("build", "--checkpoint", broken, "--out", out, "--components", "campplus", "--force")
    assert code == 2 and "campplus.onnx" in err
    assert _tree(out) == before and _no_temps(tmp_path)


def test_force_replaces_after_success(tiny_bundle, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(tiny_bundle, out)
    code, _, err = run_cli("build", "--out", out, "--components", "campplus", "--force")
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["name"] for c in manifest["components"]] == ["campplus"]
    assert _no_temps(tmp_path)


def test_interrupted_build_leaves_nothing(tmp_path):
    out = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-m", "packager", "build", "--out", str(out)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".b.tmp-*")) and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "build finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert not out.exists() and _no_temps(tmp_path), err.decode()


def test_unknown_component_and_target(tmp_path):
    code, _, err = run_cli("build", "--out", tmp_path / "x", "--components", "campplus,vocoder")
    assert code == 2 and "vocoder" in err and "--components" in err
    assert not (tmp_path / "x").exists()


def test_run_one_graph(tiny_bundle, tmp_path):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    graph = next(g for c in manifest["components"] for g in c["graphs"] if g["name"] == "campplus")
    case = graph["goldens"][0]
    inputs = {t["name"]: np.load(tiny_bundle / t["file"]) for t in case["inputs"]}
    np.savez(tmp_path / "in.npz", **inputs)
    code, out, err = run_cli("run", tiny_bundle, "campplus", "--inputs", tmp_path / "in.npz",
                             "--output", tmp_path / "out.npz")
    assert code == 0, err
    expected = np.load(tiny_bundle / case["outputs"][0]["file"])
    got = np.load(tmp_path / "out.npz")["output"]
    assert np.max(np.abs(got - expected)) < 2e-4


@pytest.mark.parametrize("bad, message", [
    ({"features": np.zeros((1, 50, 80), np.float32)}, "input names"),
    ({"input": np.zeros((1, 50, 80), np.float64)}, "dtype"),
    ({"input": np.zeros((50, 80), np.float32)}, "shape"),
    ({"input": np.zeros((1, 50, 81), np.float32)}, "shape"),
])
def test_run_rejects_bad_inputs(tiny_bundle, tmp_path, bad, message):
    np.savez(tmp_path / "in.npz", **bad)
    code, _, err = run_cli("run", tiny_bundle, "campplus", "--inputs", tmp_path / "in.npz",
                           "--output", tmp_path / "out.npz")
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out.npz").exists()


def test_module_entry_point_builds_by_default(tmp_path):
    """`python -m packager` with no verb builds the default bundle (the README's main job)."""
    proc = subprocess.run([sys.executable, "-m", "packager", "build", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "--checkpoint" in proc.stdout


@pytest.mark.parametrize("target", ["ie-2.4", "sentis-2.1"])
def test_default_bundle_passes_preflight_for_both_targets(tiny_bundle, target):
    code, out, err = run_cli("check", tiny_bundle, "--target", target)
    assert code == 0, out + err
    package, version = targets.RELEASES[target]
    n = sum(len(c["graphs"]) for c in json.loads((tiny_bundle / "manifest.json").read_text())["components"])
    summary = rf"checked {n} graphs \({n} files\) for {re.escape(package)} {re.escape(version)} \({target}\): "
    assert re.fullmatch(summary + r"0 errors, \d+ warnings?", out.splitlines()[-1]), out


def test_synth_length_choices_are_the_runtime_s() -> None:
    """cli.py declares synth's --length choices without importing tts (numpy): they must stay tts.LENGTHS."""
    from packager.runtime import tts
    assert cli.SYNTH_LENGTHS == ("auto", *tts.LENGTHS)


def test_a_swallowed_sigterm_still_stops_the_build() -> None:
    """SIGTERM raises KeyboardInterrupt; if that is swallowed (raised inside a finalizer during gc), leaving the
    build's context raises it again, so the staged folder is never swapped into place."""
    import os

    from packager.build import pipeline as build_module
    with pytest.raises(KeyboardInterrupt, match="signal"):
        with build_module._sigterm_as_interrupt():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.5)
            except KeyboardInterrupt:
                pass  # what a finalizer does with it
