"""The export stage's own helpers."""
from __future__ import annotations


def test_initializers_are_built_in_place_as_from_array_builds_them():
    """The weights attached after a trace are the messages numpy_helper.from_array makes, byte for byte."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from packager.build.stages.export import _add_initializer

    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((3, 5)).astype(np.float32), rng.standard_normal(7).astype(np.float16),
              np.arange(6, dtype=np.int64).reshape(2, 3), np.array(3, np.int32), np.zeros((0, 4), np.float32),
              np.array([True, False])]
    for i, a in enumerate(arrays):
        want, got = onnx.GraphProto(), onnx.GraphProto()
        want.initializer.append(numpy_helper.from_array(a, f"w{i}"))
        _add_initializer(got, a, f"w{i}")
        assert got.SerializeToString() == want.SerializeToString(), a.dtype
