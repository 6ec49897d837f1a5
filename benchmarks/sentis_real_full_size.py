"""Full-size bundles on real Sentis (tests/sentis_real/): every graph imported, quantized and given a Worker; the small
graphs' golden cases run too.

    MIRROR=/work/.mirror python benchmarks/sentis_real_full_size.py BUNDLE [BUNDLE ...] [--sentis 2.4,2.1]
                                                                   [--run-all-cases] [--bake DIR]

BUNDLE: a bundle built from a full-size checkpoint (benchmarks/full_size_build.py writes one per precision, e.g.
/tmp/cosyvoice3-full/bundle-recommended-after). One Mono process per graph, so each graph's import time and peak
RSS are its own: the runner imports the .onnx as Unity's importer does (ONNXModelConverter, ModelWriter/ModelLoader
round trip), applies ModelQuantizer per unity_quantization (GraphSession), creates a CPU Worker and binds placeholder
inputs. Graphs whose weights are under --case-limit-mb (default 600: campplus_fbank, campplus, the llm embeddings,
flow_frontend, hift) also run all their golden cases; llm_step and flow_estimator are import checks only (Sentis's IL kernels run at
~0.3 GFLOP/s under Mono; --run-all-cases runs them anyway). --bake DIR also writes each graph as a player ships it
(SentisModels.Bake: quantized .sentis) and reports its bytes beside the imported ModelAsset's; --load-baked DIR
measures a player instead: the .sentis files loaded with ModelLoader.Load(path), no .onnx import.
Prints one markdown table per bundle x Sentis version. Peak RSS is the process's own (wait4 ru_maxrss).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.sentis_real import matrix  # noqa: E402


def run_graph(runner: Path, bundle: Path, graph: str, cases: bool, bake: Path | None, out: Path,
              load_baked: Path | None = None) -> dict:
    args = ["mono", "--debug", str(runner), str(bundle), "--graph", graph, "--import-only", "--json", str(out)]
    if load_baked is not None:
        args += ["--load-baked", str(load_baked)]
    if cases:
        args += ["--cases", "1000"]
    if bake is not None:
        args += ["--baked", str(bake)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=runner.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    result = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {"graphs": []}
    g = result["graphs"][0] if result["graphs"] else None
    return {"graph": graph, "wall_s": wall, "peak_mib": usage.ru_maxrss / 1024, "exit": os.waitstatus_to_exitcode(status),
            "result": g, "worker_ok": "CPU Worker: OK" in log, "bound": "SetInput (" in log and "SetInput FAILED" not in log,
            "log": log}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--sentis", default="2.4,2.1")
    ap.add_argument("--graphs", help="only these graphs (comma-separated names)")
    ap.add_argument("--case-limit-mb", type=float, default=600.0,
                    help="run the golden cases of graphs whose weights are below this size (MB)")
    ap.add_argument("--run-all-cases", action="store_true")
    ap.add_argument("--bake", type=Path, help="also write each graph as a player ships it (.sentis) under this folder")
    ap.add_argument("--load-baked", type=Path, metavar="DIR",
                    help="a player's view: load DIR/<graph>.sentis (from --bake) instead of importing the .onnx; the "
                         "peak RSS is then what loading, quantization check, Worker and input binding take")
    ap.add_argument("--logs", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "sentis_full_logs")
    args = ap.parse_args()
    failed = 0
    for v in args.sentis.split(","):
        why = matrix.unavailable(v)
        if why:
            print(why, file=sys.stderr)
            return 2
        runner = matrix.build_runner(v, args.logs / f"runner{v}")
        for bundle in args.bundles:
            bundle = bundle.resolve()
            manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
            rows = []
            for comp in manifest["components"]:
                for g in comp["graphs"]:
                    if args.graphs and g["name"] not in args.graphs.split(","):
                        continue
                    size = g["bytes"] + (g.get("external_data") or {}).get("bytes", 0)
                    cases = args.run_all_cases or size < args.case_limit_mb * 1e6
                    bake = args.bake / f"{bundle.name}-{v}" if args.bake else None
                    r = run_graph(runner, bundle, g["name"], cases, bake, args.logs / f"{bundle.name}-{v}-{g['name']}.json",
                                  args.load_baked)
                    (args.logs / f"{bundle.name}-{v}-{g['name']}.log").write_text(r["log"], encoding="utf-8")
                    r.update(size=size, precision=g["precision"], q=g["unity_quantization"], cases_run=cases)
                    rows.append(r)
                    ok = r["result"] is not None and r["result"]["imported"] and r["worker_ok"] and r["bound"]
                    res = r["result"] or {}
                    ok = ok and not res.get("warnings") and all(c["passed"] for c in res.get("cases", []))
                    failed += not ok
                    print(f"  {bundle.name} / Sentis {v} / {g['name']}: {'ok' if ok else 'FAILED'} "
                          f"({r['wall_s']:.0f} s, {r['peak_mib']:.0f} MiB)", file=sys.stderr, flush=True)
            sentis = next((json.loads(p.read_text())["sentis"] for p in args.logs.glob(f"{bundle.name}-{v}-*.json")), v)
            print(f"\n{bundle.name} on {sentis}\n")
            print("| graph | precision | unity_quantization | onnx + data MB | imported | quantized + Worker | inputs bound "
                  "| import ms | wall s | peak RSS MiB | warnings | cases passed | worst max abs | ModelAsset MB | .sentis MB |")
            print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            for r in rows:
                res = r["result"] or {}
                cs = res.get("cases", [])
                worst = max((x for c in cs for x in c["max_abs"].values() if x is not None), default=None)
                baked = res.get("baked_bytes")
                print(f"| {r['graph']} | {r['precision']} | {r['q']} | {r['size'] / 1e6:.1f} | "
                      f"{'yes' if res.get('imported') else 'NO'} | {'yes' if r['worker_ok'] else 'NO'} | "
                      f"{'yes' if r['bound'] else 'NO'} | {res.get('import_ms', '-')} | {r['wall_s']:.0f} | "
                      f"{r['peak_mib']:.0f} | {len(res.get('warnings', []))} | "
                      f"{(str(sum(c['passed'] for c in cs)) + '/' + str(len(cs))) if r['cases_run'] else 'import only'} | "
                      f"{'-' if worst is None else f'{worst:.1e}'} | {res.get('asset_bytes', 0) / 1e6:.1f} | "
                      f"{'-' if baked is None else f'{baked / 1e6:.1f}'} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
