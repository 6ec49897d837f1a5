"""``python -m packager synth``: end-to-end CosyVoice3 ``tts()`` over a bundle's graphs on onnxruntime.

Only the bundle is used: its graphs, its manifest constants and its host data, driven by the host loops in
``packager/host`` -- the executable specification the Unity runtime follows step for step:

    LLM generation (llm_generate.generate) -> silent-token filter -> flow (euler_cfg.synthesize)
    -> HiFT (noise rows [0, 480 T) of the shipped table, continued past it) -> waveform

Non-streaming reproduces upstream ``CosyVoice3Model.tts(stream=False)``. ``stream=True`` follows upstream's
streaming schedule (README "Orchestration"): token hops 25 -> 50 -> 100 (the first padded so that prompt + hop is a
multiple of 25), each chunk re-running the flow on prompt + all tokens so far + the look-ahead tokens with the
chunked attention mask and ``finalize=False``, HiFT re-run on the accumulated mel emitting only new samples, and a
final ``finalize=True`` call.
"""
from __future__ import annotations

import argparse
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from packager.checkpoint import sha256_file
from packager.errors import InputError, PackagerError
from packager.host import euler_cfg, llm_generate
from packager.host.hift_noise import noise_for_frames
from packager.onnx_utils import run_onnx, session
from packager.stages.convert import target_model
from packager.stages.golden import read_npz
from packager.verify import load_manifest, safe_path

REQUIRED = ("llm", "flow", "hift")
CASE_KEYS = {  # upstream frontend names -> (kind, shape pattern)
    "text": ("ids", (1, None)),
    "prompt_text": ("ids", (1, None)),
    "llm_prompt_speech_token": ("ids", (1, None)),
    "flow_prompt_speech_token": ("ids", (1, None)),
    "prompt_speech_feat": ("float", (1, None, None)),
    "llm_embedding": ("float", (1, None)),
    "flow_embedding": ("float", (1, None)),
}
TOKEN_HOP = 25
TOKEN_MAX_HOP = 100
STREAM_SCALE = 2


@dataclass
class Pipeline:
    """A bundle opened for synthesis: one runner per graph, constants and host data per component."""

    runners: dict[str, Any]
    constants: dict[str, dict[str, Any]]
    data: dict[str, np.ndarray]

    @classmethod
    def open(cls, bundle: Path, threads: int = 1, manifest: dict[str, Any] | None = None) -> "Pipeline":
        manifest = manifest if manifest is not None else load_manifest(bundle)
        comps = {c["name"]: c for c in manifest["components"]}
        missing = [c for c in REQUIRED if c not in comps]
        if missing:
            raise PackagerError("the bundle lacks components needed for synthesis", file=str(bundle),
                                expected=", ".join(REQUIRED), found=", ".join(comps))
        runners, data = {}, {}
        for name in REQUIRED:
            for g in comps[name]["graphs"]:
                # the arithmetic Unity performs: the Sentis view of fp16/uint8 graphs
                sess = session(target_model(_checked(bundle, g, f"{name}/{g['name']}"), g), threads)
                runners[g["name"]] = lambda inputs, s=sess: run_onnx(s, inputs)
            for d in comps[name]["data"]:
                data[d["name"]] = np.load(_checked(bundle, d, f"{name}/{d['name']}"), allow_pickle=False)
        return cls(runners, {n: comps[n]["constants"] for n in REQUIRED}, data)


def _checked(bundle: Path, entry: Mapping[str, Any], what: str) -> Path:
    path = safe_path(bundle, entry["file"], what)
    if not path.is_file() or path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
        raise PackagerError("missing or modified (sha256/size differ from the manifest); run verify",
                            file=entry["file"])
    return path


def validate_case(case: Mapping[str, np.ndarray], where: str = "inputs") -> dict[str, np.ndarray]:
    """Names, dtypes and shapes of a synthesis case (upstream frontend names); returns int32/float32 arrays."""
    missing = [k for k in CASE_KEYS if k not in case]
    if missing:
        raise InputError("missing keys", file=where, key=", ".join(missing), expected=", ".join(CASE_KEYS))
    out = {}
    for key, (kind, shape) in CASE_KEYS.items():
        a = np.asarray(case[key])
        if kind == "ids" and not np.issubdtype(a.dtype, np.integer):
            raise InputError("wrong dtype", file=where, key=key, expected="integer token ids", found=str(a.dtype))
        if kind == "float" and not np.issubdtype(a.dtype, np.floating):
            raise InputError("wrong dtype", file=where, key=key, expected="float32", found=str(a.dtype))
        if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
            pattern = "[" + ", ".join("N" if s is None else str(s) for s in shape) + "]"
            raise InputError("wrong shape", file=where, key=key, expected=pattern, found=str(list(a.shape)))
        out[key] = a.astype(np.int32 if kind == "ids" else np.float32)
    if out["text"].shape[1] == 0:
        raise InputError("empty text", file=where, key="text", expected="at least one token id")
    return out


def _check_ranges(p: Pipeline, case: Mapping[str, np.ndarray]) -> None:
    llm, flow = p.constants["llm"], p.constants["flow"]
    limits = {"text": int(llm["text_vocab_size"]), "prompt_text": int(llm["text_vocab_size"]),
              "llm_prompt_speech_token": int(llm["speech_token_size"]),
              "flow_prompt_speech_token": int(flow["vocab_size"])}
    for key, high in limits.items():
        a = case[key]
        if a.size and (a.min() < 0 or a.max() >= high):
            raise InputError("id out of range", key=key, expected=f"ids in [0, {high})",
                             found=f"[{int(a.min())}, {int(a.max())}]")
    dims = {"llm_embedding": 192, "flow_embedding": int(flow["spk_embed_dim"])}
    for key, dim in dims.items():
        if case[key].shape[1] != dim:
            raise InputError("wrong shape", key=key, expected=f"[1, {dim}]", found=str(list(case[key].shape)))
    ratio, bins = int(flow["token_mel_ratio"]), int(flow["mel_bins"])
    want = (1, case["flow_prompt_speech_token"].shape[1] * ratio, bins)
    if case["prompt_speech_feat"].shape != want:
        raise InputError("wrong shape (token_mel_ratio frames per flow prompt token)", key="prompt_speech_feat",
                         expected=str(list(want)), found=str(list(case["prompt_speech_feat"].shape)))


def _hift(p: Pipeline, mel: np.ndarray) -> np.ndarray:
    c = p.constants["hift"]
    noise_cfg = c["noise"]
    noise = noise_for_frames(p.data[noise_cfg["table"]], p.data[noise_cfg["state"]], mel.shape[2],
                             int(c["samples_per_frame"]))
    return p.runners["hift"]({"mel": np.ascontiguousarray(mel, np.float32), noise_cfg["input"]: noise})["waveform"]


def _flow(p: Pipeline, tokens: np.ndarray, case: Mapping[str, np.ndarray], streaming: bool, finalize: bool):
    c = p.constants["flow"]
    return euler_cfg.synthesize(p.runners, c, p.data[c["noise"]], tokens, case["flow_prompt_speech_token"],
                                case["prompt_speech_feat"], case["flow_embedding"], streaming=streaming,
                                finalize=finalize)


def synthesize(p: Pipeline, case: Mapping[str, np.ndarray], sampling: str = "greedy", seed: int | None = None,
               stream: bool = False, upstream_quirks: bool = True) -> dict[str, np.ndarray]:
    """Returns ``speech_tokens`` int32 [1, n] (after the silent filter), ``mel`` [1, 80, T], ``speech`` [1, 480 T]."""
    case = validate_case(case)
    _check_ranges(p, case)
    gen = llm_generate.generate(p.runners, p.constants["llm"], case["text"][0], case["prompt_text"][0],
                                case["llm_prompt_speech_token"][0], sampling=sampling, seed=seed,
                                upstream_quirks=upstream_quirks)
    tokens = np.asarray(gen.tokens_for_flow, np.int32).reshape(1, -1)
    if tokens.shape[1] == 0:
        raise InputError("the LLM produced no speech tokens (it stopped at the first step)", key="text",
                         found=f"stop token {gen.stop_token}")
    if not stream:
        mel = _flow(p, tokens, case, streaming=False, finalize=True)
        return {"speech_tokens": tokens, "mel": mel, "speech": _hift(p, mel)}
    return _synthesize_stream(p, tokens, case)


def _synthesize_stream(p: Pipeline, tokens: np.ndarray, case: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Upstream's streaming token2wav schedule over already generated tokens (README "Orchestration")."""
    ratio = int(p.constants["flow"]["token_mel_ratio"])
    lookahead = int(p.constants["flow"]["pre_lookahead_len"])
    n_prompt = case["flow_prompt_speech_token"].shape[1]
    hop = TOKEN_HOP + (-(n_prompt) % TOKEN_HOP)  # pad the first hop: prompt + hop is a multiple of 25
    offset, mel_acc, emitted, pieces = 0, None, 0, []
    total = tokens.shape[1]

    def emit(n_tokens: int, finalize: bool) -> None:
        nonlocal mel_acc, emitted
        mel = _flow(p, tokens[:, :n_tokens], case, streaming=not finalize, finalize=finalize)
        new = mel[:, :, offset * ratio:]
        mel_acc = new if mel_acc is None else np.concatenate([mel_acc, new], axis=2)
        speech = _hift_stream(p, mel_acc, finalize)
        pieces.append(speech[:, emitted:])
        emitted = speech.shape[1]

    while total - offset >= hop + lookahead:
        emit(offset + hop + lookahead, finalize=False)
        offset += hop
        hop = min(TOKEN_MAX_HOP, hop * STREAM_SCALE)
    emit(total, finalize=True)
    return {"speech_tokens": tokens, "mel": mel_acc, "speech": np.concatenate(pieces, axis=1)}


def _hift_stream(p: Pipeline, mel: np.ndarray, finalize: bool) -> np.ndarray:
    speech = _hift(p, mel)
    if finalize:
        return speech
    c = p.constants["hift"]
    keep = int(c["samples_per_frame"]) * (mel.shape[2] - int(c["finalize"]["stream_trim_frames"]))
    return speech[:, :max(keep, 0)]


# ---------------------------------------------------------------- end-to-end goldens
E2E_TOLERANCES = {  # issue #9: tokens identical, mel within 1e-3, waveform SQNR >= 40 dB
    "speech_tokens": {"atol": 0.0, "rtol": 0.0, "exact": True},
    "mel": {"atol": 1e-3, "rtol": 0.0},
    "speech": {"atol": 1e-3, "rtol": 0.0, "elementwise": False, "metrics": {"sqnr_db": 40.0}},
}


def example_case(constants: Mapping[str, Mapping[str, Any]], seed: int) -> dict[str, np.ndarray]:
    """A deterministic synthesis case in upstream frontend names (random ids within the vocabularies)."""
    rng = np.random.default_rng(seed)
    llm, flow = constants["llm"], constants["flow"]
    n_prompt = 4
    prompt_tokens = rng.integers(0, min(int(llm["speech_token_size"]), int(flow["vocab_size"])), (1, n_prompt))
    feat = -5.0 + 2.0 * rng.standard_normal((1, n_prompt * int(flow["token_mel_ratio"]), int(flow["mel_bins"])))
    emb = rng.standard_normal((1, int(flow["spk_embed_dim"])))
    return {"text": rng.integers(0, int(llm["text_vocab_size"]), (1, 5)).astype(np.int32),
            "prompt_text": rng.integers(0, int(llm["text_vocab_size"]), (1, 4)).astype(np.int32),
            "llm_prompt_speech_token": prompt_tokens.astype(np.int32),
            "flow_prompt_speech_token": prompt_tokens.astype(np.int32),
            "prompt_speech_feat": feat.astype(np.float32),
            "llm_embedding": emb.astype(np.float32), "flow_embedding": emb.astype(np.float32)}


def pipeline_goldens(bundle: Path, manifest: dict[str, Any], seed: int, write_array) -> dict[str, Any] | None:
    """The manifest's ``pipeline`` section: one greedy non-streaming tts() case over the bundle's own graphs
    (under the Sentis view of reduced-precision graphs), or None when the bundle cannot synthesize."""
    if not all(c in {x["name"] for x in manifest["components"]} for c in REQUIRED):
        return None
    pipe = Pipeline.open(bundle, manifest=manifest)
    for attempt in range(16):  # random weights may stop at the first step: take the first case that speaks
        case = example_case(pipe.constants, seed + attempt)
        try:
            out = synthesize(pipe, case)
        except InputError:
            continue
        base = "Golden~/pipeline/tts_greedy"
        return {"goldens": [{
            "name": "tts_greedy",
            "description": "CosyVoice3Model.tts(stream=False) with greedy sampling: LLM -> silent filter -> flow -> "
                           "HiFT, host loops over this bundle's graphs",
            "settings": {"sampling": "greedy", "stream": False, "upstream_quirks": True},
            "inputs": [write_array(bundle, f"{base}/in.{k}.npy", k, v) for k, v in case.items()],
            "outputs": [write_array(bundle, f"{base}/out.{k}.npy", k, v) for k, v in out.items()],
            "tolerances": [{"output": k, **v} for k, v in E2E_TOLERANCES.items()],
        }]}
    raise PackagerError("no end-to-end golden case produced speech tokens in 16 attempts (degenerate LLM?)",
                        key="pipeline")


def verify_pipeline(bundle: Path, manifest: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Re-run every end-to-end golden; (subject, passed, detail) per output."""
    from packager.tolerance import compare
    from packager.verify import load_array

    rows = []
    pipe = Pipeline.open(bundle, manifest=manifest)
    for g in manifest.get("pipeline", {}).get("goldens", []):
        case = {t["name"]: load_array(bundle, t, t["file"]) for t in g["inputs"]}
        s = g["settings"]
        got = synthesize(pipe, case, sampling=s["sampling"], seed=s.get("seed"), stream=s["stream"],
                         upstream_quirks=s["upstream_quirks"])
        tols = {t["output"]: t for t in g["tolerances"]}
        for t in g["outputs"]:
            v = compare(t["name"], got[t["name"]], load_array(bundle, t, t["file"]), tols[t["name"]])
            rows.append((f"pipeline/{g['name']}/{t['name']}", v.passed, v.summary()))
    return rows


def write_wav(path: Path, speech: np.ndarray, sample_rate: int) -> None:
    pcm = np.clip(np.round(np.asarray(speech, np.float64).reshape(-1) * 32767.0), -32768, 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


# ---------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Synthesize speech with a bundle: LLM generation, flow Euler/CFG and HiFT on onnxruntime, "
                     "exactly as the Unity runtime runs them.")
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.add_argument("--inputs", type=Path, required=True, metavar="CASE.npz",
                   help="upstream frontend arrays: " + ", ".join(CASE_KEYS))
    p.add_argument("--output", type=Path, required=True, metavar="OUT.npz",
                   help="writes speech_tokens, mel, speech")
    p.add_argument("--wav", type=Path, metavar="OUT.wav", help="also write a 16-bit PCM WAV (24 kHz)")
    p.add_argument("--sampling", choices=["greedy", "ras"], default="greedy")
    p.add_argument("--seed", type=int, default=0, help="seed of the RAS sampler (numpy PCG64)")
    p.add_argument("--stream", action="store_true", help="upstream's streaming schedule")
    p.add_argument("--fix-min-len-quirk", action="store_true",
                   help="mask the whole stop range before min_len (upstream masks only SOS: quirk L3)")


def run(args: argparse.Namespace) -> int:
    case = read_npz(args.inputs)
    validate_case(case, str(args.inputs))
    pipe = Pipeline.open(args.bundle)
    t0 = time.perf_counter()
    out = synthesize(pipe, case, sampling=args.sampling, seed=args.seed, stream=args.stream,
                     upstream_quirks=not args.fix_min_len_quirk)
    dt = time.perf_counter() - t0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.output, **out)
    sr = int(pipe.constants["hift"]["sample_rate"])
    if args.wav:
        write_wav(args.wav, out["speech"], sr)
    seconds = out["speech"].shape[1] / sr
    print(f"{out['speech_tokens'].shape[1]} speech tokens, mel {list(out['mel'].shape)}, {seconds:.2f} s of audio "
          f"in {dt:.2f} s (RTF {dt / max(seconds, 1e-9):.2f}) -> {args.output}" + (f", {args.wav}" if args.wav else ""))
    return 0
