"""The Sentis pre-flight checker: every rule has a failing and a passing model (tiny, built with onnx.helper), plus
the real campplus.onnx (exactly its 52 ceil_mode AveragePools), files, bundles and the CLI verb."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnx.inliner
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper
from onnx.external_data_helper import set_external_data

from packager.sentis import preflight
from packager.verbs import check as check_verb
from packager.sentis import rules as R
from packager.contract.errors import PackagerError
from packager.sentis.preflight import check_model, errors, format_findings

F, I32, I64 = T.FLOAT, T.INT32, T.INT64
INT64_MAX = 2 ** 63 - 1


def vi(name: str, shape, dtype: int = F) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def model(nodes, inputs, outputs, inits=(), opset: int = 15, domains=(), functions=()) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    m = helper.make_model(g, opset_imports=opsets, functions=list(functions))
    try:  # the checker wants a shape on every graph output: take the inferred one
        inferred = {o.name: o for o in onnx.shape_inference.infer_shapes(m).graph.output}
    except Exception:  # noqa: BLE001 - some failing models are meant to break inference
        return m
    for o in m.graph.output:
        o.CopyFrom(inferred[o.name])
    return m


def unary(op: str, dtype: int = F, shape=("n", 4), opset: int = 15, domain: str = "", **attrs) -> onnx.ModelProto:
    node = helper.make_node(op, ["x"], ["y"], name="n0", domain=domain, **attrs)
    return model([node], [vi("x", list(shape), dtype)], [vi("y", None, dtype)], opset=opset,
                 domains=[domain] if domain else [])


def const(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


# --- per-rule models: rule -> (target, severity, failing model, passing model) ---------------------------------------
def _layernorm(axis: int) -> onnx.ModelProto:
    n = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], name="n0", axis=axis)
    return model([n], [vi("x", [1, "t", 8])], [vi("y", None)], [const("s", np.ones(8, np.float32)),
                                                                   const("b", np.zeros(8, np.float32))], opset=17)


def _convt(opset: int = 15, **attrs) -> onnx.ModelProto:
    n = helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="n0", kernel_shape=[3], **attrs)
    return model([n], [vi("x", [1, 4, "t"])], [vi("y", None)], [const("w", np.ones((4, 2, 3), np.float32))], opset)


def _resize(**attrs) -> onnx.ModelProto:
    n = helper.make_node("Resize", ["x", "", "sc"], ["y"], name="n0", **attrs)
    return model([n], [vi("x", [1, 2, "t"])], [vi("y", None)], [const("sc", np.array([1, 1, 2], np.float32))])


def _pool(op: str, shape=(1, 2, "t"), out2: bool = False, **attrs) -> onnx.ModelProto:
    outs = ["y", "idx"] if out2 else ["y"]
    n = helper.make_node(op, ["x"], outs, name="n0", **attrs)
    outputs = [vi("y", None)] + ([vi("idx", None, I64)] if out2 else [])
    return model([n], [vi("x", list(shape))], outputs)


def _batchnorm(training: int) -> onnx.ModelProto:
    n = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="n0", training_mode=training)
    ones, zeros = np.ones(2, np.float32), np.zeros(2, np.float32)
    return model([n], [vi("x", [1, 2, "t"])], [vi("y", [1, 2, "t"])],
                 [const("s", ones), const("b", zeros), const("m", zeros), const("v", ones)])


def _scatter(reduction: str) -> onnx.ModelProto:
    n = helper.make_node("ScatterND", ["x", "i", "u"], ["y"], name="n0", reduction=reduction)
    return model([n], [vi("x", [4, 3]), vi("u", [1, 3])], [vi("y", None)], [const("i", np.array([[1]], np.int64))],
                 opset=18)


def _dft(with_axis_input: bool) -> onnx.ModelProto:
    if with_axis_input:
        n = helper.make_node("DFT", ["x", "", "ax"], ["y"], name="n0")
        return model([n], [vi("x", [1, 16, 1])], [vi("y", None)], [const("ax", np.array(1, np.int64))], opset=20)
    n = helper.make_node("DFT", ["x"], ["y"], name="n0", axis=1)
    return model([n], [vi("x", [1, 16, 1])], [vi("y", None)], opset=17)


def _window(dtype: int) -> onnx.ModelProto:
    n = helper.make_node("HannWindow", ["size"], ["y"], name="n0", output_datatype=dtype)
    return model([n], [vi("size", [], I32)], [vi("y", ["n"], dtype)], opset=17)


def _roialign(mode: str) -> onnx.ModelProto:
    n = helper.make_node("RoiAlign", ["x", "rois", "bi"], ["y"], name="n0", coordinate_transformation_mode=mode)
    return model([n], [vi("x", [1, 2, 8, 8]), vi("rois", ["r", 4])], [vi("y", None)],
                 [const("bi", np.zeros(1, np.int64))], opset=16)


def _constant(**attrs) -> onnx.ModelProto:
    c = helper.make_node("Constant", [], ["c"], name="n0", **attrs)
    add = helper.make_node("Add", ["x", "c"], ["y"], name="n1")
    return model([c, add], [vi("x", [2])], [vi("y", None)])


def _matmul(dtype: int) -> onnx.ModelProto:
    n = helper.make_node("MatMul", ["a", "b"], ["y"], name="n0")
    return model([n], [vi("a", [2, 3], dtype), vi("b", [3, 2], dtype)], [vi("y", None, dtype)])


def _reshape_rank(rank: int) -> onnx.ModelProto:
    n = helper.make_node("Reshape", ["x", "s"], ["y"], name="n0")
    return model([n], [vi("x", [1] * 8)], [vi("y", None)], [const("s", np.ones(rank, np.int64))])


def _init(tensor: onnx.TensorProto) -> onnx.ModelProto:
    """``y = x + tensor`` (with a Cast when the tensor is not float)."""
    dt = tensor.data_type
    nodes = [helper.make_node("Cast", ["w"], ["wf"], name="cast", to=F)] if dt != F else []
    nodes.append(helper.make_node("Add", ["x", "wf" if dt != F else "w"], ["y"], name="n0"))
    tensor.name = "w"
    return model(nodes, [vi("x", list(tensor.dims))], [vi("y", None)], [tensor])


def _int64_into(op: str, value: int) -> onnx.ModelProto:
    """An int64 constant ``value`` reaching a Slice `ends` (via Unsqueeze/Concat) or an Add."""
    nodes = [helper.make_node("Constant", [], ["c"], name="c0", value=const("", np.array(value, np.int64))),
             helper.make_node("Unsqueeze", ["c", "ax"], ["cu"], name="u0"),
             helper.make_node("Concat", ["cu"], ["ends"], name="cat", axis=0)]
    if op == "Slice":
        nodes.append(helper.make_node("Slice", ["x", "st", "ends"], ["y"], name="n0"))
        return model(nodes, [vi("x", ["t"])], [vi("y", None)], [const("ax", np.array([0], np.int64)),
                                                                  const("st", np.array([1], np.int64))])
    nodes.append(helper.make_node("Add", ["x", "ends"], ["y"], name="n0"))
    return model(nodes, [vi("x", [1], I64)], [vi("y", None, I64)], [const("ax", np.array([0], np.int64))])


def _io(name: str = "x", dtype: int = F, shape=("n",), out: str = "y") -> onnx.ModelProto:
    n = helper.make_node("Identity", [name], [out], name="n0")
    return model([n], [helper.make_tensor_value_info(name, dtype, shape)], [vi(out, None, dtype)])


def _function(inline: bool) -> onnx.ModelProto:
    fn = helper.make_function("local", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                              [helper.make_opsetid("", 15)])
    m = model([helper.make_node("Twice", ["x"], ["y"], name="n0", domain="local")], [vi("x", [2])], [vi("y", [2])],
              domains=["local"], functions=[fn])
    return onnx.inliner.inline_local_functions(m) if inline else m


def _if(branchy: bool) -> onnx.ModelProto:
    if not branchy:
        return model([helper.make_node("Where", ["c", "x", "z"], ["y"], name="n0")],
                     [vi("c", [2], T.BOOL), vi("x", [2]), vi("z", [2])], [vi("y", None)])
    branch = lambda v: helper.make_graph([helper.make_node("Identity", [v], ["o"])], "b", [], [vi("o", [2])])
    n = helper.make_node("If", ["c"], ["y"], name="n0", then_branch=branch("x"), else_branch=branch("z"))
    return model([n], [vi("c", [], T.BOOL), vi("x", [2]), vi("z", [2])], [vi("y", None)])


def _opset_alias(alias: bool) -> onnx.ModelProto:
    m = unary("Relu")
    if alias:
        m.opset_import[0].domain = "ai.onnx"
    return m


def _cast_through(dtype: int) -> onnx.ModelProto:
    nodes = [helper.make_node("Cast", ["x"], ["h"], name="n0", to=dtype),
             helper.make_node("Cast", ["h"], ["y"], name="n1", to=F)]
    return model(nodes, [vi("x", [2])], [vi("y", None)])


def _fp16_typed() -> onnx.ModelProto:
    return _init(helper.make_tensor("w", T.FLOAT16, [2], np.array([1, 2], np.float16).view(np.uint16).tolist()))


CASES: dict[str, tuple[str, str, Callable[[], onnx.ModelProto], Callable[[], onnx.ModelProto]]] = {
    "subgraph": ("ie-2.4", "error", lambda: _if(True), lambda: _if(False)),
    "model-function": ("ie-2.4", "error", lambda: _function(False), lambda: _function(True)),
    "opset-domain": ("ie-2.4", "error", lambda: _opset_alias(True), lambda: _opset_alias(False)),
    "opset-range": ("ie-2.4", "error", lambda: unary("Relu", opset=21), lambda: unary("Relu", opset=15)),
    "node-domain": ("ie-2.4", "error", lambda: unary("Relu", domain="com.example"), lambda: unary("Relu")),
    "op-not-supported": ("sentis-2.1", "error", lambda: unary("Mish", opset=18), lambda: unary("Softplus")),
    "op-rejected": ("ie-2.4", "error", lambda: unary("DequantizeLinear", I32, opset=15, shape=(4,)),
                    lambda: unary("Identity", I32)),
    "random-op": ("ie-2.4", "error", lambda: unary("RandomNormalLike"), lambda: unary("Neg")),
    "float-only-op": ("ie-2.4", "error", lambda: _matmul(I32), lambda: _matmul(F)),
    "layernorm-axis": ("ie-2.4", "error", lambda: _layernorm(1), lambda: _layernorm(2)),
    "convtranspose-output-shape": ("ie-2.4", "error", lambda: _convt(output_shape=[9]), lambda: _convt(pads=[0, 0])),
    "convtranspose-group-dilations": ("sentis-2.1", "error", lambda: _convt(dilations=[2]), lambda: _convt()),
    "resize-mode": ("ie-2.4", "error", lambda: _resize(mode="cubic"), lambda: _resize(mode="linear")),
    "maxpool-indices": ("ie-2.4", "error", lambda: _pool("MaxPool", out2=True, kernel_shape=[2]),
                        lambda: _pool("MaxPool", kernel_shape=[2])),
    "pool-count-include-pad": ("ie-2.4", "error",
                               lambda: _pool("AveragePool", kernel_shape=[3], pads=[1, 1], count_include_pad=1),
                               lambda: _pool("AveragePool", kernel_shape=[3], pads=[1, 1])),
    "pool-dilations": ("ie-2.4", "error", lambda: _pool("MaxPool", kernel_shape=[2], dilations=[2]),
                       lambda: _pool("MaxPool", kernel_shape=[2], dilations=[1])),
    "pool-ceil-mode": ("ie-2.4", "error", lambda: _pool("AveragePool", kernel_shape=[4], strides=[4], ceil_mode=1),
                       lambda: _pool("AveragePool", (1, 2, 12), kernel_shape=[4], strides=[4], ceil_mode=1)),
    "ignored-attribute": ("ie-2.4", "warning",
                          lambda: _pool("AveragePool", kernel_shape=[4], strides=[4], ceil_mode=0),
                          lambda: _pool("AveragePool", kernel_shape=[4], strides=[4])),
    "gelu-tanh": ("sentis-2.1", "warning", lambda: unary("Gelu", opset=20, approximate="tanh"),
                  lambda: unary("Gelu", opset=20)),
    "batchnorm-training": ("ie-2.4", "error", lambda: _batchnorm(1), lambda: _batchnorm(0)),
    "scatter-reduction": ("sentis-2.1", "error", lambda: _scatter("max"), lambda: _scatter("add")),
    "dft-axis-input": ("ie-2.4", "error", lambda: _dft(False), lambda: _dft(True)),
    "window-dtype": ("ie-2.4", "error", lambda: _window(T.DOUBLE), lambda: _window(F)),
    "roialign-mode": ("sentis-2.1", "error", lambda: _roialign("output_half_pixel"), lambda: _roialign("half_pixel")),
    "constant-value": ("sentis-2.1", "error", lambda: _constant(value_floats=[1.0, 2.0]),
                       lambda: _constant(value=const("", np.array([1, 2], np.float32)))),
    "tensor-dtype": ("ie-2.4", "error", lambda: _init(const("w", np.ones(2, np.uint16))),
                     lambda: _init(const("w", np.ones(2, np.int32)))),
    "fp16-raw-data": ("ie-2.4", "error", _fp16_typed, lambda: _init(const("w", np.ones(2, np.float16)))),
    "tensor-storage": ("ie-2.4", "error", lambda: _init(helper.make_tensor("w", T.BOOL, [2], [1, 0])),
                       lambda: _init(const("w", np.array([True, False])))),
    "int64-range": ("ie-2.4", "error", lambda: _int64_into("Add", INT64_MAX), lambda: _int64_into("Slice", INT64_MAX)),
    "io-name": ("sentis-2.1", "warning", lambda: _io("x:0"), lambda: _io("x")),
    "io-dtype": ("ie-2.4", "error", lambda: _io(dtype=T.STRING), lambda: _io(dtype=I32)),
    "input-shape": ("ie-2.4", "error", lambda: _io(shape=None), lambda: _io(shape=["n", 3])),
    "rank-over-8": ("ie-2.4", "error", lambda: _reshape_rank(9), lambda: _reshape_rank(8)),
    "bfloat16": ("ie-2.4", "warning", lambda: _cast_through(T.BFLOAT16), lambda: _cast_through(T.FLOAT16)),
    "layernorm-fusion-rank": ("ie-2.4", "error", lambda: _decomposed_layernorm(3), lambda: _decomposed_layernorm(1)),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fails_and_passes(rule: str) -> None:
    target, severity, bad, good = CASES[rule]
    found = [f for f in check_model(bad(), target, "g") if f.rule == rule]
    assert found and found[0].severity == severity, check_model(bad(), target, "g")
    assert found[0].graph == "g" and found[0].node in {"", *(n.name for n in bad().graph.node)}
    assert found[0].fix == R.FIXES[rule] or rule == "op-rejected"
    clean = check_model(good(), target, "g")
    assert not [f for f in clean if f.rule == rule or f.severity == "error"], clean


def test_every_rule_id_has_a_failing_case_somewhere() -> None:
    covered = set(CASES) | {"file-size", "onnx-checker", "shape-inference"} | {r for r in R.FIXES
                                                                                 if r.startswith("external-data")}
    assert covered == set(R.FIXES)


@pytest.mark.parametrize("target,op,ok", [("ie-2.4", "Mish", True), ("ie-2.4", "STFT", True),
                                          ("sentis-2.1", "STFT", False), ("sentis-2.1", "Swish", True),
                                          ("ie-2.4", "GRU", False), ("ie-2.4", "Loop", False)])
def test_op_sets_per_target(target: str, op: str, ok: bool) -> None:
    assert len(R.OPS_SENTIS_2_1) == 136 and len(R.OPS_IE_2_4) == 147
    assert (op in R.TARGETS[target].ops) == ok and not set(R.HARD_REJECTS) & R.OPS_IE_2_4


def test_target_differences() -> None:
    """Rules that differ per target: the same model is fine on ie-2.4 and an error (or warning) on sentis-2.1."""
    for rule in ("convtranspose-group-dilations", "scatter-reduction", "roialign-mode", "constant-value",
                 "gelu-tanh", "op-not-supported"):
        assert not errors(check_model(CASES[rule][2](), "ie-2.4", "g")), rule
    assert {f.rule for f in check_model(unary("TopK", I32), "sentis-2.1", "g")} >= {"float-only-op"}
    assert not [f for f in check_model(_io("x:0"), "ie-2.4", "g") if f.rule == "io-name"]


def test_details() -> None:
    # ceil_mode: a static length that is not a whole number of strides still drops a window
    assert [f.rule for f in check_model(_pool("AveragePool", (1, 2, 13), kernel_shape=[4], strides=[4],
                                              ceil_mode=1), "ie-2.4", "g")] == ["pool-ceil-mode", "ignored-attribute"]
    # int64: a real value out of int32 range is an error even on its way to a Slice
    assert [f.rule for f in check_model(_int64_into("Slice", 2 ** 40), "ie-2.4", "g")] == ["int64-range"]
    # int64 graph input: a warning (Tensor<int>), not an error
    assert [(f.severity, f.rule) for f in check_model(_io(dtype=I64), "ie-2.4", "g")] == [("warning", "io-dtype")] * 2
    # an output nobody produces: the checker and the io-name rule both say so
    bad = _io(out="y")
    bad.graph.output.append(vi("z", [1]))
    assert {"onnx-checker", "io-name"} <= {f.rule for f in check_model(bad, "ie-2.4", "g")}
    # strict shape inference failure is a warning; negative input dims too
    m = model([helper.make_node("Add", ["a", "b"], ["y"], name="n0")], [vi("a", [2]), vi("b", [3])], [vi("y", None)])
    assert "shape-inference" in {f.rule for f in check_model(m, "ie-2.4", "g") if f.severity == "warning"}
    assert [(f.severity, f.rule) for f in check_model(_io(shape=[-1]), "ie-2.4", "g")] == [("warning", "input-shape")]
    with pytest.raises(PackagerError, match="unknown Sentis target"):
        check_model(unary("Relu"), "ie-9", "g")


def _ignored(m: onnx.ModelProto, target: str) -> list[tuple[str, str]]:
    """(node, attribute) of every ignored-attribute finding; the attribute is the message's ``attribute NAME=``."""
    return [(f.node, f.message.split("=")[0].removeprefix("attribute ")) for f in check_model(m, target, "g")
            if f.rule == "ignored-attribute"]


def test_ignored_attribute_per_target() -> None:
    """What each importer logs "Unsupported attribute" for (read in ONNXNodeWrapper.UnsupportedAttribute, measured on
    2.4.1 and 2.1.2 with tests/sentis_real): Inference Engine 2.4 warns whenever a scalar attribute is there, even
    at its default; Sentis 2.1 only for another value. Int lists compare with [1, 1] in both."""
    both, ie, none = ("ie-2.4", "sentis-2.1"), ("ie-2.4",), ()
    cases = [  # model, the targets that warn, the attributes named
        (_pool("AveragePool", kernel_shape=[4], strides=[4], ceil_mode=0, count_include_pad=0), ie,
         ["ceil_mode", "count_include_pad"]),
        # whole windows on a static length: no pool-ceil-mode error, yet both importers log the value they ignore
        (_pool("AveragePool", (1, 2, 12), kernel_shape=[4], strides=[4], ceil_mode=1), both, ["ceil_mode"]),
        (_pool("MaxPool", kernel_shape=[2], storage_order=0), ie, ["storage_order"]),
        (_pool("MaxPool", kernel_shape=[2], dilations=[1]), both, ["dilations"]),  # [1] is not [1, 1]
        (_pool("MaxPool", (1, 2, 6, 6), kernel_shape=[2, 2], dilations=[1, 1]), none, []),
        (_pool("AveragePool", kernel_shape=[2], pads=[0, 0]), none, []),  # pads is honoured
        (_layernorm(-1), ie, ["axis"]),
        (_layernorm(2), both, ["axis"]),  # also fine numerically (the last axis), yet 2.1 logs it too
        (_resize(mode="linear", extrapolation_value=0.0), ie, ["extrapolation_value"]),  # 2.1 reads it as an int
        (_resize(mode="linear", exclude_outside=0), ie, ["exclude_outside"]),
        (_convt(group=1), none, []),
        (_window(F), ie, ["output_datatype"]),
        (_roialign("output_half_pixel"), ("sentis-2.1",), ["coordinate_transformation_mode"]),
    ]
    for m, targets, attrs in cases:
        for target in R.TARGETS:
            want = [("n0", a) for a in attrs] if target in targets else []
            assert _ignored(m, target) == want, (target, m.graph.node[0])
    found = [f for f in check_model(cases[0][0], "ie-2.4", "g") if f.rule == "ignored-attribute"]
    assert [(f.severity, f.op_type) for f in found] == [("warning", "AveragePool")] * 2
    assert found[0].message.startswith("attribute ceil_mode=0: the com.unity.ai.inference 2.4.0 importer ignores it")
    assert "it holds the default (0), so dropping it changes nothing" in found[0].message
    assert "computed as if it were 0" in [f for f in check_model(cases[1][0], "sentis-2.1", "g")
                                          if f.rule == "ignored-attribute"][0].message


def test_drop_default_attributes_clears_the_warnings() -> None:
    """The fix the rule names: attributes at their ONNX default go, other values stay, and onnxruntime computes
    bit for bit the same."""
    from packager.sentis.rewrites import drop_default_attributes
    from packager.onnx.session import run_onnx

    nodes = [helper.make_node("AveragePool", ["x"], ["a"], name="avg", kernel_shape=[3], strides=[3], ceil_mode=0,
                              count_include_pad=0, pads=[0, 0]),
             helper.make_node("MaxPool", ["x"], ["b"], name="max", kernel_shape=[2], strides=[2], storage_order=0,
                              dilations=[1]),
             helper.make_node("AveragePool", ["x"], ["c"], name="ceil", kernel_shape=[4], strides=[4], ceil_mode=1)]
    m = model(nodes, [vi("x", [1, 2, "t"])], [vi("a", None), vi("b", None), vi("c", None)])
    x = np.random.default_rng(5).standard_normal((1, 2, 13)).astype(np.float32)
    before = run_onnx(m, {"x": x})
    assert _ignored(m, "ie-2.4") == [("avg", "ceil_mode"), ("avg", "count_include_pad"), ("max", "dilations"),
                                     ("max", "storage_order"), ("ceil", "ceil_mode")]
    fixed = drop_default_attributes(m)
    assert [sorted(a.name for a in n.attribute) for n in fixed.graph.node] == [
        ["kernel_shape", "pads", "strides"], ["kernel_shape", "strides"], ["ceil_mode", "kernel_shape", "strides"]]
    assert _ignored(fixed, "ie-2.4") == _ignored(fixed, "sentis-2.1") == [("ceil", "ceil_mode")]
    after = run_onnx(fixed, {"x": x})
    assert before["c"].shape == (1, 2, 4) and all(np.array_equal(before[k], after[k]) for k in "abc")


def _external(tmp_path: Path, gap: int = 0, location: str = "w.data", write: bool = True) -> Path:
    """A model with two external initializers in one data file (``gap`` bytes of padding between them)."""
    a, b = np.arange(4, dtype=np.float32), np.arange(4, 8, dtype=np.float32)
    tensors = []
    for name, arr, off in (("a", a, 0), ("b", b, 16 + gap)):
        t = const(name, arr)
        set_external_data(t, location, offset=off, length=16)
        t.ClearField("raw_data")
        t.data_location = T.EXTERNAL
        tensors.append(t)
    nodes = [helper.make_node("Add", ["x", "a"], ["t"], name="n0"),
             helper.make_node("Add", ["t", "b"], ["y"], name="n1")]
    m = model(nodes, [vi("x", [4])], [vi("y", None)], tensors)
    if write:
        (tmp_path / "w.data").write_bytes(a.tobytes() + b"\0" * gap + b.tobytes())
    onnx.save_model(m, tmp_path / "m.onnx")
    return tmp_path / "m.onnx"


def test_external_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = lambda p: [f.rule for f in preflight.check_file(p, "ie-2.4") if f.severity == "error"]
    assert rules(_external(tmp_path)) == []
    assert rules(_external(tmp_path, gap=48)) == ["external-data-layout"]
    assert rules(_external(tmp_path, location="sub/w.data")) == ["external-data-location"] * 2
    (tmp_path / "w.data").unlink()
    assert rules(_external(tmp_path, write=False)) == ["external-data-missing"]
    # onnx's own external-data writer is accepted as is
    m = _init(const("w", np.ones(300, np.float32)))
    onnx.save_model(m, tmp_path / "e.onnx", save_as_external_data=True, location="e.data", size_threshold=0)
    assert rules(tmp_path / "e.onnx") == []
    # a Constant's tensor attribute stored externally
    c = _constant(value=const("", np.array([1, 2], np.float32)))
    set_external_data(c.graph.node[0].attribute[0].t, "w.data", offset=0, length=8)
    c.graph.node[0].attribute[0].t.data_location = T.EXTERNAL
    assert "external-data-attribute" in {f.rule for f in check_model(c, "ie-2.4", "g")}
    monkeypatch.setattr(R, "MAX_TENSOR_BYTES", 16)
    assert rules(_external(tmp_path)) == ["external-data-tensor-size"] * 2


def test_files_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from packager import cli

    class Check:  # `python -m packager check ARGS`, parsed by the CLI
        @staticmethod
        def parse_args(args: list[str]) -> argparse.Namespace:
            return cli.parser("check").parse_args(["check", *args])

    parser = Check()
    ok, bad = tmp_path / "ok.onnx", tmp_path / "bad.onnx"
    onnx.save_model(unary("Relu"), ok)
    onnx.save_model(_pool("MaxPool", kernel_shape=[2], dilations=[2]), bad)
    assert check_verb.run(parser.parse_args([str(ok)])) == 0
    assert capsys.readouterr().out.strip() == \
        "checked 1 graph (ok.onnx) for com.unity.ai.inference 2.4.0 (ie-2.4): 0 errors, 0 warnings"
    assert check_verb.run(parser.parse_args([str(bad), "--target", "sentis-2.1", "--json"])) == 1
    out = json.loads(capsys.readouterr().out)
    assert out[0]["rule"] == "pool-dilations" and out[0]["graph"] == "bad" and out[0]["node"] == "n0"
    # a bundle: manifest.json lists the graphs; its target is the default
    manifest = {"target": {"runtime": "sentis-2.1"},
                "components": [{"name": "c", "graphs": [{"name": "good", "file": "ok.onnx"},
                                                        {"name": "pools", "file": "bad.onnx"}]}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert check_verb.run(parser.parse_args([str(tmp_path)])) == 1
    text = capsys.readouterr().out
    assert "ERROR   pools  [pool-dilations]  MaxPool  x1" in text
    assert text.strip().endswith("checked 2 graphs (2 files) for com.unity.sentis 2.1.3 (sentis-2.1): 1 error, "
                                 "1 warning"), text
    # unreadable input -> PackagerError (exit code 2 in the CLI)
    lfs, junk = tmp_path / "lfs.onnx", tmp_path / "junk.onnx"
    lfs.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n")
    junk.write_bytes(ok.read_bytes()[:-7])
    for path, match in ((lfs, "Git LFS"), (junk, "not a readable ONNX"), (tmp_path / "no.onnx", "not found"),
                        (tmp_path / "sub", "manifest")):
        path.parent.mkdir(exist_ok=True) if path.name != "sub" else path.mkdir()
        with pytest.raises(PackagerError, match=match):
            check_verb.run(parser.parse_args([str(path)]))
    monkeypatch.setattr(R, "MAX_PROTO_BYTES", 10)
    assert [f.rule for f in preflight.check_file(ok, "ie-2.4")] == ["file-size"]
    assert "file-size" in {f.rule for f in check_model(unary("Relu"), "ie-2.4", "g")}


def test_campplus_has_exactly_its_ceil_mode_pools(upstream_ref: Path) -> None:
    """The shipped CAM++ export: 52 segment-pooling AveragePools with ceil_mode=1 (errors) and count_include_pad=1,
    both of which each importer logs as ignored (warnings), nothing else."""
    for target in R.TARGETS:
        found = preflight.check_file(upstream_ref / "campplus" / "campplus.onnx", target, "campplus")
        assert [f.rule for f in errors(found)] == ["pool-ceil-mode"] * 52
        assert all(f.op_type == "AveragePool" and f.node.endswith("cam_layer/AveragePool") for f in found)
        warned = [f.message.split(":")[0] for f in found if f.severity == "warning"]
        assert [f.rule for f in found if f.severity == "warning"] == ["ignored-attribute"] * 104
        assert sorted(set(warned)) == ["attribute ceil_mode=1", "attribute count_include_pad=1"]
    text = format_findings(errors(found))
    assert "ERROR   campplus  [pool-ceil-mode]  AveragePool  x52" in text and "... and 47 more" in text
    assert text.endswith("52 errors, 0 warnings") and len(format_findings(errors(found), None).splitlines()) == 5
    assert format_findings(found).endswith("52 errors, 104 warnings")


def _decomposed_layernorm(affine_rank: int) -> onnx.ModelProto:
    """x [B, T, 4] -> (x - mean) / sqrt(var + eps) * scale + bias, as the TorchScript exporter writes a LayerNorm at
    opset 15; scale/bias rank 1 (a LayerNorm's own affine, initializers) or rank 3 (an AdaLN modulation [B, 1, 4])."""
    nodes = [helper.make_node("ReduceMean", ["x"], ["mean"], axes=[-1]),
             helper.make_node("Sub", ["x", "mean"], ["y"]),
             helper.make_node("Pow", ["y", "two"], ["y2"]),
             helper.make_node("ReduceMean", ["y2"], ["var"], axes=[-1]),
             helper.make_node("Add", ["var", "eps"], ["ve"]),
             helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["y", "sd"], ["v"], name="ln_div"),
             helper.make_node("Mul", ["v", "scale"], ["vs"], name="ln_mul"),
             helper.make_node("Add", ["vs", "bias"], ["out"])]
    inits = [const("two", np.array(2.0, np.float32)), const("eps", np.array(1e-6, np.float32))]
    inputs = [vi("x", ("b", "t", 4))]
    if affine_rank == 1:
        inits += [const("scale", np.ones(4, np.float32)), const("bias", np.zeros(4, np.float32))]
    else:
        inputs += [vi("scale", ("b", 1, 4)), vi("bias", ("b", 1, 4))]
    return model(nodes, inputs, [vi("out", None)], inits)


def test_layernorm_fusion_rank() -> None:
    """Sentis 2.4.1 (tests/sentis_real) fuses LN(x) * scale + bias into one LayerNormalization and asserts rank-1
    scale/bias: an AdaLN modulation of rank 3 fails its import; a LayerNorm's own rank-1 affine is fine; 2.1 imports
    both (measured on the harness: the tiny flow_estimator before the identity-affine export passed 23/23 there)."""
    bad = [f for f in check_model(_decomposed_layernorm(3), "ie-2.4", "g") if f.rule == "layernorm-fusion-rank"]
    assert len(bad) == 1 and bad[0].severity == "error" and bad[0].node == "ln_mul"
    assert "scale: 3" in bad[0].message and "bias: 3" in bad[0].message
    assert not [f for f in check_model(_decomposed_layernorm(1), "ie-2.4", "g") if f.rule == "layernorm-fusion-rank"]
    assert not [f for f in check_model(_decomposed_layernorm(3), "sentis-2.1", "g") if f.rule == "layernorm-fusion-rank"]
