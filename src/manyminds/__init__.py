"""manyminds: ask many models at once, compare their answers, and return one answer with a
measured confidence, the points of disagreement, and every member's answer.

    >>> import manyminds
    >>> verdict = manyminds.ask("Who wrote Hamlet?")          # the embedded local council
    >>> verdict.answer, verdict.confidence, verdict.dissent

`aask` is the async twin. Both return a `Verdict` (plain data; `.model_dump()` gives the JSON
that `manyminds ask --json` prints).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__
__all__ = ["ask", "aask", "verify", "averify", "AskRequest", "Verdict", "VerifyReport", "ScriptedModel", "__version__"]

if TYPE_CHECKING:
    from .api import aask, ask, averify, verify
    from .request import AskRequest
    from .strategies.verify import VerifyReport
    from .testing import ScriptedModel
    from .pipeline.verdict import Verdict


def __getattr__(name: str) -> Any:
    # Lazy: `import manyminds` (and so `manyminds --help`) stays fast.
    if name in ("ask", "aask", "verify", "averify", "AskRequest"):
        from . import api

        return getattr(api, name)
    if name == "VerifyReport":  # fact-check a text claim by claim (strategies/verify.py)
        from .strategies.verify import VerifyReport

        return VerifyReport
    if name == "Verdict":
        from .pipeline.verdict import Verdict

        return Verdict
    if name == "ScriptedModel":
        from .testing import ScriptedModel

        return ScriptedModel
    raise AttributeError(name)
