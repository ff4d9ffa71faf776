"""Early consensus: when the fan-out may stop waiting for the members still answering.

The members' answers arrive one by one (fanout.py). After each, the answers so far are
clustered with the compare stage's own rule (`compare.compare` over heuristic short answers:
the same equivalence the vote counts, and no extra model call), and the run is *settled* when
the heaviest cluster's weight exceeds the runner-up's plus the weight of every member still
answering: whatever those say, the weighted vote (`synthesize.vote`) cannot choose another
answer. A quorum of answers is needed too, so a council never settles on less than its own
rule allows. Ties are never settled early: `vote` breaks them by member count and order, which
the members still answering could change.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..verdict import MemberAnswer
from .compare import compare


@dataclass
class Settled:
    """Why the fan-out stopped waiting: the answer that cannot lose, its weight, the best any
    other answer could still reach, and the members left unheard."""

    answer: str
    members: list[str]
    weight: float
    challenger: float  # the runner-up's weight plus every pending member's
    pending: list[str]

    def reason(self) -> str:
        return (
            f"{len(self.members)} member(s) ({', '.join(self.members)}) agree on {self.answer!r} with weight "
            f"{self.weight:g}; the other answers plus the {len(self.pending)} member(s) still answering "
            f"({', '.join(self.pending)}) could reach at most {self.challenger:g}"
        )


def settled(
    question: str,
    answers: list[MemberAnswer],
    pending: list[tuple[str, float]],
    weights: dict[str, float],
    *,
    quorum: int,
    aliases: dict[str, list[str]] | None = None,
) -> Settled | None:
    """`answers`: the answers so far; `pending`: (member, weight) of those still answering.
    A `Settled` when the vote's winner can no longer change, else None."""
    if not pending or sum(1 for a in answers if a.ok) < quorum:
        return None
    agreement = compare(answers, weights, aliases=aliases, question=question)
    if not agreement.clusters:
        return None
    lead = agreement.clusters[0]
    runner_up = agreement.clusters[1].weight if len(agreement.clusters) > 1 else 0.0
    challenger = runner_up + sum(w for _, w in pending)
    if lead.weight <= challenger + 1e-9:
        return None
    return Settled(lead.answer, list(lead.members), lead.weight, challenger, [m for m, _ in pending])
