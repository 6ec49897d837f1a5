"""Small ONNX helpers shared by stages and components."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator, Mapping

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
        if t.data_type in floats and len(t.raw_data) >= LIGHT_TENSOR:
            stub = lg.initializer.add()
            stub.name, stub.data_type = t.name, t.data_type
            stub.dims.extend(t.dims)
            stub.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", LEFT_OUT), ("offset", "0"), ("length", str(len(t.raw_data)))):
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


# --- inline .onnx files written as a stream ---------------------------------------------------------------------------
# protobuf serializes known fields in field-number order, and a message is its fields back to back, so an inline model
# is: the model's fields before ``graph`` (7), the graph's tag and length, the graph's fields before ``initializer``
# (5), each initializer (tag, length, its fields before ``raw_data`` (9), raw_data's tag, length and bytes, its fields
# after), the graph's fields after, the model's fields after. Writing that sequence produces exactly the bytes of
# ``SerializeToString()`` (tested on every graph), without the one contiguous copy of a GB-sized proto that
# SerializeToString builds (upb grows it by reallocation: 8 s for a full-size LLM step graph) and with the sha256
# computed on the way.
_MODEL_GRAPH, _GRAPH_INITIALIZER, _TENSOR_RAW_DATA = 7, 5, 9
STREAM_MIN = 1 << 20  # bytes of raw_data from which a tensor's data is written straight from its field


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


_EXTERNAL_FIELDS = (13, 14)  # TensorProto.external_data, data_location: absent once a tensor's data is inline


_TENSOR_DATA_FIELDS = (4, 5, 6, 7, 9, 10, 11)  # TensorProto float/int32/string/int64/raw/double/uint64 data


def _set_field(target, fd, value) -> None:
    if fd.is_repeated:
        getattr(target, fd.name).extend(value)
    elif fd.message_type is not None:
        getattr(target, fd.name).CopyFrom(value)
    else:
        setattr(target, fd.name, value)


def _copy_fields(src, dst, skip: tuple[int, ...]) -> None:
    """Every set field of ``src`` but those numbered in ``skip``, onto ``dst`` (no copy of the skipped data)."""
    for fd, value in src.ListFields():
        if fd.number not in skip:
            _set_field(dst, fd, value)


def _split(msg, number: int, leave_out: tuple[int, ...] = ()):
    """Two messages of ``msg``'s type: its set fields numbered below ``number``, and above (``number`` and
    ``leave_out`` left out)."""
    head, tail = type(msg)(), type(msg)()
    for fd, value in msg.ListFields():
        if fd.number == number or fd.number in leave_out:
            continue
        _set_field(head if fd.number < number else tail, fd, value)
    return head.SerializeToString(), tail.SerializeToString()


def _delimited(number: int, length: int) -> bytes:
    return _varint((number << 3) | 2) + _varint(length)


def _inline_pieces(model: onnx.ModelProto):
    """The pieces of ``model``'s serialization in order (bytes, or a tensor whose raw_data goes out as it is) and the
    total length. A tensor in external data counts as it would be inline (its length, no external fields): the
    size of a structure-only load; such a model cannot be written."""
    g = model.graph
    tensors = []
    for t in g.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            n = int({e.key: e.value for e in t.external_data}["length"])
            head, tail = _split(t, _TENSOR_RAW_DATA, _EXTERNAL_FIELDS)
            pre = head + _delimited(_TENSOR_RAW_DATA, n)
            tensors.append((pre, t, tail, len(pre) + n + len(tail)))
        elif len(t.raw_data) >= STREAM_MIN:
            head, tail = _split(t, _TENSOR_RAW_DATA)
            n = len(t.raw_data)
            pre = head + _delimited(_TENSOR_RAW_DATA, n)
            tensors.append((pre, t, tail, len(pre) + n + len(tail)))
        else:
            b = t.SerializeToString()
            tensors.append((b, None, b"", len(b)))
    ghead, gtail = _split(g, _GRAPH_INITIALIZER)
    glen = len(ghead) + len(gtail) + sum(len(_delimited(_GRAPH_INITIALIZER, n)) + n for *_, n in tensors)
    mhead, mtail = _split(model, _MODEL_GRAPH)
    pieces = [mhead, _delimited(_MODEL_GRAPH, glen), ghead]
    for pre, t, tail, n in tensors:
        pieces += [_delimited(_GRAPH_INITIALIZER, n), pre] + ([t] if t is not None else []) + [tail]
    pieces += [gtail, mtail]
    total = len(mhead) + len(_delimited(_MODEL_GRAPH, glen)) + glen + len(mtail)
    return pieces, total


def inline_size(model: onnx.ModelProto) -> int:
    """``model.ByteSize()`` (the size of its inline .onnx file) without serializing the weights."""
    return _inline_pieces(model)[1]


def write_inline(model: onnx.ModelProto, path: Path, data_dir: Path | None = None) -> str:
    """Write ``model`` as one inline .onnx file, byte for byte ``SerializeToString()``; returns its sha256.
    ``data_dir``: ``model`` is a structure-only load whose external tensors are read from their data files there, a
    slice at a time (the weights are never held in memory)."""
    import hashlib

    if data_dir is None and any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise PackagerError("cannot write a model whose tensors are in external data inline without their folder",
                            file=str(path))
    h = hashlib.sha256()
    pieces, total = _inline_pieces(model)
    with open(path, "wb") as f:
        for piece in pieces:
            if isinstance(piece, bytes):
                f.write(piece)
                h.update(piece)
            elif piece.data_location == onnx.TensorProto.EXTERNAL:
                info = {e.key: e.value for e in piece.external_data}
                data = Path(data_dir) / info["location"]
                if data.parent.resolve() != Path(data_dir).resolve():
                    raise PackagerError("external data outside the model's folder", file=str(data), key=piece.name)
                left = int(info["length"])
                with open(data, "rb") as src:
                    src.seek(int(info.get("offset", 0)))
                    while left:
                        chunk = src.read(min(left, 64 << 20))
                        if not chunk:
                            raise PackagerError("external data file is shorter than its tensors", file=str(data),
                                                key=piece.name)
                        f.write(chunk)
                        h.update(chunk)
                        left -= len(chunk)
            else:
                raw = piece.raw_data
                f.write(raw)
                h.update(raw)
                del raw
    if Path(path).stat().st_size != total:
        raise PackagerError("wrote a graph file of an unexpected size", file=str(path), expected=f"{total} bytes",
                            found=f"{Path(path).stat().st_size} bytes")
    return h.hexdigest()


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
            _copy_fields(t, meta, _TENSOR_DATA_FIELDS)  # name, type, dims, doc_string...: all but the data
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


def iter_initializer_arrays(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, array) of every initializer of the ONNX file ``path``, external ones read from their data file one at
    a time (never the whole model in memory)."""
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            data = path.parent / info["location"]
            if data.parent.resolve() != path.parent.resolve():
                raise PackagerError("external data outside the model's folder", file=str(path), key=t.name,
                                    found=info["location"])
            with open(data, "rb") as f:
                f.seek(int(info.get("offset", 0)))
                raw = f.read(int(info["length"])) if "length" in info else f.read()
            full = onnx.TensorProto()
            full.name, full.data_type = t.name, t.data_type
            full.dims.extend(t.dims)
            full.raw_data = raw
            del raw
            yield t.name, numpy_helper.to_array(full)
            del full
        else:
            yield t.name, numpy_helper.to_array(t)


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
    """Bytes of the initializers: held in the proto, or in external data (their recorded length) for a model loaded
    without it (``ByteSize()`` itself fails above protobuf's 2 GB)."""
    total = 0
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            total += int({e.key: e.value for e in t.external_data}.get("length", 0))
        elif t.raw_data:
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
