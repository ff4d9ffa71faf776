"""What a model's tokens cost: the price table shipped in the package (data/prices.json), with
the settings file's `[prices."provider/model"]` entries over it.

A price is looked up as `provider/model`, then `provider/*` (free local servers are listed that
way, explicitly); the settings' entries win at each step. A model with no entry has an unknown
price (unless a third-party provider declares one) — `Model.cost_usd` then returns None, shown as "unknown", never as 0. The registry applies
the price to every model it builds (`Registry.get_model`), whatever the provider.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Settings
    from .base import Model

PRICES_FILE = "prices.json"


@lru_cache(maxsize=1)
def shipped_prices() -> dict[str, tuple[float, float]]:
    """The package's table: "provider/model" → (input, output) USD per million tokens."""
    path = resources.files("manyminds") / "data" / PRICES_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {name: (float(p["input"]), float(p["output"])) for name, p in doc["prices"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"The shipped price table {PRICES_FILE} cannot be read: {exc}") from None


def lookup(name: str, settings: "Settings | None" = None) -> tuple[float, float] | None:
    """(input, output) USD per million tokens for the canonical `provider/model`, or None."""
    provider = name.split("/", 1)[0]
    overrides = {k: (p.input, p.output) for k, p in (settings.prices if settings is not None else {}).items()}
    table = shipped_prices()
    for key in (name, f"{provider}/*"):
        for source in (overrides, table):
            if key in source:
                return source[key]
    return None


def apply_price(model: "Model", settings: "Settings | None" = None) -> "Model":
    """Set the model's price from the table. Without an entry the model keeps the price its
    provider declares — None (unknown) for every built-in one, whose prices live only here; a
    third-party plugin may declare its own."""
    price = lookup(model.name, settings)
    if price is not None:
        model.input_price_per_mtok, model.output_price_per_mtok = price
    return model


__all__ = ["PRICES_FILE", "apply_price", "lookup", "shipped_prices"]
