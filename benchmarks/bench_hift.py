"""HiFT at the official size (random weights): export time, graph size, peak RSS, real-time factor, accuracy.

    python benchmarks/bench_hift.py [--seconds 10] [--threads 1]

Each phase runs in its own subprocess so that its peak RSS is its own: ``export`` (build + TorchScript export),
``torch`` (our PyTorch model on the audio) and ``ort`` (the exported graph on onnxruntime CPU, session creation
included in RSS, not in time). RTF = compute time / audio duration (lower is faster). The ``ort`` phase also reports
the graph-vs-PyTorch difference on the same input (max abs, SQNR). Prints one table.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _setup(seconds: float, threads: int):
    import numpy as np
    import torch

    from packager.build.component import GraphDef
    from packager.components.hift.component import HiFTGraph, calibrate_preset, graph_specs, random_upstream_state_dict
    from packager.components.hift.model import HiFTConfig, HiFTGenerator, load_upstream_state_dict
    from packager.components.hift.noise_table import NoiseStream, regenerate_sine_noise

    torch.set_num_threads(threads)
    cfg = HiFTConfig()  # the defaults are the official hyperparameters (upstream_ref full_size_config.yaml)
    stream = NoiseStream(flow_vocab_size=6561, flow_input_size=80, spk_embed_dim=192, flow_output_size=80,
                         f0_in_channels=80, f0_cond_channels=512, nb_harmonics=8, sampling_rate=24000)
    frames = int(round(seconds * cfg.sampling_rate / cfg.samples_per_frame))
    g = torch.Generator().manual_seed(0)
    mel = -5.0 + 2.0 * torch.randn(1, cfg.in_channels, frames, generator=g)
    model = HiFTGenerator(cfg).eval()
    load_upstream_state_dict(model, random_upstream_state_dict(model, g), "random")
    calibrate_preset(model, mel)
    noise = torch.from_numpy(regenerate_sine_noise(stream, frames * cfg.samples_per_frame))
    ins, outs = graph_specs(cfg)
    graph = GraphDef("hift", ins, outs, cases=lambda: [], tolerances={}, module=HiFTGraph(model).eval(),
                     example_inputs=(mel[:, :, :6], noise[:, :6 * cfg.samples_per_frame]))
    return np, torch, model, graph, mel, noise


def phase(name: str, seconds: float, threads: int, workdir: Path) -> dict:
    np, torch, model, graph, mel, noise = _setup(seconds, threads)
    res: dict = {}
    if name == "export":
        from packager.build.stages.export import export_graph

        t0 = time.perf_counter()
        onnx_model = export_graph(graph)
        res["time_s"] = time.perf_counter() - t0
        data = onnx_model.SerializeToString()
        (workdir / "hift.onnx").write_bytes(data)
        res["onnx_mb"] = len(data) / 1e6
        res["nodes"] = len(onnx_model.graph.node)
    elif name == "torch":
        with torch.no_grad():
            model(mel[:, :, :10], noise[:, :4800])  # warm-up
            t0 = time.perf_counter()
            wav = model(mel, noise)
            res["time_s"] = time.perf_counter() - t0
        np.save(workdir / "torch.npy", wav.numpy())
    elif name == "ort":
        from packager.onnx.session import run_onnx, session
        from packager.contract.tolerance import metric

        sess = session(str(workdir / "hift.onnx"), threads=threads)
        run_onnx(sess, {"mel": mel[:, :, :10].numpy(), "sine_noise": noise[:, :4800].numpy()})  # warm-up
        t0 = time.perf_counter()
        wav = run_onnx(sess, {"mel": mel.numpy(), "sine_noise": noise.numpy()})["waveform"]
        res["time_s"] = time.perf_counter() - t0
        ref = np.load(workdir / "torch.npy")
        res["max_abs_vs_torch"] = float(np.abs(wav - ref).max())
        res["sqnr_db_vs_torch"] = metric("sqnr_db", wav, ref)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--phase", choices=["export", "torch", "ort"], help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.seconds, args.threads, args.workdir)))
        return
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("export", "torch", "ort"):
            out = subprocess.run([sys.executable, __file__, "--phase", name, "--seconds", str(args.seconds),
                                  "--threads", str(args.threads), "--workdir", tmp],
                                 check=True, capture_output=True, text=True).stdout
            rows[name] = json.loads(out.strip().splitlines()[-1])
    e, t, o = rows["export"], rows["torch"], rows["ort"]
    print(f"HiFT official size, random weights, {args.seconds:g} s of audio, {args.threads} thread(s)")
    print(f"graph: {e['nodes']} nodes, {e['onnx_mb']:.1f} MB; graph vs PyTorch: max_abs {o['max_abs_vs_torch']:.2e}, "
          f"SQNR {o['sqnr_db_vs_torch']:.1f} dB")
    print(f"{'phase':<28}{'time s':>10}{'RTF':>10}{'peak RSS MB':>14}")
    print(f"{'export (build + trace)':<28}{e['time_s']:>10.2f}{'':>10}{e['peak_rss_mb']:>14.0f}")
    for label, r in (("PyTorch model (float32)", t), ("onnxruntime CPU graph", o)):
        print(f"{label:<28}{r['time_s']:>10.2f}{r['time_s'] / args.seconds:>10.3f}{r['peak_rss_mb']:>14.0f}")


if __name__ == "__main__":
    main()
