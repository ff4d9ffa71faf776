"""The router of `--effort auto`: which tier a question deserves, by simple, visible rules.

Features, all read from the question (no model call):
  * high stakes — health, medicine, law, money: words such as "dose", "symptom", "lawsuit",
    "invest", "tax", "mortgage". A wrong answer costs the asker most here.
  * maths — digits with an operator, or words such as "calculate", "solve", "how many".
  * long-form — asks for an explanation ("Explain …", "Why …", "What were the causes …",
    crosscheck.asks_for_explanation) or is long (LONG_QUESTION_WORDS words or more).
  * closed — everything else: a fact, a yes/no, a lettered choice.
and, once the quick tier has run, its disagreement: whether the members it heard split, failed,
or left the vote unsettled.

The rule (`first_tier`, then `escalate`):
  high stakes → deep (review, revision rounds, grounding when a source is configured);
  long-form   → standard (the full council, claim by claim);
  closed, maths → quick first; if its members disagree (more than one answer among those it
  heard, or a member failed), escalate to standard, reusing the answers quick already has —
  unless quick already heard every seat: the standard tier's vote over the same answers would
  choose the same one (the chair only explains), so quick's answer stands (tuned on the eval
  runs in docs/effort.md: escalating there doubled the tokens for the same answers). Maths escalates to deep instead when quick's winning answer had
  at most half the heard weight — arithmetic disputes are what review rounds settle.
Tuned on eval runs (docs/effort.md has the figures and how many items they rest on).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .crosscheck import asks_for_explanation, is_closed_question

LONG_QUESTION_WORDS = 60

_STAKES = re.compile(
    r"\b(?:health|medical|medicine|medication|drug|dose|dosage|overdose|symptoms?|diagnos\w*|disease|cancer|"
    r"pregnan\w*|treatment|therapy|doctor|surgery|suicid\w*|allerg\w*|vaccin\w*|prescri\w*|"
    r"legal|lawsuit|lawyer|sue|court|contract|visa|immigration|"
    r"money|invest\w*|stocks?|crypto\w*|bitcoin|loan|mortgage|debt|tax(?:es)?|retirement|pension|insurance|"
    r"savings|bank(?:ruptcy)?|salary)\b",
    re.I,
)
_MATHS = re.compile(
    r"(?:\d+(?:\.\d+)?\s*[-+*/×÷^]\s*\d+(?:\.\d+)?|\b(?:calculate|compute|solve|equation|integral|derivative|sum of|product of|"
    r"how many|how much|percent(?:age)?|probability|square root|factorial|divided by|times|plus|minus)\b)",
    re.I,
)


@dataclass
class Features:
    kind: str  # high-stakes | long-form | maths | closed
    words: int
    matched: str = ""  # the word or phrase that decided the kind
    closed_form: bool = False  # yes/no or lettered options

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "words": self.words, "matched": self.matched, "closed_form": self.closed_form}


def features(question: str) -> Features:
    words = len(question.split())
    closed_form = is_closed_question(question)
    stakes = _STAKES.search(question)
    if stakes:
        return Features("high-stakes", words, stakes.group(0), closed_form)
    if asks_for_explanation(question) and not closed_form:
        return Features("long-form", words, question.split(maxsplit=1)[0], closed_form)
    maths = _MATHS.search(question)
    if maths:
        return Features("maths", words, maths.group(0).strip(), closed_form)
    if words >= LONG_QUESTION_WORDS and not closed_form:
        return Features("long-form", words, f"{words} words", closed_form)
    return Features("closed", words, "", closed_form)


@dataclass
class Choice:
    tier: str
    reason: str
    features: Features
    escalated: bool = False
    quick: dict[str, Any] = field(default_factory=dict)  # what the quick tier found, when it ran


def first_tier(f: Features) -> Choice:
    """The tier to start with. "quick" means: run quick, then `escalate` decides."""
    if f.kind == "high-stakes":
        return Choice("deep", f"high stakes (mentions {f.matched!r}): reviewed, revised and grounded", f)
    if f.kind == "long-form":
        why = f"asks for an explanation ({f.matched!r})" if not f.matched.endswith("words") else f"a long question ({f.matched})"
        return Choice("standard", f"long-form: {why}; the full council compares it claim by claim", f)
    what = f"maths ({f.matched!r})" if f.kind == "maths" else ("a closed question" if f.closed_form else "a short factual question")
    return Choice("quick", f"{what}: the fastest members first", f)


def escalate(choice: Choice, *, clusters: int, failed: int, settled: bool, top_share: float, unheard: int = 1) -> Choice:
    """After quick ran: keep it when every member it heard gave the same answer, else say which
    tier to go on to. `settled` (early consensus cut someone) is recorded, not decisive: quick
    asks so few members that a unanimous quorum is agreement enough."""
    f = choice.features
    quick = {"clusters": clusters, "failed": failed, "settled": settled, "top_share": round(top_share, 4), "unheard": unheard}
    if clusters == 1 and failed == 0:
        return Choice("quick", f"{choice.reason}; they agreed, so quick's answer stands", f, quick=quick)
    why = []
    if clusters != 1:
        why.append(f"{clusters} different answers" if clusters else "no usable answer")
    if failed:
        why.append(f"{failed} member(s) failed")
    disagreement = ", ".join(why)
    if f.kind == "maths" and top_share <= 0.5:
        return Choice("deep", f"{choice.reason}; quick disagreed ({disagreement}), and arithmetic disputes go to review rounds",
                      f, escalated=True, quick=quick)
    if unheard == 0:
        # Quick already heard every seat: the standard tier's vote would choose the same answer
        # (a chair only explains it), so escalating to it costs tokens and changes nothing.
        return Choice("quick", f"{choice.reason}; they disagreed ({disagreement}), but every seat was heard, so the "
                      "full council's vote would choose the same answer", f, quick=quick)
    return Choice("standard", f"{choice.reason}; quick disagreed ({disagreement}): the rest of the council was asked",
                  f, escalated=True, quick=quick)
