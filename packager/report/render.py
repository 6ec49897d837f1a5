"""The report's pictures (matplotlib, Agg backend, PNG) and its page, rendered from ``report.json`` alone.

Every number on the page goes through :func:`fmt` from a value in report.json (tests/test_report.py checks that),
so the page never says anything the JSON does not. The page is self-contained: inline CSS, no script, no network;
it references only the PNG and WAV files next to it.
"""
from __future__ import annotations

import html
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
    """Unity weight bytes (x) against end-to-end waveform SQNR vs FP32 (y); the baseline drawn at the top."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    pts = [(p["name"], p["totals"]["unity_weight_bytes"] or p["totals"]["bytes"], (p.get("e2e") or {}).get("sqnr_db"),
            p["verdict"]) for p in policies]
    finite = [y for _, _, y, _ in pts if y is not None]
    top = max(finite + [gate_db]) + 10.0  # the baseline (no SQNR against itself) above everything
    for i, (name, x, y, verdict) in enumerate(pts):
        yy = top if y is None else y
        ax.scatter([x / 1e6], [yy], s=40, color="#2a7d2a" if verdict == "pass" else "#b22222", zorder=3)
        ax.annotate(name + (" (baseline)" if y is None else ""), (x / 1e6, yy), textcoords="offset points",
                    xytext=(5, 4 if i % 2 == 0 else -11), fontsize=8)  # alternate: equal-size policies overlap
    ax.axhline(gate_db, color="#888888", linewidth=0.8, linestyle="--")
    ax.set_xlabel("weights in Unity memory (MB; onnxruntime-only policies: file MB)")
    ax.set_ylabel("waveform SQNR vs FP32 (dB)")
    ax.set_title("bytes against error (green: meets every gate)", fontsize=9)
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


def _e(v: Any) -> str:
    return html.escape(fmt(v))


def _verdict(v: str) -> str:
    cls = {"pass": "ok", "fail": "bad"}.get(v, "na")
    return f'<span class="{cls}">{html.escape(v)}</span>'


CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#1b1b1b;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:12.5px}
th,td{border:1px solid #d0d0d0;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f2f2f2}td.l,th.l{text-align:left}
.ok{color:#1d6b1d;font-weight:600}.bad{color:#a61b1b;font-weight:600}.na{color:#777}
.rec{background:#eef7ee;border:1px solid #9c9;padding:10px 14px;font-size:15px}
img{max-width:100%;display:block;margin:4px 0}figure{margin:8px 0 18px}figcaption{color:#555;font-size:12px}
code{background:#f4f4f4;padding:0 3px}
"""


def page(doc: Mapping[str, Any]) -> str:
    s = doc["settings"]
    src = doc["source"]
    pols = doc["policies"]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>CosyVoice3 precision report</title>", f"<style>{CSS}</style></head><body>",
           "<h1>CosyVoice3 precision report</h1>",
           f"<p>Model <code>{_e(src.get('name') or src.get('preset'))}</code> ({_e(src['kind'])}, model_id "
           f"<code>{_e(src['model_id'])}</code>), target <code>{_e(doc['target'])}</code>. Policies: "
           + ", ".join(f"<code>{_e(p['name'])}</code>" for p in pols)
           + f". Synthesis: {_e(s['input'])}, {_e(s['sampling'])} sampling, seed {_e(s['seed'])}. Made in "
           f"{_e(doc['timing']['seconds'])} s with a peak RSS of {_e(doc['timing']['peak_rss_bytes'])} bytes.</p>"]
    rec = doc["recommendation"]
    out.append(f'<p class="rec"><b>Recommendation:</b> <code>{_e(rec["policy"])}</code>: {_e(rec["reason"])}.</p>')

    out.append("<h2>Gates</h2><table><tr><th class=l>gate</th><th class=l>stage</th><th>threshold</th>"
               "<th class=l>rule</th>" + "".join(f"<th>{_e(p['name'])}</th>" for p in pols) + "</tr>")
    for g in doc["gates"]:
        cells = []
        for p in pols:
            r = next(x for x in p["gates"] if x["gate"] == g["id"])
            cells.append(f'<td title="{html.escape(r["detail"])}">{_verdict("pass" if r["pass"] else "fail")}</td>')
        out.append(f"<tr><td class=l>{_e(g['id'])}</td><td class=l>{_e(g['stage'])}</td>"
                   f"<td>{_e(g.get('threshold'))}</td><td class=l>{_e(g['description'])}</td>{''.join(cells)}</tr>")
    out.append("<tr><th class=l colspan=4>verdict</th>" + "".join(f"<td>{_verdict(p['verdict'])}</td>" for p in pols)
               + "</tr></table>")

    out.append("<h2>Phased validation</h2>")
    for ph in doc["phases"]:
        out.append(f"<h3>{_e(ph['index'])}. {_e(ph['title'])}: {_verdict(ph['verdict'])}</h3>"
                   f"<p>{_e(ph['question'])} Policies: "
                   + ", ".join(f"<code>{_e(n)}</code> {_verdict(ph['policy_verdicts'].get(n, 'not run'))}"
                               + (f" (failed: {_e(', '.join(ph['failed_gates'][n]))})"
                                  if ph['failed_gates'].get(n) else "") for n in ph["policies"]) + ".</p>")

    out.append("<h2>End to end</h2>")
    out.append(f'<figure><img src="{html.escape(doc["chart"])}" alt="bytes against error">'
               "<figcaption>Weights in Unity memory against the waveform SQNR with FP32.</figcaption></figure>")
    out.append("<table><tr><th class=l>policy</th><th>audio s</th><th>synthesis s</th><th>tokens</th>"
               "<th>token agreement</th><th>flow mel SQNR dB</th><th>waveform SQNR dB</th><th>MCD dB</th><th>peak</th>"
               "<th>finite</th></tr>")
    for p in pols:
        e = p["e2e"]
        out.append(f"<tr><td class=l>{_e(p['name'])}</td><td>{_e(e['seconds_of_audio'])}</td>"
                   f"<td>{_e(e['synth_seconds'])}</td><td>{_e(e['tokens'])}</td><td>{_e(e.get('token_agreement'))}</td>"
                   f"<td>{_e(e.get('flow_mel_sqnr_db'))}</td>"
                   f"<td>{_e(e.get('sqnr_db'))}</td><td>{_e(e.get('mcd_db'))}</td><td>{_e(e['peak'])}</td>"
                   f"<td>{_e(e['finite'])}</td></tr>")
    out.append("</table><p>The flow mel is what the vocoder receives; with the same tokens, a gap between its SQNR and "
               "the waveform's is the vocoder's sensitivity (its sine source integrates F0 into a phase).</p>")
    for p in pols:
        e = p["e2e"]
        out.append(f"<h3><code>{_e(p['name'])}</code>: {_e(p['description'])}</h3>")
        out.append(f'<audio controls preload="none" src="{html.escape(e["wav"])}"></audio>')
        for key, caption in (("waveform", "waveform"), ("mel", "log-mel spectrogram"),
                             ("diff", "log-mel difference against FP32")):
            if key in e["png"]:
                out.append(f'<figure><img src="{html.escape(e["png"][key])}" alt="{caption}">'
                           f"<figcaption>{caption}</figcaption></figure>")

    out.append("<h2>Per component and graph</h2>")
    for p in pols:
        t = p["totals"]
        out.append(f"<h3><code>{_e(p['name'])}</code>: {_e(t['bytes'])} bytes on disk, "
                   f"{_e(t['unity_weight_bytes'])} bytes of weights in Unity memory, built in "
                   f"{_e(p['build_seconds'])} s</h3>")
        out.append("<table><tr><th class=l>component</th><th class=l>graph</th><th class=l>precision</th>"
                   "<th>bytes</th><th>Unity bytes</th><th>load ms</th><th>run ms</th><th class=l>Sentis</th>"
                   "<th class=l>output</th><th>max abs</th><th>relative</th><th>SQNR dB</th><th>cosine</th>"
                   "<th>top-1</th><th>KL</th><th>finite</th></tr>")
        for c in p["components"]:
            for g in c["graphs"]:
                errs = g["errors"] or [{}]
                sentis = "; ".join(f"{t}: " + ("imports" if v["importable"] else "fails " + ", ".join(v["errors"]))
                                   for t, v in g["sentis"].items())
                for i, e in enumerate(errs):
                    head = (f"<td class=l>{_e(c['name'])}</td><td class=l>{_e(g['name'])}</td>"
                            f"<td class=l>{_e(g['precision'])}</td><td>{_e(g['bytes'])}</td>"
                            f"<td>{_e(g['unity_weight_bytes'])}</td><td>{_e(g['load_ms'])}</td>"
                            f"<td>{_e(g['run_ms'])}</td><td class=l>{html.escape(sentis)}</td>") if i == 0 else \
                        "<td colspan=8></td>"
                    out.append(f"<tr>{head}<td class=l>{_e(e.get('output'))}</td><td>{_e(e.get('max_abs'))}</td>"
                               f"<td>{_e(e.get('relative'))}</td><td>{_e(e.get('sqnr_db'))}</td>"
                               f"<td>{_e(e.get('cosine'))}</td><td>{_e(e.get('top1'))}</td><td>{_e(e.get('kl'))}</td>"
                               f"<td>{_e(e.get('finite'))}</td></tr>")
        out.append("</table>")
    out.append("<p>Errors: each graph run on the FP32 bundle's golden inputs, against its golden outputs (the PyTorch "
               "reference), worst over the cases; reduced-precision graphs run as Unity computes them (the Sentis "
               "view). Load: opening an onnxruntime session; run: the median golden case.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
