"""The Unity package's .meta files: every file and folder of unity_project/Assets/CosyVoice3 that
Unity imports has a committed .meta with a stable, unique GUID and the importer Unity uses for its kind, and
``python -m packager.unity.meta`` (which writes them) is deterministic and idempotent."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from packager.unity import meta as unity_meta
from packager.unity.meta import check_metas, expected_metas, main, write_metas

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "unity_project" / "Assets"
PKG = ASSETS / "CosyVoice3"
# The two sample metas that predate the generator: random GUIDs, published, so they must stay.
LEGACY = {"Samples~/Speak/Speak.unity.meta": "51cccba3970e0fe49cff4cffc054673b",
          "Samples~/Speak/SpeakSample.cs.meta": "9bb51bba7b2e18314d389c514e87da7e"}
GUID_LINE = re.compile(r"^guid: (.*)$", re.M)


def _importable() -> list[str]:
    """What Unity imports from the package (plus the sample contents it copies into Assets/), found here without
    the generator: no hidden or '~' entries, except that the top-level Samples~ folder's contents count."""
    out = []
    for dirpath, dirnames, filenames in os.walk(PKG):
        rel_dir = Path(dirpath).relative_to(PKG).as_posix()
        dirnames[:] = [d for d in dirnames if not d.startswith(".")
                       and (not d.endswith("~") or (rel_dir == "." and d == "Samples~"))]
        for name in dirnames + filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if name.startswith(".") or name.endswith("~") or name.endswith(".meta"):
                continue
            out.append(rel)
    return sorted(out)


def _importer(meta_text: str) -> str:
    keys = [k for k in re.findall(r"^([A-Za-z]+):", meta_text, re.M) if k not in ("fileFormatVersion", "guid",
                                                                                   "folderAsset")]
    assert len(keys) == 1, meta_text
    return keys[0]


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / "CosyVoice3"
    shutil.copytree(PKG, dst)
    return dst


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ the committed package

def test_every_file_and_folder_has_a_meta() -> None:
    entries = _importable()
    assert {"package.json", "Runtime", "Runtime/CosyVoice3.Runtime.asmdef", "Tests/Editor",
            "Samples~/Speak", "Samples~/Speak/Speak.unity"} <= set(entries)
    assert "Samples~" not in entries
    missing = [e for e in entries if not (PKG / f"{e}.meta").is_file()]
    assert missing == [], f"no .meta (run python -m packager.unity.meta): {missing}"
    assert sorted(p.relative_to(PKG).as_posix()[:-5] for p in expected_metas(PKG)) == entries


def test_no_orphan_meta() -> None:
    entries = set(_importable())
    orphans = [m.relative_to(PKG).as_posix() for m in PKG.rglob("*.meta")
               if m.relative_to(PKG).as_posix()[:-5] not in entries]
    assert orphans == []
    assert not (PKG / "Samples~.meta").exists()  # '~' folders get none; Unity never imports them


def test_guids_are_32_lowercase_hex_and_unique_across_assets() -> None:
    seen: dict[str, str] = {}
    metas = sorted(ASSETS.rglob("*.meta"))
    assert len(metas) >= len(_importable()) > 40
    for meta in metas:
        text = meta.read_text(encoding="utf-8")
        guids = GUID_LINE.findall(text)
        assert len(guids) == 1 and re.fullmatch(r"[0-9a-f]{32}", guids[0]), f"{meta}: {guids}"
        assert guids[0] not in seen, f"{meta} repeats the GUID of {seen.get(guids[0])}"
        seen[guids[0]] = str(meta)


def test_importer_matches_file_kind() -> None:
    want = {".cs": "MonoImporter", ".asmdef": "AssemblyDefinitionImporter", ".unity": "DefaultImporter"}
    counts: dict[str, int] = {}
    for rel in _importable():
        path, text = PKG / rel, (PKG / f"{rel}.meta").read_text(encoding="utf-8")
        if path.is_dir():
            kind, expected = "folder", "DefaultImporter"
        elif rel == "package.json":
            kind, expected = rel, "PackageManifestImporter"  # what Unity writes for a package's manifest
        else:
            kind = path.suffix
            assert kind in want, f"{rel}: no expectation for {kind} files in this test"
            expected = want[kind]
        assert _importer(text) == expected, f"{rel}: {_importer(text)} instead of {expected}"
        assert ("\nfolderAsset: yes\n" in text) == path.is_dir(), rel
        assert text.startswith("fileFormatVersion: 2\nguid: ") and text.endswith("  assetBundleVariant: \n"), rel
        assert "\r" not in text, rel
        counts[kind] = counts.get(kind, 0) + 1
    assert set(counts) == {"folder", ".cs", ".asmdef", ".unity", "package.json"} and counts[".asmdef"] >= 2, counts


def test_guids_are_the_derived_ones_except_the_legacy_metas() -> None:
    for meta in sorted(PKG.rglob("*.meta")):
        rel = meta.relative_to(PKG).as_posix()
        guid = GUID_LINE.findall(meta.read_text(encoding="utf-8"))[0]
        derived = hashlib.md5(f"com.cosyvoice3.runtime/{rel[:-5]}".encode()).hexdigest()
        assert guid == LEGACY.get(rel, derived), rel
    # one spelled out, so a change to the derivation itself cannot pass unnoticed
    assert GUID_LINE.findall((PKG / "Runtime/Core/Json.cs.meta").read_text())[0] == "10eeb7ac8b1a1876bed51fd6b522c8a5"


def test_committed_metas_are_what_the_generator_writes() -> None:
    expected = expected_metas(PKG)
    assert check_metas(PKG) == []
    for meta, text in expected.items():
        assert meta.read_bytes() == text.encode("utf-8"), meta
    assert (PKG / "Runtime/CosyVoice3.Runtime.asmdef.meta").read_text() == (
        "fileFormatVersion: 2\nguid: a46589847585886418000658ca3dd854\nAssemblyDefinitionImporter:\n"
        "  externalObjects: {}\n  userData: \n  assetBundleName: \n  assetBundleVariant: \n")


# ------------------------------------------------------------------ the generator

def test_generator_is_idempotent_and_deterministic(tmp_path: Path) -> None:
    copy = _copy(tmp_path / "a")
    before = _tree(copy)
    assert write_metas(copy) == []  # nothing missing: nothing written
    assert _tree(copy) == before

    for meta in copy.rglob("*.meta"):
        meta.unlink()
    written = write_metas(copy)
    assert len(written) == len(_importable())
    after = _tree(copy)
    assert sorted(after) == sorted(before)
    differing = sorted(k for k in before if before[k] != after[k])
    assert differing == sorted(LEGACY)  # only the legacy metas differ: they had random GUIDs
    for rel, old_guid in LEGACY.items():  # and only in the guid line
        new_guid = hashlib.md5(f"com.cosyvoice3.runtime/{rel[:-5]}".encode()).hexdigest()
        assert after[rel] == before[rel].replace(old_guid.encode(), new_guid.encode())

    again = _copy(tmp_path / "b")
    for meta in again.rglob("*.meta"):
        meta.unlink()
    write_metas(again)
    assert _tree(again) == after  # same bytes on a second run
    assert write_metas(again) == []


def test_existing_meta_is_never_rewritten(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    meta = copy / "Runtime/Core/Json.cs.meta"
    custom = meta.read_text().replace("executionOrder: 0", "executionOrder: 5")
    meta.write_text(custom)
    (copy / "Runtime/Core/Extra.cs").write_text("class Extra {}\n")
    assert write_metas(copy) == [copy / "Runtime/Core/Extra.cs.meta"]
    assert meta.read_text() == custom
    assert GUID_LINE.findall((copy / "Runtime/Core/Extra.cs.meta").read_text()) == [
        hashlib.md5(b"com.cosyvoice3.runtime/Runtime/Core/Extra.cs").hexdigest()]
    assert check_metas(copy) == []


def test_check_reports_each_problem(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    (copy / "Runtime/Core/Npy.cs.meta").unlink()                                  # missing
    (copy / "Runtime/Gone.cs.meta").write_text((copy / "Runtime/Core/Json.cs.meta").read_text().replace(
        "10eeb7ac", "00000000"))                                                  # orphan
    shutil.copyfile(copy / "Samples~/Speak.meta", copy / "Samples~.meta")          # orphan: '~' folder
    tol = copy / "Runtime/Core/Tolerance.cs.meta"
    tol.write_text(re.sub(r"guid: \w+", "guid: 10eeb7ac8b1a1876bed51fd6b522c8a5", tol.read_text()))  # repeat
    bundle = copy / "Runtime/Core/Bundle.cs.meta"
    bundle.write_text(bundle.read_text().replace("guid: ", "guid: ABC"))          # not 32 lowercase hex
    asm = copy / "Runtime/CosyVoice3.Runtime.asmdef.meta"
    asm.write_text(asm.read_text().replace("AssemblyDefinitionImporter", "DefaultImporter"))  # wrong importer
    host = copy / "Runtime/Host.meta"
    host.write_text(host.read_text().replace("folderAsset: yes\n", ""))             # folder without folderAsset

    bundle_guid = hashlib.md5(b"com.cosyvoice3.runtime/Runtime/Core/Bundle.cs").hexdigest()
    assert check_metas(copy) == [  # in path order, the orphans last
        f"Runtime/Core/Bundle.cs.meta: guid 'ABC{bundle_guid}' is not 32 lowercase hex digits",
        "Runtime/Core/Npy.cs: no .meta (run python -m packager.unity.meta)",
        "Runtime/Core/Tolerance.cs.meta: guid 10eeb7ac8b1a1876bed51fd6b522c8a5 repeats the one of "
        "Runtime/Core/Json.cs.meta",
        "Runtime/CosyVoice3.Runtime.asmdef.meta: importer DefaultImporter, expected AssemblyDefinitionImporter",
        "Runtime/Host.meta: a folder's .meta needs folderAsset: yes",
        "Runtime/Gone.cs.meta: orphan .meta (belongs to nothing)",
        "Samples~.meta: orphan .meta (belongs to an entry Unity does not import)",
    ]


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    copy = _copy(tmp_path)
    assert main(["--check", str(copy)]) == 0
    assert f"{len(_importable())} .meta files, all present and consistent" in capsys.readouterr().out

    (copy / "Tests/Editor/BundleGoldenTests.cs.meta").unlink()
    assert main(["--check", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "Tests/Editor/BundleGoldenTests.cs: no .meta" in err and "1 problem(s)" in err
    assert not (copy / "Tests/Editor/BundleGoldenTests.cs.meta").exists()  # --check writes nothing
    assert main([str(copy)]) == 0
    assert f"wrote {copy / 'Tests/Editor/BundleGoldenTests.cs.meta'}" in capsys.readouterr().out

    assert main([str(copy / "package.json")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err
    (copy / "package.json").unlink()
    assert main([str(copy)]) == 2
    assert "package.json: missing" in capsys.readouterr().err


def test_refuses_files_with_their_own_importer(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    copy = _copy(tmp_path)
    (copy / "Runtime/icon.png").write_bytes(b"\x89PNG")
    assert main([str(copy)]) == 2
    assert "icon.png: a '.png' file has an importer with settings of its own" in capsys.readouterr().err
    assert not (copy / "Runtime/icon.png.meta").exists()
    (copy / "Runtime/icon.png").unlink()
    (copy / "Runtime/notes.md").write_text("# notes\n")
    (copy / ".hidden").mkdir()
    (copy / ".hidden/x.cs").write_text("")
    (copy / "Documentation~").mkdir()
    (copy / "Documentation~/index.md").write_text("")
    assert write_metas(copy) == [copy / "Runtime/notes.md.meta"]
    assert _importer((copy / "Runtime/notes.md.meta").read_text()) == "TextScriptImporter"


def test_module_runs_with_the_default_root_and_imports_only_the_stdlib() -> None:
    proc = subprocess.run([sys.executable, "-m", "packager.unity.meta", "--check"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"unity_project/Assets/CosyVoice3: {len(_importable())} .meta files" in proc.stdout
    proc = subprocess.run([sys.executable, "-c", "import sys, packager.unity.meta; "
                           "print(sorted(m for m in ('numpy', 'torch', 'onnx', 'packager.cli') if m in sys.modules))"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr
    assert unity_meta.DEFAULT_ROOT == Path("unity_project/Assets/CosyVoice3")


def test_install_docs() -> None:
    doc = (REPO / "docs" / "unity.md").read_text(encoding="utf-8")
    section = doc.split("## Install the package", 1)[1].split("\n## ", 1)[0]
    for needle in ("com.cosyvoice3.runtime", "com.unity.ai.inference", "2.4.1", "com.unity.sentis", "2.1.3",
                   ".git?path=unity_project/Assets/CosyVoice3", '"testables"', "unity-install",
                   "Packages/<bundle package name>/", "python -m packager.unity.meta", "tests/unity/test_meta.py",
                   "Unity -batchmode -nographics -projectPath", "-runTests -testPlatform EditMode"):
        assert needle in section, needle
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "docs/unity.md#install-the-package" in readme
