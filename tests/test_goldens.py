"""The tiny preset's goldens, committed under golden/, compared with pytest-regressions.

Every numeric change of a golden (inputs or reference outputs) shows up here and in review. Regenerate only with a
reason in the commit message: ``python -m pytest tests/test_goldens.py --force-regen``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from packager import registry
from tests.conftest import REPO


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
                              default_tolerance={"atol": 1e-6, "rtol": 1e-6})


def test_tiny_pipeline_golden(tiny_bundle, ndarrays_regression):
    """The end-to-end tts() golden of the tiny bundle (speech tokens, mel, waveform)."""
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    (case,) = manifest["pipeline"]["goldens"]
    arrays = {f"{side[:-1]}.{t['name']}": np.load(tiny_bundle / t["file"])
              for side in ("inputs", "outputs") for t in case[side]}
    assert arrays["output.speech_tokens"].shape[1] > 0
    ndarrays_regression.check(arrays, fullpath=REPO / "golden" / "pipeline.npz",
                              default_tolerance={"atol": 1e-6, "rtol": 1e-6})
