"""The fp16 rounding of the fp16 conversion (``build/stages/convert.py``): onnxruntime's converter's own rounding, computed
faster. Its own module because two stages use it: the conversion itself (small tensors, in the proto) and the writing
of a graph file (``onnx.external.write_inline``), which rounds each large weight from the fp32 scratch file as it goes
(docs/bundle.md "Build pipeline")."""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx

from packager.contract.errors import PackagerError

MIN_POSITIVE_VAL = 5.96e-08  # the converter's defaults (onnxruntime.transformers.float16.convert_float_to_float16)
MAX_FINITE_VAL = 65504.0

CONVERT_CHUNK = 1 << 22  # values rounded per numpy pass in converter_float16 (bounds its temporaries to ~30 MB)
CONVERT_MIN_SPLIT = 1 << 18  # values per chunk below which an array is rounded on one thread
_POOLS: dict[int, Any] = {}


def _pool(workers: int):
    """A thread pool kept for the process (the converter calls converter_float16 once per tensor)."""
    if workers not in _POOLS:
        from concurrent.futures import ThreadPoolExecutor

        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="fp16-rounding")
    return _POOLS[workers]


def converter_float16(a: np.ndarray, min_positive_val: float = MIN_POSITIVE_VAL,
                      max_finite_val: float = MAX_FINITE_VAL) -> np.ndarray:
    """``onnxruntime.transformers.float16.convert_np_to_float16``, the same values (tested bit for bit), in one
    rounding pass and one cheap pass over the result: magnitudes in (0, min_positive_val) become +-min_positive_val,
    finite ones above max_finite_val +-max_finite_val (in ``a``'s own dtype, as its np.where does), then rounding to
    half. Only values that round to 0, to the smallest subnormal or to inf/NaN can need either fix, so only those
    (found on the half-precision bits) are looked at again. Large arrays are done in chunks on the CPU's cores (each
    chunk independently: the same bytes for any thread count). Its ~8 s of numpy on a full-size DiT's weights were
    most of an fp16 conversion."""
    a = np.asarray(a)
    out = np.empty(a.shape, np.float16)
    src, dst = a.reshape(-1), out.reshape(-1)
    big, small = a.dtype.type(max_finite_val), a.dtype.type(min_positive_val)

    workers = min(os.cpu_count() or 1, 4) if src.size >= 2 * CONVERT_MIN_SPLIT else 1
    chunk = min(CONVERT_CHUNK, -(-src.size // workers)) or 1  # at least one chunk per worker

    def one(i: int) -> None:
        part, half = src[i:i + chunk], dst[i:i + chunk]
        with np.errstate(over="ignore"):  # what overflows to inf here is set to +-max_finite_val below
            np.copyto(half, part, casting="unsafe")  # round to nearest even, as np.float16(a)
        w = np.bitwise_and(half.view(np.uint16), 0x7FFF)  # |half| as bits: 0, 1 (smallest subnormal), >= 0x7C00
        np.subtract(w, 2, out=w)  # (wraps) 0 and 1 -> 0xFFFE and 0xFFFF; 0x7C00 and above -> 0x7BFE and above
        suspect = w >= 0x7BFE
        if not suspect.any():
            return
        idx = np.flatnonzero(suspect)
        x = part[idx]
        mag = np.abs(x)
        tiny = (mag > 0) & (mag < min_positive_val)
        huge = (mag > max_finite_val) & (mag < np.inf)
        fix = tiny | huge
        if fix.any():
            v = np.where(huge, big, small)
            v = np.where(x < 0, -v, v)
            half[idx[fix]] = v[fix].astype(np.float16)

    starts = range(0, src.size, chunk)
    if workers > 1 and len(starts) > 1:  # numpy releases the GIL in these loops
        list(_pool(workers).map(one, starts))
    else:
        for i in starts:
            one(i)
    return out


# --- fp16 weights rounded as the graph is written ---------------------------------------------------------------------
# The fp16 conversion of a full-size graph works on its structure (weights as external-data stubs into the fp32
# scratch file): each large weight is marked to be rounded, and ``write_inline`` rounds it from the fp32 data while it
# writes the file. No proto ever holds the weights (for a full-size LLM step graph, holding them would mean 2 GB and
# several seconds of copies). The bytes are those of rounding in memory (tested).
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
