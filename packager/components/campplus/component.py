"""CAMPPlus speaker encoder: ``campplus.onnx`` (checkpoint) or our own tiny CAM++ (preset), plus the fbank front end.

Graphs:
- ``campplus``: features ``input`` [batch_size, frame_num, 80] -> embedding ``output`` [batch_size, 192]. From a
  checkpoint this is the shipped graph, converted to the build opset, with every ``AveragePool(ceil_mode=1)`` (the
  per-100-frame segment pooling of the CAM layers) rewritten into a Sentis-safe equivalent
  (``sentis.rewrites.rewrite_ceil_mode_avgpool``), then every attribute that a Sentis importer ignores with a console
  warning dropped where it holds the ONNX default (``sentis.rewrites.drop_default_attributes``), so the graph imports
  without warnings on Sentis 2.4 and 2.1. Golden references come from onnxruntime on the *unmodified* shipped file,
  so the goldens also prove the rewrites. The tiny preset's PyTorch export gets the same two rewrites.
- ``campplus_fbank``: 16 kHz ``waveform`` [1, samples] -> ``features`` [1, frames, 80] (Kaldi fbank minus its mean
  over time: what ``campplus`` takes) and ``fbank`` [1, frames, 80] (before mean removal). A DSP graph: fp32 and
  ``unity_quantization: none`` under every policy (``GraphDef.dsp_graph``).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import onnx
import torch

from packager.build.checkpoint import Source
from packager.build.component import Component, ComponentBuild, GoldenCase, GraphDef, TensorSpec, Tolerance
from packager.components.campplus import fbank as fb
from packager.components.campplus.model import TINY, CamPlus, randomize
from packager.contract.errors import CheckpointError
from packager.sentis.rewrites import drop_default_attributes, rewrite_ceil_mode_avgpool
from packager.onnx.io import load_onnx_file
from packager.onnx.session import session

ONNX_FILE = "campplus.onnx"
EMBED_DIM = 192
FEAT_DIM = 80
MIN_FRAMES = 3  # the unbiased std over the pooled time axis needs >= 2 frames after the stride-2 TDNN
# Feature lengths of the golden cases: the fixture's N(0,1) cases (numpy default_rng(4321), drawn in this order:
# 57, 300, 998 frames) and lengths that are not multiples of 100, including the minimum.
FIXTURE_LENGTHS = (57, 300, 998)
EXTRA_LENGTHS = (3, 150, 401)


def synthetic_vowel(seconds: float, seed: int, sr: int = fb.SAMPLE_RATE) -> np.ndarray:
    """A deterministic voiced test signal (gliding f0 with vibrato, formant-weighted harmonics, light noise)."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    f0 = 140.0 * (1.0 + 0.05 * t / max(seconds, 1e-9)) * (1.0 + 0.02 * np.sin(2 * math.pi * 5.5 * t))
    phase = 2 * math.pi * np.cumsum(f0) / sr
    wave = np.zeros(n)
    for k in range(1, int(7800 // 140)):
        formants = sum(math.exp(-((k * 140.0 - fc) / 150.0) ** 2) for fc in (730.0, 1090.0, 2440.0))
        wave += (1 + 4 * formants) / math.sqrt(k) * np.sin(k * phase)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05) if n else wave
    wave = wave * fade * (1 + 0.1 * np.sin(2 * math.pi * 3 * t))
    wave = 0.3 * wave / max(np.max(np.abs(wave)), 1e-12)
    wave += np.random.default_rng(seed).normal(0.0, 1e-3, n)
    return wave.astype(np.float32)


def fbank_features(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference (float64) features and raw fbank, each [1, T, 80] float32."""
    raw = fb.kaldi_fbank_reference(wave)
    return (raw - raw.mean(axis=0, keepdims=True)).astype(np.float32)[None], raw.astype(np.float32)[None]


def sentis_rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    """The campplus graph as Sentis gets it: no ceil_mode pooling, no attribute the importer warns about."""
    return drop_default_attributes(rewrite_ceil_mode_avgpool(model))


def check_campplus_io(model: onnx.ModelProto, path: str) -> None:
    """The shipped graph must take [B, T, 80] float features and give [B, 192]."""
    def dims(vi: onnx.ValueInfoProto) -> list:
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1 or len(g.output) != 1:
        raise CheckpointError("expected exactly one input and one output", file=path,
                              found=f"{len(inputs)} inputs, {len(g.output)} outputs")
    i, o = inputs[0], g.output[0]
    if i.type.tensor_type.elem_type != onnx.TensorProto.FLOAT or len(dims(i)) != 3 or dims(i)[2] != FEAT_DIM:
        raise CheckpointError("wrong input", file=path, key=f"input {i.name!r}",
                              expected="float32 features of rank 3 [batch, frames, 80]", found=str(dims(i)))
    if len(dims(o)) != 2 or dims(o)[1] != EMBED_DIM:
        raise CheckpointError("wrong output", file=path, key=f"output {o.name!r}",
                              expected="[batch, 192]", found=str(dims(o)))


# Each graph's role in the host loop -> its name in the bundle (manifest constants.graphs)
GRAPHS = {"fbank": "campplus_fbank", "embedding": "campplus"}


class CampPlus(Component):
    name = "campplus"
    checkpoint_files = (ONNX_FILE,)
    description = "CAM++ speaker encoder (16 kHz fbank -> 192-d embedding) and its Kaldi fbank front end"
    # fp16 weights: embedding ~36.5 dB SQNR, cosine > 0.999 (the recommendation's weakest entry); the fbank graph is
    # a DSP graph (dsp_graph): fp32 under every policy, exact (docs/precision.md "DSP constants")
    recommended_precision = "fp16"

    def build(self, source: Source) -> ComponentBuild:
        fixture_rng = np.random.default_rng(4321)
        feats = [fixture_rng.standard_normal((1, n, FEAT_DIM)).astype(np.float32) for n in FIXTURE_LENGTHS]
        extra_rng = np.random.default_rng(source.seed)
        feats += [extra_rng.standard_normal((1, n, FEAT_DIM)).astype(np.float32) for n in EXTRA_LENGTHS]
        vowel = synthetic_vowel(2.0, seed=20240611)
        vowel_feat, _ = fbank_features(vowel)
        short = synthetic_vowel(0.51, seed=7)  # 8160 samples: frames do not tile the signal exactly
        names = [f"frames{n}" for n in (*FIXTURE_LENGTHS, *EXTRA_LENGTHS)] + ["vowel2s"]
        cases = list(zip(names, [*feats, vowel_feat]))
        return ComponentBuild(graphs=[fbank_graph(vowel, short), embedding_graph(source, cases)],
                              constants=constants())


def embedding_reference(source: Source, example: np.ndarray) -> tuple[Callable[[np.ndarray], np.ndarray],
                                                                      dict[str, Any]]:
    """(embed: fbank features -> the reference embedding, the GraphDef fields that say where the graph comes from):
    the tiny preset's seeded PyTorch model, exported (traced on ``example``); or the checkpoint's own campplus.onnx,
    shipped as it is."""
    if source.is_preset:
        model = randomize(CamPlus(TINY), torch.Generator().manual_seed(source.seed))

        def embed(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()

        return embed, {"module": model, "example_inputs": (torch.from_numpy(example),)}
    path = source.path(ONNX_FILE)
    shipped = load_onnx_file(path)
    check_campplus_io(shipped, str(path))
    reference = session(shipped)
    in_name, out_name = reference.get_inputs()[0].name, reference.get_outputs()[0].name
    if (in_name, out_name) != ("input", "output"):
        raise CheckpointError("unexpected tensor names", file=str(path),
                              expected="input -> output (as shipped with CosyVoice)", found=f"{in_name} -> {out_name}")
    return (lambda x: reference.run(None, {"input": x})[0]), {"onnx_model": shipped}


def embedding_graph(source: Source, cases: Sequence[tuple[str, np.ndarray]]) -> GraphDef:
    """``campplus``: fbank features -> speaker embedding, with a golden case per (name, features)."""
    embed, origin = embedding_reference(source, cases[0][1])
    return GraphDef(
        name=GRAPHS["embedding"],
        inputs=[TensorSpec("input", "float32", ("batch_size", "frame_num", FEAT_DIM),
                           "mean-subtracted Kaldi fbank (campplus_fbank.features); frame_num >= 3")],
        outputs=[TensorSpec("output", "float32", ("batch_size", EMBED_DIM), "speaker embedding (not L2-normalised)")],
        cases=lambda: [GoldenCase(n, {"input": x}, {"output": embed(x).astype(np.float32)}) for n, x in cases],
        # Measured: rewritten vs shipped graph <= 5.4e-5 over every length 3..3000 (benchmarks/campplus_pool_sweep.py);
        # fixture PyTorch vs ORT 6e-5. 2e-4 / 1e-4 is the fixture README's suggested cross-runtime tolerance.
        tolerances={"output": Tolerance(atol=2e-4, rtol=1e-4, metrics={"cosine": 0.99999})},
        rewrite=sentis_rewrite, timeout_ms=120_000, **origin)


def fbank_graph(vowel: np.ndarray, short: np.ndarray) -> GraphDef:
    """``campplus_fbank``: 16 kHz audio -> Kaldi fbank and its mean-removed features, a DSP graph."""
    def cases() -> list[GoldenCase]:
        out = []
        for name, wave in (("vowel2s", vowel), ("vowel0p51s", short)):
            feat, raw = fbank_features(wave)
            out.append(GoldenCase(name, {"waveform": wave[None]}, {"features": feat, "fbank": raw}))
        return out

    return GraphDef(
        name=GRAPHS["fbank"],
        inputs=[TensorSpec("waveform", "float32", (1, "samples"), "16 kHz mono audio in [-1, 1]; >= 400 samples")],
        outputs=[TensorSpec("features", "float32", (1, "frames", FEAT_DIM),
                            "fbank minus its mean over time; frames = 1 + (samples - 400) // 160"),
                 TensorSpec("fbank", "float32", (1, "frames", FEAT_DIM), "Kaldi log-mel fbank")],
        # Measured graph vs float64 reference: 4.7e-5; vs torchaudio on the fixture 4.0e-4 (near-floor cells).
        tolerances={"features": Tolerance(atol=1e-3, rtol=1e-4), "fbank": Tolerance(atol=1e-3, rtol=1e-4)},
        cases=cases, module=fb.FbankGraph(), example_inputs=(torch.from_numpy(vowel[None]),),
        dsp_graph=True,  # DFT basis, mel filter bank, log floor: exact numbers, nothing learned
        description="Kaldi fbank (16 kHz, 80 bins, 25/10 ms, Povey, pre-emphasis 0.97, dither 0) + mean removal",
    )


def constants() -> dict[str, Any]:
    return {
        "graphs": dict(GRAPHS),
        "sample_rate": fb.SAMPLE_RATE,
        "fbank": {"num_mel_bins": fb.N_MELS, "frame_length_samples": fb.FRAME_LENGTH,
                  "frame_shift_samples": fb.FRAME_SHIFT, "n_fft": fb.N_FFT, "window": "povey",
                  "preemphasis": fb.PREEMPH, "dither": 0.0, "low_freq": fb.LOW_FREQ, "high_freq": fb.HIGH_FREQ,
                  "log_floor": fb.LOG_FLOOR, "snip_edges": True},
        "min_frames": MIN_FRAMES,
        "embedding_dim": EMBED_DIM,
        "embedding_normalised": False,
    }
