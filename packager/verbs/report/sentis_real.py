"""The report's optional real-Sentis column: each policy's goldens run by Unity-compiled Sentis itself.

Uses the project's harness (``tests/sentis_real/matrix.py``: ``unavailable()``, ``build_runner()``, ``run_cases()``)
where it can run: a source checkout that has it, Mono, and ``MIRROR`` pointing at local git copies of the
repositories the Sentis DLLs come from (tests/sentis_real/README.md). Anywhere else the column is skipped and the
report says why. Never fatal: a harness failure becomes a note on that policy.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

MATRIX = Path(__file__).resolve().parents[3] / "tests" / "sentis_real" / "matrix.py"


def _load_matrix():
    name = "_packager_report_sentis_matrix"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, MATRIX)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except BaseException:
        del sys.modules[name]
        raise
    return module


class Harness:
    def __init__(self, target: str, version: str | None, note: str, matrix=None, runner: Path | None = None,
                 work: Path | None = None) -> None:
        self.target, self.version, self.note = target, version, note
        self.matrix, self.runner, self.work = matrix, runner, work

    @property
    def available(self) -> bool:
        return self.runner is not None

    @classmethod
    def find(cls, target: str, work: Path, log: Callable[[str], None]) -> "Harness":
        if not MATRIX.is_file():
            return cls(target, None, "skipped: the real-Sentis harness (tests/sentis_real) is not part of this "
                                     "installation (it is in the source checkout)")
        try:
            matrix = _load_matrix()
        except Exception as exc:  # noqa: BLE001 - an optional column: say why, never fail the report
            return cls(target, None, f"skipped: the real-Sentis harness does not load ({type(exc).__name__}: {exc})")
        version = next((v for v, (t, _) in matrix.VERSIONS.items() if t == target), None)
        if version is None:
            return cls(target, None, f"skipped: the real-Sentis harness has no Sentis version for target {target}")
        why = matrix.unavailable(version)
        if why is not None:
            return cls(target, version, f"skipped: {why}")
        log(f"[report] real Sentis {version}: building the harness runner")
        try:
            runner = matrix.build_runner(version, work / ".sentis_runner")
        except Exception as exc:  # noqa: BLE001
            return cls(target, version, f"skipped: the harness runner did not build ({str(exc).splitlines()[0]})")
        return cls(target, version, f"each policy's goldens run by Unity-compiled Sentis {version} (CPU, the .onnx "
                                    "import path) under Mono", matrix, runner, work)

    def measure(self, policy: str, bundle: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Cases passed and worst max abs error over every graph's goldens, or why it did not run."""
        if not self.available:
            return {"ran": False, "note": self.note}
        if any(g.get("precision") == "int8" for c in manifest["components"] for g in c["graphs"]):
            return {"ran": False, "note": "not importable by Sentis (onnxruntime integer ops)"}
        try:
            result = self.matrix.run_cases(self.runner, bundle, self.work / f"{policy}.sentis.json")
            rows = self.matrix.rows(result)
        except Exception as exc:  # noqa: BLE001
            return {"ran": False, "note": f"the harness failed: {str(exc).splitlines()[0][:300]}"}
        worst = [r.worst for r in rows if r.worst is not None]
        return {"ran": True, "graphs": len(rows), "graphs_imported": sum(r.imported for r in rows),
                "cases": sum(r.cases for r in rows), "cases_passed": sum(r.passed for r in rows),
                "worst_max_abs": float(f"{max(worst):.4g}") if worst else None,
                "problems": sum(len(r.problems) for r in rows)}

    def summary(self) -> dict[str, Any]:
        return {"available": self.available, "version": self.version, "note": self.note}
