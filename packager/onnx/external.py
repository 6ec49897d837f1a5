"""External data and streamed graph files: writing an inline .onnx without one contiguous serialized copy, reading
a file's structure with its weights left in place, external-data copies and their arrays."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
from onnx import numpy_helper

from packager.contract.errors import PackagerError
from packager.onnx.fp16_rounding import ROUND_SLICE, deferred_rounding
from packager.onnx.io import FIXED_ITEMSIZE, raw_nbytes

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


def _rounded_slices(folder: Path | None, t: onnx.TensorProto) -> Iterator[np.ndarray]:
    """The fp16 data of a deferred tensor, rounded from its float32 source a slice at a time."""
    from packager.onnx.fp16_rounding import converter_float16

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
                FIXED_ITEMSIZE[t.data_type] * int(np.prod(t.dims, dtype=np.int64))
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
            if t.data_type not in FIXED_ITEMSIZE or t.data_type == onnx.TensorProto.BFLOAT16:
                raise PackagerError("unsupported external tensor type", file=str(path), key=t.name,
                                    found=onnx.TensorProto.DataType.Name(t.data_type))
            yield t.name, external_array(path.parent, t).reshape(tuple(t.dims))
        else:
            yield t.name, numpy_helper.to_array(t)
