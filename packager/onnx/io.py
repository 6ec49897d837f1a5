"""ONNX files in memory: loading with errors that say what is wrong, the checker on a weight-less copy, sizes
and opsets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from packager.contract.errors import PackagerError

CHECK_INLINE_LIMIT = 4096  # bytes: bigger initializers become plain inputs in the copy given to the checker


FIXED_ITEMSIZE = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.DOUBLE: 8,
                   onnx.TensorProto.INT32: 4, onnx.TensorProto.INT64: 8, onnx.TensorProto.INT8: 1,
                   onnx.TensorProto.UINT8: 1, onnx.TensorProto.BOOL: 1, onnx.TensorProto.INT16: 2,
                   onnx.TensorProto.UINT16: 2, onnx.TensorProto.BFLOAT16: 2}


def raw_nbytes(t: onnx.TensorProto) -> int:
    """``len(t.raw_data)``, from the dims where the dtype has a fixed size: reading a bytes field of a protobuf
    message copies it (0.8 s for a full-size LLM's 544 MB embedding table), and the build asks this often."""
    if not t.HasField("raw_data"):
        return 0
    size = FIXED_ITEMSIZE.get(t.data_type)
    if size is None:
        return len(t.raw_data)
    return size * int(np.prod(t.dims, dtype=np.int64))


def checkable_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with big or external initializers turned into graph inputs: same types and shapes, tiny proto."""
    light = onnx.ModelProto(ir_version=model.ir_version, opset_import=model.opset_import,
                            functions=model.functions)
    src, g = model.graph, light.graph
    g.name = src.name
    for field in ("node", "input", "output", "value_info", "sparse_initializer"):
        getattr(g, field).extend(getattr(src, field))
    listed = {v.name for v in src.input}
    for t in src.initializer:
        if (t.data_location != onnx.TensorProto.EXTERNAL and raw_nbytes(t) <= CHECK_INLINE_LIMIT
                and t.ByteSize() <= CHECK_INLINE_LIMIT):
            g.initializer.append(t)
        elif t.name not in listed:
            g.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return light


LIGHT_TENSOR = 1 << 16  # bytes: float initializers at least this big become dims-and-type stubs in light_copy
LEFT_OUT = "weights-left-out"  # the external-data location of light_copy's stubs (no such file exists)


def light_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every large float initializer replaced by an external-data stub (name, type and dims only):
    what shape inference and structural questions need, without the weights. Tensors that already live in an
    external-data file stay as their references."""
    light = onnx.ModelProto()
    for name in ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string"):
        if model.HasField(name):
            setattr(light, name, getattr(model, name))
    light.opset_import.extend(model.opset_import)
    light.metadata_props.extend(model.metadata_props)
    light.functions.extend(model.functions)
    g, lg = model.graph, light.graph
    for name in ("name", "doc_string"):
        if g.HasField(name):
            setattr(lg, name, getattr(g, name))
    for part in ("node", "input", "output", "value_info", "sparse_initializer", "quantization_annotation"):
        getattr(lg, part).extend(getattr(g, part))
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)
    for t in g.initializer:
        n = raw_nbytes(t) if t.data_type in floats else 0
        if n >= LIGHT_TENSOR:
            stub = lg.initializer.add()
            stub.name, stub.data_type = t.name, t.data_type
            stub.dims.extend(t.dims)
            stub.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", LEFT_OUT), ("offset", "0"), ("length", str(n))):
                e = stub.external_data.add()
                e.key, e.value = key, value
        else:
            lg.initializer.append(t)
    return light


def check_model(model: onnx.ModelProto) -> None:
    """``onnx.checker.check_model`` on :func:`checkable_copy`: the same node, type and opset checks without
    serializing the weights (a full-size graph's proto is over 1 GB; checking it in memory doubled the peak RSS).
    The weights' bytes are checked where they are used: every graph is run by onnxruntime for its goldens."""
    onnx.checker.check_model(checkable_copy(model))


def load_onnx_file(path: Path) -> onnx.ModelProto:
    """Load an ONNX file with errors that say what is wrong (LFS pointer, truncated, not ONNX)."""
    from packager.contract.files import reject_lfs_pointer

    path = Path(path)
    if not path.is_file():
        raise PackagerError("file not found", file=str(path), expected="an ONNX model")
    reject_lfs_pointer(path)
    if path.stat().st_size == 0:
        raise PackagerError("is empty", file=str(path), expected="an ONNX model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise PackagerError(f"is not a readable ONNX model (truncated or another format: {type(exc).__name__})",
                            file=str(path)) from None
    if not model.graph.node or not model.opset_import:
        raise PackagerError("is not a usable ONNX model (no graph nodes or no opset)", file=str(path))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise PackagerError(f"fails the ONNX checker: {first}", file=str(path)) from None
    return model


def weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the initializers: held in the proto, or in external data (their recorded length) for a model loaded
    without it (``ByteSize()`` itself fails above protobuf's 2 GB)."""
    total = 0
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            total += int({e.key: e.value for e in t.external_data}.get("length", 0))
        elif t.HasField("raw_data"):
            total += raw_nbytes(t)
        else:
            total += 4 * (len(t.float_data) + len(t.int32_data)) + 8 * (len(t.int64_data) + len(t.double_data))
    return total


def opset_of(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise PackagerError("the model has no default-domain opset_import")
