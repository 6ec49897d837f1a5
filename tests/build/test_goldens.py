"""The tiny preset's goldens, committed under golden/, compared with pytest-regressions.

Every numeric change of a golden (inputs or reference outputs) shows up here and in review. Regenerate only with a
reason in the commit message: ``python -m pytest tests/build/test_goldens.py --force-regen``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from packager.contract.thresholds import GOLDEN_RELATIVE, GOLDEN_WAVEFORM_RELATIVE
from packager.build import registry
from tests.conftest import REPO

RELATIVE, WAVEFORM_RELATIVE = GOLDEN_RELATIVE, GOLDEN_WAVEFORM_RELATIVE  # the bounds and their reasons: contract/thresholds


def _tolerances(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    out = {}
    for key, arr in arrays.items():
        if arr.dtype.kind != "f" or not arr.size:
            continue
        rel = WAVEFORM_RELATIVE.get(key.rsplit(".", 1)[-1], RELATIVE) if ".output." in f".{key}" else RELATIVE
        out[key] = {"atol": rel * float(np.abs(arr).max()) + 1e-7, "rtol": 0.0}
    return out


@pytest.mark.parametrize("component", registry.names())
def test_tiny_goldens(tiny_bundle, component, ndarrays_regression):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    comp = next(c for c in manifest["components"] if c["name"] == component)
    arrays = {}
    for g in comp["graphs"]:
        for case in g["goldens"]:
            for side in ("inputs", "outputs"):
                for t in case[side]:
                    arrays[f"{g['name']}.{case['name']}.{side[:-1]}.{t['name']}"] = np.load(tiny_bundle / t["file"])
    for d in comp["data"]:  # host data: only a fingerprint (tables can be large)
        arr = np.load(tiny_bundle / d["file"])
        arrays[f"data.{d['name']}.head"] = arr.reshape(-1)[:4096]
    ndarrays_regression.check(arrays, fullpath=REPO / "golden" / f"{component}.npz",
                              tolerances=_tolerances(arrays), default_tolerance={"atol": 0, "rtol": 0})


def test_tiny_pipeline_golden(tiny_bundle, ndarrays_regression):
    """The end-to-end tts() golden of the tiny bundle (speech tokens, mel, waveform)."""
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    (case,) = manifest["pipeline"]["goldens"]
    arrays = {f"{side[:-1]}.{t['name']}": np.load(tiny_bundle / t["file"])
              for side in ("inputs", "outputs") for t in case[side]}
    assert arrays["output.speech_tokens"].shape[1] > 0
    ndarrays_regression.check(arrays, fullpath=REPO / "golden" / "pipeline.npz",
                              tolerances=_tolerances(arrays), default_tolerance={"atol": 0, "rtol": 0})
