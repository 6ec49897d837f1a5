"""Small ONNX helpers shared by stages and components."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from google.protobuf.message import EncodeError

from packager.errors import PackagerError

ORT_DTYPES = {"tensor(float)": "float32", "tensor(int32)": "int32", "tensor(int64)": "int64",
              "tensor(float16)": "float16"}

CHECK_INLINE_LIMIT = 4096  # bytes: bigger initializers become plain inputs in the copy given to the checker


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
        if t.data_location != onnx.TensorProto.EXTERNAL and t.ByteSize() <= CHECK_INLINE_LIMIT:
            g.initializer.append(t)
        elif t.name not in listed:
            g.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return light


def check_model(model: onnx.ModelProto) -> None:
    """``onnx.checker.check_model`` on :func:`checkable_copy`: the same node, type and opset checks without
    serializing the weights (a full-size graph's proto is over 1 GB; checking it in memory doubled the peak RSS).
    The weights' bytes are checked where they are used: every graph is run by onnxruntime for its goldens."""
    onnx.checker.check_model(checkable_copy(model))


def load_onnx_file(path: Path) -> onnx.ModelProto:
    """Load an ONNX file with errors that say what is wrong (LFS pointer, truncated, not ONNX)."""
    from packager.checkpoint import reject_lfs_pointer

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


def session(model: onnx.ModelProto | bytes | str, threads: int = 1, prepack: bool = True) -> ort.InferenceSession:
    """A deterministic CPU onnxruntime session (1 thread by default, all graph optimisations on)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not prepack:  # one-off checks: skip the weight repacking copies (~1 GB less per full-size session)
        opts.add_session_config_entry("session.disable_prepacking", "1")
    if isinstance(model, onnx.ModelProto):
        if weight_bytes(model) > LARGE_MODEL:  # a file: no serialized copy of the weights next to the proto
            return _session_via_file(model, opts)
        try:
            payload = model.SerializeToString()
        except (EncodeError, ValueError):  # over protobuf's 2 GB: hand onnxruntime a file with external data
            return _session_via_file(model, opts)
    else:
        payload = model
    return ort.InferenceSession(payload, sess_options=opts, providers=["CPUExecutionProvider"])


LARGE_MODEL = 64 << 20  # bytes of weights above which a ModelProto reaches onnxruntime through a file, not bytes
EXTERNAL_MIN = 1024  # tensors of at least this many bytes go to the external-data file


def save_external_copy(model: onnx.ModelProto, path: Path) -> Path:
    """Write ``model`` as ``path`` + ``path.data`` (external data, tensors back to back) without copying it in memory
    and without changing it: the graph structure is serialized, each large tensor is streamed to the data file.
    For scratch files that onnxruntime opens on a path (the shipped layout is ``stages/package.save_model``'s)."""
    path = Path(path)
    g = model.graph
    if len(model.functions) or len(g.sparse_initializer) or len(model.training_info):
        raise PackagerError("cannot stream a model with functions, sparse initializers or training info",
                            key=g.name or "model")
    light = onnx.ModelProto()
    for name in ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string"):
        if model.HasField(name):  # proto2: a field set to its default still serializes; copy only what is set
            setattr(light, name, getattr(model, name))
    light.opset_import.extend(model.opset_import)
    light.metadata_props.extend(model.metadata_props)
    lg = light.graph
    for name in ("name", "doc_string"):
        if g.HasField(name):
            setattr(lg, name, getattr(g, name))
    lg.node.extend(g.node)
    lg.input.extend(g.input)
    lg.output.extend(g.output)
    lg.value_info.extend(g.value_info)
    data_name = path.name + ".data"
    offset = 0
    with open(path.parent / data_name, "wb") as f:
        for t in g.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL or t.data_type == onnx.TensorProto.STRING:
                lg.initializer.append(t)
                continue
            raw = t.raw_data if t.raw_data else numpy_helper.to_array(t).tobytes()
            if len(raw) < EXTERNAL_MIN:
                lg.initializer.append(t)
                continue
            meta = lg.initializer.add()
            meta.name, meta.data_type = t.name, t.data_type
            meta.dims.extend(t.dims)
            meta.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(len(raw)))):
                entry = meta.external_data.add()
                entry.key, entry.value = key, value
            f.write(raw)
            offset += len(raw)
            del raw
    path.write_bytes(light.SerializeToString())
    return path


def load_external_copy(path: Path) -> onnx.ModelProto:
    """The model ``save_external_copy`` wrote, with its tensors back inline, exactly as it was before (the tensors
    get ``raw_data`` and no ``data_location`` field, so the proto serializes to the same bytes)."""
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    data = path.with_name(path.name + ".data")
    with open(data, "rb") as f:
        for t in model.graph.initializer:
            if t.data_location != onnx.TensorProto.EXTERNAL:
                continue
            info = {e.key: e.value for e in t.external_data}
            if info.get("location") != data.name:
                raise PackagerError("unexpected external-data location", file=str(path), key=t.name,
                                    expected=data.name, found=info.get("location"))
            f.seek(int(info["offset"]))
            t.raw_data = f.read(int(info["length"]))
            del t.external_data[:]
            t.ClearField("data_location")
    return model


def _session_via_file(model: onnx.ModelProto, opts: ort.SessionOptions) -> ort.InferenceSession:
    with tempfile.TemporaryDirectory(prefix="packager-ort-") as tmp:
        path = save_external_copy(model, Path(tmp) / "model.onnx")
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def run_onnx(model: onnx.ModelProto | bytes | str | ort.InferenceSession,
             inputs: Mapping[str, np.ndarray], threads: int = 1) -> dict[str, np.ndarray]:
    """Run a graph on onnxruntime CPU; returns every output by name."""
    sess = model if isinstance(model, ort.InferenceSession) else session(model, threads)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, dict(inputs))))


def weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the initializers held in the proto (``ByteSize()`` itself fails above protobuf's 2 GB)."""
    total = 0
    for t in model.graph.initializer:
        if t.raw_data:
            total += len(t.raw_data)
        else:
            total += 4 * (len(t.float_data) + len(t.int32_data)) + 8 * (len(t.int64_data) + len(t.double_data))
    return total


def opset_of(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise PackagerError("the model has no default-domain opset_import")


def ort_runners(graphs: Mapping[str, object], threads: int = 1) -> dict:
    """Host-loop runners (``name -> callable(inputs) -> outputs``, as ``packager/host`` takes them) over onnxruntime
    CPU sessions; values are ModelProtos, serialized bytes or .onnx paths."""
    runners = {}
    for name, model in graphs.items():
        sess = session(str(model) if isinstance(model, Path) else model, threads)
        runners[name] = lambda inputs, s=sess: run_onnx(s, inputs)
    return runners
