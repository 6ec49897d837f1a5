"""Where a build's weights come from: the built-in tiny preset or an upstream checkpoint folder.

Everything that touches checkpoint files goes through ``Source`` so that every error names the file, and every
file read is recorded (path, sha256, bytes) for the manifest's ``source`` section.
"""
from __future__ import annotations

import hashlib
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from packager.bundle import sha256_file
from packager.config import load_hyperpyyaml, load_json
from packager.errors import CheckpointError

if TYPE_CHECKING:  # torch is imported where a state dict is loaded: the bundle-reading verbs never load torch
    import torch

CONFIG_FILE = "cosyvoice3.yaml"
QWEN_CONFIG = "CosyVoice-BlankEN/config.json"
LFS_PREFIX = b"version https://git-lfs"
PRESETS = ("tiny",)
DEFAULT_SEED = 1234


def reject_lfs_pointer(path: Path) -> None:
    """Git LFS pointers are small text files that stand in for the real weights: say so plainly."""
    with open(path, "rb") as f:
        head = f.read(len(LFS_PREFIX))
    if head == LFS_PREFIX:
        raise CheckpointError("is a Git LFS pointer file, not the model; run `git lfs pull` in the checkpoint "
                              "folder (or download the real file)", file=str(path))


@dataclass
class Source:
    """A build input: ``preset='tiny'`` with a seed, or ``checkpoint`` = an upstream checkpoint folder."""

    preset: str | None = None
    seed: int = DEFAULT_SEED
    checkpoint: Path | None = None
    _used: dict[str, Path] = field(default_factory=dict, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_preset(self) -> bool:
        return self.checkpoint is None

    def path(self, name: str) -> Path:
        """Absolute path of checkpoint file ``name``; error if missing. Records the file for the manifest."""
        if self.checkpoint is None:
            raise CheckpointError(f"a checkpoint file was requested in preset mode", file=name)
        p = self.checkpoint / name
        if not p.is_file():
            raise CheckpointError("missing from the checkpoint folder", file=str(p),
                                  expected=f"the upstream Fun-CosyVoice3-0.5B layout ({name})")
        reject_lfs_pointer(p)
        self._used[name] = p
        return p

    def config(self) -> dict[str, Any]:
        """The checkpoint's ``cosyvoice3.yaml`` as data (cached)."""
        if "config" not in self._cache:
            self._cache["config"] = load_hyperpyyaml(self.path(CONFIG_FILE))
        return self._cache["config"]

    def qwen_config(self) -> dict[str, Any]:
        if "qwen" not in self._cache:
            self._cache["qwen"] = load_json(self.path(QWEN_CONFIG))
        return self._cache["qwen"]

    def state_dict(self, name: str) -> dict[str, torch.Tensor]:
        """``torch.load(name, weights_only=True)`` with clear errors for truncated / non-checkpoint files."""
        if name in self._cache:
            return self._cache[name]
        import torch

        p = self.path(name)
        try:
            sd = torch.load(p, map_location="cpu", weights_only=True)
        except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"cannot be read as a PyTorch checkpoint ({first})", file=str(p),
                                  expected="a torch.save'd state dict") from None
        if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise CheckpointError("does not hold a state dict", file=str(p),
                                  expected="a mapping of parameter names to tensors", found=type(sd).__name__)
        self._cache[name] = dict(sd)
        return self._cache[name]

    def release_weights(self) -> None:
        """Forget cached state dicts (GBs at full size) once a component has loaded them into its model."""
        for name in [k for k, v in self._cache.items() if k not in ("config", "qwen")]:
            del self._cache[name]

    def used_files(self) -> list[dict[str, Any]]:
        """Every checkpoint file read so far, sorted: ``{path, sha256, bytes}`` for the manifest."""
        return [{"path": n, "sha256": sha256_file(p), "bytes": p.stat().st_size}
                for n, p in sorted(self._used.items())]

    def describe(self) -> dict[str, Any]:
        """The manifest's ``source`` section, with the model's identity (``model_id``)."""
        if self.is_preset:
            d: dict[str, Any] = {"kind": "preset", "preset": self.preset, "seed": self.seed}
        else:
            d = {"kind": "checkpoint", "name": self.checkpoint.name, "files": self.used_files()}
        return {**d, "model_id": model_id(d)}


def model_id(source: Mapping[str, Any]) -> str:
    """The model's identity, independent of where its files lie and of the precision a bundle ships: sha256 over
    the checkpoint files read (relative path + sha256 each), or over the preset name, seed and generator version
    (a preset's weights are defined by this package's code). Voice packs record it (docs/voice.md)."""
    from packager import __version__

    if source["kind"] == "preset":
        text = f"preset\n{source['preset']}\n{source['seed']}\n{__version__}\n"
    else:
        text = "checkpoint\n" + "".join(f"{f['path']}\t{f['sha256']}\n" for f in sorted(source["files"],
                                                                                      key=lambda f: f["path"]))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_state_dict(sd: Mapping[str, torch.Tensor], expected: Mapping[str, Iterable[int]], file: str,
                     limit: int = 8) -> None:
    """Strict key/shape check. Lists the first offending keys with expected vs found shapes."""
    problems: list[str] = []
    for k, shape in expected.items():
        if k not in sd:
            problems.append(f"missing key {k} (expected shape {list(shape)})")
        elif list(sd[k].shape) != list(shape):
            problems.append(f"{k}: expected shape {list(shape)}, found {list(sd[k].shape)}")
    for k in sd:
        if k not in expected:
            problems.append(f"unexpected key {k} (shape {list(sd[k].shape)})")
    if problems:
        more = f" … and {len(problems) - limit} more" if len(problems) > limit else ""
        raise CheckpointError(f"{len(problems)} key/shape mismatch(es): " + "; ".join(problems[:limit]) + more,
                              file=file)
