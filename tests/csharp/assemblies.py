"""The Unity package's assemblies as Unity sees them, and their compile under mono.

Each ``.asmdef`` owns the scripts in its folder and below, except folders that have an ``.asmdef`` of their own
(Unity's rule); ``~`` folders (Samples~) belong to no package assembly. ``compile_all`` builds every assembly with
``mcs`` in reference order, each against exactly what its ``.asmdef`` grants: the DLLs of the package assemblies it
names, the stub of each engine assembly it names (tests/csharp/stubs/), UnityEngine and UnityEditor (an Editor compile)
unless ``noEngineReferences``, NUnit for ``nunit.framework.dll``. So an assembly that uses a type its
``.asmdef`` does not grant fails to compile here, as it would in Unity.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PKG = REPO / "unity_project" / "Assets" / "CosyVoice3"
STUBS = HERE / "stubs"
MCS = ["mcs", "-langversion:7.2", "-warn:4", "-nologo"]
# engine assembly (as an .asmdef names it) -> its stub source; Unity.Sentis (2.1) and Unity.InferenceEngine (2.2+)
# are one stub, the namespaces differ
ENGINE_STUBS = {"Unity.InferenceEngine": "InferenceEngine.cs", "Unity.Sentis": "InferenceEngine.cs",
                "UnityEngine.TestRunner": "NUnit.cs", "UnityEditor.TestRunner": None}
EDITOR_DEFINES = ["UNITY_EDITOR", "UNITY_INCLUDE_TESTS"]


@dataclass
class Assembly:
    name: str
    asmdef: Path
    spec: dict
    files: list[Path]

    @property
    def package_references(self) -> list[str]:
        return [r for r in self.spec.get("references", []) if r.startswith("CosyVoice3.")]

    @property
    def engine_references(self) -> list[str]:
        return [r for r in self.spec.get("references", []) if not r.startswith("CosyVoice3.")]


def _skipped(path: Path) -> bool:
    return any(p.startswith(".") or p.endswith("~") for p in path.relative_to(PKG).parts)


def assemblies(pkg: Path = PKG) -> dict[str, Assembly]:
    """name -> Assembly, every script of the package (outside ``~`` folders) in exactly one."""
    asmdefs = {p.parent: p for p in pkg.rglob("*.asmdef") if not _skipped(p)}
    out = {}
    for folder, path in sorted(asmdefs.items()):
        spec = json.loads(path.read_text(encoding="utf-8"))
        out[spec["name"]] = Assembly(spec["name"], path, spec, [])
    by_folder = {folder: json.loads(p.read_text(encoding="utf-8"))["name"] for folder, p in asmdefs.items()}
    for cs in sorted(pkg.rglob("*.cs")):
        if _skipped(cs):
            continue
        owner = next((by_folder[d] for d in cs.parents if d in by_folder), None)
        if owner is None:
            raise AssertionError(f"{cs}: in no assembly (Unity would put it in Assembly-CSharp)")
        out[owner].files.append(cs)
    return out


def build_order(asms: dict[str, Assembly]) -> list[str]:
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise AssertionError(f"assembly reference cycle: {' -> '.join(path + (name,))}")
        for ref in asms[name].package_references:
            visit(ref, path + (name,))
        order.append(name)

    for name in sorted(asms):
        visit(name, ())
    return order


def mcs(args: list[str]) -> subprocess.CompletedProcess:
    if shutil.which("mcs") is None:
        raise AssertionError("mcs not found; install mono: apt-get install -y --no-install-recommends mono-mcs "
                             "mono-runtime")
    return subprocess.run(MCS + args, capture_output=True, text=True, timeout=300)


def diagnostics(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if ": error " in line or ": warning " in line]


def _checked(proc: subprocess.CompletedProcess, what: str) -> None:
    diags = diagnostics(proc)
    if proc.returncode != 0 or diags:
        raise AssertionError(f"{what}: mcs failed\n" + "\n".join(diags or [proc.stdout, proc.stderr]))


def build_stubs(out: Path, sentis_21: bool) -> dict[str, Path]:
    """The stub DLLs: UnityEngine, UnityEditor (on UnityEngine), the inference engine (on UnityEngine; Unity.Sentis
    for the 2.1 target, else Unity.InferenceEngine), NUnit."""
    out.mkdir(parents=True, exist_ok=True)
    engine = "Unity.Sentis" if sentis_21 else "Unity.InferenceEngine"
    dlls = {"UnityEngine": out / "UnityEngine.dll", "UnityEditor": out / "UnityEditor.dll",
            "InferenceEngine.cs": out / f"{engine}.dll", "NUnit.cs": out / "nunit.framework.dll"}
    _checked(mcs(["-target:library", f"-out:{dlls['UnityEngine']}", str(STUBS / "UnityEngine.cs")]), "UnityEngine stub")
    _checked(mcs(["-target:library", f"-out:{dlls['UnityEditor']}", f"-r:{dlls['UnityEngine']}",
                  str(STUBS / "UnityEditor.cs")]), "UnityEditor stub")
    _checked(mcs(["-target:library", f"-out:{dlls['InferenceEngine.cs']}", f"-r:{dlls['UnityEngine']}",
                  *(["-define:COSY_SENTIS"] if sentis_21 else []),
                  str(STUBS / "InferenceEngine.cs")]), "InferenceEngine stub")
    _checked(mcs(["-target:library", f"-out:{dlls['NUnit.cs']}", str(STUBS / "NUnit.cs")]), "NUnit stub")
    return dlls


def references(asm: Assembly, built: dict[str, Path], stubs: dict[str, Path]) -> list[Path]:
    """What ``asm``'s .asmdef grants it, as DLL paths."""
    refs = [built[r] for r in asm.package_references]
    for r in asm.engine_references:
        if r not in ENGINE_STUBS:
            raise AssertionError(f"{asm.asmdef}: no stub for engine reference {r!r}")
        if ENGINE_STUBS[r] is not None and stubs[ENGINE_STUBS[r]] not in refs:
            refs.append(stubs[ENGINE_STUBS[r]])
    if "nunit.framework.dll" in asm.spec.get("precompiledReferences", []) and stubs["NUnit.cs"] not in refs:
        refs.append(stubs["NUnit.cs"])
    if not asm.spec.get("noEngineReferences", False):  # the Editor's compile: UnityEditor for #if UNITY_EDITOR too
        refs += [stubs["UnityEngine"], stubs["UnityEditor"]]
    return refs


def defines(asm: Assembly, sentis_21: bool) -> list[str]:
    """UNITY_EDITOR / UNITY_INCLUDE_TESTS (an Editor compile), and COSY_SENTIS where the .asmdef's versionDefines
    set it and the target is com.unity.sentis 2.1."""
    out = list(EDITOR_DEFINES)
    if sentis_21:
        out += [d["define"] for d in asm.spec.get("versionDefines", []) if d["name"] == "com.unity.sentis"]
    return out


def compile_all(out: Path, sentis_21: bool) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """Every package assembly, then the sample against all of them: (name -> DLL, name -> references used)."""
    asms = assemblies()
    stubs = build_stubs(out / "stubs", sentis_21)
    built: dict[str, Path] = {}
    used: dict[str, list[Path]] = {}
    for name in build_order(asms):
        asm = asms[name]
        refs = references(asm, built, stubs)
        dll = out / f"{name}.dll"
        _checked(mcs(["-target:library", *[f"-define:{d}" for d in defines(asm, sentis_21)], f"-out:{dll}",
                      *[f"-r:{r}" for r in refs], *map(str, asm.files)]), name)
        built[name], used[name] = dll, refs
    # Samples~: imported into Assets/, where Assembly-CSharp references every auto-referenced assembly
    samples = sorted((PKG / "Samples~").rglob("*.cs"))
    refs = [built[n] for n in built if asms[n].spec.get("autoReferenced", True)] + [stubs["UnityEngine"],
                                                                                     stubs["InferenceEngine.cs"]]
    dll = out / "Samples.dll"
    _checked(mcs(["-target:library", f"-out:{dll}", *[f"-r:{r}" for r in refs], *map(str, samples)]), "Samples~")
    built["Samples~"], used["Samples~"] = dll, refs
    return built, used
