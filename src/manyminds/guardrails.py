"""Guardrails: a council's rules on what it refuses to answer and what it answers with a warning.

    [[councils.NAME.guardrails.refuse]]
    topics = ["explosive", "re:make (a|an) (bomb|weapon)"]
    message = "This council does not answer questions about weapons."

    [[councils.NAME.guardrails.warn]]
    topics = ["invest", "stock"]
    message = "Not financial advice."

Checked on the question before any model sees it (pipeline/run.py). A refused question raises
`QuestionRefused` — the run is stored as failed with the rule that refused it, the CLI exits
with code 2 (bad input), the server answers 422 — so no caller can mistake a refusal for an
answer. A warned question is answered and its verdict carries the rule's message in `warnings`
(prefixed "Guardrail:") and in `guardrails`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import InputError
from .pipeline.verdict import GuardNote
from .topics import TopicPatternError, check_topics, first_match

DEFAULT_REFUSAL = "This council is set up not to answer questions on this topic."
DEFAULT_WARNING = "This question touches a topic the council answers with caution; check the answer with an expert."


class GuardRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topics: list[str] = Field(min_length=1)
    message: str | None = None

    @field_validator("topics")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        try:
            return check_topics(value)
        except TopicPatternError as exc:
            raise ValueError(str(exc)) from None


class GuardrailSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refuse: list[GuardRule] = Field(default_factory=list)
    warn: list[GuardRule] = Field(default_factory=list)


class QuestionRefused(InputError):
    """A council's guardrail refuses the question. Bad input for this council: exit code 2."""

    def __init__(self, topic: str, message: str):
        self.topic, self.message = topic, message
        super().__init__(f"Refused by the council's guardrails (topic {topic!r}): {message}")

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "topic": self.topic, "refusal": self.message}


def check_question(rules: GuardrailSettings | None, question: str) -> list[GuardNote]:
    """Raise `QuestionRefused` for a refused question; else the warnings that apply (maybe none)."""
    if rules is None:
        return []
    for rule in rules.refuse:
        hit = first_match(rule.topics, question)
        if hit is not None:
            raise QuestionRefused(hit, rule.message or DEFAULT_REFUSAL)
    notes = []
    for rule in rules.warn:
        hit = first_match(rule.topics, question)
        if hit is not None:
            notes.append(GuardNote(action="warn", topic=hit, message=rule.message or DEFAULT_WARNING))
    return notes
