"""Export stage: a ``GraphDef`` -> a Sentis-friendly fp32 ``onnx.ModelProto``.

TorchScript exporter (``dynamo=False``), named I/O, dynamic axes from the symbolic dims of the specs, no
doc strings, then the component's own ``rewrite`` and a final shape inference / checker pass.
"""
from __future__ import annotations

import contextlib
import gc
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from packager import GENERATOR_NAME
from packager.build.component import GraphDef
from packager.contract.errors import PackagerError
from packager.sentis.rewrites import upgrade_opset
from packager.onnx.io import check_model
from packager.sentis.rules import DEFAULT_OPSET


def _dynamic_axes(g: GraphDef) -> dict[str, dict[int, str]]:
    axes = {}
    for spec in [*g.inputs, *g.outputs]:
        named = {i: d for i, d in enumerate(spec.shape) if isinstance(d, str)}
        if named:
            axes[spec.name] = named
    return axes


@contextlib.contextmanager
def _linear_on_transposed_views(module: torch.nn.Module) -> Iterator[None]:
    """While tracing, every ``nn.Linear`` multiplies by ``weight.t()`` held as a parameter of its own (a view: no
    copy). The exporter writes ``aten::linear`` as ``MatMul(x, Transpose(W))`` (+ ``Add``) and constant-folds the
    Transpose into a new tensor: a second copy of every Linear weight in memory (1.4 GB for the full-size
    ``llm_step``). Here the graph has the same nodes and values, the transposed weight traced as it is. A 2-D input
    with a bias stays ``linear`` (the exporter's ``Gemm(x, W, b, transB=1)`` copies nothing)."""
    patched = []
    for m in module.modules():
        if isinstance(m, torch.nn.Linear) and "forward" not in vars(m):
            m.register_parameter(TRANSPOSED, torch.nn.Parameter(m.weight.detach().t(), requires_grad=False))

            def forward(x: torch.Tensor, m: torch.nn.Linear = m) -> torch.Tensor:
                if x.dim() == 2 and m.bias is not None:  # Gemm(x, W, b, transB=1): no copy
                    return torch.nn.functional.linear(x, m.weight, m.bias)
                y = torch.matmul(x, getattr(m, TRANSPOSED))
                return y if m.bias is None else y + m.bias

            m.forward = forward
            patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward
            del m._parameters[TRANSPOSED]


TRANSPOSED = "weight_t"  # name of the traced transposed view (the initializer is ``<module path>.weight_t``)


@contextlib.contextmanager
def _capture_params(into: dict) -> Iterator[None]:
    """Record the exporter's named parameter dict (its weights and the constants it folded from them, e.g. a
    frequency buffer times a constant), which it discards under ``export_params=False``. A private function of the
    TorchScript exporter of the pinned torch; where it is missing, ``_attach_weights`` reads the module instead."""
    try:
        from torch.onnx._internal.torchscript_exporter import utils as ts_utils
        original = ts_utils._model_to_graph
    except (ImportError, AttributeError):
        yield
        return

    def model_to_graph(*args, **kwargs):
        graph, params, out = original(*args, **kwargs)
        into.update(params)
        return graph, params, out

    ts_utils._model_to_graph = model_to_graph
    try:
        yield
    finally:
        ts_utils._model_to_graph = original


def _trace(g: GraphDef, opset: int, path: Path, export_params: bool) -> dict:
    params: dict = {}
    with torch.no_grad(), warnings.catch_warnings(), _capture_params(params):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            g.module, tuple(g.example_inputs), str(path),
            input_names=[s.name for s in g.inputs], output_names=[s.name for s in g.outputs],
            dynamic_axes=_dynamic_axes(g), opset_version=opset, do_constant_folding=True,
            export_params=export_params, keep_initializers_as_inputs=False, dynamo=False,
        )
    gc.collect()  # the exporter's intermediate graphs
    return params


def _attach_weights(model: onnx.ModelProto, g: GraphDef, params: dict) -> bool:
    """Turn the weight inputs of a graph traced with ``export_params=False`` into initializers, one tensor at a
    time, from the exporter's parameter dict or else the module's own parameters and buffers. False (nothing
    changed) when a value is found in neither."""
    n_spec = len(g.inputs)
    tensors = dict(g.module.named_parameters(remove_duplicate=False))
    tensors.update(g.module.named_buffers(remove_duplicate=False))
    tensors.update(params)
    extra = list(model.graph.input[n_spec:])
    if any(i.name not in tensors for i in extra):
        return False
    for i in extra:
        _add_initializer(model.graph, tensors[i.name].detach().contiguous().numpy(), i.name)
    del model.graph.input[n_spec:]
    return True


_RAW_DTYPES = (np.float32, np.float16, np.float64, np.int64, np.int32, np.int8, np.uint8)


def _add_initializer(graph: onnx.GraphProto, a: np.ndarray, name: str) -> None:
    """``graph.initializer.append(numpy_helper.from_array(a, name))``, the same message, built in place: appending
    a message copies it (for a full-size embedding table, 544 MB more to copy)."""
    if a.dtype.type not in _RAW_DTYPES or not a.dtype.isnative:
        graph.initializer.append(numpy_helper.from_array(a, name))
        return
    t = graph.initializer.add()
    t.dims.extend(a.shape)
    t.data_type = onnx.helper.np_dtype_to_tensor_dtype(a.dtype)
    t.name = name
    t.raw_data = a.tobytes()


def export_module(g: GraphDef, opset: int = DEFAULT_OPSET, workdir: Path | None = None) -> onnx.ModelProto:
    """Trace ``g.module`` with ``g.example_inputs`` into ONNX (TorchScript exporter).

    The trace is exported without its weights (``export_params=False``): the exporter's own weight export holds
    three copies of them at once (its graph, the serialized proto, the file bytes: +4.2 GB over the module for the
    full-size ``llm_step``). The weights are then attached from the module, which holds them anyway."""
    if g.module is None or g.example_inputs is None:
        raise PackagerError("graph has neither a module with example inputs nor an ONNX model", key=g.name)
    g.module.eval()
    # to a file, not a BytesIO: onnx.load reads it once, where getvalue() + load_from_string held the serialized
    # graph twice next to the proto
    with tempfile.TemporaryDirectory(prefix=".export-", dir=workdir) as d:
        path = Path(d) / f"{g.name}.onnx"
        with _linear_on_transposed_views(g.module):
            params = _trace(g, opset, path, export_params=False)
            model = onnx.load(str(path))
            attached = _attach_weights(model, g, params)
            del params
            if attached:
                return model
            del model
            _trace(g, opset, path, export_params=True)
        return onnx.load(str(path))  # external data (a graph over 2 GB) is read back into the proto


def finalize(model: onnx.ModelProto, g: GraphDef) -> onnx.ModelProto:
    """Deterministic, self-describing metadata; strip doc strings; check; name the I/O exactly as the specs."""
    model.producer_name = GENERATOR_NAME
    model.producer_version = ""
    model.doc_string = ""
    del model.metadata_props[:]
    model.graph.name = g.name
    model.graph.doc_string = ""
    for node in model.graph.node:
        node.doc_string = ""
    got_in = [i.name for i in model.graph.input]
    got_out = [o.name for o in model.graph.output]
    want_in = [s.name for s in g.inputs]
    want_out = [s.name for s in g.outputs]
    if got_in != want_in or got_out != want_out:
        raise PackagerError("exported graph I/O names differ from the spec", key=g.name,
                            expected=f"{want_in} -> {want_out}", found=f"{got_in} -> {got_out}")
    check_model(model)
    return model


def export_graph(g: GraphDef, opset: int = DEFAULT_OPSET, workdir: Path | None = None) -> onnx.ModelProto:
    """The whole export stage for one graph: trace (or take the given model), rewrite, finalize."""
    model = onnx.ModelProto()
    if g.onnx_model is not None:  # an existing graph (e.g. shipped campplus.onnx): bring it to the build opset
        model.CopyFrom(g.onnx_model)
        model = upgrade_opset(model, opset)
    else:
        model = export_module(g, opset, workdir)
    if g.rewrite is not None:
        model = g.rewrite(model)
    return finalize(model, g)
