"""Convert stage: an fp32 graph -> the variant a precision policy ships (fp16 conversion with overflow detection,
int8), its goldens on the Sentis view, its variant tolerance and its measured cost
(docs/precision.md).

What Unity computes from the shipped variant (the Sentis view, Unity's weight quantization) is emulated in
``packager/sentis/numerics.py``; the names build.py and the benchmarks use from there are re-exported here.
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from packager.build import precision as P
from packager.build.component import GoldenCase, NodeScope
from packager.contract.errors import PackagerError
from packager.onnx.fp16_rounding import MAX_FINITE_VAL, MIN_POSITIVE_VAL, converter_float16  # noqa: F401
from packager.onnx.io import check_model, light_copy
from packager.onnx.fp16_rounding import defer_fp16_rounding
from packager.onnx.external import iter_initializer_arrays, load_external_data
from packager.onnx.session import run_onnx, session
from packager.sentis.numerics import (FP16_MAX, QUANTIZED_OPS, folded_from, quantized_among,  # noqa: F401
                                      quantized_constants, sentis_float16, sentis_uint8, sentis_view, target_model,
                                      unity_quantization_for, unity_weight_bytes)
from packager.contract.tolerance import metric

SENTIS_ATOL_FLOOR = 1e-3  # Unity's own CPU tests compare with 1e-3 absolute (design/sentis.md §1.8)
MAX_OVERFLOW_ROUNDS = 8
PROBE_OUTPUTS_PER_RUN = 800  # fp32_ranges: node outputs fetched per onnxruntime run (bounds the probe's memory)
CONVERTER = "onnxruntime.transformers.float16"  # chosen by measurement: docs/precision.md "Converter"


# --- fp16 conversion ------------------------------------------------------------------------------------------------
def keep_nodes(model: onnx.ModelProto, keep: Iterable[str | NodeScope]) -> list[str]:
    """Node names to block: named nodes, the producer of a named tensor, every consumer of a named tensor or
    initializer, every node under a ``NodeScope``, and every node of an op in P.KEEP_FLOAT32_OPS."""
    g = model.graph
    entries = list(keep)
    scopes = tuple(k.prefix for k in entries if isinstance(k, NodeScope))
    named = {k for k in entries if not isinstance(k, NodeScope)}
    if scopes:
        named |= {n.name for n in g.node if n.name.startswith(scopes)}
    names = []
    for n in g.node:
        if (n.name in named or n.op_type in P.KEEP_FLOAT32_OPS or any(o in named for o in n.output)
                or any(i in named for i in n.input)):
            names.append(n.name)
    return names


def to_fp16(model: onnx.ModelProto, keep: Iterable[str | NodeScope] = (),
            converter: str = "onnxruntime", in_place: bool = False) -> onnx.ModelProto:
    """fp16 weights and compute, float32 graph I/O; blocked nodes (``keep_nodes``) stay float32. ``in_place``: the
    converter works on ``model`` itself (which is then the result), not on a copy.

    ``converter`` "onnxconverter-common" exists for the measurement in benchmarks/precision_report.py only.
    """
    _name_nodes(model)
    nodes = keep_nodes(model, keep)
    if converter == "onnxruntime":
        from onnxruntime.transformers import float16 as f16

        from onnxruntime.transformers.onnx_model import OnnxModel

        # The converter's first step is onnx shape inference on the whole model (serialized and parsed twice: GBs
        # at full size). It is done here on the graph without its large weights, which shape inference never reads,
        # and the converter then works in place on one copy (disable_shape_infer) - the same result.
        src = shape_inferred_copy(model, in_place=in_place)
        with _fast_weight_rounding(f16):
            out = f16.convert_float_to_float16(src, keep_io_types=True, op_block_list=f16.DEFAULT_OP_BLOCK_LIST
                                               + list(P.KEEP_FLOAT32_OPS), node_block_list=nodes,
                                               disable_shape_infer=True)
        # The fork's own post-pass against Cast->Cast chains (design/precision_tooling.md §2.3-2.4), then a
        # topological order (the converter appends input Casts after their consumers). Its remove_useless_cast_nodes
        # is skipped: it runs symbolic shape inference (slow, noisy) and finds nothing in our graphs.
        om = OnnxModel(out)
        om.remove_cascaded_cast_nodes()
        out = om.model
        deterministic_topological_sort(out.graph)
    else:
        from onnxconverter_common import float16 as occ

        src = onnx.ModelProto()
        src.CopyFrom(model)

        out = occ.convert_float_to_float16(src, keep_io_types=True, op_block_list=occ.DEFAULT_OP_BLOCK_LIST
                                           + list(P.KEEP_FLOAT32_OPS), node_block_list=nodes,
                                           max_finite_val=FP16_MAX, min_positive_val=5.96e-8)
        from onnxruntime.transformers.onnx_model import OnnxModel

        OnnxModel(out).topological_sort(is_deterministic=True)
    produced = {o for n in out.graph.node for o in n.output}
    stale = [v for v in out.graph.value_info if v.name not in produced]  # left behind by the Cast clean-up
    for v in stale:
        out.graph.value_info.remove(v)
    for t in out.graph.initializer:  # Sentis reads fp16 only from raw_data (design/sentis.md §1.5)
        if (t.data_type == TensorProto.FLOAT16 and not t.HasField("raw_data")
                and t.data_location != TensorProto.EXTERNAL):  # external: written as raw_data (write_inline)
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t), t.name))
    check_model(out)
    return out


def _converter_tensor(original):
    """``convert_tensor_float_to_float16`` of the converter module, the same result, reading a tensor's raw_data
    once (its version reads the field three times: each read of a protobuf bytes field is a copy, GBs at full size)
    and rounding with ``converter_float16``. A tensor in external data (a structure-only load of the fp32 scratch
    file) is only marked: ``onnx.external.write_inline`` rounds it from its float32 data when the graph is written."""
    def convert_tensor(tensor, min_positive_val=MIN_POSITIVE_VAL, max_finite_val=MAX_FINITE_VAL):
        if not isinstance(tensor, TensorProto):
            raise ValueError(f"Expected input type is an ONNX TensorProto but got {type(tensor)}")
        if tensor.data_type != TensorProto.FLOAT:
            return tensor
        if tensor.data_location == TensorProto.EXTERNAL:
            defer_fp16_rounding(tensor, min_positive_val, max_finite_val)
            return tensor
        if tensor.float_data or not tensor.HasField("raw_data"):  # typed storage: the converter's own code path
            return original(tensor, min_positive_val, max_finite_val)
        tensor.data_type = TensorProto.FLOAT16
        raw = tensor.raw_data
        if raw:
            tensor.raw_data = converter_float16(np.frombuffer(raw, np.float32), min_positive_val,
                                                max_finite_val).tobytes()
        return tensor
    return convert_tensor


def _value_info_from_tensor(tensor: TensorProto) -> onnx.ValueInfoProto:
    """The converter's ``make_value_info_from_tensor`` (the same proto), its shape read from the dims: the original
    converts the whole tensor to numpy for its shape (a copy of every weight, and impossible for an external stub)."""
    return onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tuple(int(d) for d in tensor.dims))


@contextlib.contextmanager
def _fast_weight_rounding(f16_module):
    """The converter's module-level rounding functions swapped for ``converter_float16`` and ``_converter_tensor``
    (and its value-info helper for ``_value_info_from_tensor``) for one call."""
    originals = (f16_module.convert_np_to_float16, f16_module.convert_tensor_float_to_float16,
                 f16_module.make_value_info_from_tensor)
    f16_module.convert_np_to_float16 = converter_float16
    f16_module.convert_tensor_float_to_float16 = _converter_tensor(originals[1])
    f16_module.make_value_info_from_tensor = _value_info_from_tensor
    try:
        yield
    finally:
        (f16_module.convert_np_to_float16, f16_module.convert_tensor_float_to_float16,
         f16_module.make_value_info_from_tensor) = originals


def deterministic_topological_sort(graph: onnx.GraphProto) -> None:
    """The node order of ``onnxruntime.transformers.OnnxModel.graph_topological_sort(graph, is_deterministic=True)``
    (tested to be identical), computed in O(n log n) instead of one pass over all nodes per dependency level.

    That function sorts the nodes by name, then sweeps the list again and again, taking each node whose inputs are
    all available at its turn. A node is therefore taken in sweep ``p(n) = max over its inputs of p(producer) + 1
    if the producer comes later in the name order, else p(producer)`` (0 for graph inputs and initializers), and the
    result is the nodes ordered by (p, name order)."""
    nodes = sorted(graph.node, key=lambda n: n.name)
    ready = {t.name for t in graph.initializer} | {i.name for i in graph.input}
    producers: dict[str, list[int]] = {}
    for idx, n in enumerate(nodes):
        for o in n.output:
            if o:
                producers.setdefault(o, []).append(idx)
    needs = [[i for i in n.input if i and i not in ready] for n in nodes]
    sweep: list[int | None] = [None] * len(nodes)
    for start in range(len(nodes)):
        if sweep[start] is not None:
            continue
        stack, on_stack = [start], {start}
        while stack:
            idx = stack[-1]
            pending = [m for name in needs[idx] for m in producers.get(name, ()) if sweep[m] is None]
            missing = [name for name in needs[idx] if name not in producers]
            if missing:
                raise PackagerError(f"graph is not a DAG: node {nodes[idx].name} reads {missing[0]}, which nothing "
                                    "produces")
            if pending:
                cyc = [m for m in pending if m in on_stack]
                if cyc:
                    raise PackagerError(f"graph is not a DAG: a cycle through node {nodes[idx].name}")
                stack.append(pending[0])
                on_stack.add(pending[0])
                continue
            stack.pop()
            on_stack.discard(idx)
            # an input is available once its first producer is taken
            sweep[idx] = max((min(sweep[m] + (m > idx) for m in producers[name]) for name in needs[idx]), default=0)
    order = sorted(range(len(nodes)), key=lambda i: (sweep[i], i))
    graph.ClearField("node")
    graph.node.extend(nodes[i] for i in order)


def shape_inferred_copy(model: onnx.ModelProto, in_place: bool = False) -> onnx.ModelProto:
    """``onnx.shape_inference.infer_shapes(model)`` (same fields, same bytes), computed on a copy of the graph whose
    large float initializers are external-data stubs (dims and type only), then applied to one full copy (or, with
    ``in_place``, to ``model`` itself)."""
    light = light_copy(model)
    inferred = onnx.shape_inference.infer_shapes(light)
    del light
    if in_place:
        src = model
    else:
        src = onnx.ModelProto()
        src.CopyFrom(model)
    for part in ("input", "output", "value_info"):
        del getattr(src.graph, part)[:]
        getattr(src.graph, part).extend(getattr(inferred.graph, part))
    return src


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    c = onnx.ModelProto()
    c.CopyFrom(model)
    return c


def _name_nodes(model: onnx.ModelProto) -> None:
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"


# --- DSP constants ----------------------------------------------------------------------------------------------------
# docs/precision.md "DSP constants": exact numbers (DFT bases, windows, filter banks), declared by the component
# (GraphDef.dsp_constants / dsp_graph), kept bit-exact float32 under every policy and out of Unity's ModelQuantizer.
DSP_WHY = "exact DSP numbers, not learned weights: rounding them only loses accuracy"


def graph_policy(policy: P.ComponentPolicy, dsp_graph: bool) -> P.ComponentPolicy:
    """The policy a graph is built with: its component's, or fp32 for a graph whose every constant is a DSP constant
    (``GraphDef.dsp_graph``): no policy rounds those, and there is no learned weight to make smaller."""
    return P.ComponentPolicy("fp32") if dsp_graph else policy


def _float_constants(model: onnx.ModelProto) -> dict[str, str]:
    """Float constant tensor -> the node that makes it ("" for an initializer), in graph order."""
    out = {t.name: "" for t in model.graph.initializer if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name in ("value", "value_float", "value_floats"):
            a = n.attribute[0]
            if a.name != "value" or a.t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16):
                out[n.output[0]] = n.name
    return out


def dsp_constants(model: onnx.ModelProto, declared: Iterable[str | NodeScope], graph: str = "") -> list[str]:
    """The float constants (initializer names, Constant outputs) that ``declared`` names in ``model``, in graph order.
    An entry is a constant's name (an initializer, a Constant node or its output) or a ``NodeScope``: every float
    constant read by a node under the prefix, and every float Constant node there. An entry naming no float constant
    is an error: a declaration that no longer matches the export must not pass silently."""
    entries = list(declared)
    if not entries:
        return []
    consts = _float_constants(model)
    by_node = {node: name for name, node in consts.items() if node}
    found: dict[str, None] = {}
    for e in entries:
        hits: list[str] = []
        if isinstance(e, NodeScope):
            for n in model.graph.node:
                if n.name.startswith(e.prefix):
                    hits += [i for i in (list(n.input) + list(n.output)) if i in consts]
        elif e in consts:
            hits = [e]
        elif e in by_node:
            hits = [by_node[e]]
        if not hits:
            what = f"NodeScope({e.prefix!r})" if isinstance(e, NodeScope) else repr(e)
            raise PackagerError(f"dsp_constants entry {what} names no float constant of the exported graph", key=graph,
                                expected="an initializer, a Constant node or its output, or a NodeScope whose nodes "
                                         "read float constants")
        found.update(dict.fromkeys(hits))
    order = list(consts)
    return sorted(found, key=order.index)


def all_float_constants(model: onnx.ModelProto) -> list[str]:
    """Every float constant of ``model`` (initializers, Constant outputs), in graph order: a DSP graph's constants."""
    return list(_float_constants(model))


def _constant_arrays(model: onnx.ModelProto, names: Sequence[str], folder: Path | None) -> dict[str, np.ndarray | None]:
    """The stored values of ``names`` in ``model`` (None: not a float32 constant there, e.g. rounded to fp16 or gone).
    ``folder``: where the model's external data lives."""
    from packager.onnx.fp16_rounding import deferred_rounding
    from packager.onnx.external import external_array

    want = set(names)
    out: dict[str, np.ndarray | None] = dict.fromkeys(names)
    for t in model.graph.initializer:
        if t.name not in want or t.data_type != TensorProto.FLOAT:
            continue
        if t.data_location == TensorProto.EXTERNAL:
            if folder is None or deferred_rounding(t) is not None:
                continue
            out[t.name] = np.asarray(external_array(folder, t))
        else:
            out[t.name] = numpy_helper.to_array(t)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output and n.output[0] in want and n.attribute:
            a = n.attribute[0]
            if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                out[n.output[0]] = numpy_helper.to_array(a.t)
            elif a.name in ("value_float", "value_floats"):
                out[n.output[0]] = np.asarray(onnx.helper.get_attribute_value(a), np.float32)
    return out


KEPT_CONSTANT_SUFFIX = "_cast_to_fp16"  # the fp16 converter's name for a kept float32 Constant's output (misleading)


def shipped_names(shipped: onnx.ModelProto, names: Sequence[str]) -> dict[str, str | None]:
    """Where each constant of the fp32 graph is in ``shipped``: the same name, or for a Constant node the fp16
    converter kept float32, its output renamed ``<name>_cast_to_fp16`` (read through a Cast to float); None: gone."""
    consts = _float_constants(shipped)
    return {n: n if n in consts else n + KEPT_CONSTANT_SUFFIX if n + KEPT_CONSTANT_SUFFIX in consts else None
            for n in names}


def dsp_mismatches(fp32: onnx.ModelProto, shipped: onnx.ModelProto, names: Sequence[str],
                   fp32_folder: Path | None = None, shipped_folder: Path | None = None) -> list[str]:
    """The DSP constants ``names`` that ``shipped`` does not hold as the very float32 bytes ``fp32`` holds (rounded to
    fp16, quantized or gone; ``shipped_names`` finds them). ``*_folder``: where each model's external data lives."""
    where = shipped_names(shipped, names)
    want = _constant_arrays(fp32, names, fp32_folder)
    got_by_name = _constant_arrays(shipped, [w for w in where.values() if w], shipped_folder)
    got = {n: got_by_name[w] if w else None for n, w in where.items()}
    bad = []
    for n in names:
        a, b = want[n], got[n]
        if a is None or b is None or a.dtype != np.float32 or b.dtype != np.float32 or a.shape != b.shape \
                or a.tobytes() != b.tobytes():
            bad.append(n)
    return bad


def dsp_record(names: Sequence[str], requested: str, shipped_precision: str, unity_quantization: str,
               quantized: Sequence[str], whole_graph: bool = False) -> dict[str, Any]:
    """``precision_cost.exact_dsp``: which constants were kept exact under the requested precision, and how."""
    if whole_graph:
        reason = (f"every constant of this graph is a DSP constant ({DSP_WHY}): it ships fp32 with "
                  f"unity_quantization none under the component's {requested} policy")
    elif quantized:
        reason = (f"{DSP_WHY}; Unity's ModelQuantizer has no exclusion list and would round "
                  f"{len(quantized)} of them (inputs of Conv/ConvTranspose/Gather/Dense/MatMul layers: "
                  f"{', '.join(quantized[:4])}{', ...' if len(quantized) > 4 else ''}), so this graph runs with "
                  f"unity_quantization none")
    else:
        how = " (the fp16 conversion leaves them and their consumers float32)" if shipped_precision == "fp16" else ""
        reason = (f"{DSP_WHY}; kept bit-exact float32 in the file{how}, and no layer Unity's ModelQuantizer rounds "
                  f"reads them, so unity_quantization {unity_quantization} leaves them exact")
    return {"requested": requested, "whole_graph": whole_graph, "constants": list(names), "reason": reason}


# --- int8 (onnxruntime only) ----------------------------------------------------------------------------------------
class _NoPreprocessingAdvice(logging.Filter):
    """onnxruntime's ``quantize_dynamic`` logs "Please consider to run pre-processing before quantization ..." on the
    root logger for every graph (7 lines in a report). It is advice to whoever wrote the quantization call, not to our
    user, and does not apply: only MatMul/Gemm weights are quantized, and the graph is what the Sentis checks passed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def to_int8(model: onnx.ModelProto, exclude: Sequence[str] = ()) -> onnx.ModelProto:
    """onnxruntime dynamic quantization of MatMul/Gemm weights (never Conv: ConvInteger is slow/missing); the nodes
    ``exclude`` stay as they are (those reading DSP constants)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = _NoPreprocessingAdvice()
    root = logging.getLogger()
    root.addFilter(quiet)
    try:
        with tempfile.TemporaryDirectory() as d:
            src, dst = Path(d) / "in.onnx", Path(d) / "out.onnx"
            onnx.save_model(model, str(src))
            quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul", "Gemm"],
                             weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude),
                             extra_options={"MatMulConstBOnly": True})
            return onnx.load(str(dst))
    finally:
        root.removeFilter(quiet)


# --- overflow ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Overflow:
    tensor: str
    max_abs: float
    nodes: tuple[str, ...]  # producer and consumers: what keeps it float32

    def to_json(self) -> dict[str, Any]:
        return {"tensor": self.tensor, "max_abs": float(self.max_abs), "kept_float32": list(self.nodes)}


def fp32_ranges(model: onnx.ModelProto | None, cases: Sequence[GoldenCase],
                path: Path | None = None) -> dict[str, float]:
    """max |finite value| of every float constant and every float node output over the cases. ``path``: the same
    graph saved with external data (a build's scratch file); with ``model`` None the constants are read from there
    one tensor at a time, and the probe graph references that file's weights instead of holding a copy of them.

    The probe graph reduces each float node output inside onnxruntime to one scalar, the max of ``|x|`` where
    ``|x| < inf`` (0 elsewhere: NaN and infinities do not count), so each case is one run that fetches scalars (a
    full-size DiT's activations are GBs, and fetching them in slices ran the whole graph once per slice). An empty
    tensor reduces to no value (``ReduceMax`` of nothing) and gets no entry."""
    ranges: dict[str, float] = {}
    constants = iter_initializer_arrays(path) if model is None else \
        ((t.name, numpy_helper.to_array(t)) for t in model.graph.initializer)
    for name, a in constants:
        if a.dtype == np.float32 and a.size:
            top = max(float(a.max()), -float(a.min()))  # max |x| without a temporary; NaN or inf: look closer
            ranges[name] = top if np.isfinite(top) else float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0))
        del a
    probe = _probe_graph(model, path)
    pg = probe.graph
    light = light_copy(probe)
    inferred = onnx.shape_inference.infer_shapes(light)
    del light
    elem = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(inferred.graph.output)
            if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type}
    del inferred
    produced = [o for n in pg.node for o in n.output if o]
    floats = [o for o in produced if elem.get(o) == TensorProto.FLOAT]
    untyped = [o for o in produced if o not in elem]  # shape inference could not type it: fetched as it is
    taken = set(produced) | {t.name for t in pg.initializer} | {i.name for i in pg.input}
    suffix = "__range"
    while any(f"{o}{suffix}_{k}" in taken for o in floats for k in ("abs", "finite", "kept", "max")) \
            or f"{suffix}_inf" in taken or f"{suffix}_zero" in taken:
        suffix += "_"
    inf, zero = f"{suffix}_inf", f"{suffix}_zero"
    pg.initializer.extend([numpy_helper.from_array(np.array(np.inf, np.float32), inf),
                           numpy_helper.from_array(np.array(0.0, np.float32), zero)])
    for o in floats:
        a, f, k = f"{o}{suffix}_abs", f"{o}{suffix}_finite", f"{o}{suffix}_kept"
        pg.node.extend([onnx.helper.make_node("Abs", [o], [a]),
                        onnx.helper.make_node("Less", [a, inf], [f]),  # false for inf and NaN
                        onnx.helper.make_node("Where", [f, a, zero], [k]),
                        onnx.helper.make_node("ReduceMax", [k], [f"{o}{suffix}_max"], keepdims=0)])
        pg.output.append(onnx.ValueInfoProto(name=f"{o}{suffix}_max"))
    have = {o.name for o in pg.output}
    pg.output.extend(onnx.ValueInfoProto(name=o) for o in untyped if o not in have)
    with _probe_session(probe, path) as sess:
        del probe
        direct = [o.name for o in sess.get_outputs() if o.name in set(untyped) and o.type == "tensor(float)"]
        scalars = [f"{o}{suffix}_max" for o in floats]
        for case in cases:
            for o, m in zip(floats, sess.run(scalars, dict(case.inputs))):
                m = float(m)
                if np.isfinite(m) and m >= 0.0:  # else the tensor is empty in this case
                    ranges[o] = max(ranges.get(o, 0.0), m)
            _fetch_ranges(sess, direct, case, ranges)
    return ranges


def _probe_graph(model: onnx.ModelProto | None, path: Path | None) -> onnx.ModelProto:
    """The graph to add probe outputs to: ``path``'s structure (its weights stay in the data file), else a copy."""
    if path is not None:
        return onnx.load(str(path), load_external_data=False)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    return probe


@contextlib.contextmanager
def _probe_session(probe: onnx.ModelProto, path: Path | None):
    """An onnxruntime session over ``probe`` (one-off runs: no prepacking, and no graph optimisation, which on a
    graph whose every node output is an output fuses little and took 3 s of a full-size DiT's 5 s session; the
    ranges are the same to float32 rounding); next to ``path`` when its weights are that file's external data, so
    the data file resolves."""
    if path is None:
        yield session(probe, prepack=False, optimize=False)
        return
    probe_path = Path(path).with_name(Path(path).stem + ".probe.onnx")
    probe_path.write_bytes(probe.SerializeToString())
    try:
        sess = session(str(probe_path), prepack=False, optimize=False)
    finally:
        probe_path.unlink()
    yield sess


def _fetch_ranges(sess, names: Sequence[str], case: GoldenCase, ranges: dict[str, float]) -> None:
    """max |finite value| of the outputs ``names``, fetched a few hundred at a time (onnxruntime frees every
    intermediate that is not asked for)."""
    for i in range(0, len(names), PROBE_OUTPUTS_PER_RUN):
        chunk = list(names[i:i + PROBE_OUTPUTS_PER_RUN])
        for name, a in zip(chunk, sess.run(chunk, dict(case.inputs))):
            if a.size:
                v = float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0))
                ranges[name] = max(ranges.get(name, 0.0), v)
            del a


def find_overflows(fp16: onnx.ModelProto, ranges: Mapping[str, float]) -> list[Overflow]:
    """Tensors whose fp32 values exceed 65504 and that the fp16 graph stores or computes in fp16."""
    g = fp16.graph
    produced = {o for n in g.node for o in n.output}
    typed = {t.name for t in g.initializer if t.data_type == TensorProto.FLOAT16}
    typed |= {v.name for v in g.value_info if v.type.tensor_type.elem_type == TensorProto.FLOAT16} & produced
    for n in g.node:
        if n.op_type == "Constant" and n.attribute[0].t.data_type == TensorProto.FLOAT16:
            typed.add(n.output[0])
        if n.op_type == "Cast" and any(a.name == "to" and a.i == TensorProto.FLOAT16 for a in n.attribute):
            typed.add(n.input[0])
    found = []
    for name in sorted(typed):
        # a blocked node's fp32 output is renamed "<name>_cast_to_fp16" by the converter (misleadingly)
        src = name.removesuffix("_cast_to_fp16").removesuffix("_cast_to_fp32")
        if ranges.get(src, 0.0) > FP16_MAX:
            nodes = [n.name for n in g.node if name in n.output or name in n.input or src in n.output]
            found.append(Overflow(src, ranges[src], tuple(nodes)))
    return found


def predicted_overflows(model: onnx.ModelProto, keep: Sequence[str | NodeScope],
                        ranges: Mapping[str, float]) -> list[Overflow]:
    """Float tensors of the fp32 graph whose values exceed 65504 and that touch a node the conversion would turn
    fp16 (neither kept by ``keep`` nor of an op the converter leaves float32); ``nodes``: those nodes."""
    from onnxruntime.transformers import float16 as f16

    _name_nodes(model)
    kept = set(keep_nodes(model, keep))
    blocked_ops = set(f16.DEFAULT_OP_BLOCK_LIST) | set(P.KEEP_FLOAT32_OPS)
    touching: dict[str, list[str]] = {}
    for n in model.graph.node:
        if n.name in kept or n.op_type in blocked_ops:
            continue
        for t in list(n.input) + list(n.output):
            if t and ranges.get(t, 0.0) > FP16_MAX and n.name not in touching.setdefault(t, []):
                touching[t].append(n.name)
    return [Overflow(t, ranges[t], tuple(nodes)) for t, nodes in sorted(touching.items())]


def fp16_without_overflow(model: onnx.ModelProto | None, keep: Sequence[str | NodeScope],
                          cases: Sequence[GoldenCase], fp32_path: Path | None = None
                          ) -> tuple[onnx.ModelProto, list[Overflow]]:
    """Convert; any value > 65504 reaching fp16 (on the golden cases) is kept float32 with its producer and
    consumers, and reported; what still overflows after MAX_OVERFLOW_ROUNDS is an error. With ``model`` None the
    structure of ``fp32_path`` (external data) is converted, its weights left in the fp32 data file: the result's
    large fp16 weights are rounded from there when it is written (``onnx.external.write_inline`` with that folder)."""
    if model is None:
        fresh = lambda: onnx.load(str(fp32_path), load_external_data=False)  # noqa: E731
        ranges = fp32_ranges(None, cases, fp32_path)
    else:
        ranges = fp32_ranges(model, cases, fp32_path)
    keep, report = list(keep), []
    # Every value above 65504 is known before converting: keeping those tensors' producers and consumers float32
    # up front reaches in one conversion the graph that convert -> find -> keep -> convert again reached in two
    # (a full-size DiT's masking constant is 1e9: a second conversion would cost a minute of a recommended build).
    structure = onnx.load(str(fp32_path), load_external_data=False) if model is None else model
    seeded = predicted_overflows(structure, keep, ranges)
    del structure
    report += seeded
    keep += [o.tensor for o in seeded]
    out = None
    for _ in range(MAX_OVERFLOW_ROUNDS):
        out = None  # the previous round's graph goes before the next is made
        out = to_fp16(model, keep) if model is not None else to_fp16(fresh(), keep, in_place=True)
        found = find_overflows(out, ranges)
        if not found:
            return out, report
        report += found
        keep += [n for o in found for n in o.nodes if not n.endswith(("_cast", "_cast0"))] + [o.tensor for o in found]
    raise PackagerError("values above 65504 still reach fp16 after keeping their nodes float32: "
                        + ", ".join(f"{o.tensor} (|x| up to {o.max_abs:.3g})" for o in found),
                        expected="keep_float32 entries in a --precision JSON file, or fp32 for this component")


# --- running and measuring --------------------------------------------------------------------------------------------
def outputs_of(model: onnx.ModelProto | str, cases: Sequence[GoldenCase],
               prepack: bool = True) -> list[dict[str, np.ndarray]]:
    """The outputs of ``model`` on the cases. Goldens use the default (prepacked) kernels, as every other run does;
    ``prepack=False`` is for a one-off cost figure (``fp16_cost_outputs``)."""
    sess = session(model, prepack=prepack)
    return [run_onnx(sess, c.inputs) for c in cases]


def fp16_cost_outputs(model: onnx.ModelProto | str, cases: Sequence[GoldenCase]) -> list[dict[str, np.ndarray]]:
    """onnxruntime's true fp16 compute of a shipped fp16 graph (``error_onnxruntime_fp16``). Without weight
    prepacking: onnxruntime's CPU casts the fp16 weights to float32 and then repacks that copy, which made the session
    of a full-size LLM step graph 2.5-10 s instead of 1.5 s (and held one more GB). The outputs differ from a
    prepacked session's only where the packed and unpacked GEMMs' other summation order moves a value across an fp16
    rounding step (one fp16 step at most in the tests), far below the fp16 error this figure measures; the goldens
    themselves are never computed this way."""
    return outputs_of(model, cases, prepack=False)


def error_vs(reference: Sequence[GoldenCase], got: Sequence[Mapping[str, np.ndarray]],
             tolerances: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per output, worst over the cases: max/mean |error|, SQNR, cosine, and top1/kl where the output declares
    them (logits)."""
    acc: dict[str, dict[str, float]] = {}
    for case, out in zip(reference, got):
        for name, ref in case.outputs.items():
            a, e = np.asarray(out[name], np.float64), np.asarray(ref, np.float64)
            if a.dtype.kind != "f" or e.size == 0 or tolerances[name].get("exact"):
                continue
            d = acc.setdefault(name, {"output": name, "max_abs": 0.0, "mean_abs": 0.0, "sqnr_db": 999.0,
                                      "cosine": 1.0})
            d["max_abs"] = max(d["max_abs"], metric("max_abs", a, e))
            d["mean_abs"] = max(d["mean_abs"], float(np.mean(np.abs(a - e))))
            d["sqnr_db"] = min(d["sqnr_db"], min(999.0, metric("sqnr_db", a, e)))
            d["cosine"] = min(d["cosine"], metric("cosine", a, e))
            for k in ("top1", "kl"):
                if k in (tolerances[name].get("metrics") or {}):
                    v = metric(k, a, e)
                    d[k] = min(d.get(k, v), v) if k == "top1" else max(d.get(k, v), v)
    return [{k: (round(v, 9) if isinstance(v, float) else v) for k, v in d.items()} for d in acc.values()]


def variant_tolerance(tol: Mapping[str, Any]) -> dict[str, Any]:
    """A variant's goldens are the Sentis view run by onnxruntime, so its check covers only runtime noise (Sentis
    CPU vs onnxruntime on the same float32 math): the component's measured fp32 tolerance, never below the 1e-3
    absolute floor Unity's own tests use. Exact outputs stay exact."""
    out = dict(tol)
    if not out.get("exact"):
        out["atol"] = max(float(out["atol"]), SENTIS_ATOL_FLOOR)
    return out


@dataclass
class Converted:
    model: onnx.ModelProto  # what ships
    precision: str
    unity_quantization: str
    view: onnx.ModelProto | None  # what the goldens are computed on (None for int8: onnxruntime runs the file)
    overflows: list[Overflow] = field(default_factory=list)
    exact_dsp: dict[str, Any] | None = None  # precision_cost.exact_dsp (dsp_record), where the graph declares some
    dsp_rounded_by_unity: list[str] = field(default_factory=list)  # DSP constants ModelQuantizer would have rounded


def convert(model: onnx.ModelProto | None, policy: P.ComponentPolicy, keep_float32: Sequence[str | NodeScope],
            cases: Sequence[GoldenCase], fp32_path: Path | None = None, with_view: bool = True, *,
            dsp: Sequence[str | NodeScope] = (), graph: str = "") -> Converted:
    """The shipped variant for one graph under ``policy`` (fp32 returns the model unchanged). ``fp32_path``: the
    fp32 graph saved with external data (see ``fp32_ranges``), read from there when ``model`` is None (an fp16
    result then keeps its large weights in that file, rounded when written: see ``fp16_without_overflow``);
    ``with_view=False``: no in-memory Sentis view (the build computes it from the written file instead).

    ``dsp``: the graph's ``GraphDef.dsp_constants``. They (and what Sentis folds from them) stay float32 through the
    fp16 conversion and int8 quantization, and are checked to be bit-exact in the result (an error otherwise); where
    Unity's ModelQuantizer would round one of them, the graph gets ``unity_quantization: none`` (uint8: the fp32
    file, precision fp32). ``Converted.exact_dsp`` records the decision and why."""
    keep = list(keep_float32) + list(policy.keep_float32)
    folder = fp32_path.parent if model is None else None
    structure = model if model is not None else onnx.load(str(fp32_path), load_external_data=False)
    exact = dsp_constants(structure, dsp, graph)
    if model is None and policy.precision != "fp16":  # the fp16 path reads the file itself, once per use
        from packager.onnx.external import load_external_copy

        model = load_external_copy(fp32_path)
        folder = None
    if policy.precision == "fp32":
        return Converted(model, "fp32", "none", None)
    if policy.precision == "fp16":
        keep += folded_from(structure, exact)  # their producers and consumers stay float32
        out, overflows = fp16_without_overflow(model, keep, cases, fp32_path)
        conv = Converted(out, "fp16", unity_quantization_for("fp16", out), None, overflows)
    elif policy.precision == "uint8":
        touched = quantized_among(model, exact)
        conv = Converted(model, "fp32", "none", None) if touched else Converted(model, "uint8", "uint8", None)
    elif policy.precision == "int8":
        derived = set(folded_from(model, exact))
        _name_nodes(model)
        readers = [n.name for n in model.graph.node if derived & set(n.input)]
        conv = Converted(to_int8(model, readers), "int8", "none", None)
    else:
        raise PackagerError("unknown precision", key="precision", expected=", ".join(P.PRECISIONS),
                            found=policy.precision)
    if exact:
        bad = dsp_mismatches(structure, conv.model, exact, folder, folder)
        if bad:
            raise PackagerError(f"the {policy.precision} conversion changed DSP constants: " + ", ".join(bad[:6]),
                                key=graph, expected="bit-exact float32 (GraphDef.dsp_constants)")
        shipped = [w for w in shipped_names(conv.model, exact).values() if w]
        conv.dsp_rounded_by_unity = quantized_among(conv.model, shipped)
        conv.exact_dsp = dsp_record(shipped, policy.precision, conv.precision, conv.unity_quantization,
                                    conv.dsp_rounded_by_unity)
    if with_view and conv.precision in ("fp16", "uint8"):
        shipped = conv.model if folder is None else load_external_data(_copy(conv.model), folder)
        conv.view = sentis_view(shipped, conv.unity_quantization)
    return conv


def cost(fp32: onnx.ModelProto | None, conv: Converted, cases: Sequence[GoldenCase],
         target_outputs: Sequence[Mapping[str, np.ndarray]], tolerances: Mapping[str, Mapping[str, Any]],
         bytes_fp32: int, bytes_shipped: int, *, unity_bytes_fp32: int | None = None,
         unity_bytes: int | None = None, shipped: Path | None = None,
         fp16_outputs: Sequence[Mapping[str, np.ndarray]] | None = None) -> dict[str, Any]:
    """The manifest's ``precision_cost``: what this variant costs against the fp32 reference goldens. The build
    passes the Unity weight sizes measured before it released the models (``unity_bytes_fp32``, ``unity_bytes``)
    and the written file (``shipped``) instead of ``fp32`` / ``conv.model``, and for fp16 the outputs of
    ``fp16_cost_outputs(shipped)`` it computed already (``fp16_outputs``)."""
    d: dict[str, Any] = {
        "bytes_fp32": int(bytes_fp32), "bytes": int(bytes_shipped),
        "unity_weight_bytes_fp32": unity_bytes_fp32 if unity_bytes_fp32 is not None
        else unity_weight_bytes(fp32, "none"),
        "unity_weight_bytes": None if conv.precision == "int8" else unity_bytes if unity_bytes is not None
        else unity_weight_bytes(conv.model, conv.unity_quantization),
        "error": error_vs(cases, target_outputs, tolerances),
    }
    if d["unity_weight_bytes"] is None:
        del d["unity_weight_bytes"]
    if conv.precision == "fp16":  # for onnxruntime users: true fp16 compute of the same file
        d["converter"] = CONVERTER
        if fp16_outputs is None:
            fp16_outputs = fp16_cost_outputs(str(shipped) if shipped is not None else conv.model, cases)
        d["error_onnxruntime_fp16"] = error_vs(cases, fp16_outputs, tolerances)
    if conv.overflows:
        d["overflow"] = [o.to_json() for o in conv.overflows]
    if conv.exact_dsp:
        d["exact_dsp"] = conv.exact_dsp
    return d
