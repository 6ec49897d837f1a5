"""Precision policies: what ``--precision`` means, per component (docs/precision.md).

A policy names, for every component, one precision and optional extra keep-float32 names:

- ``fp32``  the exported graph as is (``unity_quantization: none``);
- ``fp16``  fp16 weights in the ONNX (onnxruntime's float16 converter, float32 I/O, block lists below). Sentis
            imports fp16 initializers as float32 (``Mathf.HalfToFloat``) and computes in float32, so what Unity
            runs is "fp16-rounded weights, fp32 activations" (design/sentis.md §1.5);
- ``uint8`` the fp32 ONNX plus an instruction for the Unity side to call
            ``ModelQuantizer.QuantizeWeights(QuantizationType.Uint8)`` after import (design/sentis.md §3.3);
- ``int8``  onnxruntime dynamic quantization of MatMul/Gemm weights; only on request (a JSON policy), and marked
            as not importable by Sentis (it rejects every (De)QuantizeLinear / *Integer op).

``--precision`` takes ``recommended`` (the default), ``fp32``, ``fp16`` or the path of a JSON file::

    {"<component>": "fp16", "<another component>": {"precision": "fp16", "keep_float32": ["<node name>"],
                                                    "graphs": {"<one of its graphs>": "uint8"}}}

(docs/precision.md has a real one). Components the file does not name get their ``recommended`` precision.
``graphs`` gives single graphs of a component another precision (in Unity the unit of precision is a graph:
ModelQuantizer has no per-layer choice).
``keep_float32`` entries are node names, initializer names or tensor names of the exported graph (``packager
inspect`` / Netron show them).

This module is generic: it knows no component by name and no graph's tensor names. Each component declares its own
facts (``Component.recommended_precision``, ``GraphDef.keep_float32``); here are only rules about op types.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from packager.contract.errors import PackagerError
from packager.contract.targets import PRECISIONS, UNITY_QUANTIZATION  # noqa: F401  (the policies' vocabulary)

RECOMMENDABLE = ("fp32", "fp16", "uint8")  # int8 is not importable by Sentis: only on request
NAMED_POLICIES = ("recommended", "fp32", "fp16")
DEFAULT_POLICY = "recommended"  # what `build` uses without --precision (and the report's tie-break, report/measure.py)

# Op types whose fp16 compute is wrong or unsupported: the ORT float16 fork's default list (Range, CumSum, TopK,
# Resize, Upsample, Min, Max, Random*, NonMaxSuppression, RoiAlign, ...) is added by the converter itself; these are
# ours. At opset 15 a LayerNorm/RMSNorm is decomposed, and its statistics (x^2, mean, sqrt) overflow or lose all
# precision in fp16 (|x| > 256 already gives x^2 > 65504): design/precision_tooling.md §2.4.
KEEP_FLOAT32_OPS: tuple[str, ...] = (
    "Range", "CumSum", "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSumExp",
    "Pow", "Sqrt", "Reciprocal", "BatchNormalization", "InstanceNormalization", "LayerNormalization",
)


@dataclass(frozen=True)
class ComponentPolicy:
    precision: str = "fp32"
    keep_float32: tuple[str, ...] = ()
    graphs: tuple[tuple[str, str], ...] = ()  # (graph name, precision): graphs that differ from ``precision``

    @property
    def unity_quantization(self) -> str:
        return UNITY_QUANTIZATION[self.precision]

    def for_graph(self, graph: str) -> "ComponentPolicy":
        """The policy one graph of the component is built with."""
        return ComponentPolicy(dict(self.graphs).get(graph, self.precision), self.keep_float32)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"precision": self.precision}
        if self.keep_float32:
            d["keep_float32"] = list(self.keep_float32)
        if self.graphs:
            d["graphs"] = dict(self.graphs)
        return d

    def to_entry(self) -> str | dict[str, Any]:
        """This policy as a JSON policy file writes it: the precision alone when nothing else is set."""
        return self.to_json() if self.keep_float32 or self.graphs else self.precision


@dataclass(frozen=True)
class PrecisionPlan:
    """The policy of one build: ``name`` (recommended/fp32/fp16/the JSON file's name), a policy per component, and
    the components' recommended precisions (for a component the plan does not list)."""

    name: str = "fp32"
    components: Mapping[str, ComponentPolicy] = field(default_factory=dict)
    recommended: Mapping[str, str] = field(default_factory=dict)

    def for_component(self, component: str) -> ComponentPolicy:
        return self.components.get(component, ComponentPolicy(_default(self.name,
                                                                       self.recommended.get(component, "fp32"))))


def _default(policy: str, recommended: str) -> str:
    return policy if policy in ("fp32", "fp16") else recommended


def check_recommended(recommended: Mapping[str, str]) -> dict[str, str]:
    """``recommended`` (component name -> the precision it declares) as a dict, or an error naming the component
    whose declaration is not one of ``RECOMMENDABLE``."""
    for n, p in recommended.items():
        if p not in RECOMMENDABLE:
            raise PackagerError("component declares an unknown recommended precision", key=n,
                                expected=", ".join(RECOMMENDABLE), found=repr(p))
    return dict(recommended)


def plan(value: str | Path | None, recommended: Mapping[str, str]) -> PrecisionPlan:
    """``--precision`` -> a plan for the components of ``recommended`` (name -> the precision each declares, see
    ``registry.recommended_precisions``). A name, or a JSON file (see the module docstring)."""
    recommended = check_recommended(recommended)
    names = list(recommended)
    text = DEFAULT_POLICY if value is None else str(value)
    if text in NAMED_POLICIES:
        return PrecisionPlan(text, {c: ComponentPolicy(_default(text, recommended[c])) for c in names}, recommended)
    path = Path(text)
    if not path.suffix.lower() == ".json" and not path.exists():
        raise PackagerError(f"unknown precision policy {text!r}", key="--precision",
                            expected="recommended, fp32, fp16 or a .json file")
    return PrecisionPlan(path.name, _from_json(path, recommended), recommended)


def _from_json(path: Path, recommended: Mapping[str, str]) -> dict[str, ComponentPolicy]:
    components = list(recommended)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackagerError("file not found", file=str(path), key="--precision") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PackagerError(f"not valid JSON: {exc}", file=str(path)) from None
    if not isinstance(data, dict):
        raise PackagerError("must be a JSON object", file=str(path), expected='{"<component>": "<precision>"}',
                            found=type(data).__name__)
    unknown = [k for k in data if k not in components]
    if unknown:
        raise PackagerError("names a component that is not being built", file=str(path), key=unknown[0],
                            expected=", ".join(components))
    out = {c: ComponentPolicy(recommended[c]) for c in components}
    for comp, entry in data.items():
        out[comp] = component_policy(path, comp, entry)
    return out


def component_policy(path: Path, comp: str, entry: Any) -> ComponentPolicy:
    """One component's entry of a JSON policy (``path``: the file, for messages) -> its ComponentPolicy."""
    if isinstance(entry, str):
        entry = {"precision": entry}
    if not isinstance(entry, dict):
        raise PackagerError("must be a precision name or an object", file=str(path), key=comp,
                            expected='"fp16" or {"precision": "fp16", "keep_float32": [...]}', found=repr(entry))
    extra = sorted(set(entry) - {"precision", "keep_float32", "graphs"})
    if extra:
        raise PackagerError("unknown field", file=str(path), key=f"{comp}.{extra[0]}",
                            expected="precision, keep_float32, graphs")
    precision = entry.get("precision")
    if precision not in PRECISIONS:
        raise PackagerError("unknown precision", file=str(path), key=f"{comp}.precision",
                            expected=", ".join(PRECISIONS), found=repr(precision))
    keep = entry.get("keep_float32", [])
    if not isinstance(keep, list) or not all(isinstance(k, str) and k for k in keep):
        raise PackagerError("must be a list of node, initializer or tensor names", file=str(path),
                            key=f"{comp}.keep_float32", found=repr(keep))
    graphs = entry.get("graphs", {})
    if not isinstance(graphs, dict) or not all(isinstance(k, str) and k for k in graphs):
        raise PackagerError("must be an object of graph name -> precision", file=str(path), key=f"{comp}.graphs",
                            expected='{"<graph>": "uint8"}', found=repr(graphs))
    for graph, prec in graphs.items():
        if prec not in PRECISIONS:
            raise PackagerError("unknown precision", file=str(path), key=f"{comp}.graphs.{graph}",
                                expected=", ".join(PRECISIONS), found=repr(prec))
    return ComponentPolicy(precision, tuple(keep), tuple(sorted(graphs.items())))


def check_graph_names(policy: ComponentPolicy, component: str, graphs: Sequence[str], where: str) -> None:
    """A policy's ``graphs`` may only name graphs the component has (a typo must not pass silently)."""
    unknown = [g for g, _ in policy.graphs if g not in graphs]
    if unknown:
        raise PackagerError("names a graph this component does not have", file=where,
                            key=f"{component}.graphs.{unknown[0]}", expected=", ".join(graphs))
