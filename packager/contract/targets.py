"""The Unity runtimes and ONNX opsets a bundle can target: names, UPM packages and versions only.

Plain data without imports, so that the command line can offer ``--target``/``--opset`` without importing onnx;
``packager.sentis.rules`` adds what each target accepts (op sets, dtypes, ...) and re-exports these names.
"""
from __future__ import annotations

# --- shared/design/sentis.md §1.6 / A.5: opsets ---------------------------------------------------------------------
OPSET_MIN, OPSET_MAX = 7, 20  # the opsets Sentis <= 2.4 has converter branches for
OPSET_DOCUMENTED_MAX = 15  # Sentis documents 7..15 (16..20 usually import)
DEFAULT_OPSET = 15  # what the packager exports (graphs, speech tokenizer) unless told otherwise
BUILD_OPSET_MAX = 17  # the highest opset `build --opset` exports at (Sentis imports up to OPSET_MAX)

# target name -> (UPM package, version) a bundle for it depends on (sentis.rules.Target.package / .version)
RELEASES: dict[str, tuple[str, str]] = {
    "ie-2.4": ("com.unity.ai.inference", "2.4.0"),
    "sentis-2.1": ("com.unity.sentis", "2.1.3"),
}
DEFAULT_TARGET = "ie-2.4"

# --- precisions: what a graph's weights are stored as, and what ModelQuantizer then does to it in Unity -------------
PRECISIONS = ("fp32", "fp16", "uint8", "int8")
# manifest graph.unity_quantization per precision (int8 graphs are onnxruntime-only: nothing for Unity to do)
UNITY_QUANTIZATION = {"fp32": "none", "fp16": "float16", "uint8": "uint8", "int8": "none"}
