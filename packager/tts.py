"""Plain text + a voice pack -> speech over a bundle: upstream's text frontend and its three CosyVoice3 modes.

For each mode the LLM input is built exactly as upstream's frontend builds it (design/frontend.md §3):

* ``zero_shot`` (``inference_zero_shot``): prompt_text = the voice's prompt text (system prompt, <|endofprompt|>,
  transcript), LLM prompt speech tokens = the voice's tokens; text = one normalized piece of the target text.
* ``instruct`` (``inference_instruct2``): prompt_text = the instruction ("You are a helpful assistant. <instruction>
  <|endofprompt|>"), no LLM prompt speech tokens.
* ``cross_lingual`` (``inference_cross_lingual``): no prompt text, no LLM prompt speech tokens; the system prompt and
  <|endofprompt|> lead the text itself.

The flow always gets the voice's prompt tokens, prompt mel and embedding. The target text goes through upstream's
``text_normalize`` (packager.text_frontend): normalization, number spelling, sentence splitting; each piece is one
synthesis, and the pieces' audio is concatenated.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from packager import text_frontend
from packager.errors import InputError
from packager.synth import Pipeline, synthesize
from packager.text_tokenizer import Qwen2Tokenizer
from packager.voicepack import ENDOFPROMPT, SYSTEM_PROMPT, VoicePack

MODES = ("zero_shot", "instruct", "cross_lingual")
INSTRUCT_PREFIX = SYSTEM_PROMPT + " "  # upstream's instruct strings: "You are a helpful assistant. ...<|endofprompt|>"
EMPTY = np.zeros((1, 0), np.int32)


def instruct_prompt(instruction: str) -> str:
    """The prompt text of instruct mode: used as given when it has <|endofprompt|>, else wrapped like upstream's."""
    s = (instruction or "").strip()
    if not s:
        raise InputError("empty instruction", key="--instruct", expected="an instruction, e.g. 'Speak slowly.'")
    return s if ENDOFPROMPT in s else INSTRUCT_PREFIX + s + ENDOFPROMPT


def text_pieces(tok: Qwen2Tokenizer, text: str, use_wetext: bool | None = None) -> list[str]:
    """Upstream's ``text_normalize(text, split=True)``; an error when nothing speakable is left."""
    if text is None or not text.strip():
        raise InputError("empty text", key="--text", expected="text with at least one letter or digit")
    pieces = text_frontend.normalize(text, tok.encode, split=True, use_wetext=use_wetext)
    pieces = [p for p in pieces if text_frontend.is_speakable(p)]
    if not pieces:
        raise InputError("the text has nothing to speak (only punctuation or symbols)", key="--text",
                         expected="text with at least one letter or digit", found=repr(text[:60]))
    return pieces


def frontend_cases(tok: Qwen2Tokenizer, voice: VoicePack, text: str, mode: str = "zero_shot",
                   instruct: str | None = None, use_wetext: bool | None = None) -> list[tuple[str, dict[str, np.ndarray]]]:
    """[(piece, case)]: one synthesis case per text piece, in upstream frontend names (``synth --inputs``)."""
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
    for piece in text_pieces(tok, text, use_wetext):
        spoken = piece
        if mode == "cross_lingual" and ENDOFPROMPT not in piece:
            spoken = SYSTEM_PROMPT + ENDOFPROMPT + piece
        cases.append((spoken, {**base, "text": np.asarray(tok.encode(spoken), np.int32).reshape(1, -1)}))
    return cases


@dataclass
class Speech:
    speech: np.ndarray  # float32 [n] at sample_rate
    sample_rate: int
    pieces: list[str]
    speech_tokens: list[np.ndarray]
    seconds: float  # wall time of the synthesis
    first_audio_s: float | None = None  # wall time until the first audio chunk
    chunks: list[int] = field(default_factory=list)  # samples per emitted chunk
    mels: list[np.ndarray] = field(default_factory=list)  # the flow's mel [1, 80, T] per text piece


def speak(p: Pipeline, voice: VoicePack, text: str, mode: str = "zero_shot", instruct: str | None = None,
          sampling: str = "greedy", seed: int | None = 0, stream: bool = False, upstream_quirks: bool = True,
          on_audio: Callable[[np.ndarray], None] | None = None, use_wetext: bool | None = None,
          manifest: Mapping | None = None) -> Speech:
    """Synthesize ``text`` in ``voice``: one synthesis per text piece, audio concatenated (and handed to
    ``on_audio`` chunk by chunk as it is produced)."""
    t0 = time.perf_counter()
    tok = p.tokenizer()
    cases = frontend_cases(tok, voice, text, mode, instruct, use_wetext)
    sr = int(p.constants["hift"]["sample_rate"])
    first: list[float] = []
    chunks: list[int] = []

    def emit(samples: np.ndarray) -> None:
        if not first:
            first.append(time.perf_counter() - t0)
        chunks.append(int(samples.size))
        if on_audio is not None:
            on_audio(samples.reshape(-1))

    out, tokens, mels = [], [], []
    for k, (_, case) in enumerate(cases):
        res = synthesize(p, case, sampling=sampling, seed=None if seed is None else seed + k, stream=stream,
                         upstream_quirks=upstream_quirks, on_audio=emit)
        out.append(res["speech"].reshape(-1))
        tokens.append(res["speech_tokens"])
        mels.append(res["mel"])
    return Speech(np.concatenate(out).astype(np.float32), sr, [c[0] for c in cases], tokens,
                  time.perf_counter() - t0, first[0] if first else None, chunks, mels)
