"""The trust weights a council runs with, as `manyminds eval fit-trust` left them in trust.json
(eval/trust.py fits and writes them; this module only reads and applies them, so asking a
question never imports the evaluation harness).

trust.json lives in the user dir, keyed by a fingerprint of the council's members (name, model,
system prompt, temperature), so a changed council never gets stale weights. A copy fitted for the
bundled local council ships in the package (data/trust.json); it applies only where the user's
file has no entry for the council, and a strategy named in the call always overrides it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError

if TYPE_CHECKING:
    from .pipeline.council import Council

TRUST_FILE = "trust.json"


def apply_weights(council: "Council", weights: dict[str, float]) -> "Council":
    """A copy of `council` whose members carry `weights` (members not named keep theirs)."""
    members = []
    for m in council.members:
        w = weights.get(m.name)
        members.append(m if w is None else replace(m, settings=m.settings.model_copy(update={"weight": max(float(w), 1e-6)})))
    settings = council.settings.model_copy(update={"members": [m.settings for m in members]})
    return replace(council, members=members, settings=settings)


def fingerprint(council: "Council") -> str:
    """Who the members are: a changed model, prompt or temperature is another council."""
    doc = [[m.name, m.model.name, m.settings.system, m.settings.temperature] for m in council.members]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16]


def trust_path() -> Path:
    from .config import user_dir

    return user_dir() / TRUST_FILE


def shipped_trust_path() -> Path:
    return Path(str(resources.files("manyminds") / "data" / TRUST_FILE))


def read_trust_file(path: Path | None = None) -> dict[str, Any]:
    from .councilfile import read_council_file

    return read_council_file(path or trust_path(), "trust", InputError)


def learned_trust(council: "Council", path: Path | None = None) -> dict[str, Any] | None:
    """The trust.json entry for exactly this council, or None. Without `path`: the user's file,
    else the shipped one (its entry says `"shipped": true`)."""
    key = fingerprint(council)
    if path is not None:
        return read_trust_file(path)["councils"].get(key)
    entry = read_trust_file(trust_path())["councils"].get(key)
    if entry is None and shipped_trust_path().exists():
        entry = read_trust_file(shipped_trust_path())["councils"].get(key)
        if entry is not None:
            entry = {**entry, "shipped": True}
    return entry


def apply_learned(
    council: "Council", strategy: str = "council", path: Path | None = None
) -> tuple["Council", str, dict[str, Any]]:
    """What to run for `council` when the user asked for the default `strategy`, given
    trust.json: (council, strategy, params). A "+trust" default → the council with the overall
    fitted weights and the base strategy; a single member (no council configuration reached it)
    → the council led by that member (`lead`: its answer, as accurate as it alone, with the
    others shown agreeing or dissenting). Anything else, or no entry for this council →
    unchanged."""
    entry = learned_trust(council, path)
    if not entry or strategy != "council" or not entry.get("default"):
        return council, strategy, {}
    chosen = entry["default"]["strategy"] or "council"
    weights = {m: s["weight"] for m, s in entry["table"]["overall"].items()}
    if chosen.endswith("+trust"):
        return apply_weights(council, weights), chosen.split("+")[0], {}
    if chosen.startswith("single:"):
        return council, "council", {"lead": chosen.split(":", 1)[1]}
    return council, strategy, {}


def learned_default(council: "Council") -> tuple["Council", str, dict[str, Any] | None]:
    """(council, strategy, params) for a call that named no strategy: "council", or what
    `eval fit-trust` recorded for exactly this council (params is then not None)."""
    if not trust_path().exists() and not shipped_trust_path().exists():
        return council, "council", None
    resolved, strategy, params = apply_learned(council, "council")
    if resolved is council and strategy == "council" and not params:
        return council, "council", None
    return resolved, strategy, params


def learned_note(council: "Council", strategy: str) -> tuple[str, str]:
    """(what the evaluation chose for this council — "council+trust", "single:M", not the base
    strategy it runs as: the label its results and its calibrator are stored under — and the
    verdict's warning that the learned default ran instead of the plain council). One read of
    trust.json."""
    entry = learned_trust(council) or {}
    strategy = ((entry.get("default") or {}).get("strategy")) or strategy
    if entry.get("shipped"):
        return strategy, (f"Strategy {strategy!r} as chosen for this council by the evaluation shipped with manyminds "
                          f"({entry.get('why') or 'docs/results.md'}); ask with --strategy council for the plain weighted vote.")
    return strategy, (f"Strategy {strategy!r} with the weights learned from stored eval runs for this council "
                      "(manyminds eval fit-trust; delete trust.json in the user dir to undo).")
