"""Flow DiT at full size (dim 1024, depth 22, ~331 M parameters, random weights): export time, peak RSS and one
estimator call (batch 2, T frames) on onnxruntime vs our PyTorch model, in the same process.

    python benchmarks/bench_flow.py                 # full size, T = 500, 1 thread
    python benchmarks/bench_flow.py --size tiny     # the tiny preset (seconds)
    python benchmarks/bench_flow.py --frames 500 --threads 2

Peak RSS is the process high-water mark (``ru_maxrss``) after each phase, so each row includes the earlier ones.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packager.components.flow import (ESTIMATOR_IN, ESTIMATOR_OUT, TINY, EstimatorGraph, config_from_yaml,  # noqa: E402
                                      noise_table, randomize)
from packager.components.flow_model import FlowModel  # noqa: E402
from packager.component import GraphDef  # noqa: E402
from packager.config import load_hyperpyyaml  # noqa: E402
from packager.onnx_utils import run_onnx, session  # noqa: E402
from packager.stages.export import export_graph  # noqa: E402

FULL_CONFIG = Path(__file__).resolve().parents[2] / "shared" / "upstream_ref" / "full_size_config.yaml"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def inputs(frames: int) -> dict[str, np.ndarray]:
    """A realistic CFG pair: noise x, ones mask, random mu/cond/spks in row 0, zeros in row 1, t = 0.3."""
    g = torch.Generator().manual_seed(0)
    x = noise_table()[:, :, :frames]
    mu, cond = torch.randn(1, 80, frames, generator=g).numpy(), torch.randn(1, 80, frames, generator=g).numpy()
    spks = (0.1 * torch.randn(1, 80, generator=g)).numpy()
    z = lambda a: np.concatenate([a, np.zeros_like(a)])
    return {"x": np.concatenate([x, x]), "mask": np.ones((2, 1, frames), np.float32), "mu": z(mu),
            "t": np.full((2,), 0.3, np.float32), "spks": z(spks), "cond": z(cond)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["full", "tiny"], default="full")
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []

    t0 = time.perf_counter()
    cfg = TINY if a.size == "tiny" else config_from_yaml(load_hyperpyyaml(FULL_CONFIG), FULL_CONFIG.name)
    model = FlowModel(cfg).eval()
    randomize(model, 1234)
    n_params = sum(p.numel() for p in model.decoder.estimator.parameters())
    rows.append(("build random model", time.perf_counter() - t0, rss_mb(), f"DiT {n_params / 1e6:.1f} M params"))

    wrapper = EstimatorGraph(model, streaming=False)
    example = tuple(torch.from_numpy(v) for v in inputs(64).values())
    g = GraphDef("flow_estimator", ESTIMATOR_IN, ESTIMATOR_OUT, cases=list, tolerances={}, module=wrapper,
                 example_inputs=example)
    t0 = time.perf_counter()
    onnx_model = export_graph(g)
    size_mb = onnx_model.ByteSize() / 2**20
    rows.append(("export (TorchScript, opset 15)", time.perf_counter() - t0, rss_mb(), f"{size_mb:.0f} MiB ONNX"))

    t0 = time.perf_counter()
    sess = session(onnx_model.SerializeToString(), threads=a.threads)
    del onnx_model
    rows.append(("onnxruntime session", time.perf_counter() - t0, rss_mb(), ""))

    feed = inputs(a.frames)
    run_onnx(sess, inputs(16))  # warm-up (allocations), not timed
    t0 = time.perf_counter()
    ort_out = run_onnx(sess, feed)["estimator_out"]
    rows.append((f"estimator call, onnxruntime, T={a.frames}", time.perf_counter() - t0, rss_mb(), ""))

    with torch.no_grad():
        wrapper(*(torch.from_numpy(v) for v in inputs(16).values()))
        t0 = time.perf_counter()
        torch_out = wrapper(*(torch.from_numpy(v) for v in feed.values())).numpy()
    diff = np.abs(ort_out - torch_out)
    cos = float((ort_out * torch_out).sum() / np.linalg.norm(ort_out) / np.linalg.norm(torch_out))
    rows.append((f"estimator call, PyTorch, T={a.frames}", time.perf_counter() - t0, rss_mb(),
                 f"ORT vs torch max abs {diff.max():.2e}, mean {diff.mean():.1e}, |out| max "
                 f"{np.abs(torch_out).max():.2f}, cosine {cos:.8f}"))

    print(f"flow estimator benchmark: size={a.size}, frames={a.frames}, threads={a.threads}, "
          f"torch {torch.__version__}")
    print(f"{'phase':<40} {'seconds':>9} {'peak RSS MiB':>13}  note")
    for name, sec, rss, note in rows:
        print(f"{name:<40} {sec:>9.2f} {rss:>13.0f}  {note}")


if __name__ == "__main__":
    main()
