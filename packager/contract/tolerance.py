"""Compare an output with its golden. The C# side (``Tolerance.cs``) implements the same verdicts.

Semantics (shared with C#, tested on the same vectors):
- shape and dtype must match exactly; ``exact`` (int outputs) means every element equal;
- element-wise (unless ``elementwise`` is false): pass iff ``|a - e| <= atol + rtol * |e|`` for every element,
  computed in float64; a NaN or infinity in the actual output where the golden is finite fails;
- metrics, computed in float64 over the flattened arrays unless said otherwise:
  ``max_abs`` (upper bound) = max |a - e|;
  ``cosine`` (lower bound) = a.e / (|a| |e|), 1 when both are all-zero, 0 when only one is;
  ``sqnr_db`` (lower bound) = 10 log10(sum e^2 / sum (a-e)^2), +inf when a == e;
  ``top1`` (lower bound) = fraction of rows (last axis = classes) whose first argmax agrees;
  ``kl`` (upper bound) = mean over rows of KL(softmax(e) || softmax(a)) along the last axis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

LOWER_BOUND = ("cosine", "sqnr_db", "top1")
UPPER_BOUND = ("max_abs", "kl")
METRICS = LOWER_BOUND + UPPER_BOUND


@dataclass(frozen=True)
class Tolerance:
    """How an output is compared with its golden.

    Element-wise: pass iff ``|actual - expected| <= atol + rtol * |expected|`` everywhere (``exact`` for ints).
    ``metrics`` adds aggregate checks, each a lower bound (``cosine``, ``sqnr_db``, ``top1``) or an upper bound
    (``max_abs``, ``kl``): see ``packager.contract.tolerance.METRICS``. ``elementwise=False`` skips the element-wise test
    (used where element-wise checks are the wrong measure, e.g. audio), leaving only the metrics.
    """

    atol: float = 1e-4
    rtol: float = 1e-4
    metrics: Mapping[str, float] = field(default_factory=dict)
    exact: bool = False
    elementwise: bool = True

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"atol": self.atol, "rtol": self.rtol}
        if self.exact:
            d["exact"] = True
        if not self.elementwise:
            d["elementwise"] = False
        if self.metrics:
            d["metrics"] = dict(sorted(self.metrics.items()))
        return d


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=-1, keepdims=True)


def metric(name: str, actual: np.ndarray, expected: np.ndarray) -> float:
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if name == "max_abs":
        return float(np.max(np.abs(a - e))) if a.size else 0.0
    if name == "cosine":
        na, ne = float(np.linalg.norm(a)), float(np.linalg.norm(e))
        if na == 0.0 and ne == 0.0:
            return 1.0
        if na == 0.0 or ne == 0.0:
            return 0.0
        return float(np.dot(a.ravel(), e.ravel()) / (na * ne))
    if name == "sqnr_db":
        with np.errstate(invalid="ignore", over="ignore"):
            noise = float(np.sum((a - e) ** 2))
        signal = float(np.sum(e ** 2))
        if not math.isfinite(noise):  # NaN or inf in the output: no signal survives
            return -math.inf
        if noise == 0.0:
            return math.inf
        if signal == 0.0:
            return -math.inf
        return 10.0 * math.log10(signal / noise)
    if name == "top1":
        if a.ndim == 0 or a.shape[-1] == 0:
            return 1.0
        ra, re_ = a.reshape(-1, a.shape[-1]), e.reshape(-1, e.shape[-1])
        return float(np.mean(np.argmax(ra, axis=-1) == np.argmax(re_, axis=-1)))
    if name == "kl":
        ra, re_ = a.reshape(-1, a.shape[-1]), e.reshape(-1, e.shape[-1])
        pe, pa = _softmax(re_), _softmax(ra)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(pe > 0, pe * (np.log(pe) - np.log(np.maximum(pa, 1e-300))), 0.0)
        return float(np.mean(np.sum(terms, axis=-1)))
    raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")


@dataclass
class Verdict:
    output: str
    passed: bool
    max_abs: float = 0.0
    worst_index: tuple[int, ...] = ()
    actual_at_worst: float = 0.0
    expected_at_worst: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"max_abs={self.max_abs:.3g}"]
        if self.worst_index:
            parts.append(f"worst at {list(self.worst_index)}: got {self.actual_at_worst:.6g}, "
                         f"expected {self.expected_at_worst:.6g}")
        parts += [f"{k}={v:.6g}" for k, v in sorted(self.metrics.items())]
        text = ", ".join(parts)
        return text if self.passed else text + " | " + "; ".join(self.reasons)


def compare(output: str, actual: np.ndarray, expected: np.ndarray, tol: Mapping[str, Any]) -> Verdict:
    """Apply one tolerance spec (the manifest's JSON form: atol, rtol, exact?, elementwise?, metrics?)."""
    v = Verdict(output=output, passed=True)
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        v.passed = False
        v.reasons.append(f"shape {list(actual.shape)} != expected {list(expected.shape)}")
        return v
    if actual.dtype != expected.dtype:
        v.passed = False
        v.reasons.append(f"dtype {actual.dtype} != expected {expected.dtype}")
        return v
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    if a.size:
        diff = np.abs(a - e)
        diff = np.where(np.isnan(diff), np.inf, diff)
        flat = int(np.argmax(diff))
        v.max_abs = float(diff.ravel()[flat])
        v.worst_index = tuple(int(i) for i in np.unravel_index(flat, a.shape))
        v.actual_at_worst, v.expected_at_worst = float(a.ravel()[flat]), float(e.ravel()[flat])
    if tol.get("exact"):
        if not np.array_equal(a, e):
            v.passed = False
            v.reasons.append(f"{int(np.sum(a != e))} of {a.size} elements differ (exact match required)")
        return v
    if tol.get("elementwise", True) and a.size:
        bound = float(tol["atol"]) + float(tol["rtol"]) * np.abs(e)
        bad = ~(diff <= bound)
        if bad.any():
            v.passed = False
            v.reasons.append(f"{int(bad.sum())} of {a.size} elements exceed atol={tol['atol']} rtol={tol['rtol']}")
    for name, limit in sorted((tol.get("metrics") or {}).items()):
        value = metric(name, a, e)
        v.metrics[name] = value
        ok = value >= limit if name in LOWER_BOUND else value <= limit
        if not ok:
            v.passed = False
            rel = ">=" if name in LOWER_BOUND else "<="
            v.reasons.append(f"{name}={value:.6g} violates {rel} {limit}")
    return v
