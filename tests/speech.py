"""Real speech for tests: Debian's espeak-ng speaks a text into a WAV (22.05 kHz mono, 16-bit PCM)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

INSTALL_HINT = "install it: apt-get install -y --no-install-recommends espeak-ng (.ci/run does this)"


def espeak_wav(path: Path | str, text: str, voice: str = "en", rate: int | None = None) -> Path:
    """Run ``espeak-ng -v VOICE [-s RATE] -w PATH TEXT`` (RATE in words per minute) and return PATH.

    A missing espeak-ng fails the test (with the install hint) rather than skipping it.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail(f"espeak-ng not found; {INSTALL_HINT}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "-v", voice, "-w", str(path)] + (["-s", str(int(rate))] if rate else []) + [text]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not path.is_file() or path.stat().st_size <= 44:
        pytest.fail(f"espeak-ng failed ({' '.join(cmd)}): rc {proc.returncode}, {proc.stderr.strip()}")
    return path
