"""The Sentis numerics emulation (packager/sentis/numerics.py): Sentis's weight quantization reproduced exactly, the
Sentis view, what a manifest graph runs as, and that the module works without torch (verify/run/synth use it)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from packager.sentis import numerics as S
from packager.onnx.session import run_onnx
from tests.conftest import REPO


def test_uint8_is_sentis_min_max_affine_scheme():
    # min -1, max 2: scale 3/255, zero point 85; 0.5/scale = 42.5 rounds half to even -> 42
    x = np.array([-1.0, 0.0, 0.5, 2.0], np.float32)
    scale = np.float32(3.0) / np.float32(255)
    want = (np.array([0, 85, 127, 255], np.float32) - 85).astype(np.float32) * scale
    assert np.array_equal(S.sentis_uint8(x), want)
    # all positive: the range still includes 0 (zero point 0); in float32, 1 / (2/255) = 127.49999 -> 127
    pos = S.sentis_uint8(np.array([1.0, 2.0], np.float32))
    assert np.array_equal(pos, np.array([127, 255], np.float32) * (np.float32(2) / np.float32(255)))
    assert np.array_equal(S.sentis_uint8(np.zeros(3, np.float32)), np.zeros(3, np.float32))


def test_float16_flushes_float32_subnormals_and_clamps():
    x = np.array([1e-40, 1e-6, 1.0 + 2 ** -12, 1e5, -1e5], np.float32)
    got = S.sentis_float16(x)
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
    assert sorted(S.quantized_constants(model)) == ["E", "W", "b"]
    view = S.sentis_view(model, "uint8")
    ids = {"ids": np.array([1, 7], np.int64)}
    q = {k: S.sentis_uint8(v) for k, v in inits.items() if k != "s"}
    want = (q["E"][[1, 7]] @ q["W"] + q["b"]) * 2.0
    np.testing.assert_allclose(run_onnx(view, ids)["y"], want, rtol=1e-6, atol=1e-6)


def test_fp16_file_runs_as_upcast_weights_and_float_casts(tmp_path):
    """Sentis imports fp16 initializers as float32 and a Cast to FLOAT16 as a Cast to float."""
    w = np.array([[1.0 + 2 ** -12, -3.0], [0.1, 65504.0]], np.float32)
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
             helper.make_node("MatMul", ["h", "W"], ["m"]),
             helper.make_node("Cast", ["m"], ["y"], to=TensorProto.FLOAT)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                          [numpy_helper.from_array(w.astype(np.float16), "W")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])
    view = S.sentis_view(model)
    assert view.graph.initializer[0].data_type == TensorProto.FLOAT
    assert all(a.i == TensorProto.FLOAT for n in view.graph.node for a in n.attribute if a.name == "to")
    x = np.array([[1.0 / 3, 70000.0]], np.float32)  # 70000 would be inf in fp16; Sentis computes in float32
    want = x @ w.astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(run_onnx(view, {"x": x})["y"], want, rtol=1e-6)
    assert S.unity_quantization_for("fp16", model) == "float16"  # every quantized constant is fp16 in the file
    assert S.unity_weight_bytes(model, "float16") == 4 * 2 and S.unity_weight_bytes(model, "none") == 4 * 4

    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    assert S.target_model(path, {"precision": "fp32", "unity_quantization": "none"}) == str(path)
    ran = S.target_model(path, {"precision": "fp16", "unity_quantization": "float16"})
    # onnxruntime upcasts: the fp16 weight feeds a Cast to float (folded when the session is made); weights of 1 KB
    # and more it reads from the file itself (onnx_utils.inline_structure)
    assert ran.folder == tmp_path and ran.model.graph.node[0].op_type == "Cast"
    assert ran.model.graph.initializer[0].data_type == TensorProto.FLOAT16
    assert np.array_equal(run_onnx(ran, {"x": x})["y"], run_onnx(view, {"x": x})["y"])


def test_upcast_in_graph_only_where_the_view_is_the_upcast():
    """Float16 quantization clamps an infinite fp16 weight to 65504 and uint8 rewrites values: those need the
    materialized view."""
    w = np.array([[1.0, np.inf], [0.5, 2.0]], np.float16)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"])]
    io = ([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    model = _graph(nodes, {"W": w}, *io)
    copy = lambda: _graph(nodes, {"W": w}, *io)  # noqa: E731  (upcast_in_graph rewrites in place)
    assert S.upcast_in_graph(copy(), "float16") is None and S.upcast_in_graph(copy(), "uint8") is None
    x = {"x": np.array([[1.0, 0.0]], np.float32)}
    assert run_onnx(S.sentis_view(model, "float16"), x)["y"][0, 1] == 65504  # 1 * 65504 + 0 * 2
    ran = S.upcast_in_graph(copy(), "none")  # no quantization: inf is imported as inf
    assert np.isinf(run_onnx(ran, x)["y"][0, 1]) and np.isinf(run_onnx(S.sentis_view(model), x)["y"][0, 1])
    finite = _graph(nodes, {"W": np.array([[1.0, 3.0], [0.5, 2.0]], np.float16)}, *io)
    assert np.array_equal(run_onnx(S.upcast_in_graph(finite, "float16"), x)["y"],
                          run_onnx(S.sentis_view(_graph(nodes, {"W": np.array([[1.0, 3.0], [0.5, 2.0]], np.float16)},
                                                        *io), "float16"), x)["y"])


def test_upcast_in_graph_equals_the_materialized_view_on_every_reduced_graph(tiny_bundle):
    """What verify, synth and the build's goldens run (onnxruntime folding the upcast) computes bit for bit what the
    materialized Sentis view computes, on every fp16 / uint8 graph of the default bundle and its golden inputs."""
    import json

    import onnx

    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    checked = upcasts = 0
    for c in manifest["components"]:
        for g in c["graphs"]:
            if g["precision"] == "fp32":
                continue
            path = tiny_bundle / g["file"]
            ran = S.target_model(path, g)
            upcasts += sum(n.name.startswith("sentis_upcast/") for n in ran.model.graph.node)
            view = S.sentis_view(onnx.load(str(path)), g["unity_quantization"])
            for case in g["goldens"]:
                ins = {t["name"]: np.load(tiny_bundle / t["file"]) for t in case["inputs"]}
                a, b = run_onnx(ran, ins), run_onnx(view, ins)
                assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
                checked += 1
    assert checked >= 5 and upcasts >= 20  # the recommended bundle's views are all upcasts done by onnxruntime


def test_module_does_not_import_torch():
    code = "import sys, packager.sentis.numerics; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
