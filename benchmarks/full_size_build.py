"""Build a bundle from a full-size, upstream-format checkpoint folder with random weights, end to end.

    python benchmarks/full_size_build.py [--work DIR] [--components llm,flow,hift,campplus] [--precision fp32]

Writes an upstream-layout folder (``cosyvoice3.yaml`` = the official hyperparameters, ``CosyVoice-BlankEN/config.json``
= the official Qwen2 config, ``llm.pt``/``flow.pt``/``hift.pt`` = seeded random state dicts with upstream's keys and
shapes, ``campplus.onnx`` = the shared CAM++ fixture), then times ``python -m packager build --checkpoint`` on it in a
subprocess (wall time, peak RSS of the build) and ``verify``. Real weights cannot be downloaded here; this exercises
the real-checkpoint path at the real sizes.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REF = REPO.parent / "shared" / "upstream_ref"
sys.path.insert(0, str(REPO))


def make_checkpoint(d: Path, seed: int = 1986) -> None:
    import torch

    from packager.checkpoint import Source
    from packager.components import flow, hift, hift_model, llm, llm_model
    from packager.components.flow_model import FlowModel

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/cosyvoice3-full"))
    ap.add_argument("--components", default="campplus,llm,flow,hift")
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args()
    ckpt, out = args.work / "checkpoint", args.work / "bundle"
    t0 = time.perf_counter()
    if not (ckpt / "hift.pt").is_file():
        make_checkpoint(ckpt)
    made = time.perf_counter() - t0
    sizes = {p.name: p.stat().st_size for p in ckpt.iterdir() if p.is_file()}
    cmd = [sys.executable, "-m", "packager", "build", "--checkpoint", str(ckpt), "--out", str(out), "--force",
           "--components", args.components, "--precision", args.precision]
    t1 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO)
    build_s = time.perf_counter() - t1
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode:
        print(f"build failed with exit code {proc.returncode}")
        return proc.returncode
    t2 = time.perf_counter()
    ver = subprocess.run([sys.executable, "-m", "packager", "verify", str(out)], cwd=REPO, capture_output=True,
                         text=True)
    verify_s = time.perf_counter() - t2
    print(ver.stdout.strip().splitlines()[-1])
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print("\n| figure | value |\n|---|---|")
    print(f"| checkpoint files (MB) | " + ", ".join(f"{k} {v / 1e6:.1f}" for k, v in sorted(sizes.items())) + " |")
    print(f"| make checkpoint | {made:.0f} s |")
    print(f"| build ({args.components}, {args.precision}) | {build_s:.0f} s, peak RSS {peak:.0f} MiB |")
    print(f"| verify | {verify_s:.0f} s, exit {ver.returncode} |")
    print(f"| bundle | {total / 1e6:.1f} MB |")
    return ver.returncode


if __name__ == "__main__":
    raise SystemExit(main())
