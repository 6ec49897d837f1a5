"""Test vectors shared by the Python and C# sides (both must give the same verdicts on the same vectors).

``write_vectors(out)`` writes NPY files, manifests, tolerance cases, paths, sha256 cases and a small bundle under
``out`` and returns ``index.json``'s content: every vector with the *Python* verdict. The mono tests
(tests/csharp/cs/VectorTests.cs) assert their own verdict equals the recorded one and also write theirs to a results
file, which tests/csharp/test_core.py compares field by field.

Python verdicts come from ``packager.contract.manifest``, the one home of the bundle format's rules: ``parse_json`` +
``manifest_problems`` (strict JSON, schemas/manifest.schema.json, cross-references: manifests), ``read_npy`` (the
NPY rules), ``check_file`` (size and sha256); ``packager.contract.tolerance.compare`` (tolerances) and ``re.fullmatch`` of
the schema's relpath pattern (paths).
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from packager import GENERATOR_NAME, __version__
from packager.contract import manifest as B
from packager.contract.errors import PackagerError
from packager.sentis.rules import DEFAULT_TARGET, TARGETS
from packager.contract.tolerance import compare

REPO = Path(__file__).resolve().parents[2]
RELPATH = B.schema()["$defs"]["relpath"]["pattern"]


def num(x: float) -> Any:
    """JSON has no NaN/inf: write them as strings (the C# side writes the same)."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()  # np.array(order="C"), not np.ascontiguousarray: that one turns a 0-d array into shape (1,)
    np.lib.format.write_array(buf, np.array(arr, order="C"), version=(1, 0), allow_pickle=False)
    return buf.getvalue()


def raw_npy(header: str, data: bytes, version: tuple[int, int] = (1, 0), magic: bytes = b"\x93NUMPY") -> bytes:
    """Hand-made NPY bytes (for malformed vectors): the header padded like numpy pads it."""
    h = header.encode("latin1")
    pre = 10 if version[0] == 1 else 12
    h += b" " * ((64 - (pre + len(h) + 1) % 64) % 64) + b"\n"
    size = struct.pack("<H", len(h)) if version[0] == 1 else struct.pack("<I", len(h))
    return magic + bytes(version) + size + h + data


# ----------------------------------------------------------------------------------------------------- NPY rules

def npy_vectors(out: Path) -> list[dict[str, Any]]:
    f32 = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    half = np.array([0.0, -0.0, 1.0, -2.5, 65504, 6.1e-5, 5.96e-8, 3e-6, np.inf, -np.inf, np.nan], dtype=np.float16)
    cases: dict[str, bytes] = {
        "ok_f32_2x3": npy(f32),
        "ok_i32": npy(np.array([0, -1, 2**31 - 1, -2**31], dtype=np.int32)),
        "ok_f16_specials": npy(half),
        "ok_scalar": npy(np.array(3.5, dtype=np.float32)),
        "ok_empty_0x3": npy(np.zeros((0, 3), dtype=np.float32)),
        "ok_rank8": npy(np.ones((1, 2, 1, 2, 1, 1, 2, 1), dtype=np.int32)),
        "ok_v2_header": raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
                                np.array([1, 2], np.float32).tobytes(), version=(2, 0)),
        "ok_double_quotes": raw_npy('{"descr": "<i4", "fortran_order": False, "shape": (1, 1)}',
                                    np.array([[7]], np.int32).tobytes()),
        "bad_magic": b"\x93NUMPX" + npy(f32)[6:],
        "bad_version_3": raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4, version=(3, 0)),
        "bad_big_endian": raw_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4),
        "bad_native_order": raw_npy("{'descr': '=f4', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4),
        "bad_f64": npy(np.zeros(2, np.float64)),
        "bad_i64": npy(np.zeros(2, np.int64)),
        "bad_u8": npy(np.zeros(2, np.uint8)),
        "bad_bool": npy(np.zeros(2, np.bool_)),
        "bad_fortran": raw_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", b"\0" * 16),
        "bad_truncated": npy(f32)[:-1],
        "bad_trailing": npy(f32) + b"\0",
        "bad_missing_key": raw_npy("{'descr': '<f4', 'shape': (1,), }", b"\0" * 4),
        "bad_extra_key": raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1, }", b"\0" * 4),
        "bad_not_dict": raw_npy("['<f4', False, (1,)]", b"\0" * 4),
        "bad_rank9": raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }", b"\0" * 4),
        "bad_negative_dim": raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", b"\0" * 4),
        "bad_int_not_tuple": raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1), }", b"\0" * 4),
        "bad_short_file": b"\x93NUMPY\x01",
    }
    vectors = []
    (out / "npy").mkdir(parents=True, exist_ok=True)
    for name, data in cases.items():
        (out / "npy" / f"{name}.npy").write_bytes(data)
        try:
            arr = B.read_npy(data, name)
            py = {"ok": True, "dtype": str(arr.dtype), "shape": list(arr.shape),
                  "values": [num(x) for x in arr.astype(np.float64).ravel()]}
        except PackagerError:
            py = {"ok": False}
        assert py["ok"] == name.startswith("ok_"), name
        vectors.append({"name": name, "file": f"npy/{name}.npy", "python": py})
    return vectors


# ----------------------------------------------------------------------------------------------- tolerance rules

def tolerance_cases() -> list[tuple[str, np.ndarray, np.ndarray, dict[str, Any]]]:
    rng = np.random.default_rng(8)
    e = rng.standard_normal((4, 5)).astype(np.float32)
    small = (e + np.float32(1e-6)).astype(np.float32)
    big = (e + np.float32(1e-3)).astype(np.float32)
    logits = rng.standard_normal((3, 2, 7)).astype(np.float32) * 4
    flipped = logits.copy()
    flipped[0, 0] = flipped[0, 0][::-1]  # changes that row's argmax
    audio = np.sin(np.linspace(0, 60, 1200)).astype(np.float32)
    noisy = (audio + rng.standard_normal(1200).astype(np.float32) * 0.02).astype(np.float32)
    nan_a = e.copy(); nan_a[1, 2] = np.nan
    inf_a = e.copy(); inf_a[2, 3] = np.inf
    inf_both_a, inf_both_e = e.copy(), e.copy()
    inf_both_a[0, 0] = inf_both_e[0, 0] = np.inf
    ints = np.array([[1, 5, 9], [2, 6, 10]], dtype=np.int32)
    ints_bad = ints.copy(); ints_bad[1, 1] = 7
    nan_both = e.copy(); nan_both[0, 1] = np.nan
    tie = np.array([[1, 3, 3, 0], [np.nan, 1, 2, 0]], dtype=np.float32)
    tie_e = np.array([[1, 3, 2, 0], [5, 1, 2, 0]], dtype=np.float32)
    el = {"atol": 1e-5, "rtol": 0.0}
    return [
        ("pass_elementwise", small, e, el),
        ("fail_elementwise", big, e, {"atol": 1e-4, "rtol": 0.0}),
        ("pass_rtol", (e * np.float32(1.0005)).astype(np.float32), e, {"atol": 0.0, "rtol": 1e-3}),
        ("fail_rtol", (e * np.float32(1.002)).astype(np.float32), e, {"atol": 0.0, "rtol": 1e-3}),
        ("fail_nan_actual", nan_a, e, {"atol": 1.0, "rtol": 1.0}),
        ("fail_inf_actual", inf_a, e, {"atol": 1.0, "rtol": 1.0}),
        ("pass_inf_both_rtol", inf_both_a, inf_both_e, {"atol": 1e-6, "rtol": 1e-3}),
        ("fail_inf_both_no_rtol", inf_both_a, inf_both_e, {"atol": 1e-6, "rtol": 0.0}),
        ("pass_exact_int", ints, ints.copy(), {"atol": 0.0, "rtol": 0.0, "exact": True}),
        ("fail_exact_int", ints_bad, ints, {"atol": 0.0, "rtol": 0.0, "exact": True}),
        ("fail_exact_nan_both", nan_both, nan_both.copy(), {"atol": 0.0, "rtol": 0.0, "exact": True,
                                                           "metrics": {"cosine": 0.5}}),
        ("fail_shape", e[:, :4].copy(), e, el),
        ("fail_rank", e.reshape(-1), e, el),
        ("fail_dtype_int_vs_float", ints, ints.astype(np.float32), el),
        ("fail_dtype_f16_vs_f32", e.astype(np.float16), e, {"atol": 1.0, "rtol": 0.0}),
        ("pass_cosine_only", noisy, audio, {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"cosine": 0.99}}),
        ("fail_cosine", noisy, audio, {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"cosine": 0.9999}}),
        ("pass_sqnr", noisy, audio, {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"sqnr_db": 20.0}}),
        ("fail_sqnr", noisy, audio, {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"sqnr_db": 40.0}}),
        ("pass_max_abs_metric", small, e, {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"max_abs": 1e-5}}),
        ("fail_max_abs_metric", big, e, {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"max_abs": 1e-4}}),
        ("fail_max_abs_nan", nan_a, e, {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"max_abs": 1e9}}),
        ("pass_top1_kl", (logits + np.float32(0.01)).astype(np.float32), logits,
         {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"kl": 1e-3, "top1": 1.0}}),
        ("fail_top1", flipped, logits, {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"top1": 0.9}}),
        ("fail_kl", flipped, logits, {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"kl": 0.01}}),
        ("top1_ties_and_nan", tie, tie_e, {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"top1": 0.4}}),
        ("pass_mixed_all", small, e, {"atol": 1e-5, "rtol": 1e-5,
                                      "metrics": {"cosine": 0.999, "sqnr_db": 60.0, "max_abs": 1e-5}}),
        ("fail_one_of_metrics", noisy, audio, {"atol": 0.1, "rtol": 0.0, "metrics": {"cosine": 0.99, "sqnr_db": 50.0}}),
        ("pass_scalar", np.array(2.0, np.float32), np.array(2.0000005, np.float32), {"atol": 1e-6, "rtol": 0.0,
                                                                                    "metrics": {"top1": 1.0}}),
        ("fail_scalar", np.array(2.5, np.float32), np.array(2.0, np.float32), {"atol": 1e-6, "rtol": 0.0}),
        ("pass_empty", np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32),
         {"atol": 0.0, "rtol": 0.0, "metrics": {"cosine": 0.9, "sqnr_db": 10.0, "max_abs": 0.0}}),
        ("fail_empty_top1_nan", np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32),
         {"atol": 0.0, "rtol": 0.0, "metrics": {"top1": 0.5}}),
        ("cosine_zero_vs_zero", np.zeros(5, np.float32), np.zeros(5, np.float32),
         {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"cosine": 0.99, "sqnr_db": 0.0}}),
        ("fail_cosine_zero_vs_nonzero", np.zeros(5, np.float32), np.ones(5, np.float32),
         {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"cosine": 0.5}}),
        ("fail_sqnr_zero_signal", np.ones(5, np.float32), np.zeros(5, np.float32),
         {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"sqnr_db": -100.0}}),
        ("fail_cosine_nan", nan_a, e, {"atol": 0.0, "rtol": 0.0, "elementwise": False, "metrics": {"cosine": 0.0}}),
        ("pass_int_elementwise", ints, ints.copy(), {"atol": 0.0, "rtol": 0.0}),
    ]


def tolerance_vectors(out: Path) -> list[dict[str, Any]]:
    (out / "tolerance").mkdir(parents=True, exist_ok=True)
    vectors = []
    for name, actual, expected, tol in tolerance_cases():
        (out / "tolerance" / f"{name}.actual.npy").write_bytes(npy(actual))
        (out / "tolerance" / f"{name}.expected.npy").write_bytes(npy(expected))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # np.mean of an empty top1 row set (the NaN is the point)
            v = compare("y", actual, expected, tol)
        assert v.passed == (not name.startswith("fail_")) or not name.startswith(("pass_", "fail_")), name
        vectors.append({
            "name": name, "actual": f"tolerance/{name}.actual.npy", "expected": f"tolerance/{name}.expected.npy",
            "tolerance": {"output": "y", **tol},
            "python": {"passed": v.passed, "max_abs": num(v.max_abs), "worst_index": list(v.worst_index),
                       "actual_at_worst": num(v.actual_at_worst), "expected_at_worst": num(v.expected_at_worst),
                       "metrics": {k: num(x) for k, x in sorted(v.metrics.items())}, "reasons": len(v.reasons)},
        })
    return vectors


# ------------------------------------------------------------------------------------------------ manifest rules

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _arr(name: str, file: str, arr: np.ndarray) -> dict[str, Any]:
    data = npy(arr)
    return {"name": name, "file": file, "sha256": _sha(data), "bytes": len(data), "dtype": str(arr.dtype),
            "shape": list(arr.shape)}


def mini_bundle(root: Path) -> dict[str, Any]:
    """A two-graph bundle with real files (the 'onnx' is placeholder bytes: the mono tests never import it)."""
    files: dict[str, bytes] = {}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4)).astype(np.float32)
    y = (x * 2).astype(np.float32)
    ids = np.array([[3, 1, 2]], np.int32)
    state0 = np.zeros((1, 2), np.float32)
    state1 = (state0 + 1).astype(np.float32)
    state2 = (state1 + 1).astype(np.float32)
    noise = rng.standard_normal((2, 3)).astype(np.float32)

    def arr(name: str, rel: str, a: np.ndarray) -> dict[str, Any]:
        files[rel] = npy(a)
        return _arr(name, rel, a)

    model_a, model_b = b"placeholder onnx A", b"placeholder onnx B"
    files["Models/enc.onnx"], files["Models/step.onnx"] = model_a, model_b
    g = "Golden~/demo"
    manifest = {
        "format_version": B.FORMAT_VERSION,
        "generator": {"name": GENERATOR_NAME, "version": __version__},
        "bundle": {"name": "vectors", "package": "com.example.vectors"},
        "source": {"kind": "preset", "preset": "tiny", "seed": 0, "model_id": "cd" * 32},
        "target": TARGETS[DEFAULT_TARGET].manifest(),
        "components": [{
            "name": "demo", "description": "vector bundle",
            "constants": {"sample_rate": 24000, "nested": {"a": [1, 2.5, "x", None, True]}},
            "data": [arr("noise", "Data/noise.npy.bytes", noise)],
            "graphs": [
                {"name": "enc", "file": "Models/enc.onnx", "sha256": _sha(model_a), "bytes": len(model_a), "opset": 15,
                 "precision": "fp32", "unity_quantization": "none", "timeout_ms": 60000,
                 "inputs": [{"name": "x", "dtype": "float32", "shape": [1, "t"]},
                            {"name": "ids", "dtype": "int32", "shape": [1, "n"]}],
                 "outputs": [{"name": "y", "dtype": "float32", "shape": [1, "t"]}],
                 "tolerances": [{"output": "y", "atol": 1e-5, "rtol": 1e-4, "metrics": {"cosine": 0.999}}],
                 "goldens": [{"name": "case0",
                              "inputs": [arr("x", f"{g}/enc/case0/in.x.npy", x), arr("ids", f"{g}/enc/case0/in.ids.npy", ids)],
                              "outputs": [arr("y", f"{g}/enc/case0/out.y.npy", y)]}],
                 "measured": [{"output": "y", "max_abs": 0.0, "cosine": 1.0}]},
                {"name": "step", "file": "Models/step.onnx", "sha256": _sha(model_b), "bytes": len(model_b), "opset": 15,
                 "precision": "fp32", "unity_quantization": "float16", "timeout_ms": 1000,
                 "inputs": [{"name": "state", "dtype": "float32", "shape": [1, 2]}],
                 "outputs": [{"name": "next", "dtype": "float32", "shape": [1, 2]}],
                 "tolerances": [{"output": "next", "atol": 0.0, "rtol": 0.0, "exact": True}],
                 "goldens": [
                     {"name": "s0", "inputs": [arr("state", f"{g}/step/s0/in.state.npy", state0)],
                      "outputs": [arr("next", f"{g}/step/s0/out.next.npy", state1)]},
                     {"name": "s1", "chain": {"after": "s0", "carry": {"state": "next"}},
                      "inputs": [arr("state", f"{g}/step/s1/in.state.npy", state1)],
                      "outputs": [arr("next", f"{g}/step/s1/out.next.npy", state2)]}]},
            ],
        }],
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def manifest_mutations(base: dict[str, Any]) -> dict[str, Any]:
    """name -> mutated manifest (or raw text for JSON syntax cases)."""
    def mut(fn):
        m = copy.deepcopy(base)
        fn(m)
        return m

    G = lambda m, i=0: m["components"][0]["graphs"][i]  # noqa: E731
    checkpoint = {"kind": "checkpoint", "name": "Fun-CosyVoice3-0.5B",
                  "files": [{"path": "llm.pt", "sha256": "ab" * 32, "bytes": 10}], "model_id": "ef" * 32}
    cases: dict[str, Any] = {
        "ok_base": base,
        "ok_checkpoint_source": mut(lambda m: m.update(source=checkpoint)),
        "ok_integral_float_timeout": mut(lambda m: G(m).update(timeout_ms=60000.0)),
        "ok_no_goldens": mut(lambda m: G(m).update(goldens=[])),
        "bad_json_trailing_comma": json.dumps(base)[:-1] + ",}",
        "bad_json_comment": "// c\n" + json.dumps(base),
        "bad_json_nan": json.dumps(base).replace('"atol": 1e-05', '"atol": NaN'),
        "bad_json_infinity": json.dumps(base).replace('"atol": 1e-05', '"atol": Infinity'),
        "bad_json_duplicate_key": '{"format_version": 1, ' + json.dumps(base)[1:],
        "bad_missing_format_version": mut(lambda m: m.pop("format_version")),
        "bad_format_version_older": mut(lambda m: m.update(format_version=B.FORMAT_VERSION - 1)),
        "ok_graph_roles": mut(lambda m: m["components"][0]["constants"].update(graphs={"encoder": "enc", "step": "step"})),
        "bad_graph_role_unknown": mut(lambda m: m["components"][0]["constants"].update(graphs={"encoder": "nope"})),
        "bad_extra_top_key": mut(lambda m: m.update(extra=1)),
        "bad_generator_name": mut(lambda m: m["generator"].update(name="other")),
        "bad_bundle_name_upper": mut(lambda m: m["bundle"].update(name="Tiny")),
        "bad_package_name": mut(lambda m: m["bundle"].update(package="nodots")),
        "bad_source_preset": mut(lambda m: m["source"].update(preset="huge")),
        "bad_source_kind": mut(lambda m: m["source"].update(kind="url")),
        "bad_source_no_model_id": mut(lambda m: m["source"].pop("model_id")),
        "bad_source_model_id": mut(lambda m: m["source"].update(model_id="tiny-1234")),
        "bad_checkpoint_file_path": mut(lambda m: m.update(source={**checkpoint, "files": [
            {"path": "../llm.pt", "sha256": "ab" * 32, "bytes": 10}]})),
        "bad_target_backend": mut(lambda m: m["target"].update(backend="GPUCompute")),
        "bad_components_empty": mut(lambda m: m.update(components=[])),
        "bad_component_extra_key": mut(lambda m: m["components"][0].update(weights=[])),
        "bad_constants_not_object": mut(lambda m: m["components"][0].update(constants=[])),
        "bad_path_dotdot": mut(lambda m: G(m).update(file="../escape.onnx")),
        "bad_path_inner_dotdot": mut(lambda m: G(m).update(file="Models/../../escape.onnx")),
        "bad_path_absolute": mut(lambda m: G(m).update(file="/etc/passwd")),
        "bad_path_backslash": mut(lambda m: G(m).update(file="Models\\enc.onnx")),
        "bad_path_drive": mut(lambda m: G(m).update(file="C:enc.onnx")),
        "bad_path_dot_segment": mut(lambda m: G(m).update(file="Models/./enc.onnx")),
        "bad_path_empty_segment": mut(lambda m: G(m).update(file="Models//enc.onnx")),
        "bad_golden_path_dotdot": mut(lambda m: G(m)["goldens"][0]["inputs"][0].update(file="../../x.npy")),
        "bad_data_path_absolute": mut(lambda m: m["components"][0]["data"][0].update(file="/tmp/noise.npy")),
        "bad_sha_upper": mut(lambda m: G(m).update(sha256=G(m)["sha256"].upper())),
        "bad_sha_short": mut(lambda m: G(m).update(sha256="abc")),
        "bad_opset_21": mut(lambda m: G(m).update(opset=21)),
        "bad_bytes_zero": mut(lambda m: G(m).update(bytes=0)),
        "bad_bytes_bool": mut(lambda m: G(m).update(bytes=True)),
        "bad_timeout_999": mut(lambda m: G(m).update(timeout_ms=999)),
        "bad_timeout_fraction": mut(lambda m: G(m).update(timeout_ms=1500.5)),
        "bad_precision": mut(lambda m: G(m).update(precision="bf16")),
        "bad_quantization": mut(lambda m: G(m).update(unity_quantization="int4")),
        "bad_missing_timeout": mut(lambda m: G(m).pop("timeout_ms")),
        "bad_inputs_empty": mut(lambda m: G(m).update(inputs=[])),
        "bad_tensor_dtype": mut(lambda m: G(m)["inputs"][0].update(dtype="float64")),
        "bad_tensor_rank9": mut(lambda m: G(m)["inputs"][0].update(shape=[1] * 9)),
        "bad_tensor_negative_dim": mut(lambda m: G(m)["inputs"][0].update(shape=[1, -1])),
        "bad_tensor_symbol_case": mut(lambda m: G(m)["inputs"][0].update(shape=[1, "T"])),
        "bad_tolerance_negative_atol": mut(lambda m: G(m)["tolerances"][0].update(atol=-1e-5)),
        "bad_tolerance_missing_rtol": mut(lambda m: G(m)["tolerances"][0].pop("rtol")),
        "bad_metric_unknown": mut(lambda m: G(m)["tolerances"][0].update(metrics={"l2": 0.1})),
        "bad_metric_top1_above_1": mut(lambda m: G(m)["tolerances"][0].update(metrics={"top1": 1.5})),
        "bad_exact_not_bool": mut(lambda m: G(m)["tolerances"][0].update(exact="yes")),
        "bad_golden_name": mut(lambda m: G(m)["goldens"][0].update(name="case-0")),
        "bad_golden_array_dtype": mut(lambda m: G(m)["goldens"][0]["inputs"][0].update(dtype="float16")),
        "bad_chain_missing_carry": mut(lambda m: G(m, 1)["goldens"][1]["chain"].pop("carry")),
        "bad_measured_extra": mut(lambda m: G(m)["measured"][0].update(l2=0.0)),
        # schema-valid, rejected by the cross-reference rules on both sides:
        "bad_sem_duplicate_graph": mut(lambda m: m["components"][0]["graphs"].append(copy.deepcopy(G(m)))),
        "bad_sem_tolerance_unknown_output": mut(lambda m: G(m)["tolerances"][0].update(output="z")),
        "bad_sem_golden_unknown_input": mut(lambda m: G(m)["goldens"][0]["inputs"][0].update(name="q")),
        "bad_sem_golden_dtype_vs_graph": mut(lambda m: G(m)["goldens"][0]["inputs"][1].update(dtype="float32")),
        "bad_sem_golden_fixed_dim": mut(lambda m: G(m)["goldens"][0]["inputs"][0].update(shape=[2, 4])),
        "bad_sem_chain_after_unknown": mut(lambda m: G(m, 1)["goldens"][1]["chain"].update(after="nope")),
        "bad_sem_chain_after_later": mut(lambda m: G(m, 1)["goldens"][0].update(
            chain={"after": "s1", "carry": {}})),
        "bad_sem_carry_unknown_input": mut(lambda m: G(m, 1)["goldens"][1]["chain"].update(carry={"h": "next"})),
        "bad_sem_output_without_tolerance": mut(lambda m: G(m).update(tolerances=[])),
        "bad_sem_duplicate_graph_across_components": mut(lambda m: m["components"].append(
            {**copy.deepcopy(m["components"][0]), "name": "demo_copy", "data": []})),
        "bad_sem_duplicate_component": mut(lambda m: m["components"].append(copy.deepcopy(m["components"][0]))),
        "bad_sem_duplicate_data": mut(lambda m: m["components"][0]["data"].append(
            copy.deepcopy(m["components"][0]["data"][0]))),
        "bad_sem_golden_missing_input": mut(lambda m: G(m)["goldens"][0]["inputs"].pop(1)),
        "bad_sem_golden_duplicate_output": mut(lambda m: G(m)["goldens"][0]["outputs"].append(
            copy.deepcopy(G(m)["goldens"][0]["outputs"][0]))),
        "bad_sem_golden_output_unknown": mut(lambda m: G(m)["goldens"][0]["outputs"][0].update(name="z")),
        "bad_sem_golden_rank_vs_graph": mut(lambda m: G(m)["goldens"][0]["inputs"][0].update(shape=[4])),
        "bad_sem_carry_unknown_output": mut(lambda m: G(m, 1)["goldens"][1]["chain"].update(carry={"state": "y"})),
    }
    return cases


def manifest_vectors(out: Path) -> list[dict[str, Any]]:
    bundle = out / "bundle"
    bundle.mkdir(parents=True, exist_ok=True)
    base = mini_bundle(bundle)
    (out / "manifests").mkdir(parents=True, exist_ok=True)
    vectors = []
    for name, m in manifest_mutations(base).items():
        text = m if isinstance(m, str) else json.dumps(m, indent=1)
        (out / "manifests" / f"{name}.json").write_text(text)
        try:
            errors = B.manifest_problems(B.parse_json(text, name))
        except PackagerError as exc:  # strict JSON: syntax, NaN/Infinity, duplicate keys
            errors = [str(exc)]
        ok = not errors
        assert ok == name.startswith("ok_"), (name, errors)
        if name.startswith("bad_sem_"):  # schema-valid: only the cross-reference rules reject it
            assert not B.schema_problems(json.loads(text)) and B.cross_reference_problems(json.loads(text)), name
        vectors.append({"name": name, "file": f"manifests/{name}.json", "python": {"ok": ok}})
    return vectors


# ------------------------------------------------------------------------------------------------- paths, sha256

PATHS = ["Models/a.onnx", "Golden~/llm/decode/step_0/in.x.npy", "Data/noise.npy.bytes", "a", "a.b-c+d~e_f/g",
         "..a/b", "a../b", ".hidden",
         "", "/abs", "\\abs", "C:x", "c:/x", "a/../b", "../a", "a/..", "./a", "a/.", "a//b", "a/", "a\\b",
         "a b", "a\nb", "a/b\n", "Models/é.onnx", "a:b", "a/*"]


def path_vectors() -> list[dict[str, Any]]:
    return [{"path": p, "python": {"ok": re.fullmatch(RELPATH, p) is not None}} for p in PATHS]


def sha_vectors(out: Path) -> list[dict[str, Any]]:
    (out / "sha").mkdir(parents=True, exist_ok=True)
    data = bytes(range(256)) * 9
    (out / "sha" / "blob.bin").write_bytes(data)
    (out / "sha" / "empty.bin").write_bytes(b"")
    good = _sha(data)
    cases = [
        ("ok", "sha/blob.bin", good, len(data)),
        ("ok_empty", "sha/empty.bin", _sha(b""), 0),
        ("bad_hash", "sha/blob.bin", good[:-1] + ("0" if good[-1] != "0" else "1"), len(data)),
        ("bad_size", "sha/blob.bin", good, len(data) + 1),
        ("bad_missing", "sha/none.bin", good, len(data)),
    ]
    vectors = []
    for name, rel, sha, size in cases:
        try:
            B.check_file(out, {"file": rel, "sha256": sha, "bytes": size}, name)
            ok = True
        except PackagerError:
            ok = False
        assert ok == name.startswith("ok"), name
        vectors.append({"name": name, "file": rel, "sha256": sha, "bytes": size, "python": {"ok": ok}})
    return vectors


def half_vectors(out: Path) -> dict[str, str]:
    """Every float16 bit pattern, and numpy's float32 conversion of it (the C# side must match bit for bit)."""
    halves = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    (out / "npy" / "half_all.f16.npy").write_bytes(npy(halves))
    (out / "npy" / "half_all.f32.npy").write_bytes(npy(halves.astype(np.float32)))
    return {"f16": "npy/half_all.f16.npy", "f32": "npy/half_all.f32.npy"}


def write_vectors(out: Path) -> dict[str, Any]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index = {"npy": npy_vectors(out), "half": half_vectors(out), "tolerance": tolerance_vectors(out),
             "manifest": manifest_vectors(out), "paths": path_vectors(), "sha": sha_vectors(out), "bundle": "bundle"}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return index
