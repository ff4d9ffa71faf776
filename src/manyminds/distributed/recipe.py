"""What a Ray worker needs to build the council itself.

Models hold network clients, event loops and (for `local`) a server process, so they are not
shipped: the worker resolves the same settings into its own council, once per process. The
settings travel as data (they hold no keys: a worker finds its keys as any manyminds process
does — argument, environment variable, key file in its own user dir).

Anything with the two methods below is a recipe; tests use their own to build councils of
`ScriptedModel`s with scripts that exist only in the test module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Settings


@dataclass
class CouncilRecipe:
    settings: Settings
    council: str | None = None
    models: list[str] | None = None

    def build_council(self) -> Any:
        from ..api import resolve_council

        return resolve_council(self.settings, self.council, self.models)

    def build_model(self, name: str) -> Any:
        from ..models.registry import build_registry

        return build_registry(self.settings).get_model(name)
