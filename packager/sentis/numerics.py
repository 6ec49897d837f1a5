"""What Unity Sentis / Inference Engine computes from an ONNX file with fp16 or uint8 weights, emulated exactly.

The one home of the Sentis numerics emulation (docs/precision.md "The Sentis view and the goldens"): the build
computes a reduced-precision graph's goldens on ``sentis_view`` of it, and ``verify``, ``run`` and ``synth`` run
``target_model`` of a manifest graph. No torch here (only onnx, numpy and onnxruntime).

Facts used (design/sentis.md §1.5, §3.3 and the com.unity.ai.inference 2.4.0 source of ``QuantizeConstantsPass``,
``BurstJobsQuantizeTensor`` and the CPU ``DequantizeUint8Job``):

- Sentis has no fp16 compute: the importer turns fp16 initializers/Constants into float32 (``HalfToFloat``) and a
  Cast to FLOAT16 into a Cast to float. So an fp16 ONNX runs as "fp16-rounded weights, fp32 activations".
- ``ModelQuantizer.QuantizeWeights`` (after import and after the import-time optimisation passes) replaces every
  float constant that is an input of a Conv, ConvTranspose, Gather, Dense, MatMul or MatMul2D layer. Dense comes
  from MatMul/Gemm + Add(constant bias), so those biases are quantized too. There is no exclusion list.
  * Float16: float32-subnormals -> 0, clamp to +-65504, round to half.
  * Uint8, one (scale, zero point) per tensor: ``scale = (max(0, max) - min(0, min)) / 255``,
    ``zp = round(clamp(-min / scale, 0, 255))``, ``q = clamp(round(x / scale) + zp, 0, 255)``,
    run time ``(q - zp) * scale``, all float32, rounding half to even (``Mathf.Round``).
- Not emulated (documented gap): constants that Sentis's FuseLinearLayersPass folds together before quantizing
  (Conv + Add/ScalarMad/ScaleBias, Dense + Dense); our TorchScript exports keep biases inside Conv/Gemm.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from packager.onnx.external import OnDisk, external_array, inline_structure
from packager.onnx.session import run_onnx
from packager.contract.targets import UNITY_QUANTIZATION

FP16_MAX = 65504.0
QUANTIZED_OPS = ("Conv", "ConvTranspose", "Gather", "MatMul", "Gemm")  # ONNX ops behind Sentis's layer set


def sentis_view(model: onnx.ModelProto, unity_quantization: str = "none") -> onnx.ModelProto:
    """What Sentis computes for ``model`` (+ the ModelQuantizer step), as an fp32 graph onnxruntime can run.

    On a weight-less model (``onnx.io.light_copy``, or loaded without its external data) the tensors without data
    only change type: the view's structure, for structural questions (``quantized_constants``, weight bytes)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT16 and t.data_location == TensorProto.EXTERNAL:
            if unity_quantization != "none":
                raise ValueError(f"sentis_view: {t.name} has no data to quantize (a weight-less model)")
            t.data_type = TensorProto.FLOAT
        elif t.data_type == TensorProto.FLOAT16:
            g.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
    _float_compute(g)
    if unity_quantization != "none":
        _quantize_constants(m, unity_quantization)
    return m


def _float_compute(g: onnx.GraphProto) -> None:
    """What Sentis's importer does to everything but the initializers: fp16 Constants upcast, Casts to FLOAT16
    retargeted to float, fp16 graph I/O typed float (stale value_info dropped: onnxruntime infers it again)."""
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT16:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float32), a.t.name))
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT16:
                a.i = TensorProto.FLOAT
    for v in list(g.input) + list(g.output):
        if v.type.tensor_type.elem_type == TensorProto.FLOAT16:
            v.type.tensor_type.elem_type = TensorProto.FLOAT
    del g.value_info[:]  # stale fp16 types; onnxruntime infers them again


def _fp16_sources(model: onnx.ModelProto) -> list[onnx.TensorProto] | None:
    """The fp16 initializer behind each constant Unity's quantizer touches (the constant itself, or the input of the
    Cast that upcasts it), or None where one of them is not fp16 in the file."""
    from packager.onnx.io import light_copy

    g = model.graph
    fp16 = {t.name: t for t in g.initializer if t.data_type == TensorProto.FLOAT16}
    producers = {o: n for n in g.node for o in n.output}
    sources = []
    for name in quantized_constants(sentis_view(light_copy(model))):  # structure only: no weight is upcast
        if name not in fp16 and name in producers and producers[name].op_type == "Cast":
            name = producers[name].input[0]
        if name not in fp16:
            return None
        sources.append(fp16[name])
    return sources


def sentis_float16(x: np.ndarray) -> np.ndarray:
    """``CastFloatToHalfJob`` then ``HalfToFloat``."""
    x = np.asarray(x, np.float32)
    x = np.where(np.abs(x) < np.finfo(np.float32).tiny, np.float32(0), x)
    return np.clip(x, -FP16_MAX, FP16_MAX).astype(np.float16).astype(np.float32)


def sentis_uint8(x: np.ndarray) -> np.ndarray:
    """``QuantizeUint8Job`` then ``DequantizeUint8Job`` with the per-tensor min/max scale and zero point."""
    x = np.asarray(x, np.float32)
    if x.size == 0:
        return x
    lo, hi = np.float32(x.min()), np.float32(x.max())
    scale = np.float32((max(np.float32(0), hi) - min(np.float32(0), lo)) / np.float32(255))
    if scale == 0:  # all-zero tensor: Sentis's NaN path dequantizes to 0
        return np.zeros_like(x)
    zp = np.float32(np.rint(np.clip(np.float32(-lo) / scale, 0, 255)))
    q = np.clip(np.rint(x / scale) + zp, 0, 255)
    return ((q - zp).astype(np.float32) * scale).astype(np.float32)


def quantized_constants(model: onnx.ModelProto) -> list[str]:
    """Names of the float constants ``ModelQuantizer.QuantizeWeights`` touches (inputs of QUANTIZED_OPS and the
    Add biases Sentis fuses into Dense), in graph order."""
    g = model.graph
    const = _constant_tensors(model)
    users: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    names: dict[str, None] = {}
    for n in g.node:
        if n.op_type not in QUANTIZED_OPS:
            continue
        for i in n.input:
            if i in const:
                names[i] = None
        if n.op_type == "MatMul" and len(n.input) == 2 and n.input[1] in const:
            follow = users.get(n.output[0], [])
            if len(follow) == 1 and follow[0].op_type == "Add":
                bias = [i for i in follow[0].input if i != n.output[0]]
                if bias and bias[0] in const:
                    names[bias[0]] = None
    types = _constant_types(model, list(names))
    return [k for k in names if types[k] == TensorProto.FLOAT]


def folded_from(model: onnx.ModelProto, names: Sequence[str]) -> list[str]:
    """``names``, then every constant Sentis computes from them when it imports the graph (``FuseConstantsPass``: the
    outputs of a node fed only by constants, one of them already in the list) in graph order."""
    const = _constant_tensors(model)
    out = dict.fromkeys(names)
    for n in model.graph.node:
        ins = [i for i in n.input if i]
        if any(i in out for i in ins) and all(i in const for i in ins):
            out.update(dict.fromkeys(o for o in n.output if o))
    return list(out)


def quantized_among(model: onnx.ModelProto, names: Sequence[str]) -> list[str]:
    """The constants of ``names``, or computed from them at import (``folded_from``), that
    ``ModelQuantizer.QuantizeWeights`` rounds (``quantized_constants`` of the Sentis view), in graph order. Works on
    the structure alone (a weight-less copy)."""
    from packager.onnx.io import light_copy

    mine = set(folded_from(model, names))
    return [c for c in quantized_constants(sentis_view(light_copy(model))) if c in mine]


def _constant_types(model: onnx.ModelProto, names: Sequence[str]) -> dict[str, int]:
    """Element type of each constant: an initializer's own, else onnx shape inference's on the weight-less graph
    (no weights are read), else the type of its evaluated value (the constant subgraph run once for all)."""
    from packager.onnx.io import light_copy

    inits = {t.name: t.data_type for t in model.graph.initializer}
    out = {n: inits[n] for n in names if n in inits}
    rest = [n for n in names if n not in out]
    if rest:
        inferred = onnx.shape_inference.infer_shapes(light_copy(model)).graph
        known = {v.name: v.type.tensor_type.elem_type for v in list(inferred.value_info) + list(inferred.output)
                 if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type}
        out.update({n: known[n] for n in rest if n in known})
        left = [n for n in rest if n not in out]
        if left:
            values = _constant_values(model, left)
            out.update({n: helper.np_dtype_to_tensor_dtype(values[n].dtype) for n in left})
    return out


def _constant_tensors(model: onnx.ModelProto) -> set[str]:
    """Initializers, Constant outputs and outputs of nodes fed only by those (what Sentis folds at import)."""
    g = model.graph
    const = {t.name for t in g.initializer} - {i.name for i in g.input}
    for n in g.node:
        if n.op_type in ("Constant", "ConstantOfShape") and not (set(n.input) - const - {""}) or \
                (n.input and all(i in const or i == "" for i in n.input) and not n.op_type.startswith("Random")):
            const.update(n.output)
    return const


def _constant_values(model: onnx.ModelProto, names: Sequence[str]) -> dict[str, np.ndarray]:
    inits = {t.name: t for t in model.graph.initializer}
    out = {n: numpy_helper.to_array(inits[n]) for n in names if n in inits}
    rest = [n for n in names if n not in out]
    if rest:  # evaluate the constant-only subgraph (no graph inputs needed)
        const = _constant_tensors(model)
        nodes = [n for n in model.graph.node if all(o in const for o in n.output)]
        used = {i for n in nodes for i in n.input}
        sub = onnx.ModelProto(ir_version=model.ir_version)  # only what the constant nodes read, not every weight
        sub.opset_import.extend(model.opset_import)
        sub.graph.name = "constants"
        sub.graph.initializer.extend(t for t in model.graph.initializer if t.name in used)
        sub.graph.node.extend(nodes)
        sub.graph.output.extend(onnx.ValueInfoProto(name=n) for n in rest)
        out.update(run_onnx(sub, {}))
    return out


def _quantize_constants(m: onnx.ModelProto, kind: str) -> None:
    """Rewire every quantized constant's consumers to its Sentis-quantized copy (as ReplaceNode does)."""
    fn = {"float16": sentis_float16, "uint8": sentis_uint8}[kind]
    names = quantized_constants(m)
    values = _constant_values(m, names)
    inits = {t.name: i for i, t in enumerate(m.graph.initializer)}
    for name in names:
        if name in inits:  # replace in place: every consumer sees the quantized tensor, no second copy in memory
            m.graph.initializer[inits[name]].CopyFrom(numpy_helper.from_array(fn(values[name]), name))
            continue
        new = f"{name}__sentis_{kind}"
        m.graph.initializer.append(numpy_helper.from_array(fn(values[name]), new))
        for n in m.graph.node:
            for k, i in enumerate(n.input):
                if i == name:
                    n.input[k] = new


def unity_quantization_for(precision: str, shipped: onnx.ModelProto) -> str:
    """fp16: ask Unity for Float16 weight storage only where that is lossless (every quantized constant is already
    fp16 in the file), so a kept-float32 DSP basis is never rounded behind our back; else "none"."""
    if precision != "fp16":
        return UNITY_QUANTIZATION[precision]
    return "float16" if _fp16_sources(shipped) is not None else "none"


def unity_weight_bytes(model: onnx.ModelProto, unity_quantization: str) -> int:
    """Bytes of the initializers once imported (fp16 -> float32) and quantized by ModelQuantizer (computed on the
    structure: works on a model loaded without its external data too)."""
    from packager.onnx.io import light_copy

    view = sentis_view(light_copy(model))
    quantized = set(quantized_constants(view)) if unity_quantization != "none" else set()
    per = {"none": 4, "float16": 2, "uint8": 1}[unity_quantization]
    total = 0
    for t in view.graph.initializer:
        n = int(np.prod(t.dims, dtype=np.int64))
        total += n * (per if t.name in quantized else helper.tensor_dtype_to_np_dtype(t.data_type).itemsize)
    return total


def target_model(path: Path, graph: Mapping[str, Any]) -> str | onnx.ModelProto | OnDisk:
    """What to run for a manifest graph entry so that it computes what Unity computes (and what its goldens hold):
    the file itself, or for fp16/uint8 weights the Sentis view of it (fp16 upcast, Unity's quantization applied).
    Where the view is only the upcast (``upcast_in_graph``), onnxruntime does the upcast itself, reading the weights
    straight from the file (``onnx.external.inline_structure``: no weight passes through Python)."""
    quant = graph.get("unity_quantization", "none")
    if graph.get("precision") in ("fp16", "uint8") or quant != "none":
        on_disk = inline_structure(path)
        if upcast_in_graph(on_disk.model, quant, folder=on_disk.folder) is not None:
            return on_disk
        model = onnx.load(str(path))
        return sentis_view(model, quant)
    return str(path)


INF_CHECK_CHUNK = 1 << 24  # fp16 values tested for infinity per numpy pass (bounds the temporaries to ~50 MB)


def _holds_fp16_infinity(t: onnx.TensorProto, folder: Path | None) -> bool:
    """Whether an fp16 initializer holds +-inf (its bit pattern with the sign cleared is 0x7C00); a tensor whose data
    cannot be read counts as holding one. External data is memory-mapped, inline data read in place."""
    if t.data_location == TensorProto.EXTERNAL:
        if folder is None:
            return True
        bits = external_array(folder, t).view(np.uint16)
    elif t.HasField("raw_data"):
        bits = np.frombuffer(t.raw_data, np.uint16)
    else:
        return True
    masked = np.empty(min(bits.size, INF_CHECK_CHUNK), np.uint16)
    hits = np.empty(masked.size, bool)
    for i in range(0, bits.size, INF_CHECK_CHUNK):
        part = bits[i:i + INF_CHECK_CHUNK]
        m, h = masked[:part.size], hits[:part.size]
        np.bitwise_and(part, 0x7FFF, out=m)
        np.equal(m, 0x7C00, out=h)
        if h.any():
            return True
    return False


def upcast_in_graph(model: onnx.ModelProto, unity_quantization: str = "none",
                    folder: Path | None = None) -> onnx.ModelProto | None:
    """``sentis_view(model, unity_quantization)`` in another form, rewritten in place: each fp16 initializer stays
    fp16 and feeds a Cast to float, which onnxruntime folds into a float32 initializer when the session is made (the
    same values, the same kernels: so the same outputs, tested bit for bit). No float32 copy of the weights is made
    here, and the proto that reaches onnxruntime is half the size. None where the view is more than the upcast:
    uint8 quantization, or Float16 quantization of a constant that is not fp16 in the file or holds an infinity
    (Sentis clamps those to 65504). ``folder``: where the model's external data lives (for that infinity test)."""
    g = model.graph
    if unity_quantization not in ("none", "float16"):
        return None
    fp16 = {t.name: t for t in g.initializer if t.data_type == TensorProto.FLOAT16}
    if set(fp16) & {i.name for i in g.input}:
        return None
    if unity_quantization == "float16":
        sources = _fp16_sources(model)
        if sources is None or any(_holds_fp16_infinity(t, folder) for t in sources):
            return None
    taken = {t.name for t in g.initializer} | {o for n in g.node for o in n.output} | {i.name for i in g.input}
    suffix = "__fp16"
    while any(f"{n}{suffix}" in taken for n in fp16):
        suffix += "_"
    casts = []
    for t in g.initializer:
        if t.name in fp16:
            casts.append(helper.make_node("Cast", [t.name + suffix], [t.name], to=TensorProto.FLOAT,
                                          name=f"sentis_upcast/{t.name}"))
            t.name = t.name + suffix
    _float_compute(g)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return model
