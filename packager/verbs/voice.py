"""``python -m packager voice``: a reference recording + its transcript -> a voice pack (docs/voice.md).

Computes, once, what upstream's ``frontend_zero_shot`` derives from the prompt audio (design/frontend.md §4):

    WAV (any rate >= 16 kHz, any channels) -> mono -> 16 kHz and 24 kHz (soxr)
    16 kHz -> Whisper 128-bin log-mel -> speech_tokenizer_v3.onnx (onnxruntime) -> speech tokens (25 / s)
    24 kHz -> Matcha 80-bin mel (50 frames / s); both trimmed so that frames = token_mel_ratio x tokens
    16 kHz -> the bundle's campplus_fbank + campplus graphs -> 192-d speaker embedding (what Unity computes)
    "You are a helpful assistant.<|endofprompt|>" + transcript -> the bundle's tokenizer -> prompt_text ids

The speech tokenizer is read from the checkpoint folder (``--checkpoint``; the 969 MB graph never goes into a
bundle). A tiny-preset bundle uses the tiny speech tokenizer that the preset defines (same architecture and I/O,
seeded random weights), so the whole flow runs on a fresh machine.
"""
from __future__ import annotations

import argparse
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from packager import GENERATOR_NAME, __version__
from packager.frontend import audio
from packager.frontend import features
from packager.frontend import voicepack
from packager.contract.manifest import open_manifest, sha256_file
from packager.build.checkpoint import checkpoint_folder
from packager.contract.errors import InputError, PackagerError
from packager.frontend.speech_tokenizer import SPEECH_TOKENIZER_FILE, SpeechTokenizer
from packager.runtime.pipeline import bundle_tokenizer, open_components

NEEDED = ("campplus", "llm", "flow")  # campplus runs; llm (tokenizer tables) and flow (sizes) give constants and data
FULL_CODEBOOK = 3 ** 8  # speech_tokenizer_v3: FSQ over 8 dims with 3 levels
SMALL_FILE = 64 << 20  # checkpoint files up to this size are compared by sha256, larger ones by size


def speech_tokenizer_for(manifest: Mapping[str, Any], bundle: Path, checkpoint: Path | None
                         ) -> tuple[Callable[[], SpeechTokenizer], Callable[[], dict[str, Any]]]:
    """(opener of the speech tokenizer of the bundle's model, maker of its voice.json record), after the checks that
    name a wrong ``--checkpoint``. Both are slow at full size (parse / sha256 of 969 MB) and run on worker threads
    while the main thread computes the other features."""
    src = manifest["source"]
    if src["kind"] == "preset":
        from packager.frontend import speech_tokenizer_model as stm  # torch: only for the tiny preset

        data = stm.tiny_speech_tokenizer_onnx(int(src["seed"]))
        label = f"tiny speech tokenizer (preset {src['preset']}, seed {src['seed']})"
        return (lambda: SpeechTokenizer.from_bytes(data, label)), lambda: {
            "kind": "tiny_speech_tokenizer_v3", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "codebook_size": int(stm.TINY.codebook_size)}
    if checkpoint is None:
        raise PackagerError(f"this bundle was built from checkpoint {src['name']!r}; pass --checkpoint DIR, the "
                            f"checkpoint folder that holds {SPEECH_TOKENIZER_FILE} (or the Hugging Face model id the "
                            "bundle was built from)", key="--checkpoint")
    check_checkpoint_matches(checkpoint, src)
    path = checkpoint / SPEECH_TOKENIZER_FILE
    SpeechTokenizer.check_file(path)  # a missing file or an LFS pointer is named before any work starts
    return (lambda: SpeechTokenizer.from_file(path)), lambda: {
        "kind": "speech_tokenizer_v3", "sha256": sha256_file(path), "bytes": path.stat().st_size,
        "codebook_size": FULL_CODEBOOK}


def check_checkpoint_matches(folder: Path, source: Mapping[str, Any]) -> None:
    """``folder`` must hold the files the bundle was built from: same sizes, and same sha256 for small ones. Every
    file that differs is named at once."""
    if not folder.is_dir():
        raise PackagerError("not a folder", file=str(folder), key="--checkpoint",
                            expected=f"the checkpoint folder the bundle was built from ({source['name']})")
    wrong = []
    for f in source["files"]:
        p = folder / f["path"]
        if not p.is_file():
            wrong.append(f"{f['path']} missing")
        elif p.stat().st_size != f["bytes"]:
            wrong.append(f"{f['path']} is {p.stat().st_size} bytes, not {f['bytes']}")
        elif f["bytes"] <= SMALL_FILE and sha256_file(p) != f["sha256"]:
            wrong.append(f"{f['path']} has sha256 {sha256_file(p)[:12]}…, not {f['sha256'][:12]}…")
    if wrong:
        raise PackagerError(f"is not the checkpoint this bundle was built from ({source['name']}): " + "; ".join(wrong),
                            file=str(folder), key="--checkpoint",
                            expected="the files the bundle's manifest lists (source.files)")


def make_voice(bundle: Path, wav: Path, transcript: str, checkpoint: Path | None = None,
               threads: int | None = None, log=lambda msg: None, trim: tuple[float, float] | None = None
               ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(voice.json metadata without ``arrays``, arrays) for a reference recording, or for its ``trim`` span
    (start, end seconds; ``transcript`` is then the words of that span). Nothing is written."""
    transcript = transcript.strip() if transcript is not None else ""
    if not transcript:
        raise InputError("empty transcript", key="--transcript",
                         expected="the words spoken in the reference recording")
    manifest = open_manifest(bundle)
    ref = audio.load_reference(wav, trim=trim)
    t0 = time.perf_counter()
    open_tokenizer, tokenizer_record = speech_tokenizer_for(manifest, bundle, checkpoint)
    with ThreadPoolExecutor(max_workers=2) as pool:  # onnxruntime and hashlib release the GIL
        opening, recording = pool.submit(open_tokenizer), pool.submit(tokenizer_record)
        runners, constants, data = open_components(bundle, manifest, NEEDED, threads or 1, purpose="a voice pack",
                                                   run=("campplus",))
        tok = bundle_tokenizer(constants["llm"], data)
        mel16 = features.whisper_log_mel(ref.wave16k)
        feat = features.matcha_mel(ref.wave24k).T[None].astype(np.float32)  # [1, F, 80]
        t2 = time.perf_counter()
        graphs = constants["campplus"]["graphs"]
        fb = runners[graphs["fbank"]]({"waveform": ref.wave16k.reshape(1, -1).astype(np.float32)})["features"]
        embedding = runners[graphs["embedding"]]({"input": fb})["output"].astype(np.float32).reshape(1, -1)
        log(f"speaker embedding: {embedding.shape[1]} values from {fb.shape[1]} fbank frames "
            f"({time.perf_counter() - t2:.1f} s)")
        st, st_info = opening.result(), recording.result()
    log(f"opened the speech tokenizer and the bundle's graphs, features computed ({time.perf_counter() - t0:.1f} s)")

    t1 = time.perf_counter()
    tokens = st.tokens(mel16).astype(np.int32)
    high = min(int(constants["llm"]["speech_token_size"]), int(constants["flow"]["vocab_size"]))
    if tokens.size and (tokens.min() < 0 or tokens.max() >= high):
        raise PackagerError("the speech tokenizer's ids do not fit this model", key=SPEECH_TOKENIZER_FILE,
                            expected=f"ids in [0, {high})", found=f"[{int(tokens.min())}, {int(tokens.max())}]")
    log(f"speech tokens: {tokens.size} ({time.perf_counter() - t1:.1f} s)")

    ratio = int(constants["flow"]["token_mel_ratio"])
    n = min(feat.shape[1] // ratio, tokens.size)  # upstream's trim (frontend.md §4b)
    if n < 1:
        raise InputError("the reference is too short to give a speech token", file=str(wav))
    prompt_tokens = tokens[:n].reshape(1, n)
    prompt_feat = np.ascontiguousarray(feat[:, :ratio * n])

    text = voicepack.prompt_text_string(transcript)
    prompt_text = np.asarray(tok.encode(text), np.int32).reshape(1, -1)
    meta = {
        "format": voicepack.FORMAT, "format_version": voicepack.FORMAT_VERSION,
        "generator": {"name": GENERATOR_NAME, "version": __version__},
        "name": "",
        "model": {"model_id": manifest["source"]["model_id"], "bundle": manifest["bundle"]["name"],
                  "source": {k: manifest["source"][k] for k in ("kind", "preset", "seed", "name")
                             if k in manifest["source"]}},
        "reference": {"file_name": Path(wav).name, "sha256": ref.sha256, "bytes": Path(wav).stat().st_size,
                      "sample_rate": int(ref.source_rate), "channels": int(ref.source_channels),
                      "seconds": round(float(ref.seconds), 6), "transcript": transcript},
        "prompt": {"text": text, "tokens": int(n), "mel_frames": int(ratio * n), "token_mel_ratio": ratio,
                   "trimmed_from": {"tokens": int(tokens.size), "mel_frames": int(feat.shape[1])}},
        "speech_tokenizer": st_info,
        "features": {"whisper_log_mel": features.WHISPER_MEL, "matcha_mel": features.MATCHA_MEL,
                     "resampler": audio.RESAMPLER,
                     "embedding": "campplus_fbank.features -> campplus.output (the bundle's graphs, Unity's arithmetic)"},
    }
    arrays = {"prompt_text": prompt_text, "prompt_speech_token": prompt_tokens, "prompt_speech_feat": prompt_feat,
              "embedding": embedding}
    return meta, arrays


# ---------------------------------------------------------------- CLI (options: packager/cli.py)
def _checkpoint(args: argparse.Namespace) -> Path | None:
    """``--checkpoint`` as a folder: a model id is fetched (the speech tokenizer and the files the bundle was built
    from, already in the hub cache when the bundle was built from that id) before anything is computed or written."""
    if args.checkpoint is None:
        if args.revision is not None:
            raise PackagerError("only applies to a model id", key="--revision", expected="--checkpoint OWNER/NAME")
        return None
    src = open_manifest(args.bundle)["source"]
    if src["kind"] == "preset":  # a preset bundle's speech tokenizer comes from the preset: the folder is not read
        return Path(args.checkpoint)
    folder, _ = checkpoint_folder(args.checkpoint, lambda: [SPEECH_TOKENIZER_FILE, *(f["path"] for f in src["files"])],
                                  revision=args.revision)
    return folder


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    out: Path = args.out
    if out.exists() and not args.force:
        raise PackagerError("already exists; pass --force to replace it", file=str(out))
    meta, arrays = make_voice(args.bundle, args.wav, args.transcript, _checkpoint(args), args.threads,
                              log=lambda m: print(m, flush=True), trim=args.trim)
    name = args.name or (out.name[:-len(voicepack.SUFFIX)] if out.name.endswith(voicepack.SUFFIX) else out.name)
    meta["name"] = name
    voicepack.write(out, meta, arrays, force=args.force)
    if args.dump_npz:
        pack = voicepack.VoicePack(out, meta, {k: np.asarray(v) for k, v in arrays.items()})
        tmp = args.dump_npz.with_name(args.dump_npz.name + ".tmp.npz")
        args.dump_npz.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, **pack.frontend_arrays())
        tmp.replace(args.dump_npz)
    p = meta["prompt"]
    print(f"voice {name!r}: {p['tokens']} speech tokens, {p['mel_frames']} mel frames, "
          f"{arrays['prompt_text'].shape[1]} prompt text ids, {arrays['embedding'].shape[1]}-d embedding from "
          f"{meta['reference']['seconds']:.2f} s of audio"
          + (f" ({args.trim[0]:g}-{args.trim[1]:g} s of {meta['reference']['file_name']})" if args.trim else "")
          + f" in {time.perf_counter() - t0:.2f} s -> {out}" + (f", {args.dump_npz}" if args.dump_npz else ""))
    return 0
