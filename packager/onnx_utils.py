"""Small ONNX helpers shared by stages and components."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
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


_FIXED_ITEMSIZE = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.DOUBLE: 8,
                   onnx.TensorProto.INT32: 4, onnx.TensorProto.INT64: 8, onnx.TensorProto.INT8: 1,
                   onnx.TensorProto.UINT8: 1, onnx.TensorProto.BOOL: 1, onnx.TensorProto.INT16: 2,
                   onnx.TensorProto.UINT16: 2, onnx.TensorProto.BFLOAT16: 2}


def raw_nbytes(t: onnx.TensorProto) -> int:
    """``len(t.raw_data)``, from the dims where the dtype has a fixed size: reading a bytes field of a protobuf
    message copies it (0.8 s for a full-size LLM's 544 MB embedding table), and the build asks this often."""
    if not t.HasField("raw_data"):
        return 0
    size = _FIXED_ITEMSIZE.get(t.data_type)
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


def session(model: onnx.ModelProto | OnDisk | bytes | str, threads: int = 1,
            prepack: bool = True, optimize: bool = True) -> ort.InferenceSession:
    """A deterministic CPU onnxruntime session (1 thread by default, all graph optimisations on; ``optimize=False``
    runs the graph as written, for one-off probes whose every node output is a graph output anyway)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if not prepack:  # one-off checks: skip the weight repacking copies (~1 GB less per full-size session)
        opts.add_session_config_entry("session.disable_prepacking", "1")
    if isinstance(model, OnDisk):  # the structure as bytes, its external data read from the folder's files
        opts.add_session_config_entry("session.model_external_initializers_file_folder_path", str(model.folder))
        payload = model.model.SerializeToString()
    elif isinstance(model, onnx.ModelProto):
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
        elif raw_nbytes(t) >= STREAM_MIN:
            head, tail = _split(t, _TENSOR_RAW_DATA)
            n = raw_nbytes(t)
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
    slice at a time (the weights are never held in memory); a tensor whose fp16 rounding was deferred
    (``defer_fp16_rounding``) is rounded from its float32 data on the way."""
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
            elif deferred_rounding(piece) is not None:  # fp16 rounded from the fp32 data file, a slice at a time
                for half in _rounded_slices(data_dir, piece):
                    view = memoryview(half).cast("B")
                    f.write(view)
                    h.update(view)
            elif piece.data_location == onnx.TensorProto.EXTERNAL:
                data, info = _external_file(data_dir, piece)
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


# --- reading an inline .onnx file without its weights -----------------------------------------------------------------
def _read_varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf, start: int, end: int, where: str) -> Iterator[tuple[int, int, int, int]]:
    """(field number, start of the field's tag, start of its payload, end) of each field of the message
    ``buf[start:end]`` (protobuf wire format; length-delimited payloads are skipped, not read)."""
    pos = start
    while pos < end:
        tag_at = pos
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(buf, pos)
            payload = pos
        elif wire == 1:
            payload, pos = pos, pos + 8
        elif wire == 2:
            n, payload = _read_varint(buf, pos)
            pos = payload + n
        elif wire == 5:
            payload, pos = pos, pos + 4
        else:
            raise PackagerError("not an ONNX file (unsupported protobuf wire type)", file=where)
        if pos > end:
            raise PackagerError("truncated ONNX file", file=where)
        yield number, tag_at, payload, pos


@dataclass(frozen=True)
class OnDisk:
    """A model whose large tensors are external data in files of ``folder``: onnxruntime gets the structure as
    bytes and reads the weights from there (``session``)."""

    model: onnx.ModelProto
    folder: Path


def inline_structure(path: Path, min_bytes: int = EXTERNAL_MIN) -> OnDisk:
    """The model of the inline .onnx file ``path`` with each initializer of at least ``min_bytes`` of raw_data turned
    into an external-data reference into ``path`` itself (location = its name, offset and length of the raw_data
    bytes inside it): the structure without reading a weight into memory. onnxruntime then reads the weights straight
    from the file, and a rewrite of the graph (the Sentis view's upcast) costs no copy of them."""
    import mmap

    path = Path(path)
    where = str(path)
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            raise PackagerError("empty ONNX file", file=where)
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        model_rest, graph_at = bytearray(), None
        for number, tag_at, payload, end in _fields(buf, 0, size, where):
            if number == _MODEL_GRAPH:
                graph_at = (payload, end)
            else:
                model_rest += buf[tag_at:end]
        model = onnx.ModelProto.FromString(bytes(model_rest))
        if graph_at is None:
            return OnDisk(model, path.parent)
        graph_rest, tensors = bytearray(), []
        for number, tag_at, payload, end in _fields(buf, *graph_at, where):
            if number != _GRAPH_INITIALIZER:
                graph_rest += buf[tag_at:end]
                continue
            fields, raw = bytearray(), None
            for tn, t_tag, t_payload, t_end in _fields(buf, payload, end, where):
                if tn == _TENSOR_RAW_DATA and t_end - t_payload >= min_bytes:
                    raw = (t_payload, t_end - t_payload)
                else:
                    fields += buf[t_tag:t_end]
            t = onnx.TensorProto.FromString(bytes(fields))
            if raw is not None:
                t.data_location = onnx.TensorProto.EXTERNAL
                for key, value in (("location", path.name), ("offset", str(raw[0])), ("length", str(raw[1]))):
                    e = t.external_data.add()
                    e.key, e.value = key, value
            tensors.append(t)
        model.graph.ParseFromString(bytes(graph_rest))
        model.graph.initializer.extend(tensors)
        return OnDisk(model, path.parent)
    finally:
        buf.close()


def _external_file(folder: Path, t: onnx.TensorProto) -> tuple[Path, dict[str, str]]:
    """The data file of an external initializer of a model in ``folder`` and its external-data entries; a location
    outside ``folder`` is refused (a file's own references are never trusted to point elsewhere)."""
    info = {e.key: e.value for e in t.external_data}
    data = Path(folder) / info["location"]
    if data.parent.resolve() != Path(folder).resolve():
        raise PackagerError("external data outside the model's folder", file=str(data), key=t.name)
    return data, info


def external_array(folder: Path, t: onnx.TensorProto) -> np.ndarray:
    """The data of an external initializer of a model in ``folder``, memory-mapped read-only (no copy)."""
    if deferred_rounding(t) is not None:
        raise PackagerError("the tensor's fp16 data does not exist yet (it is rounded when the graph is written)",
                            key=t.name)
    data, info = _external_file(folder, t)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
    count = int(np.prod(t.dims, dtype=np.int64))
    offset = int(info.get("offset", 0))
    length = int(info["length"]) if "length" in info else count * dtype.itemsize
    if length != count * dtype.itemsize:
        raise PackagerError("external data length does not match the tensor's shape", file=str(data), key=t.name,
                            expected=f"{count * dtype.itemsize} bytes", found=f"{length} bytes")
    return _mapped(data, offset, count, dtype, t.name)


def _mapped(data: Path, offset: int, count: int, dtype, name: str) -> np.ndarray:
    """``count`` values of ``dtype`` at ``offset`` in the file ``data``, memory-mapped read-only; a missing or short
    file is an error naming both."""
    dtype = np.dtype(dtype)
    if not data.is_file() or data.stat().st_size < offset + count * dtype.itemsize:
        raise PackagerError("external data file is missing or shorter than its tensors", file=str(data), key=name)
    if count == 0:
        return np.zeros(0, dtype)
    return np.memmap(data, dtype=dtype, mode="r", offset=offset, shape=(count,))


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
            if deferred_rounding(t) is not None:  # its reference would not resolve next to ``path``
                raise PackagerError("cannot copy a tensor whose fp16 rounding is deferred; write the model with "
                                    "write_inline or load_external_data first", key=t.name)
            if t.data_location == onnx.TensorProto.EXTERNAL or t.data_type == onnx.TensorProto.STRING:
                lg.initializer.append(t)
                continue
            raw = t.raw_data if raw_nbytes(t) else numpy_helper.to_array(t).tobytes()  # one read of the field
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


# --- fp16 weights rounded as the graph is written ---------------------------------------------------------------------
# The fp16 conversion of a full-size graph works on its structure (weights as external-data stubs into the fp32
# scratch file): each large weight is marked to be rounded, and ``write_inline`` rounds it from the fp32 data while it
# writes the file. No proto ever holds the weights (the fp32 copy loaded back, then the fp16 one, used to be 2 GB and
# several seconds of copies for a full-size LLM step graph). The bytes are those of rounding in memory (tested).
ROUND_ON_WRITE = "packager_fp16_from_float32"  # external_data key: the rounding's limits, "min_positive max_finite"
ROUND_SLICE = 1 << 24  # float32 values rounded per pass (64 MB of the source at a time)


def defer_fp16_rounding(t: onnx.TensorProto, min_positive_val: float, max_finite_val: float) -> None:
    """Make the external float32 stub ``t`` an fp16 tensor whose data is still the float32 in its data file, rounded
    with ``fp16_rounding.converter_float16(min_positive_val, max_finite_val)`` when it is written (``write_inline``,
    ``load_external_data``). Its ``length`` becomes the fp16 one, so sizes computed on the structure are the result's."""
    info = {e.key: e.value for e in t.external_data}
    count = int(np.prod(t.dims, dtype=np.int64))
    if (t.data_type != onnx.TensorProto.FLOAT or t.data_location != onnx.TensorProto.EXTERNAL
            or ROUND_ON_WRITE in info or info.get("length") != str(4 * count)):
        raise PackagerError("cannot defer the fp16 rounding of this tensor", key=t.name,
                            expected="an external float32 tensor with its length recorded")
    t.data_type = onnx.TensorProto.FLOAT16
    for e in t.external_data:
        if e.key == "length":
            e.value = str(2 * count)
    e = t.external_data.add()
    e.key, e.value = ROUND_ON_WRITE, f"{float(min_positive_val)!r} {float(max_finite_val)!r}"


def deferred_rounding(t: onnx.TensorProto) -> tuple[float, float] | None:
    """The (min_positive_val, max_finite_val) of a tensor marked by ``defer_fp16_rounding``, else None."""
    if t.data_location != onnx.TensorProto.EXTERNAL:
        return None
    for e in t.external_data:
        if e.key == ROUND_ON_WRITE:
            lo, hi = e.value.split()
            return float(lo), float(hi)
    return None


def _rounded_slices(folder: Path | None, t: onnx.TensorProto) -> Iterator[np.ndarray]:
    """The fp16 data of a deferred tensor, rounded from its float32 source a slice at a time."""
    from packager.fp16_rounding import converter_float16

    limits = deferred_rounding(t)
    if folder is None:
        raise PackagerError("the tensor's float32 source is in external data, but no folder was given", key=t.name)
    data, info = _external_file(folder, t)
    src = _mapped(data, int(info.get("offset", 0)), int(np.prod(t.dims, dtype=np.int64)), np.float32, t.name)
    for i in range(0, src.size, ROUND_SLICE):
        yield converter_float16(src[i:i + ROUND_SLICE], *limits)


def load_external_data(model: onnx.ModelProto, folder: Path) -> onnx.ModelProto:
    """``model`` (changed in place and returned) with every external tensor's data read from ``folder`` into
    ``raw_data`` (deferred fp16 tensors rounded), the tensors then without ``data_location``: the proto as it was
    before its weights went to external data, serializing to the same bytes."""
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        if deferred_rounding(t) is not None:
            t.raw_data = b"".join(half.tobytes() for half in _rounded_slices(folder, t))
        else:
            data, info = _external_file(folder, t)
            length = int(info["length"]) if "length" in info else \
                _FIXED_ITEMSIZE[t.data_type] * int(np.prod(t.dims, dtype=np.int64))
            t.raw_data = _mapped(data, int(info.get("offset", 0)), length, np.uint8, t.name).tobytes()
        del t.external_data[:]
        t.ClearField("data_location")
    return model


def load_external_copy(path: Path) -> onnx.ModelProto:
    """The model ``save_external_copy`` wrote, with its tensors back inline, exactly as it was before
    (``load_external_data``); every external tensor must be in the data file written beside it."""
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    data = path.with_name(path.name + ".data")
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            location = {e.key: e.value for e in t.external_data}.get("location")
            if location != data.name:
                raise PackagerError("unexpected external-data location", file=str(path), key=t.name,
                                    expected=data.name, found=location)
    return load_external_data(model, path.parent)


def iter_initializer_arrays(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, array) of every initializer of the ONNX file ``path``, external ones memory-mapped read-only from their
    data file one at a time (never the whole model in memory, no copy of a weight)."""
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            if t.data_type not in _FIXED_ITEMSIZE or t.data_type == onnx.TensorProto.BFLOAT16:
                raise PackagerError("unsupported external tensor type", file=str(path), key=t.name,
                                    found=onnx.TensorProto.DataType.Name(t.data_type))
            yield t.name, external_array(path.parent, t).reshape(tuple(t.dims))
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


def ort_runners(graphs: Mapping[str, object], threads: int = 1) -> dict:
    """Host-loop runners (``name -> callable(inputs) -> outputs``, as ``packager/host`` takes them) over onnxruntime
    CPU sessions; values are ModelProtos, serialized bytes or .onnx paths."""
    runners = {}
    for name, model in graphs.items():
        sess = session(str(model) if isinstance(model, Path) else model, threads)
        runners[name] = lambda inputs, s=sess: run_onnx(s, inputs)
    return runners
