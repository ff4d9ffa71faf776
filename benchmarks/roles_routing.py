"""What roles cost per question, model time excluded: the routing decision alone (topic
matching of every specialist against the question), and the whole council run with ScriptedModel
members — four plain members, against the same four seats with roles (maths, health, fact-checker)
plus a critic, whose review is one more (scripted) call. Process CPU time.

    python benchmarks/roles_routing.py [--questions 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from _common import council_of

from manyminds.pipeline.run import run_council
from manyminds.pipeline.specialists import plan_specialists
from manyminds.pipeline.stages.fanout import Member
from manyminds.roles import known_roles
from manyminds.testing import ScriptedModel

QUESTIONS = ["What is 17 * 23?", "Who wrote Hamlet?", "How much sleep is healthy?", "What dose of aspirin is safe?",
             "Solve the equation x + 2 = 5", "What is the capital of Australia?", "Is a cold caused by a virus?",
             "What is the probability of two sixes?"]


def with_roles(council, roles: dict[str, str]):  # noqa: ANN001, ANN201
    shipped = known_roles()
    members = []
    for m in council.members:
        if m.name in roles:
            role = shipped[roles[m.name]]
            m = Member(settings=m.settings.model_copy(update={"system": role.system_prompt(m.settings.system)}),
                       model=m.model, max_concurrency=m.max_concurrency, role=role)
        members.append(m)
    council.members = members
    return council


def make(roles: bool):  # noqa: ANN201
    answers = {"plain": "391", "calc": "Answer: 391", "nurse": "Seven hours.", "facts": "391",
               "judge": '{"errors": [], "ranking": ["A", "B"]}'}
    if not roles:
        answers.pop("judge")
    council = council_of({n: ScriptedModel(n, a) for n, a in answers.items()}, chair=ScriptedModel("chair", "391"))
    if roles:
        council = with_roles(council, {"calc": "maths", "nurse": "health-with-caution", "facts": "fact-checker", "judge": "critic"})
    return council


async def per_question(council, n: int) -> list[float]:  # noqa: ANN001
    await run_council(QUESTIONS[0], council)
    out = []
    for i in range(n):
        start = time.process_time()
        await run_council(QUESTIONS[i % len(QUESTIONS)], council)
        out.append((time.process_time() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=200)
    n = parser.parse_args().questions

    council = make(True)
    start = time.process_time()
    for i in range(n * 10):
        plan_specialists(council, QUESTIONS[i % len(QUESTIONS)])
    routing_ms = (time.process_time() - start) * 1000 / (n * 10)

    plain = asyncio.run(per_question(make(False), n))
    roled = asyncio.run(per_question(make(True), n))
    print(f"routing decision: {routing_ms:.3f} ms per question (3 specialists + 1 critic, {n * 10} questions)")
    print(f"council without roles: {statistics.median(plain):.2f} ms median CPU per question")
    print(f"council with roles and a critic: {statistics.median(roled):.2f} ms median CPU per question")
    print(f"ratio with / without: {statistics.median(roled) / statistics.median(plain):.2f}")


if __name__ == "__main__":
    main()
