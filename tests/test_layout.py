"""tests/ mirrors packager/: each layer has its tests folder, and pytest's configuration collects every one of them
(its default norecursedirs would skip tests/build/)."""
from __future__ import annotations

import fnmatch
import tomllib

from tests.conftest import REPO

LAYERS = ("contract", "onnx", "sentis", "build", "components", "runtime", "frontend", "verbs", "unity")


def test_each_layer_has_its_tests_folder():
    for layer in LAYERS:
        assert (REPO / "packager" / layer).is_dir(), layer
        assert list((REPO / "tests" / layer).rglob("test_*.py")), f"tests/{layer}/ has no tests"


def test_pytest_collects_every_tests_folder():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    skipped = config["norecursedirs"]
    folders = [p for p in (REPO / "tests").rglob("*") if p.is_dir() and list(p.glob("test_*.py"))]
    assert folders
    for folder in folders:
        for part in folder.relative_to(REPO).parts:
            assert not any(fnmatch.fnmatch(part, pattern) for pattern in skipped), (folder, part)
