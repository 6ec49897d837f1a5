"""``--checkpoint OWNER/NAME``: the checkpoint as a model on the Hugging Face Hub, read from the hub cache or
downloaded into it first (``huggingface_hub.snapshot_download``), only the files the packager reads.
``--checkpoint modelscope:OWNER/NAME``: the same from ModelScope, with its own client and cache (the ``modelscope``
extra; ``MODELSCOPE_CACHE``).

The cache is huggingface_hub's own (``HF_HOME`` / ``HF_HUB_CACHE``); ``HF_HUB_OFFLINE=1`` means the cache only. A
download that fails or is interrupted leaves nothing but huggingface_hub's resumable partial files in the cache: the
caller starts writing its output only after this returns a complete folder, which then goes through the same strict
checks as a local checkpoint folder (``packager.build.checkpoint.Source``).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

from packager.contract.errors import PackagerError

UPSTREAM_MODEL = "FunAudioLLM/Fun-CosyVoice3-0.5B-2512"  # upstream's model, on Hugging Face and ModelScope alike
MODELSCOPE = "modelscope:"  # the prefix that picks ModelScope over the Hugging Face Hub
# owner/name as the Hub spells repository ids: letters, digits, '-', '_', '.'; no leading '.', '-' or '/'
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_TRUE = {"1", "ON", "YES", "TRUE"}


def looks_like_model_id(text: str) -> bool:
    return bool(_MODEL_ID.fullmatch(text)) and ".." not in text and not text.endswith((".", "-"))


def _offline() -> bool:
    """``HF_HUB_OFFLINE`` as set now (huggingface_hub reads it once, when it is first imported)."""
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE or bool(constants.HF_HUB_OFFLINE)


def _cache_dir() -> str | None:
    """``HF_HUB_CACHE`` as set now, else huggingface_hub's own default (``HF_HOME``/hub, ~/.cache/huggingface/hub)."""
    return os.environ.get("HF_HUB_CACHE") or None


def cache_location() -> str:
    from huggingface_hub import constants

    return _cache_dir() or constants.HF_HUB_CACHE


@contextlib.contextmanager
def _bars(quiet: bool) -> Iterator[None]:
    """huggingface_hub's own tqdm bars, off with ``--quiet``."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if quiet:
        disable_progress_bars()
    try:
        yield
    finally:
        if quiet and not was_disabled:
            enable_progress_bars()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def download(model_id: str, files: Iterable[str], *, revision: str | None = None, quiet: bool = False,
             key: str = "--checkpoint") -> Path:
    """The local folder (a hub cache snapshot) holding ``files`` of ``model_id`` at ``revision`` (default: main).

    ``files`` are checkpoint-relative paths, downloaded as ``allow_patterns``; what is missing afterwards is for the
    caller's strict checks to name. Every failure is one ``PackagerError`` naming ``key``: not in the cache while
    offline, no such model or revision, no access, or a download that failed or was cut off (run the command again:
    huggingface_hub resumes it)."""
    try:
        import huggingface_hub
        from huggingface_hub import errors as E
    except ImportError:
        raise PackagerError(f"{model_id!r} is a Hugging Face model id, and downloading it needs huggingface_hub, "
                            "which is not installed", key=key,
                            expected="pip install -e . (it is a dependency), or a local checkpoint folder") from None
    offline = _offline()
    patterns = sorted(dict.fromkeys(str(PurePosixPath(f)) for f in files))
    where = f"model {model_id}" + (f" at revision {revision}" if revision else "")
    if not quiet:
        print(f"{where}: {'reading' if offline else 'fetching'} {len(patterns)} file(s) "
              f"{'from' if offline else 'into'} the Hugging Face cache {cache_location()}"
              + (" (HF_HUB_OFFLINE: cache only)" if offline else ""), file=sys.stderr, flush=True)
    try:
        with _bars(quiet):
            folder = huggingface_hub.snapshot_download(model_id, revision=revision, allow_patterns=patterns,
                                                       cache_dir=_cache_dir(), local_files_only=offline)
    except (E.LocalEntryNotFoundError, E.OfflineModeIsEnabled) as exc:  # IncompleteSnapshotError is one of these
        if offline:
            raise PackagerError(f"{where} is not in the Hugging Face cache ({cache_location()}) and HF_HUB_OFFLINE "
                                "forbids downloading it", key=key,
                                expected="a model id that is cached (run once with network access, or unset "
                                         "HF_HUB_OFFLINE), or a local checkpoint folder") from None
        raise PackagerError(f"cannot download {where} and it is not in the Hugging Face cache "
                            f"({_first_line(exc)})", key=key,
                            expected="network access to huggingface.co, or a local checkpoint folder") from None
    except E.GatedRepoError:
        raise PackagerError(f"{where} needs access granted on huggingface.co", key=key,
                            expected="`hf auth login` with an account that has access, or a local folder") from None
    except E.RepositoryNotFoundError:
        raise PackagerError(f"no folder {model_id!r} here, and no model {model_id!r} on the Hugging Face Hub (or "
                            "it is private)", key=key,
                            expected=f"a model id such as {UPSTREAM_MODEL}, or a local checkpoint folder") from None
    except E.RevisionNotFoundError:
        raise PackagerError(f"{model_id} has no revision {revision!r}", key="--revision",
                            expected="a branch, tag or commit of the model") from None
    except E.HFValidationError as exc:
        raise PackagerError(f"not a valid model id ({_first_line(exc)})", key=key,
                            expected=f"OWNER/NAME such as {UPSTREAM_MODEL}, or a local checkpoint folder") from None
    except Exception as exc:  # noqa: BLE001 - network, disk, server: the download did not complete
        raise PackagerError(f"downloading {where} failed ({_first_line(exc)}); nothing was written: run the "
                            "command again to resume (the files already fetched stay in the Hugging Face cache)",
                            key=key, expected="a complete download") from None
    return Path(folder)


def download_modelscope(model_id: str, files: Iterable[str], *, revision: str | None = None, quiet: bool = False,
                        key: str = "--checkpoint") -> Path:
    """``download`` from ModelScope (``modelscope.snapshot_download``, its cache: ``MODELSCOPE_CACHE``, default
    ~/.cache/modelscope). Its progress bars are hidden with ``quiet``."""
    try:
        from modelscope import snapshot_download
    except ImportError:
        raise PackagerError(f"{MODELSCOPE}{model_id} is a ModelScope model id, and downloading it needs the "
                            "modelscope client, which is not installed: install the 'modelscope' extra with "
                            "pip install -e '.[modelscope]'", key=key) from None
    patterns = sorted(dict.fromkeys(str(PurePosixPath(f)) for f in files))
    where = f"model {model_id}" + (f" at revision {revision}" if revision else "") + " on ModelScope"
    if not quiet:
        print(f"{where}: fetching {len(patterns)} file(s) into the ModelScope cache", file=sys.stderr, flush=True)
    try:
        with contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext():
            folder = snapshot_download(model_id, revision=revision, allow_patterns=patterns)
    except Exception as exc:  # noqa: BLE001 - the client's errors: network, not found, no access, disk
        raise PackagerError(f"downloading {where} failed ({_first_line(exc)}); nothing was written: run the "
                            "command again to resume (the files already fetched stay in the ModelScope cache)",
                            key=key, expected=f"a ModelScope model id such as {MODELSCOPE}{UPSTREAM_MODEL}, "
                                          "network access, or a local checkpoint folder") from None
    return Path(folder)
