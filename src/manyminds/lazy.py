"""Lazy package exports: a package's names are imported from their submodules on first use, so
importing one submodule (e.g. a feature's schema module, which every `open_db` imports) does not
import the rest of the package, and `import manyminds` stays fast.

    __getattr__, __dir__ = lazy_exports(__name__, {"open_db": "connect", …})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose attribute NAME lives in the submodule
    `exports[NAME]`. A name is imported once, then kept in the package's globals."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
