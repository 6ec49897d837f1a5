"""SineGen2 noise table: bit-exact regeneration from the config, and the MT19937 continuation past the cap."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from packager.build.checkpoint import Source
from packager.build.config import load_hyperpyyaml
from packager.contract.errors import CheckpointError, InputError
from packager.components.hift.noise_table import NoiseStream, mt19937_state_after, regenerate_sine_noise
from packager.runtime.hift_noise import continue_noise, noise_for_frames


@pytest.fixture(scope="module")
def tiny_stream(tiny_a: Path) -> NoiseStream:
    return NoiseStream.from_config(Source(checkpoint=tiny_a).config(), "cosyvoice3.yaml")


@pytest.fixture(scope="module")
def full_stream(upstream_ref: Path) -> NoiseStream:
    return NoiseStream.from_config(load_hyperpyyaml(upstream_ref / "full_size_config.yaml"), "full_size_config.yaml")


def test_tiny_a_table_is_bit_exact(tiny_a, tiny_stream):
    ref = np.load(tiny_a / "hift_reference.npz")
    head = ref["fixed_sine_waves_head"]  # [1, 33600, 9]
    before = torch.get_rng_state()
    table = regenerate_sine_noise(tiny_stream, head.shape[1])
    assert torch.equal(torch.get_rng_state(), before)  # a private generator: the global stream is untouched
    assert table.dtype == np.float32 and table.shape == head.shape
    assert np.array_equal(table, head)
    assert tiny_stream.draws_before_table() == 1_243_290  # 80*15000 + 64*80 + 15440 + 10272 + 4*3104 + 33 + 9


def test_official_size_table_and_continuation_are_bit_exact(upstream_ref, full_stream):
    """A 2 s table continued by MT19937 to 20 s equals the dumped 20 s head of upstream's official-size table."""
    head = np.load(upstream_ref / "full_size_random_buffers.npz")["hift_sinegen_sine_waves_head"]  # [1, 480000, 9]
    cap = 2 * 24000
    table = regenerate_sine_noise(full_stream, cap)
    state = mt19937_state_after(full_stream, cap)
    assert state.dtype == np.int32 and state.shape == (625,)
    noise = noise_for_frames(table, state, head.shape[1] // 480, 480)
    assert np.array_equal(noise, head)


def test_continuation_chains(tiny_stream):
    state0 = mt19937_state_after(tiny_stream, 100)
    a, state1 = continue_noise(state0, 50, 9)
    b, _ = continue_noise(state1, 70, 9)
    both, _ = continue_noise(state0, 120, 9)
    assert np.array_equal(np.concatenate([a, b], 1), both)
    assert np.array_equal(regenerate_sine_noise(tiny_stream, 220)[:, 100:], both)
    assert ((both >= 0) & (both < 1)).all()


def test_noise_for_frames_within_and_past_the_cap(tiny_stream):
    table = regenerate_sine_noise(tiny_stream, 1000)
    state = mt19937_state_after(tiny_stream, 1000)
    assert np.array_equal(noise_for_frames(table, state, 2, 480), table[:, :960])
    assert np.array_equal(noise_for_frames(table, state, 5, 480), regenerate_sine_noise(tiny_stream, 2400))


def test_errors_name_the_problem(tiny_stream):
    with pytest.raises(InputError, match="samples"):
        regenerate_sine_noise(tiny_stream, 0)
    with pytest.raises(InputError, match="state"):
        continue_noise(np.zeros(10, np.int32), 5, 9)
    with pytest.raises(CheckpointError, match="flow"):
        NoiseStream.from_config({"hift": {}}, "cosyvoice3.yaml")
