"""The Unity package's assembly layering, checked without Unity (docs/unity_runtime.md "Assemblies").

* ``CosyVoice3.Runtime`` (Runtime/Core, Runtime/Host, Runtime/Speech): engine-free, ``noEngineReferences``, references
  nothing; it compiles with mcs alone, no stub at all.
* ``CosyVoice3.Inference`` (Runtime/Inference): the Sentis layer, on the core and Unity.InferenceEngine / Unity.Sentis.
* ``CosyVoice3.Speaker`` (Runtime/Speaker): the Unity layer (MonoBehaviour), on both.
* ``CosyVoice3.Editor`` and ``CosyVoice3.Tests.Editor``: Editor-only, on the core and the Sentis layer.

Every assembly compiles with Debian's mono-mcs (C# 7.2), 0 errors and 0 warnings, for both runtime targets, against
exactly what its .asmdef grants (tests/csharp/assemblies.py); namespaces follow folders (rootNamespace + path).
Needs ``mcs``; without it these tests fail, not skip.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.csharp.assemblies import PKG, assemblies, build_order, compile_all

SENTIS = ["Unity.InferenceEngine", "Unity.Sentis"]
COSY_SENTIS = [{"name": "com.unity.sentis", "expression": "2.1.0", "define": "COSY_SENTIS"}]
# name -> (.asmdef folder, references, noEngineReferences, versionDefines, rootNamespace)
LAYERS = {
    "CosyVoice3.Runtime": ("Runtime", [], True, [], "CosyVoice3"),
    "CosyVoice3.Inference": ("Runtime/Inference", ["CosyVoice3.Runtime", *SENTIS], False, COSY_SENTIS,
                             "CosyVoice3.Inference"),
    "CosyVoice3.Speaker": ("Runtime/Speaker", ["CosyVoice3.Runtime", "CosyVoice3.Inference", *SENTIS], False,
                           COSY_SENTIS, "CosyVoice3.Speaker"),
    "CosyVoice3.Editor": ("Editor", ["CosyVoice3.Runtime", "CosyVoice3.Inference", *SENTIS], False, COSY_SENTIS,
                          "CosyVoice3.Editor"),
    "CosyVoice3.Tests.Editor": ("Tests/Editor", ["CosyVoice3.Runtime", "CosyVoice3.Inference", *SENTIS,
                                                 "UnityEngine.TestRunner", "UnityEditor.TestRunner"], False,
                                COSY_SENTIS, "CosyVoice3.Tests.Editor"),
}
NAMESPACE = re.compile(r"^namespace ([A-Za-z0-9_.]+)", re.M)


def test_asmdef_references_follow_the_layering() -> None:
    asms = assemblies()
    assert sorted(asms) == sorted(LAYERS)
    for name, (folder, refs, no_engine, version_defines, root) in LAYERS.items():
        spec = asms[name].spec
        assert asms[name].asmdef.parent.relative_to(PKG).as_posix() == folder, name
        assert spec["references"] == refs, name
        assert spec["noEngineReferences"] is no_engine, name
        assert spec["versionDefines"] == version_defines, name
        assert spec["rootNamespace"] == root, name
    core = asms["CosyVoice3.Runtime"]
    assert {p.parent.relative_to(PKG).as_posix().split("/")[1] for p in core.files} == {"Core", "Host", "Speech"}
    assert core.spec["autoReferenced"] and core.spec["includePlatforms"] == []
    assert asms["CosyVoice3.Tests.Editor"].spec["defineConstraints"] == ["UNITY_INCLUDE_TESTS"]
    order = build_order(asms)
    assert order[0] == "CosyVoice3.Runtime" and order.index("CosyVoice3.Inference") < order.index("CosyVoice3.Speaker")


def test_namespaces_follow_folders() -> None:
    """Each script's namespace is its assembly's rootNamespace plus its folder below the .asmdef."""
    seen = set()
    for asm in assemblies().values():
        for cs in asm.files:
            sub = cs.parent.relative_to(asm.asmdef.parent).parts
            want = ".".join((asm.spec["rootNamespace"], *sub))
            found = NAMESPACE.findall(cs.read_text(encoding="utf-8"))
            assert found and set(found) == {want}, f"{cs.relative_to(PKG)}: namespace {found}, expected {want}"
            seen.add(want)
    assert {"CosyVoice3.Core", "CosyVoice3.Host", "CosyVoice3.Speech", "CosyVoice3.Inference",
            "CosyVoice3.Speaker", "CosyVoice3.Editor", "CosyVoice3.Tests.Editor"} == seen


@pytest.mark.parametrize("target", ["ie-2.4", "sentis-2.1"])
def test_assemblies_compile_layer_by_layer(tmp_path: Path, target: str) -> None:
    """The core alone (no stub), then the Sentis layer on core + InferenceEngine stub, then the Unity layer, the
    Editor and test assemblies, then the sample; 0 errors, 0 warnings."""
    built, used = compile_all(tmp_path, sentis_21=target == "sentis-2.1")
    names = lambda name: sorted(p.name for p in used[name])  # noqa: E731
    engine = "Unity.Sentis.dll" if target == "sentis-2.1" else "Unity.InferenceEngine.dll"
    assert used["CosyVoice3.Runtime"] == []
    assert names("CosyVoice3.Inference") == ["CosyVoice3.Runtime.dll", engine, "UnityEditor.dll", "UnityEngine.dll"]
    assert names("CosyVoice3.Speaker") == ["CosyVoice3.Inference.dll", "CosyVoice3.Runtime.dll", engine,
                                           "UnityEditor.dll", "UnityEngine.dll"]
    assert all(p.is_file() for p in built.values()) and len(built) == len(LAYERS) + 1
