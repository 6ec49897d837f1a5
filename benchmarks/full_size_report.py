"""``packager report`` on the full-size, upstream-format random-init checkpoint: wall time and peak RSS of the whole
process tree, and the per-policy table for docs/precision.md.

    python benchmarks/full_size_report.py [--work DIR] [--policies ...] [--voice NAME.voice --text "..."]

The checkpoint is the one ``benchmarks/full_size_build.py`` makes (created here if missing). Prints a Markdown table
copied from the written report.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import full_size_build as F  # noqa: E402


def _mb(n: int | None) -> str:
    return "–" if n is None else f"{n / 1e6:.1f}"


def table(doc: dict) -> str:
    """Per policy: sizes, the worst component SQNR, the gated numbers (teacher-forced LLM, the flow on FP32's tokens,
    the vocoder on FP32's mel), the free-running information, Sentis, the verdict and the gates that failed."""
    rows = ["| policy | precisions (campplus / llm / flow / hift) | bundle MB | Unity weights MB | worst component "
            "SQNR dB (graph.output) | LLM top-1 teacher forced, above margin (steps) | all steps | KL nats "
            "| flow mel SQNR dB | vocoder log-mel corr. | free-running tokens | waveform SQNR dB | MCD dB "
            "| Sentis | verdict |",
            "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for p in doc["policies"]:
        errs = [(g["name"] + "." + e["output"], e) for c in p["components"] for g in c["graphs"] for e in g["errors"]]
        worst = min(errs, key=lambda x: x[1]["sqnr_db"])
        e2e, tf = p["e2e"], p.get("teacher_forced")
        st, sm = p.get("same_tokens") or {}, p.get("same_mel") or {}
        refused = [g["name"] for c in p["components"] for g in c["graphs"]
                   if not g["sentis"][doc["target"]]["importable"]]
        failed = [g["gate"] for g in p["gates"] if not g["pass"]]
        llm = (f"{tf['top1_confident']} ({tf['confident_steps']}/{tf['steps']}) | {tf['top1']} | {tf['kl_mean']:.3g}"
               if tf else "baseline | baseline | baseline")
        rows.append(f"| {p['name']} | {' / '.join(p['precisions'][c] for c in ('campplus', 'llm', 'flow', 'hift'))} "
                    f"| {_mb(p['totals']['bytes'])} | {_mb(p['totals']['unity_weight_bytes'])} "
                    f"| {worst[1]['sqnr_db']:.1f} ({worst[0]}) | {llm} | {st.get('flow_mel_sqnr_db', 'baseline')} "
                    f"| {sm.get('log_mel_correlation', 'baseline')} | {e2e.get('token_agreement', 'baseline')} "
                    f"| {e2e.get('sqnr_db', 'baseline')} | {e2e.get('mcd_db', 'baseline')} "
                    f"| {'imports' if not refused else 'refuses ' + ', '.join(refused)} "
                    f"| {p['verdict']}{' (' + ', '.join(failed) + ')' if failed else ''} |")
    return "\n".join(rows)


def search_table(doc: dict) -> str:
    """The per-component search: every component x precision weighed, its gates, and what was chosen."""
    found = doc.get("search")
    if not found:
        return "search: not run"
    tried = "".join(f"first tried {t['precisions']}: {t['verdict']} ({'; '.join(t['failed'])})\n"
                    for t in found.get("tried", []))
    rows = [f"{tried}search: {found['precisions']} ({found['reason']}; as one bundle: {found.get('verdict', '-')})", "",
            "| component | graph | precision | Unity weights MB | on disk MB | its gates | measured in | chosen |",
            "|---|---|---|---:|---:|---|---|---|"]
    for r in found["components"]:
        rows.append(f"| {r['component']} | {r.get('graph') or 'all'} | {r['precision']} "
                    f"| {_mb(r['unity_weight_bytes'])} | {_mb(r['bytes'])} "
                    f"| {'pass' if r['pass'] else 'fail: ' + '; '.join(r['failed'])} | {', '.join(r['measured_in'])} "
                    f"| {'**chosen**' if r['chosen'] else ''} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/cosyvoice3-full"))
    ap.add_argument("--policies", default=None)
    ap.add_argument("--voice", type=Path)
    ap.add_argument("--text")
    ap.add_argument("--sentis-real", action="store_true",
                    help="keep MIRROR: add the real-Sentis column (every full-size golden on Sentis under Mono: slow)")
    args = ap.parse_args()
    if not args.sentis_real:
        os.environ.pop("MIRROR", None)
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
        print(f"reference: {doc['reference']}\nreal Sentis: {doc['sentis_real']['note']}\n")
        print(table(doc))
        for ph in doc["phases"]:
            print(f"phase {ph['index']} {ph['title']}: {ph['verdict']} {ph['failed_gates']}")
        print("\n" + search_table(doc))
    return r["exit"]


if __name__ == "__main__":
    raise SystemExit(main())
