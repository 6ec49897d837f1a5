"""End-to-end CPU speed of a bundle against upstream's measured baseline (shared/design/upstream_perf.md).

    python benchmarks/bench_e2e.py BUNDLE [--threads 2] [--tokens 250] [--repeat 1]

Same shapes as upstream's end-to-end estimate: a 100-position LLM prompt (1 SOS + 48 text ids + 1 TASK_ID + 50 prompt
speech tokens), exactly ``--tokens`` greedy speech tokens (the stop range is masked until then), the flow on those
tokens after a 50-token prompt (10 Euler steps, CFG batch 2), HiFT on the resulting mel. Everything runs through the
bundle's graphs on onnxruntime and our host loops (``packager.runtime.pipeline``), i.e. what a runtime does. Prints one row per
stage and the real-time factor next to upstream's (LLM 39.69 s, flow 35.98 s, HiFT 2.18 s, RTF 7.79 for 10 s).
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from packager.runtime import euler_cfg, llm_generate  # noqa: E402
from packager.runtime.pipeline import Pipeline, _hift  # noqa: E402

UPSTREAM = {"llm": 39.69, "flow": 35.98, "hift": 2.18}  # seconds for 250 tokens / 10 s of speech, 2 threads


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=250)
    args = ap.parse_args()
    t0 = time.perf_counter()
    p = Pipeline.open(args.bundle, threads=args.threads)
    load_s = time.perf_counter() - t0
    llm, flow = p.constants["llm"], p.constants["flow"]
    rng = np.random.default_rng(0)
    S = int(llm["speech_token_size"])
    text = rng.integers(0, int(llm["text_vocab_size"]), 25)
    prompt_text = rng.integers(0, int(llm["text_vocab_size"]), 23)
    prompt_tokens = rng.integers(0, S, 50)
    rows = {}

    t = time.perf_counter()
    gen = llm_generate.generate(p.runners, llm, text, prompt_text, prompt_tokens, upstream_quirks=False,
                                min_len=args.tokens, max_len=args.tokens)
    rows["llm"] = time.perf_counter() - t
    tokens = np.asarray(gen.tokens, np.int32).reshape(1, -1)

    ratio = int(flow["token_mel_ratio"])
    feat = (-5.0 + 2.0 * rng.standard_normal((1, 50 * ratio, int(flow["mel_bins"])))).astype(np.float32)
    emb = rng.standard_normal((1, int(flow["spk_embed_dim"]))).astype(np.float32)
    t = time.perf_counter()
    mel = euler_cfg.synthesize(p.runners, flow, p.data[flow["noise"]], tokens, prompt_tokens.astype(np.int32)[None],
                               feat, emb)
    rows["flow"] = time.perf_counter() - t

    t = time.perf_counter()
    speech = _hift(p, mel)
    rows["hift"] = time.perf_counter() - t

    seconds = speech.shape[1] / int(p.constants["hift"]["sample_rate"])
    total = sum(rows.values())
    print(f"bundle {args.bundle}, onnxruntime {args.threads} thread(s); {tokens.shape[1]} tokens -> "
          f"mel {list(mel.shape)} -> {seconds:.2f} s of speech; sessions opened in {load_s:.1f} s; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB\n")
    if args.tokens != 250 or int(llm["hidden_size"]) != 896:
        print("(not the official size or not 250 tokens: the upstream column is not comparable)\n")
    print("| stage | this bundle [s] | upstream [s] | speed-up |\n|---|---:|---:|---:|")
    for k, v in rows.items():
        print(f"| {k} | {v:.2f} | {UPSTREAM[k]:.2f} | {UPSTREAM[k] / v:.2f}x |")
    up = sum(UPSTREAM.values())
    print(f"| total | {total:.2f} | {up:.2f} | {up / total:.2f}x |")
    print(f"| RTF | {total / seconds:.2f} | {up / 10.0:.2f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
