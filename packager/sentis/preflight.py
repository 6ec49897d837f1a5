"""Sentis pre-flight checker: what a Unity Sentis import of an ONNX graph would reject or silently miscompute.

Implements ``shared/design/sentis.md`` "Implications for a bundle packager" A, rules 1-14; the op tables and the
fix for each rule id live in ``packager.sentis.rules``, the rule list in ``docs/sentis_checker.md``. An ``error``
means the graph will not import or will compute something other than onnxruntime does; a ``warning`` means it
imports but deserves a look. The build runs ``check_model`` on every graph and stops on an error;
``python -m packager check MODEL.onnx|BUNDLE`` runs it on files.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from packager.contract import manifest as B
from packager.sentis import rules as R
from packager.contract.files import reject_lfs_pointer
from packager.contract.errors import PackagerError
from packager.onnx.io import checkable_copy

SEVERITIES = ("error", "warning")
# Ops an int64 "to the end" sentinel may pass through on its way to Slice starts/ends (None = every input).
_PASS_THROUGH = {"Unsqueeze": (0,), "Squeeze": (0,), "Concat": None, "Reshape": (0,), "Identity": (0,),
                 "Cast": (0,), "Expand": (0,), "Tile": (0,), "Gather": (0,), "Where": (1, 2)}


@dataclass(frozen=True)
class Finding:
    """One problem: where (graph, node, op), which rule, what goes wrong in Sentis, and how to fix it."""

    severity: str  # "error" | "warning"
    graph: str
    node: str  # node name, or "" for graph-level findings
    op_type: str
    rule: str  # short id, e.g. "pool-ceil-mode" (the keys of sentis.rules.FIXES)
    message: str
    fix: str


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


class _Checker:
    """One graph, its inferred tensor types and the findings so far; each ``rule_*`` / ``attr_<Op>`` adds some."""

    def __init__(self, model: onnx.ModelProto, target: str, graph_name: str, model_dir: Path | None,
                 proto_bytes: int | None = None):
        if target not in R.TARGETS:
            raise PackagerError(f"unknown Sentis target {target!r}", key="--target",
                                expected=" or ".join(R.TARGETS), found=str(target))
        self.m, self.g, self.t = model, model.graph, R.TARGETS[target]
        self.where = f"{self.t.package} {self.t.version}"
        self.graph_name, self.model_dir, self.proto_bytes = graph_name, model_dir, proto_bytes
        self.findings: list[Finding] = []
        self.inits = {i.name: i for i in self.g.initializer}
        self.outputs = {o.name for o in self.g.output}
        self.producer = {o: n for n in self.g.node for o in n.output if o}
        self.consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
        for n in self.g.node:
            for k, name in enumerate(n.input):
                self.consumers[name].append((n, k))
        self.opset = next((i.version for i in model.opset_import if i.domain == ""), 15)
        self.types: dict[str, onnx.TypeProto.Tensor] = {}

    def add(self, severity: str, rule: str, message: str, node: onnx.NodeProto | None = None,
            op_type: str = "", fix: str | None = None) -> None:
        self.findings.append(Finding(severity, self.graph_name, node.name if node is not None else "",
                                     node.op_type if node is not None else op_type, rule, message,
                                     fix or R.FIXES[rule]))

    def shape(self, name: str) -> list[int | None] | None:
        """Static dims (None where symbolic/unknown) of a value, or None when its rank is unknown."""
        t = self.types.get(name)
        if t is None or not t.HasField("shape"):
            return None
        return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]

    def used(self, name: str) -> bool:
        return bool(name) and (bool(self.consumers.get(name)) or name in self.outputs)

    # --- container: size, external data, functions (A.1-A.3) ------------------------------------------------------
    def rule_container(self) -> None:
        # a file's proto is the file: its size is known without serializing the proto again (upb's ByteSize
        # encodes the whole message, seconds for a full-size graph)
        size = self.proto_bytes if self.proto_bytes is not None else self.m.ByteSize()
        if size >= R.MAX_PROTO_BYTES:
            self.add("error", "file-size", f"the model proto is {size / 2**30:.2f} GiB; neither protobuf nor the "
                     "Sentis importer reads a .onnx of 2 GiB or more")
        called = {(n.domain, n.op_type) for n in self.g.node}
        for f in self.m.functions:
            if (f.domain, f.name) not in called:
                self.add("warning", "model-function", f"unused model-local function {f.domain}:{f.name}",
                         op_type=f.name)
        running: dict[str, int] = defaultdict(int)  # per data file: where Sentis's sequential reader stands
        for tensor in self.g.initializer:
            if tensor.data_location != TensorProto.EXTERNAL:
                continue
            info = {kv.key: kv.value for kv in tensor.external_data}
            loc = info.get("location", "")
            what = f"initializer {tensor.name} (external data {loc!r})"
            if not loc or Path(loc).name != loc or loc in (".", "..") or "\\" in loc:
                self.add("error", "external-data-location", f"{what}: Sentis opens external data only as a plain "
                         "file name next to the .onnx")
                continue
            if "length" not in info:
                self.add("error", "external-data-layout", f"{what} has no length; Sentis would read the whole file")
                continue
            offset, length, nbytes = int(info.get("offset", running[loc])), int(info["length"]), _nbytes(tensor)
            if offset != running[loc] or (nbytes is not None and length != nbytes):
                self.add("error", "external-data-layout", f"{what}: offset {offset}, length {length}, but Sentis "
                         f"reads sequentially, never seeking (expected offset {running[loc]}, length {nbytes}): "
                         "silently wrong weights")
            if length >= R.MAX_TENSOR_BYTES:
                self.add("error", "external-data-tensor-size", f"{what} is {length} bytes; Sentis caps one "
                         "constant at 2^31-32 bytes")
            running[loc] = offset + length
        for loc, end in running.items():
            path = self.model_dir / loc if self.model_dir is not None else None
            if path is not None and (not path.is_file() or path.stat().st_size < end):
                found = f"{path.stat().st_size} bytes" if path.is_file() else "missing"
                self.add("error", "external-data-missing", f"external data file {loc} must sit next to the .onnx "
                         f"and hold at least {end} bytes (found: {found})")
        for node in self.g.node:
            if any(a.type == AttributeProto.TENSOR and a.t.data_location == TensorProto.EXTERNAL
                   for a in node.attribute):
                self.add("error", "external-data-attribute", "an attribute tensor is external data; Sentis reads "
                         "it from offset 0 of its file", node)

    def rule_checker_and_types(self) -> None:
        """ONNX checker + strict shape inference on a copy whose big weights are plain inputs (cheap, no 2 GiB cap)."""
        light = checkable_copy(self.m)
        try:
            onnx.checker.check_model(light)
        except (onnx.checker.ValidationError, ValueError) as exc:
            self.add("error", "onnx-checker", "the ONNX checker rejects the graph: " + _first_line(exc))
        try:
            light = onnx.shape_inference.infer_shapes(light, strict_mode=True, data_prop=True)
        except Exception as exc:  # noqa: BLE001 - onnx raises several unrelated types here
            self.add("warning", "shape-inference", "strict shape inference failed, so the dtype and rank checks "
                     "are incomplete: " + _first_line(exc))
            try:
                light = onnx.shape_inference.infer_shapes(light)
            except Exception:  # noqa: BLE001
                pass
        g = light.graph
        for vi in [*g.input, *g.value_info, *g.output]:
            if vi.type.HasField("tensor_type"):
                self.types[vi.name] = vi.type.tensor_type
        consts = [(t.name, t) for t in self.g.initializer] + [
            (n.output[0], a.t) for n in self.g.node if n.op_type == "Constant" and n.output
            for a in n.attribute if a.type == AttributeProto.TENSOR]
        for name, t in consts:
            self.types[name] = helper.make_tensor_type_proto(t.data_type, list(t.dims)).tensor_type

    # --- opset (A.5) ---------------------------------------------------------------------------------------------
    def rule_opset(self) -> None:
        domains = {i.domain: i.version for i in self.m.opset_import}
        if "" not in domains:
            alias = " (only its alias \"ai.onnx\", which Sentis does not recognise: it would assume opset 15)"
            self.add("error", "opset-domain", "no opset_import with domain \"\"" + (alias if "ai.onnx" in domains
                                                                                   else ""))
        elif not R.OPSET_MIN <= domains[""] <= R.OPSET_MAX:
            self.add("error", "opset-range", f"opset {domains['']} is outside {R.OPSET_MIN}..{R.OPSET_MAX}, the "
                     "opsets Sentis <= 2.4 has converter branches for")
        elif domains[""] > R.OPSET_DOCUMENTED_MAX:
            self.add("warning", "opset-range", f"opset {domains['']}: Sentis documents {R.OPSET_MIN}.."
                     f"{R.OPSET_DOCUMENTED_MAX} ({R.OPSET_DOCUMENTED_MAX + 1}..{R.OPSET_MAX} usually import)")

    # --- nodes: functions, subgraphs, domain, op set, attributes, dtypes (A.3, A.4, A.6-A.9) -----------------------
    def rule_nodes(self) -> None:
        local = {(f.domain, f.name) for f in self.m.functions}
        for node in self.g.node:
            if (node.domain, node.op_type) in local:
                self.add("error", "model-function", f"calls the model-local function {node.domain}:{node.op_type};"
                         " Sentis does not inline functions and sees an unknown op", node)
            elif any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute):
                self.add("error", "subgraph", "the node carries a subgraph (control flow); Sentis imports none",
                         node)
            elif node.op_type in R.HARD_REJECTS:
                why, fix = R.HARD_REJECTS[node.op_type]
                self.add("error", "op-rejected", f"{node.op_type}: {why}", node, fix=fix)
            elif node.domain not in ("", "ai.onnx"):
                self.add("error", "node-domain", f"domain {node.domain!r}: Sentis ignores node domains and knows "
                         "only ONNX ops (by op_type)", node)
            elif node.op_type not in self.t.ops:
                self.add("error", "op-not-supported", f"{node.op_type} has no importer branch in {self.where}",
                         node)
            else:
                rule = getattr(self, "attr_" + node.op_type, None)
                if rule is not None:
                    rule(node, {a.name: _attr(a) for a in node.attribute})
                self._ignored_attrs(node)
                if node.op_type in R.RANDOM_OPS:
                    self.add("error", "random-op", f"{node.op_type} draws random numbers; Sentis uses its own "
                             "RNG, so no golden can match", node)
                self._float_inputs(node)

    def _ignored_attrs(self, node: onnx.NodeProto) -> None:
        """The attributes this target's importer ignores with a Unity console warning (sentis.rules.IGNORED_ATTRS_*),
        as that importer decides it: some whenever present, some only when their value differs from its default."""
        present = {a.name: a for a in node.attribute}
        for spec in self.t.ignored_attrs.get(node.op_type, ()):
            a = present.get(spec.name)
            if a is None or self.opset < spec.min_opset:
                continue
            value = _attr(a)
            is_default = _same_value(value, spec.default)
            if spec.when == R.DIFFERS and (a.type != spec.attr_type or is_default):
                continue  # the default logs nothing, and another attribute type reads as absent
            shown = value if not hasattr(value, "ByteSize") else "<tensor>"
            detail = (f"it holds the default ({_fmt(spec.default)}), so dropping it changes nothing"
                      if is_default else f"computed as if it were {_fmt(spec.default)}"
                      if spec.default is not None else "not read at all")
            self.add("warning", "ignored-attribute", f"attribute {spec.name}={_fmt(shown)}: the {self.where} "
                     f"importer ignores it and logs \"Unsupported attribute `{spec.name}`\" in the Unity console at "
                     f"every import; {detail}", node)

    def _float_inputs(self, node: onnx.NodeProto) -> None:
        slots = self.t.float_only.get(node.op_type)
        if slots is None:
            return
        bad = [f"input {k} ({node.input[k]}) is {TensorProto.DataType.Name(t.elem_type)}"
               for k in (range(len(node.input)) if slots == R.ALL else slots)
               if k < len(node.input) and node.input[k] and (t := self.types.get(node.input[k])) is not None
               and t.elem_type and t.elem_type not in R.FLOAT_TYPES]
        if bad:
            self.add("error", "float-only-op", f"{', '.join(bad)}; Sentis has only a float kernel for "
                     f"{node.op_type}", node)

    def attr_LayerNormalization(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        axis, shape = a.get("axis", -1), self.shape(node.input[0])
        if axis != -1 and (shape is None or axis != len(shape) - 1):
            self.add("error", "layernorm-axis", f"axis={axis}: Sentis ignores axis and normalises over the last "
                     "axis only", node)

    def attr_ConvTranspose(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        if "output_shape" in a:
            self.add("error", "convtranspose-output-shape", "output_shape is ignored by Sentis", node)
        group, dil = a.get("group", 1), a.get("dilations", [])
        if not self.t.convtranspose_group_dilations and (group != 1 or any(d != 1 for d in dil)):
            self.add("error", "convtranspose-group-dilations", f"group={group}, dilations={dil}: {self.where} "
                     "ignores both", node)

    def attr_Resize(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        ctm = a.get("coordinate_transformation_mode", "half_pixel")
        bad = [f"mode={a['mode']} (falls back to nearest)"] if a.get("mode", "nearest") not in (
            "nearest", "linear", "bilinear") else []
        bad += [f"coordinate_transformation_mode={ctm} (becomes half_pixel)"] if ctm in (
            "tf_crop_and_resize", "half_pixel_symmetric") else []
        bad += [f"{k}={a[k]} (never read)" for k, ok in (("antialias", 0), ("exclude_outside", 0),
                                                         ("keep_aspect_ratio_policy", "stretch"))
                if a.get(k, ok) != ok]
        if bad:
            self.add("error", "resize-mode", "Resize settings Sentis does not honour: " + "; ".join(bad), node)

    attr_Upsample = attr_Resize

    def attr_MaxPool(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        self._pool_common(node, a)
        if len(node.output) > 1 and self.used(node.output[1]):
            self.add("error", "maxpool-indices", "the Indices output is used; Sentis computes only the values", node)
        elif a.get("storage_order", 0) != 0:
            self.add("warning", "maxpool-indices", "storage_order is ignored (harmless: no Indices output used)",
                     node)

    def attr_AveragePool(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        self._pool_common(node, a)
        padded = any(a.get("pads", [])) or a.get("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER")
        if a.get("count_include_pad", 0) != 0 and padded:
            self.add("error", "pool-count-include-pad", "count_include_pad=1 with padding: Sentis ignores it and "
                     "divides by the unpadded count at the borders", node)

    def _pool_common(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        if any(d != 1 for d in a.get("dilations", [])):
            self.add("error", "pool-dilations", f"dilations={a['dilations']} are ignored by Sentis", node)
        if a.get("ceil_mode", 0) == 0 or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            return  # SAME_* padding fixes the output length whatever ceil_mode says
        if not _ceil_is_floor(self.shape(node.input[0]), a):
            self.add("error", "pool-ceil-mode", "ceil_mode=1: Sentis ignores it and rounds the output length "
                     "down, dropping the last partial window (the input length is dynamic or not a whole number "
                     "of strides)", node)

    def attr_Gelu(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        if a.get("approximate", "none") == "tanh" and not self.t.gelu_tanh:
            self.add("warning", "gelu-tanh", f"approximate=tanh: {self.where} computes the exact erf Gelu", node)

    def attr_BatchNormalization(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        if a.get("training_mode", 0) != 0 or any(self.used(o) for o in node.output[1:]):
            self.add("error", "batchnorm-training", "training-mode BatchNormalization (batch statistics or "
                     "running-stat outputs); Sentis implements inference mode only", node)

    def attr_ScatterND(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        if a.get("reduction", "none") in ("max", "min") and not self.t.scatter_min_max:
            self.add("error", "scatter-reduction", f"reduction={a['reduction']}: {self.where} computes it as "
                     "'none'", node)

    attr_ScatterElements = attr_ScatterND

    def attr_DFT(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        if len(node.input) < 3 or not node.input[2] or "axis" in a:
            self.add("error", "dft-axis-input", "DFT without the opset-20 `axis` input; Sentis reads input 2 "
                     "unconditionally", node)
        shape = self.shape(node.input[0])
        if shape and shape[-1] is not None and shape[-1] not in (1, 2):
            self.add("error", "dft-axis-input", f"the DFT input's last dim is {shape[-1]}; Sentis needs 1 (real) "
                     "or 2 (complex)", node)

    def attr_HannWindow(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        if a.get("output_datatype", TensorProto.FLOAT) != TensorProto.FLOAT:
            self.add("error", "window-dtype", f"output_datatype={a['output_datatype']} is ignored (always float)",
                     node)

    attr_HammingWindow = attr_BlackmanWindow = attr_HannWindow

    def attr_RoiAlign(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        mode = a.get("coordinate_transformation_mode", "half_pixel" if self.opset >= 16 else "output_half_pixel")
        if mode != "half_pixel" and not self.t.roialign_any_mode:
            self.add("error", "roialign-mode", f"coordinate_transformation_mode={mode}: {self.where} computes "
                     "half_pixel", node)

    def attr_Constant(self, node: onnx.NodeProto, a: dict[str, Any]) -> None:
        if set(a) & {"sparse_value", "value_string", "value_strings"}:
            self.add("error", "constant-value", "sparse or string Constant values are unsupported", node)
        elif not self.t.constant_value_attrs and set(a) & {"value_float", "value_floats", "value_int",
                                                             "value_ints"}:
            self.add("error", "constant-value", f"{sorted(a)[0]} is read only from Inference Engine 2.3 on", node)

    # --- tensors: dtypes, storage, int64 range (A.12, A.13) --------------------------------------------------------
    def rule_tensors(self) -> None:
        for s in self.g.sparse_initializer:
            self.add("error", "tensor-dtype", f"sparse initializer {s.values.name}: Sentis has no sparse tensors")
        for t in self.g.initializer:
            self._tensor(t, None, t.name)
        for node in self.g.node:
            traced = node.output[0] if node.op_type in ("Constant", "ConstantOfShape") and node.output else None
            for a in node.attribute:
                for t in ([a.t] if a.type == AttributeProto.TENSOR else list(a.tensors)):
                    self._tensor(t, node, traced)

    def _tensor(self, t: TensorProto, node: onnx.NodeProto | None, value: str | None) -> None:
        label, dt = f"tensor {t.name or value or ''}".rstrip(), TensorProto.DataType.Name(t.data_type)
        if t.data_type not in R.TENSOR_TYPES:
            self.add("error", "tensor-dtype", f"{label} is {dt}; the Sentis importer cannot load it", node)
            return
        if t.data_location == TensorProto.EXTERNAL:
            return
        if not t.HasField("raw_data") and np.prod(t.dims, dtype=np.int64) > 0 \
                and t.data_type not in self.t.typed_storage:
            rule = "fp16-raw-data" if t.data_type == TensorProto.FLOAT16 else "tensor-storage"
            self.add("error", rule, f"{label} ({dt}) is stored in a typed field instead of raw_data; Sentis "
                     "misreads or rejects it", node)
        if t.data_type == TensorProto.INT64:
            vals = numpy_helper.to_array(t).ravel()
            bad = vals[(vals < R.INT32_MIN) | (vals > R.INT32_MAX)]
            if bad.size and not (value is not None and all(int(v) in R.INT64_SENTINELS for v in bad)
                                 and self._only_slice_bounds(value)):
                self.add("error", "int64-range", f"{label} holds {int(bad[0])}, outside the int32 range; Sentis "
                         "saturates int64 to int32", node)

    def _only_slice_bounds(self, name: str, depth: int = 0) -> bool:
        """True if ``name`` reaches only Slice starts/ends (via shape plumbing), where int32 clamping is benign."""
        if depth > 16 or name in self.outputs:
            return False
        for node, k in self.consumers.get(name, []):
            if node.op_type == "Slice" and k in (1, 2):
                continue
            slots = _PASS_THROUGH.get(node.op_type, ())
            if (slots is not None and k not in slots) or not all(
                    self._only_slice_bounds(o, depth + 1) for o in node.output if o):
                return False
        return True

    # --- graph I/O and ranks (A.10, A.11, A.14) --------------------------------------------------------------------
    def rule_io(self) -> None:
        values = [("input", v) for v in self.g.input if v.name not in self.inits]  # IR<4 lists weights as inputs
        values += [("output", v) for v in self.g.output]
        names = [v.name for _, v in values]
        for name in sorted({n for n in names if not n or names.count(n) > 1}):
            self.add("error", "io-name", f"graph I/O name {name!r} is empty or used twice")
        produced = set(self.producer) | set(self.inits) | {v.name for v in self.g.input}
        for kind, v in values:
            what = f"{kind} {v.name}"
            if kind == "output" and v.name not in produced:
                self.add("error", "io-name", f"{what} is produced by no node, input or initializer (Sentis drops "
                         "it)")
            if self.t.strips_colon_zero and v.name.endswith(":0"):
                self.add("warning", "io-name", f"{what}: {self.where} strips the trailing ':0' from the name")
            if not v.type.HasField("tensor_type"):
                self.add("error", "io-dtype", f"{what} is not a tensor (sequence/map/optional)")
                continue
            tt = v.type.tensor_type
            dt = TensorProto.DataType.Name(tt.elem_type)
            if tt.elem_type not in R.IO_TYPES:
                self.add("error", "io-dtype", f"{what} is {dt}; Sentis has no tensor type for it")
            elif tt.elem_type not in R.IO_TYPES_NATIVE:
                to = "Tensor<float>" if tt.elem_type in R.FLOAT_TYPES else "Tensor<int> (int64 values clamped)"
                self.add("warning", "io-dtype", f"{what} is {dt}; Sentis exposes it as {to}")
            if kind == "input" and not tt.HasField("shape"):
                self.add("error", "input-shape", f"{what} has no shape; the Sentis importer fails on it")
            elif kind == "input" and any(d.HasField("dim_value") and d.dim_value < 0 for d in tt.shape.dim):
                self.add("warning", "input-shape", f"{what} has a negative dim; Sentis treats it as unknown")

    def rule_ranks(self) -> None:
        for name, tt in self.types.items():
            if tt.HasField("shape") and len(tt.shape.dim) > R.MAX_RANK:
                self.add("error", "rank-over-8", f"{name} has rank {len(tt.shape.dim)}; Sentis tensors have at "
                         "most 8 dims", self.producer.get(name))
            if tt.elem_type == TensorProto.BFLOAT16:
                self.add("warning", "bfloat16", f"{name} is BFLOAT16; Sentis computes it as float32 (so results "
                         "differ from onnxruntime's bfloat16)",
                         self.producer.get(name))

    # --- what Sentis's optimizer fuses (docs/sentis_checker.md "Fusions") --------------------------------------------
    def _made_by(self, name: str, op: str) -> onnx.NodeProto | None:
        n = self.producer.get(name)
        return n if n is not None and n.op_type == op else None

    def _rank(self, name: str) -> int | None:
        if name in self.inits:
            return len(self.inits[name].dims)
        s = self.shape(name)
        return None if s is None else len(s)

    def rule_layernorm_fusion(self) -> None:
        """A decomposed LayerNorm ``(x - mean) / sqrt(var + eps)`` followed by ``* scale + bias``: Sentis 2.4's
        optimizer contracts the whole chain into one LayerNormalization whose scale and bias must be rank 1; any other
        rank (an AdaLN modulation ``[B, 1, C]``) fails an assertion at import (an exception in Unity 6)."""
        if not self.t.layernorm_fusion_rank1:
            return
        for div in self.g.node:
            if div.op_type != "Div" or len(div.input) != 2:
                continue
            sub, sqrt = self._made_by(div.input[0], "Sub"), self._made_by(div.input[1], "Sqrt")
            add_eps = self._made_by(sqrt.input[0], "Add") if sqrt is not None else None
            if sub is None or add_eps is None or self._made_by(sub.input[1], "ReduceMean") is None:
                continue
            var = next((self._made_by(i, "ReduceMean") for i in add_eps.input if self._made_by(i, "ReduceMean")), None)
            pow_ = self._made_by(var.input[0], "Pow") if var is not None else None
            if pow_ is None or pow_.input[0] != div.input[0]:
                continue
            for mul, k in self.consumers.get(div.output[0], []):
                if mul.op_type != "Mul":
                    continue
                scale = mul.input[1 - k]
                for add, j in self.consumers.get(mul.output[0], []):
                    if add.op_type != "Add":
                        continue
                    bias = add.input[1 - j]
                    ranks = {n: self._rank(n) for n in (scale, bias)}
                    bad = {n: r for n, r in ranks.items() if r != 1}
                    if bad:
                        self.add("error", "layernorm-fusion-rank", "a decomposed LayerNorm (ending in " + div.name
                                 + ") is followed by * scale + bias of rank " + ", ".join(
                                     f"{n}: {'unknown' if r is None else r}" for n, r in bad.items())
                                 + f"; {self.where}'s optimizer fuses the chain into one LayerNormalization, whose "
                                 "shape inference asserts rank 1 (import fails)", mul)


def check_model(model: onnx.ModelProto, target: str, graph_name: str, model_dir: Path | None = None,
                proto_bytes: int | None = None) -> list[Finding]:
    """Every Sentis rule for one graph. ``model_dir`` (the .onnx file's folder) enables external-data file checks;
    ``proto_bytes``: the size of the file ``model`` was read from (else the proto is measured)."""
    c = _Checker(model, target, graph_name, model_dir, proto_bytes)
    for rule in (c.rule_container, c.rule_opset, c.rule_checker_and_types, c.rule_nodes, c.rule_tensors,
                 c.rule_io, c.rule_ranks, c.rule_layernorm_fusion):
        rule()
    return c.findings


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _attr(a: AttributeProto) -> Any:
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v if isinstance(v, (int, float, str)) or hasattr(v, "ByteSize") else list(v)


def _same_value(value: Any, default: Any) -> bool:
    if default is None or isinstance(value, str) != isinstance(default, str):
        return False
    if isinstance(default, tuple):
        return isinstance(value, list) and tuple(value) == default
    return not isinstance(value, list) and value == default


def _fmt(v: Any) -> str:
    return "[" + ", ".join(str(x) for x in v) + "]" if isinstance(v, (list, tuple)) else str(v)


def _nbytes(t: TensorProto) -> int | None:
    if t.data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return None
    item = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
    return int(np.prod(t.dims, dtype=np.int64)) * item


def _ceil_is_floor(shape: list[int | None] | None, a: dict[str, Any]) -> bool:
    """True when every spatial dim is static and (length + pads - window) is a multiple of the stride."""
    kernel = a.get("kernel_shape", [])
    if shape is None or len(shape) != len(kernel) + 2 or any(d is None for d in shape[2:]):
        return False
    n = len(kernel)
    pads, strides, dil = a.get("pads", [0] * 2 * n), a.get("strides", [1] * n), a.get("dilations", [1] * n)
    return all((shape[2 + i] + pads[i] + pads[n + i] - (kernel[i] - 1) * dil[i] - 1) % strides[i] == 0
               for i in range(n))


# --- files, bundles, report, CLI -------------------------------------------------------------------------------------
def check_file(path: Path, target: str, graph_name: str | None = None) -> list[Finding]:
    """Rule 1 (a readable ONNX file, not a Git LFS pointer, < 2 GiB), then ``check_model``.

    An unreadable file raises ``PackagerError`` (exit code 2); everything else is a finding.
    """
    return check_file_for(path, (target,), graph_name)[target]


def check_file_for(path: Path, targets: Iterable[str], graph_name: str | None = None) -> dict[str, list[Finding]]:
    """``check_file`` for each target, the file read once (a full-size graph is over 1 GB)."""
    targets = tuple(targets)
    path, name = Path(path), graph_name or Path(path).stem
    if not path.is_file():
        raise PackagerError("file not found", file=str(path), expected="an ONNX model")
    reject_lfs_pointer(path)
    size = path.stat().st_size
    if size >= R.MAX_PROTO_BYTES:
        return {t: [Finding("error", name, "", "", "file-size", f"{path.name} is {size / 2**30:.2f} GiB; neither "
                            "protobuf nor Sentis reads a .onnx of 2 GiB or more", R.FIXES["file-size"])]
                for t in targets}
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise PackagerError(f"is not a readable ONNX model (truncated or another format: {type(exc).__name__})",
                            file=str(path)) from None
    if not model.HasField("graph") or not model.graph.node:
        raise PackagerError("is not an ONNX model (no graph nodes)", file=str(path))
    return {t: check_model(model, t, name, model_dir=path.parent, proto_bytes=size) for t in targets}


def check_bundle(folder: Path, target: str | None = None) -> list[Finding]:
    """Every graph listed in ``manifest.json`` (components[].graphs[].file); the target defaults to the manifest's.
    A partial manifest (target and graph names/files) is enough, so that a bundle being assembled can be checked;
    each path is resolved by the bundle rules (``packager.contract.manifest.safe_path``)."""
    target, graphs = bundle_graphs(folder, target)
    return [f for name, path in graphs for f in check_file(path, target, name)]


def bundle_graphs(folder: Path, target: str | None = None) -> tuple[str, list[tuple[str, Path]]]:
    """(target: ``target`` or the manifest's, [(graph name, its file)]) of the bundle at ``folder``."""
    folder = Path(folder)
    manifest_path = folder / B.MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        target = target or manifest["target"]["runtime"]
        listed = [(g["name"], g["file"]) for c in manifest["components"] for g in c["graphs"]]
    except FileNotFoundError:
        raise PackagerError("not found: a bundle folder holds a manifest.json", file=str(manifest_path)) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PackagerError(f"is not a readable bundle manifest ({type(exc).__name__}: {exc})",
                            file=str(manifest_path)) from None
    return target, [(name, B.safe_path(folder, rel, f"{name}.file")) for name, rel in listed]


def format_findings(findings: list[Finding], limit: int | None = 5, with_counts: bool = True) -> str:
    """One block per (severity, graph, rule, op) naming up to ``limit`` nodes (None: all, with every message), then
    (``with_counts``) the line 'N errors, M warnings'."""
    groups: dict[tuple[str, str, str, str], list[Finding]] = defaultdict(list)
    for f in sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), f.graph, f.rule, f.op_type)):
        groups[(f.severity, f.graph, f.rule, f.op_type)].append(f)
    lines = []
    for (sev, graph, rule, op), fs in groups.items():
        shown = fs if limit is None else fs[:limit]
        lines.append(f"{sev.upper():7} {graph}  [{rule}]  {op or '-'}  x{len(fs)}")
        lines += [f"    {m}" for m in dict.fromkeys(f.message for f in (shown if limit is None else fs[:1]))]
        lines.append(f"    fix: {fs[0].fix}")
        if any(f.node for f in shown):
            more = f" ... and {len(fs) - len(shown)} more" if len(fs) > len(shown) else ""
            lines.append("    nodes: " + ", ".join(f.node for f in shown if f.node) + more)
    if with_counts:
        lines.append(counts(findings))
    return "\n".join(lines)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def counts(findings: list[Finding]) -> str:
    """'N errors, M warnings'."""
    n_err = len(errors(findings))
    return f"{plural(n_err, 'error')}, {plural(len(findings) - n_err, 'warning')}"
