"""Optional dependencies: which pip extra of pyproject.toml brings which module, and the one clear message when a
verb needs one that is not installed (exit code 2, no traceback)."""
from __future__ import annotations

import importlib.util

from packager.contract.errors import PackagerError

# top-level module -> the extra that installs it
EXTRAS = {"matplotlib": "report", "wetext": "text", "modelscope": "modelscope"}


def _message(module: str, verb: str | None) -> PackagerError:
    who = f"`python -m packager {verb}`" if verb else "this command"
    extra = EXTRAS.get(module)
    if extra:
        return PackagerError(f"{who} needs {module}, which is not installed: install the {extra!r} extra with "
                             f"pip install -e '.[{extra}]'")
    return PackagerError(f"{who} needs {module}, which is not installed (a dependency of the packager): reinstall "
                         "it with pip install -e .")


def require(module: str, verb: str) -> None:
    """Fail at once, before any work, when ``module`` (an optional dependency of ``verb``) is not installed."""
    if importlib.util.find_spec(module) is None:
        raise _message(module, verb)


def missing_module(exc: ModuleNotFoundError, verb: str | None) -> PackagerError | None:
    """The message for a dependency found missing while ``verb`` ran; None for a module of the packager itself (a
    bug, shown with its traceback)."""
    top = (exc.name or "").split(".")[0]
    if not top or top == "packager":
        return None
    return _message(top, verb)
