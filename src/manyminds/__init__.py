"""manyminds: ask many models at once, compare their answers, and return one answer with a
measured confidence, the points of disagreement, and every member's answer.

    >>> import manyminds
    >>> verdict = manyminds.ask("Who wrote Hamlet?")          # the embedded local council
    >>> verdict.answer, verdict.confidence, verdict.dissent

`aask` is the async twin. Both return a `Verdict` (plain data; `.model_dump()` gives the JSON
that `manyminds ask --json` prints).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ask", "aask", "verify", "averify", "Verdict", "ScriptedModel", "__version__"]

if TYPE_CHECKING:
    from .api import aask, ask
    from .testing import ScriptedModel
    from .pipeline.verdict import Verdict


def __getattr__(name: str) -> Any:
    # Lazy: `import manyminds` (and so `manyminds --help`) stays fast.
    if name in ("ask", "aask"):
        from . import api

        return getattr(api, name)
    if name in ("verify", "averify", "VerifyReport"):  # fact-check a text claim by claim (verify.py)
        return getattr(importlib.import_module(f"{__name__}.verify"), name)
    if name == "Verdict":
        from .pipeline.verdict import Verdict

        return Verdict
    if name == "ScriptedModel":
        from .testing import ScriptedModel

        return ScriptedModel
    raise AttributeError(name)
