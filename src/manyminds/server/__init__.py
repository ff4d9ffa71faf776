"""The HTTP server: the run API, the OpenAI-compatible endpoint, SSE and the web page.

`create_app(...)` (app.py) builds the FastAPI app; `manyminds serve` (cli/serve.py) runs it.
The job queue and worker live in jobs/ (no FastAPI): `manyminds ask --deep` queues without the server.
"""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See `manyminds.server.app.create_app`."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
