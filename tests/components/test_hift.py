"""HiFT vs upstream on tiny_a (PyTorch model and exported graph), strict loading, the component build."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from packager.build.checkpoint import Source
from packager.build.component import GraphDef, NodeScope
from packager.components.hift.component import NOISE_INPUT, NOISE_STATE, NOISE_TABLE, HiFT, HiFTGraph, graph_specs
from packager.components.hift.model import (HiFTConfig, HiFTGenerator, f0_predictor_float64, load_upstream_state_dict)
from packager.build.config import load_hyperpyyaml
from packager.contract.errors import CheckpointError
from packager.onnx.session import run_onnx
from packager.sentis.preflight import check_model, errors
from packager.sentis.rules import OPS_SENTIS_2_1
from packager.build.stages.export import export_graph
from packager.contract.tolerance import compare, metric

SPF = 480


@pytest.fixture(scope="module")
def ref(tiny_a: Path) -> dict[str, np.ndarray]:
    return dict(np.load(tiny_a / "hift_reference.npz"))


@pytest.fixture(scope="module")
def loaded(tiny_a: Path):
    return HiFT().load(Source(checkpoint=tiny_a))  # (cfg, stream, model)


@pytest.fixture(scope="module")
def inputs(ref):
    mel = ref["mel"]
    return mel, ref["fixed_sine_waves_head"][:, : SPF * mel.shape[-1]]


@pytest.fixture(scope="module")
def torch_out(loaded, inputs) -> dict[str, np.ndarray]:
    cfg, _, model = loaded
    with torch.no_grad():
        outs = HiFTGraph(model, debug=True)(*map(torch.from_numpy, inputs))
    return {s.name: o.numpy() for s, o in zip(graph_specs(cfg, debug=True)[1], outs)}


@pytest.fixture(scope="module")
def debug_graph(loaded, inputs) -> onnx.ModelProto:
    cfg, _, model = loaded
    ins, outs = graph_specs(cfg, debug=True)
    mel, noise = inputs
    g = GraphDef("hift", ins, outs, cases=list, tolerances={}, module=HiFTGraph(model, debug=True).eval(),
                 example_inputs=(torch.from_numpy(mel[..., :6]), torch.from_numpy(noise[:, : 6 * SPF])))
    return export_graph(g)


def _sqnr(actual, expected) -> float:
    return metric("sqnr_db", np.asarray(actual, np.float64), np.asarray(expected, np.float64))


# ---- loading -----------------------------------------------------------------------------------------------------

def test_config_from_tiny_a(loaded):
    cfg = loaded[0]
    assert (cfg.base_channels, cfg.f0_cond_channels, cfg.conv_pre_look_right) == (32, 32, 4)
    assert cfg.samples_per_frame == SPF and cfg.stream_trim_frames == 8


def test_config_errors_name_the_key(tiny_a):
    cfg = load_hyperpyyaml(tiny_a / "cosyvoice3.yaml")
    del cfg["hift"].kwargs["istft_params"]["hop_len"]
    with pytest.raises(CheckpointError, match="cosyvoice3.yaml: hop_len: missing key"):
        HiFTConfig.from_config(cfg, "cosyvoice3.yaml")
    with pytest.raises(CheckpointError, match="hift"):
        HiFTConfig.from_config({"flow": {}}, "cosyvoice3.yaml")


def test_strict_loading_names_offending_keys(tiny_a):
    sd = dict(Source(checkpoint=tiny_a).state_dict("hift.pt"))
    model = HiFTGenerator(HiFTConfig(base_channels=32, f0_cond_channels=32))
    bad = dict(sd)
    del bad["conv_pre.bias"]
    with pytest.raises(CheckpointError, match="missing key conv_pre.bias"):
        load_upstream_state_dict(model, bad, "hift.pt")
    bad = {**sd, "extra.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="unexpected key extra.weight"):
        load_upstream_state_dict(model, bad, "hift.pt")
    bad = {**sd, "conv_post.bias": torch.zeros(17)}
    with pytest.raises(CheckpointError, match=r"conv_post.bias: expected shape \[18\], found \[17\]"):
        load_upstream_state_dict(model, bad, "hift.pt")
    with pytest.raises(CheckpointError, match="hift.pt"):  # a different base_channels: every shape differs
        load_upstream_state_dict(HiFTGenerator(HiFTConfig(base_channels=64, f0_cond_channels=32)), sd, "hift.pt")


def test_generator_prefix_and_old_weight_norm_keys_load_identically(tiny_a, loaded):
    sd = Source(checkpoint=tiny_a).state_dict("hift.pt")
    old = {}
    for k, v in sd.items():  # the pre-parametrization layout, under a training checkpoint's "generator." prefix
        k = k.replace(".parametrizations.weight.original0", ".weight_g").replace(
            ".parametrizations.weight.original1", ".weight_v")
        old["generator." + k] = v
    model = HiFTGenerator(loaded[0])
    load_upstream_state_dict(model, old, "hift.pt")
    for (name, a), b in zip(model.state_dict().items(), loaded[2].state_dict().values()):
        assert torch.equal(a, b), name


# ---- PyTorch model vs upstream -----------------------------------------------------------------------------------

def test_f0_float64_exact_and_float32_close(tiny_a, loaded, ref, torch_out):
    cfg = loaded[0]
    mel = torch.from_numpy(ref["mel"])
    f64 = f0_predictor_float64(cfg, Source(checkpoint=tiny_a).state_dict("hift.pt"))(mel.double())
    assert np.abs(f64.detach().numpy() - ref["f0_float64"]).max() < 1e-9  # same math in float64: measured ~1e-13
    err = np.abs(torch_out["f0"] - ref["f0_float64"]).max()
    assert err < 3e-4  # float32 graph path, measured 1.0e-4 Hz (f0 up to 98.6 Hz)


def test_sine_source_given_upstream_f0(loaded, ref, inputs):
    model = loaded[2]
    f0 = torch.from_numpy(ref["f0_float64"].astype(np.float32))  # upstream casts f0 to float32 here
    noise = torch.from_numpy(inputs[1])
    with torch.no_grad():
        raw, uv = model.m_source.sine_waves(f0, noise, reduce=False)
        sine_waves, _ = model.m_source.sine_waves(f0, noise)
        source = model.m_source(f0, noise)
    assert np.array_equal(uv.numpy(), ref["sinegen_uv"])
    # the float32 phase (exact cumsum, upstream's op order) is upstream's to the bit: so is sin() of it ...
    assert np.array_equal(raw.numpy(), ref["sinegen_sine_waves"])
    # ... and the graph's range-reduced sin() costs ~1e-7 of the sine (measured 1.5e-8 after the 0.1 amplitude)
    assert np.abs(sine_waves.numpy() - ref["sinegen_sine_waves"]).max() < 1e-7
    assert np.abs(source.numpy() - ref["source_s"]).max() < 1e-6  # measured 1.2e-7


def test_decoder_from_upstream_source(loaded, ref):
    model = loaded[2]
    source = torch.from_numpy(ref["source_s"])
    with torch.no_grad():
        spec = model.stft(source)
        out = model.decode(torch.from_numpy(ref["mel"]), source)
    assert np.abs(spec[:, :9].numpy() - ref["source_stft_real"]).max() < 1e-5
    assert np.abs(spec[:, 9:].numpy() - ref["source_stft_imag"]).max() < 1e-5
    assert np.abs(out["magnitude"].numpy() - ref["istft_magnitude"]).max() < 1e-5  # measured 1.7e-6
    assert np.abs(out["phase"].numpy() - ref["istft_phase"]).max() < 1e-5
    assert np.abs(out["waveform"].numpy() - ref["speech"]).max() < 1e-5  # measured 3.6e-7


def test_pytorch_model_matches_upstream(ref, torch_out):
    assert np.abs(torch_out["source"] - ref["source_s"]).max() < 2e-4  # measured 3.4e-5 (float32 f0)
    assert np.abs(torch_out["magnitude"] - ref["istft_magnitude"]).max() < 5e-4
    assert np.abs(torch_out["phase"] - ref["istft_phase"]).max() < 2e-4
    assert np.abs(torch_out["waveform"] - ref["speech"]).max() <= 1e-4  # measured 1.2e-5
    assert _sqnr(torch_out["waveform"], ref["speech"]) >= 60.0  # measured 99 dB


def test_finalize_false_is_a_prefix_of_finalize_true(ref, torch_out):
    """Upstream's finalize=False output = the finalize=True output of the same mel, minus 8 frames of samples."""
    stream = ref["stream_speech"]
    assert stream.shape[1] == SPF * (ref["mel"].shape[-1] - 8)
    assert np.abs(torch_out["waveform"][:, : stream.shape[1]] - stream).max() <= 1e-4  # measured 7.8e-6
    assert np.abs(torch_out["f0"][:, :27] - ref["stream_f0_float64"]).max() < 3e-4


# ---- the exported graph ------------------------------------------------------------------------------------------

def test_graph_matches_upstream(debug_graph, inputs, ref):
    got = run_onnx(debug_graph, {"mel": inputs[0], NOISE_INPUT: inputs[1]})
    assert np.abs(got["f0"] - ref["f0_float64"]).max() < 3e-4  # measured 7.4e-5
    assert np.abs(got["source"] - ref["source_s"]).max() < 2e-4  # measured 3.2e-5
    assert np.abs(got["magnitude"] - ref["istft_magnitude"]).max() < 5e-4  # measured 7.4e-5
    assert np.abs(got["phase"] - ref["istft_phase"]).max() < 2e-4  # measured 3.1e-5
    assert np.abs(got["waveform"] - ref["speech"]).max() <= 1e-4  # measured 1.9e-5
    assert _sqnr(got["waveform"], ref["speech"]) >= 60.0  # measured 96.5 dB


def test_graph_is_sentis_safe(debug_graph):
    ops = {n.op_type for n in debug_graph.graph.node}
    assert ops <= OPS_SENTIS_2_1
    assert not ops & {"If", "Loop", "Scan", "Einsum", "STFT", "DFT", "RandomUniform", "RandomNormal",
                      "RandomUniformLike", "RandomNormalLike", "Multinomial", "Bernoulli"}
    assert not debug_graph.functions
    assert errors(check_model(debug_graph, "sentis-2.1", "hift")) == []
    for node in debug_graph.graph.node:
        if node.op_type == "ConvTranspose":
            assert "output_shape" not in {a.name for a in node.attribute}
    for io_ in [*debug_graph.graph.input, *debug_graph.graph.output]:
        assert io_.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert len(io_.type.tensor_type.shape.dim) > 0
    assert [d.dim_param or d.dim_value for d in debug_graph.graph.input[1].type.tensor_type.shape.dim] == \
        [1, "num_samples", 9]


# ---- the component -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def preset_build():
    return HiFT().build(Source(preset="tiny"))


def test_preset_build_is_deterministic(preset_build):
    again = HiFT().build(Source(preset="tiny"))
    m1, m2 = export_graph(preset_build.graphs[0]), export_graph(again.graphs[0])
    assert m1.SerializeToString() == m2.SerializeToString()
    for c1, c2 in zip(preset_build.graphs[0].cases(), again.graphs[0].cases()):
        for k in c1.inputs:
            assert np.array_equal(c1.inputs[k], c2.inputs[k])
        assert np.array_equal(c1.outputs["waveform"], c2.outputs["waveform"])
    for d1, d2 in zip(preset_build.data, again.data):
        assert d1.name == d2.name and np.array_equal(d1.array, d2.array)


def test_graph_declares_the_float32_path(preset_build):
    """The f0 -> phase -> source path is declared (node scopes, no rewrite) and resolves to its exported nodes."""
    from packager.build.stages.convert import keep_nodes

    g = preset_build.graphs[0]
    assert g.rewrite is None and all(isinstance(k, NodeScope) for k in g.keep_float32)
    model = export_graph(g)
    kept = set(keep_nodes(model, g.keep_float32))
    assert {"/f0_predictor/classifier/MatMul", "/m_source/CumSum", "/m_source/Sin"} <= kept
    scoped = {n.name for n in model.graph.node if n.name.startswith(("/f0_predictor/", "/m_source/"))}
    assert scoped <= kept and len(scoped) == 237  # docs/hift.md "Precision"
    declared = kept - set(keep_nodes(model, ()))  # what the declaration adds to the op-type rules
    assert declared and declared <= scoped  # nothing of the decoder (/conv_post, /resblocks, ...)


def test_preset_goldens_pass_on_onnxruntime_and_are_not_degenerate(preset_build):
    g = preset_build.graphs[0]
    model = export_graph(g)
    cfg, _, torch_model = HiFT().load(Source(preset="tiny"))
    voiced = []
    for case in g.cases():
        t = case.inputs["mel"].shape[-1]
        assert case.inputs[NOISE_INPUT].shape == (1, SPF * t, 9)
        wav = case.outputs["waveform"]
        got = run_onnx(model, case.inputs)["waveform"]
        verdict = compare("waveform", got, wav, g.tolerances["waveform"].to_json())
        assert verdict.passed, verdict.summary()
        assert 0.02 < wav.std() and (np.abs(wav) >= 0.99).mean() < 0.05  # audible, not clipped
        with torch.no_grad():
            f0 = torch_model.f0_predictor(torch.from_numpy(case.inputs["mel"])).numpy()
        voiced += list((f0 > 10).ravel())
    assert 0.2 < np.mean(voiced) < 1.0  # both voiced and unvoiced frames


def test_preset_constants_and_data(preset_build, ref):
    c = preset_build.constants
    assert c["sample_rate"] == 24000 and c["samples_per_frame"] == SPF
    noise = c["noise"]
    assert noise["input"] == NOISE_INPUT and noise["cap_samples"] == 24000 and noise["channels"] == 9
    assert noise["upstream_table_samples"] == 300 * 24000
    assert c["finalize"]["stream_trim_frames"] == 8
    data = {d.name: d.array for d in preset_build.data}
    assert data[NOISE_TABLE].shape == (1, 24000, 9) and data[NOISE_TABLE].dtype == np.float32
    assert data[NOISE_STATE].shape == (625,) and data[NOISE_STATE].dtype == np.int32
    # the preset's sizes equal tiny_a's, so its table is tiny_a's table (same construction-time stream)
    assert np.array_equal(data[NOISE_TABLE], ref["fixed_sine_waves_head"][:, :24000])


def test_checkpoint_build_uses_upstream_table(tiny_a, ref):
    build = HiFT().build(Source(checkpoint=tiny_a))
    table = {d.name: d.array for d in build.data}[NOISE_TABLE]
    assert table.shape == (1, 20 * 24000, 9)
    assert np.array_equal(table[:, : ref["fixed_sine_waves_head"].shape[1]], ref["fixed_sine_waves_head"])
    buf = io.BytesIO()
    np.save(buf, table)
    assert buf.tell() < 18e6  # 17.3 MB: the 20 s cap, vs upstream's 259 MB constant
