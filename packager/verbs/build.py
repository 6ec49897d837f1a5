"""``packager build``: a checkpoint folder, model id or preset in, a verified bundle folder out."""
from __future__ import annotations

import argparse

from packager.build import registry
from packager.build.checkpoint import Source, source_from_args
from packager.build.pipeline import BuildOptions, build
from packager.contract import targets
from packager.contract.errors import PackagerError
from packager.ui.progress import Progress
from packager.ui.table import human, table


def run(args: argparse.Namespace) -> int:
    """``packager build`` (options: packager/cli.py)."""
    if not targets.OPSET_MIN <= args.opset <= targets.BUILD_OPSET_MAX:
        raise PackagerError("unsupported opset", key="--opset", expected=f"{targets.OPSET_MIN}..{targets.BUILD_OPSET_MAX} "
                            f"(Sentis documents {targets.OPSET_MIN}..{targets.OPSET_DOCUMENTED_MAX})",
                            found=str(args.opset))
    names = [n.strip() for n in args.components.split(",") if n.strip()]
    if not names:
        raise PackagerError("no components given", key="--components", expected=", ".join(registry.names()))
    source, _ = source_from_args(args.checkpoint, args.revision, args.preset, args.seed,
                                 lambda: [f for n in names for f in registry.get(n).checkpoint_files], args.quiet)
    progress = Progress("quiet" if args.quiet else args.progress)
    try:
        summary = build(BuildOptions(out=args.out, source=Source(**source), components=names, target=args.target,
                                     opset=args.opset, force=args.force, precision=args.precision, log=progress))
    finally:
        progress.close()
    if args.quiet:
        return 0
    rows = [(c, g, human(b)) for c, g, b in summary.graphs]
    print(table(["component", "graph", "size"], rows))
    print(f"\nbundle {summary.out}: {len(summary.graphs)} graphs, {human(summary.total_bytes)} in all, "
          f"built in {summary.seconds:.1f} s")
    return 0
