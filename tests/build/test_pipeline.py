"""The build pipeline: one pass per graph (each graph file written once), progress output, the disk-space check."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from packager.ui import progress as P
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]

# The packager CLI under an audit hook that counts every open-for-writing of a file under Models/.
AUDITED = r"""
import atexit, collections, json, runpy, sys
writes = collections.Counter()
def hook(event, args):
    if event == "open" and args[1] is not None and "/Models/" in str(args[0]):
        mode = args[1]
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(mode, int) and mode & 3):
            writes[str(args[0]).split("/Models/", 1)[1]] += 1
sys.addaudithook(hook)
atexit.register(lambda: print("WRITES " + json.dumps(writes), file=sys.stderr))
sys.argv = ["packager"] + sys.argv[1:]
runpy.run_module("packager", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("precision", ["recommended", "fp32"])
def test_each_graph_file_is_written_once(tmp_path: Path, precision: str) -> None:
    out = tmp_path / "b"
    proc = subprocess.run([sys.executable, "-c", AUDITED, "build", "--out", str(out), "--precision", precision,
                           "--progress", "plain"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    writes = json.loads(proc.stderr.strip().splitlines()[-1].split(" ", 1)[1])
    manifest = json.loads((out / "manifest.json").read_text())
    files = {g["file"].split("/", 1)[1] for c in manifest["components"] for g in c["graphs"]}
    assert set(writes) == files and set(writes.values()) == {1}, writes
    # progress lines carry the time since the start
    lines = [l for l in proc.stderr.splitlines() if not l.startswith("WRITES ")]
    assert lines and all(l.startswith("[") and " s] " in l for l in lines), lines[:5]
    assert any("llm_step: exported" in l for l in lines)


def test_quiet_build_prints_nothing(tmp_path: Path) -> None:
    """--quiet means errors only: no progress, no size table, no summary (the bundle is still complete)."""
    code, out, err = run_cli("build", "--components", "campplus", "--out", tmp_path / "b", "--quiet")
    assert code == 0 and err == "" and out == "", (out, err)
    assert (tmp_path / "b" / "manifest.json").is_file()


def test_not_enough_disk_is_refused_before_writing(tmp_path: Path, monkeypatch, tiny_a_checkpoint: Path) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 ** 9, 10 ** 9 - 1000, 1000))
    out = tmp_path / "b"
    code, _, err = run_cli("build", "--checkpoint", tiny_a_checkpoint, "--out", out)
    assert code == 2 and "not enough free disk space" in err and "bytes free" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".b.tmp-*"))


# ---- the progress display --------------------------------------------------------------------------------------

def test_plain_mode_beats_while_a_step_runs(monkeypatch) -> None:
    monkeypatch.setattr(P, "HEARTBEAT_S", 0.3)
    monkeypatch.setattr(P, "FIRST_BEAT_S", 0.1)
    monkeypatch.setattr(P, "REFRESH_S", 0.05)
    buf = io.StringIO()
    prog = P.Progress("plain", stream=buf)
    try:
        with prog.step("quick"):
            pass
        with prog.step("export llm_step") as st:
            time.sleep(0.9)
            st.advance(1)
        with prog.step("goldens", total=4, unit="cases") as st:
            st.advance(2)
            time.sleep(0.3)
        prog.line("done")
    finally:
        prog.close()
    lines = buf.getvalue().splitlines()
    beats = [l for l in lines if "... export llm_step" in l]
    assert len(beats) >= 3, lines  # first beat after 0.1 s, then every 0.3 s
    assert not any("quick" in l for l in lines)  # a step shorter than the first beat prints nothing
    assert any("goldens: 2/4 cases" in l for l in lines), lines
    assert lines[-1].endswith("done") and lines[-1].startswith("[")


def test_quiet_mode_prints_nothing() -> None:
    buf = io.StringIO()
    prog = P.Progress("quiet", stream=buf)
    with prog.step("x", total=3) as st:
        st.advance(3)
    prog.line("hello")
    prog.close()
    assert buf.getvalue() == ""


def test_tty_mode_draws_a_bar_and_keeps_result_lines() -> None:
    buf = io.StringIO()
    prog = P.Progress("tty", stream=buf)
    with prog.step("goldens", total=2, unit="cases") as st:
        st.advance(1)
        prog.line("graph finished")
        st.advance(1)
    prog.close()
    text = buf.getvalue()
    assert "goldens" in text and "\r" in text and "graph finished" in text


def test_auto_mode_is_plain_when_not_a_terminal() -> None:
    assert P.Progress("auto", stream=io.StringIO()).mode == "plain"
    with pytest.raises(ValueError):
        P.Progress("fancy")


def test_plain_mode_never_quiet_longer_than_the_heartbeat_across_steps(monkeypatch) -> None:
    """A step that starts just before the previous one's next beat was due still beats HEARTBEAT_S after the last
    line printed (at full size the log must change at least every 10 s)."""
    monkeypatch.setattr(P, "HEARTBEAT_S", 0.4)
    monkeypatch.setattr(P, "FIRST_BEAT_S", 0.3)
    monkeypatch.setattr(P, "REFRESH_S", 0.02)
    buf = io.StringIO()
    prog = P.Progress("plain", stream=buf)
    stamps = []
    try:
        with prog.step("a"):
            time.sleep(0.65)   # beats at 0.3, ends just before its next beat (0.7)
        with prog.step("b"):   # its own first beat would come at 0.95: 0.65 s of silence
            time.sleep(0.5)
    finally:
        prog.close()
    text = buf.getvalue()
    times = [float(l.split("]")[0].strip("[ s")) for l in text.splitlines()]
    assert times and max(b - a for a, b in zip([0.0] + times, times + [1.15])) <= 0.4 + 0.15, text


@pytest.mark.parametrize("precision", ["recommended", "fp32"])
def test_a_failed_fp32_check_fails_the_build(tmp_path: Path, monkeypatch, precision: str) -> None:
    """The check of the exported graph against the torch reference stops the build, naming the graph, whether it runs
    alone (fp32) or beside the conversion (fp16), and nothing is left at --out."""
    from packager.build.stages import check as check_stage
    from packager.contract.tolerance import Verdict

    monkeypatch.setattr(check_stage, "compare", lambda name, got, want, tol: Verdict(name, False, max_abs=1.0))
    out = tmp_path / "b"
    code, _, err = run_cli("build", "--components", "campplus", "--precision", precision, "--out", out, "--quiet")
    assert code != 0 and "onnxruntime does not reproduce the reference" in err and "campplus_fbank" in err, err
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".b.tmp-*"))
