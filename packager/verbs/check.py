"""``packager check``: the Sentis pre-flight checker on one .onnx file or every graph of a bundle."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from packager.contract import manifest as B
from packager.sentis import preflight as P
from packager.sentis import rules as R


def run(args: argparse.Namespace) -> int:
    """``packager check`` (options: packager/cli.py): 0 without errors, 1 with errors (unreadable input raises
    PackagerError -> 2). The last line says what was checked: graphs, files, target."""
    path = Path(args.path)
    if path.is_dir():
        target, graphs = P.bundle_graphs(path, args.target)
        findings = [f for name, file in graphs for f in P.check_file(file, target, name)]
        n_files = len({file for _, file in graphs} | _external_files(path))
        what = f"{P.plural(len(graphs), 'graph')} ({P.plural(n_files, 'file')})"
    else:
        target = args.target or R.DEFAULT_TARGET
        findings = P.check_file(path, target)
        what = f"1 graph ({path.name})"
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=1))
    else:
        t = R.TARGETS[target]
        text = P.format_findings(findings, None if args.all else 5, with_counts=False)
        print((text + "\n" if text else "") + f"checked {what} for {t.package} {t.version} ({target}): "
              + P.counts(findings))
    return 1 if P.errors(findings) else 0


def _external_files(folder: Path) -> set[Path]:
    """The external-data files the bundle's manifest lists (graphs over 2 GB keep their weights beside them)."""
    try:
        manifest = json.loads((folder / B.MANIFEST_FILE).read_text(encoding="utf-8"))
        return {folder / g["external_data"]["file"] for c in manifest["components"] for g in c["graphs"]
                if isinstance(g.get("external_data"), dict) and "file" in g["external_data"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()
