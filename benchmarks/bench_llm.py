"""LLM at full size (random weights): export time / peak RSS / graph sizes, and an onnxruntime decode step against
the memory-bandwidth bound, for the growing cache (shipped) and the static cache (alternative; docs/llm.md).

    python benchmarks/bench_llm.py                 # everything, each phase in its own process (peak RSS per phase)
    python benchmarks/bench_llm.py export|export-static|decode|parity [--out DIR] [--cache 150,500] [--lmax 1024]

Full-size config: tests/data/upstream_ref/full_size_config.yaml + the Qwen2 config in full_size_keys.json, read
through the component's own config path. Weights: seeded N(0, 0.02) (timing does not depend on values).
Bandwidth bound: bytes of the step graph's weights (everything a decode step reads) / measured bandwidth; two
bandwidth definitions as in ../shared/design/upstream_perf.md (numpy 1 GiB copy; 2-thread torch read).
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REF = REPO / "tests" / "data" / "upstream_ref"  # in-repo copy of the upstream reference data (its README.md)
DEFAULT_OUT = Path(tempfile.gettempdir()) / "bench_llm_full"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def full_size_model():
    """Random full-size CosyVoice3LM built via read_config on a checkpoint-shaped temp folder."""
    import torch

    from packager.build.checkpoint import Source
    from packager.components.llm.component import read_config
    from packager.components.llm.model import load_llm, random_state_dict

    tmp = Path(tempfile.mkdtemp())
    (tmp / "CosyVoice-BlankEN").mkdir()
    shutil.copy(REF / "full_size_config.yaml", tmp / "cosyvoice3.yaml")
    qwen = json.loads((REF / "full_size_keys.json").read_text())["qwen2_config"]
    (tmp / "CosyVoice-BlankEN/config.json").write_text(json.dumps(qwen))
    cfg, _ = read_config(Source(checkpoint=tmp))
    shutil.rmtree(tmp)
    torch.manual_seed(0)
    sd = random_state_dict(cfg, seed=1986, std=0.02)
    model = load_llm(cfg, sd, "random full-size")
    del sd
    return model


def phase_export(out: Path, static: bool, lmax: int) -> dict:
    import onnx
    import torch

    from packager.components.llm.component import graph_defs, static_step_graph
    from packager.build.stages.export import export_graph

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = full_size_model()
    t_build = time.perf_counter() - t0
    rows = {"build_model_s": round(t_build, 1), "rss_after_build_mib": round(peak_rss_mib())}
    cfg = model.cfg
    if static:
        graphs = [static_step_graph(model, lmax)]
    else:
        graphs = graph_defs(model)
    for g in graphs:
        t = time.perf_counter()
        m = export_graph(g)
        t_exp = time.perf_counter() - t
        path = out / f"{g.name}.onnx"
        onnx.save_model(m, str(path))  # inline: every graph is < 2 GiB, so no external data is needed
        weights = sum(np.prod(i.dims) * 4 for i in m.graph.initializer)
        rows[g.name] = {"export_s": round(t_exp, 1), "file_bytes": path.stat().st_size, "weight_bytes": int(weights),
                        "nodes": len(m.graph.node)}
        del m
    rows["peak_rss_mib"] = round(peak_rss_mib())
    return rows


def bandwidth() -> dict:
    import torch

    n = (1 << 30) // 4
    a = np.ones(n, np.float32)
    b = np.empty_like(a)
    np.copyto(b, a)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        np.copyto(b, a)
        times.append(time.perf_counter() - t)
    copy = (1 << 30) / np.median(times) / 1e9
    torch.set_num_threads(2)
    ta = torch.from_numpy(a)
    ta.sum()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        ta.sum()
        times.append(time.perf_counter() - t)
    return {"numpy_copy_GBps": copy, "torch_2thread_read_GBps": (1 << 30) / np.median(times) / 1e9}


def _feeds(name: str, shapes: dict, cache_len: int, rng: np.random.Generator) -> dict:
    D = shapes["inputs_embeds"][2]
    feeds = {"inputs_embeds": rng.standard_normal((1, 1, D), np.float32)}
    if name == "llm_step":
        ly, _, hk, _, hd = shapes["past_key"]
        feeds["past_key"] = rng.standard_normal((ly, 1, hk, cache_len, hd), np.float32)
        feeds["past_value"] = rng.standard_normal((ly, 1, hk, cache_len, hd), np.float32)
    else:
        ly, _, hk, L, hd = shapes["key_cache"]
        feeds["position"] = np.array([cache_len], np.int32)
        feeds["key_cache"] = rng.standard_normal((ly, 1, hk, L, hd), np.float32)
        feeds["value_cache"] = rng.standard_normal((ly, 1, hk, L, hd), np.float32)
    return feeds


def phase_decode(out: Path, cache_lens: list[int], reps: int) -> dict:
    """Both cache layouts loaded side by side and timed alternately (fair under a noisy shared machine)."""
    import onnx

    from packager.onnx.session import session

    rows: dict = {"bandwidth": bandwidth()}
    rng = np.random.default_rng(0)
    names = [n for n in ("llm_step", "llm_step_static") if (out / f"{n}.onnx").exists()]
    shapes, weight_bytes = {}, {}
    for name in names:
        meta = onnx.load(str(out / f"{name}.onnx"), load_external_data=False)
        weight_bytes[name] = sum(int(np.prod(i.dims)) * 4 for i in meta.graph.initializer)
        shapes[name] = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in meta.graph.input}
        del meta
    for threads in (1, 2):
        sessions = {n: session(str(out / f"{n}.onnx"), threads) for n in names}
        for cache_len in cache_lens:
            feeds = {n: _feeds(n, shapes[n], cache_len, rng) for n in names}
            times: dict[str, list[float]] = {n: [] for n in names}
            for n in names:
                sessions[n].run(None, feeds[n])  # warm-up
            for _ in range(reps):
                for n in names:
                    t = time.perf_counter()
                    sessions[n].run(None, feeds[n])
                    times[n].append(time.perf_counter() - t)
            for n in names:
                rows[f"{n} P={cache_len} threads={threads}"] = {
                    "weight_bytes": weight_bytes[n], "min_ms": 1e3 * min(times[n]),
                    "median_ms": 1e3 * float(np.median(times[n])), "max_ms": 1e3 * max(times[n])}
        del sessions
    rows["peak_rss_mib"] = round(peak_rss_mib())
    return rows


def phase_parity(out: Path) -> dict:
    """ORT (saved full-size llm_step.onnx) vs our torch model on the golden cases: the tolerance margin at full size."""
    import torch

    from packager.components.llm.component import step_cases
    from packager.onnx.session import run_onnx, session

    torch.set_num_threads(1)
    model = full_size_model()  # same seed as the export phase -> same weights as the saved graph
    t = time.perf_counter()
    cases = step_cases(model)
    t_torch = time.perf_counter() - t
    sess = session(str(out / "llm_step.onnx"))
    rows: dict = {"golden_cases_torch_s": round(t_torch, 1)}
    for case in cases:
        got = run_onnx(sess, case.inputs)
        rows[case.name] = {k: float(np.abs(got[k] - v).max()) for k, v in case.outputs.items()}
        rows[case.name]["top1_equal"] = bool(got["logits"].argmax() == case.outputs["logits"].argmax())
    rows["peak_rss_mib"] = round(peak_rss_mib())
    return rows


def run_phase(args, phase: str) -> dict:
    cmd = [sys.executable, __file__, phase, "--out", str(args.out), "--cache", str(args.cache),
           "--lmax", str(args.lmax), "--reps", str(args.reps), "--json"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def print_tables(exp: dict, exp_static: dict, dec: dict, cache_len: int, lmax: int) -> None:
    print("\n## Export at full size (random weights, 1 thread)\n")
    print("| graph | export [s] | file [MB] | weights [MB] | nodes |")
    print("|---|---|---|---|---|")
    for rows in (exp, exp_static):
        for k, v in rows.items():
            if isinstance(v, dict):
                print(f"| {k} | {v['export_s']} | {v['file_bytes'] / 1e6:.1f} | {v['weight_bytes'] / 1e6:.1f} "
                      f"| {v['nodes']} |")
    print(f"\nbuild model {exp['build_model_s']} s; peak RSS export process {exp['peak_rss_mib']} MiB "
          f"(static-cache export process {exp_static.get('peak_rss_mib', '-')} MiB)")
    bw = dec["bandwidth"]
    print(f"\n## Decode step on onnxruntime CPU (cached positions P = {cache_len}; static Lmax {lmax})\n")
    print(f"bandwidth: numpy 1 GiB copy {bw['numpy_copy_GBps']:.2f} GB/s; torch 2-thread read "
          f"{bw['torch_2thread_read_GBps']:.2f} GB/s\n")
    print("| graph / ORT threads | min [ms] | median [ms] | max [ms] | weight bytes | bound copy [ms] | x bound (copy) "
          "| bound 2-thr read [ms] | x bound (read) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, v in dec.items():
        if not isinstance(v, dict) or "median_ms" not in v:
            continue
        b1 = v["weight_bytes"] / bw["numpy_copy_GBps"] / 1e6
        b2 = v["weight_bytes"] / bw["torch_2thread_read_GBps"] / 1e6
        print(f"| {k} | {v['min_ms']:.1f} | {v['median_ms']:.1f} | {v['max_ms']:.1f} | {v['weight_bytes']:,} | "
              f"{b1:.1f} | {v['median_ms'] / b1:.2f} | {b2:.1f} | {v['median_ms'] / b2:.2f} |")
    print(f"\npeak RSS decode process {dec['peak_rss_mib']} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("phase", nargs="?", default="all", choices=["all", "export", "export-static", "decode", "parity"])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--cache", default="150,500", help="cached positions for the decode step (comma list)")
    ap.add_argument("--lmax", type=int, default=1024, help="static cache capacity")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--json", action="store_true", help="print one JSON line (used between phases)")
    args = ap.parse_args()
    if args.phase == "all":
        exp = run_phase(args, "export")
        exp_static = run_phase(args, "export-static")
        dec = run_phase(args, "decode")
        par = run_phase(args, "parity")
        print_tables(exp, exp_static, dec, args.cache, args.lmax)
        print("\n## Full-size llm_step goldens: onnxruntime vs PyTorch, max |diff|\n")
        print("| case | logits | hidden | present_key | present_value | top1 equal |")
        print("|---|---|---|---|---|---|")
        for k, v in par.items():
            if isinstance(v, dict):
                print(f"| {k} | {v['logits']:.2e} | {v['hidden']:.2e} | {v['present_key']:.2e} | "
                      f"{v['present_value']:.2e} | {v['top1_equal']} |")
        return
    if args.phase == "parity":
        rows = phase_parity(args.out)
    elif args.phase == "decode":
        rows = phase_decode(args.out, [int(c) for c in str(args.cache).split(",")], args.reps)
    else:
        rows = phase_export(args.out, args.phase == "export-static", args.lmax)
    print(json.dumps(rows) if args.json else json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
