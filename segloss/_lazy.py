"""Package attributes that import their module on first use (PEP 562), so that importing a package (as
``segloss --help`` does with each task's) loads none of its optional dependencies."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package`` for ``exports`` (public name ->
    submodule that defines it).

    Usage, in a package's ``__init__.py``: ``__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)``.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{exports[name]}", package), name)

    def __dir__() -> list[str]:
        return sorted([*vars(importlib.import_module(package)), *exports])

    return __getattr__, __dir__
