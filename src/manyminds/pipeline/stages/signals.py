"""Per-member signals that come from the answer itself: token probabilities and a verbalised
confidence. (Agreement comes from the compare stage, semantic entropy from self-consistency's
samples; both fill in the same `MemberSignals`.)

The verbalised confidence follows Tian et al. 2023: asked for, a model's stated confidence is
often better calibrated than its token probabilities. We ask for one line, "Confidence: NN%",
at the end, and read it tolerantly — models write `**Confidence:** 85%`, `Confidence: 0.85`,
`(Confidence: 90 percent)` or put it after the last sentence — and remove it from the text so
that compare, review and the chair see the answer alone.
"""

from __future__ import annotations

import re

from ...models.base import Completion
from ...models.logprobs import drop_suffix, token_stats
from ..verdict import MemberSignals

CONFIDENCE_INSTRUCTION = (
    'End your reply with one last line of the form "Confidence: NN%", where NN is how likely '
    "you think it is that your answer is correct."
)

# "confidence", up to a few words or marks of filler ("level", "**:", "is about", "~"), a
# number, an optional unit, then only closing marks to the end of the line.
_CONFIDENCE = re.compile(
    r"""(?P<all>[(\[*_\s]*\bconfidence\b(?:\s+(?:level|score|rating))?[^\w\n]{0,6}
        (?:(?:is|of|about|around|approximately|roughly)\s+){0,2}~?\s*
        (?P<value>\d{1,3}(?:[.,]\d+)?)\s*(?P<unit>%|percent\b|/\s*100\b)?[)\]*_.!\s]*)$""",
    re.IGNORECASE | re.VERBOSE,
)


def with_confidence_request(question: str) -> str:
    return f"{question}\n\n{CONFIDENCE_INSTRUCTION}"


def split_confidence(text: str) -> tuple[str, float | None, int]:
    """(the text without its confidence statement, the confidence in [0, 1] or None, how many
    characters were cut from the end of `text`).

    Only the last non-empty line is read, as the instruction asks: a "confidence" earlier in
    the answer is part of the answer. A value over 100 % is not a confidence: None, text kept.
    """
    body = text.rstrip()
    start = body.rfind("\n") + 1
    match = _CONFIDENCE.search(body, start)
    if match is None:
        return text, None, 0
    raw = match.group("value").replace(",", ".")
    value = float(raw)
    if match.group("unit") or value > 1:  # "85", "85 %"; a bare value ≤ 1 is a fraction ("0.85")
        value /= 100
    if not 0.0 <= value <= 1.0:
        return text, None, 0
    cut = match.start("all")
    return text[:cut], round(value, 4), len(text) - cut


def answer_signals(completion: Completion, *, asked_confidence: bool) -> tuple[str, MemberSignals]:
    """The member's answer text (stripped, confidence line removed when it was asked for) and
    the signals read from the completion."""
    raw = completion.text
    text, confidence, cut = split_confidence(raw) if asked_confidence else (raw, None, 0)
    stats = token_stats(drop_suffix(completion.logprobs, raw, cut))
    signals = MemberSignals(verbal_confidence=confidence)
    if stats is not None:
        signals.token_count = stats.tokens
        signals.mean_token_prob = round(stats.mean_prob, 6)
        signals.min_token_prob = round(stats.min_prob, 6)
        signals.mean_logprob = round(stats.mean_logprob, 6)
    return text.strip(), signals


__all__ = ["CONFIDENCE_INSTRUCTION", "answer_signals", "split_confidence", "with_confidence_request"]
