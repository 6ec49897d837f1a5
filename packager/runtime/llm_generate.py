"""Host generation loop for the LLM bundle graphs: the executable specification the Unity runtime follows.

Implements ``../shared/upstream_ref/README.md`` §L.1 (prompt layout, min/max length), §L.3 (decode loop, quirk L3,
RAS sampling) and §L.4 (silent-token filter). It needs only three graph runners and the manifest constants of
the ``llm`` component, so the same loop drives onnxruntime sessions (a bundle) or our PyTorch modules (tests):

    runners = {"llm_text_embed": f, "llm_speech_embed": f, "llm_step": f}   # f(inputs: dict) -> outputs: dict

Graph contracts (names as in the manifest): ``llm_text_embed``: text_ids int32 [1,n] -> text_embeds [1,n,D];
``llm_speech_embed``: speech_ids int32 [1,n] -> speech_embeds [1,n,D]; ``llm_step``: inputs_embeds [1,T,D],
past_key/past_value [Ly,1,Hk,P,hd] -> logits [1,S+200] (last position), hidden [1,T,D], present_key/present_value
[Ly,1,Hk,P+T,hd]. The cache starts with P = 0 and is carried from each step's present_* to the next past_*.

RAS sampling uses ``numpy.random.Generator(PCG64(seed))`` with one ``random()`` double per draw and an inverse-CDF
pick (see ``_draw``), so a C# runtime can mirror it; upstream's torch.multinomial stream cannot be reproduced
outside torch (docs/llm.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from packager.contract.errors import InputError

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class Generation:
    """Result of one decode: emitted speech tokens (stop id excluded), why it ended, and the filtered tokens."""

    tokens: list[int]
    stop_token: int  # the stop id that ended decoding, or -1 when max_len was reached
    min_len: int
    max_len: int
    tokens_for_flow: list[int] = field(default_factory=list)  # after the silent-token filter (README §L.4)


# ---------------------------------------------------------------------------------------------------------------
# Prompt (README §L.1)
# ---------------------------------------------------------------------------------------------------------------

def _ids(name: str, ids: Sequence[int] | np.ndarray, low: int, high: int) -> np.ndarray:
    """Validate a 1-D id list against [low, high) and return int32 [1, n]."""
    arr = np.asarray(ids)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):  # () is a valid empty list
        raise InputError("must be a 1-D list of integer ids", key=name, found=f"shape {list(arr.shape)} {arr.dtype}")
    if arr.size and (arr.min() < low or arr.max() >= high):
        raise InputError("id out of range", key=name, expected=f"ids in [{low}, {high})",
                         found=f"[{int(arr.min())}, {int(arr.max())}]")
    return arr.astype(np.int32).reshape(1, -1)


def build_prompt(runners: Mapping[str, Runner], constants: Mapping[str, Any], text: Sequence[int],
                 prompt_text: Sequence[int] = (), prompt_speech_tokens: Sequence[int] = ()) -> np.ndarray:
    """``[SOS, embed(prompt_text ++ text), TASK_ID, speech_embed(prompt_speech_tokens)]`` -> [1, L, D] float32."""
    S, ids = constants["speech_token_size"], constants["special_ids"]
    text_ids = np.concatenate([_ids("prompt_text", prompt_text, 0, constants["text_vocab_size"]),
                               _ids("text", text, 0, constants["text_vocab_size"])], axis=1)
    speech = _ids("prompt_speech_tokens", prompt_speech_tokens, 0, S)
    if text_ids.shape[1] == 0:
        raise InputError("prompt_text ++ text is empty", key="text", expected="at least one text token")
    # one speech-embed call for SOS, TASK_ID and the prompt tokens, then split
    sp_ids = np.concatenate([np.array([[ids["sos"], ids["task_id"]]], np.int32), speech], axis=1)
    graphs = constants["graphs"]
    sp = runners[graphs["speech_embed"]]({"speech_ids": sp_ids})["speech_embeds"]  # [1, 2+p, D]
    te = runners[graphs["text_embed"]]({"text_ids": text_ids})["text_embeds"]  # [1, t, D]
    return np.concatenate([sp[:, :1], te, sp[:, 1:2], sp[:, 2:]], axis=1).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Sampling (README §L.3)
# ---------------------------------------------------------------------------------------------------------------

def log_softmax(x: np.ndarray) -> np.ndarray:
    """float32 log-softmax over the last axis (as upstream computes logp)."""
    x = x.astype(np.float32)
    m = x.max(axis=-1, keepdims=True)
    return (x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))).astype(np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp((x - x.max()).astype(np.float32))  # exp(-inf) = 0 for masked ids
    return (e / e.sum()).astype(np.float32)


def _draw(p: np.ndarray, rng: np.random.Generator) -> int:
    """Index i with probability p[i] / sum(p): the first i with u * sum(p) < cumsum(p)[i], u = rng.random().

    float64 cumulative sums; a C# mirror needs PCG64 and numpy's double conversion ((next_uint64 >> 11) * 2^-53).
    """
    c = np.cumsum(p.astype(np.float64))
    u = rng.random() * c[-1]
    return int(min(np.searchsorted(c, u, side="right"), len(p) - 1))


def ras_sample(logp: np.ndarray, decoded: Sequence[int], params: Mapping[str, Any], rng: np.random.Generator) -> int:
    """Repetition-aware sampling: nucleus (top_p, top_k) draw; if the drawn id occurs >= win_size * tau_r times in
    the last win_size emitted tokens, draw again from the full distribution with that id removed."""
    probs = _softmax(logp)
    order = np.argsort(-probs, kind="stable")  # descending, ties keep the lower id first
    chosen: list[int] = []
    mass = np.float32(0.0)
    for idx in order:  # take ids while the mass taken so far < top_p and fewer than top_k are taken
        if mass < params["top_p"] and len(chosen) < params["top_k"]:
            chosen.append(int(idx))
            mass = np.float32(mass + probs[idx])
        else:
            break
    token = chosen[_draw(probs[chosen], rng)]
    window = list(decoded)[-params["win_size"]:]
    if window.count(token) >= params["win_size"] * params["tau_r"]:
        scores = logp.copy()
        scores[token] = -np.inf
        token = _draw(_softmax(scores), rng)
    return token


def silent_filter(tokens: Sequence[int], constants: Mapping[str, Any]) -> list[int]:
    """Drop silent tokens once more than ``max_silent_run`` occurred in a row (a non-silent token resets)."""
    silent, limit = set(constants["silent_tokens"]), constants["max_silent_run"]
    out, run = [], 0
    for t in tokens:
        if t in silent:
            run += 1
            if run > limit:
                continue
        else:
            run = 0
        out.append(int(t))
    return out


def expected_tokens(constants: Mapping[str, Any], n_text: int) -> int:
    """The speech tokens one expects for ``n_text`` text tokens: 3 x min_len (about 6 per text token with upstream's
    ratios, near what English speech takes), never above max_len, at least 1 (``LlmGenerator.ExpectedTokens``).
    An estimate for progress bars; a trained LLM stops where it says."""
    lo, hi = int(constants["min_len_ratio"] * n_text), int(constants["max_len_ratio"] * n_text)
    return max(1, min(hi, 3 * lo))


# ---------------------------------------------------------------------------------------------------------------
# Decode loop (README §L.3)
# ---------------------------------------------------------------------------------------------------------------

def generate(runners: Mapping[str, Runner], constants: Mapping[str, Any], text: Sequence[int],
             prompt_text: Sequence[int] = (), prompt_speech_tokens: Sequence[int] = (), *,
             sampling: str = "greedy", seed: int | None = None, upstream_quirks: bool = True,
             min_len: int | None = None, max_len: int | None = None,
             on_token: Callable[[int], None] | None = None) -> Generation:
    """Generate speech tokens.

    ``sampling``: "greedy" (argmax, first index on ties) or "ras" (seeded numpy RAS, defaults from constants).
    ``upstream_quirks=True`` reproduces upstream: before min_len only id S (SOS) is masked, so EOS can still end
    decoding early (quirk L3). ``False`` masks the whole stop range [S, S+200) before min_len instead.
    ``on_token(token)`` is called for every emitted token as soon as it is decided (streaming).
    """
    S = constants["speech_token_size"]
    lo, hi = constants["stop_range"]
    n_text = len(np.asarray(text).reshape(-1))
    if min_len is None:
        min_len = int(constants["min_len_ratio"] * n_text)
    if max_len is None:
        max_len = int(constants["max_len_ratio"] * n_text)
    if sampling not in ("greedy", "ras"):
        raise InputError("unknown sampling mode", key="sampling", expected="'greedy' or 'ras'", found=repr(sampling))
    rng = np.random.default_rng(seed) if sampling == "ras" else None
    masked = [S] if upstream_quirks else list(range(lo, hi))

    embeds = build_prompt(runners, constants, text, prompt_text, prompt_speech_tokens)
    cache = constants["kv_cache"]
    shape = [0 if d == "len" else d for d in cache["shape"]]
    past_k = np.zeros(shape, np.float32)
    past_v = np.zeros(shape, np.float32)
    if embeds.shape[1] + max_len > cache["max_len"]:
        raise InputError("prompt + max_len exceeds the cache capacity", key="text",
                         expected=f"<= {cache['max_len']} positions", found=str(embeds.shape[1] + max_len))

    graphs = constants["graphs"]
    tokens: list[int] = []
    stop = -1
    for i in range(max_len):
        out = runners[graphs["step"]]({"inputs_embeds": embeds, "past_key": past_k, "past_value": past_v})
        past_k, past_v = out["present_key"], out["present_value"]
        logp = log_softmax(out["logits"][0])
        if i < min_len:
            logp[masked] = -np.inf
        token = int(np.argmax(logp)) if rng is None else ras_sample(logp, tokens, constants["sampling"], rng)
        if lo <= token < hi:
            stop = token
            break
        tokens.append(token)
        if on_token is not None:
            on_token(token)
        embeds = runners[graphs["speech_embed"]]({"speech_ids": np.array([[token]], np.int32)})["speech_embeds"]
    return Generation(tokens, stop, min_len, max_len, silent_filter(tokens, constants))
