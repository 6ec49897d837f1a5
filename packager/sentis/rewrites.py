"""Graph rewrites that replace constructs Sentis computes wrongly with equivalent Sentis-safe subgraphs.

Each rewrite is generic (driven by op type and attributes, not by a component) and is proven equivalent by tests
that run both graphs in onnxruntime.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import defs, helper, numpy_helper

from packager.contract.errors import PackagerError
from packager.sentis.rules import TARGETS


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def rewrite_ceil_mode_avgpool(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every 1-D ``AveragePool(ceil_mode=1)`` with kernel == stride and no pads.

    Sentis ignores ``ceil_mode``, so it drops the trailing partial window that onnxruntime/PyTorch average over
    the elements actually present. Equivalent form (all ops Sentis supports, no ceil_mode):

        pad  = (k - T mod k) mod k                       # right zero-padding up to a multiple of k
        sums = AveragePool(Pad(x, pad), k, k)            # = window sum / k  (zeros add nothing)
        cnt  = AveragePool(Pad(ones[1,1,T], pad), k, k)  # = elements present / k
        y    = sums / cnt                                # = mean over the elements present

    The time length T is read from the input shape at run time, so the rewrite holds for every length.
    """
    g = model.graph
    new_nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    count = 0
    for node in g.node:
        a = _attrs(node) if node.op_type == "AveragePool" else {}
        if node.op_type != "AveragePool" or not a.get("ceil_mode", 0):
            new_nodes.append(node)
            continue
        k = list(a.get("kernel_shape", []))
        s = list(a.get("strides", [1] * len(k)))
        pads = list(a.get("pads", [0] * 2 * len(k)))
        if len(k) != 1 or k != s or any(pads):
            raise PackagerError(f"cannot rewrite AveragePool ceil_mode=1 with kernel {k}, strides {s}, pads {pads}",
                                key=node.name, expected="1-D pooling with kernel == stride and no pads")
        kk = int(k[0])
        p = f"{node.name or node.output[0]}/ceil_fix"
        x, y = node.input[0], node.output[0]
        c = {  # constants of this rewrite
            "k": np.array(kk, dtype=np.int64), "idx2": np.array([2], dtype=np.int64),
            "zeros5": np.zeros(5, dtype=np.int64), "one11": np.array([1, 1], dtype=np.int64),
        }
        for name, arr in c.items():
            inits.append(numpy_helper.from_array(arr, f"{p}/{name}"))
        # only kernel and stride: ceil_mode, count_include_pad and pads keep their ONNX defaults (0, 0, none) by being
        # absent, and the input is padded to whole windows, so no mode changes the result. Written out, even as 0,
        # they would make the Sentis 2.4 importer log "Unsupported attribute" for every pool at every import.
        pool = dict(kernel_shape=[kk], strides=[kk])
        new_nodes += [
            helper.make_node("Shape", [x], [f"{p}/shape"], name=f"{p}/Shape"),
            helper.make_node("Gather", [f"{p}/shape", f"{p}/idx2"], [f"{p}/T"], name=f"{p}/GatherT", axis=0),
            helper.make_node("Mod", [f"{p}/T", f"{p}/k"], [f"{p}/Tmodk"], name=f"{p}/Mod1"),
            helper.make_node("Sub", [f"{p}/k", f"{p}/Tmodk"], [f"{p}/kminus"], name=f"{p}/Sub"),
            helper.make_node("Mod", [f"{p}/kminus", f"{p}/k"], [f"{p}/padlen"], name=f"{p}/Mod2"),
            helper.make_node("Concat", [f"{p}/zeros5", f"{p}/padlen"], [f"{p}/pads"], name=f"{p}/Pads", axis=0),
            helper.make_node("Pad", [x, f"{p}/pads"], [f"{p}/xpad"], name=f"{p}/PadX", mode="constant"),
            helper.make_node("AveragePool", [f"{p}/xpad"], [f"{p}/sum"], name=f"{p}/PoolX", **pool),
            helper.make_node("Concat", [f"{p}/one11", f"{p}/T"], [f"{p}/oshape"], name=f"{p}/OnesShape", axis=0),
            helper.make_node("ConstantOfShape", [f"{p}/oshape"], [f"{p}/ones"], name=f"{p}/Ones",
                             value=numpy_helper.from_array(np.array([1.0], dtype=np.float32))),
            helper.make_node("Pad", [f"{p}/ones", f"{p}/pads"], [f"{p}/onespad"], name=f"{p}/PadOnes",
                             mode="constant"),
            helper.make_node("AveragePool", [f"{p}/onespad"], [f"{p}/cnt"], name=f"{p}/PoolOnes", **pool),
            helper.make_node("Div", [f"{p}/sum", f"{p}/cnt"], [y], name=f"{p}/Div"),
        ]
        count += 1
    if count:
        del g.node[:]
        g.node.extend(new_nodes)
        g.initializer.extend(inits)
    return model


def drop_default_attributes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove every attribute that some Sentis importer ignores with a console warning
    (``sentis.rules.IGNORED_ATTRS_*``) where it holds the ONNX default of the model's opset.

    An absent attribute means its default, so onnxruntime computes exactly the same; Sentis ignores the value anyway,
    so it computes the same too, but no longer logs "Unsupported attribute" (2.4 does for any value, the default
    included). A ``dilations`` of all ones is the default (ONNX defines it per spatial axis). Values other than the
    default stay: what Sentis makes of those is the business of the other rewrites and of the pre-flight errors.
    """
    opset = next((int(i.version) for i in model.opset_import if i.domain in ("", "ai.onnx")), None)
    names: dict[str, set[str]] = {}
    for target in TARGETS.values():
        for op, specs in target.ignored_attrs.items():
            names.setdefault(op, set()).update(s.name for s in specs)
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in names or opset is None:
            continue
        try:
            schema = defs.get_schema(node.op_type, opset)
        except defs.SchemaError:
            continue
        keep = []
        for a in node.attribute:
            spec = schema.attributes.get(a.name)
            if a.name in names[node.op_type] and spec is not None and _is_default(a, spec):
                continue
            keep.append(a)
        if len(keep) != len(node.attribute):
            del node.attribute[:]
            node.attribute.extend(keep)
    return model


def _is_default(a: onnx.AttributeProto, spec) -> bool:
    value = helper.get_attribute_value(a)
    if spec.default_value.name:  # the schema states a default
        d = spec.default_value
        return a.type == d.type and value == helper.get_attribute_value(d)
    return a.name == "dilations" and a.type == onnx.AttributeProto.INTS and all(v == 1 for v in value)


def count_ceil_mode_pools(model: onnx.ModelProto) -> int:
    return sum(1 for n in model.graph.node
               if n.op_type in ("AveragePool", "MaxPool") and _attrs(n).get("ceil_mode", 0))


def upgrade_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """Convert an existing graph to ``opset`` (no-op if it already is); errors name the opsets."""
    from onnx import version_converter

    current = next((int(i.version) for i in model.opset_import if i.domain in ("", "ai.onnx")), None)
    if current == opset:
        return model
    try:
        return version_converter.convert_version(model, opset)
    except Exception as exc:  # the converter raises plain RuntimeError/ValueError
        raise PackagerError(f"cannot convert the graph from opset {current} to {opset}: {exc}") from None
