"""LLM component: strict loading, upstream parity (PyTorch and ONNX) on tiny_a, Sentis graph rules, goldens.

Reference: tests/data/upstream_ref/tiny_a/llm_reference.npz (README "llm_reference.npz"). Measured max |diff| vs
upstream are ~1.5e-6 (torch) and ~4e-6 (onnxruntime); the required bound is 1e-4.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from packager.build.checkpoint import Source
from packager.components.llm.component import LLM, StaticStep, constants, load_model, read_config, static_step_graph
from packager.components.llm.model import TINY, expected_shapes, load_llm, random_state_dict
from packager.contract.errors import CheckpointError
from packager.onnx.session import run_onnx
from packager.build.stages.export import export_graph

PARITY = 1e-4
# Sentis 2.1.3 importer op list (../shared/design/sentis.md §1.1), minus what the house rules forbid here.
SENTIS_OPS = set("""Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Bernoulli
Cast CastLike Ceil Celu Clip Compress Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace
Div Dropout Einsum Elu Equal Erf Exp Expand Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool
GlobalMaxPool Greater GreaterOrEqual GridSample HardSigmoid HardSwish Hardmax Identity ImageScaler
InstanceNormalization IsInf IsNaN LRN LSTM LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax MatMul Max
MaxPool Mean Min Mod Mul Multinomial Neg NonMaxSuppression NonZero Not OneHot Or PRelu Pad Pow RandomNormal
RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp
ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize RoiAlign Round Scatter
ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth
Split Sqrt Squeeze Sub Sum Swish Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where
Xor""".split())
FORBIDDEN = {"Einsum", "Bernoulli", "Multinomial", "RandomNormal", "RandomNormalLike", "RandomUniform",
             "RandomUniformLike", "If", "Loop", "Scan"}
INT32 = (-2**31, 2**31 - 1)
TINY_A = dataclasses.replace(TINY, text_vocab=300)  # the preset has 1024 text ids (its tokenizer), tiny_a 300


@pytest.fixture(scope="module")
def ref(tiny_a: Path):
    return np.load(tiny_a / "llm_reference.npz")


@pytest.fixture(scope="module")
def tiny_a_build(tiny_a: Path):
    src = Source(checkpoint=tiny_a)
    model, _ = load_model(src)
    build = LLM().build(src)
    graphs = {g.name: export_graph(g) for g in build.graphs}
    return model, build, graphs


def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


# ---- configuration and strict loading -------------------------------------------------------------------------

def test_config_read_from_checkpoint_matches_tiny_a(tiny_a: Path):
    cfg, sampling = read_config(Source(checkpoint=tiny_a))
    assert cfg == TINY_A  # hidden 64, 2 layers, 4/2 heads, intermediate 128, vocab 300, S 64, theta 1e6, eps 1e-6
    assert sampling == {"top_p": 0.8, "top_k": 25, "win_size": 10, "tau_r": 0.1}
    assert cfg.speech_vocab == 264 and cfg.head_dim == 16 and cfg.group == 2


def _bad_checkpoint(tmp_path: Path, tiny_a: Path, edit) -> Source:
    for name in ("cosyvoice3.yaml", "CosyVoice-BlankEN/config.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tiny_a / name, tmp_path / name)
    sd = torch.load(tiny_a / "llm.pt", weights_only=True)
    edit(sd)
    torch.save(sd, tmp_path / "llm.pt")
    return Source(checkpoint=tmp_path)


def test_wrong_checkpoint_lists_offending_keys(tmp_path: Path, tiny_a: Path):
    def edit(sd):
        del sd["llm.model.model.layers.1.mlp.up_proj.weight"]
        sd["llm_decoder.weight"] = torch.zeros(263, 64)
        sd["llm.llm_embedding.weight"] = torch.zeros(2, 64)  # a CosyVoice2 key
    with pytest.raises(CheckpointError) as err:
        load_model(_bad_checkpoint(tmp_path, tiny_a, edit))
    msg = str(err.value)
    assert "llm.pt" in msg and "3 key/shape mismatch" in msg
    assert "missing key llm.model.model.layers.1.mlp.up_proj.weight (expected shape [128, 64])" in msg
    assert "llm_decoder.weight: expected shape [264, 64], found [263, 64]" in msg
    assert "unexpected key llm.llm_embedding.weight" in msg


def test_wrong_config_is_named(tmp_path: Path, tiny_a: Path):
    src = _bad_checkpoint(tmp_path, tiny_a, lambda sd: None)
    q = json.loads((tmp_path / "CosyVoice-BlankEN/config.json").read_text())
    del q["num_key_value_heads"]
    (tmp_path / "CosyVoice-BlankEN/config.json").write_text(json.dumps(q))
    with pytest.raises(CheckpointError, match="num_key_value_heads"):
        read_config(src)


def test_keys_are_exactly_upstreams(tiny_a: Path):
    sd = torch.load(tiny_a / "llm.pt", weights_only=True)
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected_shapes(TINY_A)
    model = load_llm(TINY_A, sd)
    ours = model.state_dict()
    assert set(ours) == set(sd) - {"llm.model.lm_head.weight"}  # tied head: present upstream, unused here
    assert all(torch.equal(ours[k], sd[k]) for k in ours)


# ---- parity with upstream (PyTorch) ------------------------------------------------------------------------------

def _prompt_embeds(model, ref) -> torch.Tensor:
    S = model.cfg.speech_token_size
    text = torch.from_numpy(np.concatenate([ref["prompt_text"], ref["text"]], 1))
    sp = model.embed_speech(torch.tensor([[S, S + 2, *ref["prompt_speech_token"][0].tolist()]], dtype=torch.int32))
    return torch.cat([sp[:, :1], model.embed_text(text), sp[:, 1:2], sp[:, 2:]], 1)


def test_torch_prefill_and_cached_decode_match_upstream(tiny_a_build, ref):
    model = tiny_a_build[0]
    with torch.no_grad():
        x = _prompt_embeds(model, ref)
        assert max_diff(x, ref["lm_input"]) == 0.0  # Gather: bit-exact
        h, logits, k, v = model.step(x, *model.empty_cache())
        errs = [max_diff(h, ref["prefill_hidden"]), max_diff(logits[0], ref["step_logits"][0]),
                max_diff(k, ref["kv_cache_after_prefill_k"]), max_diff(v, ref["kv_cache_after_prefill_v"])]
        for s in (1, 2, 3):
            h, logits, k, v = model.step(torch.from_numpy(ref[f"decode{s}_input_embeds"]), k, v)
            errs += [max_diff(h, ref[f"decode{s}_hidden"]), max_diff(logits[0], ref["step_logits"][s])]
            assert int(torch.argmax(logits)) == ref["step_tokens"][s]
        errs += [max_diff(k, ref["kv_cache_final_k"]), max_diff(v, ref["kv_cache_final_v"])]
    assert max(errs) < PARITY, errs


def test_torch_cache_free_forward_matches_upstream(tiny_a_build, ref):
    model = tiny_a_build[0]
    with torch.no_grad():
        h, logits, _, _ = model.step(torch.from_numpy(ref["nocache_input_embeds"]), *model.empty_cache())
        assert max_diff(h, ref["nocache_hidden"]) < PARITY
        assert max_diff(model.llm_decoder(h[0, -4:]), ref["nocache_logits_last4"]) < PARITY


def test_static_cache_step_equals_growing_cache(tiny_a_build, ref):
    model = tiny_a_build[0]
    c = model.cfg
    with torch.no_grad():
        x = torch.from_numpy(ref["lm_input"])
        kc = torch.zeros(c.layers, 1, c.kv_heads, 24, c.head_dim)
        logits, h, kc, vc = StaticStep(model)(x, torch.tensor([0], dtype=torch.int32), kc, kc.clone())
        assert max_diff(h, ref["prefill_hidden"]) < PARITY
        for s in (1, 2, 3):
            h, _, kc, vc = model.step_static(torch.from_numpy(ref[f"decode{s}_input_embeds"]),
                                             torch.tensor([17 + s], dtype=torch.int32), kc, vc)
            assert max_diff(h, ref[f"decode{s}_hidden"]) < PARITY
    assert max_diff(kc[:, :, :, :21], ref["kv_cache_final_k"]) < PARITY
    assert float(kc[:, :, :, 21:].abs().max()) == 0.0  # untouched slots stay zero


# ---- parity with upstream (ONNX) ---------------------------------------------------------------------------------

def test_onnx_prefill_and_cached_decode_match_upstream(tiny_a_build, ref):
    graphs = tiny_a_build[2]
    S = TINY.speech_token_size
    te = run_onnx(graphs["llm_text_embed"], {"text_ids": np.concatenate([ref["prompt_text"], ref["text"]], 1)})
    assert max_diff(te["text_embeds"], ref["text_emb"]) == 0.0
    sp = run_onnx(graphs["llm_speech_embed"], {"speech_ids": np.array([[S, S + 2]], np.int32)})["speech_embeds"]
    assert max_diff(sp[:, :1], ref["sos_emb"]) == 0.0 and max_diff(sp[:, 1:], ref["task_id_emb"]) == 0.0
    empty = np.zeros((2, 1, 2, 0, 16), np.float32)
    out = run_onnx(graphs["llm_step"], {"inputs_embeds": ref["lm_input"], "past_key": empty, "past_value": empty})
    errs = [max_diff(out["hidden"], ref["prefill_hidden"]), max_diff(out["logits"][0], ref["step_logits"][0]),
            max_diff(out["present_key"], ref["kv_cache_after_prefill_k"]),
            max_diff(out["present_value"], ref["kv_cache_after_prefill_v"])]
    for s in (1, 2, 3):
        tok = np.array([[ref["step_tokens"][s - 1]]], np.int32)
        emb = run_onnx(graphs["llm_speech_embed"], {"speech_ids": tok})["speech_embeds"]
        assert max_diff(emb, ref[f"decode{s}_input_embeds"]) == 0.0
        out = run_onnx(graphs["llm_step"], {"inputs_embeds": emb, "past_key": out["present_key"],
                                            "past_value": out["present_value"]})
        errs += [max_diff(out["hidden"], ref[f"decode{s}_hidden"]), max_diff(out["logits"][0], ref["step_logits"][s])]
    errs += [max_diff(out["present_key"], ref["kv_cache_final_k"]),
             max_diff(out["present_value"], ref["kv_cache_final_v"])]
    assert max(errs) < PARITY, errs


def test_onnx_static_cache_alternative_matches_upstream(tiny_a_build, ref):
    """The benchmarked alternative layout (docs/llm.md) computes the same thing."""
    graph = export_graph(static_step_graph(tiny_a_build[0], 24))
    kc = np.zeros((2, 1, 2, 24, 16), np.float32)
    out = run_onnx(graph, {"inputs_embeds": ref["lm_input"], "position": np.array([0], np.int32),
                           "key_cache": kc, "value_cache": kc})
    assert max_diff(out["hidden"], ref["prefill_hidden"]) < PARITY
    for s in (1, 2, 3):
        out = run_onnx(graph, {"inputs_embeds": ref[f"decode{s}_input_embeds"],
                               "position": np.array([17 + s], np.int32),
                               "key_cache": out["new_key_cache"], "value_cache": out["new_value_cache"]})
        assert max_diff(out["logits"][0], ref["step_logits"][s]) < PARITY
    assert max_diff(out["new_key_cache"][:, :, :, :21], ref["kv_cache_final_k"]) < PARITY
    assert max_diff(out["new_value_cache"][:, :, :, :21], ref["kv_cache_final_v"]) < PARITY


# ---- Sentis graph rules --------------------------------------------------------------------------------------------

def _int64_values(model: onnx.ModelProto):
    """(node op consuming it or 'initializer', values) for every int64 constant in the graph."""
    consumers = {i: n.op_type for n in model.graph.node for i in n.input}
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.INT64:
            yield consumers.get(init.name, "?"), onnx.numpy_helper.to_array(init)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute[0].t.data_type == onnx.TensorProto.INT64:
            yield consumers.get(n.output[0], "?"), onnx.numpy_helper.to_array(n.attribute[0].t)


def test_graphs_follow_sentis_rules(tiny_a_build):
    for name, model in tiny_a_build[2].items():
        ops = {n.op_type for n in model.graph.node}
        assert ops <= SENTIS_OPS and not ops & FORBIDDEN, (name, ops - SENTIS_OPS, ops & FORBIDDEN)
        assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
        assert [o.version for o in model.opset_import if o.domain == ""] == [15]
        assert not model.functions
        for io in [*model.graph.input, *model.graph.output]:
            assert io.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT32), io.name
            assert io.type.tensor_type.HasField("shape"), io.name
        inferred = onnx.shape_inference.infer_shapes(model)
        for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
            assert len(vi.type.tensor_type.shape.dim) <= 8, vi.name
        for op, values in _int64_values(model):
            inside = (values >= INT32[0]) & (values <= INT32[1])
            assert inside.all() or op == "Slice", (name, op, values)


def test_step_graph_holds_no_embedding_tables(tiny_a_build):
    inits = {tuple(i.dims) for i in tiny_a_build[2]["llm_step"].graph.initializer}
    assert (TINY_A.text_vocab, TINY_A.hidden) not in inits  # embed_tokens lives only in llm_text_embed
    assert (TINY.speech_vocab, TINY.hidden) in inits or (TINY.hidden, TINY.speech_vocab) in inits  # llm_decoder


# ---- preset, goldens, determinism ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def preset_build():
    return LLM().build(Source(preset="tiny", seed=1234))


def test_goldens_prefill_and_chained_decodes_pass_on_onnx(preset_build):
    step = next(g for g in preset_build.graphs if g.name == "llm_step")
    cases = step.cases()
    assert [c.name for c in cases] == ["prefill", "decode1", "decode2", "decode3"]
    assert cases[0].inputs["past_key"].shape[3] == 0 and cases[0].chain is None
    model = export_graph(step)
    outs = None
    for prev, case in zip([None, *cases], cases):
        if case.chain:  # the carry mapping must reproduce the stored inputs exactly
            assert case.chain["after"] == prev.name
            for inp, out in case.chain["carry"].items():
                assert np.array_equal(case.inputs[inp], prev.outputs[out])
        outs = run_onnx(model, case.inputs)
        for name, expected in case.outputs.items():
            tol = step.tolerances[name]
            assert np.all(np.abs(outs[name] - expected) <= tol.atol + tol.rtol * np.abs(expected)), name
        assert outs["logits"].argmax() == case.outputs["logits"].argmax()
    assert outs["present_key"].shape[3] == cases[0].inputs["inputs_embeds"].shape[1] + 3


def test_preset_is_deterministic_and_non_degenerate(preset_build):
    again = LLM().build(Source(preset="tiny", seed=1234))
    for g1, g2 in zip(preset_build.graphs, again.graphs):
        assert export_graph(g1).SerializeToString() == export_graph(g2).SerializeToString()
        for c1, c2 in zip(g1.cases(), g2.cases()):
            assert all(np.array_equal(c1.outputs[k], c2.outputs[k]) for k in c1.outputs)
    other = random_state_dict(TINY, 99)["llm_decoder.weight"]
    assert not torch.equal(other, random_state_dict(TINY, 1234)["llm_decoder.weight"])
    # non-degenerate: every golden step picks a speech token by a clear margin, and the tokens are not constant
    cases = next(g for g in preset_build.graphs if g.name == "llm_step").cases()
    S = TINY.speech_token_size
    top2 = [np.sort(c.outputs["logits"][0])[-2:] for c in cases]
    assert all(int(c.outputs["logits"][0].argmax()) < S for c in cases)
    assert min(t[1] - t[0] for t in top2) > 1e-2
    assert np.std(cases[0].outputs["hidden"]) > 0.1


def test_constants_are_json_and_complete(preset_build):
    c = json.loads(json.dumps(preset_build.constants))
    S = 64
    assert c["special_ids"] == {"sos": S, "eos": S + 1, "task_id": S + 2, "fill": S + 3}
    assert c["stop_range"] == [S, S + 200] and c["min_len_ratio"] == 2 and c["max_len_ratio"] == 20
    assert c["sampling"]["top_p"] == 0.8 and c["sampling"]["top_k"] == 25 and c["sampling"]["win_size"] == 10
    assert c["silent_tokens"] == [1, 2, 28, 29, 55, 248, 494, 2241, 2242, 2322, 2323] and c["max_silent_run"] == 5
    assert c["kv_cache"]["shape"] == [2, 1, 2, "len", 16] and c["kv_cache"]["initial_len"] == 0
    assert c["text_vocab_size"] == 1024 and c["text_tokenizer"]["available"]  # the preset's own tokenizer
    assert c == constants(TINY, {"top_p": 0.8, "top_k": 25, "win_size": 10, "tau_r": 0.1}, c["text_tokenizer"])
