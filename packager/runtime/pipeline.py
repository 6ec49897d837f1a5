"""End-to-end CosyVoice3 ``tts()`` over a bundle's graphs on onnxruntime (the command line: ``packager.verbs.synth``).

Only the bundle is used: its graphs, its manifest constants and its host data, driven by the host loops in
``packager/runtime`` -- the executable specification the Unity runtime follows step for step:

    LLM generation (llm_generate.generate) -> silent-token filter -> flow (euler_cfg.synthesize)
    -> HiFT (noise rows [0, 480 T) of the shipped table, continued past it) -> waveform

Non-streaming reproduces upstream ``CosyVoice3Model.tts(stream=False)``. ``stream=True`` follows upstream's
streaming schedule (README "Orchestration"; the flow constants' ``stream`` entry): token hops 25 -> 50 -> 100 (the
first padded so that prompt + hop is a multiple of 25), each chunk re-running the flow on prompt + all tokens so
far + the look-ahead tokens with the chunked attention mask and ``finalize=False``, HiFT re-run on the accumulated
mel emitting only new samples, and a final ``finalize=True`` call.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from packager.contract import manifest as B
from packager.contract.errors import InputError, PackagerError
from packager.contract.thresholds import E2E_TOLERANCES
from packager.runtime import euler_cfg, llm_generate
from packager.runtime.hift_noise import noise_for_frames
from packager.onnx.session import run_onnx, session
from packager.ui.progress import step_of
from packager.sentis.numerics import target_model
from packager.frontend.text_tokenizer import Qwen2Tokenizer

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


@dataclass
class Pipeline:
    """A bundle opened for synthesis: one runner per graph, constants and host data per component."""

    runners: dict[str, Any]
    constants: dict[str, dict[str, Any]]
    data: dict[str, np.ndarray]

    @classmethod
    def open(cls, bundle: Path, threads: int = 1, manifest: dict[str, Any] | None = None,
             one_component_at_a_time: bool = False) -> "Pipeline":
        """``one_component_at_a_time``: sessions open on first use and close when another component's graph runs
        (a non-streaming tts() then holds one component in memory, not all: the build's pipeline golden)."""
        manifest = manifest if manifest is not None else B.open_manifest(bundle)
        return cls(*open_components(bundle, manifest, REQUIRED, threads, purpose="synthesis",
                                    lazy=one_component_at_a_time))

    def tokenizer(self) -> Qwen2Tokenizer:
        """The bundle's text tokenizer (its ``text_tokenizer_*`` tables), or an error naming what is missing."""
        return bundle_tokenizer(self.constants["llm"], self.data)


class _OneComponentSessions:
    """Sessions opened on first use; running a graph of another component closes the open component's sessions."""

    def __init__(self) -> None:
        self.component: str | None = None
        self.sessions: dict[str, Any] = {}

    def runner(self, component: str, graph: str, open_session: Callable[[], Any]) -> Callable:
        def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            if self.component != component:
                self.sessions.clear()
                gc.collect()
                self.component = component
            if graph not in self.sessions:
                self.sessions[graph] = open_session()
            return run_onnx(self.sessions[graph], inputs)
        return run


def open_components(bundle: Path, manifest: Mapping[str, Any], names: Sequence[str], threads: int = 1,
                    purpose: str = "synthesis", run: Sequence[str] | None = None, lazy: bool = False):
    """(runners, constants, data) of components ``names``: one onnxruntime session per graph over the arithmetic
    Unity performs (the Sentis view of fp16/uint8 graphs), each file checked against its sha256 first. With
    ``run``, only those components' graphs get sessions (the others give constants and data only). ``lazy``:
    sessions open on first use, one component's at a time (see ``Pipeline.open``)."""
    comps = {c["name"]: c for c in manifest["components"]}
    missing = [c for c in names if c not in comps]
    if missing:
        raise PackagerError(f"the bundle lacks components needed for {purpose}", file=str(bundle),
                            expected=", ".join(names), found=", ".join(comps))
    runners, data = {}, {}
    lazy_sessions = _OneComponentSessions()
    for name in names:
        for g in (comps[name]["graphs"] if run is None or name in run else []):
            def open_session(g=g, name=name):
                return session(target_model(B.check_graph_files(bundle, g, f"{name}/{g['name']}"), g), threads)
            if lazy:
                runners[g["name"]] = lazy_sessions.runner(name, g["name"], open_session)
            else:
                sess = open_session()
                runners[g["name"]] = lambda inputs, s=sess: run_onnx(s, inputs)
        for d in comps[name]["data"]:
            data[d["name"]] = B.load_array(bundle, d, f"{name}/{d['name']}")
    return runners, {n: comps[n]["constants"] for n in names}, data


def bundle_tokenizer(llm_constants: Mapping[str, Any], data: Mapping[str, np.ndarray]) -> Qwen2Tokenizer:
    info = llm_constants.get("text_tokenizer", {})
    if not info.get("available"):
        raise PackagerError("the bundle has no text tokenizer: " + str(info.get("reason", "")), key="text_tokenizer",
                            expected="a bundle built from a checkpoint with CosyVoice-BlankEN/ tokenizer files")
    prefix = "text_tokenizer_"
    return Qwen2Tokenizer.from_tables({n[len(prefix):]: data[n] for n in info["data"]})


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


class NoSpeechTokens(InputError):
    """The LLM stopped before its first speech token (possible with any checkpoint; frequent with random weights)."""

    def __init__(self, stop_token: int):
        self.stop_token = stop_token
        super().__init__("the LLM produced no speech tokens (it stopped at the first step)", key="text",
                         found=f"stop token {stop_token}")


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
    # upstream's frontend gives both the same CAMPPlus embedding (the CosyVoice3 LM does not read llm_embedding)
    dims = {"llm_embedding": int(flow["spk_embed_dim"]), "flow_embedding": int(flow["spk_embed_dim"])}
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
    return p.runners[c["graphs"]["vocoder"]]({"mel": np.ascontiguousarray(mel, np.float32), noise_cfg["input"]: noise})["waveform"]


def _flow(p: Pipeline, tokens: np.ndarray, case: Mapping[str, np.ndarray], streaming: bool, finalize: bool):
    c = p.constants["flow"]
    return euler_cfg.synthesize(p.runners, c, p.data[c["noise"]], tokens, case["flow_prompt_speech_token"],
                                case["prompt_speech_feat"], case["flow_embedding"], streaming=streaming,
                                finalize=finalize)


def synthesize(p: Pipeline, case: Mapping[str, np.ndarray], sampling: str = "greedy", seed: int | None = None,
               stream: bool = False, upstream_quirks: bool = True,
               on_audio: Callable[[np.ndarray], None] | None = None, *, min_len: int | None = None,
               max_len: int | None = None, on_token: Callable[[int], None] | None = None, log=None,
               label: str = "") -> dict[str, np.ndarray]:
    """Returns ``speech_tokens`` int32 [1, n] (after the silent filter), ``mel`` [1, 80, T], ``speech`` [1, 480 T].

    ``stream=True`` runs the flow and HiFT on each chunk as soon as the LLM has produced its tokens (upstream's
    schedule), calling ``on_audio(samples [1, k])`` for each new piece of audio; the result is the same as running
    the schedule after generation (``stream_tokens``). ``min_len``/``max_len``: the decode limits (default: upstream's
    ratios of the manifest constants times the text length). ``on_token(token)``: every generated token.
    ``log``: a ``Progress`` (or any log callable) that shows the LLM's tokens and the flow + HiFT step live, each
    step's label starting with ``label``. Raises ``NoSpeechTokens`` when the LLM stops before its first token."""
    case = validate_case(case)
    _check_ranges(p, case)
    streamer = _Streamer(p, case, on_audio) if stream else None
    llm = p.constants["llm"]
    n_text = case["text"].shape[1]
    expected = llm_generate.expected_tokens(llm, n_text)
    if max_len is not None:
        expected = max(1, min(expected, max_len))
    emitted: list[int] = []
    with step_of(log, f"{label}LLM", total=expected, unit="tok") as st:
        def on_llm_token(token: int) -> None:
            st.advance(1)
            if on_token is not None:
                on_token(token)
            if streamer is not None:
                emitted.append(token)
                streamer.push(np.asarray(llm_generate.silent_filter(emitted, llm), np.int32)[None])

        gen = llm_generate.generate(p.runners, llm, case["text"][0], case["prompt_text"][0],
                                    case["llm_prompt_speech_token"][0], sampling=sampling, seed=seed,
                                    upstream_quirks=upstream_quirks, min_len=min_len, max_len=max_len,
                                    on_token=on_llm_token)
    tokens = np.asarray(gen.tokens_for_flow, np.int32).reshape(1, -1)
    if tokens.shape[1] == 0:
        raise NoSpeechTokens(gen.stop_token)
    with step_of(log, f"{label}flow + HiFT"):
        if streamer is None:
            mel = _flow(p, tokens, case, streaming=False, finalize=True)
            speech = _hift(p, mel)
            if on_audio is not None:
                on_audio(speech)
            return {"speech_tokens": tokens, "mel": mel, "speech": speech}
        return streamer.finish(tokens)


def stream_tokens(p: Pipeline, tokens: np.ndarray, case: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Upstream's streaming token2wav schedule over already generated tokens."""
    s = _Streamer(p, validate_case(case), None)
    s.push(tokens)
    return s.finish(tokens)


class _Streamer:
    """Upstream's streaming token2wav schedule (README "Orchestration"), fed with the tokens generated so far."""

    def __init__(self, p: Pipeline, case: Mapping[str, np.ndarray],
                 on_audio: Callable[[np.ndarray], None] | None) -> None:
        self.p, self.case, self.on_audio = p, case, on_audio
        flow = p.constants["flow"]
        self.ratio = int(flow["token_mel_ratio"])
        self.lookahead = int(flow["pre_lookahead_len"])
        if "stream" not in flow:
            raise PackagerError("the bundle's flow constants have no streaming schedule (built by an older "
                                "packager); rebuild it", key="flow.constants.stream")
        self.token_hop, self.max_hop, self.scale = (int(flow["stream"][k]) for k in ("token_hop", "token_max_hop",
                                                                                     "scale"))
        n_prompt = case["flow_prompt_speech_token"].shape[1]
        self.hop = self.token_hop + (-n_prompt % self.token_hop)  # pad the first hop: prompt + hop, a whole hop
        self.offset, self.mel_acc, self.emitted, self.pieces = 0, None, 0, []

    def push(self, tokens: np.ndarray) -> None:
        while tokens.shape[1] - self.offset >= self.hop + self.lookahead:
            self._emit(tokens[:, :self.offset + self.hop + self.lookahead], finalize=False)
            self.offset += self.hop
            self.hop = min(self.max_hop, self.hop * self.scale)

    def finish(self, tokens: np.ndarray) -> dict[str, np.ndarray]:
        self._emit(tokens, finalize=True)
        return {"speech_tokens": tokens, "mel": self.mel_acc, "speech": np.concatenate(self.pieces, axis=1)}

    def _emit(self, tokens: np.ndarray, finalize: bool) -> None:
        mel = _flow(self.p, tokens, self.case, streaming=not finalize, finalize=finalize)
        new = mel[:, :, self.offset * self.ratio:]
        self.mel_acc = new if self.mel_acc is None else np.concatenate([self.mel_acc, new], axis=2)
        speech = _hift_stream(self.p, self.mel_acc, finalize)
        piece = speech[:, self.emitted:]
        self.pieces.append(piece)
        self.emitted = speech.shape[1]
        if self.on_audio is not None and piece.shape[1]:
            self.on_audio(piece)


def _hift_stream(p: Pipeline, mel: np.ndarray, finalize: bool) -> np.ndarray:
    speech = _hift(p, mel)
    if finalize:
        return speech
    c = p.constants["hift"]
    keep = int(c["samples_per_frame"]) * (mel.shape[2] - int(c["finalize"]["stream_trim_frames"]))
    return speech[:, :max(keep, 0)]


# ---------------------------------------------------------------- end-to-end goldens


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


@dataclass
class PipelineGolden:
    """One end-to-end golden case: the inputs (upstream frontend names), what ``synthesize`` made of them with
    ``settings``, and the tolerance of each output (manifest ``pipeline.goldens``)."""

    name: str
    description: str
    settings: dict[str, Any]
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    tolerances: dict[str, Any] = field(default_factory=lambda: dict(E2E_TOLERANCES))


def can_synthesize(manifest: Mapping[str, Any]) -> bool:
    """Whether the bundle has every component synthesis needs."""
    return all(c in {x["name"] for x in manifest["components"]} for c in REQUIRED)


def tts_golden(pipe: Pipeline, seed: int) -> PipelineGolden:
    """The bundle's end-to-end golden: one greedy non-streaming tts() over its own graphs (the Sentis view of
    reduced-precision graphs), on the first example case from ``seed`` on whose LLM speaks."""
    for attempt in range(16):  # random weights may stop at the first step: take the first case that speaks
        case = example_case(pipe.constants, seed + attempt)
        try:
            out = synthesize(pipe, case)
        except InputError:
            continue
        return PipelineGolden(
            name="tts_greedy",
            description="CosyVoice3Model.tts(stream=False) with greedy sampling: LLM -> silent filter -> flow -> "
                        "HiFT, host loops over this bundle's graphs",
            settings={"sampling": "greedy", "stream": False, "upstream_quirks": True}, inputs=case, outputs=out)
    raise PackagerError("no end-to-end golden case produced speech tokens in 16 attempts (degenerate LLM?)",
                        key="pipeline")


def verify_pipeline(bundle: Path, manifest: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Re-run every end-to-end golden; (subject, passed, detail) per output."""
    from packager.contract.tolerance import compare

    rows = []
    pipe = Pipeline.open(bundle, manifest=manifest)
    for g in manifest.get("pipeline", {}).get("goldens", []):
        case = {t["name"]: B.load_array(bundle, t, t["file"]) for t in g["inputs"]}
        s = g["settings"]
        got = synthesize(pipe, case, sampling=s["sampling"], seed=s.get("seed"), stream=s["stream"],
                         upstream_quirks=s["upstream_quirks"])
        tols = {t["output"]: t for t in g["tolerances"]}
        for t in g["outputs"]:
            v = compare(t["name"], got[t["name"]], B.load_array(bundle, t, t["file"]), tols[t["name"]])
            rows.append((f"pipeline/{g['name']}/{t['name']}", v.passed, v.summary()))
    return rows
