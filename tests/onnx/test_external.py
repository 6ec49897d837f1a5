"""onnx_utils' streamed inline writer and sizes: byte for byte what protobuf serializes, from a model in memory and
from a structure-only load whose weights stay in an external-data file (the build's scratch layout)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from packager.onnx import external as U, io as IO, session as S
from packager.contract.errors import PackagerError


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
        assert IO.weight_bytes(structure) == IO.weight_bytes(model)
        out = tmp_path / f"{name}.streamed.onnx"
        assert U.write_inline(structure, out, data_dir=tmp_path) == sha
        assert out.read_bytes() == want


def test_write_inline_refuses_external_tensors_without_their_folder(tmp_path):
    m = helper.make_model(helper.make_graph([], "g", [], [], [numpy_helper.from_array(np.zeros(512, np.float32), "z")]))
    structure = onnx.load(str(U.save_external_copy(m, tmp_path / "m.onnx")), load_external_data=False)
    with pytest.raises(PackagerError, match="external data"):
        U.write_inline(structure, tmp_path / "out.onnx")


def test_inline_structure_points_into_the_file_itself(tiny_bundle, tmp_path):
    """The structure of an inline file (its weights as external-data references into that file) is the model field for
    field, runs on onnxruntime to the same outputs, and its references are exactly the raw_data bytes."""
    for name, model in _models(tiny_bundle):
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(model.SerializeToString())
        on_disk = U.inline_structure(path)
        assert on_disk.folder == tmp_path
        got = on_disk.model
        assert len(got.graph.initializer) == len(model.graph.initializer)
        for want_t, got_t in zip(model.graph.initializer, got.graph.initializer):
            assert got_t.name == want_t.name and list(got_t.dims) == list(want_t.dims)
            if got_t.data_location == onnx.TensorProto.EXTERNAL:
                info = {e.key: e.value for e in got_t.external_data}
                assert info["location"] == path.name and int(info["length"]) >= U.EXTERNAL_MIN
                assert np.array_equal(U.external_array(tmp_path, got_t).view(np.uint8),
                                      np.frombuffer(want_t.raw_data, np.uint8))
                got_t.raw_data = want_t.raw_data  # inline again: the rest must be the same message
                del got_t.external_data[:]
                got_t.ClearField("data_location")
        assert got.SerializeToString() == model.SerializeToString(), name
        assert IO.raw_nbytes(model.graph.initializer[0]) == len(model.graph.initializer[0].raw_data)


def test_inline_structure_session_matches_the_file(tmp_path, monkeypatch):
    """onnxruntime reads the referenced weights from the file (made from the structure's bytes elsewhere)."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((300, 40)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 300])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 40])],
                          [numpy_helper.from_array(w, "W")])
    path = tmp_path / "m.onnx"
    onnx.save_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)]), str(path))
    x = {"x": rng.standard_normal((2, 300)).astype(np.float32)}
    monkeypatch.chdir(tmp_path.parent)  # the folder comes from the OnDisk, not the working directory
    structure = U.inline_structure(path)
    assert structure.model.graph.initializer[0].data_location == onnx.TensorProto.EXTERNAL
    assert np.array_equal(S.run_onnx(structure, x)["y"], S.run_onnx(str(path), x)["y"])


def test_inline_structure_refuses_what_is_not_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x0f\xff\xff")
    with pytest.raises(PackagerError, match="bad.onnx"):
        U.inline_structure(bad)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(PackagerError, match="empty"):
        U.inline_structure(empty)
