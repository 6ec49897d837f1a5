"""Convert stage: an fp32 graph -> the variant a precision policy ships (fp16 conversion with overflow detection,
int8), its goldens on the Sentis view, its variant tolerance and its measured cost (issue #7 parts 1-3;
docs/precision.md).

What Unity computes from the shipped variant (the Sentis view, Unity's weight quantization) is emulated in
``packager/sentis_numerics.py``; the names build.py and the benchmarks use from there are re-exported here.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from packager import precision as P
from packager.component import GoldenCase, NodeScope
from packager.errors import PackagerError
from packager.onnx_utils import run_onnx, session
from packager.sentis_numerics import (FP16_MAX, QUANTIZED_OPS, quantized_constants, sentis_float16,  # noqa: F401
                                      sentis_uint8, sentis_view, target_model, unity_quantization_for,
                                      unity_weight_bytes)
from packager.tolerance import metric

SENTIS_ATOL_FLOOR = 1e-3  # Unity's own CPU tests compare with 1e-3 absolute (design/sentis.md §1.8)
MAX_OVERFLOW_ROUNDS = 8
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
            converter: str = "onnxruntime") -> onnx.ModelProto:
    """fp16 weights and compute, float32 graph I/O; blocked nodes (``keep_nodes``) stay float32.

    ``converter`` "onnxconverter-common" exists for the measurement in benchmarks/precision_report.py only.
    """
    _name_nodes(model)
    nodes = keep_nodes(model, keep)
    src = onnx.ModelProto()
    src.CopyFrom(model)
    if converter == "onnxruntime":
        from onnxruntime.transformers import float16 as f16

        from onnxruntime.transformers.onnx_model import OnnxModel

        out = f16.convert_float_to_float16(src, keep_io_types=True, op_block_list=f16.DEFAULT_OP_BLOCK_LIST
                                           + list(P.KEEP_FLOAT32_OPS), node_block_list=nodes)
        # The fork's own post-pass against Cast->Cast chains (design/precision_tooling.md §2.3-2.4), then a
        # topological order (the converter appends input Casts after their consumers). Its remove_useless_cast_nodes
        # is skipped: it runs symbolic shape inference (slow, noisy) and finds nothing in our graphs.
        om = OnnxModel(out)
        om.remove_cascaded_cast_nodes()
        om.topological_sort(is_deterministic=True)
        out = om.model
    else:
        from onnxconverter_common import float16 as occ

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
        if t.data_type == TensorProto.FLOAT16 and not t.HasField("raw_data"):
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t), t.name))
    onnx.checker.check_model(out)
    return out


def _name_nodes(model: onnx.ModelProto) -> None:
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"


# --- int8 (onnxruntime only) ----------------------------------------------------------------------------------------
def to_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxruntime dynamic quantization of MatMul/Gemm weights (never Conv: ConvInteger is slow/missing)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.onnx", Path(d) / "out.onnx"
        onnx.save_model(model, str(src))
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8,
                         extra_options={"MatMulConstBOnly": True})
        return onnx.load(str(dst))


# --- overflow ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Overflow:
    tensor: str
    max_abs: float
    nodes: tuple[str, ...]  # producer and consumers: what keeps it float32

    def to_json(self) -> dict[str, Any]:
        return {"tensor": self.tensor, "max_abs": float(self.max_abs), "kept_float32": list(self.nodes)}


def fp32_ranges(model: onnx.ModelProto, cases: Sequence[GoldenCase], path: Path | None = None) -> dict[str, float]:
    """max |finite value| of every float constant and every float node output over the cases. ``path``: the same
    graph saved with external data (a build's scratch file); the probe graph (every node output made a graph
    output) then references that file's weights instead of holding a copy of them."""
    ranges: dict[str, float] = {}
    for t in model.graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32 and a.size:
            ranges[t.name] = float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0))
        del a
    if path is not None:
        probe = onnx.load(str(path), load_external_data=False)
    else:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=o) for n in probe.graph.node for o in n.output
                              if o and o not in have)
    if path is not None:
        probe_path = Path(path).with_name(Path(path).stem + ".probe.onnx")  # same folder: the data file resolves
        probe_path.write_bytes(probe.SerializeToString())
        del probe
        try:
            sess = session(str(probe_path), prepack=False)
        finally:
            probe_path.unlink()
    else:
        sess = session(probe, prepack=False)
    for case in cases:
        for name, a in run_onnx(sess, case.inputs).items():
            if a.dtype == np.float32 and a.size:
                v = float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0))
                ranges[name] = max(ranges.get(name, 0.0), v)
    return ranges


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


def fp16_without_overflow(model: onnx.ModelProto, keep: Sequence[str | NodeScope], cases: Sequence[GoldenCase],
                          fp32_path: Path | None = None) -> tuple[onnx.ModelProto, list[Overflow]]:
    """Convert; any value > 65504 reaching fp16 (on the golden cases) is kept float32 with its producer and
    consumers, and reported; what still overflows after MAX_OVERFLOW_ROUNDS is an error."""
    ranges = fp32_ranges(model, cases, fp32_path)
    keep, report = list(keep), []
    for _ in range(MAX_OVERFLOW_ROUNDS):
        out = to_fp16(model, keep)
        found = find_overflows(out, ranges)
        if not found:
            return out, report
        report += found
        keep += [n for o in found for n in o.nodes if not n.endswith(("_cast", "_cast0"))] + [o.tensor for o in found]
    raise PackagerError("values above 65504 still reach fp16 after keeping their nodes float32: "
                        + ", ".join(f"{o.tensor} (|x| up to {o.max_abs:.3g})" for o in found),
                        expected="keep_float32 entries in a --precision JSON file, or fp32 for this component")


# --- running and measuring --------------------------------------------------------------------------------------------
def outputs_of(model: onnx.ModelProto, cases: Sequence[GoldenCase]) -> list[dict[str, np.ndarray]]:
    sess = session(model)  # these become goldens: the default (prepacked) kernels, as every other run uses
    return [run_onnx(sess, c.inputs) for c in cases]


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


def convert(model: onnx.ModelProto, policy: P.ComponentPolicy, keep_float32: Sequence[str | NodeScope],
            cases: Sequence[GoldenCase], fp32_path: Path | None = None, with_view: bool = True) -> Converted:
    """The shipped variant for one graph under ``policy`` (fp32 returns the model unchanged). ``fp32_path``: the
    fp32 graph saved with external data (see ``fp32_ranges``); ``with_view=False``: no in-memory Sentis view (the
    build computes it from the written file instead)."""
    keep = list(keep_float32) + list(policy.keep_float32)
    if policy.precision == "fp32":
        return Converted(model, "fp32", "none", None)
    if policy.precision == "fp16":
        out, overflows = fp16_without_overflow(model, keep, cases, fp32_path)
        uq = unity_quantization_for("fp16", out)
        return Converted(out, "fp16", uq, sentis_view(out, uq) if with_view else None, overflows)
    if policy.precision == "uint8":
        return Converted(model, "uint8", "uint8", sentis_view(model, "uint8") if with_view else None)
    if policy.precision == "int8":
        return Converted(to_int8(model), "int8", "none", None)
    raise PackagerError("unknown precision", key="precision", expected=", ".join(P.PRECISIONS),
                        found=policy.precision)


def cost(fp32: onnx.ModelProto, conv: Converted, cases: Sequence[GoldenCase],
         target_outputs: Sequence[Mapping[str, np.ndarray]], tolerances: Mapping[str, Mapping[str, Any]],
         bytes_fp32: int, bytes_shipped: int) -> dict[str, Any]:
    """The manifest's ``precision_cost``: what this variant costs against the fp32 reference goldens."""
    d: dict[str, Any] = {
        "bytes_fp32": int(bytes_fp32), "bytes": int(bytes_shipped),
        "unity_weight_bytes_fp32": unity_weight_bytes(fp32, "none"),
        "unity_weight_bytes": unity_weight_bytes(conv.model, conv.unity_quantization) if conv.precision != "int8"
        else None,
        "error": error_vs(cases, target_outputs, tolerances),
    }
    if d["unity_weight_bytes"] is None:
        del d["unity_weight_bytes"]
    if conv.precision == "fp16":  # for onnxruntime users: true fp16 compute of the same file
        d["converter"] = CONVERTER
        d["error_onnxruntime_fp16"] = error_vs(cases, outputs_of(conv.model, cases), tolerances)
    if conv.overflows:
        d["overflow"] = [o.to_json() for o in conv.overflows]
    return d
