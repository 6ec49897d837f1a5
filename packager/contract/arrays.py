"""Arrays on disk: the .npy bytes every bundle and voice pack stores (v1.0, little-endian, C order) and a user's
.npz of named arrays."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from packager.contract.errors import PackagerError


def npy_bytes(arr: np.ndarray) -> bytes:
    arr = np.array(arr, order="C", dtype=np.asarray(arr).dtype.newbyteorder("<"))  # keeps 0-d arrays 0-d
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=(1, 0), allow_pickle=False)
    return buf.getvalue()


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """A user's .npz of named arrays (no pickles), with errors that name the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise PackagerError("file not found", file=str(path)) from None
    except (ValueError, OSError) as exc:
        raise PackagerError(f"not a readable .npz file: {exc}", file=str(path)) from None
