"""HiFT's SineGen2 noise table at build time: regenerated from the checkpoint config, capped for the bundle, and the
MT19937 state right after the cap (what a runtime continues from: ``packager/runtime/hift_noise.py``).

Upstream draws ``sine_waves = torch.rand(1, 300 * sr, 9)`` once, at construction, from the global torch CPU generator
(``upstream_ref/README.md``, "Random streams"): after ``torch.manual_seed(0)`` inside the flow's CFM, the stream has
served, in order, the CFM noise ``randn(1, 80, 15000)``, ``flow.input_embedding`` (normal init), the flow's
``spk_embed_affine_layer`` (Linear default init), the f0 predictor's convs and classifier (default inits, module
order), then ``rand_ini = rand(1, 9)`` and finally the table. ``regenerate_sine_noise`` replays exactly that on a
private ``torch.Generator`` (the global RNG is left alone). The bundle ships the first ``cap`` samples and the
generator state right after them (``mt19937_state_after``), so a runtime's continuation is upstream-exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from packager.build.config import Tagged, require
from packager.contract.errors import CheckpointError, InputError

CFM_NOISE_SHAPE = (1, 80, 15000)  # hard-coded in upstream's CausalConditionalCFM
UPSTREAM_TABLE_SECONDS = 300  # upstream's table length: 300 s at the sample rate


@dataclass(frozen=True)
class NoiseStream:
    """The sizes that decide how much of the seed-0 stream is consumed before the table (all from the config)."""

    flow_vocab_size: int
    flow_input_size: int
    spk_embed_dim: int
    flow_output_size: int
    f0_in_channels: int
    f0_cond_channels: int
    nb_harmonics: int
    sampling_rate: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], file: str) -> "NoiseStream":
        flow, hift = cfg.get("flow"), cfg.get("hift")
        for key, node in (("flow", flow), ("hift", hift)):
            if not isinstance(node, Tagged):
                raise CheckpointError("missing or not an object node", file=file, key=key)
        f0 = require(hift, "f0_predictor", file, Tagged)
        return cls(flow_vocab_size=require(flow, "vocab_size", file, int),
                   flow_input_size=require(flow, "input_size", file, int),
                   spk_embed_dim=require(flow, "spk_embed_dim", file, int),
                   flow_output_size=require(flow, "output_size", file, int),
                   f0_in_channels=require(f0, "in_channels", file, int),
                   f0_cond_channels=require(f0, "cond_channels", file, int),
                   nb_harmonics=require(hift, "nb_harmonics", file, int),
                   sampling_rate=require(hift, "sampling_rate", file, int))

    @property
    def channels(self) -> int:
        return self.nb_harmonics + 1

    @property
    def upstream_samples(self) -> int:
        return UPSTREAM_TABLE_SECONDS * self.sampling_rate

    def draws_before_table(self) -> int:
        """32-bit MT19937 draws consumed before the table's first element (one per initialised element: every
        tensor here has >= 16 elements, so torch's normal_ takes its vectorised one-draw-per-element path)."""
        fan = lambda i, o, k=1: o * i * k + o  # noqa: E731  weight + bias of a conv / linear
        return (math.prod(CFM_NOISE_SHAPE) + self.flow_vocab_size * self.flow_input_size
                + fan(self.spk_embed_dim, self.flow_output_size) + fan(self.f0_in_channels, self.f0_cond_channels, 4)
                + 4 * fan(self.f0_cond_channels, self.f0_cond_channels, 3) + fan(self.f0_cond_channels, 1)
                + self.channels)  # rand_ini


def regenerate_sine_noise(stream: NoiseStream, samples: int) -> np.ndarray:
    """The first ``samples`` rows of upstream's table, bit-exact: float32 ``[1, samples, nb_harmonics + 1]``."""
    if not 0 < samples <= stream.upstream_samples:
        raise InputError("noise table length out of range", key="samples",
                         expected=f"1..{stream.upstream_samples}", found=str(samples))
    g = torch.Generator().manual_seed(0)  # CausalConditionalCFM.__init__ reseeds everything with 0
    torch.empty(CFM_NOISE_SHAPE).normal_(generator=g)  # CFM rand_noise

    def default_init(fan_in: int, *weight_shape: int) -> None:  # torch's Linear/Conv1d reset_parameters
        torch.nn.init.kaiming_uniform_(torch.empty(weight_shape), a=math.sqrt(5), generator=g)
        bound = 1 / math.sqrt(fan_in)
        torch.empty(weight_shape[0]).uniform_(-bound, bound, generator=g)

    s = stream
    torch.nn.init.normal_(torch.empty(s.flow_vocab_size, s.flow_input_size), generator=g)  # input_embedding
    default_init(s.spk_embed_dim, s.flow_output_size, s.spk_embed_dim)  # spk_embed_affine_layer
    default_init(s.f0_in_channels * 4, s.f0_cond_channels, s.f0_in_channels, 4)  # f0 condnet.0
    for _ in range(4):
        default_init(s.f0_cond_channels * 3, s.f0_cond_channels, s.f0_cond_channels, 3)  # condnet.2/4/6/8
    default_init(s.f0_cond_channels, 1, s.f0_cond_channels)  # classifier
    torch.rand(1, s.channels, generator=g)  # rand_ini (no effect on outputs: README H3)
    # Only the head is drawn: torch's CPU rand is one sequential draw per element, so a prefix is the same prefix.
    return torch.rand(1, samples, s.channels, generator=g).numpy()


def mt19937_state_after(stream: NoiseStream, samples: int) -> np.ndarray:
    """Generator state right after the table's first ``samples`` rows: int32 ``[625]`` = 624 key words (uint32 bit
    patterns) + the position within the key, i.e. the MT19937 (seed 0) state after ``draws_before_table() +
    samples * channels`` draws."""
    bg = np.random.RandomState(0)._bit_generator  # legacy seeding = init_genrand(0), same as torch's CPU generator
    skip = stream.draws_before_table() + samples * stream.channels
    while skip:
        n = min(skip, 1 << 22)
        bg.random_raw(n)
        skip -= n
    st = bg.state["state"]
    return np.concatenate([st["key"].astype(np.uint32).view(np.int32), [np.int32(st["pos"])]])
