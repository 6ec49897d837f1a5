"""Convert stage: fp16 overflow detection, the fp16 variant of a real graph, and the policy goldens of a built bundle
reproduced under the Sentis view. The emulation itself: tests/sentis/test_numerics.py."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from packager.build import precision as P
from packager.build import registry
from packager.sentis import numerics as S
from packager.build.checkpoint import Source
from packager.build.component import GoldenCase
from packager.contract.errors import PackagerError
from packager.onnx.session import run_onnx
from packager.build.stages import convert as C
from packager.build.stages.export import export_graph
from packager.contract.tolerance import compare


class _Overflowing(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x):
        big = self.lin(x) * 3000.0  # |values| well above 65504 for |x| ~ 30
        return torch.tanh(big * 1e-3)


def _overflow_graph():
    from packager.build.component import GraphDef, TensorSpec, Tolerance

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


def test_overflows_are_kept_float32_in_one_conversion_with_the_graph_two_rounds_gave(monkeypatch):
    model, case = _overflow_graph()
    calls = []
    real = C.to_fp16
    monkeypatch.setattr(C, "to_fp16", lambda *a, **k: calls.append(1) or real(*a, **k))
    seeded, report = C.fp16_without_overflow(model, (), [case])
    assert len(calls) == 1 and report and all(o.max_abs > 65504 and o.nodes for o in report)
    monkeypatch.setattr(C, "predicted_overflows", lambda *a: [])  # the convert -> find -> keep -> convert loop
    calls.clear()
    iterated, found = C.fp16_without_overflow(model, (), [case])
    assert len(calls) == 2 and found
    assert seeded.SerializeToString() == iterated.SerializeToString()
    assert {o.tensor for o in report} == {o.tensor for o in found}


def test_unresolvable_overflow_is_an_error(monkeypatch):
    model, case = _overflow_graph()
    monkeypatch.setattr(C, "MAX_OVERFLOW_ROUNDS", 1)
    monkeypatch.setattr(C, "predicted_overflows", lambda *a: [])
    with pytest.raises(PackagerError, match="65504"):
        C.convert(model, P.ComponentPolicy("fp16"), (), [case])


def test_text_embedding_fp16_against_upstream_reference(tiny_a):
    """tiny_a's llm_text_embed: the Sentis view of the fp16 graph is exactly the upstream table rounded to fp16."""
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
        want = registry.get(c["name"]).recommended_precision
        for g in c["graphs"]:
            dsp = g.get("precision_cost", {}).get("exact_dsp", {})
            if dsp.get("whole_graph"):  # a DSP graph (campplus_fbank): fp32 whatever its component asks for
                assert g["precision"] == "fp32" and g["unity_quantization"] == "none" and dsp["requested"] == want
                continue
            assert g["precision"] == want
            if want == "fp32":
                assert "precision_cost" not in g and g["unity_quantization"] == "none"
                continue
            shipped = onnx.load(str(tiny_bundle / g["file"]))
            cost = g["precision_cost"]
            assert cost["bytes"] == g["bytes"] and cost["bytes"] < cost["bytes_fp32"]
            assert cost["error"] and all(m["sqnr_db"] > 30 for m in cost["error"])
            view = S.sentis_view(shipped, g["unity_quantization"])
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


def test_fp16_cost_runs_without_prepacking_and_agrees_with_the_default_session(tiny_bundle, monkeypatch):
    """error_onnxruntime_fp16 comes from a session without weight prepacking: the same fp16 compute, apart from the
    order in which onnxruntime's packed and unpacked GEMMs sum, which can move a value by one fp16 step (2**-10 of
    its magnitude) where it then rounds to half precision."""
    from packager.onnx import session as onnx_session

    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    graphs = [g for c in manifest["components"] for g in c["graphs"] if g["precision"] == "fp16"]
    assert graphs
    made = []
    real = onnx_session.session
    monkeypatch.setattr(C, "session", lambda *a, **kw: made.append(kw.get("prepack", True)) or real(*a, **kw))
    for g in graphs:
        cases = [GoldenCase(k["name"], {t["name"]: np.load(tiny_bundle / t["file"]) for t in k["inputs"]}, {})
                 for k in g["goldens"]]
        cost = C.fp16_cost_outputs(str(tiny_bundle / g["file"]), cases)
        default = C.outputs_of(str(tiny_bundle / g["file"]), cases)
        for a, b in zip(cost, default):
            for k in a:
                scale = max(1.0, float(np.max(np.abs(b[k]), initial=0.0)))
                assert np.max(np.abs(a[k] - b[k]), initial=0.0) <= 2 ** -9 * scale, (g["name"], k)
    assert made == [False, True] * len(graphs)


def test_convert_keeps_the_names_build_uses():
    """build.py calls these on stages.convert; the Sentis numerics are the same objects as in sentis_numerics."""
    for name in ("convert", "outputs_of", "variant_tolerance", "cost", "target_model"):
        assert callable(getattr(C, name))
    assert C.target_model is S.target_model and C.sentis_view is S.sentis_view


def test_node_scopes_and_names_resolve_to_blocked_nodes():
    from packager.build.component import NodeScope

    nodes = [helper.make_node("Relu", ["x"], ["a"], name="/enc/Relu"), helper.make_node("Neg", ["a"], ["b"],
                                                                                      name="/enc/sub/Neg"),
             helper.make_node("Abs", ["b"], ["c"], name="/dec/Abs"), helper.make_node("Sqrt", ["c"], ["y"],
                                                                                     name="/dec/Sqrt")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])
    assert C.keep_nodes(model, ()) == ["/dec/Sqrt"]  # op-type rule only
    # a scope keeps the nodes under it, as naming each node does; a tensor name keeps its producer and consumers
    assert C.keep_nodes(model, [NodeScope("/enc/")]) == ["/enc/Relu", "/enc/sub/Neg", "/dec/Sqrt"]
    assert C.keep_nodes(model, [NodeScope("/enc/sub/")]) == C.keep_nodes(model, ["/enc/sub/Neg"])
    assert C.keep_nodes(model, ["b"]) == ["/enc/sub/Neg", "/dec/Abs", "/dec/Sqrt"]


def _ranges_by_fetching_everything(model: onnx.ModelProto, cases) -> dict[str, float]:
    """The probe's definition, computed the plain way: every float tensor fetched whole, max |finite value|."""
    out = {}
    for t in model.graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32 and a.size:
            out[t.name] = float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0))
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=o) for n in probe.graph.node for o in n.output
                              if o and o not in have)
    sess = C.session(probe, prepack=False)
    names = [o.name for o in sess.get_outputs() if o.type == "tensor(float)"]
    for case in cases:
        for name, a in zip(names, sess.run(names, dict(case.inputs))):
            if a.size:
                out[name] = max(out.get(name, 0.0), float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0)))
    return out


def test_fp32_ranges_in_graph_equal_fetching_every_tensor(tiny_a, tmp_path):
    """The probe reduces each activation inside onnxruntime (one run per case); it must give what fetching every
    tensor gives, from memory and from a scratch file with external data, on real graphs: the same tensors, the
    constants exactly, activations to float32 rounding (the two probe graphs let onnxruntime fuse different nodes,
    which moves a last bit; the ranges are only compared with 65504)."""
    from packager.onnx.external import save_external_copy

    graphs = {g.name: g for g in registry.get("flow").build(Source(checkpoint=tiny_a)).graphs}
    checked = 0
    for name in ("flow_estimator", "flow_frontend"):
        g = graphs[name]
        model, cases = export_graph(g), g.cases()
        want = _ranges_by_fetching_everything(model, cases)
        path = save_external_copy(model, tmp_path / f"{name}.onnx")
        consts = {t.name for t in model.graph.initializer}
        for got in (C.fp32_ranges(model, cases), C.fp32_ranges(None, cases, path)):
            assert got.keys() == want.keys()
            assert all(got[k] == want[k] for k in consts if k in want)
            assert got == pytest.approx(want, rel=1e-6, abs=0)
        checked += len(want)
    assert checked > 100


def test_fp32_ranges_with_infinities_nans_and_empty_tensors():
    """Tensors holding inf / NaN (their finite maximum counts) and empty ones (no entry) take the exact path."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    nodes = [helper.make_node("Div", ["x", "zero"], ["inf"]),  # +-inf where x != 0, NaN at 0
             helper.make_node("Mul", ["x", "two"], ["fine"]),
             helper.make_node("Slice", ["fine", "s0", "s1", "ax"], ["empty"]),
             helper.make_node("ReduceSum", ["inf"], ["y0"], keepdims=0),
             helper.make_node("ReduceSum", ["empty"], ["y1"], keepdims=0),
             helper.make_node("Add", ["y0", "y1"], ["y"])]
    inits = [numpy_helper.from_array(np.float32(0), "zero"), numpy_helper.from_array(np.float32(2), "two"),
             numpy_helper.from_array(np.array([1], np.int64), "s0"), numpy_helper.from_array(np.array([1], np.int64), "s1"),
             numpy_helper.from_array(np.array([0], np.int64), "ax")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
                                                initializer=inits), opset_imports=[helper.make_opsetid("", 15)])
    cases = [GoldenCase("a", {"x": np.array([[1, -7, 0], [3, 2, 1]], np.float32)}, {}),
             GoldenCase("b", {"x": np.array([[40, 1, 1], [1, 1, 1]], np.float32)}, {})]
    got = C.fp32_ranges(model, cases)
    assert got == _ranges_by_fetching_everything(model, cases)
    assert got["fine"] == 80.0 and got["inf"] == 0.0 and "empty" not in got


def test_converter_float16_equals_onnxruntime_rounding():
    """Our two-pass replacement of the converter's weight rounding gives its values bit for bit, edge cases included,
    for float32 raw data and the float64 arrays it makes of float_data."""
    from onnxruntime.transformers import float16 as f16

    rng = np.random.default_rng(5)
    edge = [0.0, -0.0, 1e-9, -1e-9, 5.96e-08, -5.96e-08, 6e-8, 1e-45, -1e-45, 65504.0, 65505.0, -65505.0, 1e9,
            -1e9, np.inf, -np.inf, np.nan, 1.0, -2.5, 3.4e38, 65519.0, 65520.0, -65520.0, 2.98023224e-8, 5.5e-8,
            -5.5e-8, 2.9e-8, 1e-30, -0.0, 6.103e-5]
    for dtype in (np.float32, np.float64):
        for a in (np.array(edge, dtype), (rng.standard_normal(10000) * 10.0 ** rng.integers(-10, 8, 10000)).astype(dtype),
                  rng.standard_normal(100).astype(dtype), np.array(edge * 300000, dtype)[::-1].reshape(-1, len(edge))):
            a.setflags(write=False)  # the converter hands np.frombuffer arrays (read-only)
            want, got = f16.convert_np_to_float16(a), C.converter_float16(a)
            assert got.dtype == want.dtype == np.float16
            assert np.array_equal(got.view(np.uint16), want.view(np.uint16))


def test_topological_sort_equals_onnxruntime_deterministic_sort(tiny_a):
    """The same node order as OnnxModel.graph_topological_sort(is_deterministic=True), on the converted real graphs
    (whose input Casts come after their consumers) and on shuffled node lists."""
    import random

    from onnxruntime.transformers.onnx_model import OnnxModel

    graphs = {g.name: g for c in ("flow", "hift") for g in registry.get(c).build(Source(checkpoint=tiny_a)).graphs}
    rnd = random.Random(0)
    checked = 0
    for name in ("flow_estimator", "flow_frontend", "hift"):
        g = graphs[name]
        model = export_graph(g)
        C._name_nodes(model)
        variants = [model]
        for _ in range(2):
            shuffled = onnx.ModelProto()
            shuffled.CopyFrom(model)
            nodes = list(shuffled.graph.node)
            rnd.shuffle(nodes)
            shuffled.graph.ClearField("node")
            shuffled.graph.node.extend(nodes)
            variants.append(shuffled)
        for m in variants:
            a, b = onnx.ModelProto(), onnx.ModelProto()
            a.CopyFrom(m)
            b.CopyFrom(m)
            OnnxModel.graph_topological_sort(a.graph, is_deterministic=True)
            C.deterministic_topological_sort(b.graph)
            assert [n.name for n in a.graph.node] == [n.name for n in b.graph.node]
            checked += 1
    assert checked == 9


def test_fp16_from_the_scratch_file_writes_the_bytes_of_the_in_memory_conversion(tiny_a, tmp_path, monkeypatch):
    """The build converts the structure of the fp32 scratch file and rounds each large weight from its float32 data
    while the graph file is written (no proto holds the weights). The file must be byte for byte the one converting
    the whole proto in memory gives, for every fp16 graph of the flow and LLM (rounding slices smaller than a tensor
    included), and its Sentis view the same."""
    from packager.onnx import external as U, fp16_rounding as F, io as IO
    from packager.build.stages.package import save_model

    monkeypatch.setattr(U, "ROUND_SLICE", 1000)  # tensors rounded in many slices, the last one partial
    policy = P.ComponentPolicy("fp16")
    checked = deferred = 0
    for comp in ("flow", "llm"):
        for g in registry.get(comp).build(Source(checkpoint=tiny_a)).graphs:
            model, cases = export_graph(g), g.cases()
            (tmp_path / "scratch").mkdir(exist_ok=True)
            scratch = U.save_external_copy(model, tmp_path / "scratch" / f"{g.name}.onnx")
            want = C.convert(model, policy, g.keep_float32, cases)
            got = C.convert(None, policy, g.keep_float32, cases, fp32_path=scratch)
            marked = [t for t in got.model.graph.initializer if F.deferred_rounding(t) is not None]
            assert marked and all(not t.HasField("raw_data") for t in marked)  # the weights stay in the file
            assert got.unity_quantization == want.unity_quantization and got.overflows == want.overflows
            a = save_model(tmp_path / "mem", g.name, want.model, precision="fp16")
            b = save_model(tmp_path / "streamed", g.name, got.model, precision="fp16", data_dir=scratch.parent)
            assert a == b  # sha256, bytes, opset...
            assert (tmp_path / "mem" / a["file"]).read_bytes() == (tmp_path / "streamed" / b["file"]).read_bytes()
            assert got.view.SerializeToString() == want.view.SerializeToString()
            with pytest.raises(PackagerError, match="rounded when the graph is written"):
                U.external_array(scratch.parent, marked[0])
            with pytest.raises(PackagerError, match="deferred"):
                U.save_external_copy(got.model, tmp_path / "copy.onnx")
            checked += 1
            deferred += len(marked)
    assert checked >= 4 and deferred > 20


def test_deferred_rounding_refuses_what_it_cannot_round(tmp_path):
    """Only an external float32 stub whose recorded length matches its dims is marked; a marked tensor's source must
    be there when the model is written, and is looked for only inside the model's folder."""
    from packager.onnx import external as U, fp16_rounding as F, io as IO

    model = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y"])], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [600])],
        initializer=[numpy_helper.from_array(np.arange(600, dtype=np.float32), "w")]), opset_imports=[helper.make_opsetid("", 15)])
    inline = model.graph.initializer[0]
    with pytest.raises(PackagerError, match="cannot defer"):
        F.defer_fp16_rounding(inline, C.MIN_POSITIVE_VAL, C.MAX_FINITE_VAL)
    path = U.save_external_copy(model, tmp_path / "m.onnx")
    structure = onnx.load(str(path), load_external_data=False)
    t = structure.graph.initializer[0]
    F.defer_fp16_rounding(t, C.MIN_POSITIVE_VAL, C.MAX_FINITE_VAL)
    assert t.data_type == TensorProto.FLOAT16 and IO.weight_bytes(structure) == 1200
    with pytest.raises(PackagerError, match="cannot defer"):
        F.defer_fp16_rounding(t, C.MIN_POSITIVE_VAL, C.MAX_FINITE_VAL)  # twice
    loaded = U.load_external_data(onnx.ModelProto.FromString(structure.SerializeToString()), tmp_path)
    assert np.array_equal(numpy_helper.to_array(loaded.graph.initializer[0]), np.arange(600, dtype=np.float16))
    with pytest.raises(PackagerError, match="without their folder"):
        U.write_inline(structure, tmp_path / "out.onnx")
    (tmp_path / "m.onnx.data").write_bytes(b"\0" * 100)  # shorter than the 2400 bytes of float32 source
    with pytest.raises(PackagerError, match="shorter"):
        U.write_inline(structure, tmp_path / "out.onnx", tmp_path)


def test_value_info_from_dims_equals_the_converters():
    """The converter's make_value_info_from_tensor reads a whole tensor for its shape; ours reads the dims: the same
    proto for scalars, vectors and higher ranks, fp32 and fp16."""
    from onnxruntime.transformers import float16 as f16

    for shape in ((), (1,), (7,), (2, 3, 4), (1, 0, 5)):
        for dtype in (np.float32, np.float16):
            t = numpy_helper.from_array(np.zeros(shape, dtype), f"t{len(shape)}")
            assert C._value_info_from_tensor(t) == f16.make_value_info_from_tensor(t)
