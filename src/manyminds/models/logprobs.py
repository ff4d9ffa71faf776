"""Token log-probabilities: parsing what OpenAI-compatible endpoints return, and the summary
the member signals keep.

Two shapes reach us, and either may be malformed or absent:

    chat (OpenAI, vLLM, llama.cpp's /v1/chat/completions *and* its /v1/completions):
        {"content": [{"token": " Paris", "logprob": -0.84, "bytes": [...], "top_logprobs": [...]}, ...]}
    legacy completions (OpenAI's /v1/completions):
        {"tokens": [" Paris", ...], "token_logprobs": [-0.84, ...], "top_logprobs": [...], "text_offset": [...]}

Streams carry the same shape per chunk (one or a few tokens each). The SDK hands us pydantic
objects (with unknown fields kept as extras) or, for odd servers, plain dicts; both are read.

Absent is not zero: anything we cannot read returns None, never an empty or invented list, so
a signal computed from it is absent too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

# A log-probability is ≤ 0; servers round, so allow a hair above (float32 noise).
_LOGPROB_SLACK = 1e-4
# JSON has no -Infinity (llama.cpp can report it for a token it gave no chance), and e^-100 is
# zero for every use we make of it.
LOGPROB_FLOOR = -100.0


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token and the log-probability (natural log) the model gave it."""

    token: str
    logprob: float


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    value = getattr(obj, name, None)
    if value is None:
        # The OpenAI SDK's legacy `Logprobs` model has no `content` field: llama.cpp's chat-shaped
        # payload on /v1/completions lands in the pydantic extras.
        extra = getattr(obj, "model_extra", None)
        if isinstance(extra, dict):
            value = extra.get(name)
    return value


def _logprob(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    if math.isnan(value) or value > _LOGPROB_SLACK:
        return None
    return max(min(value, 0.0), LOGPROB_FLOOR)


def parse_logprobs(raw: Any) -> list[TokenLogprob] | None:
    """The tokens of one choice's `logprobs` payload, or None when it is absent or malformed.

    An empty list means the server returned a well-formed payload with no tokens (an empty
    answer). A payload with one unreadable entry is rejected whole: a mean over the readable
    rest would silently describe a different answer.
    """
    if raw is None:
        return None
    content = _get(raw, "content")
    if content is not None:
        if not isinstance(content, (list, tuple)):
            return None
        out = []
        for entry in content:
            lp = _logprob(_get(entry, "logprob"))
            token = _get(entry, "token")
            if lp is None or not isinstance(token, str):
                return None
            out.append(TokenLogprob(token, lp))
        return out
    values = _get(raw, "token_logprobs")
    tokens = _get(raw, "tokens")
    if not isinstance(values, (list, tuple)) or not isinstance(tokens, (list, tuple)) or len(values) != len(tokens):
        return None
    out = []
    for token, value in zip(tokens, values):
        lp = _logprob(value)
        if lp is None or not isinstance(token, str):
            return None
        out.append(TokenLogprob(token, lp))
    return out


def trim_unspoken(tokens: list[TokenLogprob] | None) -> list[TokenLogprob] | None:
    """Without the trailing tokens that spell nothing: they are not part of the answer.

    Seen on llama.cpp: a whole answer ends with the end-of-turn token (spelled ""), which its
    stream never sends; and a stream sends the tokens of a stop sequence it is holding back as
    "" and then cuts them, which a whole answer leaves out. A "" token inside the answer is
    kept — its text arrives with the next token. Trimmed, both modes give the same tokens.
    """
    if not tokens:
        return tokens
    end = len(tokens)
    while end and tokens[end - 1].token == "":
        end -= 1
    return tokens[:end]


class StreamLogprobs:
    """Collects a stream's per-chunk payloads into one list (None when no chunk had one, or
    when any chunk's payload was malformed)."""

    def __init__(self) -> None:
        self.tokens: list[TokenLogprob] = []
        self.seen = False
        self.broken = False

    def add(self, raw: Any) -> None:
        if raw is None:
            return  # role-only and finish chunks carry `logprobs: null`
        parsed = parse_logprobs(raw)
        if parsed is None:
            self.broken = True
            return
        self.seen = True
        self.tokens.extend(parsed)

    def result(self) -> list[TokenLogprob] | None:
        if self.broken or not self.seen:
            return None
        return trim_unspoken(self.tokens)


@dataclass(frozen=True)
class TokenStats:
    """What the member signals keep of an answer's tokens."""

    tokens: int
    mean_prob: float  # arithmetic mean of exp(logprob)
    min_prob: float
    mean_logprob: float  # length-normalised log-likelihood


def token_stats(logprobs: Sequence[TokenLogprob] | None) -> TokenStats | None:
    """Summary of the scored tokens; None when there are none to summarise."""
    if not logprobs:
        return None
    values = [t.logprob for t in logprobs]
    probs = [math.exp(v) for v in values]
    mean_lp = sum(values) / len(values)
    return TokenStats(
        tokens=len(values),
        mean_prob=sum(probs) / len(probs),
        min_prob=min(probs),
        mean_logprob=mean_lp,
    )


def drop_suffix(logprobs: list[TokenLogprob] | None, text: str, suffix_chars: int) -> list[TokenLogprob] | None:
    """The tokens without those that spell the last `suffix_chars` characters of `text`.

    Used to leave the "Confidence: NN%" line out of the token statistics. Only done when the
    tokens spell `text` exactly (some servers show held-back tokens as ""); otherwise the
    tokens are kept as they are — a few extra tokens bias the mean far less than a wrong cut.
    """
    if not logprobs or suffix_chars <= 0 or "".join(t.token for t in logprobs) != text:
        return logprobs
    keep = list(logprobs)
    dropped = 0
    while keep and dropped < suffix_chars:
        dropped += len(keep.pop().token)
    return keep


def to_pairs(logprobs: Sequence[TokenLogprob] | None) -> list[list[Any]] | None:
    return None if logprobs is None else [[t.token, t.logprob] for t in logprobs]


def from_pairs(pairs: Any) -> list[TokenLogprob] | None:
    """The inverse of `to_pairs`, tolerant: a stored value we cannot read is absent."""
    if not isinstance(pairs, list):
        return None
    out = []
    for pair in pairs:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)):
            return None
        lp = _logprob(pair[1])
        if lp is None:
            return None
        out.append(TokenLogprob(pair[0], lp))
    return out


__all__ = [
    "StreamLogprobs", "TokenLogprob", "TokenStats", "drop_suffix", "from_pairs", "parse_logprobs", "to_pairs",
    "token_stats", "trim_unspoken",
]  # fmt: skip
