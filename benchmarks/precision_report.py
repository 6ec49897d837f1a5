"""Per component and graph: bytes and measured error of fp16 and uint8 against the fp32 reference goldens, on the
tiny preset and on tiny_a (docs/precision.md). Also compares the two fp16 converters.

    python benchmarks/precision_report.py [--tiny-a PATH] [--converters]

Error = the target's computation (the Sentis view: fp16 weights upcast / Sentis's uint8 weight quantization) vs
the REFERENCE outputs (PyTorch/upstream), worst over the golden cases; "ort-fp16" = true fp16 compute of the fp16
file by onnxruntime (for non-Sentis users).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packager.build import precision as P
from packager.build import registry  # noqa: E402
from packager.build.checkpoint import Source  # noqa: E402
from packager.onnx.session import run_onnx  # noqa: E402
from packager.build.stages import convert as C  # noqa: E402
from packager.build.stages.export import export_graph  # noqa: E402

TINY_A = Path(__file__).resolve().parents[1] / "tests" / "data" / "upstream_ref" / "tiny_a"  # in-repo copy


def _fmt(err: list[dict]) -> str:
    return "; ".join(f"{m['output']}: max {m['max_abs']:.2g} sqnr {m['sqnr_db']:.1f}"
                     + (f" top1 {m['top1']:.3f}" if "top1" in m else "") for m in err)


def report(source: Source, label: str, converters: bool,
           per_component: dict[str, Source] | None = None) -> list[tuple]:
    rows = []
    for name in registry.names():
        built = registry.get(name).build((per_component or {}).get(name, source))
        for g in built.graphs:
            model, cases = export_graph(g), g.cases()
            tol = {s.name: g.tolerances[s.name].to_json() for s in g.outputs}
            fp32_bytes = model.ByteSize()
            for prec in ("fp16", "uint8"):
                conv = C.convert(model, C.graph_policy(P.ComponentPolicy(prec), g.dsp_graph), g.keep_float32, cases,
                                 dsp=g.dsp_constants, graph=g.name)
                err = C.error_vs(cases, C.outputs_of(conv.view if conv.view is not None else conv.model, cases), tol)
                extra = ""
                if prec == "fp16":
                    extra = "ort-fp16 " + _fmt(C.error_vs(cases, C.fp16_cost_outputs(conv.model, cases), tol))
                rows.append((label, name, g.name, prec, fp32_bytes, conv.model.ByteSize(),
                             C.unity_weight_bytes(model, "none"), C.unity_weight_bytes(conv.model,
                                                                                       conv.unity_quantization),
                             _fmt(err), extra))
            if converters:
                for which in ("onnxruntime", "onnxconverter-common"):
                    try:
                        half = C.to_fp16(model, C.keep_nodes(model, g.keep_float32), converter=which)
                        got = [run_onnx(half, c.inputs) for c in cases]
                        print(f"  converter {which:22} {label} {g.name}: loads; ort-fp16 "
                              + _fmt(C.error_vs(cases, got, tol)))
                    except Exception as exc:  # noqa: BLE001 - the measurement is whether it works
                        print(f"  converter {which:22} {label} {g.name}: FAILS {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:120]}")
    return rows


def campplus_source(tiny_a: Path) -> dict[str, Source]:
    """The in-repo tiny_a holds no ``campplus.onnx``: the shared set's ``tiny_a/campplus.onnx`` is byte-identical to
    ``campplus/campplus.onnx`` (sha256 4f795d5e...abd5fd), which the repository keeps once, beside tiny_a."""
    if (tiny_a / "campplus.onnx").is_file():
        return {}
    other = tiny_a.parent / "campplus"
    if not (other / "campplus.onnx").is_file():
        raise SystemExit(f"campplus.onnx missing: neither {tiny_a / 'campplus.onnx'} nor {other / 'campplus.onnx'}")
    return {"campplus": Source(checkpoint=other)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny-a", type=Path, default=TINY_A)
    ap.add_argument("--converters", action="store_true", help="also compare the two fp16 converters")
    args = ap.parse_args()
    torch.set_num_threads(1)
    np.set_printoptions(precision=3)
    rows = report(Source(preset="tiny", seed=1234), "tiny", args.converters)
    if (args.tiny_a / "cosyvoice3.yaml").is_file():
        rows += report(Source(checkpoint=args.tiny_a), "tiny_a", args.converters, campplus_source(args.tiny_a))
    head = ("source", "component", "graph", "prec", "onnx fp32", "onnx", "unity fp32", "unity", "error vs fp32 ref",
            "")
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for r in rows:
        print(" | ".join(str(c) for c in r))


if __name__ == "__main__":
    main()
