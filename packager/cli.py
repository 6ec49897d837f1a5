"""Command line: ``python -m packager {build,verify,inspect,run,check,unity-install}``.

User mistakes raise ``PackagerError``: one message on stderr, exit code 2, no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from packager import __version__, registry
from packager import sentis_rules as R
from packager.checkpoint import DEFAULT_SEED, PRESETS, Source
from packager.errors import PackagerError

DEFAULT_OUT = Path("build/cosyvoice3-bundle")
BUILD_OPSET_MAX = 17  # the highest opset `build --opset` exports at (Sentis imports up to R.OPSET_MAX)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


# ---------------------------------------------------------------- build
def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build a Unity bundle from a checkpoint folder or the built-in tiny preset",
                       description="Export, check and package the CosyVoice3 graphs into a verified bundle folder. "
                                   "Without --checkpoint the built-in tiny preset (seeded random weights) is built.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, metavar="DIR",
                     help="upstream Fun-CosyVoice3-0.5B folder (cosyvoice3.yaml, llm.pt, flow.pt, hift.pt, campplus.onnx)")
    src.add_argument("--preset", choices=PRESETS, help="built-in preset (default: tiny, when no --checkpoint)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"preset weight seed (default {DEFAULT_SEED})")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"bundle folder to create (default {DEFAULT_OUT})")
    p.add_argument("--components", default=",".join(registry.names()),
                   help="comma-separated subset to build (default: all: %(default)s)")
    p.add_argument("--target", default=R.DEFAULT_TARGET, choices=list(R.TARGETS),
                   help="Unity runtime: " + ", ".join(f"{t.name} = {t.package} {t.version}" for t in R.TARGETS.values())
                        + f" (default {R.DEFAULT_TARGET})")
    p.add_argument("--opset", type=int, default=R.DEFAULT_OPSET,
                   help=f"ONNX opset of the exported graphs (default {R.DEFAULT_OPSET}; "
                        f"{R.OPSET_MIN}..{BUILD_OPSET_MAX})")
    p.add_argument("--force", action="store_true", help="replace an existing bundle at --out (only after success)")
    p.add_argument("--precision", default="recommended", metavar="POLICY",
                   help="recommended (default: llm fp16, flow fp16, hift fp32, campplus fp16), fp32, fp16, or a JSON "
                        "file with a precision (fp32|fp16|uint8|int8) and optional keep_float32 list per component "
                        "(docs/precision.md)")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--progress", choices=("auto", "tty", "plain"), default="auto",
                       help="how progress is shown on stderr: live bars on a terminal (tty), timestamped lines with a "
                            "heartbeat every 10 s (plain, e.g. CI logs); auto picks by whether stderr is a terminal")
    shown.add_argument("--quiet", action="store_true", help="no progress output (errors and the summary only)")
    p.set_defaults(func=_cmd_build)


def _cmd_build(args: argparse.Namespace) -> int:
    from packager.build import BuildOptions, build

    if not R.OPSET_MIN <= args.opset <= BUILD_OPSET_MAX:
        raise PackagerError("unsupported opset", key="--opset", expected=f"{R.OPSET_MIN}..{BUILD_OPSET_MAX} "
                            f"(Sentis documents {R.OPSET_MIN}..{R.OPSET_DOCUMENTED_MAX})", found=str(args.opset))
    if args.checkpoint is not None:
        if not args.checkpoint.is_dir():
            raise PackagerError("not a folder", file=str(args.checkpoint),
                                expected="an upstream Fun-CosyVoice3-0.5B checkpoint folder")
        source = Source(checkpoint=args.checkpoint.resolve())
    else:
        source = Source(preset=args.preset or "tiny", seed=args.seed)
    names = [n.strip() for n in args.components.split(",") if n.strip()]
    if not names:
        raise PackagerError("no components given", key="--components", expected=", ".join(registry.names()))
    from packager.progress import Progress

    progress = Progress("quiet" if args.quiet else args.progress)
    try:
        summary = build(BuildOptions(out=args.out, source=source, components=names, target=args.target,
                                     opset=args.opset, force=args.force, precision=args.precision, log=progress))
    finally:
        progress.close()
    rows = [(c, g, _human(b)) for c, g, b in summary.graphs]
    print(_table(["component", "graph", "size"], rows))
    print(f"\nbundle {summary.out}: {len(summary.graphs)} graphs, {_human(summary.total_bytes)} in all, "
          f"built in {summary.seconds:.1f} s")
    return 0


# ---------------------------------------------------------------- verify
def _add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check a bundle: schema, checksums, paths, goldens reproduced",
                       description="Validate manifest.json against the schema, check sha256 and size of every file, "
                                   "reject unsafe paths, and reproduce every golden with onnxruntime. Exit 0 only if "
                                   "everything passes.")
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.set_defaults(func=_cmd_verify)


def _cmd_verify(args: argparse.Namespace) -> int:
    from packager.verify import verify

    rows = verify(args.bundle)
    print(_table(["check", "subject", "result", "detail"],
                 [(r.check, r.subject, "ok" if r.ok else "FAIL", r.detail if not r.ok or r.check == "golden" else "")
                  for r in rows]))
    failed = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


# ---------------------------------------------------------------- inspect
def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="list a bundle's graphs, I/O, sizes and precision",
                       description="Print the graphs of a bundle with their inputs, outputs, sizes and precision.")
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.set_defaults(func=_cmd_inspect)


def _spec(t: dict[str, Any]) -> str:
    return f"{t['name']} {t['dtype']}[{', '.join(str(d) for d in t['shape'])}]"


def _cost(g: dict[str, Any]) -> str:
    cost = g.get("precision_cost")
    if not cost or not cost.get("error"):
        return "-"
    sqnr = [m["sqnr_db"] for m in cost["error"] if "sqnr_db" in m]
    worst = max(m["max_abs"] for m in cost["error"])
    return f"max_abs {worst:.2g}" + (f", SQNR >= {min(sqnr):.1f} dB" if sqnr else "")


def _cmd_inspect(args: argparse.Namespace) -> int:
    from packager.bundle import open_manifest

    m = open_manifest(args.bundle)
    src = m.get("source", {})
    where = (f"preset {src.get('preset')} (seed {src.get('seed')})" if src.get("kind") == "preset"
             else f"checkpoint {src.get('name')}")
    print(f"{m['bundle']['name']}  ({where}; target {m['target']['runtime']}; generator {m['generator']['version']})\n")
    rows, io = [], []
    for c in m["components"]:
        for g in c["graphs"]:
            size = g["bytes"] + g.get("external_data", {}).get("bytes", 0)
            quant = g.get("unity_quantization", "none")
            rows.append((c["name"], g["name"], g["precision"] + ("" if quant == "none" else f" (Unity {quant})"),
                         g["opset"], _human(size), len(g["goldens"]), _cost(g)))
            io.append(f"{c['name']}/{g['name']}")
            io += [f"  in   {_spec(t)}" for t in g["inputs"]] + [f"  out  {_spec(t)}" for t in g["outputs"]]
    print(_table(["component", "graph", "precision", "opset", "size", "goldens", "cost vs fp32"], rows))
    print("\n" + "\n".join(io))
    for c in m["components"]:
        if c.get("data"):
            print(f"\n{c['name']} data: " + ", ".join(f"{d['name']} {d['dtype']}{d['shape']}" for d in c["data"]))
    if m.get("pipeline"):
        print("\nend-to-end goldens: " + ", ".join(g["name"] for g in m["pipeline"]["goldens"]))
    return 0


# ---------------------------------------------------------------- run
def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run one graph of a bundle with onnxruntime on inputs from an .npz",
                       description="Run GRAPH of BUNDLE on the arrays of --inputs (keys = input names) and save "
                                   "every output to --output (.npz).")
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.add_argument("graph", metavar="GRAPH")
    p.add_argument("--inputs", type=Path, required=True, metavar="IN.npz")
    p.add_argument("--output", type=Path, required=True, metavar="OUT.npz")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from packager.onnx_utils import run_onnx
    from packager.stages.check import validate_inputs
    from packager.sentis_numerics import target_model
    from packager.stages.golden import read_npz
    from packager.bundle import check_graph_files, open_manifest

    m = open_manifest(args.bundle)
    graphs = {g["name"]: g for c in m["components"] for g in c["graphs"]}
    if args.graph not in graphs:
        raise PackagerError(f"no graph {args.graph!r} in the bundle", file=str(args.bundle),
                            expected=", ".join(graphs))
    g = graphs[args.graph]
    inputs = read_npz(args.inputs)
    validate_inputs(g["name"], g["inputs"], inputs, where=str(args.inputs))
    t0 = time.perf_counter()
    outputs = run_onnx(target_model(check_graph_files(args.bundle, g, g["name"]), g), inputs)
    dt = time.perf_counter() - t0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.output, **outputs)
    for k, v in outputs.items():
        print(f"{k}: {v.dtype} {list(v.shape)}")
    print(f"ran {g['name']} in {dt * 1000:.1f} ms -> {args.output}")
    return 0


# ---------------------------------------------------------------- plug-in verbs
PLUGINS = {"check": "packager.preflight", "unity-install": "packager.unity", "synth": "packager.synth_cli",
           "voice": "packager.voice", "report": "packager.report"}


def _add_plugins(sub: argparse._SubParsersAction) -> None:
    helps = {"check": "Sentis pre-flight check of a model or bundle",
             "unity-install": "install a bundle into a Unity project",
             "synth": "speech from text and a voice pack (or upstream frontend arrays) over a bundle",
             "voice": "make a voice pack from a reference recording and its transcript",
             "report": "compare precision policies with FP32: numbers, pictures and sound, as a static page"}
    for verb, module in PLUGINS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(verb, help=helps[verb], description=helps[verb])
        mod.add_arguments(p)
        p.set_defaults(func=mod.run)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m packager",
                                description="Package CosyVoice3 into verified, Sentis-ready Unity bundles.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_build, _add_verify, _add_inspect, _add_run, _add_plugins):
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not getattr(args, "func", None):
        if args.command is None:  # `python -m packager` alone builds the default bundle
            args = parser().parse_args(["build", *(argv or [])])
        else:
            parser().print_help()
            return 2
    try:
        return int(args.func(args) or 0)
    except PackagerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
