"""Every pass/fail threshold outside a graph's own golden tolerances (which each component declares beside the
measurement that sets them): the end-to-end goldens, the precision report's gates, and the regression bounds of the
committed goldens. Each number says where it comes from.
"""
from __future__ import annotations

from packager.contract.tolerance import Tolerance

# --- end-to-end goldens (manifest pipeline.goldens): tokens identical, mel within 1e-3, waveform SQNR >= 40 dB
E2E_TOLERANCES = {
    "speech_tokens": Tolerance(atol=0.0, rtol=0.0, exact=True),
    "mel": Tolerance(atol=1e-3, rtol=0.0),
    "speech": Tolerance(atol=1e-3, rtol=0.0, elementwise=False, metrics={"sqnr_db": 40.0}),
}

# --- the precision report's gates (packager/verbs/report): the one home of their thresholds (docs/precision.md "Report:
# gates and why each threshold is what it is"). Anchors: design/precision_tooling.md, stages 2 and 3 of its validation
# plan.
TOP1_MIN = 0.99  # stage 2: "LLM top-1 agreement >= 99 %" (also the per-graph top-1 gate on the golden cases)
COSINE_MIN = 0.999
COMPONENT_SQNR_MIN_DB = 30.0
# Teacher forcing: every policy's LLM is fed FP32's greedy tokens, step by step, and its next-token distribution is
# compared with FP32's at every step. A step counts for the top-1 gate only where FP32's top-1/top-2 margin (nats)
# exceeds MARGIN_FACTOR x the LOGIT_ERROR_QUANTILE of |logit - FP32 logit| over every logit of every step: a flip
# needs the two decisive logits to move apart by more than the margin, i.e. by more than twice an error reached by
# only 0.1 % of all logits. (Not the maximum: with margin > 2 x max |error| a flip is impossible by the triangle
# inequality, so that gate could never fail; the quantile keeps it able to catch errors concentrated on the
# decisive logits.) Near-ties below that margin are reported, not counted.
MARGIN_FACTOR = 2.0
LOGIT_ERROR_QUANTILE = 0.999
# stage 2's "bounded mean KL": by Pinsker, mean KL <= 2 e^2 nats bounds the mean total-variation distance between
# the two next-token distributions by e (Jensen: mean TV <= sqrt(mean KL / 2)); TV is the share of sampled draws that
# must differ under the best coupling, so e = 1 - TOP1_MIN says "at most 1 % of sampled tokens differ" as the top-1
# gate says it for greedy ones.
KL_MAX_NATS = round(2.0 * (1.0 - TOP1_MIN) ** 2, 12)  # 2e-4
# The flow on FP32's tokens: upstream's own export check of the flow estimator is rtol=1e-2 (atol=1e-4,
# cosyvoice/bin/export_onnx.py); an output within 1 % of every reference element has SQNR >= 20 log10(100) = 40 dB.
FLOW_MEL_SQNR_MIN_DB = 40.0
# The vocoder on FP32's mel: stage 3's spectral-similarity gate, 0.99 (kokoro-onnx PR #198 measured 0.999 for its
# fp16 export and 0.916 for int8); here the correlation of the two log-mel spectrograms (a phase-blind comparison of
# log-magnitude spectra, the family the design doc names).
VOCODER_LOG_MEL_CORR_MIN = 0.99
# Not gated, reported: waveform SQNR (the vocoder integrates F0 into a phase: it measures phase drift), free-running
# token agreement (with flat logits one near-tie flips every later token), MCD (stage 3: no sourced inaudibility
# threshold), log-mel distance, and the same-token audio through each policy's own flow and vocoder.
VOCODER_SENSITIVITY_SQNR_DB = 60.0  # the FP32 vocoder on FP32's mel plus white noise at this SQNR: how much it
#                                     amplifies a small change of its input (a property of the model, not of precision)

# --- regression bounds of the committed tiny goldens (tests/build/test_goldens.py). The goldens are recomputed on
# whatever CPU runs the tests, and the CPU's float kernels (AVX2 vs AVX-512 orders of summation, vectorised sin/exp)
# move the last bits. Each array is compared within a bound relative to its own largest magnitude, set from what was
# measured between an AMD EPYC and an Intel Xeon (same code, same weights): LLM and flow <= 7e-7, CAMPPlus's
# float32-vs-float64 distance 3e-6; the HiFT waveform 1.1e-4 (its sine source accumulates phase in float32), the 1.4 s
# pipeline waveform 2.0e-3 at its end (SQNR 62 dB). Any real numeric change of a component moves far more than that;
# token ids and other integers must stay equal.
GOLDEN_RELATIVE = 2e-5
GOLDEN_WAVEFORM_RELATIVE = {"waveform": 5e-4, "speech": 5e-3}
