"""Export stage: a ``GraphDef`` -> a Sentis-friendly fp32 ``onnx.ModelProto``.

TorchScript exporter (``dynamo=False``), named I/O, dynamic axes from the symbolic dims of the specs, no
doc strings, then the component's own ``rewrite`` and a final shape inference / checker pass.
"""
from __future__ import annotations

import gc
import tempfile
import warnings
from pathlib import Path

import onnx
import torch

from packager import GENERATOR_NAME
from packager.component import GraphDef
from packager.errors import PackagerError
from packager.graph_rewrites import upgrade_opset
from packager.sentis_rules import DEFAULT_OPSET


def _dynamic_axes(g: GraphDef) -> dict[str, dict[int, str]]:
    axes = {}
    for spec in [*g.inputs, *g.outputs]:
        named = {i: d for i, d in enumerate(spec.shape) if isinstance(d, str)}
        if named:
            axes[spec.name] = named
    return axes


def export_module(g: GraphDef, opset: int = DEFAULT_OPSET, workdir: Path | None = None) -> onnx.ModelProto:
    """Trace ``g.module`` with ``g.example_inputs`` into ONNX (TorchScript exporter)."""
    if g.module is None or g.example_inputs is None:
        raise PackagerError("graph has neither a module with example inputs nor an ONNX model", key=g.name)
    g.module.eval()
    # to a file, not a BytesIO: onnx.load reads it once, where getvalue() + load_from_string held the serialized
    # graph twice next to the proto (GBs at full size)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=workdir) as d:
        path = Path(d) / f"{g.name}.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                g.module, tuple(g.example_inputs), str(path),
                input_names=[s.name for s in g.inputs], output_names=[s.name for s in g.outputs],
                dynamic_axes=_dynamic_axes(g), opset_version=opset, do_constant_folding=True,
                export_params=True, keep_initializers_as_inputs=False, dynamo=False,
            )
        gc.collect()  # the exporter's intermediate graphs, before the file is read back
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
    onnx.checker.check_model(model)
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
