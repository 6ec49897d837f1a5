"""The speech tokenizer: our v3-architecture torch module, its ONNX export, and the onnxruntime runner
(``packager.frontend.speech_tokenizer``). Tiny config only; the full-size graph is made by benchmarks/make_speech_tokenizer.py.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from packager.frontend import speech_tokenizer_model as stm
from packager.contract.errors import CheckpointError, InputError
from packager.frontend.speech_tokenizer import N_MELS, SPEECH_TOKENIZER_FILE, SpeechTokenizer

REPO = Path(__file__).resolve().parents[2]
SEED = 1234
LENGTHS = (1, 2, 5, 63, 64, 250, 1001, 1999)  # several not divisible by 4


@pytest.fixture(scope="module")
def tiny_bytes() -> bytes:
    return stm.tiny_speech_tokenizer_onnx(SEED)


@pytest.fixture(scope="module")
def tiny_model() -> stm.SpeechTokenizerV3:
    return stm.random_model(stm.TINY, SEED)


@pytest.fixture(scope="module")
def tokenizer(tiny_bytes) -> SpeechTokenizer:
    return SpeechTokenizer.from_bytes(tiny_bytes, "tiny speech tokenizer")


def features(frames: int, seed: int) -> np.ndarray:
    """Log-mel-like features [128, T]: smooth spectral shapes that change over time, plus noise (range ~[-1, 1])."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[None, :] / 100.0
    f = np.arange(N_MELS)[:, None] / N_MELS
    x = 0.4 * np.sin(2 * np.pi * (3 * f + rng.uniform(0.2, 2.0) * t)) - 0.8 * f + 0.2
    return (x + 0.3 * rng.standard_normal((N_MELS, frames))).astype(np.float32)


def torch_ids(model: stm.SpeechTokenizerV3, mel: np.ndarray, length: int | None = None) -> np.ndarray:
    length = mel.shape[1] if length is None else length
    with torch.no_grad():
        out = model(torch.from_numpy(mel)[None], torch.tensor([length], dtype=torch.int32))
    assert out.dtype == torch.int32 and out.shape[0] == 1
    return out[0].numpy()


def test_onnx_matches_torch_and_length_formula(tokenizer, tiny_model):
    for i, frames in enumerate(LENGTHS):
        mel = features(frames, seed=i)
        ids = tokenizer.tokens(mel)
        assert ids.dtype == np.int32 and ids.shape == (stm.token_count(frames),)
        np.testing.assert_array_equal(ids, torch_ids(tiny_model, mel), err_msg=f"T={frames}")


def test_token_count_formula():
    assert [stm.token_count(t) for t in (0, 1, 2, 3, 4, 5, 8, 9, 1001)] == [0, 1, 1, 1, 1, 2, 2, 3, 251]
    for seconds in (1, 3, 10, 30):
        assert stm.token_count(100 * seconds) == 25 * seconds
    for t in range(1, 200):
        assert stm.token_count(t) == -(-t // 4)
    conv = torch.nn.Sequential(torch.nn.Conv1d(1, 1, 3, stride=2, padding=1),
                               torch.nn.Conv1d(1, 1, 3, stride=2, padding=1))
    for t in (1, 6, 7, 97):
        assert conv(torch.zeros(1, 1, t)).shape[-1] == stm.token_count(t)


def test_ids_in_range_and_varied(tokenizer):
    ids = tokenizer.tokens(np.random.default_rng(7).standard_normal((N_MELS, 1000)).astype(np.float32))
    assert ids.min() >= 0 and ids.max() < stm.TINY.codebook_size == 27
    assert len(np.unique(ids)) >= 10  # 27 possible; measured 25 for this input
    ids = tokenizer.tokens(features(1000, seed=3))
    assert ids.min() >= 0 and ids.max() < 27 and len(np.unique(ids)) >= 5  # measured 22


def test_tiny_codebook_fits_the_tiny_llm_and_flow():
    from packager.components.flow import component as flow
    from packager.components.llm import model as llm_model

    assert stm.TINY.codebook_size <= llm_model.TINY.speech_token_size
    assert stm.TINY.codebook_size <= flow.TINY.vocab_size
    assert stm.FULL.codebook_size == 3 ** 8


def test_full_config_has_the_upstream_size():
    with torch.device("meta"):
        model = stm.SpeechTokenizerV3(stm.FULL)
    params = sum(p.numel() for p in model.parameters())
    assert 240e6 < params < 243e6
    assert abs(4 * params - 969_451_503) / 969_451_503 < 0.005  # the shipped file's size


def test_length_input_masks_padding(tiny_bytes):
    sess = ort.InferenceSession(tiny_bytes, providers=["CPUExecutionProvider"])
    mel = features(301, seed=11)
    for valid in (137, 200, 301):
        padded = mel.copy()
        padded[:, valid:] = 5.0  # junk in the padding
        got = sess.run(None, {"feats": padded[None], "feats_length": np.array([valid], np.int32)})[0][0]
        ref = sess.run(None, {"feats": mel[None, :, :valid].copy(),
                              "feats_length": np.array([valid], np.int32)})[0][0]
        assert got.shape == (stm.token_count(301),)
        np.testing.assert_array_equal(got[: stm.token_count(valid)], ref)
    padded = mel.copy()
    padded[:, 137:] = 5.0
    masked = sess.run(None, {"feats": padded[None], "feats_length": np.array([137], np.int32)})[0][0]
    unmasked = sess.run(None, {"feats": padded[None], "feats_length": np.array([301], np.int32)})[0][0]
    assert not np.array_equal(unmasked[:35], masked[:35])  # the length really is used


def test_graph_io_ops_and_encoding(tiny_bytes):
    model = onnx.load_from_string(tiny_bytes)
    onnx.checker.check_model(model)
    assert model.SerializeToString() == tiny_bytes  # canonical protobuf encoding

    def io(v):
        return v.name, v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    assert [io(v) for v in model.graph.input] == [("feats", onnx.TensorProto.FLOAT, [1, N_MELS, "T"]),
                                                  ("feats_length", onnx.TensorProto.INT32, [1])]
    assert [io(v) for v in model.graph.output] == [("indices", onnx.TensorProto.INT32, [1, "L"])]
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [15]
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"If", "Loop", "Scan"}
    assert {"Conv", "Erf", "Softmax", "Tanh", "Round", "Range"} <= ops
    assert len(tiny_bytes) < 2 << 20
    tok = SpeechTokenizer.from_bytes(tiny_bytes, "tiny")
    assert tok.input_names == ("feats", "feats_length") and tok.output_name == "indices" and tok.n_mels == N_MELS


def test_tiny_bytes_deterministic_across_processes(tiny_bytes):
    assert stm.tiny_speech_tokenizer_onnx(SEED) is tiny_bytes  # cached
    assert stm.export_onnx(stm.random_model(stm.TINY, SEED)) == tiny_bytes  # rebuilt in this process
    code = ("import hashlib, torch; torch.set_num_threads(2); "
            "from packager.frontend.speech_tokenizer_model import tiny_speech_tokenizer_onnx as f; "
            f"print(hashlib.sha256(f({SEED})).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == hashlib.sha256(tiny_bytes).hexdigest()
    assert stm.tiny_speech_tokenizer_onnx(SEED + 1) != tiny_bytes


def test_runner_does_not_import_torch():
    code = "import sys, packager.frontend.speech_tokenizer; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_from_file_and_bad_files(tmp_path, tiny_bytes):
    good = tmp_path / SPEECH_TOKENIZER_FILE
    good.write_bytes(tiny_bytes)
    mel = features(80, seed=5)
    np.testing.assert_array_equal(SpeechTokenizer.from_file(good, threads=1).tokens(mel),
                                  SpeechTokenizer.from_bytes(tiny_bytes, "x").tokens(mel))

    cases = {
        "missing.onnx": None,
        "empty.onnx": b"",
        "truncated.onnx": tiny_bytes[: len(tiny_bytes) // 2],
        "text.onnx": b"this is not a model\n" * 10,
        "lfs.onnx": b"version https://git-lfs.github.com/spec/v1\noid sha256:23236a74\nsize 969451503\n",
    }
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(CheckpointError) as err:
            SpeechTokenizer.from_file(path)
        assert err.value.file == str(path) and str(path) in str(err.value), name
        if name == "lfs.onnx":
            assert "LFS" in str(err.value)
        if data is not None:
            with pytest.raises(CheckpointError) as err:
                SpeechTokenizer.from_bytes(data, name)
            assert err.value.file == name
    with pytest.raises(CheckpointError, match="not a file"):
        SpeechTokenizer.from_file(tmp_path)


def _graph(inputs, outputs) -> bytes:
    """A valid ONNX model with the given (name, elem_type, shape) I/O: each output = Cast(ReduceMax over axis 1
    of the first input), so outputs are [B, T]."""
    h = onnx.helper
    nodes = [h.make_node("ReduceMax", [inputs[0][0]], ["m"], axes=[1], keepdims=0)]
    nodes += [h.make_node("Cast", ["m"], [o[0]], to=o[1]) for o in outputs]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info(*i) for i in inputs],
                     [h.make_tensor_value_info(*o) for o in outputs])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 15)]).SerializeToString()


def test_wrong_io_is_a_checkpoint_error(tmp_path):
    F, I32, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT32, onnx.TensorProto.INT64
    feats, length, out = ("feats", F, [1, 128, "T"]), ("feats_length", I32, [1]), ("indices", I32, [1, "T"])
    bad = {
        "one_input": ([feats], [out]),
        "80_mels": ([("feats", F, [1, 80, "T"]), length], [out]),
        "int64_length": ([feats, ("feats_length", I64, [1])], [out]),
        "float_output": ([feats, length], [("indices", F, [1, "T"])]),
    }
    for name, (ins, outs) in bad.items():
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(_graph(ins, outs))
        with pytest.raises(CheckpointError) as err:
            SpeechTokenizer.from_file(path)
        assert err.value.file == str(path) and str(path) in str(err.value), name
    # accepted: a symbolic batch, int64 ids and extra outputs (upstream reads output[0] through a Python list)
    ok = tmp_path / "ok.onnx"
    ok.write_bytes(_graph([("feats", F, ["B", 128, "T"]), ("feats_length", I32, ["B"])],
                          [("indices", I64, ["B", "T"]), ("extra", F, ["B", "T"])]))
    ids = SpeechTokenizer.from_file(ok).tokens(np.full((128, 6), 2.6, np.float32))
    assert ids.dtype == np.int32 and ids.tolist() == [2] * 6


def test_tokens_input_checks(tokenizer):
    with pytest.raises(InputError):
        tokenizer.tokens(np.zeros((80, 100), np.float32))
    with pytest.raises(InputError):
        tokenizer.tokens(np.zeros((1, 128, 100), np.float32))
    with pytest.raises(InputError):
        tokenizer.tokens(np.zeros((128, 0), np.float32))
    with pytest.raises(InputError):
        tokenizer.tokens(np.zeros((128, 10), np.int32))
    # float64 is accepted and cast
    assert tokenizer.tokens(np.zeros((128, 10))).shape == (3,)
