"""What each Unity Sentis target accepts: op sets, hard rejects, float-only ops, dtypes (data only, no logic).

Every list here is transcribed from ``shared/design/sentis.md`` section 1 (itself read from the importer source of
``com.unity.sentis`` 2.1.3 and ``com.unity.ai.inference`` 2.4.0); the section is named next to each table.
``packager.sentis.preflight`` applies them. A new target is one more ``Target`` entry in ``TARGETS``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from onnx import AttributeProto
from onnx import TensorProto as T

# --- §1.6 / A.5: opsets; the target names, packages and versions (plain data the CLI reads without onnx) -----------
from packager.contract.targets import (DEFAULT_OPSET, DEFAULT_TARGET, OPSET_DOCUMENTED_MAX, OPSET_MAX,  # noqa: F401
                              OPSET_MIN, RELEASES)

# --- §1.1: op types the ONNX importer has a converter branch for -------------------------------------------------
# Sentis 2.1.3: the 136 op types of ONNXModelConverter.cs (the documented table plus Gelu, Swish, ImageScaler).
OPS_SENTIS_2_1 = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Bernoulli
Cast CastLike Ceil Celu Clip Compress Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
CumSum DepthToSpace Div Dropout Einsum Elu Equal Erf Exp Expand Flatten Floor Gather GatherElements
GatherND Gelu Gemm GlobalAveragePool GlobalMaxPool Greater GreaterOrEqual GridSample HardSigmoid HardSwish
Hardmax Identity ImageScaler InstanceNormalization IsInf IsNaN LRN LSTM LayerNormalization LeakyRelu Less
LessOrEqual Log LogSoftmax MatMul Max MaxPool Mean Min Mod Mul Multinomial Neg NonMaxSuppression
NonZero Not OneHot Or PRelu Pad Pow RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range
Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd
ReduceSum ReduceSumSquare Relu Reshape Resize RoiAlign Round Scatter ScatterElements ScatterND Selu Shape
Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub
Sum Swish Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())
# Inference Engine 2.2/2.3 add Mish; 2.4 adds bitwise, spectral and window ops (147 op types).
OPS_IE_2_4 = OPS_SENTIS_2_1 | frozenset("""
Mish BitwiseAnd BitwiseNot BitwiseOr BitwiseXor BlackmanWindow DFT HammingWindow HannWindow MelWeightMatrix STFT
""".split())

# --- §1.3 + Implications A.7: ops that can never work, with the specific reason and fix ---------------------------
_QUANT = ("quantized ops are not implemented in any Sentis release (the importer has no branch for them)",
          "export the fp32 graph; reduce precision with fp16 raw_data weights or Unity's ModelQuantizer instead")
_CONTROL = ("control flow: Sentis does not import subgraphs (If/Loop/Scan)",
            "trace with fixed control flow (unroll loops, move data-dependent branches to the host) and re-export")
_RNN = ("GRU/RNN have no Sentis kernel (only LSTM does)", "decompose the cell into MatMul/Sigmoid/Tanh ops or use LSTM")
_CONTRIB = ("an onnxruntime contrib op (fused or quantized); Sentis dispatches on op_type only and has no kernel",
            f"export without onnxruntime fusions/optimisations (plain TorchScript export, opset {DEFAULT_OPSET})")
_SEQ = ("sequence/optional/string values are not Sentis tensors",
        "keep every value a plain tensor; move string/sequence handling to the host")
_NEW = (f"an opset-{OPSET_MAX + 1}+ op; Sentis <= 2.4 has no converter branch for it",
        f"export at opset {DEFAULT_OPSET} (decomposed form)")
_UNSUPPORTED = ("listed as unsupported by Sentis", "rewrite it with supported ops (see docs/sentis_checker.md)")

HARD_REJECTS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(["QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
                     "MatMulInteger", "ConvInteger", "MatMulNBits", "GatherBlockQuantized", "QAttention", "QGemm",
                     "DynamicQuantizeMatMul", "QLinearAdd", "QLinearMul"], _QUANT),
    **dict.fromkeys(["If", "Loop", "Scan"], _CONTROL),
    **dict.fromkeys(["GRU", "RNN"], _RNN),
    "Attention": ("Attention (opset-23 or onnxruntime contrib) has no Sentis kernel",
                  f"export attention as MatMul/Softmax/MatMul (TorchScript exporter, opset {DEFAULT_OPSET}, no SDPA "
                  "fusion)"),
    **dict.fromkeys(["FusedMatMul", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization",
                     "MultiHeadAttention", "GroupQueryAttention", "BiasGelu", "FastGelu", "FusedConv",
                     "EmbedLayerNormalization", "SimplifiedLayerNormalization", "BiasSplitGelu", "QuickGelu"],
                    _CONTRIB),
    **dict.fromkeys(["RMSNormalization", "RotaryEmbedding", "TensorScatter"], _NEW),
    **dict.fromkeys(["ConcatFromSequence", "SplitToSequence", "SequenceAt", "SequenceConstruct", "SequenceEmpty",
                     "SequenceErase", "SequenceInsert", "SequenceLength", "SequenceMap", "Optional",
                     "OptionalGetElement", "OptionalHasElement", "StringNormalizer", "StringConcat", "StringSplit",
                     "RegexFullMatch", "TfIdfVectorizer"], _SEQ),
    "GroupNormalization": ("GroupNormalization is unsupported (Sentis 2.2+ lists it; 2.1 has no branch)",
                           "decompose: Reshape to (N, groups, -1) -> InstanceNormalization or ReduceMean/Sub/Div -> "
                           "Reshape -> Mul/Add with the affine weights"),
    "Unique": ("Unique is unsupported (data-dependent output shape)", "move it to the host or rewrite statically"),
    **dict.fromkeys(["BitShift", "Det", "EyeLike", "LpPool", "MaxUnpool", "MeanVarianceNormalization",
                     "NegativeLogLikelihoodLoss", "ReverseSequence", "SoftmaxCrossEntropyLoss", "AffineGrid",
                     "CenterCropPad", "Col2Im", "DeformConv", "GlobalLpPool", "ImageDecoder", "LpNormalization",
                     "MaxRoiPool"], _UNSUPPORTED),
}

# --- §1.2: float-only ops on the CPU backend, with the input slots that must hold float data -----------------------
# The default slot is input 0. Slots not listed (shape/axes/k/size inputs) are integer by the ONNX spec.
ALL = "*"
FLOAT_ONLY_IE_2_4: dict[str, tuple[int, ...] | str] = {
    **dict.fromkeys("""Acos Acosh Asin Asinh Atan Atanh AveragePool Ceil Celu Cos Cosh Elu Erf Exp Floor
        GlobalAveragePool GlobalMaxPool HardSigmoid HardSwish Hardmax IsInf IsNaN LRN LeakyRelu Log LogSoftmax MaxPool
        Mish Multinomial Reciprocal ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMean Relu Resize Round Selu Shrink
        Sigmoid Sin Sinh Softmax Softplus Softsign Sqrt Tan Tanh ThresholdedRelu Upsample DFT Bernoulli""".split(),
                    (0,)),
    **dict.fromkeys(["Conv", "ConvTranspose", "Gemm", "InstanceNormalization", "LayerNormalization"], (0, 1, 2)),
    **dict.fromkeys(["MatMul", "PRelu", "GridSample", "RoiAlign", "NonMaxSuppression"], (0, 1)),
    "BatchNormalization": (0, 1, 2, 3, 4), "LSTM": (0, 1, 2, 3, 5, 6, 7), "STFT": (0, 2),
    "Mean": ALL, "Einsum": ALL,
}
# Sentis 2.1 has no int kernels for these either (they gained int in 2.2).
FLOAT_ONLY_SENTIS_2_1 = {**FLOAT_ONLY_IE_2_4, "DepthToSpace": (0,), "SpaceToDepth": (0,), "TopK": (0,)}

# --- attributes the importer ignores with a console warning (ONNXNodeWrapper.UnsupportedAttribute) ---------------
# Read from ONNXModelConverter.cs / ONNXNodeWrapper.cs of com.unity.ai.inference 2.4.0 and com.unity.sentis 2.1.3
# (2.2.0-2.3.0 behave as 2.1.3), and measured on 2.4.1 / 2.1.2 with tests/sentis_real. Each entry: the attribute,
# the value the importer computes with instead, and when it logs
#   "<Op>: Unsupported attribute `<name>`. Value will be ignored (and defaulted to [<default>])."
# (Debug.LogWarning, once per node and attribute, at every import):
#   PRESENT  - whenever the attribute is in the node, whatever its value, even the default (2.4's scalar checks);
#   DIFFERS  - only when it is there with the type the importer reads (``attr_type``; another type reads as absent)
#              and a value other than ``default`` (2.1's scalar checks; int-list checks in both: an element-wise
#              comparison with the importer's default, which for pool ``dilations`` is [1, 1], so even a 1-D pool's
#              dilations=[1] logs it).
# ``min_opset``: the importer only looks at the attribute from this opset of the model on (Resize-10 has its own
# branch). Whether ignoring the value also changes the numbers is the business of the other rules (pool-ceil-mode,
# pool-count-include-pad, layernorm-axis, ...); this table only says when the Unity console shows a warning.
PRESENT, DIFFERS = "present", "differs"


@dataclass(frozen=True)
class IgnoredAttr:
    name: str
    default: int | float | str | tuple[int, ...] | None  # what the importer uses instead (None: no value)
    when: str  # PRESENT | DIFFERS
    attr_type: int = 0  # onnx AttributeProto type the importer reads the value as (DIFFERS only)
    min_opset: int = 0


_AP = AttributeProto
_POOL_2_4 = (IgnoredAttr("ceil_mode", 0, PRESENT), IgnoredAttr("dilations", (1, 1), DIFFERS, _AP.INTS),
             IgnoredAttr("storage_order", 0, PRESENT))
_POOL_2_1 = (IgnoredAttr("ceil_mode", 0, DIFFERS, _AP.INT), IgnoredAttr("dilations", (1, 1), DIFFERS, _AP.INTS),
             IgnoredAttr("storage_order", 0, DIFFERS, _AP.INT))
_WINDOW_2_4 = (IgnoredAttr("output_datatype", 1, PRESENT),)
IGNORED_ATTRS_IE_2_4: dict[str, tuple[IgnoredAttr, ...]] = {
    "AveragePool": (*_POOL_2_4, IgnoredAttr("count_include_pad", 0, PRESENT)),
    "MaxPool": _POOL_2_4,
    # only reached when the Constant has none of value / value_float(s) / value_int(s)
    "Constant": tuple(IgnoredAttr(n, None, PRESENT) for n in ("sparse_value", "value_string", "value_strings")),
    "ConvTranspose": (IgnoredAttr("output_shape", None, PRESENT),),
    "LayerNormalization": (IgnoredAttr("axis", -1, PRESENT),),
    "Resize": (IgnoredAttr("cubic_coeff_a", -0.75, PRESENT, min_opset=11),
               IgnoredAttr("exclude_outside", 0, PRESENT, min_opset=11),
               IgnoredAttr("extrapolation_value", 0, PRESENT, min_opset=11)),
    **dict.fromkeys(["BlackmanWindow", "HammingWindow", "HannWindow", "MelWeightMatrix"], _WINDOW_2_4),
}
IGNORED_ATTRS_SENTIS_2_1: dict[str, tuple[IgnoredAttr, ...]] = {
    "AveragePool": (*_POOL_2_1, IgnoredAttr("count_include_pad", 0, DIFFERS, _AP.INT)),
    "MaxPool": _POOL_2_1,
    "Constant": (IgnoredAttr("sparse_value", None, PRESENT),),
    # output_shape and dilations are read as STRING (default "null"), so a valid INTS attribute never logs
    "ConvTranspose": (IgnoredAttr("output_shape", "null", DIFFERS, _AP.STRING),
                      IgnoredAttr("dilations", "null", DIFFERS, _AP.STRING), IgnoredAttr("group", 1, DIFFERS, _AP.INT)),
    "LayerNormalization": (IgnoredAttr("axis", -1, DIFFERS, _AP.INT),),
    "RoiAlign": (IgnoredAttr("coordinate_transformation_mode", "half_pixel", DIFFERS, _AP.STRING),),
    # extrapolation_value (a FLOAT) is read as an INT, so it never logs
    "Resize": (IgnoredAttr("cubic_coeff_a", -0.75, DIFFERS, _AP.FLOAT, 11),
               IgnoredAttr("exclude_outside", 0, DIFFERS, _AP.INT, 11),
               IgnoredAttr("extrapolation_value", 0, DIFFERS, _AP.INT, 11)),
}

# Ops whose outputs are random: Sentis uses its own RNG, so goldens can never match (§1.7).
RANDOM_OPS = frozenset(["RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli",
                        "Multinomial"])
WINDOW_OPS = frozenset(["BlackmanWindow", "HammingWindow", "HannWindow"])

# --- §1.5 / A.10 / A.12: dtypes ----------------------------------------------------------------------------------
FLOAT_TYPES = frozenset([T.FLOAT, T.FLOAT16, T.DOUBLE, T.BFLOAT16])
# Graph I/O: float family -> Tensor<float>, integer/bool -> Tensor<int>; anything else is unusable.
IO_TYPES = frozenset([T.FLOAT, T.FLOAT16, T.DOUBLE, T.INT64, T.INT32, T.INT16, T.INT8, T.UINT8, T.UINT16, T.UINT32,
                      T.UINT64, T.BOOL])
IO_TYPES_NATIVE = frozenset([T.FLOAT, T.INT32])  # no conversion at the Tensor<float>/<int> boundary
# Initializers and Constant tensors that ONNXConstantsLoader can read from raw_data.
TENSOR_TYPES = frozenset([T.FLOAT, T.FLOAT16, T.DOUBLE, T.INT32, T.INT64, T.BOOL, T.UINT8, T.INT8])
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
INT64_SENTINELS = frozenset([2 ** 63 - 1, -(2 ** 63 - 1), -(2 ** 63)])  # "slice to the end" values
MAX_RANK = 8
MAX_PROTO_BYTES = 2 ** 31  # protobuf limit for the main .onnx
MAX_TENSOR_BYTES = 2 ** 31 - 32  # ModelWriter's per-constant cap (FlatBuffer)


@dataclass(frozen=True)
class Target:
    """One Sentis release line and the behaviours that differ between releases (§1.1-§1.7). ``package`` and
    ``version`` are the UPM package a bundle for this target depends on (its manifest ``target`` and package.json):
    the release whose importer source these rules were read from (§0: 2.4.1 is a documentation-only fix of 2.4.0,
    so a project on 2.4.1 satisfies a 2.4.0 dependency)."""

    name: str
    package: str
    version: str
    ops: frozenset[str]
    float_only: dict[str, tuple[int, ...] | str]
    typed_storage: frozenset[int]  # dtypes that may use the typed *_data fields instead of raw_data
    convtranspose_group_dilations: bool  # 2.3+
    constant_value_attrs: bool  # value_float(s)/value_int(s) on Constant, 2.3+
    scatter_min_max: bool  # ScatterND/ScatterElements reduction max/min, 2.2+
    gelu_tanh: bool  # Gelu approximate="tanh" honoured (2.4: GeluFast)
    roialign_any_mode: bool  # RoiAlign coordinate_transformation_mode other than half_pixel
    strips_colon_zero: bool  # importer strips a trailing ":0" from I/O names (<= 2.3)
    # the optimizer fuses a decomposed LayerNorm together with the Mul/Add after it into one LayerNormalization whose
    # scale/bias must be rank 1, and asserts otherwise (2.4.1, measured on tests/sentis_real; 2.1.x imports it)
    layernorm_fusion_rank1: bool = False
    namespace: str = "Unity.InferenceEngine"  # the C# namespace of the package's API
    backend: str = "CPU"  # the Sentis backend bundles are built and checked for
    # op type -> the attributes its importer ignores with a console warning (IGNORED_ATTRS_*)
    ignored_attrs: dict[str, tuple[IgnoredAttr, ...]] = field(default_factory=dict)

    def manifest(self) -> dict[str, str]:
        """The manifest's ``target`` section for this target (schemas/manifest.schema.json ``target``)."""
        return {"runtime": self.name, "unity_package": self.package, "package_version": self.version,
                "namespace": self.namespace, "backend": self.backend}


TARGETS: dict[str, Target] = {
    "ie-2.4": Target("ie-2.4", *RELEASES["ie-2.4"], OPS_IE_2_4, FLOAT_ONLY_IE_2_4,
                     frozenset([T.FLOAT, T.INT32, T.INT64, T.DOUBLE]), convtranspose_group_dilations=True,
                     constant_value_attrs=True, scatter_min_max=True, gelu_tanh=True, roialign_any_mode=True,
                     strips_colon_zero=False, ignored_attrs=IGNORED_ATTRS_IE_2_4, layernorm_fusion_rank1=True),
    "sentis-2.1": Target("sentis-2.1", *RELEASES["sentis-2.1"], OPS_SENTIS_2_1, FLOAT_ONLY_SENTIS_2_1,
                         frozenset([T.FLOAT, T.INT32, T.INT64]), convtranspose_group_dilations=False,
                         constant_value_attrs=False, scatter_min_max=False, gelu_tanh=False, roialign_any_mode=False,
                         strips_colon_zero=True, namespace="Unity.Sentis", ignored_attrs=IGNORED_ATTRS_SENTIS_2_1),
}
# name -> the manifest's target section without "runtime" (what the build writes, package.json depends on)
MANIFEST_TARGETS: dict[str, dict[str, str]] = {
    n: {k: v for k, v in t.manifest().items() if k != "runtime"} for n, t in TARGETS.items()}

# --- the fix for each rule id of packager.sentis.preflight (docs/sentis_checker.md explains each rule) --------------
FIXES: dict[str, str] = {
    "file-size": "save the weights as external data (onnx.save_model(..., save_as_external_data=True, "
                 "all_tensors_to_one_file=True, location='<name>.data', convert_attribute=False))",
    "external-data-location": "re-save with location='<name>.data' (a plain file name next to the .onnx)",
    "external-data-layout": "re-save contiguously in initializer order: onnx.save_model(..., "
                            "save_as_external_data=True, all_tensors_to_one_file=True) (no alignment padding)",
    "external-data-missing": "copy the external data file next to the .onnx",
    "external-data-tensor-size": "split the tensor (e.g. an embedding table) into two initializers",
    "external-data-attribute": "re-save with convert_attribute=False",
    "model-function": "inline with onnx.inliner.inline_local_functions, or export with the TorchScript exporter "
                      "(dynamo=False)",
    "subgraph": "trace with fixed control flow (unroll loops, move data-dependent branches to the host)",
    "onnx-checker": "fix the exporter output; Sentis assumes a valid graph",
    "shape-inference": "make the graph pass onnx.shape_inference.infer_shapes(model, strict_mode=True)",
    "opset-domain": "set the default-domain opset_import entry's domain to \"\"",
    "opset-range": f"export at opset {DEFAULT_OPSET}",
    "node-domain": "export without onnxruntime fusions (plain ONNX ops only)",
    "layernorm-fusion-rank": "give the LayerNorm its own rank-1 affine (e.g. F.layer_norm(x, (D,), ones(D), zeros(D)))"
                             " so that is what Sentis fuses, and apply the per-batch modulation after it",
    "op-rejected": "see the op's own message (sentis.rules.HARD_REJECTS)",
    "op-not-supported": "rewrite it with supported ops, or pick a target that has it (docs/sentis_checker.md)",
    "random-op": "draw the noise on the host and feed it as a graph input",
    "float-only-op": "Cast the input to float before the op (and back afterwards if needed)",
    "layernorm-axis": "normalise over the last axis only (Transpose/Reshape first) or decompose with ReduceMean",
    "convtranspose-output-shape": "express the output size with pads and output_padding",
    "convtranspose-group-dilations": "split a grouped ConvTranspose into per-group ones, or target ie-2.4",
    "resize-mode": "use mode nearest/linear with half_pixel, pytorch_half_pixel, align_corners or asymmetric",
    "maxpool-indices": "compute the indices another way (e.g. ArgMax over explicitly unfolded windows)",
    "pool-count-include-pad": "Pad explicitly (zeros) before an unpadded AveragePool, or use count_include_pad=0",
    "pool-dilations": "use dilation 1 (or gather the dilated taps explicitly)",
    "pool-ceil-mode": "pad the input to a whole number of strides and use ceil_mode=0 (a rewrite must keep the "
                      "numbers: a partial window averages only its real elements)",
    "ignored-attribute": "drop the attribute where it holds the ONNX default (sentis.rewrites.drop_default_attributes); "
                         "otherwise rewrite the node so that the importer's default computes the same",
    "gelu-tanh": "use exact Gelu, or spell the tanh form out with Tanh/Mul/Add ops",
    "batchnorm-training": "export the module in eval() mode",
    "scatter-reduction": "use reduction none/add/mul, or target ie-2.4",
    "dft-axis-input": "use the opset-20 DFT signature (axis as input 2) on a tensor whose last dim is 1 or 2",
    "window-dtype": "use output_datatype=1 (float) and Cast afterwards if needed",
    "roialign-mode": "use coordinate_transformation_mode=half_pixel (shift the rois by half a pixel)",
    "constant-value": "store the constant as a dense numeric `value` tensor (onnx.numpy_helper.from_array)",
    "tensor-dtype": "store it as FLOAT, FLOAT16, INT32 or INT64 (BOOL/INT8/UINT8/DOUBLE also load), dense",
    "fp16-raw-data": "re-encode with onnx.numpy_helper.from_array (raw_data)",
    "tensor-storage": "re-encode with onnx.numpy_helper.from_array (raw_data)",
    "int64-range": "keep int64 values within int32 (out-of-range sentinels only as Slice starts/ends)",
    "io-name": "give every input and output a unique non-empty name produced by the graph (no ':0' suffix)",
    "io-dtype": "declare graph inputs and outputs as float32 or int32 tensors (Cast inside the graph)",
    "input-shape": "declare every input's rank, with dim_param names for dynamic dims",
    "rank-over-8": "merge adjacent axes with Reshape so every tensor has at most 8 dims",
    "bfloat16": "use FLOAT or FLOAT16",
}
