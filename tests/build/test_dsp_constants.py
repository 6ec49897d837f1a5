"""DSP constants are never quantized (docs/precision.md "DSP constants").

A DSP constant (DFT basis, window, filter bank) is an exact number: no policy may round it. The generic rules
(stages/convert.py, sentis_numerics.quantized_among) on small synthetic graphs, then the real components in tiny
bundles: campplus_fbank (a DSP graph) ships fp32 with unity_quantization none under fp16 and uint8 and computes what
fp32 computes; hift's STFT/iSTFT bases stay bit-exact float32 in the shipped graph, outside every layer Unity's
ModelQuantizer rounds, while its learned weights are still quantized.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from packager.build import precision as P
from packager.sentis import numerics as S
from packager.build.checkpoint import Source
from packager.build.component import GoldenCase, NodeScope
from packager.contract.errors import PackagerError
from packager.onnx.session import run_onnx
from packager.build.stages import convert as C
from packager.build.stages.export import export_graph
from packager.contract.tolerance import compare
from tests.conftest import run_cli

RNG = np.random.default_rng(31)
BASIS = np.cos(np.arange(32, dtype=np.float64) * 0.3).reshape(4, 8).astype(np.float32)  # exact DSP numbers
WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(8) / 8)).astype(np.float32).reshape(1, 8)


def _graph() -> onnx.ModelProto:
    """x [2, 8] -> Mul(window) -> MatMul(basis^T: a DSP constant in a quantized layer) -> MatMul(learned) -> y,
    and the window also through a Constant node into a Conv-free Mul (a DSP constant outside quantized layers)."""
    nodes = [helper.make_node("Constant", [], ["win_c"], name="/dsp/Constant",
                              value=numpy_helper.from_array(WINDOW, "win_c")),
             helper.make_node("Mul", ["x", "win_c"], ["xw"], name="/dsp/Mul"),
             helper.make_node("MatMul", ["xw", "basis_t"], ["spec"], name="/dsp/MatMul"),
             helper.make_node("MatMul", ["spec", "learned"], ["h"], name="/net/MatMul"),
             helper.make_node("Tanh", ["h"], ["y"], name="/net/Tanh")]
    inits = [numpy_helper.from_array(BASIS.T.copy(), "basis_t"),
             numpy_helper.from_array(RNG.standard_normal((4, 4)).astype(np.float32), "learned")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])


CASES = [GoldenCase("c", {"x": RNG.standard_normal((2, 8)).astype(np.float32)}, {})]


def test_declarations_resolve_in_graph_order_and_a_stale_one_is_an_error():
    model = _graph()
    assert C.dsp_constants(model, ()) == []
    assert C.dsp_constants(model, [NodeScope("/dsp/")]) == ["basis_t", "win_c"]  # initializers first, then nodes
    assert C.dsp_constants(model, ["/dsp/Constant"]) == ["win_c"] == C.dsp_constants(model, ["win_c"])
    assert C.all_float_constants(model) == ["basis_t", "learned", "win_c"]
    for stale in (["frame_dft.weight"], [NodeScope("/stft/")], ["x"]):  # gone, matches nothing, not a constant
        with pytest.raises(PackagerError, match="names no float constant") as e:
            C.dsp_constants(model, stale, "g")
        assert e.value.key == "g"


def test_what_sentis_folds_from_a_dsp_constant_is_one_too():
    nodes = [helper.make_node("Transpose", ["basis"], ["basis_t"], perm=[1, 0]),  # folded at import: constant
             helper.make_node("MatMul", ["x", "basis_t"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
                          initializer=[numpy_helper.from_array(BASIS, "basis")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])
    assert S.folded_from(model, ["basis"]) == ["basis", "basis_t"]
    assert S.quantized_among(model, ["basis"]) == ["basis_t"]  # what ModelQuantizer actually rounds


def test_fp16_keeps_dsp_constants_bit_exact_float32():
    model = _graph()
    plain = C.convert(model, P.ComponentPolicy("fp16"), (), CASES)  # undeclared: rounded like any weight
    assert C.dsp_mismatches(model, plain.model, ["basis_t", "win_c"]) == ["basis_t", "win_c"]
    conv = C.convert(model, P.ComponentPolicy("fp16"), (), CASES, dsp=[NodeScope("/dsp/")], graph="g")
    assert C.dsp_mismatches(model, conv.model, ["basis_t", "win_c"]) == []
    assert {t.name: t.data_type for t in conv.model.graph.initializer} == {"basis_t": TensorProto.FLOAT,
                                                                          "learned": TensorProto.FLOAT16}
    # the basis is an input of a MatMul: Unity's Float16 quantization would round it, so the graph gets none
    assert conv.unity_quantization == "none" and conv.dsp_rounded_by_unity == ["basis_t"]
    rec = conv.exact_dsp
    assert rec["requested"] == "fp16" and not rec["whole_graph"] and "would round 1 of them" in rec["reason"]
    assert set(rec["constants"]) == {"basis_t", "win_c"} or set(rec["constants"]) == {"basis_t",
                                                                                       "win_c" + C.KEPT_CONSTANT_SUFFIX}
    view = {t.name: numpy_helper.to_array(t) for t in conv.view.graph.initializer}
    assert np.array_equal(view["basis_t"], BASIS.T)  # what Unity computes with


def test_uint8_never_rounds_a_dsp_constant():
    model = _graph()
    # a DSP constant in a MatMul: ModelQuantizer has no exclusion list, so the graph is not quantized at all
    conv = C.convert(model, P.ComponentPolicy("uint8"), (), CASES, dsp=[NodeScope("/dsp/")], graph="g")
    assert (conv.precision, conv.unity_quantization) == ("fp32", "none")
    assert conv.exact_dsp["requested"] == "uint8" and "unity_quantization none" in conv.exact_dsp["reason"]
    assert conv.view is None and conv.model is model  # the fp32 file is what runs
    # only the window declared (the basis taken for a learned weight): uint8 applies, the window stays exact
    conv = C.convert(model, P.ComponentPolicy("uint8"), (), CASES, dsp=["win_c"], graph="g")
    assert (conv.precision, conv.unity_quantization, conv.dsp_rounded_by_unity) == ("uint8", "uint8", [])
    assert "leaves them exact" in conv.exact_dsp["reason"]
    view = conv.view
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in view.graph.node if n.op_type == "Constant"}
    inits = {t.name: numpy_helper.to_array(t) for t in view.graph.initializer}
    assert np.array_equal(consts["win_c"], WINDOW)
    assert np.array_equal(inits["basis_t"], S.sentis_uint8(BASIS.T)) and not np.array_equal(inits["basis_t"], BASIS.T)


def test_int8_leaves_the_layers_reading_dsp_constants_alone():
    model = _graph()
    conv = C.convert(model, P.ComponentPolicy("int8"), (), CASES, dsp=["basis_t"], graph="g")
    assert C.dsp_mismatches(model, conv.model, ["basis_t"]) == []
    ops = [n.op_type for n in conv.model.graph.node]
    assert ops.count("MatMul") == 1 and "MatMulInteger" in ops  # the learned MatMul only


def test_a_dsp_graph_is_fp32_under_every_policy():
    for p in P.PRECISIONS:
        assert C.graph_policy(P.ComponentPolicy(p), True) == P.ComponentPolicy("fp32")
        assert C.graph_policy(P.ComponentPolicy(p), False) == P.ComponentPolicy(p)


def test_the_components_declare_their_dsp_parts():
    from packager.build import registry

    graphs = {g.name: g for n in registry.names() for g in registry.get(n).build(Source(preset="tiny")).graphs}
    assert [n for n, g in graphs.items() if g.dsp_graph] == ["campplus_fbank"]
    hift = graphs["hift"]
    model = export_graph(hift)
    names = C.dsp_constants(model, hift.dsp_constants, "hift")
    assert len(names) == 10 and all(n.startswith(("/stft/", "/istft/")) for n in names)
    assert {n.op_type for n in model.graph.node if set(n.input) & set(names)} == {"Mul"}
    assert S.quantized_among(model, names) == []
    assert len(S.quantized_constants(S.sentis_view(model))) > 100  # the learned weights are still Unity's to round


# ---------------------------------------------------------------- built bundles (campplus and hift, tiny preset)
@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, object]:
    out = {}
    work = tmp_path_factory.mktemp("dsp")
    for policy in ("fp16", "uint8"):
        spec = work / f"{policy}.json"
        spec.write_text(json.dumps({"campplus": policy, "hift": policy}))
        code, _, err = run_cli("build", "--out", work / policy, "--precision", spec, "--components", "campplus,hift",
                               "--quiet")
        assert code == 0, err
        out[policy] = work / policy
    return out


def _graphs(bundle) -> dict[str, dict]:
    m = json.loads((bundle / "manifest.json").read_text())
    return {g["name"]: g for c in m["components"] for g in c["graphs"]}


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["fp16", "uint8"])
def test_fbank_ships_fp32_and_computes_what_fp32_computes(bundles, policy):
    from packager.components.campplus.component import CampPlus

    bundle = bundles[policy]
    g = _graphs(bundle)["campplus_fbank"]
    assert (g["precision"], g["unity_quantization"]) == ("fp32", "none")
    rec = g["precision_cost"]["exact_dsp"]
    assert rec["requested"] == policy and rec["whole_graph"] and "frame_dft.weight" in rec["constants"]
    fbank = next(x for x in CampPlus().build(Source(preset="tiny")).graphs if x.name == "campplus_fbank")
    shipped = onnx.load(str(bundle / g["file"]))
    assert shipped.SerializeToString() == export_graph(fbank).SerializeToString()  # the fp32 export itself
    tol = {t["output"]: t for t in g["tolerances"]}
    runs = S.target_model(bundle / g["file"], g)
    for case, stored in zip(fbank.cases(), g["goldens"]):  # the float64 Kaldi reference, not the graph's own output
        got = run_onnx(runs, case.inputs)
        for name, ref in case.outputs.items():
            assert np.array_equal(np.load(bundle / next(t["file"] for t in stored["outputs"] if t["name"] == name)),
                                  ref)
            v = compare(name, got[name], ref, tol[name])
            assert v.passed and v.max_abs < 2e-4, v.summary()  # fp32 tolerance; uint8 left 7.2 (4.1 dB SQNR)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["fp16", "uint8"])
def test_hift_dsp_constants_are_bit_exact_and_untouched_by_unity(bundles, policy):
    from packager.components.hift.component import HiFT

    bundle = bundles[policy]
    g = _graphs(bundle)["hift"]
    assert g["precision"] == policy and g["unity_quantization"] == ("uint8" if policy == "uint8" else "none")
    rec = g["precision_cost"]["exact_dsp"]
    assert rec["requested"] == policy and not rec["whole_graph"] and len(rec["constants"]) == 10
    hift = HiFT().build(Source(preset="tiny")).graphs[0]
    fp32 = export_graph(hift)
    names = C.dsp_constants(fp32, hift.dsp_constants, "hift")
    shipped = onnx.load(str(bundle / g["file"]))
    assert C.dsp_mismatches(fp32, shipped, names) == []  # bit-exact float32 in the file
    assert sorted(w for w in C.shipped_names(shipped, names).values()) == sorted(rec["constants"])
    assert S.quantized_among(shipped, rec["constants"]) == []  # no layer ModelQuantizer rounds reads them
    view = S.sentis_view(shipped, g["unity_quantization"])  # what Unity computes with, quantization applied
    assert C.dsp_mismatches(fp32, view, names) == []
    cost = g["precision_cost"]
    if policy == "uint8":  # the learned weights are still quantized
        assert cost["unity_weight_bytes"] < cost["unity_weight_bytes_fp32"] / 3
