"""What ``packager report`` measures: one bundle per precision policy, each graph against the FP32 bundle's goldens,
one synthesis per policy against the FP32 one, the gates, the recommendation and the phased validation.

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

from packager import bundle as B
from packager import precision as P
from packager import sentis_rules as R
from packager.errors import PackagerError
from packager.tolerance import metric

POLICIES = ("fp32", "recommended", "fp16", "uint8", "int8-partial")
BASELINE = "fp32"
DESCRIPTIONS = {
    "fp32": "every graph as exported (the baseline)",
    "recommended": "each component's declared precision (the build's default)",
    "fp16": "fp16 weights in every graph",
    "uint8": "the fp32 files, weights quantized to uint8 by Unity after import (ModelQuantizer)",
    "int8-partial": "onnxruntime int8 weights where a component is recommended fp16, fp32 elsewhere "
                    "(not importable by Sentis: for onnxruntime hosts)",
}

# The gates (design/precision_tooling.md, stages 0, 2 and 3 of the validation plan; thresholds are its proposals).
TOP1_MIN = 0.99
COSINE_MIN = 0.999
COMPONENT_SQNR_MIN_DB = 30.0
E2E_SQNR_MIN_DB = 30.0
GATES = [
    {"id": "sentis-import", "stage": "structure",
     "description": "every graph passes the Sentis pre-flight check for the build target"},
    {"id": "finite", "stage": "component", "description": "every float output is finite on every golden case"},
    {"id": "top1", "stage": "component", "threshold": TOP1_MIN,
     "description": "outputs that declare top-1 (logits): top-1 agreement with FP32 at least the threshold"},
    {"id": "cosine", "stage": "component", "threshold": COSINE_MIN,
     "description": "outputs that declare cosine (embeddings, the DiT velocity): cosine with FP32 at least the "
                    "threshold"},
    {"id": "sqnr", "stage": "component", "threshold": COMPONENT_SQNR_MIN_DB,
     "description": "every other float output: SQNR against FP32 at least the threshold (dB)"},
    {"id": "e2e-tokens", "stage": "end to end",
     "description": "greedy speech tokens identical to FP32's for the same text, voice and seed"},
    {"id": "e2e-sqnr", "stage": "end to end", "threshold": E2E_SQNR_MIN_DB,
     "description": "waveform SQNR against FP32 at least the threshold (dB), over the shared length"},
]
PHASES = [
    {"title": "FP32 baseline", "policies": ["fp32"],
     "question": "Do the exported graphs reproduce the PyTorch reference, and does Sentis import them?"},
    {"title": "FP16 LLM and flow", "policies": ["recommended"],
     "question": "Does halving the LLM and flow weights (HiFT kept FP32) keep tokens and audio?"},
    {"title": "HiFT FP16 trial", "policies": ["fp16"],
     "question": "Can the vocoder, the most sensitive component, go FP16 too?"},
    {"title": "Partial INT8", "policies": ["uint8", "int8-partial"],
     "question": "What do 8-bit weights cost: Unity's uint8 quantization, and onnxruntime int8 where FP16 holds?"},
]
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
    from packager import preflight

    out = {}
    for target, findings in preflight.check_file_for(path, tuple(R.TARGETS), graph).items():
        errors = sorted({f.rule for f in findings if f.severity == "error"})
        out[target] = {"importable": not errors, "errors": errors,
                       "warnings": sum(1 for f in findings if f.severity != "error")}
    return out


def measure_graph(bundle: Path, comp: str, graph: Mapping[str, Any], fp32_cases: Sequence[tuple[dict, dict]],
                  fp32_graph: Mapping[str, Any], threads: int) -> dict[str, Any]:
    from packager.onnx_utils import run_onnx, session
    from packager.sentis_numerics import target_model, unity_weight_bytes

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
    from packager import audio, features

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


@dataclass
class Utterance:
    samples: np.ndarray
    sample_rate: int
    tokens: np.ndarray
    seconds: float  # synthesis wall time
    mel: np.ndarray  # the flow's output mel [80, T], text pieces concatenated


def synthesize(bundle: Path, manifest: Mapping[str, Any], voice, text: str | None, case: Mapping | None, seed: int,
               threads: int) -> Utterance:
    """One greedy synthesis over the bundle: ``text`` in ``voice`` (the text pipeline), or a frontend ``case``."""
    from packager import synth

    t0 = time.perf_counter()
    p = synth.Pipeline.open(bundle, threads=threads, manifest=dict(manifest), one_component_at_a_time=True)
    sr = int(p.constants["hift"]["sample_rate"])
    if voice is not None:
        from packager import tts

        sp = tts.speak(p, voice, text, sampling="greedy", seed=seed, manifest=manifest)
        samples, tokens = sp.speech, np.concatenate([np.asarray(t).reshape(-1) for t in sp.speech_tokens])
        mel = np.concatenate([np.asarray(m)[0] for m in sp.mels], axis=1)
    else:
        out = synth.synthesize(p, dict(case), sampling="greedy", seed=seed)
        samples, tokens = np.asarray(out["speech"]).reshape(-1), np.asarray(out["speech_tokens"]).reshape(-1)
        mel = np.asarray(out["mel"])[0]
    return Utterance(np.asarray(samples, np.float32).reshape(-1), sr, tokens.astype(np.int64),
                     time.perf_counter() - t0, np.asarray(mel, np.float32))


def e2e_metrics(u: Utterance, ref: Utterance | None) -> dict[str, Any]:
    d: dict[str, Any] = {"samples": int(u.samples.size), "seconds_of_audio": _r(u.samples.size / u.sample_rate, 4),
                         "synth_seconds": _r(u.seconds, 4), "tokens": int(u.tokens.size),
                         "finite": bool(np.isfinite(u.samples).all()),
                         "peak": _r(float(np.max(np.abs(u.samples))) if u.samples.size else 0.0, 4)}
    if ref is not None:
        d["token_agreement"] = _r(token_agreement(u.tokens, ref.tokens), 4)
        d["sqnr_db"] = _r(waveform_sqnr(u.samples, ref.samples), 4)
        if u.mel.shape == ref.mel.shape:  # same tokens: the flow's mel, before the vocoder (report only, no gate)
            d["flow_mel_sqnr_db"] = _r(waveform_sqnr(u.mel.reshape(-1), ref.mel.reshape(-1)), 4)
        d["mcd_db"] = _r(mel_cepstral_distortion(log_mel(u.samples, u.sample_rate),
                                                 log_mel(ref.samples, ref.sample_rate)), 4)
    return d


# --- verdicts ------------------------------------------------------------------------------------------------------
def policy_gates(policy: Mapping[str, Any], target: str, is_baseline: bool) -> list[dict[str, Any]]:
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
    e2e = policy.get("e2e") or {}
    if is_baseline:
        out += [{"gate": "e2e-tokens", "pass": True, "detail": "the baseline"},
                {"gate": "e2e-sqnr", "pass": e2e.get("finite", True), "detail": "the baseline"}]
    else:
        agree = e2e.get("token_agreement")
        out.append({"gate": "e2e-tokens", "pass": agree == 1.0, "detail": f"agreement {agree}"})
        sq = e2e.get("sqnr_db")
        out.append({"gate": "e2e-sqnr", "pass": bool(e2e.get("finite")) and sq is not None and sq >= E2E_SQNR_MIN_DB,
                    "detail": f"SQNR {sq} dB"})
    return out


def totals(policy: Mapping[str, Any]) -> dict[str, Any]:
    graphs = [g for c in policy["components"] for g in c["graphs"]]
    unity = [g["unity_weight_bytes"] for g in graphs]
    return {"bytes": sum(g["bytes"] for g in graphs),
            "unity_weight_bytes": None if any(u is None for u in unity) else sum(unity)}


def recommend(policies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    passing = [p for p in policies if p["verdict"] == "pass" and p["totals"]["unity_weight_bytes"] is not None]
    if not passing:
        return {"policy": None, "reason": "no policy meets every gate"}
    best = min(passing, key=lambda p: (p["totals"]["unity_weight_bytes"], p["totals"]["bytes"]))
    return {"policy": best["name"],
            "reason": (f"the smallest in Unity memory ({best['totals']['unity_weight_bytes']} bytes of weights) of "
                       f"the {len(passing)} policies that meet every gate" if len(passing) > 1 else
                       f"the only policy that meets every gate ({best['totals']['unity_weight_bytes']} bytes of "
                       "weights in Unity memory)"),
            "passing": [p["name"] for p in passing]}


def phases(policies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    by = {p["name"]: p for p in policies}
    out = []
    for i, ph in enumerate(PHASES, 1):
        ran = [n for n in ph["policies"] if n in by]
        verdicts = {n: by[n]["verdict"] for n in ran}
        verdict = "not run" if not ran else "pass" if all(v == "pass" for v in verdicts.values()) else "fail"
        failed = {n: [g["gate"] for g in by[n]["gates"] if not g["pass"]] for n in ran}
        out.append({"index": i, "title": ph["title"], "question": ph["question"], "policies": ph["policies"],
                    "verdict": verdict, "policy_verdicts": verdicts, "failed_gates": failed})
    return out


Log = Callable[[str], None]
