"""Convert stage: Sentis's weight quantization emulated exactly, the Sentis view, fp16 overflow detection, and the
policy goldens of a built bundle reproduced under the Sentis view (issue #7 parts 2 and 5)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from packager import precision as P
from packager.checkpoint import Source
from packager.component import GoldenCase
from packager.errors import PackagerError
from packager.onnx_utils import run_onnx
from packager.stages import convert as C
from packager.stages.export import export_graph
from packager.tolerance import compare


def test_uint8_is_sentis_min_max_affine_scheme():
    # min -1, max 2: scale 3/255, zero point 85; 0.5/scale = 42.5 rounds half to even -> 42
    x = np.array([-1.0, 0.0, 0.5, 2.0], np.float32)
    scale = np.float32(3.0) / np.float32(255)
    want = (np.array([0, 85, 127, 255], np.float32) - 85).astype(np.float32) * scale
    assert np.array_equal(C.sentis_uint8(x), want)
    # all positive: the range still includes 0 (zero point 0); in float32, 1 / (2/255) = 127.49999 -> 127
    pos = C.sentis_uint8(np.array([1.0, 2.0], np.float32))
    assert np.array_equal(pos, np.array([127, 255], np.float32) * (np.float32(2) / np.float32(255)))
    assert np.array_equal(C.sentis_uint8(np.zeros(3, np.float32)), np.zeros(3, np.float32))


def test_float16_flushes_float32_subnormals_and_clamps():
    x = np.array([1e-40, 1e-6, 1.0 + 2 ** -12, 1e5, -1e5], np.float32)
    got = C.sentis_float16(x)
    assert got[0] == 0 and got[3] == 65504 and got[4] == -65504
    assert got[1] == np.float32(np.float16(1e-6)) and got[2] == 1.0  # half rounding, ties to even


def _graph(nodes, inits, inputs, outputs):
    g = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])


def test_quantized_constants_follow_model_quantizer():
    rng = np.random.default_rng(0)
    inits = {"W": rng.standard_normal((4, 3)).astype(np.float32), "b": rng.standard_normal(3).astype(np.float32),
             "E": rng.standard_normal((10, 4)).astype(np.float32), "s": np.float32([2.0])}
    nodes = [helper.make_node("Gather", ["E", "ids"], ["e"]), helper.make_node("MatMul", ["e", "W"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["d"]), helper.make_node("Mul", ["d", "s"], ["y"])]
    model = _graph(nodes, inits, [helper.make_tensor_value_info("ids", TensorProto.INT64, [2])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    # Gather table, MatMul weight and the Add bias Sentis fuses into Dense; never the Mul scale
    assert sorted(C.quantized_constants(model)) == ["E", "W", "b"]
    view = C.sentis_view(model, "uint8")
    ids = {"ids": np.array([1, 7], np.int64)}
    q = {k: C.sentis_uint8(v) for k, v in inits.items() if k != "s"}
    want = (q["E"][[1, 7]] @ q["W"] + q["b"]) * 2.0
    np.testing.assert_allclose(run_onnx(view, ids)["y"], want, rtol=1e-6, atol=1e-6)


class _Overflowing(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x):
        big = self.lin(x) * 3000.0  # |values| well above 65504 for |x| ~ 30
        return torch.tanh(big * 1e-3)


def _overflow_graph():
    from packager.component import GraphDef, TensorSpec, Tolerance

    torch.manual_seed(0)
    mod = _Overflowing().eval()
    x = torch.full((1, 8), 30.0)
    case = GoldenCase("c", {"x": x.numpy()}, {"y": mod(x).detach().numpy()})
    g = GraphDef("t", [TensorSpec("x", "float32", (1, 8))], [TensorSpec("y", "float32", (1, 8))], lambda: [case],
                 {"y": Tolerance()}, module=mod, example_inputs=(x,))
    return export_graph(g), case


def test_fp16_overflow_is_detected_reported_and_kept_float32():
    model, case = _overflow_graph()
    plain = C.to_fp16(model)
    found = C.find_overflows(plain, C.fp32_ranges(model, [case]))
    assert found and all(o.max_abs > 65504 for o in found)  # the naive conversion would overflow
    assert not np.isfinite(run_onnx(plain, case.inputs)["y"]).all() or found
    conv = C.convert(model, P.ComponentPolicy("fp16"), (), [case])
    assert [o.tensor for o in conv.overflows][:1] == [found[0].tensor]
    assert all(o.nodes for o in conv.overflows)
    assert not C.find_overflows(conv.model, C.fp32_ranges(model, [case]))
    got = run_onnx(conv.model, case.inputs)["y"]  # true fp16 compute is finite and close
    assert np.isfinite(got).all() and np.max(np.abs(got - case.outputs["y"])) < 1e-2


def test_unresolvable_overflow_is_an_error(monkeypatch):
    model, case = _overflow_graph()
    monkeypatch.setattr(C, "MAX_OVERFLOW_ROUNDS", 1)
    with pytest.raises(PackagerError, match="65504"):
        C.convert(model, P.ComponentPolicy("fp16"), (), [case])


def test_text_embedding_fp16_against_upstream_reference(tiny_a):
    """tiny_a's llm_text_embed: the Sentis view of the fp16 graph is exactly the upstream table rounded to fp16."""
    from packager import registry

    graphs = {g.name: g for g in registry.get("llm").build(Source(checkpoint=tiny_a)).graphs}
    g = graphs["llm_text_embed"]
    model, cases = export_graph(g), g.cases()
    conv = C.convert(model, P.ComponentPolicy("fp16"), g.keep_float32, cases)
    assert conv.unity_quantization == "float16"
    assert all(t.data_type == TensorProto.FLOAT16 and t.HasField("raw_data") for t in conv.model.graph.initializer)
    for case in cases:
        ref = next(iter(case.outputs.values()))
        got = next(iter(run_onnx(conv.view, case.inputs).values()))
        assert np.array_equal(got, ref.astype(np.float16).astype(np.float32))
        assert np.max(np.abs(got - ref)) <= np.max(np.abs(ref)) * 2 ** -11


def test_bundle_goldens_reproduce_under_the_sentis_view(tiny_bundle):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert manifest["precision_policy"]["name"] == "recommended"
    checked = 0
    for c in manifest["components"]:
        want = P.RECOMMENDED.get(c["name"], "fp32")
        for g in c["graphs"]:
            assert g["precision"] == want
            if want == "fp32":
                assert "precision_cost" not in g and g["unity_quantization"] == "none"
                continue
            shipped = onnx.load(str(tiny_bundle / g["file"]))
            cost = g["precision_cost"]
            assert cost["bytes"] == g["bytes"] and cost["bytes"] < cost["bytes_fp32"]
            assert cost["error"] and all(m["sqnr_db"] > 30 for m in cost["error"])
            view = C.sentis_view(shipped, g["unity_quantization"])
            tol = {t["output"]: t for t in g["tolerances"]}
            assert all(t["atol"] >= C.SENTIS_ATOL_FLOOR or t.get("exact") for t in tol.values())
            for case in g["goldens"]:
                ins = {t["name"]: np.load(tiny_bundle / t["file"]) for t in case["inputs"]}
                got = run_onnx(view, ins)
                for t in case["outputs"]:
                    v = compare(t["name"], got[t["name"]], np.load(tiny_bundle / t["file"]), tol[t["name"]])
                    assert v.passed and v.max_abs < 1e-5, v.summary()  # the goldens ARE this view's outputs
                    checked += 1
    assert checked >= 5
