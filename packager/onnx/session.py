"""onnxruntime sessions: one deterministic CPU configuration for every session the packager opens, and runners
(name -> callable) over them."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx
import onnxruntime as ort
from google.protobuf.message import EncodeError

from packager.onnx.external import OnDisk, save_external_copy
from packager.onnx.io import weight_bytes

ORT_DTYPES = {"tensor(float)": "float32", "tensor(int32)": "int32", "tensor(int64)": "int64",
              "tensor(float16)": "float16"}


def session_options(threads: int | None = 1, *, optimize: bool = True, prepack: bool = True,
                    log_severity: int = 3) -> ort.SessionOptions:
    """The options of every onnxruntime session the packager opens: CPU, sequential, ``threads`` intra-op threads
    (None: onnxruntime's default, every core), all graph optimisations unless ``optimize`` is False, and only errors
    (severity 3) or nothing (4) logged."""
    opts = ort.SessionOptions()
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = log_severity
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if not prepack:  # one-off checks: skip the weight repacking copies (~1 GB less per full-size session)
        opts.add_session_config_entry("session.disable_prepacking", "1")
    return opts


def session(model: onnx.ModelProto | OnDisk | bytes | str, threads: int = 1,
            prepack: bool = True, optimize: bool = True) -> ort.InferenceSession:
    """A deterministic CPU onnxruntime session (1 thread by default, all graph optimisations on; ``optimize=False``
    runs the graph as written, for one-off probes whose every node output is a graph output anyway)."""
    opts = session_options(threads, optimize=optimize, prepack=prepack)
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


def ort_runners(graphs: Mapping[str, object], threads: int = 1) -> dict:
    """Host-loop runners (``name -> callable(inputs) -> outputs``, as ``packager/runtime`` takes them) over onnxruntime
    CPU sessions; values are ModelProtos, serialized bytes or .onnx paths."""
    runners = {}
    for name, model in graphs.items():
        sess = session(str(model) if isinstance(model, Path) else model, threads)
        runners[name] = lambda inputs, s=sess: run_onnx(s, inputs)
    return runners
