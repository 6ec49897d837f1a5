"""Our own speech tokenizer with the architecture of CosyVoice3's ``speech_tokenizer_v3.onnx`` (S3Tokenizer v3).

Real checkpoints ship the tokenizer only as a 969 MB ONNX graph, and it cannot be downloaded here, so this module
builds a graph of the same architecture and I/O with seeded random weights: for the tiny preset (a small config)
and for full-size benchmarks (``FULL``, ~242 M parameters, ~968 MB fp32). Written from the architecture facts in
design/frontend.md §4a/§4d (S3Tokenizer v3 as described by the splinter21/S3Tokenizer fork); no third-party code.

Architecture (batch 1; ``D`` = n_state, ``H`` heads of ``hd = D / H``, ``K`` = fsmn kernel, ``Q`` = fsq_dims):

- input ``feats`` [1, n_mels, T] (Whisper log-mel, 100 frames / s) and ``feats_length`` int32 [1]. Frames at or
  past ``feats_length`` are padding: they are zeroed before each conv, and after the convs they are masked out of
  attention (as keys) and of the FSMN memory. With ``feats_length = T`` (what CosyVoice's frontend passes) nothing
  is masked.
- ``conv1`` Conv1d(n_mels, D, k=3, stride 2, pad 1) + GELU, ``conv2`` Conv1d(D, D, k=3, stride 2, pad 1) + GELU:
  T1 = (T - 1) // 2 + 1, **L = (T1 - 1) // 2 + 1 = ceil(T / 4)** tokens (T = 100 s frames -> 25 s tokens; for
  T = 1001 -> 251). A token j is valid iff 4 j < feats_length.
- ``n_layer`` pre-LayerNorm blocks (eps 1e-5): ``x += attn(ln(x))``, ``x += mlp(ln(x))``; mlp = D -> 4D, GELU, 4D -> D.
  attn: q, v and out projections with bias, k without; rotary position embedding on q and k (rotate-half form,
  frequencies theta^(-2i/rope_dim), theta 1e4, a precomputed cos/sin table of ``rope_positions`` = 2048 rows, so
  L <= 2048, i.e. T <= 8192 frames), q and k each scaled by hd^-1/4, softmax over keys with a -1e10 bias on padded
  keys; plus an FSMN memory on the (un-rotated) values: ``m = (v + dwconv_K(v)) * mask`` with v masked first and
  a depthwise, bias-free conv of kernel K = 31 (15 + 15 zero padding); the block adds ``out(attention) + m``.
- FSQ: ``h = project_down(x)`` (D -> Q, with bias), ``h = round(tanh(h) * 0.999)`` in {-1, 0, 1} (round half to
  even), ``indices = sum_k (h_k + 1) * 3^k`` -> int32 [1, L] in [0, 3^Q).

The ONNX graph (``export_onnx``) has inputs ``feats``, ``feats_length`` and output ``indices`` with dynamic T / L,
only plain ops (Conv, MatMul, Erf-GELU, decomposed LayerNorm at opset < 17, Softmax, Range, Less, Tanh, Round,
ReduceSum, Cast ...), no If / Loop / Scan, and the same bytes for the same weights in every run and process.
"""
from __future__ import annotations

import io
import math
import os
import tempfile
import threading
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

from packager import GENERATOR_NAME
from packager.sentis.rules import DEFAULT_OPSET

INPUT_NAMES = ("feats", "feats_length")
OUTPUT_NAME = "indices"
MASK_BIAS = -1.0e10  # additive attention bias of padded keys
FSQ_SCALE = 0.9990000128746033  # float32(0.999): keeps |tanh| * scale < 1 so that round() never reaches +-1.5


@dataclass(frozen=True)
class SpeechTokenizerConfig:
    n_mels: int = 128
    n_state: int = 1280
    n_head: int = 20
    n_layer: int = 12
    fsmn_kernel: int = 31
    mlp_ratio: int = 4
    fsq_dims: int = 8
    fsq_levels: int = 3
    rope_theta: float = 10000.0
    rope_positions: int = 2048
    rope_dim: int | None = None  # None: the head size (upstream: 64 = 1280 / 20)
    ln_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.n_state // self.n_head

    @property
    def rotary_dim(self) -> int:
        return self.rope_dim or self.head_dim

    @property
    def codebook_size(self) -> int:
        return self.fsq_levels ** self.fsq_dims

    @property
    def max_frames(self) -> int:
        """Longest input the rotary table covers: 4 * rope_positions frames."""
        return 4 * self.rope_positions


FULL = SpeechTokenizerConfig()
# Tiny preset: 27 ids, which fits both the tiny LLM (64 speech ids) and the tiny flow vocabulary (64 rows).
TINY = SpeechTokenizerConfig(n_state=64, n_head=4, n_layer=2, fsq_dims=3)


def token_count(frames: int) -> int:
    """L for T input frames: two stride-2, k=3, pad=1 convs, i.e. ceil(T / 4) (0 for T = 0)."""
    t1 = (frames - 1) // 2 + 1 if frames > 0 else 0
    return (t1 - 1) // 2 + 1 if t1 > 0 else 0


class Dense(nn.Module):
    """``x @ weight + bias`` with the weight stored [in, out]: exports as MatMul (+ Add) with no Transpose, so the
    export needs no constant folding over the weights."""

    def __init__(self, n_in: int, n_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.empty(n_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.matmul(x, self.weight)
        return y + self.bias if self.bias is not None else y


def rope_tables(cfg: SpeechTokenizerConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos / sin [rope_positions, rotary_dim]: the rotate-half layout, frequencies repeated for both halves. The
    angles are float32 (as upstream's tables); their cos / sin are computed in float64 by numpy and rounded to
    float32: torch's float32 cos / sin of a 2048 x 16 table differed between processes in about half the runs (by up
    to 1.5e-4 at the large angles), which made the tiny speech tokenizer's bytes differ between processes."""
    d = cfg.rotary_dim
    cpu = torch.device("cpu")  # also inside a meta-device context (the size checks build the model there)
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float32, device=cpu)[: d // 2] / d))
    angles = torch.outer(torch.arange(cfg.rope_positions, dtype=torch.float32, device=cpu), inv_freq)
    angles = torch.cat([angles, angles], dim=-1).numpy().astype(np.float64)
    return (torch.from_numpy(np.cos(angles).astype(np.float32)), torch.from_numpy(np.sin(angles).astype(np.float32)))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, L, H, hd]; cos / sin [L, rd] (rd <= hd: only the first rd channels rotate)."""
    rd = cos.shape[-1]
    xr, rest = x[..., :rd], x[..., rd:]
    half = rd // 2
    turned = torch.cat([-xr[..., half:], xr[..., :half]], dim=-1)
    out = xr * cos[:, None, :] + turned * sin[:, None, :]
    return out if rest.shape[-1] == 0 else torch.cat([out, rest], dim=-1)


class FSMNAttention(nn.Module):
    def __init__(self, cfg: SpeechTokenizerConfig) -> None:
        super().__init__()
        d = cfg.n_state
        self.n_head = cfg.n_head
        self.query = Dense(d, d)
        self.key = Dense(d, d, bias=False)
        self.value = Dense(d, d)
        self.out = Dense(d, d)
        self.fsmn_block = nn.Conv1d(d, d, cfg.fsmn_kernel, padding=(cfg.fsmn_kernel - 1) // 2, groups=d, bias=False)
        self.scale = float(cfg.head_dim) ** -0.25

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor, frame_mask: torch.Tensor,
                cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        # x [B, L, D]; key_bias [B, 1, 1, L]; frame_mask [B, L, 1]
        b, n, d = x.shape
        q = self.query(x).reshape(b, n, self.n_head, -1)
        k = self.key(x).reshape(b, n, self.n_head, -1)
        v = self.value(x)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        v = v * frame_mask
        memory = (v + self.fsmn_block(v.transpose(1, 2)).transpose(1, 2)) * frame_mask
        q = q.permute(0, 2, 1, 3) * self.scale  # [B, H, L, hd]
        k = k.permute(0, 2, 3, 1) * self.scale  # [B, H, hd, L]
        w = torch.softmax(torch.matmul(q, k) + key_bias, dim=-1)
        heads = torch.matmul(w, v.reshape(b, n, self.n_head, -1).permute(0, 2, 1, 3))  # [B, H, L, hd]
        return self.out(heads.permute(0, 2, 1, 3).reshape(b, n, d)) + memory


class Block(nn.Module):
    def __init__(self, cfg: SpeechTokenizerConfig) -> None:
        super().__init__()
        d = cfg.n_state
        self.attn_ln = nn.LayerNorm(d, eps=cfg.ln_eps)
        self.attn = FSMNAttention(cfg)
        self.mlp_ln = nn.LayerNorm(d, eps=cfg.ln_eps)
        self.mlp = nn.Sequential(Dense(d, cfg.mlp_ratio * d), nn.GELU(), Dense(cfg.mlp_ratio * d, d))

    def forward(self, x, key_bias, frame_mask, cos, sin):
        x = x + self.attn(self.attn_ln(x), key_bias, frame_mask, cos, sin)
        return x + self.mlp(self.mlp_ln(x))


class SpeechTokenizerV3(nn.Module):
    """``forward(feats [B, n_mels, T] float32, feats_length [B] int32) -> indices [B, L] int32``, L = ceil(T / 4)."""

    def __init__(self, cfg: SpeechTokenizerConfig = FULL) -> None:
        super().__init__()
        if cfg.n_state % cfg.n_head or cfg.rotary_dim > cfg.head_dim or cfg.rotary_dim % 2:
            raise ValueError(f"bad speech tokenizer config {cfg}")
        self.cfg = cfg
        self.conv1 = nn.Conv1d(cfg.n_mels, cfg.n_state, 3, stride=2, padding=1)
        self.conv2 = nn.Conv1d(cfg.n_state, cfg.n_state, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.project_down = Dense(cfg.n_state, cfg.fsq_dims)
        cos, sin = rope_tables(cfg)
        self.register_buffer("rope_cos", cos)
        self.register_buffer("rope_sin", sin)
        self.register_buffer("fsq_powers", float(cfg.fsq_levels) ** torch.arange(cfg.fsq_dims, dtype=torch.float32))

    @staticmethod
    def _valid(n: torch.Tensor | int, stride: int, length: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """[B, n] float mask: position p (at ``stride`` frames per position) is valid iff stride * p < length."""
        pos = torch.arange(n, dtype=torch.int64) * stride
        return (pos[None, :] < length[:, None]).to(like.dtype)

    def forward(self, feats: torch.Tensor, feats_length: torch.Tensor) -> torch.Tensor:
        length = feats_length.to(torch.int64)
        x = feats * self._valid(feats.shape[-1], 1, length, feats)[:, None, :]
        x = F.gelu(self.conv1(x))
        x = x * self._valid(x.shape[-1], 2, length, x)[:, None, :]
        x = F.gelu(self.conv2(x))
        valid = self._valid(x.shape[-1], 4, length, x)  # [B, L]
        x = x.transpose(1, 2)  # [B, L, D]
        n = x.shape[1]
        cos, sin = self.rope_cos[:n], self.rope_sin[:n]
        key_bias = ((1.0 - valid) * MASK_BIAS)[:, None, None, :]
        frame_mask = valid[:, :, None]
        for block in self.blocks:
            x = block(x, key_bias, frame_mask, cos, sin)
        h = torch.round(torch.tanh(self.project_down(x)) * FSQ_SCALE) + 1.0
        return torch.sum(h * self.fsq_powers, dim=-1).to(torch.int32)


# ---------------------------------------------------------------- random weights

def random_model(cfg: SpeechTokenizerConfig, seed: int) -> SpeechTokenizerV3:
    """Seeded random weights (same seed -> same tensors): convs and projections ~ N(0, 1 / fan_in) (He-like for the
    convs), small random biases and LayerNorm affines, FSMN taps ~ N(0, 1 / K), and ``project_down`` scaled down
    by sqrt(1 + n_layer) for the growth of the residual stream (see ``_init_std``). Measured on Whisper log-mels of
    synthetic signals (10 s: noise, tones, a chirp, a vowel-like buzz): the FSQ digits -1 / 0 / +1 all occur
    (~39 / 35 / 27 % at full size) and ids vary along time (full size: 20-175 distinct ids per 250 tokens; tiny:
    4-14 of 27, most on the vowel-like signal)."""
    model = SpeechTokenizerV3(cfg)  # Dense weights start as torch.empty: cheap even at full size
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():  # registration order: deterministic
            p.normal_(1.0 if name.endswith("_ln.weight") else 0.0, _init_std(cfg, name, p.shape), generator=gen)
    return model.eval()


def _init_std(cfg: SpeechTokenizerConfig, name: str, shape: torch.Size) -> float:
    if name.endswith("_ln.weight") or name.endswith("_ln.bias"):
        return 0.1
    if name.endswith(".bias"):
        return 0.02
    if name.startswith("conv"):  # [out, in, k]: GELU after it, He-like gain
        return math.sqrt(2.0 / (shape[1] * shape[2]))
    if name.endswith("fsmn_block.weight"):  # [D, 1, K]
        return 1.0 / math.sqrt(shape[-1])
    if name.startswith("project_down"):
        # The residual stream grows with depth; std 1 / sqrt(D (1 + layers)) keeps the FSQ inputs near unit scale,
        # where round(tanh(h) * 0.999) is 0 for |h| < 0.55 and +-1 beyond: all three levels occur.
        return 1.0 / math.sqrt(shape[0] * (1.0 + cfg.n_layer))
    return 1.0 / math.sqrt(shape[0])  # Dense [in, out]


# ---------------------------------------------------------------- ONNX export

_EXPORT_LOCK = threading.Lock()


def export_onnx(model: SpeechTokenizerV3, opset: int = DEFAULT_OPSET) -> bytes:
    """The model as ONNX bytes: inputs ``feats`` [1, n_mels, T] float32 and ``feats_length`` [1] int32, output
    ``indices`` [1, L] int32; dynamic T / L. Same weights -> same bytes (in any process).

    The graph is traced without its weights (``export_params=False``), then the weights are streamed in as
    initializers, one tensor at a time, into the canonical protobuf encoding (identical to
    ``ModelProto.SerializeToString``). Peak memory beyond the model is about one copy of the result: measured at
    full size, 2.2 GB peak RSS for init + export, against 4.1 GB for a plain ``torch.onnx.export`` of the weights.
    Torch runs single-threaded while tracing."""
    cfg = model.cfg
    example = (torch.zeros(1, cfg.n_mels, 64), torch.tensor([64], dtype=torch.int32))
    buf = io.BytesIO()
    with _EXPORT_LOCK, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            model.eval()
            torch.onnx.export(model, example, buf, input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                              dynamic_axes={"feats": {2: "T"}, OUTPUT_NAME: {1: "L"}}, opset_version=opset,
                              do_constant_folding=True, export_params=False, keep_initializers_as_inputs=True,
                              dynamo=False)
        finally:
            torch.set_num_threads(threads)
    skeleton = onnx.load_from_string(buf.getvalue())
    del buf
    state = {k: v.detach() for k, v in model.state_dict().items()}
    g = skeleton.graph
    weight_inputs = [i.name for i in g.input if i.name not in INPUT_NAMES]
    missing = [n for n in weight_inputs if n not in state]
    if missing:
        raise RuntimeError(f"exported graph has inputs that are not model state: {missing[:3]}")
    keep = [i for i in g.input if i.name in INPUT_NAMES]
    del g.input[:]
    g.input.extend(keep)
    if [i.name for i in g.input] != list(INPUT_NAMES) or [o.name for o in g.output] != [OUTPUT_NAME]:
        raise RuntimeError("exported speech tokenizer graph has unexpected I/O")
    _normalise(skeleton)
    return _serialise_with_initializers(skeleton, [(n, state[n]) for n in weight_inputs])


def _normalise(model: onnx.ModelProto) -> None:
    model.producer_name = GENERATOR_NAME
    model.producer_version = ""
    model.doc_string = ""
    del model.metadata_props[:]
    model.graph.name = "speech_tokenizer_v3"
    model.graph.doc_string = ""
    for node in model.graph.node:
        node.doc_string = ""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _tensor_header(name: str, t: torch.Tensor) -> onnx.TensorProto:
    """The TensorProto of ``t`` without its data (float32 only: every tensor of this model)."""
    if t.dtype != torch.float32:
        raise TypeError(f"{name}: expected float32, found {t.dtype}")
    return onnx.TensorProto(name=name, dims=list(t.shape), data_type=onnx.TensorProto.FLOAT)


_RAW_DATA = 9  # TensorProto.raw_data, the last field: header bytes + this field == the canonical encoding


def _tensor_size(name: str, t: torch.Tensor) -> int:
    n = 4 * t.numel()
    return _tensor_header(name, t).ByteSize() + len(_varint(_RAW_DATA << 3 | 2)) + len(_varint(n)) + n


def _tensor_proto(name: str, t: torch.Tensor) -> bytes:
    proto = _tensor_header(name, t)
    proto.raw_data = t.contiguous().numpy().astype("<f4", copy=False).tobytes()
    return proto.SerializeToString()


# Protobuf serialises known fields in field-number order, and a repeated field's items in order. GraphProto's
# initializer is field 5 (node 1 and name 2 come before it; doc_string 10, input 11, output 12, ... after), and
# ModelProto's graph is field 7. So: model fields < 7, graph tag + size, graph fields < 5, the initializers one by
# one, graph fields > 5, model fields > 7 is byte-for-byte ``ModelProto.SerializeToString()`` (the tests check it).
_GRAPH_INITIALIZER, _MODEL_GRAPH = 5, 7


def _split(message, number: int):
    """(fields numbered below ``number``, fields above it) of a protobuf message, as two new messages."""
    low, high = type(message)(), type(message)()
    low.CopyFrom(message)
    high.CopyFrom(message)
    for field, _ in message.ListFields():
        (high if field.number < number else low).ClearField(field.name)
    low.ClearField(type(message).DESCRIPTOR.fields_by_number[number].name)
    high.ClearField(type(message).DESCRIPTOR.fields_by_number[number].name)
    return low, high


def _serialise_with_initializers(model: onnx.ModelProto, weights: list[tuple[str, torch.Tensor]]) -> bytes:
    g_head, g_tail = _split(model.graph, _GRAPH_INITIALIZER)
    g_head.initializer.extend(model.graph.initializer)  # constants the exporter made itself come first
    m_head, m_tail = _split(model, _MODEL_GRAPH)
    tag = _varint(_GRAPH_INITIALIZER << 3 | 2)

    # the graph's encoded size, computed without encoding the weights
    body = g_head.ByteSize() + g_tail.ByteSize()
    for name, t in weights:
        n = _tensor_size(name, t)
        body += len(tag) + len(_varint(n)) + n
    # write the encoding to a scratch file and read it back as one bytes object (no second full copy)
    with tempfile.TemporaryFile(prefix="speech-tokenizer-", dir=_tmp_dir()) as out:
        out.write(m_head.SerializeToString())
        out.write(_varint(_MODEL_GRAPH << 3 | 2) + _varint(body))
        start = out.tell()
        out.write(g_head.SerializeToString())
        for name, t in weights:
            out.write(_field(_GRAPH_INITIALIZER, _tensor_proto(name, t)))
        out.write(g_tail.SerializeToString())
        if out.tell() - start != body:
            raise RuntimeError("speech tokenizer export: graph size mismatch")
        out.write(m_tail.SerializeToString())
        out.seek(0)
        return out.read()


def _tmp_dir() -> str | None:
    return os.environ.get("PACKAGER_TMP") or None


# ---------------------------------------------------------------- the tiny preset's graph

_TINY_CACHE: dict[int, bytes] = {}
_TINY_LOCK = threading.Lock()


def tiny_speech_tokenizer_onnx(seed: int) -> bytes:
    """The tiny preset's speech tokenizer graph for ``seed`` (deterministic; cached per seed in this process)."""
    seed = int(seed)
    with _TINY_LOCK:
        if seed not in _TINY_CACHE:
            _TINY_CACHE[seed] = export_onnx(random_model(TINY, seed))
        return _TINY_CACHE[seed]
