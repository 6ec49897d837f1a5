"""Prove the CAMPPlus ceil_mode rewrite for every input length 3..3000 frames (onnxruntime, CPU).

    python benchmarks/campplus_pool_sweep.py [--checkpoint-onnx PATH] [--start 3] [--stop 3000] [--json out.json]

Runs the shipped graph and the rewritten one on the same N(0,1) features for each length and reports the worst
max |difference|; exits 1 if any length exceeds 2e-4 (the required bound).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from packager.sentis.rewrites import count_ceil_mode_pools, rewrite_ceil_mode_avgpool, upgrade_opset  # noqa: E402
from packager.onnx.session import session  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1] / "tests" / "data" / "upstream_ref" / "campplus" / "campplus.onnx"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint-onnx", type=Path, default=DEFAULT)
    ap.add_argument("--start", type=int, default=3)
    ap.add_argument("--stop", type=int, default=3000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    shipped = onnx.load(str(args.checkpoint_onnx))
    fixed = rewrite_ceil_mode_avgpool(upgrade_opset(copy.deepcopy(shipped), 15))
    a, b = session(shipped), session(fixed)
    rng = np.random.default_rng(0)
    worst, worst_len, t0 = 0.0, 0, time.perf_counter()
    per_len = {}
    for n in range(args.start, args.stop + 1):
        x = rng.standard_normal((1, n, 80)).astype(np.float32)
        d = float(np.abs(a.run(None, {"input": x})[0] - b.run(None, {"input": x})[0]).max())
        per_len[n] = d
        if d > worst:
            worst, worst_len = d, n
    dt = time.perf_counter() - t0
    ok = worst <= 2e-4
    print(f"lengths {args.start}..{args.stop}: worst max|shipped - rewritten| = {worst:.3g} at T={worst_len}; "
          f"ceil_mode pools {count_ceil_mode_pools(shipped)} -> {count_ceil_mode_pools(fixed)}; "
          f"nodes {len(shipped.graph.node)} -> {len(fixed.graph.node)}; {dt:.0f} s; {'PASS' if ok else 'FAIL'}")
    if args.json:
        args.json.write_text(json.dumps({"worst": worst, "worst_length": worst_len, "seconds": dt,
                                         "per_length": per_len}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
