"""CAMPPlus: the ceil_mode rewrite (and no attribute Sentis warns about), the fbank graph against the fixture, the tiny CAM++, and bad checkpoints."""
from __future__ import annotations

import copy
import shutil

import numpy as np
import onnx
import pytest
import torch

from packager.build.checkpoint import Source
from packager.components.campplus import fbank as fb
from packager.sentis import rules as R
from packager.components.campplus.component import CampPlus, fbank_features, sentis_rewrite
from packager.components.campplus.model import TINY, CamPlus, randomize
from packager.sentis.rewrites import count_ceil_mode_pools, upgrade_opset
from packager.onnx.session import run_onnx, session
from packager.sentis.preflight import check_model
from packager.build.stages.export import export_graph
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def fixture(upstream_ref):
    return np.load(upstream_ref / "campplus" / "reference.npz")


@pytest.fixture(scope="module")
def shipped_and_rewritten(upstream_ref):
    shipped = onnx.load(str(upstream_ref / "campplus" / "campplus.onnx"))
    rewritten = sentis_rewrite(upgrade_opset(copy.deepcopy(shipped), 15))
    return shipped, rewritten


def _pool_attributes(m: onnx.ModelProto) -> list[list[str]]:
    return [sorted(a.name for a in n.attribute) for n in m.graph.node if n.op_type == "AveragePool"]


def test_rewrite_removes_every_ceil_mode_pool(shipped_and_rewritten):
    shipped, rewritten = shipped_and_rewritten
    assert count_ceil_mode_pools(shipped) == 52
    assert _pool_attributes(shipped) == [["ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"]] * 52
    assert count_ceil_mode_pools(rewritten) == 0
    onnx.checker.check_model(rewritten)


def test_rewritten_graph_imports_without_warnings(shipped_and_rewritten):
    """No attribute either importer ignores: Sentis 2.4 logs "Unsupported attribute" for ceil_mode and
    count_include_pad even at their default 0 (once per pool at every import: 208 lines for the 104 pools)."""
    _, rewritten = shipped_and_rewritten
    assert _pool_attributes(rewritten) == [["kernel_shape", "strides"]] * 104
    for target in R.TARGETS:
        assert check_model(rewritten, target, "campplus") == [], target


def test_dropped_defaults_change_no_bit(shipped_and_rewritten):
    """The pools written with their defaults (what the build wrote before) give the same bits in onnxruntime."""
    _, rewritten = shipped_and_rewritten
    explicit = copy.deepcopy(rewritten)
    for node in explicit.graph.node:
        if node.op_type == "AveragePool":
            node.attribute.extend([onnx.helper.make_attribute("ceil_mode", 0),
                                   onnx.helper.make_attribute("count_include_pad", 0),
                                   onnx.helper.make_attribute("pads", [0, 0])])
    a, b = session(rewritten), session(explicit)
    rng = np.random.default_rng(2)
    for n in (3, 57, 199, 200, 201, 401, 998):
        x = rng.standard_normal((1, n, 80)).astype(np.float32)
        np.testing.assert_array_equal(a.run(None, {"input": x})[0], b.run(None, {"input": x})[0])


def test_tiny_export_imports_without_warnings():
    """The preset's PyTorch export goes through the same rewrites: plain pools, no finding on either target."""
    build = CampPlus().build(Source(preset="tiny"))
    model = export_graph(next(g for g in build.graphs if g.name == "campplus"))
    assert count_ceil_mode_pools(model) == 0
    assert _pool_attributes(model) == [["kernel_shape", "strides"]] * 12
    for target in R.TARGETS:
        assert check_model(model, target, "campplus") == [], target


def test_rewrite_matches_shipped_graph(shipped_and_rewritten):
    """Every residue of T and of the pooled length T' = ceil(T/2) modulo 100, plus long inputs up to 3000 frames.
    (benchmarks/campplus_pool_sweep.py runs every length 3..3000.)"""
    shipped, rewritten = shipped_and_rewritten
    a, b = session(shipped), session(rewritten)
    rng = np.random.default_rng(0)
    lengths = list(range(3, 203)) + [999, 1000, 1001, 2047, 2999, 3000]
    worst = 0.0
    for n in lengths:
        x = rng.standard_normal((1, n, 80)).astype(np.float32)
        worst = max(worst, float(np.abs(a.run(None, {"input": x})[0] - b.run(None, {"input": x})[0]).max()))
    assert worst <= 2e-4


def test_rewrite_is_needed(shipped_and_rewritten):
    """Dropping the partial window (what Sentis does with ceil_mode ignored) changes the embedding visibly."""
    shipped, _ = shipped_and_rewritten
    floor = copy.deepcopy(shipped)
    for node in floor.graph.node:
        for attr in node.attribute:
            if node.op_type == "AveragePool" and attr.name == "ceil_mode":
                attr.i = 0
    x = np.random.default_rng(1).standard_normal((1, 257, 80)).astype(np.float32)
    try:
        diff = np.abs(run_onnx(shipped, {"input": x})["output"] - run_onnx(floor, {"input": x})["output"]).max()
    except Exception:  # the floor-mode shapes no longer line up at all: also "computes differently"
        diff = np.inf
    assert diff > 1e-2


def test_goldens_reproduce_fixture_outputs(upstream_ref, fixture):
    """The checkpoint build's golden inputs are the fixture's N(0,1) cases; references equal the fixture's ORT."""
    build = CampPlus().build(Source(checkpoint=upstream_ref / "campplus"))
    graph = next(g for g in build.graphs if g.name == "campplus")
    cases = {c.name: c for c in graph.cases()}
    for n in (57, 300, 998):
        np.testing.assert_array_equal(cases[f"frames{n}"].inputs["input"], fixture[f"feat_T{n}"])
        # the fixture's ORT ran on another CPU: onnxruntime picks its float32 kernels per CPU, and on an AMD EPYC
        # (no AVX-512) the same graph and inputs differ from it by up to 4.7e-5 (measured, also on 5f251c7)
        np.testing.assert_allclose(cases[f"frames{n}"].outputs["output"], fixture[f"out_ort_T{n}"], atol=1e-4)
    assert sorted(n % 100 != 0 for n in (57, 300, 998, 3, 150, 401)).count(True) >= 4


def test_fbank_reference_matches_fixture(fixture):
    raw = fb.kaldi_fbank_reference(fixture["wave"])
    assert raw.shape == (198, 80) == fixture["fbank_raw"].shape
    assert np.abs(raw - fixture["fbank_raw"]).max() < 1e-3
    feat, _ = fbank_features(fixture["wave"])
    assert np.abs(feat - fixture["feat"]).max() < 1e-3


def test_fbank_graph_matches_fixture(fixture):
    build = CampPlus().build(Source(preset="tiny"))
    graph = next(g for g in build.graphs if g.name == "campplus_fbank")
    model = export_graph(graph)
    assert {n.op_type for n in model.graph.node} <= {"Unsqueeze", "Conv", "Shape", "Gather", "Slice", "Mul", "Add",
                                                     "Transpose", "MatMul", "Clip", "Log", "ReduceMean", "Sub",
                                                     "Constant", "Div", "Max", "Cast", "Concat", "Reshape"}
    out = run_onnx(model, {"waveform": fixture["wave"][None]})
    assert out["fbank"].shape == (1, 198, 80)
    assert np.abs(out["fbank"][0] - fixture["fbank_raw"]).max() < 1e-3
    assert np.abs(out["features"] - fixture["feat"]).max() < 1e-3
    assert fb.num_frames(32000) == 198 and fb.num_frames(399) == 0


def test_tiny_campplus_is_not_degenerate():
    model = randomize(CamPlus(TINY), torch.Generator().manual_seed(1234))
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((3, 120, 80)).astype(np.float32))
    with torch.no_grad():
        y = model(x)
    cos = torch.nn.functional.cosine_similarity(y[0], y[1:], dim=-1)
    assert y.shape == (3, 192) and float(y.norm(dim=1).min()) > 1.0
    assert float(cos.abs().max()) < 0.9


# ---------------------------------------------------------------- bad checkpoints
def _ckpt(tmp_path, content: bytes | None) -> object:
    d = tmp_path / "ckpt"
    d.mkdir()
    if content is not None:
        (d / "campplus.onnx").write_bytes(content)
    return d


def _bad_build(tmp_path, ckpt) -> str:
    out = tmp_path / "out"
    code, _, err = run_cli("build", "--checkpoint", ckpt, "--out", out, "--components", "campplus")
    assert code == 2, err
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out.*"))
    return err


def test_missing_campplus(tmp_path):
    err = _bad_build(tmp_path, _ckpt(tmp_path, None))
    assert "missing: campplus.onnx" in err and "Fun-CosyVoice3-0.5B layout" in err, err


def test_lfs_pointer(tmp_path):
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:4f79\nsize 28303423\n"
    assert "Git LFS pointer" in _bad_build(tmp_path, _ckpt(tmp_path, pointer))


def test_truncated_campplus(tmp_path, upstream_ref):
    data = (upstream_ref / "campplus" / "campplus.onnx").read_bytes()
    err = _bad_build(tmp_path, _ckpt(tmp_path, data[: len(data) // 3]))
    assert "campplus.onnx" in err and ("truncated" in err or "not a usable" in err or "checker" in err)


def test_not_onnx(tmp_path):
    err = _bad_build(tmp_path, _ckpt(tmp_path, b"<html>404 Not Found</html>\n" * 10))
    assert "campplus.onnx" in err


def test_wrong_input_rank(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["frames", 80])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["frames", 80])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 11)])
    err = _bad_build(tmp_path, _ckpt(tmp_path, model.SerializeToString()))
    assert "campplus.onnx" in err and "rank 3" in err
