"""HiFT's SineGen2 noise at run time: the graph's noise input for a call, from the shipped table and past its end.

Runtime contract (mirrored in C# ``Host/HiftNoise.cs``): the graph input for a call on T mel frames is
``table[:, 0 : 480 T, :]`` -- always from sample 0, as upstream slices its table per call. The bundle ships the first
``cap`` samples of upstream's table (``packager/components/hift/noise_table.py`` regenerates it at build time). Past
the cap a runtime continues the same stream, which is plain MT19937: torch's CPU ``rand`` maps each 32-bit draw ``u``
to ``(u & 0xFFFFFF) / 2^24`` (one draw per element, row-major ``[sample, harmonic]``). The bundle ships the
generator state right after the cap, so the continuation is upstream-exact up to upstream's own 300 s and simply
keeps going beyond it (where upstream itself would fail).
"""
from __future__ import annotations

import numpy as np

from packager.contract.errors import InputError

MT_STATE_WORDS = 624


def continue_noise(state: np.ndarray, samples: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The next ``samples`` rows after ``state`` and the state after them: (float32 ``[1, samples, channels]``,
    int32 ``[625]``). Each value is ``(u & 0xFFFFFF) / 2^24`` of one MT19937 32-bit draw ``u``."""
    if state.shape != (MT_STATE_WORDS + 1,):
        raise InputError("bad MT19937 state", key="state", expected=f"[{MT_STATE_WORDS + 1}]", found=str(state.shape))
    bg = np.random.RandomState(0)._bit_generator
    bg.state = {"bit_generator": "MT19937",
                "state": {"key": state[:MT_STATE_WORDS].view(np.uint32).copy(), "pos": int(state[MT_STATE_WORDS])}}
    raw = bg.random_raw(samples * channels).astype(np.uint64)
    values = ((raw & 0xFFFFFF).astype(np.float32) / np.float32(1 << 24)).reshape(1, samples, channels)
    st = bg.state["state"]
    return values, np.concatenate([st["key"].astype(np.uint32).view(np.int32), [np.int32(st["pos"])]])


def noise_for_frames(table: np.ndarray, state_after: np.ndarray, frames: int, samples_per_frame: int) -> np.ndarray:
    """The graph's noise input for a call on ``frames`` mel frames: rows ``[0, frames * samples_per_frame)`` of the
    (conceptually unbounded) stream -- the shipped table, continued from ``state_after`` past its end."""
    n = frames * samples_per_frame
    cap, channels = table.shape[1], table.shape[2]
    if n <= cap:
        return np.ascontiguousarray(table[:, :n])
    tail, _ = continue_noise(state_after, n - cap, channels)
    return np.concatenate([table, tail], axis=1)
