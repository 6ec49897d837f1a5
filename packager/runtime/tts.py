"""Plain text + a voice pack -> speech over a bundle: upstream's text frontend and its three CosyVoice3 modes.

For each mode the LLM input is built exactly as upstream's frontend builds it (design/frontend.md §3):

* ``zero_shot`` (``inference_zero_shot``): prompt_text = the voice's prompt text (system prompt, <|endofprompt|>,
  transcript), LLM prompt speech tokens = the voice's tokens; text = one normalized piece of the target text.
* ``instruct`` (``inference_instruct2``): prompt_text = the instruction ("You are a helpful assistant. <instruction>
  <|endofprompt|>"), no LLM prompt speech tokens.
* ``cross_lingual`` (``inference_cross_lingual``): no prompt text, no LLM prompt speech tokens; the system prompt and
  <|endofprompt|> lead the text itself.

The flow always gets the voice's prompt tokens, prompt mel and embedding. The target text goes through upstream's
``text_normalize`` (packager.frontend.text): normalization, number spelling, sentence splitting; each piece is one
synthesis, and the pieces' audio is concatenated.

How long each piece's speech is (``length``): ``"llm"`` is upstream's rule, the LLM's stop token ends the piece
within min_len .. max_len (quirk L3 as ``upstream_quirks`` says). ``"min_len"`` decodes exactly upstream's
``min_len = int(min_len_ratio * text tokens)`` tokens, the whole stop range masked until then: for the random-weight
tiny preset, whose LLM never learned when a sentence is over (its stop token wins at arbitrary steps, the first one
included, or never, up to max_len).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from packager.frontend import text as text_frontend
from packager.contract.errors import InputError
from packager.runtime import llm_generate
from packager.runtime.pipeline import NoSpeechTokens, Pipeline, synthesize
from packager.frontend.text_tokenizer import Qwen2Tokenizer
from packager.frontend.text_tokenizer import ENDOFPROMPT
from packager.frontend.voicepack import SYSTEM_PROMPT, VoicePack

MODES = ("zero_shot", "instruct", "cross_lingual")
LENGTHS = ("llm", "min_len")  # who ends a piece's speech: the LLM's stop token (upstream) or upstream's min_len
INSTRUCT_PREFIX = SYSTEM_PROMPT + " "  # upstream's instruct strings: "You are a helpful assistant. ...<|endofprompt|>"
EMPTY = np.zeros((1, 0), np.int32)


def instruct_prompt(instruction: str) -> str:
    """The prompt text of instruct mode: used as given when it has <|endofprompt|>, else wrapped like upstream's."""
    s = (instruction or "").strip()
    if not s:
        raise InputError("empty instruction", key="--instruct", expected="an instruction, e.g. 'Speak slowly.'")
    return s if ENDOFPROMPT in s else INSTRUCT_PREFIX + s + ENDOFPROMPT


def text_pieces(tok: Qwen2Tokenizer, text: str, use_wetext: bool | None = None, arg: str = "--text") -> list[str]:
    """Upstream's ``text_normalize(text, split=True)``; an error naming ``arg`` when nothing speakable is left."""
    if text is None or not text.strip():
        raise InputError("empty text", key=arg, expected="text with at least one letter or digit")
    pieces = text_frontend.normalize(text, tok.encode, split=True, use_wetext=use_wetext)
    pieces = [p for p in pieces if text_frontend.is_speakable(p)]
    if not pieces:
        raise InputError("the text has nothing to speak (only punctuation or symbols)", key=arg,
                         expected="text with at least one letter or digit", found=repr(text[:60]))
    return pieces


def frontend_cases(tok: Qwen2Tokenizer, voice: VoicePack, text: str, mode: str = "zero_shot",
                   instruct: str | None = None, use_wetext: bool | None = None,
                   pieces: Sequence[str] | None = None) -> list[tuple[str, dict[str, np.ndarray]]]:
    """[(piece, case)]: one synthesis case per text piece, in upstream frontend names (``synth --inputs``).
    ``pieces``: ``text_pieces(tok, text)`` when already computed (normalization of a long text takes seconds)."""
    if mode not in MODES:
        raise InputError("unknown mode", key="mode", expected=", ".join(MODES), found=repr(mode))
    base = voice.frontend_arrays()
    if mode == "instruct":
        base["prompt_text"] = np.asarray(tok.encode(instruct_prompt(instruct)), np.int32).reshape(1, -1)
        base["llm_prompt_speech_token"] = EMPTY
    elif mode == "cross_lingual":
        base["prompt_text"] = EMPTY
        base["llm_prompt_speech_token"] = EMPTY
    cases = []
    for piece in (text_pieces(tok, text, use_wetext) if pieces is None else pieces):
        spoken = piece
        if mode == "cross_lingual" and ENDOFPROMPT not in piece:
            spoken = SYSTEM_PROMPT + ENDOFPROMPT + piece
        cases.append((spoken, {**base, "text": np.asarray(tok.encode(spoken), np.int32).reshape(1, -1)}))
    return cases


def preview(piece: str, words: int = 6, chars: int = 40) -> str:
    """The first words of a text piece for messages (the cross-lingual system prompt left out): at most ``words``
    whole words within ``chars`` characters (text without spaces, e.g. Chinese: its first ``chars // 2``
    characters), "…" when cut."""
    if piece.startswith(SYSTEM_PROMPT + ENDOFPROMPT):
        piece = piece[len(SYSTEM_PROMPT + ENDOFPROMPT):]
    piece = " ".join(piece.split())
    cut = ""
    for w in piece.split(" ")[:words]:
        if cut and len(cut) + 1 + len(w) > chars:
            break
        cut = f"{cut} {w}" if cut else w
    if len(cut) > chars or (" " not in piece and len(cut) > chars // 2):
        cut = cut[:chars // 2 if " " not in piece else chars]
    return cut if cut == piece else cut.rstrip() + "…"


@dataclass
class Speech:
    speech: np.ndarray  # float32 [n] at sample_rate
    sample_rate: int
    pieces: list[str]
    speech_tokens: list[np.ndarray]  # per piece (int32 [1, 0] for a skipped piece)
    seconds: float  # wall time of the synthesis
    first_audio_s: float | None = None  # wall time until the first audio chunk
    chunks: list[int] = field(default_factory=list)  # samples per emitted chunk
    mels: list[np.ndarray] = field(default_factory=list)  # the flow's mel [1, 80, T] per piece ([1, 80, 0]: skipped)
    skipped: list[int] = field(default_factory=list)  # indices of pieces where the LLM stopped before its first token


def speak(p: Pipeline, voice: VoicePack, text: str, mode: str = "zero_shot", instruct: str | None = None,
          sampling: str = "greedy", seed: int | None = 0, stream: bool = False, upstream_quirks: bool = True,
          on_audio: Callable[[np.ndarray], None] | None = None, use_wetext: bool | None = None,
          manifest: Mapping | None = None, *, length: str = "llm", log=None,
          on_empty_piece: Callable[[int, str, int], None] | None = None,
          pieces: Sequence[str] | None = None) -> Speech:
    """Synthesize ``text`` in ``voice``: one synthesis per text piece, audio concatenated (and handed to
    ``on_audio`` chunk by chunk as it is produced).

    ``length``: ``"llm"`` (upstream) or ``"min_len"`` (module docstring). ``log``: a ``Progress`` (or any log
    callable): a line per piece (tokens, audio seconds, RTF) and live steps while a piece runs. A piece where the LLM
    stops before its first token raises ``NoSpeechTokens`` (as the C# runtime does), unless ``on_empty_piece`` is
    given: then ``on_empty_piece(k, piece, stop_token)`` is called, the piece is skipped and the rest is spoken; an
    error only when no piece was spoken. ``pieces``: as ``frontend_cases`` takes them."""
    if length not in LENGTHS:
        raise InputError("unknown length rule", key="length", expected=", ".join(LENGTHS), found=repr(length))
    t0 = time.perf_counter()
    tok = p.tokenizer()
    cases = frontend_cases(tok, voice, text, mode, instruct, use_wetext, pieces)
    sr = int(p.constants["hift"]["sample_rate"])
    llm = p.constants["llm"]
    first: list[float] = []
    chunks: list[int] = []

    def emit(samples: np.ndarray) -> None:
        if not first:
            first.append(time.perf_counter() - t0)
        chunks.append(int(samples.size))
        if on_audio is not None:
            on_audio(samples.reshape(-1))

    n = len(cases)
    if length == "min_len":  # exactly upstream's min_len per piece
        expected = [max(1, int(llm["min_len_ratio"] * c["text"].shape[1])) for _, c in cases]
    else:  # the progress estimate (3 x min_len, at most max_len); the LLM decides
        expected = [llm_generate.expected_tokens(llm, c["text"].shape[1]) for _, c in cases]
    if log is not None:
        flow = p.constants["flow"]
        per_token = int(flow["token_mel_ratio"]) * int(p.constants["hift"]["samples_per_frame"]) / sr
        about = "" if length == "min_len" else "about "
        rule = ("each piece exactly upstream's min_len (length: min_len)" if length == "min_len"
                else "each piece ends at the LLM's stop token")
        log(f"{n} text piece(s), {sum(c['text'].shape[1] for _, c in cases)} text tokens -> {about}{sum(expected)} "
            f"speech tokens ({about}{sum(expected) * per_token:.0f} s of audio); {rule}")
    out, tokens, mels, skipped = [], [], [], []
    mel_bins = int(p.constants["flow"]["mel_bins"])
    for k, (piece, case) in enumerate(cases):
        fixed = expected[k] if length == "min_len" else None  # decode exactly min_len, stop range masked
        tp = time.perf_counter()
        try:
            res = synthesize(p, case, sampling=sampling, seed=None if seed is None else seed + k, stream=stream,
                             upstream_quirks=upstream_quirks and fixed is None, on_audio=emit, min_len=fixed,
                             max_len=fixed, log=log, label=f"piece {k + 1}/{n}: ")
        except NoSpeechTokens as exc:
            if on_empty_piece is None:
                raise
            on_empty_piece(k, piece, exc.stop_token)
            skipped.append(k)
            out.append(np.zeros(0, np.float32))
            tokens.append(np.zeros((1, 0), np.int32))
            mels.append(np.zeros((1, mel_bins, 0), np.float32))
            continue
        out.append(res["speech"].reshape(-1))
        tokens.append(res["speech_tokens"])
        mels.append(res["mel"])
        if log is not None:
            dt, secs = time.perf_counter() - tp, res["speech"].size / sr
            log(f"piece {k + 1}/{n} \"{preview(piece)}\": {res['speech_tokens'].shape[1]} speech tokens, "
                f"{secs:.2f} s of audio in {dt:.2f} s (RTF {dt / max(secs, 1e-9):.2f})")
    if len(skipped) == n:
        raise InputError(f"the LLM produced no speech tokens for any of the {n} text piece(s) (it stopped at the "
                         "first step each time); nothing was written", key="text",
                         expected="another --seed, --sampling ras (or greedy), or rephrased text")
    return Speech(np.concatenate(out).astype(np.float32), sr, [c[0] for c in cases], tokens,
                  time.perf_counter() - t0, first[0] if first else None, chunks, mels, skipped)
