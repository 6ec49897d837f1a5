"""``python -m packager synth``: the command line over ``packager.synth`` (frontend arrays) and ``packager.tts``
(a voice pack and text). Kept apart from ``packager.synth`` so that the synthesis core never imports ``tts``, which
is built on it (no import cycle).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from packager import bundle as B
from packager import tts, voicepack
from packager.errors import PackagerError
from packager.stages.golden import read_npz
from packager.synth import CASE_KEYS, Pipeline, synthesize, validate_case


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Synthesize speech with a bundle: text frontend, LLM generation, flow Euler/CFG and HiFT on "
                     "onnxruntime, exactly as the Unity runtime runs them. Either --voice + --text (a voice pack "
                     "from `packager voice` and plain text) or --inputs (upstream's frontend arrays).")
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--voice", type=Path, metavar="NAME.voice", help="a voice pack made by `packager voice`")
    src.add_argument("--inputs", type=Path, metavar="CASE.npz",
                     help="upstream frontend arrays: " + ", ".join(CASE_KEYS))
    p.add_argument("--text", help="the text to speak (with --voice)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--instruct", metavar="INSTRUCTION",
                      help="instruct mode: e.g. 'Please speak as fast as you can.' (becomes the prompt text)")
    mode.add_argument("--cross-lingual", action="store_true",
                      help="cross-lingual mode: no prompt text, no LLM prompt speech tokens")
    p.add_argument("--output", type=Path, metavar="OUT.npz", help="write speech_tokens, (mel,) speech")
    p.add_argument("--wav", type=Path, metavar="OUT.wav", help="write a 16-bit PCM WAV (24 kHz)")
    p.add_argument("--sampling", choices=["greedy", "ras"], default="greedy")
    p.add_argument("--seed", type=int, default=0, help="seed of the RAS sampler (numpy PCG64); piece k uses seed + k")
    p.add_argument("--stream", action="store_true",
                   help="upstream's streaming schedule: audio written chunk by chunk as it is produced; prints the "
                        "time to first audio")
    p.add_argument("--no-wetext", action="store_true", help="skip wetext normalization even when it is installed")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads per graph (default 1)")
    p.add_argument("--fix-min-len-quirk", action="store_true",
                   help="mask the whole stop range before min_len (upstream masks only SOS: quirk L3)")


def run(args: argparse.Namespace) -> int:
    if args.output is None and args.wav is None:
        raise PackagerError("nothing to write", key="--wav", expected="--wav OUT.wav and/or --output OUT.npz")
    if args.voice is not None:
        return _run_voice(args)
    if args.text is not None or args.instruct is not None or args.cross_lingual:
        raise PackagerError("--text, --instruct and --cross-lingual need --voice", key="--inputs",
                            expected="--voice NAME.voice --text '...'")
    case = read_npz(args.inputs)
    validate_case(case, str(args.inputs))
    pipe = Pipeline.open(args.bundle, threads=args.threads)
    sr = int(pipe.constants["hift"]["sample_rate"])
    t0 = time.perf_counter()
    with _AudioSink(args.wav, sr) as sink:
        out = synthesize(pipe, case, sampling=args.sampling, seed=args.seed, stream=args.stream,
                         upstream_quirks=not args.fix_min_len_quirk, on_audio=sink.write)
        dt = time.perf_counter() - t0
        if args.output:
            _save_npz(args.output, out)
    seconds = out["speech"].shape[1] / sr
    print(f"{out['speech_tokens'].shape[1]} speech tokens, mel {list(out['mel'].shape)}, {seconds:.2f} s of audio "
          f"in {dt:.2f} s (RTF {dt / max(seconds, 1e-9):.2f})" + _first_audio(sink, dt)
          + " -> " + ", ".join(str(x) for x in (args.output, args.wav) if x))
    return 0


def _run_voice(args: argparse.Namespace) -> int:
    if args.text is None:
        raise PackagerError("--voice needs the text to speak", key="--text", expected="--text '...'")
    manifest = B.open_manifest(args.bundle)
    voice = voicepack.load(args.voice)
    voice.check_model(manifest, args.bundle)
    mode = "instruct" if args.instruct is not None else "cross_lingual" if args.cross_lingual else "zero_shot"
    pipe = Pipeline.open(args.bundle, threads=args.threads, manifest=manifest)
    tts.text_pieces(pipe.tokenizer(), args.text, use_wetext=False if args.no_wetext else None)  # errors first
    with _AudioSink(args.wav, int(pipe.constants["hift"]["sample_rate"])) as sink:
        res = tts.speak(pipe, voice, args.text, mode=mode, instruct=args.instruct, sampling=args.sampling,
                        seed=args.seed, stream=args.stream, upstream_quirks=not args.fix_min_len_quirk,
                        on_audio=sink.write, use_wetext=False if args.no_wetext else None)
        if args.output:
            _save_npz(args.output, {"speech": res.speech.reshape(1, -1),
                                    "speech_tokens": np.concatenate(res.speech_tokens, axis=1),
                                    "piece_token_counts": np.asarray([t.shape[1] for t in res.speech_tokens],
                                                                     np.int32)})
    seconds = res.speech.size / res.sample_rate
    print(f"{voice.name!r} ({mode}): {len(res.pieces)} text piece(s), "
          f"{sum(t.shape[1] for t in res.speech_tokens)} speech tokens, {seconds:.2f} s of audio in "
          f"{res.seconds:.2f} s (RTF {res.seconds / max(seconds, 1e-9):.2f})"
          + (f"; first audio after {res.first_audio_s:.2f} s ({res.first_audio_s / res.seconds:.2f} of the total, "
             f"{len(res.chunks)} chunks)" if args.stream and res.first_audio_s is not None else "")
          + " -> " + ", ".join(str(x) for x in (args.output, args.wav) if x))
    return 0


def _first_audio(sink: "_AudioSink", total: float) -> str:
    if sink.first_s is None or sink.chunks < 2:
        return ""
    return f"; first audio after {sink.first_s:.2f} s ({sink.first_s / total:.2f} of the total, {sink.chunks} chunks)"


def _save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


class _AudioSink:
    """Writes audio chunk by chunk into a temporary file that becomes ``path`` only when synthesis succeeded."""

    def __init__(self, path: Path | None, sample_rate: int) -> None:
        self.path, self.sample_rate = path, sample_rate
        self.file = None
        self.t0 = time.perf_counter()
        self.first_s: float | None = None
        self.chunks = 0

    def __enter__(self) -> "_AudioSink":
        if self.path is not None:
            import soundfile

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = self.path.with_name(f".{self.path.name}.tmp")
            self.file = soundfile.SoundFile(str(self.tmp), "w", samplerate=self.sample_rate, channels=1,
                                            subtype="PCM_16", format="WAV")
        self.t0 = time.perf_counter()
        return self

    def write(self, samples: np.ndarray) -> None:
        if self.first_s is None:
            self.first_s = time.perf_counter() - self.t0
        self.chunks += 1
        if self.file is not None:
            self.file.write(np.clip(np.asarray(samples, np.float32).reshape(-1), -1.0, 1.0))
            self.file.flush()

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.file is None:
            return
        self.file.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
