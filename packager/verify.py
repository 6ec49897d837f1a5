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


def verify(bundle: Path) -> list[Row]:
    rows: list[Row] = []
    manifest = load_manifest(bundle)
    try:
        validate_manifest(manifest, str(bundle / "manifest.json"))
        rows.append(Row("schema", "manifest.json", True))
    except PackagerError as exc:
        rows.append(Row("schema", "manifest.json", False, str(exc)))
        return rows  # the rest relies on the structure
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
    return rows


def _verify_goldens(bundle: Path, g: dict[str, Any], subject: str) -> list[Row]:
    cases = []
    for case in g["goldens"]:
        ins = {t["name"]: load_array(bundle, t, t["file"]) for t in case["inputs"]}
        outs = {t["name"]: load_array(bundle, t, t["file"]) for t in case["outputs"]}
        cases.append(GoldenCase(case["name"], ins, outs))
    tolerances = {t["output"]: t for t in g["tolerances"]}
    outputs = [o["name"] for o in g["outputs"]]
    results: list[CaseResult] = run_cases(safe_path(bundle, g["file"], "file"), g["name"], outputs, tolerances, cases)
    return [Row("golden", f"{subject}/{r.case}/{v.output}", v.passed, v.summary()) for r in results for v in r.verdicts]
