"""The flow component: token frontend + DiT estimator graphs, Euler/CFG host constants and the fixed noise table.

Graphs (README "F. Flow" / "F-DiT"; model in ``flow_model.py``, host loop in ``packager/runtime/euler_cfg.py``):

* ``flow_frontend``: ``speech_tokens`` int32 [1, n_tokens] (prompt ++ target), ``embedding`` [1, 192] ->
  ``mu`` [1, 80, R*n_tokens] (finalize=True), ``spks`` [1, 80].
* ``flow_estimator``: upstream's official I/O ``x, mask, mu, t, spks, cond`` plus ``chunk_frames`` (float32 [1])
  -> ``estimator_out``, batch 2 (the CFG pair), dynamic ``n_frames``. ``chunk_frames`` selects the attention mask
  at run time (README F-DiT 5): ``static_chunk_size`` = upstream's streaming DiT, ``n_frames`` (or any larger
  value) = its non-streaming DiT, so one graph (1.3 GB at full size) serves both modes.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from packager.build.checkpoint import CONFIG_FILE, Source, check_state_dict
from packager.build.component import Component, ComponentBuild, GoldenCase, GraphDef, HostData, TensorSpec, Tolerance
from packager.components.flow.model import MEL_BINS, SPK_DIM, FlowConfig, FlowModel
from packager.build.config import Tagged, require
from packager.contract.errors import CheckpointError
from packager.runtime.euler_cfg import synthesize

FLOW_FILE = "flow.pt"
NOISE_SHAPE = (1, MEL_BINS, 15000)  # upstream CausalConditionalCFM.rand_noise: 300 s of mel frames
NOISE_SEED = 0  # upstream reseeds to 0 right before drawing it (README "Random streams")
# Built-in "tiny" preset: tiny_a's flow hyperparameters (shared/upstream_ref/tiny_a/cosyvoice3.yaml).
TINY = FlowConfig(vocab_size=64, token_mel_ratio=2, pre_lookahead_len=3, pre_lookahead_channels=32, chunk_size=4,
                  static_chunk_size=8, dim=64, depth=2, heads=4, dim_head=16, ff_mult=2)
# Golden synthesis: P prompt tokens + K target tokens (short: the goldens stay ~100 KB per case).
GOLDEN_PROMPT_TOKENS, GOLDEN_TOKENS, GOLDEN_EULER_STEPS = 3, 9, 3

# ---------------------------------------------------------------- hyperparameters from cosyvoice3.yaml


def _expect(node: Any, key: str, want: Any, file: str) -> None:
    got = require(node, key, file, kind=())
    if got != want:
        raise CheckpointError("unsupported value (this packager implements upstream CosyVoice3's flow)",
                              file=file, key=key, expected=repr(want), found=repr(got))


def config_from_yaml(doc: dict[str, Any], file: str) -> FlowConfig:
    """Read the ``flow`` section as data; reject configs whose math differs from what flow_model implements."""
    flow = require(doc, "flow", file, Tagged)
    if not flow.target.endswith("CausalMaskedDiffWithDiT"):
        raise CheckpointError("unsupported flow class", file=file, key="flow",
                              expected="cosyvoice.flow.flow.CausalMaskedDiffWithDiT", found=flow.target)
    look, dec = require(flow, "pre_lookahead_layer", file, Tagged), require(flow, "decoder", file, Tagged)
    est, cfm = require(dec, "estimator", file, Tagged), require(dec, "cfm_params", file, Tagged)
    cfm = cfm.get("content", cfm.kwargs)
    for node, key, want in [(flow, "input_size", MEL_BINS), (flow, "output_size", MEL_BINS),
                            (flow, "spk_embed_dim", SPK_DIM), (look, "in_channels", MEL_BINS),
                            (look, "pre_lookahead_len", flow.get("pre_lookahead_len")), (est, "mel_dim", MEL_BINS),
                            (est, "mu_dim", MEL_BINS), (est, "spk_dim", MEL_BINS), (est, "out_channels", MEL_BINS),
                            (cfm, "solver", "euler"), (cfm, "t_scheduler", "cosine")]:
        _expect(node, key, want, file)
    ints = lambda node, key: require(node, key, file, int)
    if ints(est, "static_chunk_size") < 1:  # the run-time chunk_frames input divides by it
        raise CheckpointError("attention chunk must be at least one frame", file=file, key="static_chunk_size",
                              expected=">= 1", found=str(est["static_chunk_size"]))
    return FlowConfig(
        vocab_size=ints(flow, "vocab_size"), token_mel_ratio=ints(flow, "token_mel_ratio"),
        pre_lookahead_len=ints(flow, "pre_lookahead_len"), pre_lookahead_channels=ints(look, "channels"),
        chunk_size=ints(doc, "chunk_size"), static_chunk_size=ints(est, "static_chunk_size"),
        dim=ints(est, "dim"), depth=ints(est, "depth"), heads=ints(est, "heads"), dim_head=ints(est, "dim_head"),
        ff_mult=ints(est, "ff_mult"), cfg_rate=float(require(cfm, "inference_cfg_rate", file)))


# ---------------------------------------------------------------- weights


def randomize(model: FlowModel, seed: int) -> None:
    """Preset weights from ``torch.Generator().manual_seed(seed)``, in state-dict order (deterministic).

    Matrices ~ N(0, 1/fan_in) keep every layer's output O(1) so both the DiT blocks and the AdaLN gates contribute
    (non-degenerate outputs); embeddings ~ N(0, 1) like nn.Embedding; biases small. ``inv_freq`` keeps its formula.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if name.endswith("inv_freq"):
                continue
            noise = torch.randn(p.shape, generator=g)
            if name == "input_embedding.weight":
                p.copy_(noise)
            elif p.dim() == 1:
                p.copy_(0.02 * noise)
            else:
                p.copy_(noise / math.sqrt(p[0].numel()))


def load_model(source: Source) -> FlowModel:
    """Build the flow from the preset (seeded) or the checkpoint (yaml as data, strict keys/shapes)."""
    if source.is_preset:
        model = FlowModel(TINY)
        randomize(model, source.seed)
    else:
        model = FlowModel(config_from_yaml(source.config(), CONFIG_FILE))
        sd = source.state_dict(FLOW_FILE)
        check_state_dict(sd, {k: v.shape for k, v in model.state_dict().items()}, FLOW_FILE)
        model.load_state_dict(sd, strict=True)
    return model.eval()


def noise_table() -> np.ndarray:
    """Upstream's fixed initial ODE state: ``torch.manual_seed(0); torch.randn(1, 80, 15000)``."""
    return torch.randn(NOISE_SHAPE, generator=torch.Generator().manual_seed(NOISE_SEED)).numpy()


# ---------------------------------------------------------------- export wrappers


class FrontendGraph(nn.Module):
    """``flow_frontend``: (speech_tokens int32 [1, N], embedding [1, 192]) -> (mu [1, 80, R*N], spks [1, 80])."""

    def __init__(self, model: FlowModel):
        super().__init__()
        self.model = model

    def forward(self, speech_tokens, embedding):
        return self.model.token_mu(speech_tokens), self.model.speaker(embedding)


class EstimatorGraph(nn.Module):
    """``flow_estimator``: the DiT with the attention chunk as a run-time input (streaming and non-streaming)."""

    def __init__(self, model: FlowModel):
        super().__init__()
        self.dit = model.decoder.estimator

    def forward(self, x, mask, mu, t, spks, cond, chunk_frames):
        return self.dit(x, mask, mu, t, spks, cond, chunk_frames=chunk_frames)


def torch_runner(module: nn.Module, inputs: list[TensorSpec], outputs: list[TensorSpec]):
    """A host-loop runner over a PyTorch wrapper (same calling convention as an onnxruntime session)."""

    def run(feed):
        with torch.no_grad():
            res = module(*(torch.from_numpy(np.asarray(feed[s.name])) for s in inputs))
        res = res if isinstance(res, tuple) else (res,)
        return {s.name: r.numpy() for s, r in zip(outputs, res)}
    return run


def f32(name: str, shape: tuple, description: str = "") -> TensorSpec:
    return TensorSpec(name, "float32", shape, description)


FRONTEND_IN = [TensorSpec("speech_tokens", "int32", (1, "n_tokens"), "prompt ++ target speech tokens, 0 <= id < S"),
               f32("embedding", (1, SPK_DIM), "raw CAM++ speaker embedding (normalised inside)")]
FRONTEND_OUT = [f32("mu", (1, MEL_BINS, "n_frames"), "n_frames = token_mel_ratio * n_tokens"),
                f32("spks", (1, MEL_BINS), "projected speaker embedding")]
ESTIMATOR_IN = [f32("x", (2, MEL_BINS, "n_frames"), "ODE state, same in both rows"),
                f32("mask", (2, 1, "n_frames"), "ones"), f32("mu", (2, MEL_BINS, "n_frames"), "row 1 zeros"),
                f32("t", (2,), "ODE time, same in both rows"), f32("spks", (2, MEL_BINS), "row 1 zeros"),
                f32("cond", (2, MEL_BINS, "n_frames"), "prompt mel then zeros; row 1 zeros"),
                f32("chunk_frames", (1,), "attention chunk c in frames: chunk_frames_streaming = streaming, "
                    "n_frames (or any value >= it) = non-streaming (full attention)")]
ESTIMATOR_OUT = [f32("estimator_out", (2, MEL_BINS, "n_frames"), "velocity per row (before CFG)")]


# ---------------------------------------------------------------- the component


# Each graph's role in the host loop -> its name in the bundle (manifest constants.graphs; runtimes look graphs up
# by role).
GRAPHS = {"frontend": "flow_frontend", "estimator": "flow_estimator"}


class Flow(Component):
    name = "flow"
    checkpoint_files = (CONFIG_FILE, FLOW_FILE)
    description = "token frontend + DiT estimator (CFM velocity field); Euler/CFG loop on the host"
    # fp16 weights: mu and the velocity field within 58-73 dB SQNR of fp32 (docs/precision.md "Measured")
    recommended_precision = "fp16"

    def build(self, source: Source) -> ComponentBuild:
        model = load_model(source)
        noise = noise_table()
        constants = self.constants(model.cfg)
        front, dit = FrontendGraph(model), EstimatorGraph(model)
        runners = {GRAPHS["frontend"]: torch_runner(front, FRONTEND_IN, FRONTEND_OUT),
                   GRAPHS["estimator"]: torch_runner(dit, ESTIMATOR_IN, ESTIMATOR_OUT)}
        cases = GoldenCases(model.cfg, source.seed, runners, constants, noise)
        n_ex = 6
        est_example = (torch.zeros(2, MEL_BINS, 4 * n_ex), torch.ones(2, 1, 4 * n_ex),
                       torch.zeros(2, MEL_BINS, 4 * n_ex), torch.full((2,), 0.5),
                       torch.zeros(2, MEL_BINS), torch.zeros(2, MEL_BINS, 4 * n_ex), torch.full((1,), 8.0))
        graphs = [
            GraphDef(GRAPHS["frontend"], FRONTEND_IN, FRONTEND_OUT, cases.frontend, FRONTEND_TOL, module=front,
                     example_inputs=(torch.zeros(1, n_ex, dtype=torch.int32), torch.ones(1, SPK_DIM)),
                     description="speech tokens -> mu (PreLookahead, finalize=True, repeated R times); "
                                 "speaker embedding -> spks"),
            GraphDef(GRAPHS["estimator"], ESTIMATOR_IN, ESTIMATOR_OUT, cases.estimator, ESTIMATOR_TOL, module=dit,
                     example_inputs=est_example,
                     description="DiT velocity field (batch 2 = CFG); attention chunk chunk_frames: "
                                 f"{model.cfg.static_chunk_size} = streaming, >= n_frames = full attention"),
        ]
        data = [HostData("flow_noise", noise, "initial ODE state x0 = flow_noise[:, :, :T]; upstream's fixed "
                         "table torch.manual_seed(0); torch.randn(1, 80, 15000), float32")]
        return ComponentBuild(graphs=graphs, constants=constants, data=data)

    def constants(self, cfg: FlowConfig) -> dict[str, Any]:
        """Everything the host loop needs (read by packager/runtime/euler_cfg.py and the Unity mirror)."""
        steps = cfg.n_timesteps
        # upstream: 1 - cos(linspace(0, 1, n+1) * 0.5 * pi), float32 torch ops; shipped bit-exact
        t_span = 1 - torch.cos(torch.linspace(0, 1, steps + 1) * 0.5 * torch.pi)
        return {
            "graphs": dict(GRAPHS),
            "mel_bins": MEL_BINS, "spk_embed_dim": SPK_DIM, "vocab_size": cfg.vocab_size,
            "token_mel_ratio": cfg.token_mel_ratio, "pre_lookahead_len": cfg.pre_lookahead_len,
            "chunk_size_tokens": cfg.chunk_size,
            "chunk_input": "chunk_frames",
            "chunk_frames_streaming": cfg.static_chunk_size,
            "n_timesteps": steps, "t_scheduler": cfg.t_scheduler, "cfg_rate": cfg.cfg_rate,
            "t_span": [float(v) for v in t_span.numpy()],
            "noise": "flow_noise",
            "stream": dict(STREAM_SCHEDULE),
        }


# Upstream CosyVoice3Model's streaming token2wav schedule (cosyvoice/cli/model.py, not in the yaml): token hops
# 25 -> 50 -> 100 (shared/design/cosyvoice3.md "Stream"). Read by packager/runtime/pipeline.py and the C# Synthesizer.
STREAM_SCHEDULE = {"token_hop": 25, "token_max_hop": 100, "scale": 2}



# Tolerances, from measured ORT-vs-torch max |diff| on the goldens (tests/components/test_flow.py prints them):
# mu <= 8.3e-7 (values up to 3.8) -> atol 1e-5 (12x margin); spks <= 6e-8 -> atol 1e-6 (16x); estimator_out
# <= 1.7e-6 on the tiny preset and tiny_a (streaming and full chunk alike), 5.0e-6 for the 331 M-parameter DiT at
# T=500 (benchmarks/bench_flow.py)
# -> atol 1e-4 (20x at full size). cosine >= 0.99999 (measured 0.99999988 at full size) flags a structurally
# wrong graph even where the element-wise bound would be loose.
FRONTEND_TOL = {"mu": Tolerance(atol=1e-5, rtol=1e-5), "spks": Tolerance(atol=1e-6, rtol=1e-5)}
ESTIMATOR_TOL = {"estimator_out": Tolerance(atol=1e-4, rtol=1e-4, metrics={"cosine": 0.99999})}


class GoldenCases:
    """Golden cases for the two graphs, from short syntheses driven by our PyTorch modules (computed once)."""

    def __init__(self, cfg: FlowConfig, seed: int, runners, constants, noise):
        self.cfg, self.seed, self.runners, self.constants, self.noise = cfg, seed, runners, constants, noise
        self._cache: dict[str, list[GoldenCase]] = {}

    def inputs(self) -> tuple[np.ndarray, ...]:
        g = torch.Generator().manual_seed(self.seed)
        p, k, r = GOLDEN_PROMPT_TOKENS, GOLDEN_TOKENS, self.cfg.token_mel_ratio
        prompt = torch.randint(0, self.cfg.vocab_size, (1, p), generator=g, dtype=torch.int32)
        token = torch.randint(0, self.cfg.vocab_size, (1, k), generator=g, dtype=torch.int32)
        return (token.numpy(), prompt.numpy(), torch.randn(1, p * r, MEL_BINS, generator=g).numpy(),
                torch.randn(1, SPK_DIM, generator=g).numpy())

    def frontend(self) -> list[GoldenCase]:
        token, prompt, _, emb = self.inputs()
        cases = []
        for name, toks in [("prompt_and_target", np.concatenate([prompt, token], 1)), ("target_only", token)]:
            feed = {"speech_tokens": toks, "embedding": emb}
            cases.append(GoldenCase(name, feed, dict(self.runners["flow_frontend"](feed)),
                                    description=f"{toks.shape[1]} tokens"))
        return cases

    def _trace(self, streaming: bool) -> list:
        token, prompt, feat, emb = self.inputs()
        trace: list = []
        synthesize(self.runners, self.constants, self.noise, token, prompt, feat, emb, streaming=streaming,
                   finalize=not streaming, trace=trace)
        return trace

    def estimator(self) -> list[GoldenCase]:
        """Both modes on the one graph: non-streaming Euler steps 1-3 (chained, chunk_frames = n_frames) and step 1
        of a streaming finalize=False synthesis (chunk_frames = static chunk, n_frames not a multiple of it)."""
        if "estimator" in self._cache:
            return self._cache["estimator"]
        cases, prev = [], None
        for i, (feed, out) in enumerate(self._trace(False)[:GOLDEN_EULER_STEPS], start=1):
            name = f"euler_step{i}"
            chain = None if prev is None else {"after": prev, "carry": {}}
            cases.append(GoldenCase(name, feed, {"estimator_out": out}, chain=chain, description=(
                f"Euler step {i} of a non-streaming synthesis (chunk_frames = n_frames: full attention); next "
                "step's x = x + dt * ((1+cfg_rate) out[0] - cfg_rate out[1]) on both rows (host euler_cfg)")))
            prev = name
        feed, out = self._trace(True)[0]
        cases.append(GoldenCase("stream_euler_step1", feed, {"estimator_out": out}, description=(
            f"Euler step 1 of a streaming finalize=False synthesis (chunk_frames = {self.cfg.static_chunk_size}: "
            "chunked attention, full left context)")))
        self._cache["estimator"] = cases
        return cases
