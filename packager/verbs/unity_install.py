"""``python -m packager unity-install BUNDLE --project unity_project [--force]`` (docs/unity.md).

Installs a built bundle into a Unity project as an *embedded package*: ``<project>/Packages/<bundle.package>/``
holding the bundle exactly as built (manifest.json, package.json, Models/*.onnx, Data/*.npy.bytes, Golden~/...).
Unity imports the ONNX files there as ModelAssets (``Packages/<package>/Models/<graph>.onnx``), ignores ``Golden~``
(trailing ``~``), and the EditMode tests in ``Assets/CosyVoice3/Tests`` find every installed bundle by its manifest.

Before anything is written, the bundle is checked: manifest schema, every listed file present, inside the bundle,
not a symlink, with the manifest's size and sha256; package.json names the manifest's package. The project must be a
Unity project and must not depend on the *other* Sentis package (both register an .onnx importer). Nothing is
written outside ``<project>/Packages/``: the copy goes to a hidden temporary folder there, then is renamed into place.

``--voice NAME.voice`` (repeatable) also installs voice packs made for this bundle, as
``Voices~/NAME.voice/``, each with a *speak golden* ``Golden~/speak/NAME/``: ``tts.speak`` of a fixed text in that
voice over the bundle's graphs (greedy, seed 0, streaming, the raw-text path the C# frontend mirrors), so the EditMode
test ``SpeakerGoldenTests`` can check that ``CosyVoiceSpeaker``'s code path gives the samples ``packager synth`` gives,
within the bundle's pipeline tolerance for ``speech``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from packager import GENERATOR_NAME
from packager.contract.manifest import MANIFEST_FILE, PACKAGE_FILE, check_file, listed_files, open_manifest
from packager.contract.errors import PackagerError
from packager.sentis.rules import TARGETS

RUNTIME_PACKAGES = tuple(dict.fromkeys(t.package for t in TARGETS.values()))
# our Unity runtime package (unity_project/Assets/CosyVoice3/package.json "name"; tests/verbs/test_unity_install.py
# keeps them equal) and where it lives in this repository (the ?path= of its git URL)
COSYVOICE_RUNTIME = "com.cosyvoice3.runtime"
RUNTIME_REPO_PATH = "unity_project/Assets/CosyVoice3"
BATCH_COMMAND = ("Unity -batchmode -nographics -projectPath {project} -runTests -testPlatform EditMode "
                 "-testResults results.xml -logFile -")


def check_bundle(bundle: Path) -> dict[str, Any]:
    """The manifest of a complete, untampered bundle, or a PackagerError naming the first problem."""
    manifest = open_manifest(bundle)
    for field, entry in listed_files(manifest):
        check_file(bundle, entry, field)
    pkg_path = bundle / PACKAGE_FILE
    try:
        pkg = json.loads(pkg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PackagerError(f"unreadable UPM package.json: {exc}", file=str(pkg_path)) from None
    if pkg.get("name") != manifest["bundle"]["package"]:
        raise PackagerError("package.json name differs from manifest bundle.package", file=str(pkg_path),
                            expected=manifest["bundle"]["package"], found=str(pkg.get("name")))
    return manifest


def check_project(project: Path, manifest: dict[str, Any]) -> None:
    version = project / "ProjectSettings" / "ProjectVersion.txt"
    packages = project / "Packages" / "manifest.json"
    if not version.is_file() or not packages.is_file():
        raise PackagerError("not a Unity project", file=str(project),
                            expected="a folder with ProjectSettings/ProjectVersion.txt and Packages/manifest.json")
    try:
        deps = json.loads(packages.read_text(encoding="utf-8")).get("dependencies", {})
    except ValueError as exc:
        raise PackagerError(f"not valid JSON: {exc}", file=str(packages)) from None
    want = manifest["target"]["unity_package"]
    others = [p for p in RUNTIME_PACKAGES if p != want and p in deps]
    if others:
        raise PackagerError(f"the project uses {others[0]}, but the bundle was built for {want} "
                            "(rebuild with --target, or switch the project: see docs/unity.md)",
                            file=str(packages), key="dependencies", expected=want, found=others[0])


def _copy_tree(src: Path, dst: Path) -> int:
    """Copy regular files and folders; a symlink or special file anywhere in the bundle is an error."""
    count = 0
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise PackagerError("bundle contains a symlink or special file", file=str(path),
                                expected="regular files and folders only")
        if path.is_dir():
            (dst / rel).mkdir(parents=True, exist_ok=True)
        else:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dst / rel)
            count += 1
    return count


VOICES_DIR = "Voices~"
SPEAK_DIR = "Golden~/speak"
SPEAK_FORMAT = "cosyvoice3-speak-golden"
SPEAK_TEXT = "Hello from Unity. The speaker streams while the game keeps running."
SPEAK_SETTINGS = {"mode": "zero_shot", "sampling": "greedy", "seed": 0, "stream": True, "upstream_quirks": True}


def _npy_entry(folder: Path, name: str, arr: np.ndarray) -> dict[str, Any]:
    path = folder / f"{name}.npy"
    np.save(path, arr, allow_pickle=False)
    data = path.read_bytes()
    return {"name": name, "dtype": str(arr.dtype), "shape": list(arr.shape), "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}


def write_speak_golden(bundle: Path, manifest: dict[str, Any], voice: Any, out: Path, pipe: Any = None) -> dict[str, Any]:
    """``tts.speak(SPEAK_TEXT)`` in ``voice`` over the bundle's graphs (onnxruntime, the Sentis view of each graph;
    ``pipe``: an already open ``Pipeline`` of the bundle) into ``out/speak.json`` + ``speech.npy`` +
    ``speech_tokens.npy``; file names are fixed (C# reads no path)."""
    from packager.runtime import tts
    from packager.runtime.pipeline import Pipeline

    pipe = pipe if pipe is not None else Pipeline.open(bundle, manifest=manifest)
    st = SPEAK_SETTINGS
    res = tts.speak(pipe, voice, SPEAK_TEXT, mode=st["mode"], sampling=st["sampling"], seed=st["seed"],
                    stream=st["stream"], upstream_quirks=st["upstream_quirks"], use_wetext=False)
    out.mkdir(parents=True)
    tokens = np.concatenate(res.speech_tokens, axis=1).astype(np.int32)
    meta = {
        "format": SPEAK_FORMAT, "format_version": 1, "generator": GENERATOR_NAME,
        "voice": voice.name, "model_id": voice.model_id, "text": SPEAK_TEXT, "settings": dict(st),
        "sample_rate": res.sample_rate, "pieces": res.pieces, "chunks": res.chunks,
        "piece_token_counts": [int(t.shape[1]) for t in res.speech_tokens],
        "arrays": [_npy_entry(out, "speech", res.speech.reshape(1, -1).astype(np.float32)),
                   _npy_entry(out, "speech_tokens", tokens)],
    }
    (out / "speak.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return meta


def _voice_folder_name(voice: Any) -> str:
    stem = voice.path.name[:-len(".voice")] if voice.path.name.endswith(".voice") else voice.path.name
    if not stem or not all(c.isalnum() or c in "-_." for c in stem) or stem.startswith("."):
        raise PackagerError("voice pack folder name is not a plain name", file=str(voice.path),
                            expected="letters, digits, '-', '_' or '.' (e.g. narrator.voice)")
    return stem


def install_bundle(bundle: Path, project: Path, force: bool = False, voices: Sequence[Path] = (),
                   log=print) -> Path:
    """Install ``bundle`` into ``project``; return ``<project>/Packages/<bundle.package>``. ``voices``: voice packs
    for this bundle, installed under ``Voices~/`` with a speak golden each."""
    from packager.frontend import voicepack

    bundle, project = Path(bundle), Path(project)
    manifest = check_bundle(bundle)
    check_project(project, manifest)
    packs = []
    for v in voices:
        pack = voicepack.load(Path(v))
        pack.check_model(manifest, bundle)
        name = _voice_folder_name(pack)
        if any(n == name for n, _ in packs):
            raise PackagerError("two voice packs with the same folder name", file=str(v), expected="distinct names")
        packs.append((name, pack))
    packages = (project / "Packages").resolve()
    dest = packages / manifest["bundle"]["package"]  # the schema's package pattern has no '/' or '..'
    if dest.exists() or dest.is_symlink():
        previous = dest / MANIFEST_FILE
        ours = previous.is_file() and not dest.is_symlink() and GENERATOR_NAME in previous.read_text(encoding="utf-8")
        if not force:
            raise PackagerError("already installed" if ours else "folder exists", file=str(dest),
                                expected="no such folder (pass --force to replace an installed bundle)")
        if not ours:
            raise PackagerError("refusing to replace a folder that is not an installed bundle", file=str(dest),
                                expected=f"a folder with a {GENERATOR_NAME} manifest.json")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=packages))  # hidden: Unity ignores dot-folders
    try:
        _copy_tree(bundle, tmp)
        for name, pack in packs:
            _copy_tree(pack.path, tmp / VOICES_DIR / f"{name}.voice")
            log(f"voice {name}: speak golden of {SPEAK_TEXT!r} (tts.speak over the bundle's graphs)")
            write_speak_golden(bundle, manifest, pack, tmp / SPEAK_DIR / name)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


# ---------------------------------------------------------------- CLI (options: packager/cli.py)

def run(args: argparse.Namespace) -> int:
    dest = install_bundle(args.bundle, args.project, args.force, voices=args.voice)
    manifest = open_manifest(dest)
    graphs = [g for c in manifest["components"] for g in c["graphs"]]
    cases = sum(len(g["goldens"]) for g in graphs)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"installed {manifest['bundle']['package']} ({len(graphs)} graphs, {cases} golden cases, "
          f"{size / 1e6:.1f} MB) into {dest}"
          + (f"; voices: {', '.join(sorted(p.name for p in (dest / VOICES_DIR).iterdir()))}" if args.voice else ""))
    for line in next_steps(args.project, manifest["bundle"]["package"]):
        print(line)
    return 0


def next_steps(project: Path, bundle_package: str) -> list[str]:
    """What the user does next in ``project`` (docs/unity_quickstart.md), skipping what is already done there."""
    deps, testables = {}, []
    try:
        data = json.loads((project / "Packages" / "manifest.json").read_text(encoding="utf-8"))
        deps, testables = data.get("dependencies", {}), data.get("testables", [])
    except (OSError, ValueError):
        pass
    in_assets = (project / "Assets" / "CosyVoice3" / "package.json").is_file()
    lines = ["next steps (docs/unity_quickstart.md):"]
    n = 1
    if COSYVOICE_RUNTIME not in deps and not in_assets:
        lines += [f"  {n}. add the runtime: in {project / 'Packages' / 'manifest.json'}, \"dependencies\":",
                  f'       "{COSYVOICE_RUNTIME}": "<this repository\'s git URL>?path={RUNTIME_REPO_PATH}"',
                  "     (Package Manager > + > Add package from git URL writes the same entry)"]
        n += 1
    wanted = [p for p in (COSYVOICE_RUNTIME, bundle_package) if p not in testables]
    if wanted and not in_assets:
        lines += [f"  {n}. to run the package's EditMode tests there, add beside \"dependencies\": "
                  f'"testables": {json.dumps(sorted(set(testables) | set(wanted)))}']
        n += 1
    lines += [f"  {n}. in the Editor: Package Manager > CosyVoice3 for Unity > Samples > Speak > Import; open "
              "Speak.unity and press Play (it finds this bundle under Packages/)",
              f"  {n + 1}. for a player build: Tools > CosyVoice3 > Bake Models for Player Build, assign the baked "
              "models to CosyVoiceSpeaker.graphs and copy the bundle's manifest.json and Data/ to "
              f"Assets/StreamingAssets/{bundle_package}/ (the bake step does the copy)",
              "run the EditMode tests: " + BATCH_COMMAND.format(project=project)]
    return lines
