"""CosyVoiceSpeaker's main-thread slices under mono, on a quiet machine (the unit tests assert
only the load-independent decision invariant, no unit started unless its expected cost fitted the slice's budget,
see tests/csharp/cs/SpeakerTests.cs ``AssertSlices``).

    python benchmarks/bench_speaker_slices.py [--runs 3]

Builds the tiny bundle, makes an espeak-ng voice, records Python's tts.speak graph calls (tests/csharp/voice_vectors.py),
runs the mono speaker tests (fake backend replaying those calls: 6 layers x 0.5 ms per graph call, budget 8 ms) and
prints per utterance the longest slice with and without a GC pause, the slices, the first audio, against the
promise: longest slice without a GC <= budget + 2 ms.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TRANSCRIPT = "The quick brown fox jumps over the lazy dog."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from tests.csharp.voice_vectors import write_voice_vectors
    from tests.csharp.test_core import run_mono_tests

    worst_ok = True
    with tempfile.TemporaryDirectory(prefix="bench-speaker-") as d:
        work = Path(d)
        bundle, voice, wav = work / "bundle", work / "fox.voice", work / "ref.wav"
        subprocess.run([sys.executable, "-m", "packager", "build", "--out", str(bundle), "--quiet"], check=True,
                       cwd=REPO, stdout=subprocess.DEVNULL)
        subprocess.run(["espeak-ng", "-v", "en", "-w", str(wav), TRANSCRIPT], check=True)
        subprocess.run([sys.executable, "-m", "packager", "voice", str(bundle), "--wav", str(wav), "--transcript",
                        TRANSCRIPT, "--out", str(voice)], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        write_voice_vectors(work / "vectors", bundle, voice)
        print("| run | utterance | longest slice ms (no GC) | longest slice ms (with GC) | slices with a GC | "
              "longest unit ms | slices | first audio ms | <= budget + 2 ms |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---|")
        for run in range(1, args.runs + 1):
            proc, results = run_mono_tests(work, work / "vectors", "COSY_VOICE", "Speaker")
            if proc.returncode != 0:
                print(proc.stdout[-3000:], proc.stderr[-2000:])
                return 1
            for (kind, name), r in sorted(results.items()):
                if kind != "speaker" or "max_slice_ms" not in r:
                    continue
                ok = float(r["max_slice_ms_without_gc"]) <= float(r["budget_ms"]) + 2.0
                worst_ok &= ok
                print(f"| {run} | {name} | {float(r['max_slice_ms_without_gc']):.2f} | {float(r['max_slice_ms']):.2f} "
                      f"| {r.get('slices_with_gc', '?')} | {float(r['max_unit_ms']):.2f} | {r.get('slices', '?')} "
                      f"| {float(r['first_audio_ms']):.0f} | {'yes' if ok else 'NO'} |")
    return 0 if worst_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
