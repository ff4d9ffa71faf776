"""Token logprobs as the loopback server sends them (see loopback.py), in OpenAI's two shapes."""

from __future__ import annotations

from typing import Any, Callable, Literal, Union

# None: a fixed -0.1 per token; a list: these values in order (the last one repeated); False:
# never (an endpoint without logprobs); "malformed": entries whose logprob is not a number (on
# the legacy endpoint: one value short); a callable: gets the tokens and returns the raw
# `logprobs` payload to send (in streams, called once per chunk with that chunk's tokens).
LogprobSource = Union[None, bool, list[float], Literal["malformed"], Callable[[list[str]], Any]]
DEFAULT_LOGPROB = -0.1


def _values(source: LogprobSource, start: int, n: int) -> list[float]:
    if isinstance(source, list) and source:
        values = source
        return [float(values[min(i, len(values) - 1)]) for i in range(start, start + n)]
    return [DEFAULT_LOGPROB] * n


def logprobs_payload(kind: str, body: dict[str, Any], source: LogprobSource, tokens: list[str], start: int) -> Any:
    """The `logprobs` of a choice holding `tokens` (the answer's tokens from position `start`),
    or None when not asked for or turned off."""
    if kind == "anthropic" or not body.get("logprobs") or source is False:
        return None
    if callable(source):
        return source(tokens)
    values = _values(source, start, len(tokens))
    bad = source == "malformed"
    if kind == "chat":
        def entry(t: str, v: float) -> dict[str, Any]:
            item = {"token": t, "logprob": "n/a" if bad else v, "bytes": list(t.encode())}
            return {**item, "top_logprobs": [item]}

        return {"content": [entry(t, v) for t, v in zip(tokens, values)]}
    offsets, at = [], 0
    for t in tokens:  # character offsets into the answer, as OpenAI's legacy endpoint gives them
        offsets.append(at)
        at += len(t)
    return {
        "tokens": tokens,
        # Malformed: one value short, so tokens and values no longer line up.
        "token_logprobs": values[:-1] if bad else values,
        "top_logprobs": [{t: v} for t, v in zip(tokens, values)],
        "text_offset": offsets,
    }


__all__ = ["DEFAULT_LOGPROB", "LogprobSource", "logprobs_payload"]
