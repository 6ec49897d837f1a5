"""``python -m packager.unity.meta [--check] [ROOT]``: the ``.meta`` files of the Unity package.

Unity imports nothing without a ``.meta`` in an immutable package (one added by git URL,
``...git?path=unity_project/Assets/CosyVoice3``): it logs "has no meta file, but it's in an immutable folder" and
skips the file, so a missing ``package.json.meta`` or ``.asmdef.meta`` loses the whole package. Every file and folder
of the package therefore carries a committed ``.meta``; this module writes the missing ones and checks them all.

Which entries get a ``.meta`` (Unity's rules, as Unity's own packages follow them):

* every file and folder, except ``.meta`` files themselves;
* not hidden entries (name starting with ``.``) nor entries whose name ends in ``~``, and nothing inside them:
  Unity's importer skips both;
* except the top-level ``Samples~`` folder: it gets no ``.meta`` itself, but everything inside does, because the
  Package Manager copies a sample into ``Assets/`` on import and the copies keep these GUIDs.

GUIDs: a ``.meta`` that exists is never rewritten, so its GUID is kept (a GUID once published must never change;
the two sample metas that predate this module have random GUIDs and keep them). A new ``.meta`` gets
``md5("<package name>/" + path relative to ROOT, posix)`` as 32 lowercase hex digits: the same path always gives the
same GUID, on every machine, so regenerating never churns. The importer block is the one Unity writes for the file's
kind (``IMPORTERS``); ``\\n`` line endings.

``--check`` writes nothing and lists every problem (missing ``.meta``, orphan ``.meta``, malformed or repeated GUID,
wrong importer). Without it, missing ``.meta`` files are written, then the same check runs. Exit code 0 when
there is no problem, 1 when problems remain, 2 for bad input (ROOT not a folder, no package.json). Standard
library only; not a ``packager`` CLI verb.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Sequence

DEFAULT_ROOT = Path("unity_project/Assets/CosyVoice3")
META = ".meta"
SAMPLES_DIR = "Samples~"
GUID_RE = re.compile(r"[0-9a-f]{32}")
_GUID_LINE = re.compile(r"^guid:[ \t]*(\S*)[ \t]*$", re.M)
_TOP_KEY = re.compile(r"^([A-Za-z][A-Za-z0-9]*):", re.M)

_TAIL = "  userData: \n  assetBundleName: \n  assetBundleVariant: \n"
# The importer block Unity writes after "fileFormatVersion" / "guid" (and "folderAsset: yes" for a folder).
IMPORTERS = {
    "DefaultImporter": "DefaultImporter:\n  externalObjects: {}\n" + _TAIL,
    "MonoImporter": ("MonoImporter:\n  externalObjects: {}\n  serializedVersion: 2\n  defaultReferences: []\n"
                     "  executionOrder: 0\n  icon: {instanceID: 0}\n" + _TAIL),
    "AssemblyDefinitionImporter": "AssemblyDefinitionImporter:\n  externalObjects: {}\n" + _TAIL,
    "TextScriptImporter": "TextScriptImporter:\n  externalObjects: {}\n" + _TAIL,
    "PackageManifestImporter": "PackageManifestImporter:\n  externalObjects: {}\n" + _TAIL,
}
# Unity imports these as TextAssets.
TEXT_SUFFIXES = frozenset({".txt", ".md", ".json", ".xml", ".html", ".htm", ".bytes", ".csv", ".yaml", ".fnt"})
# These have an importer of their own with settings this module does not write (textures, audio, models, shaders,
# native-format assets, ONNX): let Unity import such a file once in a project and commit the .meta it writes.
SPECIAL_SUFFIXES = frozenset({
    ".png", ".jpg", ".jpeg", ".tga", ".psd", ".tif", ".tiff", ".gif", ".bmp", ".exr", ".hdr",
    ".wav", ".mp3", ".ogg", ".aif", ".aiff", ".fbx", ".obj", ".blend", ".dae",
    ".shader", ".compute", ".hlsl", ".cginc", ".uss", ".uxml", ".mat", ".asset", ".prefab", ".anim",
    ".controller", ".mixer", ".onnx", ".sentis", ".dll", ".so", ".dylib", ".asmref",
})


class MetaError(Exception):
    """Bad input: ROOT is not a package folder, or a file has no importer this module can write."""


def package_name(root: Path) -> str:
    """The UPM name in ``root/package.json`` (the GUID namespace)."""
    root = Path(root)
    if not root.is_dir():
        raise MetaError(f"{root}: not a folder (expected the Unity package folder, e.g. {DEFAULT_ROOT})")
    manifest = root / "package.json"
    try:
        name = json.loads(manifest.read_text(encoding="utf-8")).get("name")
    except FileNotFoundError:
        raise MetaError(f"{manifest}: missing (expected a UPM package folder with a package.json)") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise MetaError(f"{manifest}: unreadable: {exc}") from None
    if not isinstance(name, str) or not name:
        raise MetaError(f"{manifest}: no \"name\" (expected e.g. \"com.cosyvoice3.runtime\")")
    return name


def derived_guid(package: str, rel: str) -> str:
    """The GUID of a new ``.meta``: md5 of ``"<package>/<posix path relative to the package root>"``."""
    return hashlib.md5(f"{package}/{rel}".encode("utf-8")).hexdigest()


def importer_for(path: Path, rel: str) -> str:
    """The importer Unity uses for ``path`` (a folder or file; ``rel`` is its posix path in the package)."""
    if path.is_dir():
        return "DefaultImporter"
    if rel == "package.json":
        return "PackageManifestImporter"
    suffix = path.suffix.lower()
    if suffix == ".cs":
        return "MonoImporter"
    if suffix == ".asmdef":
        return "AssemblyDefinitionImporter"
    if suffix in TEXT_SUFFIXES:
        return "TextScriptImporter"
    if suffix in SPECIAL_SUFFIXES:
        raise MetaError(f"{path}: a '{suffix}' file has an importer with settings of its own; import it in Unity "
                        "once and commit the .meta Unity writes")
    return "DefaultImporter"  # .unity scenes and any file Unity has no importer for


def meta_text(guid: str, importer: str, folder: bool) -> str:
    return (f"fileFormatVersion: 2\nguid: {guid}\n" + ("folderAsset: yes\n" if folder else "")
            + IMPORTERS[importer])


def _skipped(name: str) -> bool:
    return name.startswith(".") or name.endswith("~")


def _walk(root: Path) -> tuple[list[Path], list[Path]]:
    """(entries that need a .meta, every .meta file Unity or a sample import would read or that lies in the tree),
    both sorted by posix path. Hidden entries are not entered at all; ``~`` folders are entered only to find
    stray .meta files (reported as orphans) and, for the top-level Samples~, its assets."""
    assets: list[Path] = []
    metas: list[Path] = []

    def visit(folder: Path, imported: bool) -> None:
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            if entry.name.startswith("."):
                continue
            if entry.name.endswith(META) and entry.is_file():
                metas.append(entry)
                continue
            is_samples = folder == root and entry.name == SAMPLES_DIR
            takes_meta = imported and not _skipped(entry.name)
            if takes_meta:
                assets.append(entry)
            if entry.is_dir() and not entry.is_symlink():
                visit(entry, takes_meta or (is_samples and imported))

    visit(root, True)
    key = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    return sorted(assets, key=key), sorted(metas, key=key)


def _read_guid(meta: Path) -> str | None:
    """The ``guid:`` value of an existing .meta (as written, possibly malformed), or None without one."""
    m = _GUID_LINE.search(meta.read_text(encoding="utf-8", errors="replace"))
    return m.group(1) if m else None


def expected_metas(root: Path) -> dict[Path, str]:
    """Every .meta the package needs -> its text. An existing .meta's valid GUID is kept; otherwise derived."""
    root = Path(root)
    package = package_name(root)
    out: dict[Path, str] = {}
    for path in _walk(root)[0]:
        rel = path.relative_to(root).as_posix()
        meta = path.with_name(path.name + META)
        guid = _read_guid(meta) if meta.is_file() else None
        if guid is None or not GUID_RE.fullmatch(guid):
            guid = derived_guid(package, rel)
        out[meta] = meta_text(guid, importer_for(path, rel), path.is_dir())
    return out


def write_metas(root: Path) -> list[Path]:
    """Write every missing .meta (existing ones are never touched); return the written paths."""
    written = []
    for meta, text in expected_metas(root).items():
        if not meta.exists():
            meta.write_bytes(text.encode("utf-8"))
            written.append(meta)
    return written


def check_metas(root: Path) -> list[str]:
    """Every problem of the package's .meta files, one line each (empty: all good)."""
    root = Path(root)
    expected = expected_metas(root)
    _, present = _walk(root)
    problems: list[str] = []
    rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    guids: dict[str, str] = {}
    for meta, text in expected.items():
        if not meta.is_file():
            problems.append(f"{rel(meta)[:-len(META)]}: no .meta (run python -m packager.unity.meta)")
            continue
        found = meta.read_text(encoding="utf-8", errors="replace")
        guid = _read_guid(meta)
        if guid is None:
            problems.append(f"{rel(meta)}: no guid line")
        elif not GUID_RE.fullmatch(guid):
            problems.append(f"{rel(meta)}: guid {guid!r} is not 32 lowercase hex digits")
        elif guid in guids:
            problems.append(f"{rel(meta)}: guid {guid} repeats the one of {guids[guid]}")
        else:
            guids[guid] = rel(meta)
        want_importer = _TOP_KEY.findall(text)[-1]
        got = [k for k in _TOP_KEY.findall(found) if k not in ("fileFormatVersion", "guid", "folderAsset")]
        if got != [want_importer]:
            problems.append(f"{rel(meta)}: importer {', '.join(got) or 'missing'}, expected {want_importer}")
        is_folder = re.search(r"^folderAsset: yes$", found, re.M) is not None
        if is_folder != meta.with_name(meta.name[:-len(META)]).is_dir():
            problems.append(f"{rel(meta)}: " + ("folderAsset: yes on a file" if is_folder
                                                 else "a folder's .meta needs folderAsset: yes"))
        if not found.startswith("fileFormatVersion: 2\n"):
            problems.append(f"{rel(meta)}: does not start with 'fileFormatVersion: 2'")
        if "\r" in found:
            problems.append(f"{rel(meta)}: has CR line endings (expected \\n)")
    for meta in present:
        if meta not in expected:
            target = meta.with_name(meta.name[:-len(META)])
            why = "belongs to nothing" if not target.exists() else "belongs to an entry Unity does not import"
            problems.append(f"{rel(meta)}: orphan .meta ({why})")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m packager.unity.meta",
                                 description="Write the missing .meta files of the Unity package, then check all "
                                             "of them (stable GUIDs; existing .meta files are never changed).")
    ap.add_argument("root", nargs="?", type=Path, default=DEFAULT_ROOT,
                    help=f"the package folder, holding package.json (default: {DEFAULT_ROOT})")
    ap.add_argument("--check", action="store_true", help="write nothing; list problems and exit 1 if there are any")
    args = ap.parse_args(argv)
    try:
        written = [] if args.check else write_metas(args.root)
        problems = check_metas(args.root)
    except (MetaError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for meta in written:
        print(f"wrote {meta}")
    for line in problems:
        print(f"{args.root}: {line}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s)" + ("" if args.check else " left (existing .meta files are never "
                                                                      "rewritten: fix or delete them by hand)"),
              file=sys.stderr)
        return 1
    print(f"{args.root}: {len(expected_metas(args.root))} .meta files, all present and consistent")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
