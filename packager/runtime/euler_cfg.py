"""Host loop of the flow: frontend call, CFG batch assembly, 10 Euler steps, prompt slicing (numpy, float32).

Implements ``shared/upstream_ref/README.md`` "F. Flow" steps 4-7 exactly as upstream computes them, driven only by
the manifest constants of the flow component and a *runner* per graph (``name -> callable(inputs) -> outputs``),
so onnxruntime sessions, our PyTorch modules and the Unity runtime (``Host/EulerCfg.cs``, a 1:1 mirror) all run
the same loop. Every arithmetic step is float32, in upstream's order, so the result matches upstream to ~1e-6.

Two details community ports get wrong, and the tests pin: the time grid is the *cosine* schedule
``t_i = 1 - cos(pi/2 * i/n)`` (its exact float32 values ship as ``t_span``), with ``t`` accumulated in float32
(``t += dt; dt = t_span[i+1] - t``) rather than read from the table; and the unconditional CFG row has
``mu = spks = cond = 0`` (only ``x``, ``mask`` and ``t`` are shared).

Streaming vs non-streaming is one estimator graph; the host only picks its ``chunk_frames`` input (README F-DiT 5):
``chunk_frames_streaming`` (upstream's static chunk) or the call's ``n_frames`` (full attention).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from packager.contract.errors import InputError

Runner = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
F32 = np.float32


def _check(name: str, a: np.ndarray, dtype: type, shape: tuple) -> np.ndarray:
    """Shape/dtype check of a host input; ``None`` in ``shape`` matches any size."""
    a = np.asarray(a)
    ok = a.dtype == dtype and a.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, a.shape))
    if not ok:
        raise InputError("wrong dtype or shape", key=name, expected=f"{np.dtype(dtype).name} {list(shape)}",
                         found=f"{a.dtype} {list(a.shape)}")
    return a


def chunk_frames(constants: Mapping[str, Any], n_frames: int, streaming: bool) -> np.ndarray:
    """The estimator's ``chunk_frames`` input, float32 [1]: the static chunk (streaming) or n_frames (full)."""
    c = int(constants["chunk_frames_streaming"]) if streaming else n_frames
    return np.array([c], F32)


def cfg_batch(x: np.ndarray, mu: np.ndarray, spks: np.ndarray, cond: np.ndarray, t: np.float32,
              chunk: np.ndarray) -> dict:
    """The estimator's batch-2 inputs: row 0 conditional, row 1 unconditional (mu = spks = cond = 0)."""
    t_len = x.shape[2]
    return {
        "x": np.concatenate([x, x]),
        "mask": np.ones((2, 1, t_len), F32),
        "mu": np.concatenate([mu, np.zeros_like(mu)]),
        "t": np.full((2,), t, F32),
        "spks": np.concatenate([spks, np.zeros_like(spks)]),
        "cond": np.concatenate([cond, np.zeros_like(cond)]),
        "chunk_frames": chunk,
    }


def euler_cfg(estimator: Runner, mu: np.ndarray, spks: np.ndarray, cond: np.ndarray, noise: np.ndarray,
              constants: Mapping[str, Any], trace: list | None = None, streaming: bool = False) -> np.ndarray:
    """README F.6: x0 = noise[:, :, :T]; n Euler steps of v = (1+w) v_cond - w v_uncond. Returns x [1, 80, T].

    ``streaming`` selects the chunked attention mask through the estimator's ``chunk_frames`` input.
    ``trace`` (optional) receives each step's estimator inputs and outputs (used to write chained goldens).
    """
    t_len = mu.shape[2]
    if noise.shape[2] < t_len:
        raise InputError("utterance longer than the fixed noise table", key="flow_noise",
                         expected=f"at most {noise.shape[2]} mel frames", found=str(t_len))
    t_span = np.asarray(constants["t_span"], F32)
    w = F32(constants["cfg_rate"])
    steps = int(constants["n_timesteps"])
    chunk = chunk_frames(constants, t_len, streaming)
    x = np.ascontiguousarray(noise[:, :, :t_len], F32)
    t, dt = t_span[0], F32(t_span[1] - t_span[0])
    for step in range(1, steps + 1):
        inputs = cfg_batch(x, mu, spks, cond, t, chunk)
        out = np.asarray(estimator(inputs)["estimator_out"], F32)  # [2, 80, T]
        if trace is not None:
            trace.append((inputs, out))
        v = (F32(1) + w) * out[:1] - w * out[1:]
        x = x + dt * v
        t = F32(t + dt)
        if step < steps:
            dt = F32(t_span[step + 1] - t)
    return x


def synthesize(runners: Mapping[str, Runner], constants: Mapping[str, Any], noise: np.ndarray,
               token: np.ndarray, prompt_token: np.ndarray, prompt_feat: np.ndarray, embedding: np.ndarray,
               streaming: bool = False, finalize: bool = True, trace: list | None = None) -> np.ndarray:
    """``flow.inference`` (README F.1-F.7) over graph runners.

    token [1, K] and prompt_token [1, P] int32; prompt_feat [1, P*R, 80] (time-major, as upstream takes it);
    embedding [1, 192]. Returns mel [1, 80, K*R] (finalize) or [1, 80, (K-Lk)*R] (finalize=False).
    ``streaming`` selects the chunked attention (``chunk_frames``); ``finalize=False`` drops the last Lk tokens' frames,
    which is exactly upstream's right-context PreLookahead (outputs i < N-Lk never see the zero padding).
    """
    ratio, lookahead = int(constants["token_mel_ratio"]), int(constants["pre_lookahead_len"])
    mel_bins = int(constants["mel_bins"])
    token = _check("token", token, np.int32, (1, None))
    prompt_token = _check("prompt_token", prompt_token, np.int32, (1, None))
    p_frames = prompt_token.shape[1] * ratio
    prompt_feat = _check("prompt_feat", prompt_feat, F32, (1, p_frames, mel_bins))
    embedding = _check("embedding", embedding, F32, (1, int(constants["spk_embed_dim"])))
    tokens = np.concatenate([prompt_token, token], axis=1)
    if tokens.min(initial=0) < 0 or tokens.max(initial=0) >= int(constants["vocab_size"]):
        raise InputError("speech token id out of range", key="token",
                         expected=f"0 <= id < {constants['vocab_size']}", found=f"[{tokens.min()}, {tokens.max()}]")
    if not finalize and token.shape[1] <= lookahead:
        raise InputError("finalize=False needs more tokens than the look-ahead", key="token",
                         expected=f"> {lookahead} tokens", found=str(token.shape[1]))

    graphs = constants["graphs"]
    front = runners[graphs["frontend"]]({"speech_tokens": tokens, "embedding": embedding})
    mu, spks = np.asarray(front["mu"], F32), np.asarray(front["spks"], F32)  # [1, 80, R*N], [1, 80]
    if not finalize:
        mu = mu[:, :, : (tokens.shape[1] - lookahead) * ratio]
    cond = np.zeros_like(mu)
    cond[:, :, :p_frames] = prompt_feat[0].T
    x = euler_cfg(runners[graphs["estimator"]], mu, spks, cond, noise, constants, trace, streaming)
    return x[:, :, p_frames:]
