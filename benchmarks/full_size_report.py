"""``packager report`` on the full-size, upstream-format random-init checkpoint: wall time and peak RSS of the whole
process tree (issue #16's closing figures), and the per-policy table for docs/precision.md.

    python benchmarks/full_size_report.py [--work DIR] [--policies ...] [--voice NAME.voice --text "..."]

The checkpoint is the one ``benchmarks/full_size_build.py`` makes (created here if missing). Prints a Markdown table
copied from the written report.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import full_size_build as F  # noqa: E402


def table(doc: dict) -> str:
    rows = ["| policy | precisions (campplus / llm / flow / hift) | bundle MB | Unity weights MB | worst component "
            "SQNR dB (graph.output) | LLM top-1 | e2e tokens | e2e SQNR dB | MCD dB | Sentis | verdict |",
            "|---|---|---:|---:|---|---:|---:|---:|---:|---|---|"]
    for p in doc["policies"]:
        errs = [(g["name"] + "." + e["output"], e) for c in p["components"] for g in c["graphs"] for e in g["errors"]]
        worst = min(errs, key=lambda x: x[1]["sqnr_db"])
        top1 = min((e["top1"] for _, e in errs if "top1" in e), default=None)
        e2e = p["e2e"]
        refused = [g["name"] for c in p["components"] for g in c["graphs"]
                   if not g["sentis"][doc["target"]]["importable"]]
        unity = p["totals"]["unity_weight_bytes"]
        rows.append(f"| {p['name']} | {' / '.join(p['precisions'][c] for c in ('campplus', 'llm', 'flow', 'hift'))} "
                    f"| {p['totals']['bytes'] / 1e6:.1f} | {'–' if unity is None else f'{unity / 1e6:.1f}'} "
                    f"| {worst[1]['sqnr_db']:.1f} ({worst[0]}) | {'–' if top1 is None else f'{top1:.3f}'} "
                    f"| {e2e.get('token_agreement', 'baseline')} | {e2e.get('sqnr_db', 'baseline')} "
                    f"| {e2e.get('mcd_db', 'baseline')} | {'imports' if not refused else 'refuses ' + ', '.join(refused)} "
                    f"| {p['verdict']} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/cosyvoice3-full"))
    ap.add_argument("--policies", default=None)
    ap.add_argument("--voice", type=Path)
    ap.add_argument("--text")
    args = ap.parse_args()
    ckpt = args.work / "checkpoint"
    if not (ckpt / "hift.pt").is_file():
        F.make_checkpoint(ckpt)
    out = args.work / "report"
    cmd = [sys.executable, "-m", "packager", "report", "--checkpoint", str(ckpt), "--out", str(out), "--force",
           "--progress", "plain"]
    if args.policies:
        cmd += ["--policies", args.policies]
    if args.voice:
        cmd += ["--voice", str(args.voice)] + (["--text", args.text] if args.text else [])
    r = F._run_measured(F.REPO, cmd, "report")
    print(f"\nreport: exit {r['exit']}, {r['wall_s']:.0f} s, peak RSS of the process tree "
          f"{r['peak_tree_rss'] / 2**30:.2f} GiB ({r['peak_at']}); longest silence {r['longest_silence_s']:.0f} s")
    if r["exit"] == 0:
        doc = json.loads((out / "report.json").read_text())
        print(f"recommendation: {doc['recommendation']}\n")
        print(table(doc))
        for ph in doc["phases"]:
            print(f"phase {ph['index']} {ph['title']}: {ph['verdict']} {ph['failed_gates']}")
    return r["exit"]


if __name__ == "__main__":
    raise SystemExit(main())
