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
