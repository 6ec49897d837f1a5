"""The only list of components. A new component is one package in ``packager/components`` and one line here."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from packager.contract.errors import PackagerError

if TYPE_CHECKING:  # the command line lists names() while it only parses: no onnx/numpy import for that
    from packager.build.component import Component

# name -> "module:Class"; the build order is this order.
COMPONENTS: dict[str, str] = {
    "campplus": "packager.components.campplus.component:CampPlus",
    "llm": "packager.components.llm.component:LLM",
    "flow": "packager.components.flow.component:Flow",
    "hift": "packager.components.hift.component:HiFT",
}


def names() -> list[str]:
    return list(COMPONENTS)


def get(name: str) -> Component:
    if name not in COMPONENTS:
        raise PackagerError(f"unknown component {name!r}", key="--components",
                            expected="one of " + ", ".join(COMPONENTS))
    module, cls = COMPONENTS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def recommended_precisions(names: list[str]) -> dict[str, str]:
    """name -> the precision that component declares (``Component.recommended_precision``)."""
    return {n: get(n).recommended_precision for n in names}
