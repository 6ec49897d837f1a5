"""Our own Unity EditMode tests on real Sentis: the test classes in
unity_project/Assets/CosyVoice3/Tests/Editor/ (BundleGoldenTests, PipelineGoldenTests, SpeakerGoldenTests), compiled
with the Runtime C# against the Unity-compiled Sentis runtime DLL and run by ``tests/sentis_real/run.sh --editmode``
(tests/csharp/harness/Runner.cs as the NUnit runner; AssetDatabase imports an .onnx with Sentis's own ONNX converter, as
ONNXModelImporter does; an unexpected Debug.LogError fails the test, as in Unity's Test Framework).

For each precision policy (fp32, recommended, fp16, uint8) x Sentis version (2.4.1, 2.1.2): the tiny bundle built for
that version's target, a voice pack made from an espeak-ng recording, both installed with ``unity-install --voice``
into a fresh project folder (one bundle per project: every policy's bundle has the same package name), then every
test case must pass, and the runner must have run as many cases per class as the installed bundle defines.

Runs wherever the Sentis DLL repositories are available (MIRROR, or DLL_REPO and PB_REPO, as run.sh reads them;
tests/sentis_real/README.md); CI has none of them and skips with that one reason. Slow: SpeakerGoldenTests speaks a
whole sentence frame by frame on Sentis's CPU kernels running as Mono-JIT'd IL (~9 min per policy on 2.4.1 here).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.sentis_real import matrix

REPO = Path(__file__).resolve().parents[2]
RUN_SH = REPO / "tests" / "sentis_real" / "run.sh"
UNITY = REPO / "unity_project"
TRANSCRIPT = "The quick brown fox jumps over the lazy dog near the river bank."
TEST_CLASSES = ("BundleGoldenTests", "PipelineGoldenTests", "SpeakerGoldenTests")
# run.sh's defaults: per Sentis version, the DLL repository's commit and the Protobuf repository's tag it reads.
DLL_COMMITS = {"2.4": "f109ed229d17d5b650a1403c0df77ed7873a97db", "2.1": "c458ea003331cf7a2c769e286134eefbea8f3fa2"}
PB_TAGS = {"2.4": "2.4.0", "2.1": "2.1.3"}
RUN_TIMEOUT_S = 3600


def _repos(version: str) -> tuple[Path, Path]:
    """The DLL and Protobuf git dirs run.sh would read for ``version`` (DLL_REPO / PB_REPO override MIRROR)."""
    mirror = Path(os.environ.get("MIRROR", ""))
    dll_name, pb_name = matrix.VERSIONS[version][1]
    return (Path(os.environ.get("DLL_REPO") or mirror / dll_name / "repo"),
            Path(os.environ.get("PB_REPO") or mirror / pb_name / "repo"))


def _git_has(repo: Path, rev: str) -> bool:
    return repo.is_dir() and subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{rev}^{{commit}}"],
                                            capture_output=True).returncode == 0


def _unavailable(version: str | None = None) -> str | None:
    """Why the harness cannot run here (``version``: that Sentis version); None when it can."""
    if not os.environ.get("MIRROR") and not (os.environ.get("DLL_REPO") and os.environ.get("PB_REPO")):
        return ("real-Sentis EditMode run needs local git copies of the Sentis DLL repositories: set MIRROR (or "
                "DLL_REPO and PB_REPO), see tests/sentis_real/README.md")
    missing = [t for t in (*matrix.TOOLS, "espeak-ng") if shutil.which(t) is None]
    if missing:
        return f"real-Sentis EditMode run needs {', '.join(missing)} (apt-get install mono-devel git espeak-ng)"
    if version is not None:
        dll, pb = _repos(version)
        if not _git_has(dll, DLL_COMMITS[version]):
            return f"Sentis {version}: {dll} does not hold commit {DLL_COMMITS[version]} (tests/sentis_real/README.md)"
        if not _git_has(pb, PB_TAGS[version]):
            return f"Sentis {version}: {pb} does not hold tag {PB_TAGS[version]} (tests/sentis_real/README.md)"
    return None


pytestmark = [pytest.mark.slow]
if _unavailable():
    pytestmark.append(pytest.mark.skip(reason=_unavailable()))


@pytest.fixture(scope="module")
def ref_wav(tmp_path_factory) -> Path:
    from tests.speech import espeak_wav

    return espeak_wav(tmp_path_factory.mktemp("ref") / "ref.wav", TRANSCRIPT)


@pytest.fixture(scope="module")
def harness_builds(tmp_path_factory) -> dict[str, Path]:
    """One SENTIS_REAL_BUILD folder per Sentis version (DLLs extracted once, the runner compiled per run)."""
    return {v: tmp_path_factory.mktemp(f"sentis_real_build{v}") for v in matrix.VERSIONS}


def _cli(*args: object) -> None:
    from tests.conftest import run_cli

    code, out, err = run_cli(*args)
    assert code == 0, f"packager {' '.join(map(str, args))} failed ({code}):\n{out[-3000:]}\n{err[-3000:]}"


def _project(root: Path, unity_package: str) -> Path:
    """A minimal Unity project folder (what unity-install checks) whose Packages/manifest.json depends on the
    bundle's runtime package at the version the harness runs."""
    project = root / "project"
    (project / "ProjectSettings").mkdir(parents=True)
    (project / "Packages").mkdir()
    shutil.copy(UNITY / "ProjectSettings" / "ProjectVersion.txt", project / "ProjectSettings")
    deps = json.loads((UNITY / "Packages" / "manifest.json").read_text(encoding="utf-8"))["dependencies"]
    deps = {k: v for k, v in deps.items() if k not in ("com.unity.ai.inference", "com.unity.sentis")}
    deps[unity_package] = {"com.unity.ai.inference": "2.4.1", "com.unity.sentis": "2.1.2"}[unity_package]
    (project / "Packages" / "manifest.json").write_text(json.dumps({"dependencies": deps}, indent=2) + "\n")
    return project


def _expected_counts(package_dir: Path) -> dict[str, int]:
    """Test cases per class that the installed bundle defines (what Unity's Test Runner would list)."""
    manifest = json.loads((package_dir / "manifest.json").read_text(encoding="utf-8"))
    goldens = sum(len(g["goldens"]) for c in manifest["components"] for g in c["graphs"])
    pipeline = len((manifest.get("pipeline") or {}).get("goldens", []))
    speak = [d for d in (package_dir / "Golden~" / "speak").iterdir() if (d / "speak.json").is_file()]
    return {"BundleGoldenTests": 1 + goldens, "PipelineGoldenTests": pipeline, "SpeakerGoldenTests": len(speak)}


def run_editmode(version: str, project: Path, build: Path, json_out: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """``run.sh --sentis VERSION --editmode PROJECT --verbose --json JSON_OUT``; (the run, its JSON)."""
    env = {**os.environ, "SENTIS_REAL_BUILD": str(build), "MAIN": str(REPO)}
    proc = subprocess.run(["bash", str(RUN_SH), "--sentis", version, "--editmode", str(project), "--verbose",
                           "--json", str(json_out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert json_out.is_file(), (f"run.sh --editmode wrote no results (exit {proc.returncode}):\n"
                                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc, json.loads(json_out.read_text(encoding="utf-8"))


@pytest.mark.parametrize("version", sorted(matrix.VERSIONS, reverse=True))
@pytest.mark.parametrize("policy", matrix.POLICIES)
def test_editmode_tests_pass_on_real_sentis(policy: str, version: str, ref_wav: Path,
                                            harness_builds: dict[str, Path], tmp_path: Path) -> None:
    why = _unavailable(version)
    if why:
        pytest.skip(why)
    target = matrix.VERSIONS[version][0]
    bundle = matrix.build_bundle(policy, target, tmp_path / "bundle", tmp_path)
    voice = tmp_path / "fox.voice"
    _cli("voice", bundle, "--wav", ref_wav, "--transcript", TRANSCRIPT, "--out", voice)
    unity_package = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))["target"]["unity_package"]
    project = _project(tmp_path, unity_package)
    _cli("unity-install", bundle, "--project", project, "--voice", voice)
    (package_dir,) = [d for d in (project / "Packages").iterdir() if d.is_dir()]

    proc, result = run_editmode(version, project, harness_builds[version], tmp_path / "editmode.json")
    cases = result["cases"]
    where = f"{policy} on Sentis {version} ({target})"
    failures = [f"{c['name']}: {c['message']}" for c in cases if not c["passed"]]
    assert not failures, f"{where}: {len(failures)} of {len(cases)} EditMode test case(s) failed:\n  " + \
        "\n  ".join(failures)
    ran = {k: sum(1 for c in cases if c["class"] == k) for k in TEST_CLASSES}
    assert ran == _expected_counts(package_dir), f"{where}: test cases run per class {ran}"
    assert all(n > 0 for n in ran.values()), f"{where}: a test class ran no case: {ran}"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == f"mono tests: {len(cases)} passed, 0 failed", proc.stdout[-2000:]
