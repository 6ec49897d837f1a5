"""Shared test fixtures. ``upstream_ref`` is the in-repository copy of the upstream reference data,
``tests/data/upstream_ref`` (provenance and contents: its README.md)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
UPSTREAM_REF = REPO / "tests" / "data" / "upstream_ref"  # the one home of this path for the tests
# The project's design notes, when they happen to sit beside the repository: optional, only a few extra cross-checks
# in tests/frontend/test_text_tokenizer.py read them if present; every test passes without them.
DESIGN_NOTES = REPO.parent / "shared" / "design"

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def upstream_ref() -> Path:
    if not (UPSTREAM_REF / "README.md").is_file():
        pytest.fail(f"upstream reference data not found at {UPSTREAM_REF} (part of the repository: an incomplete "
                    "checkout?)")
    return UPSTREAM_REF


@pytest.fixture(scope="session")
def tiny_a(upstream_ref: Path) -> Path:
    return upstream_ref / "tiny_a"


@pytest.fixture(scope="session")
def tiny_a_checkpoint(tiny_a: Path, upstream_ref: Path, tmp_path_factory) -> Path:
    """tiny_a as a complete upstream checkpoint folder (every component's files, for a default build): the shared
    set's tiny_a also holds ``campplus.onnx``, byte-identical to ``campplus/campplus.onnx``, which the repository
    stores once. Links to the in-repo files (copies where links are not allowed)."""
    import shutil

    out = tmp_path_factory.mktemp("checkpoint") / "tiny_a"
    files = [(f, f.relative_to(tiny_a)) for f in sorted(tiny_a.rglob("*")) if f.is_file()]
    for src, rel in [*files, (upstream_ref / "campplus" / "campplus.onnx", Path("campplus.onnx"))]:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        try:
            (out / rel).symlink_to(src)
        except OSError:
            shutil.copyfile(src, out / rel)
    return out


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
