"""Host Euler/CFG loop: exact time grid, CFG rows, prompt slicing, and the two classic port mistakes (a linear
time grid, an unconditional row that keeps mu/spks/cond) must each break parity with upstream tiny_a."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import packager.runtime.euler_cfg as euler
from packager.build.checkpoint import Source
from packager.components.flow.component import (ESTIMATOR_IN, ESTIMATOR_OUT, FRONTEND_IN, FRONTEND_OUT, EstimatorGraph, Flow,
                                      FrontendGraph, load_model, noise_table, torch_runner)
from packager.contract.errors import InputError


@pytest.fixture(scope="module")
def ref(tiny_a: Path) -> dict[str, np.ndarray]:
    return dict(np.load(tiny_a / "flow_reference.npz"))


@pytest.fixture(scope="module")
def setup(tiny_a: Path):
    """PyTorch runners for tiny_a, the manifest constants and the noise table."""
    model = load_model(Source(checkpoint=tiny_a))
    runners = {"flow_frontend": torch_runner(FrontendGraph(model), FRONTEND_IN, FRONTEND_OUT),
               "flow_estimator": torch_runner(EstimatorGraph(model), ESTIMATOR_IN, ESTIMATOR_OUT)}
    return runners, Flow().constants(model.cfg), noise_table()


def args(ref):
    return [ref[k] for k in ("token", "prompt_token", "prompt_feat", "embedding")]


def mel_error(setup, ref, constants=None) -> float:
    runners, base, noise = setup
    mel = euler.synthesize(runners, constants or base, noise, *args(ref))
    return float(np.abs(mel - ref["feat"]).max())


def test_time_grid_accumulated_in_float32(setup, ref):
    """The t fed at each step is upstream's accumulated float32 t (not t_span[i]), bit for bit."""
    _, constants, noise = setup
    seen = []

    def fake(feed):
        seen.append(feed["t"].copy())
        return {"estimator_out": np.zeros_like(feed["x"])}
    mu = np.zeros((1, 80, 6), np.float32)
    euler.euler_cfg(fake, mu, np.zeros((1, 80), np.float32), mu, noise, constants)
    np.testing.assert_array_equal(np.stack(seen), ref["euler_est_t"])


def test_cfg_rows_and_trace_match_upstream(setup, ref):
    runners, constants, noise = setup
    trace: list = []
    mel = euler.synthesize(runners, constants, noise, *args(ref), trace=trace)
    assert len(trace) == 10 and mel.shape == ref["feat"].shape
    for s, (feed, out) in enumerate(trace):
        for k in ("x", "mask", "mu", "t", "spks", "cond"):
            np.testing.assert_allclose(feed[k], ref[f"euler_est_{k}"][s], atol=1e-5, err_msg=f"step {s + 1} {k}")
        np.testing.assert_allclose(out, ref["euler_est_out"][s], atol=1e-5)
        assert feed["chunk_frames"].dtype == np.float32 and feed["chunk_frames"].tolist() == [feed["x"].shape[2]]
    e = float(np.abs(mel - ref["feat"]).max())
    print(f"torch runners + host loop: feat max abs err {e:.3g}")
    assert e <= 1e-4


def test_streaming_finalize_false(setup, ref):
    runners, constants, noise = setup
    trace: list = []
    mel = euler.synthesize(runners, constants, noise, *args(ref), streaming=True, finalize=False, trace=trace)
    e = float(np.abs(mel - ref["stream_feat"]).max())
    print(f"torch runners + host loop: stream feat max abs err {e:.3g}")
    assert mel.shape == ref["stream_feat"].shape and e <= 1e-4
    assert all(feed["chunk_frames"].tolist() == [constants["chunk_frames_streaming"]] for feed, _ in trace)
    e_step = float(np.abs(trace[0][1] - ref["stream_euler_est_out_step0"]).max())
    print(f"torch runners: streaming Euler step 1 max abs err {e_step:.3g}")
    assert e_step <= 1e-4


def test_streaming_needs_the_chunked_mask(setup, ref):
    """Streaming through the full-attention mask (the mistake the one-graph design makes easy) breaks parity."""
    runners, constants, noise = setup
    constants = dict(constants, chunk_frames_streaming=15000)
    mel = euler.synthesize(runners, constants, noise, *args(ref), streaming=True, finalize=False)
    bad = float(np.abs(mel - ref["stream_feat"]).max())
    print(f"streaming with full attention: stream feat err {bad:.3g}")
    assert bad > 1e-2


def test_linear_schedule_breaks_parity(setup, ref):
    """Community-port mistake 1: a linear time grid. Our parity check must catch it."""
    constants = dict(setup[1], t_span=[i / 10 for i in range(11)])
    good, bad = mel_error(setup, ref), mel_error(setup, ref, constants)
    print(f"cosine grid err {good:.3g}, linear grid err {bad:.3g}")
    assert good <= 1e-4 < 1e-2 < bad


def test_unzeroed_uncond_row_breaks_parity(setup, ref, monkeypatch):
    """Community-port mistake 2: the CFG row keeps mu/spks/cond instead of zeros. Our parity check must catch it."""
    def same_rows(x, mu, spks, cond, t, chunk):
        two = lambda a: np.concatenate([a, a])
        return {"x": two(x), "mask": np.ones((2, 1, x.shape[2]), np.float32), "mu": two(mu),
                "t": np.full((2,), t, np.float32), "spks": two(spks), "cond": two(cond), "chunk_frames": chunk}
    good = mel_error(setup, ref)
    monkeypatch.setattr(euler, "cfg_batch", same_rows)
    bad = mel_error(setup, ref)
    print(f"zeroed uncond err {good:.3g}, copied uncond err {bad:.3g}")
    assert good <= 1e-4 < 1e-2 < bad


def test_input_errors(setup, ref):
    runners, constants, noise = setup
    token, prompt, feat, emb = args(ref)
    with pytest.raises(InputError, match="token"):
        euler.synthesize(runners, constants, noise, token.astype(np.int64), prompt, feat, emb)
    with pytest.raises(InputError, match="prompt_feat"):
        euler.synthesize(runners, constants, noise, token, prompt, feat[:, :-1], emb)
    with pytest.raises(InputError, match="out of range"):
        euler.synthesize(runners, constants, noise, token + 64, prompt, feat, emb)
    with pytest.raises(InputError, match="noise"):
        euler.synthesize(runners, constants, noise[:, :, :20], token, prompt, feat, emb)
