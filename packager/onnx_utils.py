"""Small ONNX helpers shared by stages and components."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx
import onnxruntime as ort
from google.protobuf.message import EncodeError

from packager.errors import PackagerError

ORT_DTYPES = {"tensor(float)": "float32", "tensor(int32)": "int32", "tensor(int64)": "int64",
              "tensor(float16)": "float16"}


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
        try:
            payload = model.SerializeToString()
        except (EncodeError, ValueError):  # over protobuf's 2 GB: hand onnxruntime a file with external data
            return _session_via_file(model, opts)
    else:
        payload = model
    return ort.InferenceSession(payload, sess_options=opts, providers=["CPUExecutionProvider"])


def _session_via_file(model: onnx.ModelProto, opts: ort.SessionOptions) -> ort.InferenceSession:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # save_model(save_as_external_data=True) rewrites the proto it is given
    with tempfile.TemporaryDirectory(prefix="packager-ort-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save_model(copy, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx.data", size_threshold=1024, convert_attribute=False)
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
