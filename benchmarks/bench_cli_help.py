"""How fast the command line answers ``--help`` (under 0.5 s each).

    python benchmarks/bench_cli_help.py [--runs 5] [--python PYTHON]

Runs ``python -m packager --help`` and ``python -m packager VERB --help`` for every verb, each ``--runs`` times in a
fresh subprocess, and prints the median wall time (and the interpreter's own start, ``python -c pass``, for scale)
with the modules of note each imported. What ``--help`` imports is asserted by tests/verbs/test_cli.py; the times live
here only, because they depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HEAVY = ("torch", "onnx", "onnxruntime", "numpy", "huggingface_hub", "matplotlib")
PROBE = ("import runpy, sys, json, atexit\n"
         "atexit.register(lambda: print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(%r))),"
         " file=sys.stderr))\n"
         "sys.argv = ['packager', *%r]\n"
         "runpy.run_module('packager', run_name='__main__')\n")


def _time(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return statistics.median(times)


def _heavy(python: str, argv: list[str]) -> str:
    proc = subprocess.run([python, "-c", PROBE % (HEAVY, argv)], cwd=REPO, capture_output=True, text=True)
    return ", ".join(json.loads(proc.stderr.strip().splitlines()[-1])) or "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per command; the median is reported (default 5)")
    ap.add_argument("--python", default=sys.executable, help="interpreter with the packager installed")
    args = ap.parse_args()
    from packager.cli import VERBS

    rows = [("python -c pass", _time([args.python, "-c", "pass"], args.runs), "")]
    for verb in ["", *VERBS]:
        argv = [verb, "--help"] if verb else ["--help"]
        rows.append((f"python -m packager {' '.join(argv)}", _time([args.python, "-m", "packager", *argv], args.runs),
                     _heavy(args.python, argv)))
    width = max(len(r[0]) for r in rows)
    print(f"{'command':<{width}}  median of {args.runs}  heavy modules imported")
    print(f"{'-' * width}  {'-' * 12}  {'-' * 23}")
    for cmd, t, heavy in rows:
        print(f"{cmd:<{width}}  {t:9.3f} s  {heavy}")
    slow = [cmd for cmd, t, _ in rows[1:] if t >= 0.5]
    print(f"\n{len(rows) - 1 - len(slow)} of {len(rows) - 1} under 0.5 s"
          + (f"; over: {', '.join(slow)}" if slow else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
