"""Write a full-size, random-init ``speech_tokenizer_v3.onnx`` (same architecture and I/O as CosyVoice3's) into a
folder, for full-size benchmarks of the zero-shot frontend.

    python benchmarks/make_speech_tokenizer.py OUT_DIR [--seed N] [--bench] [--threads 2]

``write_full_size(out_dir, seed)`` is the importable form (e.g. for the random-init upstream-format checkpoint folder
that benchmarks/full_size_build.py creates). ``--bench`` then opens the file with onnxruntime and times the session
creation and the tokenization of 10 s of features (T = 1000 frames).
"""
from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_SEED = 1986  # benchmarks/full_size_build.py's checkpoint seed


def write_full_size(out_dir: Path, seed: int = DEFAULT_SEED) -> Path:
    """``out_dir / speech_tokenizer_v3.onnx``: FULL config (~242 M parameters, ~968 MB), seeded random weights.
    Same seed -> same bytes. Peak memory about two copies of the weights (~2 GB)."""
    import torch

    from packager.frontend import speech_tokenizer_model as stm
    from packager.frontend.speech_tokenizer import SPEECH_TOKENIZER_FILE

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = stm.random_model(stm.FULL, seed)
        data = stm.export_onnx(model)
        del model
    finally:
        torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SPEECH_TOKENIZER_FILE
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def bench(path: Path, threads: int, frames: int = 1000, repeats: int = 3) -> dict[str, float]:
    import numpy as np

    from packager.frontend.speech_tokenizer import SpeechTokenizer

    t0 = time.perf_counter()
    tok = SpeechTokenizer.from_file(path, threads=threads)
    created = time.perf_counter() - t0
    mel = np.random.default_rng(0).uniform(-1.0, 1.0, (tok.n_mels, frames)).astype(np.float32)
    times, ids = [], None
    for _ in range(repeats):
        t1 = time.perf_counter()
        ids = tok.tokens(mel)
        times.append(time.perf_counter() - t1)
    return {"session_s": created, "first_run_s": times[0], "best_run_s": min(times), "tokens": int(ids.size),
            "distinct_ids": int(len(set(ids.tolist())))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--bench", action="store_true", help="time onnxruntime on the written file")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads for --bench")
    args = ap.parse_args()
    t0 = time.perf_counter()
    path = write_full_size(args.out_dir, args.seed)
    made = time.perf_counter() - t0
    gc.collect()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"wrote {path}: {path.stat().st_size:,} bytes in {made:.1f} s (peak RSS so far {peak:.0f} MiB)")
    if args.bench:
        r = bench(path, args.threads)
        print(f"onnxruntime, {args.threads} threads: session {r['session_s']:.1f} s; T=1000 frames -> {r['tokens']} "
              f"tokens ({r['distinct_ids']} distinct ids): first run {r['first_run_s']:.2f} s, "
              f"best of 3 {r['best_run_s']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
