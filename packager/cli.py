"""Command line: ``python -m packager {build,verify,inspect,run,check,unity-install,voice,synth,report}``.

This module only parses and dispatches: building the parser imports no verb module and none of torch, onnx,
onnxruntime or numpy, so ``--help`` answers at once (tests/verbs/test_cli.py checks the imports, ``benchmarks/
bench_cli_help.py`` the time). Each verb's module is imported when that verb runs.

User mistakes raise ``PackagerError``: one message on stderr, exit code 2, no traceback. A verb whose optional
dependency is not installed says which extra to install (``packager.ui.extras``).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from packager import __version__
from packager.build import DEFAULT_OUT, registry
from packager.contract import targets
from packager.build.checkpoint import DEFAULT_SEED, PRESETS
from packager.contract.errors import PackagerError
from packager.build.precision import DEFAULT_POLICY

SYNTH_LENGTHS = ("auto", "llm", "min_len")  # synth --length: auto, then packager.runtime.tts.LENGTHS (a test keeps them equal)
CHECKPOINT_HELP = ("an upstream Fun-CosyVoice3-0.5B checkpoint folder (cosyvoice3.yaml, llm.pt, flow.pt, hift.pt, "
                   "campplus.onnx, CosyVoice-BlankEN/), or a Hugging Face model id such as "
                   "FunAudioLLM/Fun-CosyVoice3-0.5B-2512: only the files needed are downloaded into the Hugging Face "
                   "cache (HF_HOME / HF_HUB_CACHE; HF_HUB_OFFLINE=1: the cache only); modelscope:OWNER/NAME fetches "
                   "from ModelScope (the modelscope extra)")
REVISION_HELP = "with a model id: the branch, tag or commit to use (default: main)"
TARGET_HELP = ("Unity runtime: " + ", ".join(f"{n} = {p} {v}" for n, (p, v) in targets.RELEASES.items())
               + f" (default {targets.DEFAULT_TARGET})")
# keep in step with packager.verbs.report.measure.POLICIES (tests/verbs/test_cli.py compares them)
REPORT_POLICIES = ("fp32", "recommended", "fp16", "uint8", "int8-partial")





def _shown(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", choices=("auto", "tty", "plain"), default="auto",
                   help=f"how {what} is shown on stderr: live bars on a terminal (tty), timestamped lines with a "
                        "heartbeat every 10 s (plain, e.g. CI logs); auto picks by whether stderr is a terminal")
    g.add_argument("--quiet", action="store_true", help="print errors only (no progress, no summary)")


def _checkpoint_args(p: argparse.ArgumentParser, group: Any = None) -> None:
    (group or p).add_argument("--checkpoint", metavar="DIR|OWNER/NAME", help=CHECKPOINT_HELP)
    p.add_argument("--revision", metavar="REV", help=REVISION_HELP)


# ---------------------------------------------------------------- build
def _add_build(p: argparse.ArgumentParser) -> None:
    p.description = ("Export, check and package the CosyVoice3 graphs into a verified bundle folder. Without "
                     "--checkpoint the built-in tiny preset (seeded random weights) is built.")
    src = p.add_mutually_exclusive_group()
    _checkpoint_args(p, src)
    src.add_argument("--preset", choices=PRESETS, help="built-in preset (default: tiny, when no --checkpoint)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"preset weight seed (default {DEFAULT_SEED})")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"bundle folder to create (default {DEFAULT_OUT})")
    p.add_argument("--components", default=",".join(registry.names()),
                   help="comma-separated subset to build (default: all: %(default)s)")
    p.add_argument("--target", default=targets.DEFAULT_TARGET, choices=list(targets.RELEASES), help=TARGET_HELP)
    p.add_argument("--opset", type=int, default=targets.DEFAULT_OPSET,
                   help=f"ONNX opset of the exported graphs (default {targets.DEFAULT_OPSET}; "
                        f"{targets.OPSET_MIN}..{targets.BUILD_OPSET_MAX})")
    p.add_argument("--force", action="store_true", help="replace an existing bundle at --out (only after success)")
    p.add_argument("--precision", default=DEFAULT_POLICY, metavar="POLICY",
                   help="recommended (default: llm fp16, flow fp16, hift fp32, campplus fp16), fp32, fp16, or a JSON "
                        "file with a precision (fp32|fp16|uint8|int8) and optional keep_float32 list per component "
                        "(docs/precision.md)")
    _shown(p, "progress")


# ---------------------------------------------------------------- verify
def _add_verify(p: argparse.ArgumentParser) -> None:
    p.description = ("Validate manifest.json against the schema, check sha256 and size of every file, reject unsafe "
                     "paths, and reproduce every golden with onnxruntime. Exit 0 only if everything passes.")
    p.add_argument("bundle", type=Path, metavar="BUNDLE")


# ---------------------------------------------------------------- inspect
def _add_inspect(p: argparse.ArgumentParser) -> None:
    p.description = "Print the graphs of a bundle with their inputs, outputs, sizes and precision."
    p.add_argument("bundle", type=Path, metavar="BUNDLE")


# ---------------------------------------------------------------- run
def _add_run(p: argparse.ArgumentParser) -> None:
    p.description = ("Run GRAPH of BUNDLE on the arrays of --inputs (keys = input names) and save every output to "
                     "--output (.npz).")
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.add_argument("graph", metavar="GRAPH")
    p.add_argument("--inputs", type=Path, required=True, metavar="IN.npz")
    p.add_argument("--output", type=Path, required=True, metavar="OUT.npz")


# ---------------------------------------------------------------- check
def _add_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="an .onnx file or a bundle folder (with manifest.json)")
    p.add_argument("--target", choices=sorted(targets.RELEASES), default=None,
                   help=f"Sentis release to check against (default: the bundle's, else {targets.DEFAULT_TARGET})")
    p.add_argument("--all", action="store_true", help="list every finding, not 5 nodes per rule")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")


# ---------------------------------------------------------------- unity-install
def _add_unity_install(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle folder made by `python -m packager build`")
    p.add_argument("--project", type=Path, default=Path("unity_project"),
                   help="Unity project folder (default: unity_project)")
    p.add_argument("--force", action="store_true", help="replace a previously installed copy of this bundle")
    p.add_argument("--voice", type=Path, action="append", default=[], metavar="NAME.voice",
                   help="also install this voice pack (made by `packager voice` for this bundle) with a speak golden "
                        "for the EditMode speaker test; repeatable")


# ---------------------------------------------------------------- voice
def _span(text: str) -> tuple[float, float]:
    """``--trim START-END`` in seconds -> (start, end)."""
    a, sep, b = text.strip().partition("-")
    try:
        start, end = float(a), float(b)
    except ValueError:
        start = end = -1.0
    if not sep or not 0 <= start < end or end == float("inf"):
        raise argparse.ArgumentTypeError("expected START-END in seconds with START < END, e.g. 12.5-24; "
                                         f"found {text!r}")
    return start, end


def _add_voice(p: argparse.ArgumentParser) -> None:
    from packager.contract.files import SPEECH_TOKENIZER_FILE

    p.description = ("Make a voice pack from a few seconds of a voice and its transcript: speech tokens, prompt mel, "
                     "speaker embedding and prompt text, computed once so that a player never runs the speech "
                     "tokenizer.")
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.add_argument("--wav", type=Path, required=True, metavar="REF.wav",
                   help="reference recording: 1..30 s, >= 16 kHz, any channel count (WAV, FLAC, OGG ...)")
    p.add_argument("--transcript", required=True,
                   help="the words spoken in the recording (with --trim: in that span only)")
    p.add_argument("--trim", metavar="START-END", type=_span,
                   help="use only this span of the recording, in seconds (e.g. 12.5-24); for a recording longer "
                        "than 30 s the refusal suggests one. The transcript must then be the words of that span")
    p.add_argument("--out", type=Path, required=True, metavar="NAME.voice", help="voice pack folder to create")
    p.add_argument("--checkpoint", metavar="DIR|OWNER/NAME",
                   help=f"the checkpoint the bundle was built from, for {SPEECH_TOKENIZER_FILE} (a folder, or the "
                        "Hugging Face model id it was downloaded by); not needed for tiny-preset bundles")
    p.add_argument("--revision", metavar="REV", help=REVISION_HELP)
    p.add_argument("--name", help="the voice's display name (default: the --out folder name without .voice)")
    p.add_argument("--dump-npz", type=Path, metavar="FILE.npz",
                   help="also write the arrays under upstream's frontend names (what `synth --inputs` takes)")
    p.add_argument("--force", action="store_true", help="replace an existing voice pack at --out")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default 1)")


# ---------------------------------------------------------------- report
def _add_report(p: argparse.ArgumentParser) -> None:
    p.description = ("Build the bundle under several precision policies and compare them with FP32: bytes, error "
                     "metrics, load and run time and the Sentis verdict per graph; the same sentence spoken by "
                     "each (waveform, spectrograms, audio, MCD, SQNR, token agreement); the gates, the cheapest "
                     "policy that meets them, and the phased validation. Writes a static folder (index.html, PNG, "
                     "WAV, report.json). Needs the report extra: pip install -e '.[report]'.")
    src = p.add_mutually_exclusive_group()
    _checkpoint_args(p, src)
    src.add_argument("--preset", choices=PRESETS, help="built-in preset (default: tiny, when no --checkpoint)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="preset weight seed and synthesis seed")
    p.add_argument("--voice", type=Path, metavar="NAME.voice",
                   help="a voice pack of this model (`packager voice`); without it each policy synthesizes the "
                        "build's end-to-end golden case (frontend arrays, no text)")
    p.add_argument("--text", help="what each policy says (needs --voice; default: a sentence of about 6 s)")
    p.add_argument("--out", type=Path, required=True, metavar="REPORT_DIR", help="folder to create")
    p.add_argument("--policies", default=",".join(REPORT_POLICIES),
                   help="comma-separated, from: %(default)s (fp32, the baseline, is always included)")
    p.add_argument("--target", default=targets.DEFAULT_TARGET, choices=list(targets.RELEASES),
                   help="the Unity runtime gated on")
    p.add_argument("--no-search", action="store_true",
                   help="skip the per-component search (each component at the cheapest measured precision that "
                        "passes its own gates, built and measured once more when no policy above has that mix)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder (only after success)")
    _shown(p, "progress")


def _add_synth(p: argparse.ArgumentParser) -> None:
    p.description = ("Synthesize speech with a bundle: text frontend, LLM generation, flow Euler/CFG and HiFT on "
                     "onnxruntime, exactly as the Unity runtime runs them. Either --voice + --text (a voice pack "
                     "from `packager voice` and plain text) or --inputs (upstream's frontend arrays).")
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--voice", type=Path, metavar="NAME.voice", help="a voice pack made by `packager voice`")
    src.add_argument("--inputs", type=Path, metavar="CASE.npz",
                     help="upstream frontend arrays (.npz; the names and shapes are in docs/voice.md)")
    p.add_argument("--text", metavar="TEXT", help="the text to speak (with --voice); '-' reads it from stdin")
    p.add_argument("--text-file", type=Path, metavar="FILE", help="read the text to speak from a UTF-8 file")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--instruct", metavar="INSTRUCTION",
                      help="instruct mode: e.g. 'Please speak as fast as you can.' (becomes the prompt text)")
    mode.add_argument("--cross-lingual", action="store_true",
                      help="cross-lingual mode: no prompt text, no LLM prompt speech tokens")
    p.add_argument("-o", "--output", type=Path, metavar="FILE.wav",
                   help="write the audio: 16-bit PCM WAV, 24 kHz mono (a name ending in .npz means --dump-npz, the "
                        "option's old meaning, deprecated)")
    p.add_argument("--wav", type=Path, metavar="FILE.wav", help="deprecated alias of -o/--output")
    p.add_argument("--dump-npz", type=Path, metavar="FILE.npz",
                   help="also write the raw arrays: speech_tokens, (mel,) speech (and piece_token_counts with --voice)")
    p.add_argument("--force", action="store_true",
                   help="replace existing output files (only WAV / NPZ files: any other file is never replaced)")
    p.add_argument("--sampling", choices=["greedy", "ras"], default="greedy")
    p.add_argument("--seed", type=int, default=0, help="seed of the RAS sampler (numpy PCG64); piece k uses seed + k")
    p.add_argument("--length", choices=SYNTH_LENGTHS, default="auto",
                   help="how long each text piece's speech is: llm = until the LLM's stop token, within upstream's "
                        "min_len..max_len (upstream); min_len = exactly upstream's min_len (min_len_ratio x text "
                        "tokens) speech tokens, the stop ids masked until then: for random-weight presets, whose LLM "
                        "never learned when to stop; auto (default) = min_len for a preset bundle with --voice, llm "
                        "otherwise (a checkpoint bundle, --inputs)")
    p.add_argument("--stream", action="store_true",
                   help="upstream's streaming schedule: audio written chunk by chunk as it is produced; prints the "
                        "time to first audio")
    p.add_argument("--no-wetext", action="store_true", help="skip wetext normalization even when it is installed")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads per graph (default 1)")
    p.add_argument("--fix-min-len-quirk", action="store_true",
                   help="mask the whole stop range before min_len (upstream masks only SOS: quirk L3)")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--progress", choices=("auto", "tty", "plain"), default="auto",
                       help="progress on stderr (text pieces, tokens generated, RTF): live bars on a terminal (tty), "
                            "timestamped lines (plain, e.g. logs); auto picks by whether stderr is a terminal")
    shown.add_argument("--quiet", action="store_true",
                       help="errors only (and warnings about text pieces that were skipped)")


# ---------------------------------------------------------------- the verbs
# verb -> (one-line help, adds its arguments, what runs it: a function here or "module:function", imported on use)
VERBS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable | str]] = {
    "build": ("build a Unity bundle from a checkpoint (folder or Hugging Face model id) or the built-in tiny preset",
              _add_build, "packager.verbs.build:run"),
    "verify": ("check a bundle: schema, checksums, paths, goldens reproduced", _add_verify, "packager.verbs.verify:run"),
    "inspect": ("list a bundle's graphs, I/O, sizes and precision", _add_inspect, "packager.verbs.inspect:run"),
    "run": ("run one graph of a bundle with onnxruntime on inputs from an .npz", _add_run, "packager.verbs.run:run"),
    "check": ("Sentis pre-flight check of a model or bundle", _add_check, "packager.verbs.check:run"),
    "unity-install": ("install a bundle into a Unity project", _add_unity_install, "packager.verbs.unity_install:run"),
    "synth": ("speech from text and a voice pack (or upstream frontend arrays) over a bundle", _add_synth,
              "packager.verbs.synth:run"),
    "voice": ("make a voice pack from a reference recording and its transcript", _add_voice, "packager.verbs.voice:run"),
    "report": ("compare precision policies with FP32: numbers, pictures and sound, as a static page", _add_report,
               "packager.verbs.report.make:run"),
}


def parser(verb: str | None = "*") -> argparse.ArgumentParser:
    """The argument parser (``verb``, the verb about to be parsed, is accepted for callers; every verb's options are
    plain argparse calls here, so building them all costs nothing)."""
    p = argparse.ArgumentParser(prog="python -m packager",
                                description="Package CosyVoice3 into verified, Sentis-ready Unity bundles.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (text, add, func) in VERBS.items():
        sp = sub.add_parser(name, help=text, description=text)
        add(sp)
        sp.set_defaults(func=func)
    return p


def _verb(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _resolve(func: Callable | str) -> Callable:
    if callable(func):
        return func
    module, name = func.split(":")
    return getattr(importlib.import_module(module), name)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if _verb(argv) is None and not any(a in ("-h", "--help", "--version") for a in argv):
        argv = ["build", *argv]  # `python -m packager` alone builds the default bundle (the README's main job)
    args = parser(_verb(argv)).parse_args(argv)
    try:
        return int(_resolve(args.func)(args) or 0)
    except PackagerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        from packager.ui.extras import missing_module

        err = missing_module(exc, args.command)
        if err is None:
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
