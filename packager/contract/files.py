"""Checks on files a user hands us before anything reads them."""
from __future__ import annotations

from pathlib import Path

from packager.contract.errors import CheckpointError

LFS_PREFIX = b"version https://git-lfs"  # how a Git LFS pointer file begins
# in an upstream checkpoint folder beside the files the build reads: read by `voice`, never packaged
SPEECH_TOKENIZER_FILE = "speech_tokenizer_v3.onnx"


def is_lfs_pointer(path: Path, head: bytes | None = None) -> bool:
    """Whether the file at ``path`` (or its first bytes ``head``, when given) is a Git LFS pointer: a small text file
    standing in for weights."""
    if head is None:
        with open(path, "rb") as f:
            head = f.read(len(LFS_PREFIX))
    return head[:len(LFS_PREFIX)] == LFS_PREFIX


def reject_lfs_pointer(path: Path, head: bytes | None = None) -> None:
    """Git LFS pointers are small text files that stand in for the real weights: say so plainly."""
    if is_lfs_pointer(path, head):
        raise CheckpointError("is a Git LFS pointer file, not the model; run `git lfs pull` in the checkpoint "
                              "folder (or download the real file)", file=str(path))
