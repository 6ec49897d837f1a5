"""Atomic output folders: everything is written into a temporary sibling of the destination, which replaces the
destination only once complete; any error (Ctrl-C included) removes it. ``build``, ``voice`` and ``report`` use it,
so a failed command never leaves a partial folder behind."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator


def temp_sibling(out: Path) -> Path:
    return out.parent / f".{out.name}.tmp-{os.getpid()}"


def swap_into_place(tmp: Path, out: Path) -> None:
    """``tmp`` becomes ``out``; a previous ``out`` is moved aside first and removed after."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


@contextlib.contextmanager
def staged_folder(out: Path, parents: bool = True) -> Iterator[Path]:
    """Yields an empty temporary sibling of ``out``; on a normal exit it replaces ``out``, on any exception it is
    removed. ``parents``: create missing parent folders of ``out``."""
    tmp = temp_sibling(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=parents)
    try:
        yield tmp
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
