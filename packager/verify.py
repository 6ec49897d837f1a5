"""``python -m packager verify BUNDLE``: schema, file integrity, path safety, and every golden reproduced.

Never trusts a path from the manifest: each must be relative, free of ``..``, not a symlink (nor under one), and
resolve inside the bundle. Every check is reported before the exit code is decided.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import numpy as np

from packager.checkpoint import sha256_file
from packager.errors import PackagerError
from packager.stages.check import CaseResult, run_cases
from packager.stages.convert import target_model
from packager.component import GoldenCase
from packager.stages.package import validate_manifest


@dataclass
class Row:
    check: str
    subject: str
    ok: bool
    detail: str = ""


def safe_path(root: Path, rel: str, field: str) -> Path:
    """Resolve a manifest path inside ``root`` or raise naming the field."""
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or "\\" in rel or (len(rel) > 1 and rel[1] == ":"):
        raise PackagerError("path must be relative", key=field, found=rel)
    if any(ord(ch) < 32 or ch == "\x7f" for ch in rel):
        raise PackagerError("path contains control characters", key=field, found=repr(rel))
    if any(part in ("..", ".") for part in p.parts):
        raise PackagerError("path must not contain '..' or '.' segments", key=field, found=rel)
    cur = root
    for part in p.parts:
        cur = cur / part
        if cur.is_symlink():
            raise PackagerError("path is (or passes through) a symlink", key=field, found=rel)
    resolved = cur.resolve()
    if root.resolve() not in resolved.parents:
        raise PackagerError("path leaves the bundle", key=field, found=rel)
    return cur


def load_manifest(bundle: Path) -> dict[str, Any]:
    path = bundle / "manifest.json"
    if not bundle.is_dir():
        raise PackagerError("not a folder", file=str(bundle), expected="a bundle folder with manifest.json")
    if not path.is_file():
        raise PackagerError("missing", file=str(path), expected="a bundle folder with manifest.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PackagerError(f"not valid JSON: {exc}", file=str(path)) from None


def listed_files(manifest: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path, entry with file/sha256/bytes) for every file the manifest lists."""
    for ci, c in enumerate(manifest.get("components", [])):
        for gi, g in enumerate(c.get("graphs", [])):
            base = f"components[{ci}].graphs[{gi}]"
            yield base, g
            if "external_data" in g:
                yield base + ".external_data", g["external_data"]
            for ki, case in enumerate(g.get("goldens", [])):
                for side in ("inputs", "outputs"):
                    for ti, t in enumerate(case.get(side, [])):
                        yield f"{base}.goldens[{ki}].{side}[{ti}]", t
        for di, d in enumerate(c.get("data", [])):
            yield f"components[{ci}].data[{di}]", d
    for pi, case in enumerate(manifest.get("pipeline", {}).get("goldens", [])):
        for side in ("inputs", "outputs"):
            for ti, t in enumerate(case.get(side, [])):
                yield f"pipeline.goldens[{pi}].{side}[{ti}]", t


def load_array(root: Path, entry: dict[str, Any], field: str) -> np.ndarray:
    path = safe_path(root, entry["file"], field)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise PackagerError(f"not a readable .npy file: {exc}", file=str(path)) from None
    if str(arr.dtype) != entry["dtype"] or list(arr.shape) != list(entry["shape"]):
        raise PackagerError("array does not match its manifest entry", file=str(path),
                            expected=f"{entry['dtype']} {entry['shape']}", found=f"{arr.dtype} {list(arr.shape)}")
    return arr


def _duplicates(names: list[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


def cross_reference_problems(manifest: dict[str, Any]) -> list[str]:
    """Rules the schema cannot express (the C# reader enforces the same): unique names, a tolerance for every
    golden output, chains that point to an earlier case of the same graph and carry known tensors."""
    problems = []
    comps = manifest["components"]
    for d in _duplicates([c["name"] for c in comps]):
        problems.append(f"duplicate component name {d!r}")
    for d in _duplicates([g["name"] for c in comps for g in c["graphs"]]):
        problems.append(f"duplicate graph name {d!r}")
    for c in comps:
        for d in _duplicates([x["name"] for x in c["data"]]):
            problems.append(f"{c['name']}: duplicate data name {d!r}")
        for g in c["graphs"]:
            where = f"{c['name']}/{g['name']}"
            ins, outs = [t["name"] for t in g["inputs"]], [t["name"] for t in g["outputs"]]
            tols = [t["output"] for t in g["tolerances"]]
            for label, names in (("input", ins), ("output", outs), ("tolerance", tols),
                                 ("golden", [k["name"] for k in g["goldens"]])):
                for d in _duplicates(names):
                    problems.append(f"{where}: duplicate {label} name {d!r}")
            problems += [f"{where}: tolerance for unknown output {t!r}" for t in tols if t not in outs]
            seen: list[str] = []
            for k in g["goldens"]:
                case = f"{where}/{k['name']}"
                got_in = [t["name"] for t in k["inputs"]]
                if sorted(got_in) != sorted(ins):
                    problems.append(f"{case}: golden inputs {got_in} differ from the graph inputs {ins}")
                for t in k["outputs"]:
                    if t["name"] not in outs:
                        problems.append(f"{case}: golden output {t['name']!r} is not a graph output")
                    elif t["name"] not in tols:
                        problems.append(f"{case}: golden output {t['name']!r} has no tolerance")
                chain = k.get("chain")
                if chain:
                    if chain["after"] not in seen:
                        problems.append(f"{case}: chain.after {chain['after']!r} is not an earlier case")
                    for dst, src in chain["carry"].items():
                        if dst not in ins or src not in outs:
                            problems.append(f"{case}: chain carries {src!r} -> {dst!r}, not an output -> input")
                seen.append(k["name"])
    return problems


def verify(bundle: Path) -> list[Row]:
    rows: list[Row] = []
    manifest = load_manifest(bundle)
    try:
        validate_manifest(manifest, str(bundle / "manifest.json"))
        rows.append(Row("schema", "manifest.json", True))
    except PackagerError as exc:
        rows.append(Row("schema", "manifest.json", False, str(exc)))
        return rows  # the rest relies on the structure
    for problem in cross_reference_problems(manifest):
        rows.append(Row("manifest", "manifest.json", False, problem))
    if any(not r.ok for r in rows):
        return rows
    files_ok = True
    for field, entry in listed_files(manifest):
        try:
            path = safe_path(bundle, entry["file"], field)
            if not path.is_file():
                raise PackagerError("missing", file=entry["file"])
            size = path.stat().st_size
            if size != entry["bytes"]:
                raise PackagerError("size differs from the manifest", file=entry["file"],
                                    expected=str(entry["bytes"]), found=str(size))
            digest = sha256_file(path)
            if digest != entry["sha256"]:
                raise PackagerError("sha256 differs from the manifest (file modified or corrupt)",
                                    file=entry["file"], expected=entry["sha256"][:16] + "…", found=digest[:16] + "…")
            rows.append(Row("file", entry["file"], True, f"{size} bytes"))
        except PackagerError as exc:
            files_ok = False
            rows.append(Row("file", entry.get("file", field), False, str(exc)))
    if not files_ok:
        return rows  # never run a graph or trust a golden that failed its checksum
    for c in manifest["components"]:
        for g in c["graphs"]:
            subject = f"{c['name']}/{g['name']}"
            try:
                rows += _verify_goldens(bundle, g, subject)
            except PackagerError as exc:
                rows.append(Row("golden", subject, False, str(exc)))
    if manifest.get("pipeline"):
        from packager.synth import verify_pipeline

        try:
            rows += [Row("pipeline", s, ok, d) for s, ok, d in verify_pipeline(bundle, manifest)]
        except PackagerError as exc:
            rows.append(Row("pipeline", "pipeline", False, str(exc)))
    return rows


def _verify_goldens(bundle: Path, g: dict[str, Any], subject: str) -> list[Row]:
    cases = []
    for case in g["goldens"]:
        ins = {t["name"]: load_array(bundle, t, t["file"]) for t in case["inputs"]}
        outs = {t["name"]: load_array(bundle, t, t["file"]) for t in case["outputs"]}
        cases.append(GoldenCase(case["name"], ins, outs))
    tolerances = {t["output"]: t for t in g["tolerances"]}
    outputs = [o["name"] for o in g["outputs"]]
    model = target_model(safe_path(bundle, g["file"], "file"), g)  # the goldens describe what Sentis computes
    results: list[CaseResult] = run_cases(model, outputs, tolerances, cases)
    return [Row("golden", f"{subject}/{r.case}/{v.output}", v.passed, v.summary()) for r in results for v in r.verdicts]
