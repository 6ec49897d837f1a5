"""``python -m packager unity-install`` (packager/verbs/unity_install.py) and the Unity project files.

Fast cases use the hand-made vector bundle (tests/csharp/core_vectors.py); one end-to-end case builds the real tiny
bundle (llm + campplus, a few seconds), installs it into a copy of unity_project/ and loads it with the C# runtime
under mono exactly as the EditMode tests do (minus Sentis, which needs Unity).
"""
from __future__ import annotations

import json
import re
import shutil
import os
import subprocess
from pathlib import Path

import pytest

from packager.build import registry
from packager.cli import main
from packager.contract.errors import PackagerError
from packager.verbs.unity_install import install_bundle
from tests.csharp.core_vectors import mini_bundle

REPO = Path(__file__).resolve().parents[2]
UNITY = REPO / "unity_project"
PACKAGE = "com.example.vectors"


def _project(tmp: Path) -> Path:
    """A copy of the repo's Unity project skeleton (settings + package manifest; Assets are not needed here)."""
    p = tmp / "proj"
    (p / "ProjectSettings").mkdir(parents=True)
    (p / "Packages").mkdir()
    shutil.copy(UNITY / "ProjectSettings" / "ProjectVersion.txt", p / "ProjectSettings")
    shutil.copy(UNITY / "Packages" / "manifest.json", p / "Packages")
    return p


def _bundle(tmp: Path) -> Path:
    b = tmp / "bundle"
    b.mkdir()
    mini_bundle(b)
    (b / "package.json").write_text(json.dumps({"name": PACKAGE, "version": "0.1.0"}))
    (b / "README.md").write_text("# vectors\n")
    return b


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_install_copies_the_bundle_as_an_embedded_package(tmp_path: Path) -> None:
    bundle, project = _bundle(tmp_path), _project(tmp_path)
    before = _tree(project)
    dest = install_bundle(bundle, project)
    assert dest == (project / "Packages" / PACKAGE).resolve()
    assert _tree(dest) == _tree(bundle)  # byte-identical, layout kept (Models/, Data/, Golden~/)
    assert (dest / "Golden~" / "demo" / "enc" / "case0" / "in.x.npy").is_file()
    after = _tree(project)
    assert {k: v for k, v in after.items() if not k.startswith(f"Packages/{PACKAGE}/")} == before  # nothing else
    assert sorted(p.name for p in (project / "Packages").iterdir()) == sorted(["manifest.json", PACKAGE])


def test_reinstall_needs_force_and_replaces_stale_files(tmp_path: Path) -> None:
    bundle, project = _bundle(tmp_path), _project(tmp_path)
    dest = install_bundle(bundle, project)
    (dest / "Models" / "stale.onnx").write_bytes(b"old")
    with pytest.raises(PackagerError, match="already installed.*--force"):
        install_bundle(bundle, project)
    install_bundle(bundle, project, force=True)
    assert not (dest / "Models" / "stale.onnx").exists()
    assert not [p for p in (project / "Packages").iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_force_never_deletes_a_foreign_folder(tmp_path: Path) -> None:
    bundle, project = _bundle(tmp_path), _project(tmp_path)
    foreign = project / "Packages" / PACKAGE
    foreign.mkdir()
    (foreign / "mine.txt").write_text("user data")
    with pytest.raises(PackagerError, match="not an installed bundle"):
        install_bundle(bundle, project, force=True)
    assert (foreign / "mine.txt").read_text() == "user data"


@pytest.mark.parametrize("tamper,match", [
    (lambda b: (b / "Golden~/demo/enc/case0/out.y.npy").write_bytes(
        (b / "Golden~/demo/enc/case0/out.y.npy").read_bytes()[:-1] + b"\x01"), "sha256"),
    (lambda b: (b / "Models/step.onnx").write_bytes(b"short"), "wrong size"),
    (lambda b: (b / "Data/noise.npy.bytes").unlink(), "missing"),
    (lambda b: (b / "package.json").write_text('{"name": "com.other.pkg"}'), "package.json name"),
    (lambda b: (b / "manifest.json").write_text((b / "manifest.json").read_text().replace(
        '"Models/enc.onnx"', '"../enc.onnx"')), "schema"),
    (lambda b: (b / "manifest.json").write_text("{"), "not valid JSON"),
])
def test_broken_bundles_are_refused_before_anything_is_written(tmp_path: Path, tamper, match: str) -> None:
    bundle, project = _bundle(tmp_path), _project(tmp_path)
    tamper(bundle)
    with pytest.raises(PackagerError, match=match):
        install_bundle(bundle, project)
    assert sorted(p.name for p in (project / "Packages").iterdir()) == ["manifest.json"]


def test_symlinks_in_a_bundle_are_refused(tmp_path: Path) -> None:
    bundle, project = _bundle(tmp_path), _project(tmp_path)
    (tmp_path / "outside.txt").write_text("secret")
    (bundle / "Models" / "link.txt").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(PackagerError, match="symlink"):
        install_bundle(bundle, project)
    assert sorted(p.name for p in (project / "Packages").iterdir()) == ["manifest.json"]


def test_project_checks(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    with pytest.raises(PackagerError, match="not a Unity project"):
        install_bundle(bundle, tmp_path / "nowhere")
    project = _project(tmp_path)
    (project / "Packages" / "manifest.json").write_text(json.dumps({"dependencies": {"com.unity.sentis": "2.1.3"}}))
    with pytest.raises(PackagerError, match="com.unity.sentis.*com.unity.ai.inference"):
        install_bundle(bundle, project)


def test_cli_verb_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bundle, project = _bundle(tmp_path), _project(tmp_path)
    assert main(["unity-install", str(bundle), "--project", str(project)]) == 0
    out = capsys.readouterr().out
    assert f"installed {PACKAGE} (2 graphs, 3 golden cases" in out and "-runTests -testPlatform EditMode" in out
    assert main(["unity-install", str(bundle), "--project", str(project)]) == 2
    assert "already installed" in capsys.readouterr().err
    assert main(["unity-install", str(bundle), "--project", str(project), "--force"]) == 0


def test_unity_project_files() -> None:
    version = (UNITY / "ProjectSettings" / "ProjectVersion.txt").read_text()
    m = re.search(r"m_EditorVersion: (\d+\.\d+\.\d+[A-Za-z]?\d+)", version)  # GameCI's parser
    assert m and m.group(1).startswith("6000.0."), version
    deps = json.loads((UNITY / "Packages" / "manifest.json").read_text())["dependencies"]
    assert re.fullmatch(r"2\.4\.\d+", deps["com.unity.ai.inference"]) and "com.unity.test-framework" in deps
    assert "com.unity.sentis" not in deps  # one .onnx importer only
    runtime = json.loads((UNITY / "Assets/CosyVoice3/Runtime/CosyVoice3.Runtime.asmdef").read_text())
    sentis = json.loads((UNITY / "Assets/CosyVoice3/Runtime/Inference/CosyVoice3.Inference.asmdef").read_text())
    tests = json.loads((UNITY / "Assets/CosyVoice3/Tests/Editor/CosyVoice3.Tests.Editor.asmdef").read_text())
    assert runtime["noEngineReferences"] and runtime["references"] == []  # the layering: tests/csharp/test_assemblies.py
    assert "Unity.InferenceEngine" in sentis["references"] and runtime["name"] in tests["references"]
    assert tests["includePlatforms"] == ["Editor"] and tests["precompiledReferences"] == ["nunit.framework.dll"]
    assert tests["defineConstraints"] == ["UNITY_INCLUDE_TESTS"]
    for asm in (sentis, tests):
        assert {"name": "com.unity.sentis", "expression": "2.1.0", "define": "COSY_SENTIS"} in asm["versionDefines"]
    workflow = (REPO / ".github" / "workflows" / "unity-tests.yml").read_text()
    for needle in ("game-ci/unity-test-runner@v4", "secrets.UNITY_LICENSE", "testMode: editmode",
                   "unity-install", "actions/upload-artifact", "projectPath: unity_project"):
        assert needle in workflow, needle
    doc = (REPO / "docs" / "unity.md").read_text()
    assert ("Unity -batchmode -nographics -projectPath unity_project -runTests -testPlatform EditMode "
            "-testResults results.xml -logFile -") in doc
    for code in ("| `0` |", "| `2` |", "| `3` |"):
        assert code in doc, code


@pytest.fixture(scope="module")
def llm_campplus_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "bundle"
    names = [n for n in ("campplus", "llm") if n in registry.names()]
    assert main(["build", "--out", str(out), "--components", ",".join(names)]) == 0
    return out


def test_real_tiny_bundle_installs_and_loads_in_csharp(llm_campplus_bundle: Path, tmp_path: Path) -> None:
    from tests.csharp.test_core import CORE_CS, TESTS_CS, _diagnostics, _mcs, _tool

    project = _project(tmp_path)
    manifest = json.loads((llm_campplus_bundle / "manifest.json").read_text())
    dest = install_bundle(llm_campplus_bundle, project)
    assert dest.name == manifest["bundle"]["package"]
    for c in manifest["components"]:
        for g in c["graphs"]:
            assert (dest / g["file"]).is_file() and g["file"].startswith("Models/") and g["file"].endswith(".onnx")
            for case in g["goldens"]:
                assert all(t["file"].startswith("Golden~/") for t in case["inputs"] + case["outputs"])
    exe = tmp_path / "tests.exe"
    proc = _mcs([f"-out:{exe}", str(REPO / "tests" / "csharp" / "stubs" / "NUnit.cs"), *map(str, CORE_CS), *map(str, TESTS_CS)])
    assert proc.returncode == 0 and not _diagnostics(proc), proc.stdout
    run = subprocess.run([_tool("mono"), str(exe), "--filter", "RealBundle"], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "COSY_REAL_BUNDLE": str(dest)})
    assert run.returncode == 0 and "1 passed, 0 failed" in run.stdout, run.stdout + run.stderr
    graphs = sum(len(c["graphs"]) for c in manifest["components"])
    assert f"{graphs} graphs" in run.stdout, run.stdout


def test_install_with_a_voice_writes_a_speak_golden(tiny_bundle: Path, tmp_path: Path) -> None:
    """`unity-install --voice`: the pack under Voices~/, and a speak golden that is tts.speak's output."""
    import numpy as np

    from packager.runtime import tts
    from packager.frontend import voicepack
    from packager.runtime.pipeline import Pipeline
    from packager.verbs.unity_install import SPEAK_SETTINGS, SPEAK_TEXT
    from tests.conftest import run_cli
    from tests.speech import espeak_wav

    wav = espeak_wav(tmp_path / "ref.wav", "The quick brown fox jumps over the lazy dog.")
    voice = tmp_path / "fox.voice"
    code, _, err = run_cli("voice", tiny_bundle, "--wav", wav, "--transcript",
                           "The quick brown fox jumps over the lazy dog.", "--out", voice)
    assert code == 0, err
    project = _project(tmp_path)
    code, out, err = run_cli("unity-install", tiny_bundle, "--project", project, "--voice", voice)
    assert code == 0, err
    assert "voices: fox.voice" in out
    dest = project / "Packages" / json.loads((tiny_bundle / "manifest.json").read_text())["bundle"]["package"]
    assert _tree(dest / "Voices~" / "fox.voice") == _tree(voice)
    golden = dest / "Golden~" / "speak" / "fox"
    meta = json.loads((golden / "speak.json").read_text())
    assert meta["format"] == "cosyvoice3-speak-golden" and meta["text"] == SPEAK_TEXT and meta["settings"] == SPEAK_SETTINGS
    speech = np.load(golden / "speech.npy")
    pack = voicepack.load(voice)
    want = tts.speak(Pipeline.open(tiny_bundle), pack, SPEAK_TEXT, sampling="greedy", seed=0, stream=True,
                     use_wetext=False)
    assert np.array_equal(speech, want.speech.reshape(1, -1)) and meta["chunks"] == want.chunks
    assert len(meta["chunks"]) >= 2 and np.abs(speech).max() > 0
    for e in meta["arrays"]:
        data = (golden / f"{e['name']}.npy").read_bytes()
        assert len(data) == e["bytes"] and __import__("hashlib").sha256(data).hexdigest() == e["sha256"]
    # the same install again is byte-identical (determinism), and a voice of another model is refused up front
    again = _project(tmp_path / "again")
    assert run_cli("unity-install", tiny_bundle, "--project", again, "--voice", voice)[0] == 0
    assert _tree(again / "Packages") == _tree(project / "Packages")
    other = tmp_path / "other.voice"
    shutil.copytree(voice, other)
    vj = json.loads((other / "voice.json").read_text())
    vj["model"]["model_id"] = "0" * 64
    (other / "voice.json").write_text(json.dumps(vj))
    third = _project(tmp_path / "third")
    code, _, err = run_cli("unity-install", tiny_bundle, "--project", third, "--voice", other)
    assert code == 2 and "another model" in err and "Traceback" not in err
    assert list((third / "Packages").iterdir()) == [third / "Packages" / "manifest.json"]  # nothing written


def test_next_steps_name_the_runtime_testables_and_player_build(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """unity-install ends with what to do next in that project, skipping steps already done there."""
    from packager.verbs.unity_install import COSYVOICE_RUNTIME, RUNTIME_REPO_PATH, next_steps
    pkg = json.loads((REPO / RUNTIME_REPO_PATH / "package.json").read_text(encoding="utf-8"))
    assert pkg["name"] == COSYVOICE_RUNTIME  # one name for the runtime package, here and in the UPM manifest
    bundle, project = _bundle(tmp_path), _project(tmp_path)
    assert main(["unity-install", str(bundle), "--project", str(project)]) == 0
    out = capsys.readouterr().out
    assert f'"{COSYVOICE_RUNTIME}": "<this repository\'s git URL>?path={RUNTIME_REPO_PATH}"' in out
    assert f'"testables": ["{COSYVOICE_RUNTIME}", "{PACKAGE}"]' in out
    assert "Bake Models for Player Build" in out and f"Assets/StreamingAssets/{PACKAGE}/" in out
    # once the project has both, those two steps are not printed again
    m = json.loads((project / "Packages" / "manifest.json").read_text())
    m["dependencies"][COSYVOICE_RUNTIME] = "https://example.org/repo.git?path=" + RUNTIME_REPO_PATH
    m["testables"] = [COSYVOICE_RUNTIME, PACKAGE]
    (project / "Packages" / "manifest.json").write_text(json.dumps(m))
    steps = "\n".join(next_steps(project, PACKAGE))
    assert "add the runtime" not in steps and "testables" not in steps and "1. in the Editor" in steps
