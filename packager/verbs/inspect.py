"""``packager inspect``: a bundle's graphs with their inputs, outputs, sizes, precision and measured cost."""
from __future__ import annotations

import argparse
from typing import Any

from packager.contract.manifest import open_manifest
from packager.ui.table import human, table


def _spec(t: dict[str, Any]) -> str:
    return f"{t['name']} {t['dtype']}[{', '.join(str(d) for d in t['shape'])}]"


def _cost(g: dict[str, Any]) -> str:
    cost = g.get("precision_cost")
    if not cost or not cost.get("error"):
        return "-"
    sqnr = [m["sqnr_db"] for m in cost["error"] if "sqnr_db" in m]
    worst = max(m["max_abs"] for m in cost["error"])
    return f"max_abs {worst:.2g}" + (f", SQNR >= {min(sqnr):.1f} dB" if sqnr else "")


def run(args: argparse.Namespace) -> int:
    """``packager inspect`` (options: packager/cli.py)."""
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
                         g["opset"], human(size), len(g["goldens"]), _cost(g)))
            io.append(f"{c['name']}/{g['name']}")
            io += [f"  in   {_spec(t)}" for t in g["inputs"]] + [f"  out  {_spec(t)}" for t in g["outputs"]]
    print(table(["component", "graph", "precision", "opset", "size", "goldens", "cost vs fp32"], rows))
    print("\n" + "\n".join(io))
    for c in m["components"]:
        if c.get("data"):
            print(f"\n{c['name']} data: " + ", ".join(f"{d['name']} {d['dtype']}{d['shape']}" for d in c["data"]))
    if m.get("pipeline"):
        print("\nend-to-end goldens: " + ", ".join(g["name"] for g in m["pipeline"]["goldens"]))
    return 0
