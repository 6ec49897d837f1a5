"""The report's pictures (matplotlib, Agg backend, PNG) and its page, rendered from ``report.json`` alone.

Every number on the page goes through :func:`fmt` from a value in report.json (tests/verbs/test_report.py checks that),
so the page never says anything the JSON does not. The page is self-contained: inline CSS, no script, no network;
it references only the PNG and WAV files next to it.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

PNG_META = {"Software": None}  # no matplotlib version in the files: the same data gives the same bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=100, metadata=PNG_META)
    _plt().close(fig)


def waveform_png(path: Path, samples: np.ndarray, sample_rate: int, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 1.8))
    t = np.arange(samples.size) / float(sample_rate)
    ax.plot(t, samples, linewidth=0.5, color="#1f5f99")
    ax.set_xlim(0, max(t[-1] if t.size else 0.0, 1e-3))
    ax.set_ylim(-1.0, 1.0)
    ax.set_xlabel("s")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _spectrogram_png(path: Path, image: np.ndarray, frames: int, hop_s: float, title: str, cmap: str, vmin: float,
                     vmax: float, label: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 2.2))
    im = ax.imshow(image, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                   extent=(0, frames * hop_s, 0, image.shape[0]))
    ax.set_xlabel("s")
    ax.set_ylabel("mel bin")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label=label)
    fig.tight_layout()
    _save(fig, path)


def mel_png(path: Path, mel: np.ndarray, hop_s: float, title: str, vmin: float, vmax: float) -> None:
    _spectrogram_png(path, mel, mel.shape[1], hop_s, title, "magma", vmin, vmax, "ln mel")


def diff_png(path: Path, mel: np.ndarray, ref: np.ndarray, hop_s: float, title: str) -> None:
    n = min(mel.shape[1], ref.shape[1])
    d = mel[:, :n] - ref[:, :n]
    lim = float(max(np.max(np.abs(d)) if d.size else 0.0, 1e-6))
    _spectrogram_png(path, d if d.size else np.zeros((mel.shape[0], 1)), max(n, 1), hop_s, title, "RdBu_r", -lim,
                     lim, "ln mel difference")


def chart_png(path: Path, policies: Sequence[Mapping[str, Any]], gate_db: float) -> None:
    """Weights in Unity memory (x) against the flow mel SQNR with FP32's tokens (y); the baseline drawn at the top,
    onnxruntime-only policies (no Unity bytes) at their file size, hollow."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    pts = [(p["name"], p["totals"]["unity_weight_bytes"] or p["totals"]["bytes"],
            (p.get("same_tokens") or {}).get("flow_mel_sqnr_db"), p["verdict"], p.get("runtime") == "onnxruntime")
           for p in policies]
    finite = [y for _, _, y, _, _ in pts if y is not None]
    top = max(finite + [gate_db]) + 10.0  # the baseline (no SQNR against itself) above everything
    for i, (name, x, y, verdict, ort) in enumerate(pts):
        yy = top if y is None else y
        color = "#2a7d2a" if verdict == "pass" else "#b22222"
        ax.scatter([x / 1e6], [yy], s=40, color="none" if ort else color, edgecolors=color, zorder=3)
        ax.annotate(name + (" (baseline)" if y is None else " (onnxruntime only)" if ort else ""), (x / 1e6, yy),
                    textcoords="offset points", xytext=(5, 4 if i % 2 == 0 else -11), fontsize=8)
    ax.axhline(gate_db, color="#888888", linewidth=0.8, linestyle="--")
    ax.set_xlabel("weights in Unity memory (MB; onnxruntime-only policies: file MB)")
    ax.set_ylabel("flow mel SQNR, FP32's tokens (dB)")
    ax.set_title("bytes against error (green: meets every gate; dashed: the flow-mel gate)", fontsize=9)
    ax.grid(True, linewidth=0.3)
    fig.tight_layout()
    _save(fig, path)


# --- the page --------------------------------------------------------------------------------------------------------
def fmt(v: Any) -> str:
    """How the page writes a number from report.json."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        return f"{v:.4g}"
    return str(v)


def size(n: Any) -> str:
    """A byte count from report.json as the page writes it: GB or MB with one decimal (kB below 0.1 MB)."""
    if n is None:
        return "–"
    n = int(n)
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f} GB"
    if n >= 100_000:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.1f} kB"


def _e(v: Any) -> str:
    return html.escape(fmt(v))


def _s(n: Any) -> str:
    return html.escape(size(n))


def _verdict(v: str) -> str:
    cls = {"pass": "ok", "fail": "bad"}.get(v, "na")
    return f'<span class="{cls}">{html.escape(v)}</span>'


def _pf(ok: bool) -> str:
    return _verdict("pass" if ok else "fail")


CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#1b1b1b;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:12.5px}
th,td{border:1px solid #d0d0d0;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f2f2f2}td.l,th.l{text-align:left}td:not(.l){white-space:nowrap}
.ok{color:#1d6b1d;font-weight:600}.bad{color:#a61b1b;font-weight:600}.na{color:#777}
.rec{background:#eef7ee;border:1px solid #9c9;padding:10px 14px;font-size:15px}
.ort{background:#fff7e6;border:1px solid #e0b860;padding:4px 16px 12px;margin-top:32px}
.note{color:#555;font-size:12.5px}
pre{background:#f4f4f4;padding:8px 10px;overflow-x:auto;font-size:13px}
img{max-width:100%;display:block;margin:4px 0}figure{margin:8px 0 18px}figcaption{color:#555;font-size:12px}
code{background:#f4f4f4;padding:0 3px}
"""


def _gate(p: Mapping[str, Any], gid: str) -> Mapping[str, Any]:
    return next(x for x in p["gates"] if x["gate"] == gid)


def _sentis_cell(p: Mapping[str, Any]) -> str:
    sr = p.get("sentis_real") or {}
    if not sr.get("ran"):
        return '<td class="l na">–</td>'
    return (f"<td>{_e(sr['cases_passed'])} of {_e(sr['cases'])} cases, worst {_e(sr['worst_max_abs'])}"
            f"{'' if sr['graphs_imported'] == sr['graphs'] else ', not all graphs imported'}</td>")


def _summary_table(pols: Sequence[Mapping[str, Any]], sentis: bool) -> list[str]:
    out = ["<table><tr><th class=l>policy</th><th class=l>precisions</th><th>weights in Unity</th><th>on disk</th>"
           "<th>LLM top-1 above margin (steps)</th><th>LLM top-1 all steps</th><th>KL nats</th>"
           "<th>flow mel SQNR dB</th><th>vocoder log-mel correlation</th>" + ("<th>real Sentis</th>" if sentis else "")
           + "<th>verdict</th></tr>"]
    for p in pols:
        tf, st, sm = p.get("teacher_forced"), p.get("same_tokens"), p.get("same_mel")
        precs = ", ".join(f"{c} {v}" for c, v in p["precisions"].items())
        if tf is None:
            llm = "<td class=l colspan=5>the baseline: every other policy is fed its tokens and mel</td>"
        else:
            llm = (f"<td>{_e(tf['top1_confident'])} ({_e(tf['confident_steps'])} steps)</td><td>{_e(tf['top1'])}</td>"
                   f"<td>{_e(tf['kl_mean'])}</td><td>{_e(st['flow_mel_sqnr_db'])}</td>"
                   f"<td>{_e(sm['log_mel_correlation'])}</td>")
        out.append(f"<tr><td class=l><code>{_e(p['name'])}</code></td><td class=l>{html.escape(precs)}</td>"
                   f"<td>{_s(p['totals']['unity_weight_bytes'])}</td><td>{_s(p['totals']['bytes'])}</td>{llm}"
                   + (_sentis_cell(p) if sentis else "") + f"<td>{_verdict(p['verdict'])}</td></tr>")
    out.append("</table>")
    return out


def _search_section(found: Mapping[str, Any] | None) -> list[str]:
    if not found:
        return ["<p class=note>Not run (--no-search).</p>"]
    out = ["<p>Every gate judges one component on FP32's input, so a component's verdict at a precision does not "
           "depend on the others': the policies above already measured each component at each precision they use. "
           "Per component, the precision with the fewest bytes in Unity memory that passes that component's own "
           "gates is chosen; then, per graph of it, a precision with fewer bytes in Unity where that graph passed "
           "its own gates (the component's end-to-end gate judges its graphs together, so that part is a guess); "
           "the combination is then measured as one bundle"
           + (" (<code>searched</code> above)" if found.get("precisions") and not found.get("same_as") else
              f" (here the mix of <code>{_e(found['same_as'])}</code>, measured above)" if found.get("same_as")
              else "") + ".</p>",
           "<table><tr><th class=l>component</th><th class=l>graph</th><th class=l>precision</th>"
           "<th>weights in Unity</th><th>on disk</th><th class=l>its gates</th><th class=l>measured in</th>"
           "<th class=l>chosen</th></tr>"]
    for r in found["components"]:
        why = "" if r["pass"] else "<br><span class=note>" + html.escape("; ".join(r["failed"])) + "</span>"
        out.append(f"<tr><td class=l>{_e(r['component'])}</td>"
                   f"<td class=l>{_e(r['graph']) if r['graph'] else 'all its graphs'}</td>"
                   f"<td class=l>{_e(r['precision'])}</td>"
                   f"<td>{_s(r['unity_weight_bytes'])}</td><td>{_s(r['bytes'])}</td>"
                   f"<td class=l>{_pf(r['pass'])}{why}</td><td class=l>{_e(', '.join(r['measured_in']))}</td>"
                   f"<td class=l>{'<b>chosen</b>' if r['chosen'] else ''}</td></tr>")
    out.append("</table>")
    for t in found.get("tried", []):
        out.append(f"<p>First tried: <code>{html.escape(json.dumps(t['precisions']))}</code>: "
                   f"{_verdict(t['verdict'])} ({_e('; '.join(t['failed']))}); measured again without the per-graph "
                   "choices of the components that failed.</p>")
    if found.get("precisions"):
        verdict = _verdict(found["verdict"]) if found.get("verdict") else ""
        out.append(f"<p>Result: <code>{html.escape(json.dumps(found['precisions']))}</code>: {_e(found['reason'])}"
                   + (f"; as one bundle: {verdict}" if verdict else "") + ".</p>")
    else:
        out.append(f"<p>No result: {_e(found['reason'])}.</p>")
    out.append("<p class=note>Why per graph and not per layer: Unity's ModelQuantizer quantizes every weight of a "
               "model it is given, with no exclusion list, so the unit of precision in Unity is a graph. A weight of "
               "a quantized layer (MatMul, Conv, Gather) kept float32 inside an fp16 graph makes Unity keep that "
               "whole graph float32 in memory (<code>unity_quantization: none</code>): it saves download bytes, "
               "never Unity memory. The layer groups that live in graphs of their own (the LLM's embedding tables, "
               "the flow's frontend) are searched one by one.</p>")
    return out


def _gates_table(doc: Mapping[str, Any], pols: Sequence[Mapping[str, Any]]) -> list[str]:
    out = ["<table><tr><th class=l>gate</th><th class=l>stage</th><th>threshold</th><th class=l>rule</th>"
           + "".join(f"<th>{_e(p['name'])}</th>" for p in pols) + "</tr>"]
    for g in doc["gates"]:
        cells = []
        for p in pols:
            r = _gate(p, g["id"])
            cells.append(f'<td class=l>{_pf(r["pass"])}<br><span class=note>{html.escape(r["detail"])}</span></td>')
        out.append(f"<tr><td class=l>{_e(g['id'])}</td><td class=l>{_e(g['stage'])}</td>"
                   f"<td>{_e(g.get('threshold'))}</td><td class=l>{_e(g['description'])}</td>{''.join(cells)}</tr>")
    out.append("<tr><th class=l colspan=4>verdict</th>" + "".join(f"<td>{_verdict(p['verdict'])}</td>" for p in pols)
               + "</tr></table>")
    return out


def _llm_tables(pols: Sequence[Mapping[str, Any]]) -> list[str]:
    fed = [p for p in pols if p.get("teacher_forced")]
    if not fed:
        return []
    out = ["<table><tr><th class=l>policy</th><th>steps</th><th>top-1 all steps</th><th>flips</th>"
           "<th>margin threshold nats</th><th>steps above it</th><th>flips above it</th><th>top-1 above it</th>"
           "<th>logit error, 99.9th percentile</th><th>logit error, max</th><th>KL mean nats</th>"
           "<th>KL max nats</th></tr>"]
    for p in fed:
        t = p["teacher_forced"]
        out.append(f"<tr><td class=l><code>{_e(p['name'])}</code></td><td>{_e(t['steps'])}</td><td>{_e(t['top1'])}</td>"
                   f"<td>{_e(t['flips'])}</td><td>{_e(t['margin_threshold'])}</td><td>{_e(t['confident_steps'])}</td>"
                   f"<td>{_e(t['flips_counted'])}</td><td>{_e(t['top1_confident'])}</td>"
                   f"<td>{_e(t['logit_error_quantile'])}</td><td>{_e(t['logit_error_max'])}</td>"
                   f"<td>{_e(t['kl_mean'])}</td><td>{_e(t['kl_max'])}</td></tr>")
    out.append("</table>")
    hist = fed[0]["teacher_forced"]["margin_histogram"]
    out.append("<h3>FP32's margins: how decided the LLM is at each step, and where each policy flips</h3>"
               "<table><tr><th class=l>FP32 margin (nats)</th><th>FP32 steps</th>"
               + "".join(f"<th>{_e(p['name'])}: flips (steps counted)</th>" for p in fed) + "</tr>")
    for i, b in enumerate(hist):
        rng = (f"{_e(b['lo'])} to {_e(b['hi'])}" if b["hi"] is not None else f"{_e(b['lo'])} and more")
        cells = "".join(f"<td>{_e(p['teacher_forced']['margin_histogram'][i]['flips'])} "
                        f"({_e(p['teacher_forced']['margin_histogram'][i]['counted'])})</td>" for p in fed)
        out.append(f"<tr><td class=l>{rng}</td><td>{_e(b['steps'])}</td>{cells}</tr>")
    out.append("</table><p class=note>A flip at a step below a policy's margin threshold is a near-tie: counted in "
               "the all-steps top-1, not in the gate. Above it, a flip means the error moved the decisive logits "
               "further than all but the rarest logits move.</p>")
    return out


def _fed_table(doc: Mapping[str, Any], pols: Sequence[Mapping[str, Any]]) -> list[str]:
    fed = [p for p in pols if p.get("same_tokens")]
    if not fed:
        return []
    out = ["<table><tr><th class=l rowspan=2>policy</th><th colspan=3>the flow, fed FP32's tokens</th>"
           "<th colspan=4>the vocoder, fed FP32's mel</th><th colspan=4>flow and vocoder, fed FP32's tokens "
           "(information)</th></tr><tr><th>mel SQNR dB</th><th>mel distance dB</th><th>mel MCD dB</th>"
           "<th>log-mel correlation</th><th>mel distance dB</th><th>MCD dB</th><th>waveform SQNR dB</th>"
           "<th>log-mel correlation</th><th>mel distance dB</th><th>MCD dB</th><th>waveform SQNR dB</th></tr>"]
    for p in fed:
        st, sm = p["same_tokens"], p["same_mel"]
        out.append(f"<tr><td class=l><code>{_e(p['name'])}</code></td><td>{_e(st['flow_mel_sqnr_db'])}</td>"
                   f"<td>{_e(st['flow_mel_distance_db'])}</td><td>{_e(st['flow_mel_mcd_db'])}</td>"
                   f"<td>{_e(sm['log_mel_correlation'])}</td><td>{_e(sm['log_mel_distance_db'])}</td>"
                   f"<td>{_e(sm['mcd_db'])}</td><td>{_e(sm['sqnr_db'])}</td><td>{_e(st['log_mel_correlation'])}</td>"
                   f"<td>{_e(st['log_mel_distance_db'])}</td><td>{_e(st['mcd_db'])}</td><td>{_e(st['sqnr_db'])}</td>"
                   "</tr>")
    out.append("</table>")
    sens = (doc.get("reference") or {}).get("vocoder_sensitivity")
    if sens:
        out.append(f"<p class=note>How much the vocoder itself amplifies a change of its input (a property of the "
                   f"model, not of precision): FP32's vocoder on FP32's mel plus white noise at "
                   f"{_e(sens['mel_sqnr_db'])} dB SQNR gives a log-mel correlation of "
                   f"{_e(sens['log_mel_correlation'])}, an MCD of {_e(sens['mcd_db'])} dB and a waveform SQNR of "
                   f"{_e(sens['sqnr_db'])} dB against FP32's audio. Where that is far from FP32's, the last "
                   "columns measure the vocoder's sensitivity rather than the precision, which is why the flow and "
                   "the vocoder are gated each on FP32's input.</p>")
    return out


def _graph_tables(pols: Sequence[Mapping[str, Any]]) -> list[str]:
    out = []
    for p in pols:
        t = p["totals"]
        out.append(f"<h3><code>{_e(p['name'])}</code>: {_s(t['bytes'])} on disk, {_s(t['unity_weight_bytes'])} of "
                   f"weights in Unity memory, built in {_e(p['build_seconds'])} s</h3>")
        out.append("<table><tr><th class=l>component</th><th class=l>graph</th><th class=l>precision</th>"
                   "<th>on disk</th><th>in Unity</th><th>load ms</th><th>run ms</th><th class=l>Sentis</th>"
                   "<th class=l>output</th><th>max abs</th><th>relative</th><th>SQNR dB</th><th>cosine</th>"
                   "<th>top-1</th><th>KL</th><th>finite</th></tr>")
        for c in p["components"]:
            for g in c["graphs"]:
                errs = g["errors"] or [{}]
                sentis = "; ".join(f"{t}: " + ("imports" if v["importable"] else "fails " + ", ".join(v["errors"]))
                                   for t, v in g["sentis"].items())
                for i, e in enumerate(errs):
                    head = (f"<td class=l>{_e(c['name'])}</td><td class=l>{_e(g['name'])}</td>"
                            f"<td class=l>{_e(g['precision'])}</td><td>{_s(g['bytes'])}</td>"
                            f"<td>{_s(g['unity_weight_bytes'])}</td><td>{_e(g['load_ms'])}</td>"
                            f"<td>{_e(g['run_ms'])}</td><td class=l>{html.escape(sentis)}</td>") if i == 0 else \
                        "<td colspan=8></td>"
                    out.append(f"<tr>{head}<td class=l>{_e(e.get('output'))}</td><td>{_e(e.get('max_abs'))}</td>"
                               f"<td>{_e(e.get('relative'))}</td><td>{_e(e.get('sqnr_db'))}</td>"
                               f"<td>{_e(e.get('cosine'))}</td><td>{_e(e.get('top1'))}</td><td>{_e(e.get('kl'))}</td>"
                               f"<td>{_e(e.get('finite'))}</td></tr>")
        out.append("</table>")
    return out


def _free_table(pols: Sequence[Mapping[str, Any]]) -> list[str]:
    out = ["<table><tr><th class=l>policy</th><th>audio s</th><th>synthesis s</th><th>tokens</th>"
           "<th>token agreement</th><th>flow mel SQNR dB (same token count)</th><th>waveform SQNR dB</th>"
           "<th>MCD dB</th><th>peak</th><th>finite</th></tr>"]
    for p in pols:
        e = p["e2e"]
        out.append(f"<tr><td class=l><code>{_e(p['name'])}</code></td><td>{_e(e['seconds_of_audio'])}</td>"
                   f"<td>{_e(e['synth_seconds'])}</td><td>{_e(e['tokens'])}</td><td>{_e(e.get('token_agreement'))}</td>"
                   f"<td>{_e(e.get('flow_mel_sqnr_db'))}</td>"
                   f"<td>{_e(e.get('sqnr_db'))}</td><td>{_e(e.get('mcd_db'))}</td><td>{_e(e['peak'])}</td>"
                   f"<td>{_e(e['finite'])}</td></tr>")
    out.append("</table>")
    return out


def _listen(pols: Sequence[Mapping[str, Any]]) -> list[str]:
    out = []
    for p in pols:
        e = p["e2e"]
        out.append(f"<h3><code>{_e(p['name'])}</code>: {_e(p['description'])}</h3>")
        out.append(f'<p>Decoding on its own: <audio controls preload="none" src="{html.escape(e["wav"])}"></audio>')
        if p.get("same_tokens"):
            out.append(f'<br>Its flow and vocoder on FP32\'s tokens: <audio controls preload="none" '
                       f'src="{html.escape(p["same_tokens"]["wav"])}"></audio>')
        out.append("</p>")
        for key, caption in (("waveform", "waveform (decoding on its own)"),
                             ("mel", "log-mel spectrogram (decoding on its own)"),
                             ("diff", "the flow's mel minus FP32's, both fed FP32's tokens")):
            if key in e["png"]:
                out.append(f'<figure><img src="{html.escape(e["png"][key])}" alt="{caption}">'
                           f"<figcaption>{caption}</figcaption></figure>")
    return out


def page(doc: Mapping[str, Any]) -> str:
    s = doc["settings"]
    src = doc["source"]
    pols = doc["policies"]
    unity = [p for p in pols if p.get("runtime", "sentis") == "sentis"]
    ort = [p for p in pols if p.get("runtime") == "onnxruntime"]
    sentis = doc.get("sentis_real") or {}
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>CosyVoice3 precision report</title>", f"<style>{CSS}</style></head><body>",
           "<h1>CosyVoice3 precision report</h1>",
           f"<p>Model <code>{_e(src.get('name') or src.get('preset'))}</code> ({_e(src['kind'])}, model_id "
           f"<code>{_e(src['model_id'])}</code>), target <code>{_e(doc['target'])}</code>. Policies: "
           + ", ".join(f"<code>{_e(p['name'])}</code>" for p in unity)
           + ("; for onnxruntime hosts only: " + ", ".join(f"<code>{_e(p['name'])}</code>" for p in ort) if ort else "")
           + f". Synthesis: {_e(s['input'])}, {_e(s['sampling'])} sampling, seed {_e(s['seed'])}. Made in "
           f"{_e(doc['timing']['seconds'])} s with a peak memory of {_s(doc['timing']['peak_rss_bytes'])}.</p>"]
    rec = doc["recommendation"]
    if rec["policy"] is not None:
        cmd = rec["command"]
        out.append(f'<div class="rec"><p><b>Recommendation:</b> <code>{_e(rec["policy"])}</code>: '
                   f'{_e(rec["reason"])}. Build it with:</p><pre>{html.escape(cmd["line"])}</pre>')
        if cmd["precision_file"]:
            pf = cmd["precision_file"]
            out.append(f"<p>where <code>{_e(pf['name'])}</code> holds:</p><pre>"
                       f"{html.escape(json.dumps(pf['content']))}</pre>")
        out.append("</div>")
    else:
        out.append(f'<p class="rec"><b>Recommendation:</b> none: {_e(rec["reason"])}.</p>')

    out.append("<h2>How to read this page</h2><table><tr><th class=l>number</th><th class=l>what it says</th>"
               "<th class=l>better</th></tr>")
    for m in doc.get("metrics", []):
        out.append(f"<tr><td class=l>{_e(m['name'])}</td><td class=l>{_e(m['meaning'])}</td>"
                   f"<td class=l>{_e(m['better'])}</td></tr>")
    out.append("</table><p class=note>Every policy's LLM is fed the tokens FP32 chose and its flow and vocoder the "
               "tokens and mel FP32 made, so each part is compared on the same input: with nearly flat logits one "
               "near-tie changes every later token of a free-running decode, which says nothing about precision. "
               "The gates decide the verdict; the recommendation is the passing Sentis policy with the fewest "
               "bytes of weights in Unity memory.</p>")

    out.append("<h2>Policies Unity can load (Sentis)</h2>")
    out += _summary_table(unity, bool(sentis.get("available")))
    out.append(f"<p class=note>Real Sentis: {_e(sentis.get('note', 'not recorded'))}.</p>")
    out.append("<h3>The search: each component at its cheapest passing precision</h3>")
    out += _search_section(doc.get("search"))
    out.append("<h3>Gates</h3>")
    out += _gates_table(doc, unity)
    out.append("<h3>The LLM, fed FP32's tokens</h3>")
    out += _llm_tables(unity)
    out.append("<h3>The flow and the vocoder, fed FP32's tokens and mel</h3>")
    out += _fed_table(doc, unity)
    out.append(f'<figure><img src="{html.escape(doc["chart"])}" alt="bytes against error">'
               "<figcaption>Weights in Unity memory against the flow mel SQNR with FP32's tokens (onnxruntime-only "
               "policies hollow, at their file size).</figcaption></figure>")

    out.append("<h3>Phased validation</h3>")
    for ph in doc["phases"]:
        out.append(f"<p><b>{_e(ph['index'])}. {_e(ph['title'])}: {_verdict(ph['verdict'])}</b> "
                   f"{_e(ph['question'])} Policies: "
                   + ", ".join(f"<code>{_e(n)}</code> {_verdict(ph['policy_verdicts'].get(n, 'not run'))}"
                               + (f" (failed: {_e(', '.join(ph['failed_gates'][n]))})"
                                  if ph['failed_gates'].get(n) else "") for n in ph["policies"]) + ".</p>")

    out.append("<h3>Decoding on its own (information)</h3>")
    out += _free_table(unity)

    out.append("<h3>Listen</h3>")
    out += _listen(unity)
    out.append("<h3>Per component and graph</h3>")
    out += _graph_tables(unity)
    out.append("<p class=note>Errors: each graph run on the FP32 bundle's golden inputs, against its golden outputs "
               "(the PyTorch reference), worst over the cases; reduced-precision graphs run as Unity computes them "
               "(the Sentis view). Load: opening an onnxruntime session; run: the median golden case.</p>")

    if ort:
        out.append('<section class="ort" id="onnxruntime-only"><h2>For onnxruntime hosts only: Sentis cannot import '
                   "these</h2><p>Measured the same way for hosts that run the graphs with onnxruntime (not Unity): "
                   "the onnxruntime integer operators these policies use are not in Sentis's operator set, so they "
                   "fail the sentis-import gate by construction and are never recommended.</p>")
        out += _summary_table(ort, False)
        out += _gates_table(doc, ort)
        for p in ort:
            other = [g["gate"] for g in p["gates"] if not g["pass"] and g["gate"] != "sentis-import"]
            out.append(f"<p><code>{_e(p['name'])}</code> on an onnxruntime host, every gate but sentis-import: "
                       + (_verdict("pass") if not other else _verdict("fail") + " (" + _e(", ".join(other)) + ")")
                       + ".</p>")
        out += _llm_tables(ort)
        out += _fed_table({}, ort)
        out += _free_table(ort)
        out += _listen(ort)
        out += _graph_tables(ort)
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
