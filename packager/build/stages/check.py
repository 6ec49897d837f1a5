"""Check stage: run each exported graph on onnxruntime against its reference goldens, within tolerance.

Every output of every case is measured and reported before the stage fails once (naming graph, case and output).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnx

from packager.contract.manifest import DTYPES
from packager.build.component import GoldenCase, TensorSpec
from packager.contract.errors import InputError, VerificationError
from packager.onnx.external import OnDisk
from packager.onnx.session import run_onnx, session
from packager.contract.tolerance import METRICS, Verdict, compare

def validate_inputs(graph: str, specs: Sequence[TensorSpec] | Sequence[Mapping[str, Any]],
                    inputs: Mapping[str, np.ndarray], where: str = "") -> None:
    """Names, dtypes and ranks/fixed dims of ``inputs`` against the graph's input specs (clear errors)."""
    specs = [s.to_json() if isinstance(s, TensorSpec) else s for s in specs]
    want = [s["name"] for s in specs]
    missing = [n for n in want if n not in inputs]
    extra = [n for n in inputs if n not in want]
    if missing or extra:
        raise InputError("input names do not match the graph", file=where or None, key=graph,
                         expected=", ".join(want), found=", ".join(inputs) or "nothing")
    for s in specs:
        arr = inputs[s["name"]]
        if arr.dtype != np.dtype(DTYPES[s["dtype"]]):
            raise InputError("wrong dtype", file=where or None, key=f"{graph}.{s['name']}",
                             expected=s["dtype"], found=str(arr.dtype))
        shape = s["shape"]
        ok = arr.ndim == len(shape) and all(isinstance(d, str) or d == n for d, n in zip(shape, arr.shape))
        if not ok:
            raise InputError("wrong shape", file=where or None, key=f"{graph}.{s['name']}",
                             expected=str(shape), found=str(list(arr.shape)))


@dataclass
class CaseResult:
    case: str
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)


def run_cases(model: Path | onnx.ModelProto | OnDisk, outputs: Sequence[str], tolerances: Mapping[str, Mapping[str, Any]],
              cases: Sequence[GoldenCase], on_case: Callable[[], None] | None = None) -> list[CaseResult]:
    """Run every case on a saved graph or an in-memory one (a Sentis view); compare each output to the reference
    with the output's tolerance (manifest JSON form). ``on_case`` is called after each case (progress)."""
    sess = session(str(model) if isinstance(model, (str, Path)) else model, prepack=False)
    results = []
    for case in cases:
        got = run_onnx(sess, case.inputs)
        if on_case is not None:
            on_case()
        res = CaseResult(case.name)
        for name in outputs:
            if name in case.outputs:
                res.verdicts.append(compare(name, got[name], case.outputs[name], tolerances[name]))
        results.append(res)
    return results


def measured(results: Sequence[CaseResult]) -> list[dict[str, Any]]:
    """Worst value per output over all cases (max of max_abs, min of lower-bound metrics, max of upper-bound)."""
    acc: dict[str, dict[str, float]] = {}
    for r in results:
        for v in r.verdicts:
            d = acc.setdefault(v.output, {"output": v.output, "max_abs": 0.0})
            d["max_abs"] = max(d["max_abs"], v.max_abs)
            for k, val in v.metrics.items():
                if k in ("cosine", "sqnr_db", "top1"):
                    d[k] = min(d.get(k, val), val)
                elif k in METRICS:
                    d[k] = max(d.get(k, val), val)
    out = []
    for d in acc.values():  # JSON has no infinity: a perfect SQNR is reported as 999 dB
        out.append({k: (999.0 if isinstance(v, float) and v == float("inf") else v) for k, v in d.items()})
    return out


def require_pass(graph: str, results: Sequence[CaseResult]) -> None:
    failures = [f"{graph}/{r.case}/{v.output}: {v.summary()}" for r in results for v in r.verdicts if not v.passed]
    if failures:
        raise VerificationError("onnxruntime does not reproduce the reference within tolerance:\n  "
                                + "\n  ".join(failures), key=graph)
