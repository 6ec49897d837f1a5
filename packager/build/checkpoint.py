"""Where a build's weights come from: the built-in tiny preset or an upstream checkpoint folder.

Everything that touches checkpoint files goes through ``Source`` so that every error names the file, and every
file read is recorded (path, sha256, bytes) for the manifest's ``source`` section.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from packager.contract.errors import CheckpointError
from packager.contract.files import is_lfs_pointer, reject_lfs_pointer

if TYPE_CHECKING:  # torch is imported where a state dict is loaded: the bundle-reading verbs never load torch
    import torch
# packager.contract.manifest (numpy) and packager.build.config (yaml) are imported where used: the command line reads
# PRESETS and DEFAULT_SEED from here while it only parses (tests/verbs/test_cli.py checks what `--help` imports)

CONFIG_FILE = "cosyvoice3.yaml"
QWEN_CONFIG = "CosyVoice-BlankEN/config.json"
# the text tokenizer beside the Qwen config, read by the llm component when present (packager.components.llm.tokenizer)
TOKENIZER_FILES = tuple(f"CosyVoice-BlankEN/{n}" for n in ("vocab.json", "merges.txt", "tokenizer.json",
                                                            "tokenizer_config.json"))
PRESETS = ("tiny",)
DEFAULT_SEED = 1234


@dataclass
class Source:
    """A build input: ``preset='tiny'`` with a seed, or ``checkpoint`` = an upstream checkpoint folder. ``name`` is
    the checkpoint's name in the manifest and the bundle name (default: the folder's name; a model downloaded from a
    hub lies in a folder named after its commit, so ``packager.build.hub`` passes the model's name)."""

    preset: str | None = None
    seed: int = DEFAULT_SEED
    checkpoint: Path | None = None
    name: str = ""
    _used: dict[str, Path] = field(default_factory=dict, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.checkpoint is not None and not self.name:
            self.name = self.checkpoint.name

    @property
    def is_preset(self) -> bool:
        return self.checkpoint is None

    def check_files(self, names: Iterable[str]) -> None:
        """Every checkpoint file in ``names`` is there and is not a Git LFS pointer; else one error that lists every
        missing file and every pointer at once (before any work starts)."""
        if self.checkpoint is None:
            return
        names = list(dict.fromkeys(names))
        missing = [n for n in names if not (self.checkpoint / n).is_file()]
        pointers = [n for n in names if n not in missing and is_lfs_pointer(self.checkpoint / n)]
        problems = []
        if missing:
            problems.append(f"{len(missing)} file(s) missing: {', '.join(missing)}")
        if pointers:
            problems.append(f"{len(pointers)} Git LFS pointer file(s) instead of the model: {', '.join(pointers)} "
                            "(run `git lfs pull` in the checkpoint folder, or download the real files)")
        if problems:
            raise CheckpointError("; ".join(problems), file=str(self.checkpoint),
                                  expected="the upstream Fun-CosyVoice3-0.5B layout (" + ", ".join(names) + ")")

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
            from packager.build.config import load_hyperpyyaml

            self._cache["config"] = load_hyperpyyaml(self.path(CONFIG_FILE))
        return self._cache["config"]

    def qwen_config(self) -> dict[str, Any]:
        if "qwen" not in self._cache:
            from packager.build.config import load_json

            self._cache["qwen"] = load_json(self.path(QWEN_CONFIG))
        return self._cache["qwen"]

    def state_dict(self, name: str) -> dict[str, torch.Tensor]:
        """``torch.load(name, weights_only=True)`` with clear errors for truncated / non-checkpoint files."""
        if name in self._cache:
            return self._cache[name]
        import pickle
        import zipfile

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
        from packager.contract.manifest import sha256_file

        return [{"path": n, "sha256": sha256_file(p), "bytes": p.stat().st_size}
                for n, p in sorted(self._used.items())]

    def describe(self) -> dict[str, Any]:
        """The manifest's ``source`` section, with the model's identity (``model_id``)."""
        if self.is_preset:
            d: dict[str, Any] = {"kind": "preset", "preset": self.preset, "seed": self.seed}
        else:
            d = {"kind": "checkpoint", "name": self.name, "files": self.used_files()}
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


def hub_files(files: Iterable[str]) -> list[str]:
    """What to fetch from a hub for checkpoint files ``files``: those, plus the text tokenizer's files when the Qwen
    config is among them (read when present). Never the rest of ``CosyVoice-BlankEN/`` (upstream's Qwen weights,
    about 1 GB, that ``llm.pt`` already holds) nor the files no component reads (llm.rl.pt, the flow decoder ONNX)."""
    files = list(dict.fromkeys(files))
    return files + [f for f in TOKENIZER_FILES if QWEN_CONFIG in files and f not in files]


def checkpoint_folder(arg: str | Path, files: Callable[[], Iterable[str]], *, revision: str | None = None,
                      quiet: bool = False, key: str = "--checkpoint") -> tuple[Path, str]:
    """(folder, name) for ``--checkpoint ARG``: an existing folder as it is, or a Hugging Face model id (OWNER/NAME;
    ``modelscope:OWNER/NAME`` for ModelScope) fetched by ``packager.build.hub`` into its cache (``files()``: the checkpoint
    files the verb reads, see ``hub_files``), named after the model. Anything else is one ``PackagerError`` naming
    ``key``. The folder's files are checked by the caller (``Source.check_files``), the same for both."""
    text = str(arg)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError("is a file, not a folder", file=text, key=key,
                                  expected="an upstream Fun-CosyVoice3-0.5B checkpoint folder or a model id")
        if revision is not None:
            raise CheckpointError("only applies to a model id, not to a local folder", key="--revision",
                                  expected=f"{key} OWNER/NAME")
        path = path.resolve()
        return path, path.name
    from packager.build import hub

    model_id = text.removeprefix(hub.MODELSCOPE)
    if not hub.looks_like_model_id(model_id):
        raise CheckpointError("no such folder, and not a model id", file=text, key=key,
                              expected="an upstream Fun-CosyVoice3-0.5B checkpoint folder, or a Hugging Face model "
                                       f"id OWNER/NAME such as {hub.UPSTREAM_MODEL} (ModelScope: "
                                       f"{hub.MODELSCOPE}OWNER/NAME)")
    fetch = hub.download_modelscope if text.startswith(hub.MODELSCOPE) else hub.download
    folder = fetch(model_id, hub_files(files()), revision=revision, quiet=quiet, key=key)
    return folder, model_id.split("/", 1)[1]


def source_from_args(checkpoint: str | Path | None, revision: str | None, preset: str | None, seed: int,
                     files: Callable[[], Iterable[str]], quiet: bool = False) -> tuple[dict[str, Any], list[str]]:
    """The verbs' ``--checkpoint DIR|OWNER/NAME [--revision REV]`` or ``--preset NAME --seed N`` as (``Source``
    keyword arguments, the command-line arguments that name the same source). A model id is downloaded here
    (``files()``: what the verb reads), before the verb writes anything."""
    if checkpoint is not None:
        folder, name = checkpoint_folder(checkpoint, files, revision=revision, quiet=quiet)
        return ({"checkpoint": folder, "name": name},
                ["--checkpoint", str(checkpoint)] + (["--revision", revision] if revision else []))
    if revision is not None:
        raise CheckpointError("only applies to a model id", key="--revision", expected="--checkpoint OWNER/NAME")
    name = preset or PRESETS[0]
    return {"preset": name, "seed": seed}, ["--preset", name, "--seed", str(seed)]
