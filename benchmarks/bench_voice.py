"""Full-size voice packs and streaming text-to-speech.

    python benchmarks/bench_voice.py [--work DIR] [--threads 2] [--tokens 250]

1. Makes (once) the full-size, upstream-format random-init checkpoint of ``full_size_build.py`` plus what a voice
   pack needs from a checkpoint: a full-size random-init ``speech_tokenizer_v3.onnx`` (``make_speech_tokenizer.py``)
   and BlankEN-shaped tokenizer files (the tiny preset's BPE, padded with unreachable entries to BlankEN's 151,643
   so that the 280 CosyVoice3 specials get their real ids 151644..151923). Builds an fp32 bundle from it (once).
2. Packs a 10 s reference (espeak-ng speech) with ``python -m packager voice --checkpoint``: wall time and peak RSS
   of the whole command (``/usr/bin/time -v``), goal <= 5 s and <= 3 GB.
3. Speaks a sentence of 250 speech tokens (10 s of audio) with a 4 s voice (100 prompt tokens, the prompt length of
   upstream_perf.md), non-streaming and streaming, in one process: time to first audio with ``--stream`` as a
   ratio to the non-streaming total (goal <= 0.25). Random weights never stop where a trained model would, so the
   generation length is fixed to ``--tokens`` (min_len = max_len, stop ids masked before it); everything else is the
   code path ``synth --voice --text --stream`` runs.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

TEXT_10S = ("Far beyond the quiet hills, the old lighthouse keeper watched the autumn storm roll in from the sea, "
            "counting the waves as they broke against the rocks and remembering every ship that had passed.")
REFERENCE = ("The morning train was late again, so Maria walked along the platform, reading the timetable and "
             "wondering whether the weather would clear before noon. Her brother had promised to meet her at the "
             "station with the car, but the roads were flooded after the storm.")


def blanken_like(folder: Path) -> None:
    """vocab.json + merges.txt + tokenizer_config.json shaped like CosyVoice-BlankEN (151,643 BPE entries)."""
    from packager.components.llm.tiny_tokenizer import write_tiny_tokenizer

    write_tiny_tokenizer(folder)
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    vocab.update({f"<unused_{i}>": i for i in range(len(vocab), 151643)})
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["added_tokens_decoder"] = {str(151643 + k): {"content": c, "special": True, "lstrip": False, "rstrip": False,
                                                     "normalized": False, "single_word": False}
                                   for k, c in enumerate(("<|endoftext|>", "<|im_start|>", "<|im_end|>"))}
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1), encoding="utf-8")


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """(wall s, peak RSS GB, stdout) of a command under GNU time."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) / 1024 ** 2
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", proc.stderr).group(1)
    secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.split(":"))))
    return secs, rss, proc.stdout


def reference_wav(path: Path, seconds: float) -> Path:
    import numpy as np
    import soundfile

    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), REFERENCE], check=True)
    x, sr = soundfile.read(raw, dtype="float32")
    n = int(seconds * sr)
    x = np.tile(x, n // x.size + 1)[:n]
    soundfile.write(path, x, sr)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/cosyvoice3-full"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=250)
    args = ap.parse_args()
    ckpt, bundle = args.work / "checkpoint", args.work / "bundle-fp32"
    py = sys.executable
    rows = []
    if not (ckpt / "hift.pt").is_file():
        from full_size_build import make_checkpoint

        t = time.perf_counter()
        make_checkpoint(ckpt)
        rows.append(("make checkpoint", f"{time.perf_counter() - t:.0f} s"))
    if not (ckpt / "speech_tokenizer_v3.onnx").is_file():
        from make_speech_tokenizer import write_full_size

        write_full_size(ckpt)
    if not (ckpt / "CosyVoice-BlankEN" / "vocab.json").is_file():
        blanken_like(ckpt / "CosyVoice-BlankEN")
    if not (bundle / "manifest.json").is_file():
        s, rss, _ = timed([py, "-m", "packager", "build", "--checkpoint", str(ckpt), "--out", str(bundle), "--force",
                           "--precision", "fp32"])
        rows.append(("build fp32 (with the tokenizer)", f"{s:.0f} s, peak RSS {rss:.2f} GB"))

    ref10 = reference_wav(args.work / "ref10.wav", 10.0)
    ref4 = reference_wav(args.work / "ref4.wav", 4.0)
    voice_cmd = [py, "-m", "packager", "voice", str(bundle), "--checkpoint", str(ckpt), "--force",
                 "--threads", str(args.threads)]
    timed(voice_cmd + ["--wav", str(ref10), "--transcript", REFERENCE, "--out", str(args.work / "warm.voice")])
    s, rss, out = timed(voice_cmd + ["--wav", str(ref10), "--transcript", REFERENCE, "--out",
                                     str(args.work / "ref10.voice")])
    rows.append(("voice pack, 10 s reference (whole command)", f"{s:.2f} s, peak RSS {rss:.2f} GB"))
    rows.append(("  its stages", out.strip().replace("\n", "; ")))
    timed(voice_cmd + ["--wav", str(ref4), "--transcript", REFERENCE[:60], "--out", str(args.work / "ref4.voice")])

    from packager.runtime import tts
    from packager.frontend import voicepack
    from packager.runtime.pipeline import Pipeline

    t = time.perf_counter()
    pipe = Pipeline.open(bundle, threads=args.threads)
    rows.append(("open the bundle (sessions)", f"{time.perf_counter() - t:.1f} s"))
    voice = voicepack.load(args.work / "ref4.voice")
    n_text = len(tts.frontend_cases(pipe.tokenizer(), voice, TEXT_10S)[0][1]["text"][0])
    llm = pipe.constants["llm"]
    llm["min_len_ratio"] = llm["max_len_ratio"] = (args.tokens + 0.5) / n_text  # exactly --tokens tokens
    common = dict(sampling="greedy", upstream_quirks=False, use_wetext=False)
    full = tts.speak(pipe, voice, TEXT_10S, stream=False, **common)
    live = tts.speak(pipe, voice, TEXT_10S, stream=True, **common)
    audio_s = full.speech.size / full.sample_rate
    rows.append((f"speak {args.tokens} tokens ({audio_s:.1f} s of audio), prompt {voice.arrays['prompt_speech_token'].shape[1]} tokens",
                 f"non-streaming {full.seconds:.2f} s (RTF {full.seconds / audio_s:.2f}); streaming total "
                 f"{live.seconds:.2f} s in {len(live.chunks)} chunks"))
    rows.append(("time to first audio (--stream) / non-streaming total",
                 f"{live.first_audio_s:.2f} s / {full.seconds:.2f} s = **{live.first_audio_s / full.seconds:.3f}**"))
    print("\n| figure | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
