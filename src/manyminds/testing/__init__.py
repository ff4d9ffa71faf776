"""Test doubles for code that uses manyminds: answers without keys, network or model files.

What you get:
  * `ScriptedModel` (scripted.py): a deterministic model that answers from a script — a fixed
    string, a mapping from a substring of the question to an answer, a callable, or a list
    consumed in order (exceptions in it are raised) — optionally after a delay or streamed in
    pieces. It is the `scripted` provider: `scripted/echo` repeats the question, and
    `scripted/NAME` answers from `ScriptedModel.register_script("NAME", script)`.
  * `FakeOpenAIServer` and `Behaviour` (loopback.py): an OpenAI- and Anthropic-compatible HTTP
    server on 127.0.0.1 that injects faults (429s with Retry-After, 5xx, latency, garbage or
    truncated bodies, dropped connections) and returns token logprobs when asked (or malformed
    ones, or none), so a real SDK client and the retry logic are exercised end to end.

A council of scripted members, in a test of your own:

    import manyminds
    from manyminds.testing import ScriptedModel

    ScriptedModel.register_script("a", "William Shakespeare wrote Hamlet.")
    ScriptedModel.register_script("b", {"Hamlet": "Shakespeare.", "*": "I don't know."})
    verdict = manyminds.ask("Who wrote Hamlet?", models=["scripted/a", "scripted/b"], store=False)
    assert verdict.members and verdict.answer

Or a real OpenAI-compatible endpoint that fails twice before it answers:

    from manyminds.testing import Behaviour, FakeOpenAIServer

    with FakeOpenAIServer({"m": Behaviour(text="Paris")}) as server:
        server.queue("429", "500", model="m")
        ...  # point your client (or a settings provider) at server.base_url

The names are loaded on first use: importing this package is cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loopback import Behaviour, FakeOpenAIServer, Fault, LogprobSource, RecordedRequest
    from .scripted import Script, ScriptedModel, register

# name → the submodule that defines it
_LAZY = {
    "Script": "scripted",
    "ScriptedModel": "scripted",
    "register": "scripted",
    "Behaviour": "loopback",
    "FakeOpenAIServer": "loopback",
    "Fault": "loopback",
    "LogprobSource": "loopback",
    "RecordedRequest": "loopback",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Behaviour", "FakeOpenAIServer", "Fault", "LogprobSource", "RecordedRequest", "Script", "ScriptedModel", "register"]
