"""STFT/iSTFT (elementwise products with fixed DFT bases) vs torch.stft/torch.istft (interior and edges), their ONNX
export, exact cumsum."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from packager.sentis import numerics as S
from packager.build.component import GraphDef, NodeScope, TensorSpec
from packager.components.dsp import DSP_MODULE_NAMES, ISTFT, STFT, exact_cumsum, periodic_hann, reduce_angle
from packager.onnx.session import run_onnx
from packager.sentis.rules import OPS_SENTIS_2_1
from packager.build.stages import convert as C
from packager.build.stages.export import export_graph

N_FFT, HOP = 16, 4
WINDOW = periodic_hann(N_FFT).float()


def _torch_stft(x: torch.Tensor) -> torch.Tensor:
    X = torch.stft(x[:, 0], N_FFT, HOP, N_FFT, window=WINDOW, center=True, pad_mode="reflect", return_complex=True)
    return torch.cat([X.real, X.imag], dim=1)


def test_periodic_hann_is_scipy_fftbins_hann():
    """Upstream uses scipy's hann(16, fftbins=True) in float64, cast to float32: the same values as ours."""
    n = np.arange(N_FFT)
    assert np.array_equal(WINDOW.numpy(), (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32))
    assert torch.allclose(WINDOW, torch.hann_window(N_FFT, periodic=True), atol=1e-7)


@pytest.mark.parametrize("length", [9, 16, 37, 480, 14400])
def test_stft_matches_torch_everywhere(length):
    x = torch.randn(1, 1, length, generator=torch.Generator().manual_seed(length))
    ours, ref = STFT(N_FFT, HOP)(x), _torch_stft(x)
    assert ours.shape == ref.shape == (1, N_FFT + 2, length // HOP + 1)
    err = (ours - ref).abs()
    if err.shape[-1] > 4:
        assert err[..., 2:-2].max() < 1e-5  # interior
    assert err[..., :2].max() < 1e-5 and err[..., -2:].max() < 1e-5  # reflect-padded edge frames


@pytest.mark.parametrize("frames", [2, 3, 5, 121, 3601])
def test_istft_matches_torch_everywhere(frames):
    spec = torch.randn(1, N_FFT + 2, frames, generator=torch.Generator().manual_seed(frames))
    # non-zero imaginary DC/Nyquist parts on purpose: irfft ignores them, so must we
    ref = torch.istft(torch.complex(spec[:, :9], spec[:, 9:]), N_FFT, HOP, N_FFT, window=WINDOW, center=True)
    ours = ISTFT(N_FFT, HOP)(spec)
    assert ours.shape == ref.shape == (1, HOP * (frames - 1))
    err = (ours - ref).abs()
    assert err.max() < 1e-5
    # the edges use torch's partial window envelope (1.25 instead of 1.5 at the first sample)
    assert err[:, :N_FFT].max() < 1e-5 and err[:, -N_FFT:].max() < 1e-5


def test_round_trip_reconstructs_signal():
    x = torch.randn(1, 1, 4800, generator=torch.Generator().manual_seed(0))
    y = ISTFT(N_FFT, HOP)(STFT(N_FFT, HOP)(x))
    assert (y - x[:, 0]).abs().max() < 1e-5


def test_stft_istft_export_sentis_safe_and_match_torch():
    class Both(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stft, self.istft = STFT(N_FFT, HOP), ISTFT(N_FFT, HOP)

        def forward(self, x):
            spec = self.stft(x)
            return spec, self.istft(spec * 0.5)

    module = Both().eval()
    g = GraphDef("dsp", [TensorSpec("x", "float32", (1, 1, "num_samples"))],
                 [TensorSpec("spec", "float32", (1, 18, "num_frames")), TensorSpec("y", "float32", (1, "n_out"))],
                 cases=lambda: [], tolerances={}, module=module, example_inputs=(torch.randn(1, 1, 64),))
    model = export_graph(g)
    ops = {n.op_type for n in model.graph.node}
    assert ops <= OPS_SENTIS_2_1 and not ops & {"STFT", "DFT"}
    # the bases meet the signal only in Mul (+ ReduceSum): no layer Unity's ModelQuantizer rounds reads them
    assert not ops & {"Conv", "ConvTranspose", "MatMul", "Gemm"}
    declared = [NodeScope(f"/{m}/") for m in DSP_MODULE_NAMES]
    bases = C.dsp_constants(model, declared)
    assert len(bases) == 4 + 5 + 1  # STFT: the basis per block of 4 taps; iSTFT: per 4 of its 18 rows, window^2
    assert {n.op_type for n in model.graph.node if set(n.input) & set(bases)} == {"Mul"}
    assert S.quantized_among(model, bases) == []
    for node in model.graph.node:
        if node.op_type == "Pad":
            mode = [onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "mode"]
            assert mode in ([b"reflect"], [b"constant"], [])  # reflect: the STFT centring; constant: overlap-add
    x = torch.randn(1, 1, 1000, generator=torch.Generator().manual_seed(1))  # another length than traced
    got = run_onnx(model, {"x": x.numpy()})
    spec, y = module(x)
    assert np.abs(got["spec"] - spec.numpy()).max() < 1e-5
    assert np.abs(got["y"] - y.detach().numpy()).max() < 1e-5


def test_n_fft_must_be_a_multiple_of_hop():
    with pytest.raises(ValueError, match="multiple of hop"):
        STFT(16, 5)
    with pytest.raises(ValueError, match="multiple of hop"):
        ISTFT(10, 4)


def test_exact_cumsum_equals_double_accumulated_cumsum():
    """torch's CPU cumsum accumulates float32 in double; exact_cumsum gets the same values with float32 ops only."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 16000, 9, generator=g)  # 16000 frames = 320 s of HiFT phase increments
    ref = torch.cumsum(x, 1)
    assert torch.equal(torch.cumsum(x.double(), 1).float(), ref)  # the premise
    assert torch.equal(exact_cumsum(x, 1), ref)
    sequential = torch.from_numpy(np.cumsum(x.numpy(), 1, dtype=np.float32))  # what a float32 CumSum op gives
    assert (sequential - ref).abs().max() > 1e-3  # ... far off after 16000 steps: why exact_cumsum exists


def test_exact_cumsum_small_values_tiny_absolute_error():
    """Runs of tiny values (f0 ~ 0 Hz) land in the last, rounded part: off by at most ~1e-9 absolute."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 5000, 9, generator=g)
    x[0, :1700, 0] = torch.rand(1700, generator=g) * 1e-5
    err = (exact_cumsum(x, 1) - torch.cumsum(x, 1)).abs()
    assert err.max() < 2e-9
    assert torch.equal(exact_cumsum(x, 1)[:, :, 1:], torch.cumsum(x, 1)[:, :, 1:])  # ordinary columns: exact


@pytest.mark.parametrize("high", [10.0, 3e4, 1e6, 5e7])
def test_reduce_angle_keeps_the_sine_of_huge_float32_phases(high):
    x = torch.rand(100_000, generator=torch.Generator().manual_seed(int(high))) * high
    r = reduce_angle(x)
    assert r.abs().max() <= 2 * np.pi  # k can be off by one where x / 2pi rounds (|x| > 2^22): still small
    exact = np.sin(x.double().numpy())  # sine of the float32 value itself
    assert np.abs(np.sin(r.double().numpy()) - exact).max() < 3e-7  # measured 1.3e-7 (2.2e-7 at 5e7)
