"""``packager run``: one graph of a bundle on a user's .npz of inputs, as Unity computes it."""
from __future__ import annotations

import argparse
import time

import numpy as np

from packager.build.stages.check import validate_inputs
from packager.contract.arrays import read_npz
from packager.contract.errors import PackagerError
from packager.contract.manifest import check_graph_files, open_manifest
from packager.onnx.session import run_onnx
from packager.sentis.numerics import target_model


def run(args: argparse.Namespace) -> int:
    """``packager run`` (options: packager/cli.py)."""
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
