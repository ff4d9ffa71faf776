"""Structured logs for the server: one JSON object per line, with secrets scrubbed.

    {"ts": "2026-11-05T09:30:01.250Z", "level": "info", "logger": "manyminds.server.access",
     "msg": "request", "method": "POST", "path": "/v1/chat/completions", "status": 200, ...}

What can leak, and why it does not:
- the bearer token: the access log writes the path without the query string (the web page may
  send `?token=`), never headers; uvicorn's own access log, which prints the full request line,
  is switched off;
- API keys: they never enter requests or job rows, and model errors are built without them
  (models/sdk.py). As a last line of defence every record is passed through `Scrubber`, which
  replaces the configured token, every key it can find (environment variables named *_API_KEY
  or *_TOKEN, the key file) and anything shaped like `Bearer …` or `sk-…`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, TextIO

from ..store.db import now_iso

# Attributes every LogRecord has; anything else was passed in `extra=` and becomes a field.
# (uvicorn adds `color_message`, the message again with terminal colour codes.)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName", "color_message"}
_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\b(sk-)[A-Za-z0-9_-]{8,}"),
    re.compile(r"(?i)([?&]token=)[^&\s\"]+"),
]
MASK = "***"


class Scrubber:
    """Replaces known secrets and secret-shaped strings in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole. Very short values
        # ("1", "x") would mask half the log and cannot be real keys.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text


def known_secrets(token: str | None = None) -> list[str]:
    """The token and every API key this process could know about."""
    found = [token or ""]
    found += [v for k, v in os.environ.items() if k.endswith(("_API_KEY", "_TOKEN", "_KEY")) and v]
    try:
        from ..config import read_key_file

        found += list(read_key_file().values())
    except Exception:  # noqa: BLE001 - an unreadable key file must not stop the server; it is reported elsewhere
        pass
    return found


class JsonFormatter(logging.Formatter):
    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self.scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": now_iso(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return self.scrub(json.dumps(doc, ensure_ascii=False, default=str))


def configure_logging(
    *, level: str = "info", stream: TextIO | None = None, path: str | Path | None = None, secrets: Iterable[str] = ()
) -> logging.Handler:
    """Send manyminds' and uvicorn's logs, as JSON lines, to `path` or `stream` (stderr)."""
    handler: logging.Handler
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(Scrubber(secrets)))
    for name in ("manyminds", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    # uvicorn's access log prints the request line with its query string (?token=…): ours
    # (access middleware in app.py) writes the path only.
    access = logging.getLogger("uvicorn.access")
    access.handlers, access.propagate, access.disabled = [], False, True
    return handler
