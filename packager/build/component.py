"""The one interface every component implements, and the records the shared stages exchange.

A component (``packager/components/<name>.py``) turns a ``Source`` into ``GraphDef``s plus host constants and
host data. The shared stages (``packager/build/stages``) export, check, golden and package them without knowing any
component by name: everything they need (tensor names, symbolic dims, dtypes, tolerances, example inputs, golden
cases) is declared here.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import onnx

from packager.build.checkpoint import Source
from packager.contract.tolerance import Tolerance  # noqa: F401  (part of the component interface)

if TYPE_CHECKING:  # torch-free at run time: the verbs that only read bundles (verify, run) import this module
    import torch

Dim = int | str


@dataclass(frozen=True)
class NodeScope:
    """A ``GraphDef.keep_float32`` entry naming every node of the exported graph whose name starts with ``prefix``
    (a module path of the torch export, e.g. ``"/m_source/"``): lets a component declare a whole sub-network before
    the node names exist. As a ``GraphDef.dsp_constants`` entry: every float constant those nodes read."""

    prefix: str


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output. ``shape`` holds ints for fixed dims and snake_case names for symbolic ones."""

    name: str
    dtype: str  # "float32" | "int32"
    shape: tuple[Dim, ...]
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.description:
            d["description"] = self.description
        return d


@dataclass
class GoldenCase:
    """One graph call: inputs (float32/int32 arrays keyed by input name) and *reference* outputs.

    Reference outputs come from an independent computation (our PyTorch model, upstream's reference tensors, or the
    original shipped graph) -- never from the exported graph itself -- so a golden says what the graph must compute.
    ``chain`` documents multi-step cases (LLM decode steps, Euler steps): ``{"after": "<previous case>",
    "carry": {"<input name>": "<output name of the previous case>"}}``; a runtime may feed the previous step's
    outputs instead of the stored inputs.
    """

    name: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    chain: dict[str, Any] | None = None
    description: str = ""


@dataclass
class GraphDef:
    """One ONNX graph of a component.

    Exactly one of ``module`` (a torch export wrapper whose ``forward`` takes the inputs in ``inputs`` order and
    returns the outputs in ``outputs`` order) or ``onnx_model`` (an existing graph, e.g. the shipped campplus.onnx)
    is set. ``example_inputs`` are tracing inputs for ``module``. ``rewrite`` (optional) edits the exported
    ModelProto (Sentis fixes) and must return an equivalent graph; it never decides precision. ``keep_float32`` is
    this graph's precision declaration: node, initializer or tensor names, and ``NodeScope``s, that a
    reduced-precision policy keeps float32 (their nodes and consumers; ``build/stages/convert.keep_nodes``).

    DSP constants (docs/precision.md "DSP constants") are exact numbers -- DFT bases, windows, filter banks -- not
    learned weights, so no policy may round them. ``dsp_graph``: every constant of the graph is one (no learned
    weight at all): the graph ships fp32 with ``unity_quantization: none`` whatever its component's policy.
    ``dsp_constants``: the DSP constants of a graph that also has learned weights, as constant names (an initializer,
    a Constant node or its output) or ``NodeScope``s (every float constant the scope's nodes read); under every policy
    they stay bit-exact float32 in the file (a build error otherwise), and where Unity's ModelQuantizer would round one
    (it rounds every constant input of Conv, ConvTranspose, Gather, Dense and MatMul layers, with no exclusion list)
    the graph gets ``unity_quantization: none``. A component keeps its DSP constants out of those layers (e.g.
    ``components/dsp.py``: elementwise Mul + ReduceSum) so that its learned weights can still be quantized.
    """

    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    cases: Callable[[], list[GoldenCase]]
    tolerances: dict[str, Tolerance]
    module: torch.nn.Module | None = None
    example_inputs: tuple[torch.Tensor, ...] | None = None
    onnx_model: onnx.ModelProto | None = None
    rewrite: Callable[[onnx.ModelProto], onnx.ModelProto] | None = None
    keep_float32: Sequence[str | NodeScope] = ()
    dsp_constants: Sequence[str | NodeScope] = ()
    dsp_graph: bool = False
    description: str = ""
    timeout_ms: int = 60_000  # for the Unity test of one case (import + run), CPU backend


@dataclass
class HostData:
    """A host-side array shipped in the bundle (noise tables ...), described in the manifest."""

    name: str
    array: np.ndarray
    description: str


@dataclass
class ComponentBuild:
    graphs: list[GraphDef]
    constants: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable host constants
    data: list[HostData] = field(default_factory=list)


class Component(ABC):
    """A neural component of CosyVoice3 (llm, flow, hift, campplus).

    ``checkpoint_files`` lists the files this component reads from an upstream checkpoint folder (relative paths);
    ``build`` loads (preset or checkpoint, strictly), and returns the graph definitions, constants and data.
    ``recommended_precision`` is what ``--precision recommended`` (the default) gives this component's graphs:
    one of ``packager.build.precision.PRECISIONS`` but ``int8``, chosen by measurement (docs/precision.md).
    """

    name: str
    checkpoint_files: tuple[str, ...] = ()
    description: str = ""
    recommended_precision: str = "fp32"

    @abstractmethod
    def build(self, source: Source) -> ComponentBuild:
        ...
