"""What ``packager report`` measures: one bundle per precision policy, each graph against the FP32 bundle's goldens,
each policy's LLM, flow and vocoder fed FP32's tokens and mel (teacher forcing), one free-running synthesis per policy
against the FP32 one (information), the gates, the recommendation and the phased validation.

Generic: no component is named here. Which metric gates an output comes from what its component declares in its
tolerance (``top1`` for logits, ``cosine`` for embeddings, the rest by SQNR); which components get int8 in the
"partial" policy comes from their declared recommendation (those recommended fp16).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from packager.contract import manifest as B
from packager.build import precision as P
from packager.sentis import rules as R
from packager.contract.errors import PackagerError
from packager.contract.thresholds import (COMPONENT_SQNR_MIN_DB, COSINE_MIN, FLOW_MEL_SQNR_MIN_DB,  # noqa: F401
                                          KL_MAX_NATS, LOGIT_ERROR_QUANTILE, MARGIN_FACTOR, TOP1_MIN,
                                          VOCODER_LOG_MEL_CORR_MIN, VOCODER_SENSITIVITY_SQNR_DB)
from packager.contract.tolerance import metric

POLICIES = ("fp32", "recommended", "fp16", "uint8", "int8-partial")
BASELINE = "fp32"
SEARCHED = "searched"  # not chosen with --policies: built when the per-component search finds a new combination
DESCRIPTIONS = {
    "fp32": "every graph as exported (the baseline)",
    "recommended": "each component's declared precision (the build's default)",
    "fp16": "fp16 weights in every graph",
    "uint8": "the fp32 files, weights quantized to uint8 by Unity after import (ModelQuantizer)",
    "int8-partial": "onnxruntime int8 weights where a component is recommended fp16, fp32 elsewhere "
                    "(not importable by Sentis: for onnxruntime hosts)",
    SEARCHED: "the search: per component, then per graph, the measured precision with the fewest bytes in Unity "
              "memory that passes its gates, built and measured as one bundle",
}

GATES = [
    {"id": "sentis-import", "stage": "structure",
     "description": "every graph passes the Sentis pre-flight check for the build target"},
    {"id": "finite", "stage": "component", "description": "every float output is finite on every golden case"},
    {"id": "top1", "stage": "component", "threshold": TOP1_MIN,
     "description": "outputs that declare top-1 (logits): top-1 agreement with FP32 on the golden cases at least "
                    "the threshold"},
    {"id": "cosine", "stage": "component", "threshold": COSINE_MIN,
     "description": "outputs that declare cosine (embeddings, the DiT velocity): cosine with FP32 at least the "
                    "threshold"},
    {"id": "sqnr", "stage": "component", "threshold": COMPONENT_SQNR_MIN_DB,
     "description": "every other float output: SQNR against FP32 at least the threshold (dB)"},
    {"id": "llm-top1", "stage": "LLM, teacher forced", "component": "llm", "threshold": TOP1_MIN,
     "description": "fed FP32's tokens, the LLM picks FP32's next token at least this often, counting the steps "
                    "where FP32's top-1/top-2 margin exceeds twice the 99.9th percentile of the logit error"},
    {"id": "llm-kl", "stage": "LLM, teacher forced", "component": "llm", "threshold": KL_MAX_NATS,
     "description": "fed FP32's tokens, mean KL divergence of the next-token distribution from FP32's at most the "
                    "threshold (nats; at most 1 % of sampled tokens differ)"},
    {"id": "flow-mel", "stage": "flow, same tokens", "component": "flow", "threshold": FLOW_MEL_SQNR_MIN_DB,
     "description": "fed FP32's tokens, the flow's mel has an SQNR against FP32's mel at least the threshold (dB)"},
    {"id": "vocoder", "stage": "vocoder, same mel", "component": "hift", "threshold": VOCODER_LOG_MEL_CORR_MIN,
     "description": "fed FP32's mel, the vocoder's audio has a log-mel spectrogram whose correlation with FP32's "
                    "audio's is at least the threshold"},
]
# What each number means, in one plain sentence, and which way is better (report.json "metrics"; the page's key).
METRICS = [
    {"id": "unity_weight_bytes", "name": "weights in Unity", "better": "lower",
     "meaning": "Memory the model's weights take in Unity after import (and after Unity's own quantization)."},
    {"id": "bytes", "name": "on disk", "better": "lower", "meaning": "Size of the .onnx files the bundle ships."},
    {"id": "llm_top1_confident", "name": "LLM top-1 (above margin)", "better": "higher",
     "meaning": "Fed FP32's tokens, how often the LLM picks FP32's next token, counting the steps where FP32 is "
                "clearly decided (its margin exceeds twice the 99.9th percentile of the logit error)."},
    {"id": "llm_top1", "name": "LLM top-1 (all steps)", "better": "higher",
     "meaning": "The same over every step, near-ties included; information, not a gate."},
    {"id": "kl_mean", "name": "KL", "better": "lower",
     "meaning": "Fed FP32's tokens, how far the LLM's next-token probabilities are from FP32's, in nats (0: the "
                "same)."},
    {"id": "margin", "name": "margin", "better": "information",
     "meaning": "How far FP32's favourite next token is ahead of the runner-up (log-probability, nats); a near-tie "
                "can flip on the smallest error without anyone hearing a difference."},
    {"id": "flow_mel_sqnr_db", "name": "flow mel SQNR", "better": "higher",
     "meaning": "Fed FP32's tokens, how close the flow's mel (what the vocoder turns into sound) is to FP32's, in "
                "dB."},
    {"id": "flow_mel_distance_db", "name": "mel distance", "better": "lower",
     "meaning": "Mean level difference between two mel spectrograms per bin and frame, in dB."},
    {"id": "mcd_db", "name": "MCD", "better": "lower",
     "meaning": "Mel-cepstral distortion: how different two spectral envelopes (the timbre) are, in dB; "
                "information, not a gate."},
    {"id": "log_mel_correlation", "name": "vocoder log-mel correlation", "better": "higher",
     "meaning": "Fed FP32's mel, how alike the vocoder's spectrogram and FP32's are (1: the same; blind to phase)."},
    {"id": "sqnr_db", "name": "waveform SQNR", "better": "higher",
     "meaning": "Sample-by-sample closeness of two waveforms in dB; the vocoder turns pitch into a running phase, so "
                "tiny changes make it drift and this drops where nothing audible changed; information, not a gate."},
    {"id": "token_agreement", "name": "free-running token agreement", "better": "higher",
     "meaning": "Each policy decoding on its own: the share of positions holding FP32's token; after one near-tie "
                "flips, every later token may differ; information, not a gate."},
    {"id": "component", "name": "graph SQNR / cosine / top-1", "better": "higher",
     "meaning": "Each graph run on its golden inputs, against FP32's outputs."},
    {"id": "sentis_real", "name": "real Sentis", "better": "higher",
     "meaning": "Each graph's golden cases run by Unity-compiled Sentis itself, against the policy's own goldens: "
                "cases passed, and the worst absolute error (lower is better). It checks that Unity computes what "
                "this report measured, not the precision loss."},
]
PHASES = [
    {"title": "FP32 baseline", "policies": ["fp32"],
     "question": "Do the exported graphs reproduce the PyTorch reference, and does Sentis import them?"},
    {"title": "FP16 LLM and flow", "policies": ["recommended"],
     "question": "Does halving the LLM and flow weights (HiFT kept FP32) keep the LLM's choices and the mel?"},
    {"title": "HiFT FP16 trial", "policies": ["fp16"],
     "question": "Can the vocoder, the most sensitive component, go FP16 too?"},
    {"title": "8-bit weights", "policies": ["uint8"],
     "question": "What does Unity's uint8 weight quantization (ModelQuantizer) cost?"},
    {"title": "Per-component search", "policies": [SEARCHED],
     "question": "Each component at the cheapest precision that passes its own gates: does the combination pass?"},
]
# Policies a Sentis host cannot use: measured and shown in a section of their own, never recommended, in no phase.
ONNXRUNTIME_ONLY = ("int8-partial",)
MCD_COEFFS = 24  # mel-cepstral coefficients c1..c24 (c0, the energy, left out as usual)
SQNR_CAP_DB = 999.0


def parse_policies(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICIES]
    if unknown or not names:
        raise PackagerError(f"unknown policy {unknown[0]!r}" if unknown else "no policy given", key="--policies",
                            expected="a comma-separated list of " + ", ".join(POLICIES))
    if BASELINE not in names:  # everything is measured against it
        names.insert(0, BASELINE)
    return sorted(dict.fromkeys(names), key=POLICIES.index)


def plan_for(policy: str, recommended: Mapping[str, str]) -> P.PrecisionPlan:
    """The build plan of a report policy (``recommended``: component -> its declared precision)."""
    if policy in P.NAMED_POLICIES:
        return P.plan(policy, recommended)
    if policy == "uint8":
        comps = {c: P.ComponentPolicy("uint8") for c in recommended}
    elif policy == "int8-partial":
        comps = {c: P.ComponentPolicy("int8" if r == "fp16" else "fp32") for c, r in recommended.items()}
    else:
        raise PackagerError(f"unknown policy {policy!r}", key="--policies", expected=", ".join(POLICIES))
    return P.PrecisionPlan(policy, comps, dict(recommended))


# --- per graph -----------------------------------------------------------------------------------------------------
def golden_cases(bundle: Path, graph: Mapping[str, Any], where: str) -> list[tuple[dict, dict]]:
    out = []
    for case in graph.get("goldens", []):
        ins = {e["name"]: B.load_array(bundle, e, f"{where}/{case['name']}/in") for e in case["inputs"]}
        outs = {e["name"]: B.load_array(bundle, e, f"{where}/{case['name']}/out") for e in case["outputs"]}
        out.append((ins, outs))
    return out


def _r(v: float, digits: int = 6) -> float | None:
    """``v`` to ``digits`` significant digits; None where it is not finite (JSON has no NaN)."""
    v = float(v)
    return float(f"{v:.{digits}g}") if math.isfinite(v) else None


def output_errors(got: Sequence[Mapping[str, np.ndarray]], ref: Sequence[Mapping[str, np.ndarray]],
                  tolerances: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per float output, worst over the cases: max abs, relative (max abs / max |FP32|), SQNR, cosine, and top-1 /
    KL where the output declares them; ``gate``: the metric that gates it (top1, cosine or sqnr)."""
    acc: dict[str, dict[str, Any]] = {}
    for g, e in zip(got, ref):
        for name, exp in e.items():
            exp = np.asarray(exp)
            if exp.dtype.kind != "f" or exp.size == 0:
                continue
            act = np.asarray(g[name], np.float64)
            exp = exp.astype(np.float64)
            declared = (tolerances.get(name) or {}).get("metrics") or {}
            gate = "top1" if "top1" in declared else "cosine" if "cosine" in declared else "sqnr"
            d = acc.setdefault(name, {"output": name, "gate": gate, "finite": True, "max_abs": 0.0, "relative": 0.0,
                                      "sqnr_db": SQNR_CAP_DB, "cosine": 1.0})
            finite = bool(np.isfinite(act).all())
            d["finite"] = d["finite"] and finite
            if not finite:
                act = np.nan_to_num(act, nan=0.0, posinf=0.0, neginf=0.0)
            mx = metric("max_abs", act, exp)
            d["max_abs"] = max(d["max_abs"], mx)
            d["relative"] = max(d["relative"], mx / max(float(np.max(np.abs(exp))), 1e-30))
            d["sqnr_db"] = min(d["sqnr_db"], min(SQNR_CAP_DB, metric("sqnr_db", act, exp)))
            d["cosine"] = min(d["cosine"], metric("cosine", act, exp))
            if "top1" in declared:
                d["top1"] = min(d.get("top1", 1.0), metric("top1", act, exp))
                d["kl"] = max(d.get("kl", 0.0), metric("kl", act, exp))
    return [{k: (_r(v) if isinstance(v, float) else v) for k, v in d.items()} for d in acc.values()]


def output_gate(err: Mapping[str, Any]) -> tuple[bool, str]:
    if not err["finite"]:
        return False, f"{err['output']}: not finite"
    if err["gate"] == "top1":
        return err["top1"] >= TOP1_MIN, f"{err['output']}: top-1 {err['top1']:.4g}"
    if err["gate"] == "cosine":
        return err["cosine"] >= COSINE_MIN, f"{err['output']}: cosine {err['cosine']:.6g}"
    return err["sqnr_db"] >= COMPONENT_SQNR_MIN_DB, f"{err['output']}: SQNR {err['sqnr_db']:.3g} dB"


def sentis_verdicts(path: Path, graph: str) -> dict[str, dict[str, Any]]:
    from packager.sentis import preflight

    out = {}
    for target, findings in preflight.check_file_for(path, tuple(R.TARGETS), graph).items():
        errors = sorted({f.rule for f in findings if f.severity == "error"})
        out[target] = {"importable": not errors, "errors": errors,
                       "warnings": sum(1 for f in findings if f.severity != "error")}
    return out


def measure_graph(bundle: Path, comp: str, graph: Mapping[str, Any], fp32_cases: Sequence[tuple[dict, dict]],
                  fp32_graph: Mapping[str, Any], threads: int) -> dict[str, Any]:
    from packager.onnx.session import run_onnx, session
    from packager.sentis.numerics import target_model, unity_weight_bytes

    where = f"{comp}/{graph['name']}"
    path = B.check_graph_files(bundle, graph, where)
    files = [path] + [path.with_name(path.name + ".data")] * path.with_name(path.name + ".data").is_file()
    cost = graph.get("precision_cost") or {}
    t0 = time.perf_counter()
    sess = session(target_model(path, graph), threads)
    load_ms = (time.perf_counter() - t0) * 1000.0
    got, run_ms = [], []
    for ins, _ in fp32_cases:
        t1 = time.perf_counter()
        got.append(run_onnx(sess, ins))
        run_ms.append((time.perf_counter() - t1) * 1000.0)
    del sess
    if "unity_weight_bytes" in cost:
        unity = int(cost["unity_weight_bytes"])
    elif graph.get("precision") == "int8":
        unity = None  # Sentis does not import it
    else:
        import onnx

        unity = int(unity_weight_bytes(onnx.load(str(path), load_external_data=False), "none"))
    tolerances = {t["output"]: t for t in fp32_graph.get("tolerances", [])}
    errors = output_errors(got, [o for _, o in fp32_cases], tolerances)
    return {"name": graph["name"], "precision": graph["precision"],
            "unity_quantization": graph.get("unity_quantization", "none"),
            "bytes": int(sum(f.stat().st_size for f in files)), "unity_weight_bytes": unity,
            "load_ms": _r(load_ms, 4), "run_ms": _r(float(np.median(run_ms)) if run_ms else 0.0, 4),
            "cases": len(fp32_cases), "sentis": sentis_verdicts(path, graph["name"]), "errors": errors}


# --- end to end ----------------------------------------------------------------------------------------------------
def log_mel(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """[80, frames] natural-log mel (the Matcha 24 kHz mel the flow is trained on)."""
    from packager.frontend import audio
    from packager.frontend import features

    w = np.asarray(wave, np.float32).reshape(-1)
    rate = int(features.MATCHA_MEL["sample_rate"])
    if sample_rate != rate:
        w = audio.resample(w, sample_rate, rate)
    return np.asarray(features.matcha_mel(w), np.float64)


def mel_cepstral_distortion(mel: np.ndarray, ref: np.ndarray) -> float:
    """MCD (dB) between two log-mels over their shared frames: (10 / ln 10) sqrt(2 sum_k (c_k - c'_k)^2), mean over
    frames, c = DCT-II (orthonormal) of the log-mel, k = 1..MCD_COEFFS. No time warping: the shared frames."""
    n = min(mel.shape[1], ref.shape[1])
    if n == 0:
        return float("nan")
    m = mel.shape[0]
    k = np.arange(1, MCD_COEFFS + 1)[:, None]
    basis = np.sqrt(2.0 / m) * np.cos(np.pi * k * (2 * np.arange(m)[None, :] + 1) / (2 * m))
    diff = basis @ (mel[:, :n] - ref[:, :n])
    return float(np.mean(10.0 / np.log(10.0) * np.sqrt(2.0 * np.sum(diff ** 2, axis=0))))


def waveform_sqnr(x: np.ndarray, ref: np.ndarray) -> float:
    """The manifest's SQNR (``tolerance.metric``) over the shared length, capped like the per-graph errors."""
    n = min(x.size, ref.size)
    if n == 0:
        return float("nan")
    return min(SQNR_CAP_DB, metric("sqnr_db", x.reshape(-1)[:n], ref.reshape(-1)[:n]))


def token_agreement(tokens: np.ndarray, ref: np.ndarray) -> float:
    """Share of positions (over the longer sequence) where the two greedy token sequences agree."""
    a, b = np.asarray(tokens).reshape(-1), np.asarray(ref).reshape(-1)
    longest = max(a.size, b.size)
    if longest == 0:
        return 1.0
    n = min(a.size, b.size)
    return float(np.sum(a[:n] == b[:n])) / longest


def log_mel_distance_db(mel: np.ndarray, ref: np.ndarray) -> float:
    """Mean |difference| of two natural-log mels [bins, frames] over their shared frames, in dB (20 log10 of the
    magnitude ratio: ln values x 20 / ln 10)."""
    n = min(mel.shape[-1], ref.shape[-1])
    if n == 0:
        return float("nan")
    d = np.asarray(mel, np.float64)[..., :n] - np.asarray(ref, np.float64)[..., :n]
    return float(np.mean(np.abs(d)) * 20.0 / np.log(10.0))


def log_mel_correlation(mel: np.ndarray, ref: np.ndarray) -> float:
    """Pearson correlation of two log-mel spectrograms over their shared frames: 1 for the same spectrum, blind to
    phase (the vocoder gate's spectral similarity)."""
    n = min(mel.shape[-1], ref.shape[-1])
    if n == 0:
        return float("nan")
    a = np.asarray(mel, np.float64)[..., :n].reshape(-1)
    b = np.asarray(ref, np.float64)[..., :n].reshape(-1)
    if np.array_equal(a, b):
        return 1.0
    a, b = a - a.mean(), b - b.mean()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


# --- the LLM, teacher forced ---------------------------------------------------------------------------------------
MARGIN_BINS = (0.0, 0.01, 0.1, 1.0, 10.0)  # FP32's top-1/top-2 margin (nats): the histogram's lower edges


def _masked_log_softmax(logits: np.ndarray, min_len: int, masked: Sequence[int]) -> np.ndarray:
    """[steps, V] log-probabilities as the host loop sees them: ids ``masked`` are -inf for steps < ``min_len``
    (renormalized: the distribution a sampler draws from)."""
    x = np.asarray(logits, np.float64).copy()
    if min_len > 0 and len(masked):
        x[:min_len, list(masked)] = -np.inf
    m = np.max(x, axis=-1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))


def teacher_forced_metrics(pieces: Sequence[tuple[np.ndarray, np.ndarray, int, Sequence[int]]]) -> dict[str, Any]:
    """Next-token distributions of a policy's LLM fed FP32's tokens against FP32's own, step by step.

    ``pieces``: per text piece (FP32 logits [steps, V], the policy's logits [steps, V], min_len, ids masked before
    min_len). top-1 agreement over every step; over the steps whose FP32 margin (top-1 minus top-2 log-probability)
    exceeds MARGIN_FACTOR x the LOGIT_ERROR_QUANTILE of |logit error| over every logit of every step; mean and max
    KL(FP32 || policy) in nats; the margin histogram with the flips in each bin."""
    agree, margins, kls, errs = [], [], [], []
    for ref, got, min_len, masked in pieces:
        ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
        if ref.shape != got.shape or ref.ndim != 2:
            raise PackagerError(f"teacher-forced logits of shape {list(got.shape)} against FP32's {list(ref.shape)}",
                                key="llm")
        if ref.shape[0] == 0:
            continue
        lr, lg = _masked_log_softmax(ref, min_len, masked), _masked_log_softmax(got, min_len, masked)
        agree.append(np.argmax(lr, axis=-1) == np.argmax(lg, axis=-1))
        top2 = np.sort(lr, axis=-1)[:, -2:]
        margins.append(top2[:, 1] - top2[:, 0])
        pr = np.exp(lr)
        with np.errstate(invalid="ignore"):
            terms = np.where(pr > 0, pr * (lr - lg), 0.0)
        kls.append(np.sum(terms, axis=-1))
        errs.append(np.abs(got - ref).reshape(-1))
    if not agree:
        raise PackagerError("no LLM step to compare (FP32 decoded no step)", key="llm")
    agree_a, margin_a, kl_a, err_a = (np.concatenate(x) for x in (agree, margins, kls, errs))
    finite = bool(np.isfinite(err_a).all() and np.isfinite(kl_a).all())
    err_f = np.where(np.isfinite(err_a), err_a, np.inf)
    q = float(np.quantile(err_f, LOGIT_ERROR_QUANTILE)) if finite else math.inf
    threshold = MARGIN_FACTOR * q
    confident = margin_a > threshold
    flips = ~agree_a
    hist = []
    for i, lo in enumerate(MARGIN_BINS):
        hi = MARGIN_BINS[i + 1] if i + 1 < len(MARGIN_BINS) else None
        sel = (margin_a >= lo) & (margin_a < hi if hi is not None else True)
        hist.append({"lo": lo, "hi": hi, "steps": int(np.sum(sel)), "flips": int(np.sum(flips & sel)),
                     "counted": int(np.sum(sel & confident))})
    n_conf = int(np.sum(confident))
    return {"steps": int(agree_a.size), "finite": finite,
            "top1": _r(float(np.mean(agree_a)), 6),
            "top1_confident": _r(float(np.mean(agree_a[confident])), 6) if n_conf else None,
            "confident_steps": n_conf, "margin_threshold": _r(threshold), "logit_error_quantile": _r(q),
            "logit_error_max": _r(float(np.max(err_f))) if err_f.size else 0.0,
            "kl_mean": _r(float(np.mean(kl_a))) if finite else None,
            "kl_max": _r(float(np.max(kl_a))) if finite else None,
            "flips": int(np.sum(flips)), "flips_counted": int(np.sum(flips & confident)),
            "margin_histogram": hist}


def decode_logits(p, case: Mapping[str, np.ndarray], forced: "Piece | None" = None
                  ) -> tuple[np.ndarray, list[int], int, list[int]]:
    """The LLM's logits at every decode step of one text piece, as ``llm_generate.generate`` runs it (greedy,
    upstream's quirks: only SOS masked before min_len). ``forced``: feed FP32's tokens instead of the argmax, for
    exactly FP32's number of steps (teacher forcing). Returns (logits [steps, V] float32, tokens (stop excluded),
    min_len, masked ids)."""
    from packager.runtime import llm_generate as G

    c = p.constants["llm"]
    text = np.asarray(case["text"]).reshape(-1)
    S, (lo, hi) = int(c["speech_token_size"]), c["stop_range"]
    min_len, max_len = int(c["min_len_ratio"] * text.size), int(c["max_len_ratio"] * text.size)
    masked = [S]
    embeds = G.build_prompt(p.runners, c, text, np.asarray(case["prompt_text"]).reshape(-1),
                            np.asarray(case["llm_prompt_speech_token"]).reshape(-1))
    shape = [0 if d == "len" else d for d in c["kv_cache"]["shape"]]
    past_k, past_v = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    logits: list[np.ndarray] = []
    tokens: list[int] = []
    steps = forced.steps if forced is not None else max_len
    for i in range(steps):
        out = p.runners[p.constants["llm"]["graphs"]["step"]]({"inputs_embeds": embeds, "past_key": past_k, "past_value": past_v})
        past_k, past_v = out["present_key"], out["present_value"]
        logits.append(np.asarray(out["logits"], np.float32).reshape(-1))
        if forced is not None:
            if i >= len(forced.tokens):
                break  # FP32's stop step: compared, nothing fed after it
            token = int(forced.tokens[i])
        else:
            logp = G.log_softmax(logits[-1])
            if i < min_len:
                logp[masked] = -np.inf
            token = int(np.argmax(logp))
            if lo <= token < hi:
                break
        tokens.append(token)
        embeds = p.runners[p.constants["llm"]["graphs"]["speech_embed"]]({"speech_ids": np.array([[token]], np.int32)})["speech_embeds"]
    return np.stack(logits) if logits else np.zeros((0, 0), np.float32), tokens, min_len, masked


# --- synthesis, and what each policy is fed --------------------------------------------------------------------------
@dataclass
class Utterance:
    """One greedy, free-running synthesis, with what each text piece gave."""

    samples: np.ndarray
    sample_rate: int
    tokens: np.ndarray  # the flow's tokens (after the silent filter), pieces concatenated
    seconds: float  # synthesis wall time
    mel: np.ndarray  # the flow's output mel [80, T], text pieces concatenated
    cases: list[dict[str, np.ndarray]]  # per piece, upstream frontend names
    piece_tokens: list[np.ndarray]  # per piece [1, n]
    piece_mels: list[np.ndarray]  # per piece [1, 80, T]


@dataclass
class Piece:
    """One text piece of the FP32 run: what every other policy is fed, and FP32's answers."""

    case: dict[str, np.ndarray]
    tokens: list[int]  # FP32's greedy tokens, stop token excluded
    steps: int  # decode steps: one more than the tokens when a stop token ended the piece
    min_len: int
    masked: list[int]
    logits: np.ndarray  # FP32's [steps, V]
    flow_tokens: np.ndarray  # [1, n], after the silent filter: what the flow gets
    mel: np.ndarray  # FP32's flow mel [1, 80, T]
    wave: np.ndarray  # FP32's vocoder on that mel [n]


def open_pipeline(bundle: Path, manifest: Mapping[str, Any], threads: int):
    from packager.runtime import pipeline as synth

    return synth.Pipeline.open(bundle, threads=threads, manifest=dict(manifest), one_component_at_a_time=True)


def synthesize(p, voice, text: str | None, case: Mapping | None, seed: int) -> Utterance:
    """One greedy synthesis over the pipeline ``p``: ``text`` in ``voice`` (the text pipeline), or a frontend
    ``case``."""
    from packager.runtime import pipeline as synth

    t0 = time.perf_counter()
    sr = int(p.constants["hift"]["sample_rate"])
    if voice is not None:
        from packager.runtime import tts

        pieces = tts.text_pieces(p.tokenizer(), text)
        cases = [c for _, c in tts.frontend_cases(p.tokenizer(), voice, text, pieces=pieces)]
        sp = tts.speak(p, voice, text, sampling="greedy", seed=seed, pieces=pieces)
        piece_tokens, piece_mels, samples = list(sp.speech_tokens), list(sp.mels), sp.speech
    else:
        cases = [synth.validate_case(dict(case))]
        out = synth.synthesize(p, dict(case), sampling="greedy", seed=seed)
        piece_tokens, piece_mels, samples = [out["speech_tokens"]], [out["mel"]], out["speech"]
    tokens = np.concatenate([np.asarray(t).reshape(-1) for t in piece_tokens]).astype(np.int64)
    mel = np.concatenate([np.asarray(m)[0] for m in piece_mels], axis=1)
    return Utterance(np.asarray(samples, np.float32).reshape(-1), sr, tokens, time.perf_counter() - t0,
                     np.asarray(mel, np.float32), cases, [np.asarray(t, np.int32) for t in piece_tokens],
                     [np.asarray(m, np.float32) for m in piece_mels])


def reference(p, utt: Utterance, seed: int) -> tuple[list[Piece], dict[str, Any]]:
    """FP32's pieces (its logits at every decode step, its tokens, mel and audio) and how much the FP32 vocoder
    amplifies a small change of its input (its mel plus white noise at VOCODER_SENSITIVITY_SQNR_DB)."""
    from packager.runtime import pipeline as synth
    from packager.runtime.llm_generate import silent_filter

    pieces = []
    for k, case in enumerate(utt.cases):
        logits, tokens, min_len, masked = decode_logits(p, case)
        flow_tokens = np.asarray(silent_filter(tokens, p.constants["llm"]), np.int32).reshape(1, -1)
        if not np.array_equal(flow_tokens, utt.piece_tokens[k]):  # the same loop, the same graphs: must agree
            raise PackagerError(f"text piece {k + 1}: the FP32 decode for teacher forcing gave other tokens than the "
                                "FP32 synthesis (onnxruntime not deterministic?)", key="llm")
        steps = logits.shape[0]
        pieces.append(Piece(dict(case), tokens, steps, min_len, masked, logits, flow_tokens, utt.piece_mels[k], None))
    offset = 0
    for pc in pieces:  # the synthesis's audio, split per piece (non-streaming: the vocoder on each piece's mel)
        n = pc.mel.shape[2] * int(p.constants["hift"]["samples_per_frame"])
        pc.wave = utt.samples[offset:offset + n]
        offset += n
    rng = np.random.default_rng(seed)
    noisy = []
    for pc in pieces:
        m = pc.mel.astype(np.float64)
        noise = rng.standard_normal(m.shape)
        noise *= math.sqrt(float(np.sum(m ** 2)) / max(float(np.sum(noise ** 2)), 1e-30)) * \
            10.0 ** (-VOCODER_SENSITIVITY_SQNR_DB / 20.0)
        noisy.append(np.asarray(synth._hift(p, (m + noise).astype(np.float32))).reshape(-1))
    wave = np.concatenate(noisy)
    sensitivity = {"mel_sqnr_db": VOCODER_SENSITIVITY_SQNR_DB,
                   **_audio_vs(wave, utt.samples, utt.sample_rate)}
    return pieces, sensitivity


def _audio_vs(wave: np.ndarray, ref: np.ndarray, sample_rate: int) -> dict[str, Any]:
    """Audio against FP32's, same length expected: log-mel correlation, log-mel distance, MCD, waveform SQNR."""
    finite = bool(np.isfinite(wave).all())
    w = wave if finite else np.nan_to_num(wave, nan=0.0, posinf=0.0, neginf=0.0)
    lm, lr = log_mel(w, sample_rate), log_mel(ref, sample_rate)
    return {"finite": finite, "log_mel_correlation": _r(log_mel_correlation(lm, lr), 6),
            "log_mel_distance_db": _r(log_mel_distance_db(lm, lr), 4),
            "mcd_db": _r(mel_cepstral_distortion(lm, lr), 4), "sqnr_db": _r(waveform_sqnr(w, ref), 4)}


@dataclass
class PolicyRun:
    """What a policy did with FP32's inputs: the metrics, and the audio of its own flow and vocoder on FP32's
    tokens (its WAV beside the free-running one) and its flow mel (for the difference picture)."""

    teacher_forced: dict[str, Any]
    same_tokens: dict[str, Any]
    same_mel: dict[str, Any]
    same_token_audio: np.ndarray
    flow_mel: np.ndarray  # [80, T], pieces concatenated


def fed_fp32(p, pieces: Sequence[Piece], sample_rate: int) -> PolicyRun:
    """The policy's LLM fed FP32's tokens (teacher forcing), its flow fed FP32's tokens, its vocoder fed its own
    flow's mel and FP32's mel. Component by component, so each policy opens each component once more."""
    from packager.runtime import pipeline as synth

    tf = [(pc.logits, decode_logits(p, pc.case, pc)[0], pc.min_len, pc.masked) for pc in pieces]
    mels = [np.asarray(synth._flow(p, pc.flow_tokens, synth.validate_case(pc.case), streaming=False, finalize=True),
                       np.float32) for pc in pieces]
    chain = np.concatenate([np.asarray(synth._hift(p, m)).reshape(-1) for m in mels]).astype(np.float32)
    vocoder = np.concatenate([np.asarray(synth._hift(p, pc.mel)).reshape(-1) for pc in pieces]).astype(np.float32)
    ref_wave = np.concatenate([pc.wave for pc in pieces])
    got = np.concatenate([m[0] for m in mels], axis=1)
    ref_mel = np.concatenate([pc.mel[0] for pc in pieces], axis=1)
    mel_finite = bool(np.isfinite(got).all())
    g = got if mel_finite else np.nan_to_num(got, nan=0.0, posinf=0.0, neginf=0.0)
    same_tokens = {"mel_finite": mel_finite,
                   "flow_mel_sqnr_db": _r(waveform_sqnr(g.reshape(-1), ref_mel.reshape(-1)), 4),
                   "flow_mel_distance_db": _r(log_mel_distance_db(g, ref_mel), 4),
                   "flow_mel_mcd_db": _r(mel_cepstral_distortion(g.astype(np.float64), ref_mel.astype(np.float64)), 4),
                   **_audio_vs(chain, ref_wave, sample_rate)}
    return PolicyRun(teacher_forced_metrics(tf), same_tokens, _audio_vs(vocoder, ref_wave, sample_rate), chain, got)


def e2e_metrics(u: Utterance, ref: Utterance | None) -> dict[str, Any]:
    """The free-running synthesis (information: with flat logits one near-tie changes every later token)."""
    d: dict[str, Any] = {"samples": int(u.samples.size), "seconds_of_audio": _r(u.samples.size / u.sample_rate, 4),
                         "synth_seconds": _r(u.seconds, 4), "tokens": int(u.tokens.size),
                         "finite": bool(np.isfinite(u.samples).all()),
                         "peak": _r(float(np.max(np.abs(u.samples))) if u.samples.size else 0.0, 4)}
    if ref is not None:
        d["token_agreement"] = _r(token_agreement(u.tokens, ref.tokens), 4)
        d["sqnr_db"] = _r(waveform_sqnr(u.samples, ref.samples), 4)
        if u.mel.shape == ref.mel.shape:  # same token count: the flow's mel, before the vocoder
            d["flow_mel_sqnr_db"] = _r(waveform_sqnr(u.mel.reshape(-1), ref.mel.reshape(-1)), 4)
        d["mcd_db"] = _r(mel_cepstral_distortion(log_mel(u.samples, u.sample_rate),
                                                 log_mel(ref.samples, ref.sample_rate)), 4)
    return d


# --- verdicts ------------------------------------------------------------------------------------------------------
def runtime_of(policy: str) -> str:
    return "onnxruntime" if policy in ONNXRUNTIME_ONLY else "sentis"


def policy_gates(policy: Mapping[str, Any], target: str, is_baseline: bool) -> list[dict[str, Any]]:
    """Every gate of GATES, in its order: pass and a detail saying the value that decided it."""
    graphs = [g for c in policy["components"] for g in c["graphs"]]
    not_importable = [g["name"] for g in graphs if not g["sentis"][target]["importable"]]
    out = [{"gate": "sentis-import", "pass": not not_importable,
            "detail": "all graphs" if not not_importable else "fails: " + ", ".join(not_importable)}]
    finite_bad = [f"{g['name']}.{e['output']}" for g in graphs for e in g["errors"] if not e["finite"]]
    out.append({"gate": "finite", "pass": not finite_bad, "detail": "all outputs" if not finite_bad
                else "not finite: " + ", ".join(finite_bad)})
    for kind in ("top1", "cosine", "sqnr"):
        checked = [(g["name"], e) for g in graphs for e in g["errors"] if e["gate"] == kind and e["finite"]]
        failed = [f"{n}.{msg}" for n, e in checked for ok, msg in [output_gate(e)] if not ok]
        out.append({"gate": kind, "pass": not failed,
                    "detail": (f"{len(checked)} outputs" if not failed else "fails: " + "; ".join(failed))
                    if checked else "no output of this kind"})
    if is_baseline:
        ok = bool((policy.get("e2e") or {}).get("finite", True))
        return out + [{"gate": g, "pass": ok, "detail": "the baseline" if ok else "the baseline's audio is not finite"}
                      for g in ("llm-top1", "llm-kl", "flow-mel", "vocoder")]
    return out + e2e_gates(policy["teacher_forced"], policy["same_tokens"], policy["same_mel"])


def e2e_gates(tf: Mapping[str, Any], st: Mapping[str, Any], sm: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The LLM (teacher forced), flow (FP32's tokens) and vocoder (FP32's mel) gates from their measurements."""
    out = []
    conf, n = tf.get("top1_confident"), tf["confident_steps"]
    if not tf["finite"]:
        out.append({"gate": "llm-top1", "pass": False, "detail": "logits not finite"})
    elif conf is None:  # the logit error exceeds every margin: nothing shows the LLM keeps FP32's choices
        out.append({"gate": "llm-top1", "pass": False,
                    "detail": f"no step of {tf['steps']} has a margin above {tf['margin_threshold']} nats"})
    else:
        out.append({"gate": "llm-top1", "pass": conf >= TOP1_MIN,
                    "detail": f"top-1 {conf} on {n} of {tf['steps']} steps (margin above {tf['margin_threshold']} "
                              f"nats); {tf['top1']} on all steps"})
    kl = tf.get("kl_mean")
    out.append({"gate": "llm-kl", "pass": kl is not None and kl <= KL_MAX_NATS,
                "detail": f"mean KL {kl} nats (max {tf.get('kl_max')})" if kl is not None else "logits not finite"})
    sq = st.get("flow_mel_sqnr_db")
    out.append({"gate": "flow-mel", "pass": bool(st["mel_finite"]) and sq is not None and sq >= FLOW_MEL_SQNR_MIN_DB,
                "detail": f"mel SQNR {sq} dB" if st["mel_finite"] else "mel not finite"})
    corr = sm.get("log_mel_correlation")
    out.append({"gate": "vocoder", "pass": bool(sm["finite"]) and corr is not None and
                corr >= VOCODER_LOG_MEL_CORR_MIN,
                "detail": f"log-mel correlation {corr}" if sm["finite"] else "audio not finite"})
    return out


def totals(policy: Mapping[str, Any]) -> dict[str, Any]:
    graphs = [g for c in policy["components"] for g in c["graphs"]]
    unity = [g["unity_weight_bytes"] for g in graphs]
    return {"bytes": sum(g["bytes"] for g in graphs),
            "unity_weight_bytes": None if any(u is None for u in unity) else sum(unity)}


def recommend(policies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The passing Sentis policy with the fewest bytes of weights in Unity memory (onnxruntime-only policies are
    never recommended: a Unity host cannot load them). Among policies that tie there, the build's default
    (precision.DEFAULT_POLICY) when it is one of them, so the report and `build` agree unless the numbers say
    otherwise; then the smallest on disk."""
    from packager.build.precision import DEFAULT_POLICY
    from packager.verbs.report.render import size

    passing = [p for p in policies if p["verdict"] == "pass" and runtime_of(p["name"]) == "sentis"
               and p["totals"]["unity_weight_bytes"] is not None]
    if not passing:
        return {"policy": None, "reason": "no Sentis policy meets every gate", "passing": []}
    best = min(passing, key=lambda p: (p["totals"]["unity_weight_bytes"], p["name"] != DEFAULT_POLICY,
                                       p["totals"]["bytes"]))
    weights = size(best["totals"]["unity_weight_bytes"])
    tied = [p for p in passing if p is not best
            and p["totals"]["unity_weight_bytes"] == best["totals"]["unity_weight_bytes"]]
    default = next((p for p in passing if p["name"] == DEFAULT_POLICY), None)
    if len(passing) == 1:
        reason = f"the only policy that meets every gate ({weights} of weights in Unity memory)"
    else:
        reason = (f"the smallest in Unity memory ({weights} of weights) of the {len(passing)} policies that meet "
                  "every gate")
        if tied and best["name"] == DEFAULT_POLICY:
            reason += (", as small there as " + ", ".join(p["name"] for p in tied) + ", and the build's default ("
                       + size(best["totals"]["bytes"]) + " on disk against " + ", ".join(size(p["totals"]["bytes"])
                                                                                for p in tied) + ")")
        elif tied:
            reason += (", as small there as " + ", ".join(p["name"] for p in tied) + " and the smallest on disk ("
                       + size(best["totals"]["bytes"]) + " against " + ", ".join(size(p["totals"]["bytes"])
                                                                           for p in tied) + ")")
    if default is not None and best is not default:  # say how it relates to what `build` does without --precision
        saved = default["totals"]["unity_weight_bytes"] - best["totals"]["unity_weight_bytes"]
        reason += (f"; the build's default ({DEFAULT_POLICY}) meets every gate too and takes {size(saved)} more "
                   "in Unity memory")
    return {"policy": best["name"], "reason": reason, "passing": [p["name"] for p in passing]}


# --- the search ----------------------------------------------------------------------------------------------------
# Every gate judges one component on FP32's input (its graphs on FP32's golden inputs; the LLM fed FP32's tokens, the
# flow FP32's tokens, the vocoder FP32's mel), so a component's verdict under one precision does not depend on the
# others' precisions and the measured policies already hold every component's verdict at every precision they used.
# Within a component the graphs are judged together by its end-to-end gate, so a graph taken below its component's
# precision (its own gates passed there) is a guess the searched bundle has to confirm.
GATE_COMPONENT = {g["id"]: g["component"] for g in GATES if "component" in g}


def _graph_failures(g: Mapping[str, Any], target: str) -> list[str]:
    failed = [] if g["sentis"][target]["importable"] else [f"{g['name']}: sentis-import"]
    return failed + [f"{g['name']}.{msg}" for e in g["errors"] for ok, msg in [output_gate(e)] if not ok]


def component_verdicts(policy: Mapping[str, Any], target: str) -> dict[str, dict[str, Any]]:
    """Per component of a measured policy: its precision, bytes, and the gates it passes (each graph's own gates and
    the end-to-end gate of that component) with what failed."""
    e2e = {g["gate"]: g for g in policy["gates"] if g["gate"] in GATE_COMPONENT}
    out = {}
    for c in policy["components"]:
        failed = [f for g in c["graphs"] for f in _graph_failures(g, target)]
        failed += [f"{gid}: {r['detail']}" for gid, r in e2e.items() if GATE_COMPONENT[gid] == c["name"]
                   and not r["pass"]]
        unity = [g["unity_weight_bytes"] for g in c["graphs"]]
        out[c["name"]] = {"precision": c["precision"], "pass": not failed, "failed": failed,
                          "unity_weight_bytes": None if any(u is None for u in unity) else sum(unity),
                          "bytes": sum(g["bytes"] for g in c["graphs"])}
    return out


def _weighed(policies: Sequence[Mapping[str, Any]], target: str):
    """(component, precision) and (component, graph, precision) -> bytes, pass, what failed, measured in: a
    precision passes only where every policy that used it passed."""
    comps: dict[str, dict[str, dict[str, Any]]] = {}
    graphs: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for p in policies:
        for comp, v in component_verdicts(p, target).items():
            seen = comps.setdefault(comp, {}).setdefault(v["precision"], {**v, "measured_in": []})
            seen["measured_in"].append(p["name"])
            if not v["pass"]:
                seen.update({k: v[k] for k in ("pass", "failed")})
        for c in p["components"]:
            for g in c["graphs"]:
                failed = _graph_failures(g, target)
                seen = graphs.setdefault((c["name"], g["name"]), {}).setdefault(c["precision"], {
                    "pass": True, "failed": [], "unity_weight_bytes": g["unity_weight_bytes"], "bytes": g["bytes"],
                    "measured_in": []})
                seen["measured_in"].append(p["name"])
                if failed:
                    seen.update({"pass": False, "failed": failed})
    return comps, graphs


def search(policies: Sequence[Mapping[str, Any]], target: str, recommended: Mapping[str, str]) -> dict[str, Any]:
    """Per component, the precision with the fewest bytes of weights in Unity memory that passes that component's
    gates, among those the Sentis policies measured (the component's declared precision on a tie, then the smaller
    on disk); then per graph of it, a precision with fewer bytes in Unity where that graph passed its own gates.
    ``precisions``: the JSON policy (component -> precision, or {"precision", "graphs"}); ``same_as``: a measured
    policy with exactly these precisions (then nothing new needs building)."""
    sentis = [p for p in policies if runtime_of(p["name"]) == "sentis" and p["name"] != SEARCHED]
    comps, graphs = _weighed(sentis, target)
    chosen: dict[str, Any] = {}
    for comp, by in comps.items():
        ok = [(prec, v) for prec, v in by.items() if v["pass"] and v["unity_weight_bytes"] is not None]
        if not ok:
            return {"precisions": None, "same_as": None, "components": mark_chosen(_rows(comps, graphs), {}),
                    "reason": f"no measured precision of {comp} passes its gates"}
        prec = min(ok, key=lambda pv: (pv[1]["unity_weight_bytes"], pv[0] != recommended.get(comp),
                                       pv[1]["bytes"]))[0]
        own = {}
        for (c, graph), gby in graphs.items():
            if c != comp or prec not in gby or gby[prec]["unity_weight_bytes"] is None:
                continue
            cheaper = [(q, v) for q, v in gby.items() if q != prec and v["pass"] and v["unity_weight_bytes"] is not None
                       and v["unity_weight_bytes"] < gby[prec]["unity_weight_bytes"]]
            if cheaper:
                own[graph] = min(cheaper, key=lambda qv: (qv[1]["unity_weight_bytes"], qv[1]["bytes"]))[0]
        # every graph of it at one other precision is that precision for the whole component, measured and not
        # chosen: keep the graphs that save the most, as long as one graph stays at the component's precision
        varying = [g for (c, g), gby in graphs.items() if c == comp and _varies(gby)]
        while own and all(g in own for g in varying):
            del own[min(own, key=lambda g: graphs[(comp, g)][prec]["unity_weight_bytes"]
                        - graphs[(comp, g)][own[g]]["unity_weight_bytes"])]
        chosen[comp] = P.ComponentPolicy(prec, (), tuple(sorted(own.items()))).to_entry()
    return settled(sentis, _rows(comps, graphs), chosen)


def settled(policies: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]], precisions: Mapping[str, Any],
            note: str = "") -> dict[str, Any]:
    """The search's result for ``precisions``: the measured Sentis policy with exactly these precisions, if any
    (then nothing new needs building), its reason (``note`` appended), and the rows marked with what is chosen."""
    same = next((p["name"] for p in policies if runtime_of(p["name"]) == "sentis" and p["name"] != SEARCHED
                 and p["precisions"] == precisions), None)
    return {"precisions": dict(precisions), "same_as": same, "components": mark_chosen(rows, precisions),
            "reason": (f"the same precisions as {same}" if same else "a combination no fixed policy has") + note}


def without_graphs(found: Mapping[str, Any], components: Sequence[str]) -> dict[str, Any] | None:
    """The search's precisions with the per-graph choices of ``components`` dropped (their end-to-end gate failed
    with them); None when there were none to drop."""
    prec = dict(found["precisions"])
    dropped = [c for c in components if isinstance(prec.get(c), dict)]
    if not dropped:
        return None
    for c in dropped:
        prec[c] = prec[c]["precision"]
    return prec


def mark_chosen(rows: Sequence[Mapping[str, Any]], precisions: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The search's rows with ``chosen`` set from ``precisions`` (after a retry changed them)."""
    policies = {c: P.component_policy(Path(f"{SEARCHED}.json"), c, v) for c, v in precisions.items()}
    out = []
    for r in rows:
        pol = policies.get(r["component"])
        at = None if pol is None else pol.for_graph(r["graph"]).precision if r["graph"] else pol.precision
        out.append({**r, "chosen": at == r["precision"]})
    return out


def _rows(comps, graphs) -> list[dict[str, Any]]:
    """Every component x precision weighed, then, for a component with more than one graph whose bytes a precision
    changes, every graph x precision (``chosen``: mark_chosen)."""
    def row(comp: str, graph: str | None, q: str, v: Mapping[str, Any]) -> dict[str, Any]:
        return {"component": comp, "graph": graph, "precision": q,
                **{k: v[k] for k in ("pass", "failed", "unity_weight_bytes", "bytes", "measured_in")}}

    def ordered(by: Mapping[str, Any]):
        return sorted(by.items(), key=lambda kv: P.PRECISIONS.index(kv[0]))

    out = []
    for comp, by in comps.items():
        out += [row(comp, None, q, v) for q, v in ordered(by)]
        varying = [(graph, gby) for (c, graph), gby in graphs.items() if c == comp and _varies(gby)]
        if len(varying) > 1:  # with one graph to choose for (a DSP graph's bytes never change), the rows above say it
            out += [row(comp, graph, q, v) for graph, gby in varying for q, v in ordered(gby)]
    return out


def _varies(by_precision: Mapping[str, Mapping[str, Any]]) -> bool:
    return len({v["unity_weight_bytes"] for v in by_precision.values()}) > 1


def searched_plan(precisions: Mapping[str, Any], recommended: Mapping[str, str]) -> P.PrecisionPlan:
    """The build plan of the search's JSON policy (read as `build --precision searched.json` reads it)."""
    return P.PrecisionPlan(SEARCHED, {c: P.component_policy(Path(f"{SEARCHED}.json"), c, precisions[c])
                                      for c in recommended}, dict(recommended))


def phases(policies: Sequence[Mapping[str, Any]], found: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """PHASES with their verdicts (``found``: the search; where it chose a measured policy, its phase is that one's)."""
    by = {p["name"]: p for p in policies}
    out = []
    for i, ph in enumerate(PHASES, 1):
        if SEARCHED in ph["policies"] and SEARCHED not in by and found and found.get("same_as"):
            ph = {**ph, "policies": [found["same_as"]]}
        ran = [n for n in ph["policies"] if n in by]
        verdicts = {n: by[n]["verdict"] for n in ran}
        verdict = "not run" if not ran else "pass" if all(v == "pass" for v in verdicts.values()) else "fail"
        failed = {n: [g["gate"] for g in by[n]["gates"] if not g["pass"]] for n in ran}
        out.append({"index": i, "title": ph["title"], "question": ph["question"], "policies": ph["policies"],
                    "verdict": verdict, "policy_verdicts": verdicts, "failed_gates": failed})
    return out


Log = Callable[[str], None]
