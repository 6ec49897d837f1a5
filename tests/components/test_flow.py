"""Flow component: strict loading, parity with upstream (tiny_a) for the PyTorch model and the exported graphs,
Sentis graph rules, goldens, preset determinism. Reference: tests/data/upstream_ref/tiny_a/flow_reference.npz."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from packager.build.checkpoint import Source
from packager.components.flow.component import Flow, config_from_yaml, load_model, noise_table
from packager.components.flow.model import FlowModel
from packager.build.config import load_hyperpyyaml
from packager.contract.errors import CheckpointError
from packager.runtime.euler_cfg import synthesize
from packager.onnx.io import opset_of
from packager.onnx.session import run_onnx, session
from packager.build.stages.export import export_graph

PARITY = 1e-4  # every upstream parity check within 1e-4 (measured values are ~1e-6, printed with -s)

# Sentis 2.1.3 importer op set (shared/design/sentis.md §1.1); Mish is 2.2+ and so deliberately left out.
SENTIS_OPS = set("""Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Bernoulli
Cast CastLike Ceil Celu Clip Compress Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace Div
Dropout Einsum Elu Equal Erf Exp Expand Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool
GlobalMaxPool Greater GreaterOrEqual GridSample HardSigmoid HardSwish Hardmax Identity ImageScaler InstanceNormalization
IsInf IsNaN LRN LSTM LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax MatMul Max MaxPool Mean Min Mod Mul
Multinomial Neg NonMaxSuppression NonZero Not OneHot Or PRelu Pad Pow RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin
ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize RoiAlign Round Scatter ScatterElements ScatterND Selu Shape
Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Swish Tan Tanh
ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor""".split())
BANNED = {"If", "Loop", "Scan", "Einsum", "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
          "Bernoulli", "Multinomial"}
INT32 = (-2**31, 2**31 - 1)
EST_KEYS = ("x", "mask", "mu", "t", "spks", "cond")
BIG_CHUNK = 15000.0  # >= every n_frames the noise table allows: full attention


def chunk(c: float) -> np.ndarray:
    return np.array([c], np.float32)


@pytest.fixture(scope="module")
def ref(tiny_a: Path) -> dict[str, np.ndarray]:
    return dict(np.load(tiny_a / "flow_reference.npz"))


@pytest.fixture(scope="module")
def model(tiny_a: Path):
    return load_model(Source(checkpoint=tiny_a))


@pytest.fixture(scope="module")
def bundle(tiny_a: Path):
    """The tiny_a build with every graph exported once: {name: (GraphDef, ModelProto)}, constants, noise."""
    build = Flow().build(Source(checkpoint=tiny_a))
    graphs = {g.name: (g, export_graph(g)) for g in build.graphs}
    return graphs, build.constants, build.data[0].array


def err(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def close(name: str, got, want, tol: float = PARITY) -> None:
    e = err(got, want)
    print(f"{name}: max abs err {e:.3g}")
    assert np.shape(got) == np.shape(want), name
    assert e <= tol, f"{name}: max abs err {e} > {tol}"


# ---------------------------------------------------------------- loading


def _fake_checkpoint(tmp_path: Path, tiny_a: Path, edit_sd=None, edit_yaml=None) -> Source:
    shutil.copy(tiny_a / "cosyvoice3.yaml", tmp_path / "cosyvoice3.yaml")
    if edit_yaml:
        text = (tmp_path / "cosyvoice3.yaml").read_text()
        (tmp_path / "cosyvoice3.yaml").write_text(edit_yaml(text))
    sd = torch.load(tiny_a / "flow.pt", weights_only=True)
    torch.save(edit_sd(sd) if edit_sd else sd, tmp_path / "flow.pt")
    return Source(checkpoint=tmp_path)


def test_config_read_as_data(tiny_a):
    cfg = config_from_yaml(load_hyperpyyaml(tiny_a / "cosyvoice3.yaml"), "cosyvoice3.yaml")
    assert (cfg.vocab_size, cfg.token_mel_ratio, cfg.pre_lookahead_len, cfg.static_chunk_size) == (64, 2, 3, 8)
    assert (cfg.dim, cfg.depth, cfg.heads, cfg.dim_head, cfg.ff_mult, cfg.cfg_rate) == (64, 2, 4, 16, 2, 0.7)


def test_full_size_keys_match_upstream(upstream_ref):
    """At the official hyperparameters our module tree has exactly upstream's 330 flow.pt keys and shapes."""
    cfg = config_from_yaml(load_hyperpyyaml(upstream_ref / "full_size_config.yaml"), "full_size_config.yaml")
    with torch.device("meta"):
        sd = FlowModel(cfg).state_dict()
    want = json.loads((upstream_ref / "full_size_keys.json").read_text())["components"]["flow"]["state_dict"]
    assert {k: list(v.shape) for k, v in sd.items()} == {k: v["shape"] for k, v in want.items()}
    assert sum(v.numel() for v in sd.values()) == 332_257_120  # incl. the 32-float inv_freq buffer


@pytest.mark.parametrize("edit, needle", [
    (lambda sd: {k: v for k, v in sd.items() if "to_q.bias" not in k}, "missing key"),
    (lambda sd: {**sd, "decoder.estimator.extra": torch.zeros(1)}, "unexpected key"),
    (lambda sd: {**sd, "input_embedding.weight": torch.zeros(65, 80)}, "expected shape [64, 80]"),
])
def test_strict_state_dict(tmp_path, tiny_a, edit, needle):
    with pytest.raises(CheckpointError, match=None) as exc:
        load_model(_fake_checkpoint(tmp_path, tiny_a, edit_sd=edit))
    assert needle in str(exc.value) and "flow.pt" in str(exc.value)


def test_rejects_other_schedule(tmp_path, tiny_a):
    src = _fake_checkpoint(tmp_path, tiny_a, edit_yaml=lambda t: t.replace("t_scheduler: 'cosine'",
                                                                           "t_scheduler: 'linear'"))
    with pytest.raises(CheckpointError, match="t_scheduler"):
        load_model(src)


def test_rejects_zero_attention_chunk(tmp_path, tiny_a):
    src = _fake_checkpoint(tmp_path, tiny_a, edit_yaml=lambda t: t.replace(
        "static_chunk_size: !ref <chunk_size> * <token_mel_ratio>", "static_chunk_size: 0"))
    with pytest.raises(CheckpointError, match="static_chunk_size"):
        load_model(src)


# ---------------------------------------------------------------- PyTorch parity with upstream


def test_torch_frontend_parity(model, ref):
    with torch.no_grad():
        close("spks", model.speaker(torch.from_numpy(ref["embedding"])), ref["spk_proj"])
        tokens = torch.from_numpy(np.concatenate([ref["prompt_token"], ref["token"]], 1))
        close("mu", model.token_mu(tokens), ref["mu"])
        close("stream mu", model.token_mu(tokens, finalize=False), ref["stream_mu"])


def test_torch_dit_parity(model, ref):
    est = model.decoder.estimator
    args = [torch.from_numpy(ref[f"est_in_{k}"]) for k in EST_KEYS]
    n_frames, c = args[0].shape[2], model.cfg.static_chunk_size
    dbg: dict = {}
    with torch.no_grad():
        full = est(*args, debug=dbg)  # key mask only: the independent non-streaming path
        close("dit non-stream", full, ref["est_out_nonstream"])
        close("dit stream (chunk_frames = static chunk)", est(*args, chunk_frames=c), ref["est_out_stream"])
        for big in (n_frames, n_frames + 1, BIG_CHUNK):  # any chunk >= n_frames is exactly full attention
            close(f"dit chunk_frames={big:g} vs full attention", est(*args, chunk_frames=big), full, 0.0)
        for k in ("time_embed", "input_embed", "block0_out", "block1_out", "norm_out"):
            close(k, dbg[k], ref[f"est_dbg_{k}"])
        angles = dbg["rope_angles"]  # [T, dh/2]; upstream stores each angle twice (adjacent channels)
        close("rope angles", torch.stack([angles, angles], -1).reshape(ref["est_dbg_rope_freqs"].shape),
              ref["est_dbg_rope_freqs"], 0.0)
        for s in range(10):  # every Euler step's batch-2 call (row 1 = unconditional)
            step = [torch.from_numpy(ref[f"euler_est_{k}"][s]) for k in EST_KEYS]
            close(f"euler step {s + 1}", est(*step), ref["euler_est_out"][s])


def test_torch_inference_parity(model, ref):
    noise = torch.from_numpy(noise_table())
    args = [torch.from_numpy(ref[k]) for k in ("token", "prompt_token", "prompt_feat", "embedding")]
    close("feat", model.inference(*args, noise), ref["feat"])
    close("stream feat", model.inference(*args, noise, streaming=True, finalize=False), ref["stream_feat"])


def test_noise_table_matches_upstream(upstream_ref, ref):
    noise = noise_table()
    meta = json.loads((upstream_ref / "full_size_random_buffers.json").read_text())
    assert noise.shape == tuple(meta["full_shapes"]["flow_decoder_rand_noise"])
    digest = hashlib.sha256(noise.astype("<f4").tobytes()).hexdigest()
    assert digest == meta["sha256_full_float32_le"]["flow_decoder_rand_noise"]
    np.testing.assert_array_equal(noise[:, :, :78], ref["fixed_rand_noise_head"])


def test_constants_t_span_bit_exact(bundle, ref):
    _, constants, _ = bundle
    np.testing.assert_array_equal(np.asarray(constants["t_span"], np.float32), ref["t_span"])
    assert constants["t_scheduler"] == "cosine" and constants["cfg_rate"] == 0.7 and constants["n_timesteps"] == 10


# ---------------------------------------------------------------- exported graphs


def test_graph_names_and_io(bundle):
    graphs, constants, _ = bundle
    assert list(graphs) == ["flow_frontend", "flow_estimator"]  # one DiT graph for both modes
    assert constants["graphs"] == {"frontend": "flow_frontend", "estimator": "flow_estimator"}
    assert constants["chunk_input"] == "chunk_frames" and constants["chunk_frames_streaming"] == 8
    model = graphs["flow_estimator"][1]
    assert [i.name for i in model.graph.input] == [*EST_KEYS, "chunk_frames"]
    assert [o.name for o in model.graph.output] == ["estimator_out"]
    c_in = model.graph.input[-1].type.tensor_type
    assert c_in.elem_type == onnx.TensorProto.FLOAT and [d.dim_value for d in c_in.shape.dim] == [1]


def test_sentis_rules(bundle):
    graphs, _, _ = bundle
    for name, (_, model) in graphs.items():
        ops = {n.op_type for n in model.graph.node}
        print(name, sorted(ops))
        assert ops <= SENTIS_OPS, f"{name}: ops outside Sentis 2.1: {ops - SENTIS_OPS}"
        assert not ops & BANNED and opset_of(model) == 15 and not model.functions
        assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
        for io in [*model.graph.input, *model.graph.output]:
            assert io.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT32), io.name
            dims = io.type.tensor_type.shape.dim
            assert dims and all(d.dim_param or d.dim_value > 0 for d in dims), io.name
        inferred = onnx.shape_inference.infer_shapes(model)
        for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
            assert len(vi.type.tensor_type.shape.dim) <= 8, vi.name
        slice_inputs = {i for n in model.graph.node if n.op_type == "Slice" for i in n.input[1:]}
        consts = [(t.name, numpy_helper.to_array(t)) for t in model.graph.initializer]
        consts += [(n.output[0], numpy_helper.to_array(a.t)) for n in model.graph.node
                   if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
        for cname, arr in consts:
            if arr.dtype == np.int64 and arr.size and cname not in slice_inputs:
                assert INT32[0] <= arr.min() and arr.max() <= INT32[1], cname


def test_onnx_parity_with_upstream(bundle, ref):
    graphs, _, _ = bundle
    front = session(graphs["flow_frontend"][1])
    tokens = np.concatenate([ref["prompt_token"], ref["token"]], 1).astype(np.int32)
    out = run_onnx(front, {"speech_tokens": tokens, "embedding": ref["embedding"]})
    close("onnx mu", out["mu"], ref["mu"])
    close("onnx spks", out["spks"], ref["spk_proj"])

    est = session(graphs["flow_estimator"][1])
    pair = {k: np.concatenate([ref[f"est_in_{k}"]] * 2) for k in EST_KEYS}
    n_frames = pair["x"].shape[2]
    full = run_onnx(est, {**pair, "chunk_frames": chunk(n_frames)})["estimator_out"]
    close("onnx dit non-stream (chunk_frames = n_frames)", full[:1], ref["est_out_nonstream"])
    big = run_onnx(est, {**pair, "chunk_frames": chunk(BIG_CHUNK)})["estimator_out"]
    close("onnx dit chunk_frames = 15000 vs n_frames", big, full, 0.0)
    close("onnx dit stream (chunk_frames = 8)", run_onnx(est, {**pair, "chunk_frames": chunk(8)})["estimator_out"][:1],
          ref["est_out_stream"])
    for s in range(10):
        feed = {k: ref[f"euler_est_{k}"][s] for k in EST_KEYS}
        feed["chunk_frames"] = chunk(feed["x"].shape[2])
        close(f"onnx euler step {s + 1}", run_onnx(est, feed)["estimator_out"], ref["euler_est_out"][s])


def test_onnx_host_loop_parity(bundle, ref):
    """The bundle path: graphs on onnxruntime + packager/runtime/euler_cfg.py == upstream flow.inference."""
    graphs, constants, noise = bundle
    runners = {name: (lambda feed, s=session(m): run_onnx(s, feed)) for name, (_, m) in graphs.items()}
    args = [ref[k] for k in ("token", "prompt_token", "prompt_feat", "embedding")]
    trace: list = []
    close("onnx+host feat", synthesize(runners, constants, noise, *args), ref["feat"])
    close("onnx+host stream feat", synthesize(runners, constants, noise, *args, streaming=True, finalize=False,
                                              trace=trace), ref["stream_feat"])
    close("onnx stream step 1", trace[0][1], ref["stream_euler_est_out_step0"])


def test_goldens_match_onnx_within_tolerance(bundle):
    graphs, _, _ = bundle
    total = 0
    for name, (g, model) in graphs.items():
        sess = session(model)
        for case in g.cases():
            got = run_onnx(sess, case.inputs)
            for out, want in case.outputs.items():
                tol = g.tolerances[out]
                e = err(got[out], want)
                print(f"{name}/{case.name}/{out}: ORT vs torch max abs {e:.3g} (atol {tol.atol})")
                assert e <= tol.atol + tol.rtol * np.abs(want).max()
                total += want.nbytes
            total += sum(a.nbytes for a in case.inputs.values())
    assert total < 1_500_000, f"goldens too large: {total} bytes"


def test_estimator_goldens_cover_both_modes(bundle):
    graphs, constants, _ = bundle
    cases = {c.name: c for c in graphs["flow_estimator"][0].cases()}
    assert list(cases) == ["euler_step1", "euler_step2", "euler_step3", "stream_euler_step1"]
    for name in ("euler_step1", "euler_step2", "euler_step3"):  # non-streaming: chunk = n_frames
        assert cases[name].inputs["chunk_frames"].tolist() == [cases[name].inputs["x"].shape[2]]
    stream = cases["stream_euler_step1"].inputs
    assert stream["chunk_frames"].tolist() == [constants["chunk_frames_streaming"]]
    assert stream["x"].shape[2] > constants["chunk_frames_streaming"]  # the mask really is chunked
    assert cases["stream_euler_step1"].chain is None


def test_chained_goldens_follow_host_update(bundle):
    graphs, constants, _ = bundle
    g = graphs["flow_estimator"][0]
    cases = [c for c in g.cases() if c.name.startswith("euler_step")]
    t_span, w = np.asarray(constants["t_span"], np.float32), np.float32(constants["cfg_rate"])
    for i, (a, b) in enumerate(zip(cases, cases[1:]), start=1):
        assert b.chain["after"] == a.name
        out = a.outputs["estimator_out"]
        v = (np.float32(1) + w) * out[:1] - w * out[1:]
        x_next = a.inputs["x"][:1] + (t_span[i] - t_span[i - 1]) * v
        np.testing.assert_allclose(b.inputs["x"][:1], x_next, atol=1e-6)
        np.testing.assert_array_equal(b.inputs["mu"][1], 0)


# ---------------------------------------------------------------- preset


def test_preset_deterministic_and_non_degenerate():
    builds = [Flow().build(Source(preset="tiny", seed=7)) for _ in range(2)]
    for g1, g2 in zip(builds[0].graphs, builds[1].graphs):
        assert export_graph(g1).SerializeToString() == export_graph(g2).SerializeToString(), g1.name
    assert builds[0].constants == builds[1].constants
    other = Flow().build(Source(preset="tiny", seed=8))
    est = {g.name: g for g in builds[0].graphs}["flow_estimator"].cases()[0]
    out = est.outputs["estimator_out"]
    assert 0.2 < out.std() < 20 and np.isfinite(out).all()
    assert np.abs(out[0] - out[1]).mean() > 0.05 * out.std()  # conditioning matters
    other_out = {g.name: g for g in other.graphs}["flow_estimator"].cases()[0].outputs["estimator_out"]
    assert np.abs(other_out - out).mean() > 0.1  # the seed matters
