"""onnx_utils' streamed inline writer and sizes: byte for byte what protobuf serializes, from a model in memory and
from a structure-only load whose weights stay in an external-data file (the build's scratch layout)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from packager import onnx_utils as U
from packager.errors import PackagerError


def _models(tiny_bundle):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    for c in manifest["components"]:
        for g in c["graphs"]:
            yield g["name"], onnx.load(str(tiny_bundle / g["file"]))
    rng = np.random.default_rng(3)  # every optional field set, a tensor big enough to stream at the real threshold
    w = numpy_helper.from_array(rng.standard_normal((600, 600)).astype(np.float32), "W")
    w.doc_string = "weights"
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm", doc_string="d")], "g",
                          [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 600])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 600])], [w],
                          doc_string="graph doc")
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)], producer_name="t", doc_string="model doc")
    m.metadata_props.add(key="k", value="v")
    yield "handmade", m


@pytest.mark.parametrize("stream_min", [U.STREAM_MIN, 1024])
def test_write_inline_is_serialize_to_string(tiny_bundle, tmp_path, monkeypatch, stream_min):
    monkeypatch.setattr(U, "STREAM_MIN", stream_min)
    for name, model in _models(tiny_bundle):
        want = model.SerializeToString()
        path = tmp_path / f"{name}.onnx"
        sha = U.write_inline(model, path)
        assert path.read_bytes() == want, name
        assert sha == hashlib.sha256(want).hexdigest()
        assert U.inline_size(model) == len(want) == model.ByteSize()

        scratch = U.save_external_copy(model, tmp_path / f"{name}.scratch.onnx")
        structure = onnx.load(str(scratch), load_external_data=False)
        assert U.inline_size(structure) == len(want)  # sizes from the structure alone
        assert U.weight_bytes(structure) == U.weight_bytes(model)
        out = tmp_path / f"{name}.streamed.onnx"
        assert U.write_inline(structure, out, data_dir=tmp_path) == sha
        assert out.read_bytes() == want


def test_write_inline_refuses_external_tensors_without_their_folder(tmp_path):
    m = helper.make_model(helper.make_graph([], "g", [], [], [numpy_helper.from_array(np.zeros(512, np.float32), "z")]))
    structure = onnx.load(str(U.save_external_copy(m, tmp_path / "m.onnx")), load_external_data=False)
    with pytest.raises(PackagerError, match="external data"):
        U.write_inline(structure, tmp_path / "out.onnx")
