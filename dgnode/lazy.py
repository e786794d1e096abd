"""Lazy package exports (PEP 562): a package lists its public names by module, and a name's
module is imported on first use, so importing the package stays cheap (``dgnode --help`` loads
neither torch nor pandas through a package ``__init__``)."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping, Sequence

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names_by_module: Mapping[str, Sequence[str]]) -> tuple[list[str], Callable[[str], Any]]:
    """``(__all__, __getattr__)`` for ``package`` exporting ``names_by_module``."""
    owner = {name: module for module, names in names_by_module.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in owner:
            return getattr(importlib.import_module(owner[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return sorted(owner), __getattr__
