"""Flow DiT at full size (dim 1024, depth 22, ~331 M parameters, random weights): export time, peak RSS and
estimator calls (batch 2, T frames) of the one ``flow_estimator`` graph in both attention modes (chunk_frames = T:
full attention; chunk_frames = static chunk: streaming) on onnxruntime, against a full-attention-only baseline graph
(the pre-``chunk_frames`` design: key mask only, [B, 1, 1, T] bias) and our PyTorch model, in the same process.

    python benchmarks/bench_flow.py                 # full size, T = 500, 1 thread
    python benchmarks/bench_flow.py --size tiny     # the tiny preset (seconds)
    python benchmarks/bench_flow.py --frames 500 --threads 2 --rounds 3 --no-baseline

Peak RSS is the process high-water mark (``ru_maxrss``) after each phase, so each row includes the earlier ones.
Call times are the minimum over ``--rounds`` interleaved rounds (baseline, full, streaming, ...), as wall and as
process CPU seconds; on a shared machine compare the CPU column (the wall time includes waiting for the core).
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

from packager.components.flow.component import (ESTIMATOR_IN, ESTIMATOR_OUT, TINY, EstimatorGraph,  # noqa: E402
                                      config_from_yaml, noise_table, randomize)
from packager.components.flow.model import FlowModel  # noqa: E402
from packager.build.component import GraphDef, TensorSpec  # noqa: E402
from packager.build.config import load_hyperpyyaml  # noqa: E402
from packager.onnx.session import run_onnx, session  # noqa: E402
from packager.build.stages.export import export_graph  # noqa: E402

FULL_CONFIG = Path(__file__).resolve().parents[1] / "tests" / "data" / "upstream_ref" / "full_size_config.yaml"


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


class FullAttentionGraph(torch.nn.Module):
    """The baseline: the DiT with the key mask only (no chunk input), i.e. the old non-streaming graph."""

    def __init__(self, model: FlowModel):
        super().__init__()
        self.dit = model.decoder.estimator

    def forward(self, x, mask, mu, t, spks, cond):
        return self.dit(x, mask, mu, t, spks, cond, chunk_frames=None)


class Clock:
    """Wall and process CPU seconds of a block. With 1 thread the CPU time is the compute the call needed, which
    stays meaningful on a shared machine where the wall time also counts the time other jobs held the core."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def export(name: str, module, specs: list[TensorSpec], rows: list):
    example = tuple(torch.from_numpy(v) for v in with_chunk(inputs(64), 64).values())[:len(specs)]
    g = GraphDef(name, specs, ESTIMATOR_OUT, cases=list, tolerances={}, module=module, example_inputs=example)
    with Clock() as c:
        onnx_model = export_graph(g)
    size = onnx_model.ByteSize()
    rows.append((f"export {name} (TorchScript, opset 15)", c.wall, c.cpu, rss_mb(),
                 f"{size / 2**20:.0f} MiB ONNX ({size} bytes)"))
    return onnx_model


def with_chunk(feed: dict[str, np.ndarray], chunk: int) -> dict[str, np.ndarray]:
    return {**feed, "chunk_frames": np.array([chunk], np.float32)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["full", "tiny"], default="full")
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-baseline", action="store_true", help="skip the full-attention-only baseline graph")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []

    with Clock() as clk:
        cfg = TINY if a.size == "tiny" else config_from_yaml(load_hyperpyyaml(FULL_CONFIG), FULL_CONFIG.name)
        model = FlowModel(cfg).eval()
        randomize(model, 1234)
    n_params = sum(p.numel() for p in model.decoder.estimator.parameters())
    rows.append(("build random model", clk.wall, clk.cpu, rss_mb(), f"DiT {n_params / 1e6:.1f} M params"))

    sessions = {}
    for key, module, specs in [("baseline", FullAttentionGraph(model), ESTIMATOR_IN[:-1]),
                               ("one", EstimatorGraph(model), ESTIMATOR_IN)]:
        if key == "baseline" and a.no_baseline:
            continue
        name = "flow_estimator" if key == "one" else "baseline_full_attention"
        onnx_model = export(name, module, specs, rows)
        with Clock() as clk:
            sessions[key] = session(onnx_model.SerializeToString(), threads=a.threads)
        del onnx_model
        rows.append((f"onnxruntime session {name}", clk.wall, clk.cpu, rss_mb(), ""))

    feed, c = inputs(a.frames), cfg.static_chunk_size
    base_label, full_label = "baseline graph (full attention)", f"flow_estimator, chunk_frames={a.frames} (full)"
    calls = {base_label: ("baseline", feed), full_label: ("one", with_chunk(feed, a.frames)),
             f"flow_estimator, chunk_frames={c} (streaming)": ("one", with_chunk(feed, c))}
    calls = {k: v for k, v in calls.items() if v[0] in sessions}
    for key, sess in sessions.items():  # warm-up (allocations), not timed
        run_onnx(sess, with_chunk(inputs(16), 16) if key == "one" else inputs(16))
    best: dict[str, tuple[float, float]] = {}  # label -> (min wall, min CPU) over the interleaved rounds
    outs: dict[str, np.ndarray] = {}
    for _ in range(a.rounds):
        for label, (key, f) in calls.items():
            with Clock() as clk:
                outs[label] = run_onnx(sessions[key], f)["estimator_out"]
            wall, cpu = best.get(label, (clk.wall, clk.cpu))
            best[label] = (min(wall, clk.wall), min(cpu, clk.cpu))
    for label, (wall, cpu) in best.items():
        note = "" if base_label not in best else (f"{100 * (wall / best[base_label][0] - 1):+.1f}% wall, "
                                                  f"{100 * (cpu / best[base_label][1] - 1):+.1f}% CPU vs baseline")
        if label == base_label:
            note = f"max abs vs flow_estimator (full) {np.abs(outs[label] - outs[full_label]).max():.1e}"
        rows.append((f"ORT T={a.frames}: {label}", wall, cpu, rss_mb(), note))

    ort_out, wrapper = outs[full_label], EstimatorGraph(model)
    with torch.no_grad():
        wrapper(*(torch.from_numpy(v) for v in with_chunk(inputs(16), 16).values()))
        with Clock() as clk:
            torch_out = wrapper(*(torch.from_numpy(v) for v in with_chunk(feed, a.frames).values())).numpy()
    diff = np.abs(ort_out - torch_out)
    cos = float((ort_out * torch_out).sum() / np.linalg.norm(ort_out) / np.linalg.norm(torch_out))
    rows.append((f"PyTorch T={a.frames}: chunk_frames={a.frames} (full)", clk.wall, clk.cpu, rss_mb(),
                 f"ORT vs torch max abs {diff.max():.2e}, mean {diff.mean():.1e}, |out| max "
                 f"{np.abs(torch_out).max():.2f}, cosine {cos:.8f}"))

    print(f"flow estimator benchmark: size={a.size}, frames={a.frames}, threads={a.threads}, rounds={a.rounds}, "
          f"torch {torch.__version__}")
    print(f"{'phase':<58} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13}  note")
    for name, wall, cpu, rss, note in rows:
        print(f"{name:<58} {wall:>8.2f} {cpu:>8.2f} {rss:>13.0f}  {note}")


if __name__ == "__main__":
    main()
