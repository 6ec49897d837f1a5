"""Build a bundle from a full-size, upstream-format checkpoint folder with random weights, end to end.

    python benchmarks/full_size_build.py [--work DIR] [--precisions recommended,fp32] [--baseline REV] [--repeat N]
                                         [--components llm,flow,hift,campplus]

Writes an upstream-layout folder (``cosyvoice3.yaml`` = the official hyperparameters, ``CosyVoice-BlankEN/config.json``
= the official Qwen2 config, ``llm.pt``/``flow.pt``/``hift.pt`` = seeded random state dicts with upstream's keys and
shapes, ``campplus.onnx`` = the CAM++ fixture of ``tests/data/upstream_ref/campplus``), then runs
``python -m packager build --checkpoint`` on it once per precision, one build at a time, and reports for each:

* wall time and **peak RSS of the whole process tree** (the build and every process it starts; sampled from /proc
  every 0.2 s, plus the kernel's own per-process peak of the build, whichever is higher);
* per-stage times: each stage/graph line the build prints carries its elapsed time;
* how many times each file under ``Models/`` was opened for writing (an audit hook in the build process counts
  every ``open`` for writing): one pass per graph means 1;
* the longest time the build's output stayed silent (progress must change at least every 10 s);
* ``verify`` of the result.

``--baseline REV`` also builds with the code of git revision REV (a temporary ``git worktree``), in the same run,
so before and after are measured on the same machine state. Real weights cannot be downloaded here; this exercises
the real-checkpoint path at the real sizes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REF = REPO / "tests" / "data" / "upstream_ref"  # in-repo copy of the upstream reference data (its README.md)
sys.path.insert(0, str(REPO))

# Runs the packager CLI with an audit hook counting opens for writing under Models/ (printed at exit as JSON).
_AUDITED_MAIN = r"""
import atexit, collections, json, runpy, sys
writes = collections.Counter()
def hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes)) and args[1] is not None:
        path, mode = str(args[0]), args[1]
        if isinstance(mode, str) and any(c in mode for c in "wax+") and "/Models/" in path:
            writes[path.split("/Models/", 1)[1]] += 1
        elif isinstance(mode, int) and mode & 0o3 and "/Models/" in path:
            writes[path.split("/Models/", 1)[1]] += 1
sys.addaudithook(hook)
atexit.register(lambda: print("MODELS_WRITES " + json.dumps(dict(writes)), file=sys.stderr, flush=True))
sys.argv = ["packager"] + sys.argv[1:]
runpy.run_module("packager", run_name="__main__", alter_sys=True)
"""


def make_checkpoint(d: Path, seed: int = 1986) -> None:
    import torch

    from packager.build.checkpoint import Source
    from packager.components.flow import component as flow
    from packager.components.hift import component as hift, model as hift_model
    from packager.components.llm import component as llm, model as llm_model
    from packager.components.flow.model import FlowModel

    torch.set_num_threads(1)
    (d / "CosyVoice-BlankEN").mkdir(parents=True, exist_ok=True)
    shutil.copy(REF / "full_size_config.yaml", d / "cosyvoice3.yaml")
    qwen = json.loads((REF / "full_size_keys.json").read_text())["qwen2_config"]
    (d / "CosyVoice-BlankEN" / "config.json").write_text(json.dumps(qwen, indent=1))
    shutil.copy(REF / "campplus" / "campplus.onnx", d / "campplus.onnx")
    src = Source(checkpoint=d)
    cfg, _ = llm.read_config(src)
    torch.save(llm_model.random_state_dict(cfg, seed=seed, std=0.02), d / "llm.pt")
    fm = FlowModel(flow.config_from_yaml(src.config(), "cosyvoice3.yaml"))
    flow.randomize(fm, seed)
    torch.save(fm.state_dict(), d / "flow.pt")
    del fm
    hcfg = hift_model.HiFTConfig.from_config(src.config(), "cosyvoice3.yaml")
    hm = hift_model.HiFTGenerator(hcfg)
    torch.save(hift.random_upstream_state_dict(hm, torch.Generator().manual_seed(seed)), d / "hift.pt")


def _tree_rss(root: int) -> int:
    """Sum of VmRSS (bytes) of ``root`` and all its descendants, from /proc."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return total


def timed_build(cwd: Path, args: list[str], label: str, extra: tuple[str, ...] = ("--progress", "plain")) -> dict:
    """Run one build (``extra``: options only the current code knows); wall time, peak tree RSS, output lines with
    their times, Models/ writes."""
    return _run_measured(cwd, [sys.executable, "-c", _AUDITED_MAIN, "build", *args, *extra], label)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/cosyvoice3-full"))
    ap.add_argument("--components", default="campplus,llm,flow,hift")
    ap.add_argument("--precisions", default="recommended,fp32")
    ap.add_argument("--baseline", metavar="REV", help="also build with the code of this git revision")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="N rounds of every build, the order of the precisions alternating between rounds; the "
                         "ratio is reported per round and as the median (this 2-core machine's noise is +-10%%)")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat: expected a whole number of rounds, 1 or more")
    ckpt = args.work / "checkpoint"
    t0 = time.perf_counter()
    if not (ckpt / "hift.pt").is_file():
        make_checkpoint(ckpt)
    made = time.perf_counter() - t0
    sizes = {p.name: p.stat().st_size for p in ckpt.iterdir() if p.is_file()}

    trees = [("after", REPO)]
    if args.baseline:
        base = args.work / "baseline-tree"
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=REPO, capture_output=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline], cwd=REPO, check=True,
                       capture_output=True)
        trees.insert(0, (f"before ({args.baseline})", base))
    results = []
    try:
        precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
        rounds = [(k, precisions if k % 2 == 0 else precisions[::-1]) for k in range(args.repeat)]
        for k, precision, (name, tree) in [(k, p, t) for k, ps in rounds for p in ps for t in trees]:
            out = args.work / f"bundle-{precision}-{'before' if tree != REPO else 'after'}"
            build_args = ["--checkpoint", str(ckpt), "--out", str(out), "--force", "--components",
                          args.components, "--precision", precision]
            # the baseline may predate --progress (its output is plain lines anyway)
            r = timed_build(tree, build_args, f"{name} {precision}" + (f" #{k + 1}" if args.repeat > 1 else ""),
                            () if tree != REPO else ("--progress", "plain"))
            r["precision"], r["tree"], r["out"], r["round"] = precision, name, out, k
            if r["exit"] == 0 and not args.no_verify and tree == REPO and k == 0:
                v = subprocess.run([sys.executable, "-m", "packager", "verify", str(out)], cwd=REPO,
                                   capture_output=True, text=True)
                r["verify"] = (v.stdout.strip().splitlines() or ["?"])[-1] + f" (exit {v.returncode})"
            results.append(r)
    finally:
        if args.baseline:
            subprocess.run(["git", "worktree", "remove", "--force", str(args.work / "baseline-tree")], cwd=REPO,
                           capture_output=True)

    print("\n| figure | value |\n|---|---|")
    print("| checkpoint files (MB) | " + ", ".join(f"{k} {v / 1e6:.1f}" for k, v in sorted(sizes.items())) + " |")
    print(f"| make checkpoint | {made:.0f} s |")
    for r in results:
        w = r["writes"]
        once = (f"{sum(1 for v in w.values() if v == 1)}/{len(w)} files written once (max {max(w.values())})"
                if w else "n/a")
        rnd = f" (round {r['round'] + 1})" if args.repeat > 1 else ""
        print(f"| build {r['precision']}, {r['tree']}{rnd} | {r['wall_s']:.0f} s, peak RSS (process tree) "
              f"{r['peak_tree_rss'] / 2**30:.2f} GiB, exit {r['exit']}; Models/ writes: {once}; longest silence "
              f"{r['longest_silence_s']:.0f} s; {r.get('verify', '')} |")
        print(f"|   peak RSS at | {r['peak_at'][:160]} |")
    by = {(r["tree"], r["precision"], r["round"]): r for r in results}
    for name, _ in trees:
        ratios = [by[(name, "recommended", k)]["wall_s"] / by[(name, "fp32", k)]["wall_s"] for k in range(args.repeat)
                  if (name, "recommended", k) in by and (name, "fp32", k) in by]
        if len(ratios) == 1:
            print(f"| {name}: recommended / fp32 wall time | {ratios[0]:.2f} |")
        elif ratios:
            med = {p: statistics.median(r["wall_s"] for r in results if r["tree"] == name and r["precision"] == p)
                   for p in ("recommended", "fp32")}
            print(f"| {name}: recommended / fp32 wall time, per round | {', '.join(f'{x:.2f}' for x in ratios)}; "
                  f"median {statistics.median(ratios):.2f} (median walls {med['recommended']:.0f} s / "
                  f"{med['fp32']:.0f} s) |")
    for r in results:
        if r["tree"] == "after" and r["round"] == 0:
            print(f"\nstage lines, {r['precision']}:")
            for line in r["stage_lines"]:
                print("    " + line)
    return 0 if all(r["exit"] == 0 for r in results) else 1


def _run_measured(cwd: Path, cmd: list[str], label: str) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    peak, stop = [0, 0.0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            rss = _tree_rss(proc.pid)
            if rss > peak[0]:
                peak[0], peak[1] = rss, time.perf_counter() - t0

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    lines: list[tuple[float, str]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - t0, line.rstrip("\n")))
        print(f"  {label} | {line.rstrip()}", flush=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    writes = {}
    for _, line in lines:
        if line.startswith("MODELS_WRITES "):
            writes = json.loads(line.split(" ", 1)[1])
    gaps = [b[0] - a[0] for a, b in zip([(0.0, "")] + lines, lines + [(wall, "")])]
    before_peak = [l for t, l in lines if t <= peak[1]]
    return {"label": label, "exit": os.waitstatus_to_exitcode(status), "wall_s": wall,
            "peak_at": f"{peak[1]:.0f} s, after: {before_peak[-1].strip() if before_peak else '(start)'}",
            "peak_tree_rss": max(peak[0], usage.ru_maxrss * 1024), "writes": writes,
            "longest_silence_s": max(gaps) if gaps else wall,
            "stage_lines": [l for _, l in lines if not l.startswith("MODELS_WRITES ")]}


if __name__ == "__main__":
    raise SystemExit(main())
