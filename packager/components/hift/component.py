"""The HiFT vocoder component: one graph ``hift`` = upstream ``CausalHiFTGenerator.inference`` (README section H).

``mel [1, 80, T]`` + ``sine_noise [1, 480 T, 9]`` (SineGen2's uniform noise, sliced by the host from the shipped
table, see ``packager/runtime/hift_noise.py``) -> ``waveform [1, 480 T]``. Weight norm folded, STFT/iSTFT as
elementwise products with fixed DFT bases (``dsp.py``), no control flow, no random ops, float32 throughout (upstream's
f0 predictor runs in float64; docs/hift.md gives the measured cost). The model itself lives in ``hift_model.py``.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from packager.build.checkpoint import CONFIG_FILE, Source
from packager.build.component import (Component, ComponentBuild, GoldenCase, GraphDef, HostData, NodeScope, TensorSpec,
                                Tolerance)
from packager.components.dsp import DSP_MODULE_NAMES
from packager.components.hift.model import (HiFTConfig, HiFTGenerator, load_upstream_state_dict,
                                            to_upstream_format)
from packager.build.config import Tagged
from packager.components.hift.noise_table import NoiseStream, mt19937_state_after, regenerate_sine_noise
from packager.runtime.hift_noise import noise_for_frames

HIFT_FILE = "hift.pt"
NOISE_INPUT = "sine_noise"
NOISE_TABLE = "hift_sine_noise"
NOISE_STATE = "hift_sine_noise_mt_state"
CHECKPOINT_NOISE_SECONDS = 20  # 17.3 MB of float32 in a real bundle (upstream's table is 300 s = 259 MB)
PRESET_NOISE_SECONDS = 1  # keeps the tiny bundle small (864 KB); the MT19937 state continues it exactly
GOLDEN_FRAMES = (6, 16)  # 0.12 s and 0.32 s of audio: enough to cover both edges and the interior

# The tiny preset: tiny_a's hift section and the flow sizes that fix the noise stream (upstream_ref/tiny_a/config.yaml).
PRESET_CONFIG: dict[str, Any] = {
    "sample_rate": 24000,
    "flow": Tagged("new", "cosyvoice.flow.flow.CausalMaskedDiffWithDiT",
                   {"input_size": 80, "output_size": 80, "spk_embed_dim": 192, "vocab_size": 64}),
    "hift": Tagged("new", "cosyvoice.hifigan.generator.CausalHiFTGenerator", {
        "in_channels": 80, "base_channels": 32, "nb_harmonics": 8, "sampling_rate": 24000, "nsf_alpha": 0.1,
        "nsf_sigma": 0.003, "nsf_voiced_threshold": 10, "upsample_rates": [8, 5, 3],
        "upsample_kernel_sizes": [16, 11, 7], "istft_params": {"n_fft": 16, "hop_len": 4},
        "resblock_kernel_sizes": [3, 7, 11], "resblock_dilation_sizes": [[1, 3, 5]] * 3,
        "source_resblock_kernel_sizes": [7, 7, 11], "source_resblock_dilation_sizes": [[1, 3, 5]] * 3,
        "lrelu_slope": 0.1, "audio_limit": 0.99, "conv_pre_look_right": 4,
        "f0_predictor": Tagged("new", "cosyvoice.hifigan.f0_predictor.CausalConvRNNF0Predictor",
                               {"num_class": 1, "in_channels": 80, "cond_channels": 32})}),
}

# Precision fact of this graph (docs/hift.md "Precision"): under any reduced-precision policy the f0 -> phase -> sine
# source path stays float32; its exact cumsum / TwoSum / angle reduction need float32 arithmetic and f0 errors are
# integrated into the phase.
FLOAT32_SCOPES = ("/f0_predictor/", "/m_source/")  # exported node-name prefixes of the f0 -> phase -> source path
KEEP_FLOAT32 = tuple(NodeScope(p) for p in FLOAT32_SCOPES)
# The STFT/iSTFT bases and window (HiFTGenerator.stft / .istft) are DSP constants: no policy rounds them, and they only
# meet the signal in Mul + ReduceSum (dsp.py), which Unity's ModelQuantizer leaves alone, so uint8 still applies to the
# learned convolutions (docs/precision.md "DSP constants").
DSP_CONSTANTS = tuple(NodeScope(f"/{m}/") for m in DSP_MODULE_NAMES)

# Measured, onnxruntime 1.32 CPU vs our PyTorch model on the golden cases (docs/hift.md): tiny preset worst max_abs
# 7.3e-5 / SQNR 78.9 dB, tiny_a 2.6e-5 / 92.9 dB, random full size 2.3e-5 / 88.5 dB. The differences come from the
# f0 path: a 1e-4 Hz f0 difference (different float32 conv summation order) is integrated into the sine phase.
# Bounds: ~7x the worst max_abs and 19 dB below the worst SQNR, room for Sentis' own sin/exp/conv kernels.
WAVEFORM_TOLERANCE = Tolerance(atol=5e-4, rtol=0.0, metrics={"sqnr_db": 60.0})


class HiFTGraph(nn.Module):
    """Export wrapper: ``(mel, sine_noise) -> waveform``; ``debug=True`` adds f0, source, magnitude, phase."""

    def __init__(self, model: HiFTGenerator, debug: bool = False):
        super().__init__()
        self.model, self.debug = model, debug

    def forward(self, mel: torch.Tensor, sine_noise: torch.Tensor):
        f0 = self.model.f0_predictor(mel)  # [1, T]
        source = self.model.m_source(f0, sine_noise)  # [1, 1, L]
        out = self.model.decode(mel, source)
        if self.debug:
            return out["waveform"], f0, source, out["magnitude"], out["phase"]
        return out["waveform"]


def graph_specs(cfg: HiFTConfig, debug: bool = False) -> tuple[list[TensorSpec], list[TensorSpec]]:
    ch, bins = cfg.nb_harmonics + 1, cfg.n_fft // 2 + 1
    inputs = [TensorSpec("mel", "float32", (1, cfg.in_channels, "num_frames"), "log-mel frames (channels-first)"),
              TensorSpec(NOISE_INPUT, "float32", (1, "num_samples", ch),
                         f"{NOISE_TABLE}[:, 0:{cfg.samples_per_frame}*num_frames, :] (num_samples = "
                         f"{cfg.samples_per_frame}*num_frames), continued past the table via the MT19937 state")]
    outputs = [TensorSpec("waveform", "float32", (1, "num_samples"), f"{cfg.sampling_rate} Hz audio in [-0.99, 0.99]")]
    if debug:
        outputs += [TensorSpec("f0", "float32", (1, "num_frames"), "f0 in Hz per mel frame"),
                    TensorSpec("source", "float32", (1, 1, "num_samples"), "merged sine source"),
                    TensorSpec("magnitude", "float32", (1, bins, "num_stft_frames"), "exp(log-magnitude), unclipped"),
                    TensorSpec("phase", "float32", (1, bins, "num_stft_frames"), "sin(phase pre-activation)")]
    return inputs, outputs


# ---- weights -----------------------------------------------------------------------------------------------------

def random_upstream_state_dict(model: HiFTGenerator, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Upstream-format random weights: torch-default-like uniform(+-1/sqrt(fan_in)) for weights and biases, Snake
    alpha = 1 (its default), then stored as upstream stores them (weight norm with g = ||v||)."""
    own = model.state_dict()
    folded = {}
    for name, p in own.items():
        if name.endswith(".alpha"):
            folded[name] = torch.ones(p.shape)
            continue
        weight = own[name.rsplit(".", 1)[0] + ".weight"]
        bound = 1 / math.sqrt(math.prod(weight.shape[1:]))
        folded[name] = (torch.rand(p.shape, generator=g) * 2 - 1) * bound
    return to_upstream_format(folded)


def calibrate_preset(model: HiFTGenerator, mel: torch.Tensor) -> None:
    """Make random preset weights non-degenerate, as upstream_ref's "Weight adjustments" 2 and 3 do: f0 roughly
    |N(10, 40)| Hz on ``mel`` (default init gives ~0.1 Hz, all unvoiced) and a 10x stronger sine merge."""
    with torch.no_grad():
        cls = model.f0_predictor.classifier
        z = (model.f0_predictor.hidden(mel) @ cls.weight.T)[..., 0]  # [1, T], without the bias
        scale = 40.0 / float(z.std())
        cls.weight.mul_(scale)
        cls.bias.fill_(10.0 - float(z.mean()) * scale)
        model.m_source.l_linear.weight.mul_(10.0)


def golden_mels(seed: int, in_channels: int) -> list[torch.Tensor]:
    """Deterministic pseudo-mels around tiny_a's statistics (mean -5, spread 2), one per golden length."""
    g = torch.Generator().manual_seed(seed + 1)
    return [-5.0 + 2.0 * torch.randn(1, in_channels, t, generator=g) for t in GOLDEN_FRAMES]


# ---- the component -----------------------------------------------------------------------------------------------

# The graph's role in the host loop -> its name in the bundle (manifest constants.graphs)
GRAPHS = {"vocoder": "hift"}


class HiFT(Component):
    name = "hift"
    checkpoint_files = (CONFIG_FILE, HIFT_FILE)
    description = "HiFT vocoder (CausalHiFTGenerator): mel + SineGen2 noise -> 24 kHz waveform"
    # fp32: fp16 weights cost the waveform 25.5-28.8 dB SQNR on the tiny presets where the f0 -> phase path is rounded
    # too, ~60 dB with it kept float32 (docs/hift.md "Precision"); the STFT/iSTFT bases are DSP constants, exact under
    # every policy (docs/precision.md "DSP constants").
    recommended_precision = "fp32"

    def load(self, source: Source) -> tuple[HiFTConfig, NoiseStream, HiFTGenerator]:
        cfg_data = PRESET_CONFIG if source.is_preset else source.config()
        file = "preset:tiny" if source.is_preset else str(source.path(CONFIG_FILE))
        cfg, stream = HiFTConfig.from_config(cfg_data, file), NoiseStream.from_config(cfg_data, file)
        model = HiFTGenerator(cfg).eval()
        if source.is_preset:
            g = torch.Generator().manual_seed(source.seed)
            load_upstream_state_dict(model, random_upstream_state_dict(model, g), "preset:tiny")
            calibrate_preset(model, golden_mels(source.seed, cfg.in_channels)[-1])
        else:
            load_upstream_state_dict(model, source.state_dict(HIFT_FILE), str(source.path(HIFT_FILE)))
        return cfg, stream, model

    def build(self, source: Source) -> ComponentBuild:
        cfg, stream, model = self.load(source)
        seconds = PRESET_NOISE_SECONDS if source.is_preset else CHECKPOINT_NOISE_SECONDS
        cap = seconds * cfg.sampling_rate
        table = regenerate_sine_noise(stream, cap)  # [1, cap, 9]
        state = mt19937_state_after(stream, cap)  # int32 [625]
        mels = golden_mels(source.seed, cfg.in_channels)

        def cases() -> list[GoldenCase]:
            out = []
            for mel in mels:
                t = mel.shape[-1]
                noise = noise_for_frames(table, state, t, cfg.samples_per_frame)
                with torch.no_grad():
                    wav = model(mel, torch.from_numpy(noise))
                out.append(GoldenCase(name=f"frames_{t}", inputs={"mel": mel.numpy(), NOISE_INPUT: noise},
                                      outputs={"waveform": wav.numpy()},
                                      description=f"{t} pseudo-mel frames, noise = table rows [0, {t * 480})"))
            return out

        inputs, outputs = graph_specs(cfg)
        ex = mels[0]
        example = (ex, torch.from_numpy(noise_for_frames(table, state, ex.shape[-1], cfg.samples_per_frame)))
        graph = GraphDef(name=GRAPHS["vocoder"], inputs=inputs, outputs=outputs, cases=cases,
                         tolerances={"waveform": WAVEFORM_TOLERANCE}, module=HiFTGraph(model).eval(),
                         example_inputs=example, keep_float32=KEEP_FLOAT32, dsp_constants=DSP_CONSTANTS,
                         description=self.description)
        return ComponentBuild(graphs=[graph], constants=self.constants(cfg, stream, cap), data=[
            HostData(NOISE_TABLE, table, f"SineGen2 uniform noise table, first {seconds} s ({cap} samples) of "
                     f"upstream's {stream.upstream_samples}-sample table, bit-exact; graph input {NOISE_INPUT} = "
                     f"rows [0, {cfg.samples_per_frame}*num_frames)"),
            HostData(NOISE_STATE, state, "MT19937 state right after the table: 624 key words (uint32 bit patterns "
                     "stored as int32) + position; continue it to extend the table past its end (see constants)"),
        ])

    @staticmethod
    def constants(cfg: HiFTConfig, stream: NoiseStream, cap: int) -> dict[str, Any]:
        spf, trim = cfg.samples_per_frame, cfg.stream_trim_frames
        return {
            "graphs": dict(GRAPHS),
            "sample_rate": cfg.sampling_rate,
            "samples_per_frame": spf,
            "mel_bins": cfg.in_channels,
            "audio_limit": cfg.audio_limit,
            "noise": {
                "input": NOISE_INPUT, "table": NOISE_TABLE, "state": NOISE_STATE,
                "channels": stream.channels, "cap_samples": cap, "cap_seconds": cap / cfg.sampling_rate,
                "upstream_table_samples": stream.upstream_samples,
            },
            "finalize": {
                "stream_trim_frames": trim,
            },
        }
