"""`packager report` on the tiny preset: the page, its files and numbers, the browser, bad input (issue #16)."""
from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile

from packager import report as RP
from packager.bundle import schema_errors
from packager.report import measure as M
from packager.report.render import fmt
from tests.conftest import run_cli
from tests.speech import espeak_wav

TRANSCRIPT = "Every policy reads the same words, in the same voice."
TEXT = "Numbers, pictures and sound: the cost of each precision, measured."


@pytest.fixture(scope="module")
def voice(tiny_bundle: Path, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("report-voice")
    wav = espeak_wav(d / "ref.wav", TRANSCRIPT)
    out = d / "reader.voice"
    code, _, err = run_cli("voice", tiny_bundle, "--wav", wav, "--transcript", TRANSCRIPT, "--out", out)
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def report_dir(voice: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "precision"
    code, stdout, err = run_cli("report", "--preset", "tiny", "--voice", voice, "--text", TEXT, "--out", out,
                                "--threads", "1", "--progress", "plain")
    assert code == 0, err
    assert "recommendation" in stdout
    assert "[report] policy 5/5: int8-partial" in err  # progress, one line per policy
    return out


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("style", "script"):
            self._skip += 1
        for key in ("src", "href"):
            if a.get(key):
                self.refs.append(a[key])

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def _page(report_dir: Path) -> _Page:
    p = _Page()
    p.feed((report_dir / "index.html").read_text(encoding="utf-8"))
    return p


NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])")


def _json_numbers(doc) -> set[str]:
    """Every number of report.json as the page writes it, and every number inside its strings."""
    found: set[str] = set()

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                found.update(NUMBER.findall(k))  # keys too: target names such as ie-2.4
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, bool) or v is None:
            return
        elif isinstance(v, (int, float)):
            found.add(fmt(v))
        elif isinstance(v, str):
            found.update(NUMBER.findall(v))
    walk(doc)
    return found


def test_report_json_matches_its_schema_and_covers_every_policy(report_dir: Path) -> None:
    doc = json.loads((report_dir / "report.json").read_text())
    assert schema_errors(doc, RP.SCHEMA_PATH) == []
    assert [p["name"] for p in doc["policies"]] == list(M.POLICIES)
    by = {p["name"]: p for p in doc["policies"]}
    # the precisions each policy built
    assert set(by["fp32"]["precisions"].values()) == {"fp32"}
    assert set(by["uint8"]["precisions"].values()) == {"uint8"}
    assert set(by["int8-partial"]["precisions"].values()) == {"int8", "fp32"}
    assert by["recommended"]["precisions"]["hift"] == "fp32" and by["fp16"]["precisions"]["hift"] == "fp16"
    for p in doc["policies"]:
        graphs = [g for c in p["components"] for g in c["graphs"]]
        assert len(graphs) == 8
        for g in graphs:
            assert g["bytes"] > 0 and g["cases"] >= 1 and g["load_ms"] > 0 and g["run_ms"] > 0
            assert set(g["sentis"]) == {"ie-2.4", "sentis-2.1"}
            assert g["errors"], g["name"]
        if p["name"] == "int8-partial":  # onnxruntime's integer ops: Sentis refuses them, and the report says so
            refused = {g["name"] for g in graphs if not g["sentis"]["ie-2.4"]["importable"]}
            assert "llm_step" in refused and all(g["precision"] == "int8" for g in graphs if g["name"] in refused)
            assert "op-rejected" in next(g for g in graphs if g["name"] == "llm_step")["sentis"]["ie-2.4"]["errors"]
            assert p["totals"]["unity_weight_bytes"] is None and p["verdict"] == "fail"
        else:
            assert all(g["sentis"]["ie-2.4"]["importable"] for g in graphs)
    # fp32 against the reference is near exact; every reduced policy measurably differs
    fp32_errs = [e for c in by["fp32"]["components"] for g in c["graphs"] for e in g["errors"]]
    assert max(e["relative"] for e in fp32_errs) < 1e-3
    assert by["fp16"]["totals"]["bytes"] < 0.8 * by["fp32"]["totals"]["bytes"]
    assert by["uint8"]["totals"]["unity_weight_bytes"] < 0.5 * by["fp32"]["totals"]["unity_weight_bytes"]
    for name in ("recommended", "fp16", "uint8"):
        e = by[name]["e2e"]
        assert {"token_agreement", "sqnr_db", "mcd_db"} <= set(e)
        assert e["sqnr_db"] < M.SQNR_CAP_DB and e["mcd_db"] > 0
    # same tokens: the flow's mel is measured before the vocoder, and fp16 keeps it far closer than the waveform
    rec = by["recommended"]["e2e"]
    assert rec["token_agreement"] == 1.0 and rec["flow_mel_sqnr_db"] > max(40.0, rec["sqnr_db"])
    assert "token_agreement" not in by["fp32"]["e2e"]
    # the gates decide the verdicts and the recommendation: the cheapest passing policy in Unity memory
    for p in doc["policies"]:
        assert [g["gate"] for g in p["gates"]] == [g["id"] for g in doc["gates"]]
        assert p["verdict"] == ("pass" if all(g["pass"] for g in p["gates"]) else "fail")
    assert by["fp32"]["verdict"] == "pass"
    rec = doc["recommendation"]
    passing = [p for p in doc["policies"] if p["verdict"] == "pass"]
    assert rec["policy"] == min(passing, key=lambda p: p["totals"]["unity_weight_bytes"])["name"]
    # HiFT at uint8 is destroyed (its DFT bases are quantized): the report must see it
    uint8_hift = next(g for c in by["uint8"]["components"] for g in c["graphs"] if g["name"] == "hift")
    assert uint8_hift["errors"][0]["sqnr_db"] < M.COMPONENT_SQNR_MIN_DB
    assert by["uint8"]["verdict"] == "fail"
    assert [ph["title"] for ph in doc["phases"]] == ["FP32 baseline", "FP16 LLM and flow", "HiFT FP16 trial",
                                                     "Partial INT8"]
    assert doc["phases"][0]["verdict"] == "pass" and doc["phases"][3]["verdict"] == "fail"


def test_every_file_the_page_references_exists_and_every_number_is_in_the_json(report_dir: Path) -> None:
    page = _page(report_dir)
    assert page.refs
    for ref in page.refs:
        assert "://" not in ref and not ref.startswith("/"), ref  # nothing outside the folder
        assert (report_dir / ref).is_file() and (report_dir / ref).stat().st_size > 0, ref
    doc = json.loads((report_dir / "report.json").read_text())
    known = _json_numbers(doc)
    shown = NUMBER.findall(" ".join(page.text))
    assert len(shown) > 200
    missing = sorted({n for n in shown if n not in known})
    assert not missing, missing[:20]
    pngs = [r for r in page.refs if r.endswith(".png")]
    assert len(pngs) == 1 + 5 * 2 + 4  # the chart; waveform and mel per policy; a difference per non-fp32 policy
    for png in pngs:
        assert (report_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_wavs_decode_and_speak(report_dir: Path) -> None:
    doc = json.loads((report_dir / "report.json").read_text())
    for p in doc["policies"]:
        e = p["e2e"]
        samples, rate = soundfile.read(str(report_dir / e["wav"]), dtype="float32")
        assert rate == e["sample_rate"] == 24000 and samples.size == e["samples"]
        assert samples.size > rate and np.sqrt(np.mean(samples ** 2)) > 1e-3, p["name"]  # not silent


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    return None


def test_the_page_opens_in_a_real_browser_without_errors(report_dir: Path) -> None:
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium installed (apt-get install -y chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    errors, failed = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto((report_dir / "index.html").as_uri(), wait_until="load")
            widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.getAttribute('src'), "
                                                      "i.complete, i.naturalWidth])")
            audio = page.eval_on_selector_all("audio", "a => a.length")
            title = page.title()
        finally:
            browser.close()
    assert not errors and not failed, (errors, failed)
    assert len(widths) == 15 and all(done and w > 0 for _, done, w in widths), widths
    assert audio == 5 and "precision report" in title


def test_bad_input_exits_2_and_leaves_nothing(tmp_path: Path, voice: Path) -> None:
    def report(*extra: str, out: Path | None = None) -> tuple[int, str]:
        out = out or tmp_path / "r"
        code, _, err = run_cli("report", "--preset", "tiny", "--out", out, "--quiet", *extra)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists() and not list(out.parent.glob(f".{out.name}.tmp-*"))
        return code, err

    code, err = report("--policies", "fp32,bf16")
    assert code == 2 and "bf16" in err and "--policies" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, err = report(out=blocker / "report")
    assert code == 2 and "--out" in err
    other = tmp_path / "other.voice"
    shutil.copytree(voice, other)
    meta = json.loads((other / "voice.json").read_text())
    meta["model"]["model_id"] = "0" * 64
    (other / "voice.json").write_text(json.dumps(meta))
    code, err = report("--voice", other)
    assert code == 2 and "another model" in err
    code, err = report("--text", "hello")
    assert code == 2 and "--voice" in err


def test_policy_plans_name_no_component():
    rec = {"a": "fp16", "b": "fp32", "c": "fp16"}
    assert {c: M.plan_for("int8-partial", rec).for_component(c).precision for c in rec} == \
        {"a": "int8", "b": "fp32", "c": "int8"}
    assert {M.plan_for("uint8", rec).for_component(c).precision for c in rec} == {"uint8"}
    assert M.parse_policies("uint8,fp16") == ["fp32", "fp16", "uint8"]


def test_metrics_on_known_signals():
    t = np.arange(24000) / 24000.0
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal(x.size).astype(np.float32) * 0.003
    assert abs(M.waveform_sqnr(x + noise, x) - 10 * np.log10(np.sum(x.astype(np.float64) ** 2)
                                                               / np.sum(noise.astype(np.float64) ** 2))) < 1e-6
    assert M.waveform_sqnr(x, x) == M.SQNR_CAP_DB
    mel = M.log_mel(x, 24000)
    assert M.mel_cepstral_distortion(mel, mel) == 0.0
    assert M.mel_cepstral_distortion(M.log_mel(x + noise * 10, 24000), mel) > \
        M.mel_cepstral_distortion(M.log_mel(x + noise, 24000), mel) > 0
    assert M.token_agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 9])) == 0.5
