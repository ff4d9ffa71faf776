"""Topic patterns: how a role's domain and a council's guardrails decide what a text is about.

A pattern is a word or a phrase, matched case-insensitively as whole words (an English plural
`s`/`es` on the last word matches too: "dose" matches "doses"), or a regular expression when it
starts with `re:` (`re:\\d+\\s*[-+*/^]\\s*\\d+`). Matching is plain text search on purpose: the
user can read in settings.toml exactly why a question was routed, refused or warned about, and
a test can state it. (The bundled sentence-embedding model would add a similarity threshold
nobody can predict from the settings, and loads numpy for every question.)
"""

from __future__ import annotations

import re
from functools import lru_cache

REGEX_PREFIX = "re:"


class TopicPatternError(ValueError):
    """A pattern that cannot be used (an empty one, or a regular expression that does not compile)."""


@lru_cache(maxsize=1024)
def compile_topic(pattern: str) -> re.Pattern[str]:
    raw = pattern.strip()
    if not raw:
        raise TopicPatternError("a topic pattern is empty")
    if raw.startswith(REGEX_PREFIX):
        body = raw[len(REGEX_PREFIX):]
        if not body.strip():
            raise TopicPatternError(f"topic pattern {pattern!r} has no regular expression after 're:'")
        try:
            return re.compile(body, re.IGNORECASE)
        except re.error as exc:
            raise TopicPatternError(f"topic pattern {pattern!r} is not a valid regular expression: {exc}") from None
    words = [re.escape(w) for w in raw.split()]
    words[-1] += "(?:s|es)?"  # a plural of the last word
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def check_topics(patterns: list[str]) -> list[str]:
    """The patterns, stripped, each one compiled once so that a bad one fails at settings load."""
    out = []
    for p in patterns:
        compile_topic(p)
        out.append(p.strip())
    return out


def first_match(patterns: list[str], text: str) -> str | None:
    """The first pattern (as written) that occurs in `text`, or None."""
    for p in patterns:
        if compile_topic(p).search(text):
            return p
    return None
