"""Import hygiene: the packages are layers that import only downwards (``LAYERS``), nothing imports a verb but the
command line, the verbs that only read a bundle (verify, inspect, run, synth, voice) never import torch, the host
loops are the runtime spec alone, and ``packager/`` has no import cycle."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "packager"
# the modules of the verbs that only read a bundle, and what they stand on
VERB_MODULES = ["packager.contract.manifest", "packager.verbs.verify", "packager.verbs.inspect", "packager.verbs.run",
                "packager.verbs.check", "packager.runtime.pipeline", "packager.verbs.synth", "packager.verbs.voice",
                "packager.cli", "packager.verbs.unity_install", "packager.sentis.preflight", "packager.runtime.tts",
                "packager.frontend.voicepack"]


def _python(code: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("module", VERB_MODULES)
def test_verb_module_does_not_import_torch(module):
    proc = _python(f"import json, sys, {module}\n"
                   "from packager.cli import parser\n"
                   "parser()  # imports every plug-in verb module\n"
                   "print(json.dumps(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))))")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [], f"{module} imports torch"


def test_reading_verbs_run_without_torch(tiny_bundle, tmp_path):
    """verify, inspect, run and synth end to end in a fresh interpreter: all succeed and torch is never loaded."""
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    graph = next(g for c in manifest["components"] for g in c["graphs"] if g["name"] == "campplus")
    np.savez(tmp_path / "run.npz", **{t["name"]: np.load(tiny_bundle / t["file"])
                                      for t in graph["goldens"][0]["inputs"]})
    case = manifest["pipeline"]["goldens"][0]
    np.savez(tmp_path / "case.npz", **{t["name"]: np.load(tiny_bundle / t["file"]) for t in case["inputs"]})
    verbs = [["verify", tiny_bundle], ["inspect", tiny_bundle],
             ["run", tiny_bundle, "campplus", "--inputs", tmp_path / "run.npz", "--output", tmp_path / "out.npz"],
             ["synth", tiny_bundle, "--inputs", tmp_path / "case.npz", "--output", tmp_path / "tts.npz"]]
    code = ("import contextlib, io, json, sys\n"
            "from packager.cli import main\n"
            f"verbs = {json.dumps([[str(a) for a in v] for v in verbs])}\n"
            "codes = []\n"
            "for v in verbs:\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        codes.append(main(v))\n"
            "print(json.dumps({'codes': codes, 'torch': 'torch' in sys.modules}))")
    proc = _python(code, timeout=600)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"codes": [0, 0, 0, 0], "torch": False}, (got, proc.stderr[-2000:])


# ------------------------------------------------------------------------------------------------- import graph
def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """The packager modules ``name`` imports anywhere (module level or inside functions), except under
    ``if TYPE_CHECKING:``; ``from packager import x`` counts as importing ``packager.x`` when that is a module."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_no_import_cycles():
    cycles, state = [], {}

    def dfs(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                dfs(nxt, stack + [nxt])
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            dfs(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
    assert "packager.runtime.pipeline" in GRAPH["packager.verbs.verify"] and "packager.verbs.verify" not in GRAPH["packager.runtime.pipeline"]


HOST_LOOPS = ("euler_cfg.py", "llm_generate.py", "hift_noise.py")


def test_host_loops_are_only_the_runtime_spec():
    """The host loops are what the C# runtime mirrors: numpy over graph runners and manifest constants, nothing of the
    build (no torch, onnx, config parsing or components)."""
    allowed = {"__future__", "dataclasses", "typing", "math", "numpy", "packager.contract.errors"}
    for name in HOST_LOOPS:
        path = PACKAGE / "runtime" / name
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert names <= allowed, f"{path.name} imports {sorted(names - allowed)}"


# ------------------------------------------------------------------------------------------------- layers
# package -> the packages it may import (itself included). Lower layers never import higher ones: the bundle
# contract and the runtime know nothing of the build or of any component; the build knows no component by name
# (the registry loads them by their dotted path).
BASE = {"packager", "contract", "ui"}
LAYERS = {
    "contract": {"packager", "contract"},
    "ui": {"packager", "contract", "ui"},
    "onnx": BASE | {"onnx"},
    "sentis": BASE | {"onnx", "sentis"},
    "frontend": BASE | {"onnx", "sentis", "frontend"},
    "runtime": BASE | {"onnx", "sentis", "frontend", "runtime"},
    "build": BASE | {"onnx", "sentis", "frontend", "runtime", "build"},
    "components": BASE | {"onnx", "sentis", "frontend", "runtime", "build", "components"},
    "unity": {"packager", "contract", "unity"},
    "verbs": BASE | {"onnx", "sentis", "frontend", "runtime", "build", "components", "unity", "verbs"},
    "cli": BASE | {"build", "verbs"},
    "__main__": {"packager", "cli"},
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return "packager" if len(parts) == 1 else parts[1]


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that breaks ``LAYERS``, and every import of a verb from outside that verb's own module or
    package, as "importer -> imported"."""
    bad = []
    for module, deps in sorted(graph.items()):
        layer = _layer(module)
        for dep in sorted(deps):
            dep_layer = _layer(dep)
            if dep_layer not in LAYERS.get(layer, {"packager"}):
                bad.append(f"{module} -> {dep}")
            elif dep_layer == "verbs" and layer == "verbs" and dep.split(".")[:3] != module.split(".")[:3]:
                bad.append(f"{module} -> {dep} (a verb imports another verb)")
    return bad


def test_every_package_is_a_known_layer():
    assert {_layer(m) for m in MODULES} <= set(LAYERS) | {"packager"}


def test_packages_import_only_lower_layers():
    assert layer_violations(GRAPH) == []


def test_the_cli_imports_verbs_only_by_name():
    """``--help`` imports no verb: the command line names each verb's module as a string, resolved when it runs."""
    assert not {d for d in GRAPH["packager.cli"] if _layer(d) == "verbs"}


def test_layer_rules_catch_an_upward_import():
    graph = {"packager.runtime.tts": {"packager.build.pipeline"}, "packager.contract.manifest": {"packager.ui.progress"},
             "packager.verbs.voice": {"packager.verbs.synth"}, "packager.frontend.voicepack": {"packager.contract.arrays"}}
    assert layer_violations(graph) == [
        "packager.contract.manifest -> packager.ui.progress",
        "packager.runtime.tts -> packager.build.pipeline",
        "packager.verbs.voice -> packager.verbs.synth (a verb imports another verb)"]
