"""Shared test fixtures. ``upstream_ref`` is ``../shared/upstream_ref`` beside the repository (as in CI)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COSYVOICE_SHARED", REPO.parent / "shared")).resolve()

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def upstream_ref() -> Path:
    path = SHARED / "upstream_ref"
    if not (path / "README.md").is_file():
        pytest.fail(f"upstream reference data not found at {path}; set COSYVOICE_SHARED to the shared/ folder")
    return path


@pytest.fixture(scope="session")
def tiny_a(upstream_ref: Path) -> Path:
    return upstream_ref / "tiny_a"


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run ``python -m packager`` in-process; returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    from packager.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """The default build (tiny preset, every registered component), built once per test session."""
    out = tmp_path_factory.mktemp("tiny") / "bundle"
    code, _, err = run_cli("build", "--out", out)
    assert code == 0, err
    return out
