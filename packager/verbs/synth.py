"""``python -m packager synth``: the command line over ``packager.runtime.pipeline`` (frontend arrays) and ``packager.runtime.tts``
(a voice pack and text). Kept apart from ``packager.runtime.pipeline`` so that the synthesis core never imports ``tts``, which
is built on it (no import cycle).

Outputs: ``-o/--output FILE.wav`` is the audio; ``--dump-npz FILE.npz`` the raw arrays. Two older spellings keep
working with a one-line deprecation notice: ``--wav FILE.wav`` (= ``-o``) and ``--output FILE.npz`` (= ``--dump-npz``;
a name ending in ``.npz`` can only mean the arrays, so the two meanings of ``--output`` never collide). Every output
is checked before any work starts: an existing file is replaced only with ``--force``, and never when it is not
what we would write (a text file named ``x.wav`` stays as it is).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from packager.contract import manifest as B
from packager.runtime import tts
from packager.frontend import voicepack
from packager.contract.errors import PackagerError
from packager.ui.progress import Progress
from packager.contract.arrays import read_npz
from packager.runtime.pipeline import Pipeline, bundle_tokenizer, open_components, synthesize, validate_case

TEXT_ARGS = "--text '...', --text - (read stdin) or --text-file FILE"


def run(args: argparse.Namespace) -> int:
    notices: list[str] = []
    audio, npz = _outputs(args, notices)
    text, text_arg = None, "--text"
    if args.voice is not None:
        text, text_arg = _read_text(args)
    elif args.text is not None or args.text_file is not None or args.instruct is not None or args.cross_lingual:
        raise PackagerError("--text, --text-file, --instruct and --cross-lingual need --voice", key="--inputs",
                            expected="--voice NAME.voice --text '...'")
    _check_target(audio, "-o/--output", "wav", args.force)
    _check_target(npz, "--dump-npz", "npz", args.force)
    progress = Progress("quiet" if args.quiet else args.progress)
    try:
        if args.voice is not None:
            summary = _run_voice(args, text, text_arg, audio, npz, progress)
        else:
            summary = _run_inputs(args, audio, npz, progress)
    finally:
        progress.close()
    if not args.quiet:
        print(summary + " -> " + ", ".join(str(x) for x in (audio, npz) if x))
        for n in notices:
            print(f"note: {n}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- the two sources
def _run_inputs(args: argparse.Namespace, audio: Path | None, npz: Path | None, progress: Progress) -> str:
    case = read_npz(args.inputs)
    validate_case(case, str(args.inputs))
    with progress.step("opening the bundle"):
        pipe = Pipeline.open(args.bundle, threads=args.threads)
    sr = int(pipe.constants["hift"]["sample_rate"])
    fixed = None
    if args.length == "min_len":
        fixed = max(1, int(pipe.constants["llm"]["min_len_ratio"] * np.asarray(case["text"]).shape[-1]))
    t0 = time.perf_counter()
    with _AudioSink(audio, sr) as sink:
        out = synthesize(pipe, case, sampling=args.sampling, seed=args.seed, stream=args.stream,
                         upstream_quirks=not args.fix_min_len_quirk and fixed is None, on_audio=sink.write,
                         min_len=fixed, max_len=fixed, log=progress)
        dt = time.perf_counter() - t0
        if npz:
            _save_npz(npz, out)
    seconds = out["speech"].shape[1] / sr
    return (f"{out['speech_tokens'].shape[1]} speech tokens, mel {list(out['mel'].shape)}, {seconds:.2f} s of audio "
            f"in {dt:.2f} s (RTF {dt / max(seconds, 1e-9):.2f})" + _first_audio(sink, dt))


def _run_voice(args: argparse.Namespace, text: str, text_arg: str, audio: Path | None, npz: Path | None,
               progress: Progress) -> str:
    manifest = B.open_manifest(args.bundle)
    voice = voicepack.load(args.voice)
    voice.check_model(manifest, args.bundle)
    mode = "instruct" if args.instruct is not None else "cross_lingual" if args.cross_lingual else "zero_shot"
    use_wetext = False if args.no_wetext else None
    _, constants, data = open_components(args.bundle, manifest, ["llm"], run=())  # tokenizer only: text errors first
    with progress.step("text frontend (normalization, sentence split)"):
        pieces = tts.text_pieces(bundle_tokenizer(constants["llm"], data), text, use_wetext=use_wetext, arg=text_arg)
    with progress.step("opening the bundle"):
        pipe = Pipeline.open(args.bundle, threads=args.threads, manifest=manifest)
    length = length_rule(manifest, args.length)
    if args.length == "auto" and length == "min_len":
        progress.line(f"{manifest['source'].get('preset', 'a')} preset bundle (random weights: its LLM never learned "
                      "when a sentence is over): each text piece is exactly upstream's min_len speech tokens "
                      "(--length llm: upstream's stop rule)")

    def skipped(k: int, piece: str, stop: int) -> None:
        msg = (f"text piece {k + 1} (\"{tts.preview(piece)}\"): the LLM stopped before its first speech token "
               f"(stop token {stop}); skipped, the rest is spoken. Try another --seed, --sampling "
               f"{'greedy' if args.sampling == 'ras' else 'ras'}, or rephrase that sentence")
        if progress.mode == "quiet":
            print(f"warning: {msg}", file=sys.stderr, flush=True)
        else:
            progress.line(f"warning: {msg}")

    with _AudioSink(audio, int(pipe.constants["hift"]["sample_rate"])) as sink:
        res = tts.speak(pipe, voice, text, mode=mode, instruct=args.instruct, sampling=args.sampling,
                        seed=args.seed, stream=args.stream, upstream_quirks=not args.fix_min_len_quirk,
                        on_audio=sink.write, use_wetext=use_wetext, length=length, log=progress,
                        on_empty_piece=skipped, pieces=pieces)
        if npz:
            _save_npz(npz, {"speech": res.speech.reshape(1, -1),
                            "speech_tokens": np.concatenate(res.speech_tokens, axis=1),
                            "piece_token_counts": np.asarray([t.shape[1] for t in res.speech_tokens], np.int32)})
    seconds = res.speech.size / res.sample_rate
    skipped_note = (f" ({len(res.skipped)} skipped: " + ", ".join(str(k + 1) for k in res.skipped) + ")"
                    if res.skipped else "")
    return (f"{voice.name!r} ({mode}): {len(res.pieces)} text piece(s){skipped_note}, "
            f"{sum(t.shape[1] for t in res.speech_tokens)} speech tokens, {seconds:.2f} s of audio in "
            f"{res.seconds:.2f} s (RTF {res.seconds / max(seconds, 1e-9):.2f})"
            + (f"; first audio after {res.first_audio_s:.2f} s ({res.first_audio_s / res.seconds:.2f} of the total, "
               f"{len(res.chunks)} chunks)" if args.stream and res.first_audio_s is not None else ""))


# ---------------------------------------------------------------- arguments
def length_rule(manifest: Mapping, requested: str) -> str:
    """``--length`` resolved for ``--voice``: ``auto`` is ``min_len`` for a preset bundle (random weights) and
    ``llm`` (upstream's stop rule) for a bundle built from a checkpoint."""
    if requested != "auto":
        return requested
    return "min_len" if manifest.get("source", {}).get("kind") == "preset" else "llm"


def _outputs(args: argparse.Namespace, notices: list[str]) -> tuple[Path | None, Path | None]:
    """(audio, npz) from -o/--output, --wav and --dump-npz, old spellings mapped with a notice."""
    audio, npz = args.output, args.dump_npz
    if audio is not None and audio.suffix.lower() == ".npz":  # the option's old meaning: the raw arrays
        if npz is not None:
            raise PackagerError("two array files", key="--output", expected="the arrays once: --dump-npz FILE.npz "
                                "(--output FILE.npz is its deprecated spelling)", found=f"{audio} and {npz}")
        notices.append(f"--output {audio} (a .npz name) is deprecated for the raw arrays: use --dump-npz {audio}; "
                       "-o/--output FILE.wav now names the audio")
        audio, npz = None, audio
    if args.wav is not None:
        if audio is not None:
            raise PackagerError("the audio file is given twice", key="--wav", expected="only -o/--output FILE.wav "
                                "(--wav is its deprecated alias)", found=f"{args.wav} and {audio}")
        notices.append(f"--wav is deprecated: use -o {args.wav} (or --output {args.wav})")
        audio = args.wav
    if audio is None and npz is None:
        raise PackagerError("nothing to write", key="-o/--output", expected="-o OUT.wav and/or --dump-npz OUT.npz")
    for path, arg, kind in ((audio, "-o/--output", "wav"), (npz, "--dump-npz", "npz")):
        if path is not None and path.is_dir():
            raise PackagerError("is a folder", key=f"{arg} {path}",
                                expected=f"a file name, e.g. {path / ('speech.' + kind)}")
    if audio is not None and audio.suffix.lower() != ".wav":
        raise PackagerError("the audio is written as WAV", key="-o/--output",
                            expected="a file name ending in .wav", found=str(audio))
    if npz is not None and npz.suffix.lower() != ".npz":
        raise PackagerError("the arrays are written as NPZ", key="--dump-npz",
                            expected="a file name ending in .npz", found=str(npz))
    return audio, npz


def _read_text(args: argparse.Namespace) -> tuple[str, str]:
    """The text to speak and the argument it came from: --text, --text - (stdin) or --text-file."""
    if args.text is not None and args.text_file is not None:
        raise PackagerError("the text is given twice", key="--text-file", expected=f"exactly one of {TEXT_ARGS}")
    if args.text is None and args.text_file is None:
        raise PackagerError("--voice needs the text to speak", key="--text", expected=TEXT_ARGS)
    if args.text_file is not None:
        path: Path = args.text_file
        where = f"--text-file {path}"
        if path.is_dir():
            raise PackagerError("is a folder", key=where, expected="a UTF-8 text file")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise PackagerError("not found", key=where, expected="a UTF-8 text file") from None
        except OSError as exc:
            raise PackagerError(f"cannot be read ({exc.strerror})", key=where, expected="a UTF-8 text file") from None
        return _decode(data, where), "--text-file"
    if args.text == "-":
        stdin = sys.stdin
        if stdin is None:
            raise PackagerError("no standard input to read", key="--text -", expected=TEXT_ARGS)
        if getattr(stdin, "isatty", lambda: False)() and not args.quiet:
            print("reading the text from stdin; end it with Ctrl-D (Ctrl-Z Enter on Windows)", file=sys.stderr)
        data = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode("utf-8", "surrogateescape")
        return _decode(data, "--text - (stdin)"), "--text -"
    return args.text, "--text"


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")  # strict UTF-8; a leading byte-order mark is dropped
    except UnicodeDecodeError as exc:
        raise PackagerError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start} is invalid)",
                            key=where, expected="UTF-8 encoded text; convert it, e.g. iconv -t UTF-8") from None


def _looks_like(path: Path, kind: str) -> bool:
    """Whether an existing file is what we would write there: a WAV-family audio file or an NPZ (zip) file. An empty
    file is nothing to lose, so it counts as either."""
    with open(path, "rb") as f:
        head = f.read(12)
    if not head:
        return True
    if kind == "npz":
        return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")
    return ((head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE")
            or head[:4] in (b"fLaC", b"OggS") or (head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC")))


def _check_target(path: Path | None, arg: str, kind: str, force: bool) -> None:
    """Refuse, before anything runs, an output that lies under a file, already exists (without --force), or exists
    and is not a file of ``kind`` (even with --force). (A folder is refused by ``_outputs``.)"""
    if path is None:
        return
    where = f"{arg} {path}"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise PackagerError(f"{parent} is not a folder", key=where, expected="a path in a folder")
    if not (path.exists() or path.is_symlink()):
        return
    if not path.is_file():
        raise PackagerError("exists and is not a regular file; not replaced", key=where, expected="a new file name")
    what = "a WAV (audio)" if kind == "wav" else "an NPZ"
    if not force:
        raise PackagerError("already exists; not replaced", key=where,
                            expected=f"a new file name, or --force to replace {what} file")
    try:
        ok = _looks_like(path, kind)
    except OSError as exc:
        raise PackagerError(f"exists and cannot be read ({exc.strerror}); not replaced", key=where,
                            expected="a new file name") from None
    if not ok:
        raise PackagerError(f"exists and is not {what} file; not replaced, even with --force", key=where,
                            expected="a new file name")


# ---------------------------------------------------------------- writing
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
