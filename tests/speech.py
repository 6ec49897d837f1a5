"""Real speech for tests: Debian's espeak-ng speaks a text into a WAV (22.05 kHz mono)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

INSTALL_HINT = "install it: apt-get install -y --no-install-recommends espeak-ng"


def espeak_wav(path: Path, text: str, voice: str = "en", rate: int | None = None) -> Path:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail(f"espeak-ng not found; {INSTALL_HINT}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "-v", voice, "-w", str(path)] + (["-s", str(rate)] if rate else []) + [text]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not path.is_file():
        pytest.fail(f"espeak-ng failed: {proc.stderr.strip()}")
    return path
