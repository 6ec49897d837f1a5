"""User-facing errors. Every error names the file, key or field and what was expected.

The CLI turns a ``PackagerError`` into one message on stderr and exit code 2 (no traceback).
"""
from __future__ import annotations


class PackagerError(Exception):
    """A user mistake or bad input: reported without a traceback, exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 expected: str | None = None, found: str | None = None):
        self.file, self.key, self.expected, self.found = file, key, expected, found
        parts = []
        if file:
            parts.append(str(file))
        if key:
            parts.append(str(key))
        prefix = ": ".join(parts)
        text = f"{prefix}: {message}" if prefix else message
        if expected is not None:
            text += f" (expected {expected}"
            text += f", found {found})" if found is not None else ")"
        super().__init__(text)


class CheckpointError(PackagerError):
    """A checkpoint file is missing, unreadable or has the wrong keys/shapes."""


class InputError(PackagerError):
    """A tensor handed to a graph or host loop has the wrong name, dtype or shape."""


class VerificationError(PackagerError):
    """A bundle failed verification."""

    exit_code = 1
