"""The ``llm`` component: CosyVoice3LM as three Sentis graphs plus the constants a host decode loop needs.

Graphs (README §L, docs/llm.md): ``llm_text_embed`` (Qwen2 embed_tokens lookup), ``llm_speech_embed``
(speech_embedding lookup), ``llm_step`` (one transformer call over T new positions with an explicit, growing KV
cache: prefill with P = 0, then decode with T = 1). The host loop is ``packager/runtime/llm_generate.py``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from packager.build.checkpoint import CONFIG_FILE, QWEN_CONFIG, Source
from packager.build.component import Component, ComponentBuild, GoldenCase, GraphDef, TensorSpec, Tolerance
from packager.components.llm.model import TINY, CosyVoice3LM, LLMConfig, load_llm, random_state_dict
from packager.build.config import Tagged, require
from packager.contract.errors import CheckpointError
from packager.runtime.llm_generate import build_prompt
from packager.components.llm.tokenizer import bundle_tokenizer
from packager.frontend.text_tokenizer import NO_TOKENIZER

LLM_FILE = "llm.pt"
# Upstream inference() defaults (not in the yaml): min/max number of speech tokens per target-text token.
MIN_LEN_RATIO, MAX_LEN_RATIO = 2, 20
DEFAULT_SAMPLING = {"top_p": 0.8, "top_k": 25, "win_size": 10, "tau_r": 0.1}
SILENT_TOKENS = [1, 2, 28, 29, 55, 248, 494, 2241, 2242, 2322, 2323]  # CosyVoice3Model.llm_job (README §L.4)
MAX_SILENT_RUN = 5


# ----------------------------------------------------------------------------------------------------------------
# Hyperparameters from the checkpoint (read as data)
# ----------------------------------------------------------------------------------------------------------------

def read_config(source: Source) -> tuple[LLMConfig, dict[str, float]]:
    """LLMConfig + RAS sampling defaults from cosyvoice3.yaml and CosyVoice-BlankEN/config.json (or the preset)."""
    if source.is_preset:
        return TINY, dict(DEFAULT_SAMPLING)
    doc = source.config()
    node = doc.get("llm")
    if not isinstance(node, Tagged) or not node.target.endswith("CosyVoice3LM"):
        raise CheckpointError("the llm section is not a CosyVoice3LM", file=CONFIG_FILE, key="llm",
                              expected="!new:cosyvoice.llm.llm.CosyVoice3LM",
                              found=getattr(node, "target", type(node).__name__))
    S = require(node, "speech_token_size", CONFIG_FILE, int)
    sampling = dict(DEFAULT_SAMPLING)
    samp = node.get("sampling")
    if isinstance(samp, Tagged):
        for k in sampling:
            if k in samp.kwargs:
                sampling[k] = require(samp, k, CONFIG_FILE, (int, float))
    q = source.qwen_config()
    get = lambda k, kind=int: require(q, k, QWEN_CONFIG, kind)  # noqa: E731
    cfg = LLMConfig(hidden=get("hidden_size"), layers=get("num_hidden_layers"), heads=get("num_attention_heads"),
                    kv_heads=get("num_key_value_heads"), intermediate=get("intermediate_size"),
                    text_vocab=get("vocab_size"), speech_token_size=S, rms_eps=float(get("rms_norm_eps", float)),
                    rope_theta=float(get("rope_theta", (int, float))),
                    max_positions=int(q.get("max_position_embeddings", 32768)))
    if q.get("hidden_act", "silu") != "silu":
        raise CheckpointError("unsupported activation", file=QWEN_CONFIG, key="hidden_act", expected="silu",
                              found=str(q.get("hidden_act")))
    if cfg.hidden % cfg.heads or cfg.heads % cfg.kv_heads or cfg.head_dim % 2:
        raise CheckpointError("heads do not divide the hidden size", file=QWEN_CONFIG, key="num_attention_heads",
                              expected="hidden % heads == 0, heads % kv_heads == 0, even head_dim",
                              found=f"{cfg.hidden}/{cfg.heads}/{cfg.kv_heads}")
    for k in ("llm_input_size", "llm_output_size"):
        if k in node.kwargs and node.kwargs[k] != cfg.hidden:
            raise CheckpointError("does not match the Qwen2 hidden_size", file=CONFIG_FILE, key=f"llm.{k}",
                                  expected=str(cfg.hidden), found=str(node.kwargs[k]))
    return cfg, sampling


def load_model(source: Source) -> tuple[CosyVoice3LM, dict[str, float]]:
    cfg, sampling = read_config(source)
    if source.is_preset:
        sd = random_state_dict(cfg, source.seed)
        return load_llm(cfg, sd, "preset"), sampling
    return load_llm(cfg, source.state_dict(LLM_FILE), str(source.path(LLM_FILE))), sampling


# Each graph's role in the host loop -> its name in the bundle (manifest constants.graphs)
GRAPHS = {"text_embed": "llm_text_embed", "speech_embed": "llm_speech_embed", "step": "llm_step"}


def constants(cfg: LLMConfig, sampling: dict[str, float],
              text_tokenizer: dict[str, Any] = NO_TOKENIZER) -> dict[str, Any]:
    """Everything the host loop needs (manifest ``constants`` of the component; docs/llm.md)."""
    S = cfg.speech_token_size
    return {
        "graphs": dict(GRAPHS),
        "speech_token_size": S, "speech_vocab_size": cfg.speech_vocab, "text_vocab_size": cfg.text_vocab,
        "hidden_size": cfg.hidden, "num_layers": cfg.layers, "num_kv_heads": cfg.kv_heads,
        "head_dim": cfg.head_dim,
        "special_ids": {"sos": S, "eos": S + 1, "task_id": S + 2, "fill": S + 3},
        "stop_range": [S, S + 200],
        "min_len_ratio": MIN_LEN_RATIO, "max_len_ratio": MAX_LEN_RATIO,
        # upstream masks only id S (SOS) before min_len (quirk L3); corrected masks the whole stop range [S, S+200)
        "min_len_masked_ids": {"upstream": [S], "corrected": [S, S + 200]},
        "sampling": {"method": "ras", **sampling, "default_mode": "greedy"},
        "silent_tokens": SILENT_TOKENS, "max_silent_run": MAX_SILENT_RUN,
        "kv_cache": {"layout": "growing", "shape": [cfg.layers, 1, cfg.kv_heads, "len", cfg.head_dim],
                     "initial_len": 0, "max_len": cfg.max_positions,
                     "carry": {"past_key": "present_key", "past_value": "present_value"}},
        "rope_theta": cfg.rope_theta, "rms_norm_eps": cfg.rms_eps,
        "text_tokenizer": dict(text_tokenizer),  # docs/tokenizer.md
    }


# ----------------------------------------------------------------------------------------------------------------
# Export wrappers (forward takes the inputs in TensorSpec order)
# ----------------------------------------------------------------------------------------------------------------

class TextEmbed(nn.Module):
    def __init__(self, model: CosyVoice3LM):
        super().__init__()
        self.weight = model.backbone.embed_tokens.weight

    def forward(self, text_ids: torch.Tensor) -> torch.Tensor:  # int32 [1, n] -> [1, n, D]
        return self.weight[text_ids.long()]


class SpeechEmbed(nn.Module):
    def __init__(self, model: CosyVoice3LM):
        super().__init__()
        self.weight = model.speech_embedding.weight

    def forward(self, speech_ids: torch.Tensor) -> torch.Tensor:  # int32 [1, n] -> [1, n, D]
        return self.weight[speech_ids.long()]


class Step(nn.Module):
    """``CosyVoice3LM.step`` minus the embedding tables (so the step graph holds only the backbone + decoder)."""

    def __init__(self, model: CosyVoice3LM):
        super().__init__()
        self.model = model

    def forward(self, inputs_embeds, past_key, past_value):
        hidden, logits, k, v = self.model.step(inputs_embeds, past_key, past_value)
        return logits, hidden, k, v


class StaticStep(nn.Module):
    """Fixed-size cache variant (measured in benchmarks/bench_llm.py, not shipped; docs/llm.md)."""

    def __init__(self, model: CosyVoice3LM):
        super().__init__()
        self.model = model

    def forward(self, inputs_embeds, position, key_cache, value_cache):
        hidden, logits, k, v = self.model.step_static(inputs_embeds, position, key_cache, value_cache)
        return logits, hidden, k, v


def step_specs(cfg: LLMConfig) -> tuple[list[TensorSpec], list[TensorSpec]]:
    cache = (cfg.layers, 1, cfg.kv_heads)
    ins = [TensorSpec("inputs_embeds", "float32", (1, "seq_len", cfg.hidden),
                      "prefill: the prompt embeddings; decode: speech_embed(previous token)"),
           TensorSpec("past_key", "float32", (*cache, "past_len", cfg.head_dim), "keys after RoPE; past_len 0 first"),
           TensorSpec("past_value", "float32", (*cache, "past_len", cfg.head_dim), "values")]
    outs = [TensorSpec("logits", "float32", (1, cfg.speech_vocab), "llm_decoder(hidden[last]), before log_softmax"),
            TensorSpec("hidden", "float32", (1, "seq_len", cfg.hidden), "Qwen2 output after the final RMSNorm"),
            TensorSpec("present_key", "float32", (*cache, "total_len", cfg.head_dim), "past_key ++ new keys"),
            TensorSpec("present_value", "float32", (*cache, "total_len", cfg.head_dim), "past_value ++ new values")]
    return ins, outs


def static_step_graph(model: CosyVoice3LM, lmax: int) -> GraphDef:
    """The static-cache alternative as a GraphDef (benchmarks and tests only; no goldens)."""
    cfg = model.cfg
    ins, outs = step_specs(cfg)
    cache = (cfg.layers, 1, cfg.kv_heads, lmax, cfg.head_dim)
    ins = [ins[0], TensorSpec("position", "int32", (1,), "number of valid cached positions P"),
           TensorSpec("key_cache", "float32", cache), TensorSpec("value_cache", "float32", cache)]
    outs = [outs[0], outs[1], TensorSpec("new_key_cache", "float32", cache),
            TensorSpec("new_value_cache", "float32", cache)]
    example = (torch.zeros(1, 3, cfg.hidden), torch.tensor([2], dtype=torch.int32), torch.zeros(cache),
               torch.zeros(cache))
    return GraphDef("llm_step_static", ins, outs, cases=list, tolerances={}, module=StaticStep(model),
                    example_inputs=example)


def torch_runners(model: CosyVoice3LM) -> dict[str, Any]:
    """Runners (host-loop interface) over the PyTorch model, for tests and goldens."""
    def run(fn, names):
        def call(inputs):
            with torch.no_grad():
                outs = fn(*[torch.from_numpy(np.asarray(inputs[n])) for n in names])
            outs = outs if isinstance(outs, tuple) else (outs,)
            return [o.numpy() for o in outs]
        return call

    te, se, st = run(model.embed_text, ["text_ids"]), run(model.embed_speech, ["speech_ids"]), \
        run(Step(model).forward, ["inputs_embeds", "past_key", "past_value"])
    return {GRAPHS["text_embed"]: lambda i: {"text_embeds": te(i)[0]},
            GRAPHS["speech_embed"]: lambda i: {"speech_embeds": se(i)[0]},
            GRAPHS["step"]: lambda i: dict(zip(["logits", "hidden", "present_key", "present_value"], st(i)))}


# ----------------------------------------------------------------------------------------------------------------
# Golden cases: a small fixed prompt, prefill + 3 decode steps with the cache carried (greedy over speech ids)
# ----------------------------------------------------------------------------------------------------------------

def golden_prompt(cfg: LLMConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"prompt_text": rng.integers(0, cfg.text_vocab, 7).astype(np.int32),
            "text": rng.integers(0, cfg.text_vocab, 5).astype(np.int32),
            "prompt_speech_tokens": rng.integers(0, cfg.speech_token_size, 4).astype(np.int32)}


def step_cases(model: CosyVoice3LM, n_decode: int = 3) -> list[GoldenCase]:
    cfg = model.cfg
    run = torch_runners(model)
    consts = constants(cfg, DEFAULT_SAMPLING)
    embeds = build_prompt(run, consts, **golden_prompt(cfg))
    past_k, past_v = (t.numpy() for t in model.empty_cache())
    cases, prev = [], None
    for i in range(n_decode + 1):
        inputs = {"inputs_embeds": embeds, "past_key": past_k, "past_value": past_v}
        outs = run[GRAPHS["step"]](inputs)
        name = "prefill" if i == 0 else f"decode{i}"
        chain = None if prev is None else {"after": prev, "carry": {"past_key": "present_key",
                                                                    "past_value": "present_value"}}
        cases.append(GoldenCase(name, inputs, outs, chain=chain,
                                description="prompt prefill" if i == 0 else f"decode step {i} (greedy token)"))
        token = int(np.argmax(outs["logits"][0, :cfg.speech_token_size]))
        embeds = run[GRAPHS["speech_embed"]]({"speech_ids": np.array([[token]], np.int32)})["speech_embeds"]
        past_k, past_v, prev = outs["present_key"], outs["present_value"], name
    return cases


def embed_case(model: CosyVoice3LM, which: str) -> list[GoldenCase]:
    p = golden_prompt(model.cfg)
    if which == "text":
        ids = np.concatenate([p["prompt_text"], p["text"]])[None].astype(np.int32)
        return [GoldenCase("prompt", {"text_ids": ids}, {"text_embeds": model.embed_text(torch.from_numpy(ids))
                                                                   .detach().numpy()})]
    S = model.cfg.speech_token_size
    ids = np.concatenate([[S, S + 2], p["prompt_speech_tokens"]])[None].astype(np.int32)
    return [GoldenCase("prompt", {"speech_ids": ids},
                       {"speech_embeds": model.embed_speech(torch.from_numpy(ids)).detach().numpy()})]


# ----------------------------------------------------------------------------------------------------------------
# The component
# ----------------------------------------------------------------------------------------------------------------

# Measured ORT-vs-torch max |diff| on the golden cases: tiny preset / tiny_a: logits 4.3e-6, hidden 2.9e-6, cache
# 1.3e-6, KL 2.9e-12; full size (random weights, benchmarks/bench_llm.py parity): logits 1.5e-5, hidden 7.4e-6,
# cache 4.3e-6, top1 always equal. atol = rtol = 1e-4 leaves >= 6x (full size) / 23x (tiny) margin; logits add
# top1 == 1 (the argmax is what greedy decoding consumes) and a KL bound far above the measured 1e-12.
STATE_TOL = Tolerance(atol=1e-4, rtol=1e-4)
LOGITS_TOL = Tolerance(atol=1e-4, rtol=1e-4, metrics={"top1": 1.0, "kl": 1e-6})
EXACT_TOL = Tolerance(atol=0.0, rtol=0.0)  # Gather copies table rows: bit-exact on any backend


def graph_defs(model: CosyVoice3LM) -> list[GraphDef]:
    cfg = model.cfg
    ins, outs = step_specs(cfg)
    text_ids = torch.zeros(1, 3, dtype=torch.int32)
    example_step = (torch.zeros(1, 3, cfg.hidden), torch.zeros(cfg.layers, 1, cfg.kv_heads, 2, cfg.head_dim),
                    torch.zeros(cfg.layers, 1, cfg.kv_heads, 2, cfg.head_dim))
    return [
        GraphDef(name=GRAPHS["text_embed"],
                 inputs=[TensorSpec("text_ids", "int32", (1, "text_len"), "Qwen2 text token ids")],
                 outputs=[TensorSpec("text_embeds", "float32", (1, "text_len", cfg.hidden))],
                 cases=lambda: embed_case(model, "text"), tolerances={"text_embeds": EXACT_TOL},
                 module=TextEmbed(model), example_inputs=(text_ids,),
                 description="Qwen2 embed_tokens lookup for prompt_text ++ text"),
        GraphDef(name=GRAPHS["speech_embed"],
                 inputs=[TensorSpec("speech_ids", "int32", (1, "ids_len"), "speech tokens or special ids < S+200")],
                 outputs=[TensorSpec("speech_embeds", "float32", (1, "ids_len", cfg.hidden))],
                 cases=lambda: embed_case(model, "speech"), tolerances={"speech_embeds": EXACT_TOL},
                 module=SpeechEmbed(model), example_inputs=(text_ids,),
                 description="speech_embedding lookup (SOS, TASK_ID, prompt speech tokens, decoded tokens)"),
        GraphDef(name=GRAPHS["step"], inputs=ins, outputs=outs, cases=lambda: step_cases(model),
                 tolerances={"logits": LOGITS_TOL, "hidden": STATE_TOL, "present_key": STATE_TOL,
                             "present_value": STATE_TOL},
                 module=Step(model), example_inputs=example_step, timeout_ms=120_000,
                 description="Qwen2 transformer over T new positions with a growing KV cache (prefill: past_len 0; "
                             "decode: seq_len 1); logits of the last position"),
    ]


class LLM(Component):
    name = "llm"
    checkpoint_files = (CONFIG_FILE, LLM_FILE, QWEN_CONFIG)
    description = "CosyVoice3LM: Qwen2 backbone over text + speech-token embeddings, speech-token logits"
    # fp16 weights (half the bytes, in the file and in Unity): 58-74 dB SQNR, top-1 unchanged (docs/precision.md)
    recommended_precision = "fp16"

    def build(self, source: Source) -> ComponentBuild:
        model, sampling = load_model(source)
        # CosyVoice-BlankEN's tokenizer as int32 tables, when the checkpoint has one (docs/tokenizer.md)
        data, tokenizer = bundle_tokenizer(source, model.cfg.text_vocab)
        return ComponentBuild(graphs=graph_defs(model), constants=constants(model.cfg, sampling, tokenizer),
                              data=data)
