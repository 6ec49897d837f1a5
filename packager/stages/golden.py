"""Golden stage: write case tensors as .npy (v1.0, little-endian, C order) under ``Golden~`` and describe them."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from packager.bundle import DATA_DIR, GOLDEN_DIR  # noqa: F401  (DATA_DIR: re-exported for the build)
from packager.errors import PackagerError

if TYPE_CHECKING:  # torch-free at run time: voice packs and synth write/read arrays with these helpers
    from packager.component import GoldenCase


def npy_bytes(arr: np.ndarray) -> bytes:
    arr = np.array(arr, order="C", dtype=np.asarray(arr).dtype.newbyteorder("<"))  # keeps 0-d arrays 0-d
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=(1, 0), allow_pickle=False)
    return buf.getvalue()


def write_array(root: Path, rel: str, name: str, arr: np.ndarray, description: str = "") -> dict[str, Any]:
    data = npy_bytes(arr)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    entry: dict[str, Any] = {"name": name, "file": rel, "sha256": hashlib.sha256(data).hexdigest(),
                             "bytes": len(data), "dtype": str(arr.dtype), "shape": [int(d) for d in arr.shape]}
    if description:
        entry["description"] = description
    return entry


def write_case(root: Path, component: str, graph: str, case: GoldenCase) -> dict[str, Any]:
    base = f"{GOLDEN_DIR}/{component}/{graph}/{case.name}"
    entry: dict[str, Any] = {
        "name": case.name,
        "inputs": [write_array(root, f"{base}/in.{k}.npy", k, v) for k, v in case.inputs.items()],
        "outputs": [write_array(root, f"{base}/out.{k}.npy", k, v) for k, v in case.outputs.items()],
    }
    if case.description:
        entry["description"] = case.description
    if case.chain:
        entry["chain"] = case.chain
    return entry


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """A user's .npz of named arrays (no pickles), with errors that name the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise PackagerError("file not found", file=str(path)) from None
    except (ValueError, OSError) as exc:
        raise PackagerError(f"not a readable .npz file: {exc}", file=str(path)) from None
