"""``python -m packager verify BUNDLE``: schema, file integrity, path safety, chained goldens consistent (each
carried input is, bit for bit, the golden output it is carried from), and every golden reproduced.

Never trusts a path from the manifest: each must be relative, free of ``..``, not a symlink (nor under one), and
resolve inside the bundle. Every check is reported before the exit code is decided. The rules themselves (schema,
cross-references, paths, file checks, .npy rules) are ``packager.contract.manifest``'s.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packager.contract import manifest as B
from packager.build.component import GoldenCase
from packager.contract.errors import PackagerError
from packager.build.stages.check import run_cases
from packager.build.stages.golden import carry_mismatches
from packager.sentis.numerics import target_model
from packager.runtime.pipeline import verify_pipeline
from packager.ui.table import table


@dataclass
class Row:
    check: str
    subject: str
    ok: bool
    detail: str = ""


def verify(bundle: Path) -> list[Row]:
    rows: list[Row] = []
    manifest = B.load_manifest(bundle)
    try:
        B.validate_manifest(manifest, str(bundle / B.MANIFEST_FILE))
        rows.append(Row("schema", B.MANIFEST_FILE, True))
    except PackagerError as exc:
        rows.append(Row("schema", B.MANIFEST_FILE, False, str(exc)))
        return rows  # the rest relies on the structure
    for problem in B.cross_reference_problems(manifest):
        rows.append(Row("manifest", B.MANIFEST_FILE, False, problem))
    if any(not r.ok for r in rows):
        return rows
    files_ok = True
    for field, entry in B.listed_files(manifest):
        try:
            path = B.check_file(bundle, entry, field)
            rows.append(Row("file", entry["file"], True, f"{path.stat().st_size} bytes"))
        except PackagerError as exc:
            files_ok = False
            rows.append(Row("file", entry.get("file", field), False, str(exc)))
    if not files_ok:
        return rows  # never run a graph or trust a golden that failed its checksum
    for c in manifest["components"]:
        for g in c["graphs"]:
            subject = f"{c['name']}/{g['name']}"
            try:
                cases = golden_cases(bundle, g)
            except PackagerError as exc:
                rows.append(Row("golden", subject, False, str(exc)))
                continue
            rows += verify_chains(bundle, cases, subject)
            try:
                rows += _verify_goldens(bundle, g, cases, subject)
            except PackagerError as exc:
                rows.append(Row("golden", subject, False, str(exc)))
    if manifest.get("pipeline"):
        try:
            rows += [Row("pipeline", s, ok, d) for s, ok, d in verify_pipeline(bundle, manifest)]
        except PackagerError as exc:
            rows.append(Row("pipeline", "pipeline", False, str(exc)))
    return rows


def golden_cases(bundle: Path, g: dict[str, Any]) -> list[GoldenCase]:
    """A graph's golden cases as stored (arrays and chains); their files' sizes and sha256 were checked before."""
    def arrays(tensors: list[dict[str, Any]]) -> dict[str, Any]:  # files checked above: no second sha256 pass
        return {t["name"]: B.load_array(bundle, t, t["file"], check_digest=False) for t in tensors}

    return [GoldenCase(case["name"], arrays(case["inputs"]), arrays(case["outputs"]), case.get("chain"))
            for case in g["goldens"]]


def verify_chains(bundle: Path, cases: list[GoldenCase], subject: str) -> list[Row]:
    """One row per carried tensor of a chained case (``subject``: component/graph): its stored input must be the
    stored output of the ``after`` case exactly (dtype, shape, bytes), or a host that carries outputs from the
    chain's root cannot reach the step's golden."""
    return [Row("chain", f"{subject}/{m.case}/{m.input}", m.ok,
                f"= {m.after}/{m.output}, bit-identical" if m.ok else
                f"bundle {bundle}: {subject}/{m.case}: stored input {m.input!r} is not the output {m.output!r} of "
                f"case {m.after!r} it is carried from: {m.problem}")
            for m in carry_mismatches(cases)]


def _verify_goldens(bundle: Path, g: dict[str, Any], cases: list[GoldenCase], subject: str) -> list[Row]:
    tolerances = {t["output"]: t for t in g["tolerances"]}
    outputs = [o["name"] for o in g["outputs"]]
    model = target_model(B.safe_path(bundle, g["file"], "file"), g)  # the goldens describe what Sentis computes
    results = run_cases(model, outputs, tolerances, cases)
    return [Row("golden", f"{subject}/{r.case}/{v.output}", v.passed, v.summary()) for r in results for v in r.verdicts]


def run(args: argparse.Namespace) -> int:
    """``packager verify`` (options: packager/cli.py): 0 only if every check passed."""
    rows = verify(args.bundle)
    print(table(["check", "subject", "result", "detail"],
                 [(r.check, r.subject, "ok" if r.ok else "FAIL", r.detail if not r.ok or r.check == "golden" else "")
                  for r in rows]))
    failed = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
