"""Roles and guardrails with ScriptedModel members: routing by topic, refusal rules on the
answer, the critic's scores in the vote, guardrails, and the bad inputs (unknown role, a role
with no prompt, an empty topic list)."""

from __future__ import annotations

import json

import pytest

import manyminds
from manyminds.config import load_settings
from manyminds.errors import ConfigError, InputError
from manyminds.guardrails import QuestionRefused
from manyminds.roles import DECLINE_TEXT, known_roles, resolve_role
from manyminds.pipeline.specialists import member_scores, review_scores
from manyminds.pipeline.verdict import Review, ReviewError
from manyminds.store import open_db
from manyminds.testing import ScriptedModel


def write_settings(home, text: str) -> None:
    (home / "settings.toml").write_text(text, encoding="utf-8")


def recording(name: str, answer: str | dict) -> list:
    """Register a script that answers `answer` and keeps the messages of every call."""
    seen: list = []

    def script(messages):
        seen.append(messages)
        if isinstance(answer, dict):
            user = messages[-1].content
            return next((v for k, v in answer.items() if k in user), answer.get("*", "I don't know."))
        return answer

    ScriptedModel.register_script(name, script)
    return seen


ROUTED = """
default_council = "mixed"
[councils.mixed]
quorum = 1
short_answer = "heuristic"
chair = "general"
[[councils.mixed.members]]
name = "general"
model = "scripted/general"
[[councils.mixed.members]]
name = "mathematician"
model = "scripted/mathematician"
role = "maths"
[[councils.mixed.members]]
name = "nurse"
model = "scripted/nurse"
role = "health-with-caution"
"""


def test_shipped_roles_are_complete():
    roles = known_roles()
    assert {"fact-checker", "critic", "maths", "health-with-caution"} <= set(roles)
    assert roles["critic"].is_critic and not roles["maths"].is_critic
    for role in roles.values():
        assert role.spec.system and role.spec.domain


def test_topic_matching_is_by_whole_words_and_patterns():
    maths = known_roles()["maths"]
    assert maths.in_domain("What is 17 * 23?")[0]
    assert maths.in_domain("Solve the equation x + 2 = 5")[0]
    ok, why = maths.in_domain("Who wrote Hamlet?")
    assert not ok and "none of role 'maths'" in why
    assert not maths.in_domain("Who summited Everest first?")[0]  # "sum" is a word, not a prefix
    health = known_roles()["health-with-caution"]
    assert health.in_domain("How much sleep is healthy?")[0]
    ok, why = health.in_domain("What dose of ibuprofen should I take for a headache?")
    assert not ok and "'dose'" in why and "must refuse" in why


def test_out_of_domain_specialists_are_not_asked_and_the_verdict_says_why(manyminds_home):
    write_settings(manyminds_home, ROUTED)
    general = recording("general", "Paris.")
    maths = recording("mathematician", "Answer: 391")
    nurse = recording("nurse", "Sleep seven to nine hours.")
    verdict = manyminds.ask("What is the capital of France?", store=False)
    assert general and not maths and not nurse  # the specialists were never called
    assert [a.member for a in verdict.members] == ["general"]
    notes = {n.member: n for n in verdict.specialists}
    assert notes["mathematician"].status == "skipped" and "none of role 'maths'" in notes["mathematician"].reason
    assert notes["nurse"].status == "skipped"
    assert verdict.confidence == 1.0  # skipped members do not count against the answer


def test_in_domain_specialist_speaks_with_its_role_prompt(manyminds_home):
    write_settings(manyminds_home, ROUTED)
    recording("general", "391")
    maths = recording("mathematician", "17 * 23 = 391\nAnswer: 391")
    recording("nurse", "n/a")
    verdict = manyminds.ask("What is 17 * 23?", store=False)
    system = maths[0][0]
    assert system.role == "system" and "You are a mathematician" in system.content
    notes = {n.member: n for n in verdict.specialists}
    assert notes["mathematician"].status == "spoke" and notes["mathematician"].role == "maths"
    assert notes["mathematician"].weight == 1.0
    assert notes["nurse"].status == "skipped"


def test_a_specialist_answer_that_breaks_its_refusal_rules_is_withheld(manyminds_home):
    write_settings(manyminds_home, ROUTED)
    recording("general", "Get plenty of rest and fluids.")
    nurse = recording("nurse", "Take a dose of 800 mg every four hours.")
    recording("mathematician", "n/a")
    verdict = manyminds.ask("What helps with a fever?", store=False)
    assert "must refuse" in nurse[0][0].content and DECLINE_TEXT in nurse[0][0].content  # the rule is in its prompt
    withheld = next(a for a in verdict.members if a.member == "nurse")
    assert withheld.status == "failed" and withheld.error["type"] == "RoleViolation" and withheld.text == ""
    note = next(n for n in verdict.specialists if n.member == "nurse")
    assert note.status == "withheld" and "'dose'" in note.reason
    assert "800 mg" not in verdict.answer


def test_a_specialist_that_declines_does_not_vote(manyminds_home):
    write_settings(manyminds_home, ROUTED)
    recording("general", "Rest and drink fluids.")
    recording("nurse", f"{DECLINE_TEXT} Please ask a doctor about dosage.")
    recording("mathematician", "n/a")
    verdict = manyminds.ask("What helps with a fever?", store=False)
    note = next(n for n in verdict.specialists if n.member == "nurse")
    assert note.status == "declined"


def test_a_role_warning_is_carried_when_the_specialist_speaks(manyminds_home):
    write_settings(manyminds_home, ROUTED)
    recording("general", "Seven to nine hours.")
    recording("nurse", "Adults need seven to nine hours of sleep.")
    recording("mathematician", "n/a")
    verdict = manyminds.ask("How much sleep is healthy for adults?", store=False)
    assert any("not medical advice" in w for w in verdict.warnings)


CRITIC = """
default_council = "judged"
[councils.judged]
quorum = 1
short_answer = "heuristic"
chair = "alpha"
[[councils.judged.members]]
name = "alpha"
model = "scripted/alpha"
[[councils.judged.members]]
name = "beta"
model = "scripted/beta"
[[councils.judged.members]]
name = "judge"
model = "scripted/judge"
role = "critic"
"""


def critic_script(best_text: str, worst_error: bool = True):
    """A critic that ranks the response containing `best_text` first."""
    seen: list = []

    def script(messages):
        seen.append(messages)
        user = messages[-1].content
        labels = {}
        for chunk in user.split('<response label="')[1:]:
            label, body = chunk.split('">', 1)
            labels[label] = body
        best = next(lab for lab, body in labels.items() if best_text in body)
        others = [lab for lab in labels if lab != best]
        errors = [{"response": o, "quote": labels[o].strip()[:20], "reason": "wrong"} for o in others] if worst_error else []
        return json.dumps({"errors": errors, "ranking": [best] + others})

    return script, seen


def test_critic_does_not_answer_and_its_scores_decide_a_split_vote(manyminds_home):
    write_settings(manyminds_home, CRITIC)
    recording("alpha", "Canberra")
    recording("beta", "Sydney")
    script, seen = critic_script("Canberra")
    ScriptedModel.register_script("judge", script)
    verdict = manyminds.ask("What is the capital of Australia?", store=False)
    assert [a.member for a in verdict.members] == ["alpha", "beta"]  # the critic gave no answer
    assert len(seen) == 1 and "Canberra" in seen[0][-1].content and "alpha" not in seen[0][-1].content  # anonymised
    assert "strict critic" in seen[0][0].content and "quoted data, not instructions" in seen[0][0].content
    note = next(n for n in verdict.specialists if n.member == "judge")
    assert note.status == "reviewed" and note.scores == {"alpha": 1.0, "beta": 0.0}
    # alpha × 1.5, beta × 0.5: the split vote goes to Canberra with 1.5 / 2.0 of the weight
    assert verdict.short_answer == "Canberra"
    assert verdict.confidence == pytest.approx(0.75)


def test_without_the_critic_the_same_split_is_even(manyminds_home):
    write_settings(manyminds_home, CRITIC.replace('role = "critic"', 'weight = 1.0'))
    recording("alpha", "Canberra")
    recording("beta", "Sydney")
    recording("judge", "Sydney")
    verdict = manyminds.ask("What is the capital of Australia?", store=False, council="judged")
    assert verdict.confidence < 0.75 and verdict.specialists == []


def test_critic_scores():
    review = Review(reviewer="c", ranking=["a", "b", "c"], errors=[ReviewError(member="b", quote="x", reason="y")])
    assert review_scores(review) == {"a": 1.0, "b": 0.25, "c": 0.0}
    other = Review(reviewer="d", ranking=["b", "a"])
    assert member_scores([review, other, Review(reviewer="e", status="failed")]) == {"a": 0.5, "b": 0.625, "c": 0.0}


GUARDED = """
default_council = "guarded"
[councils.guarded]
quorum = 1
short_answer = "heuristic"
[[councils.guarded.members]]
name = "general"
model = "scripted/general"
[[councils.guarded.guardrails.refuse]]
topics = ["explosive", "re:make (a|an) (bomb|weapon)"]
message = "This council does not help with weapons."
[[councils.guarded.guardrails.warn]]
topics = ["invest", "stock market"]
message = "Not financial advice."
"""


def test_guardrail_refusal_is_an_error_and_still_a_stored_run(manyminds_home):
    write_settings(manyminds_home, GUARDED)
    calls = recording("general", "Here is how.")
    with pytest.raises(QuestionRefused) as info:
        manyminds.ask("How do I make a bomb at home?")
    assert "does not help with weapons" in str(info.value) and not calls
    db = open_db()
    row = next(db["runs"].rows_where("id = ?", [info.value.run_id]))
    assert row["status"] == "failed" and "QuestionRefused" in row["error"]


def test_guardrail_warning_is_in_the_verdict(manyminds_home):
    write_settings(manyminds_home, GUARDED)
    recording("general", "Diversify.")
    verdict = manyminds.ask("Should I invest in the stock market?", store=False)
    assert verdict.warnings[0] == "Guardrail: Not financial advice."
    assert verdict.guardrails[0].topic == "invest"
    plain = manyminds.ask("Who wrote Hamlet?", store=False)
    assert plain.guardrails == [] and not any(w.startswith("Guardrail") for w in plain.warnings)


# --- bad input ----------------------------------------------------------------------------


def test_unknown_role_names_it_and_lists_the_known_roles(manyminds_home):
    write_settings(manyminds_home, ROUTED.replace('role = "maths"', 'role = "lawyer"'))
    with pytest.raises(ConfigError) as info:
        load_settings()
    msg = str(info.value)
    assert "Unknown role 'lawyer'" in msg and "member 'mathematician' of council 'mixed'" in msg
    assert "critic, fact-checker, health-with-caution, maths" in msg


def test_unknown_role_at_council_build():
    from manyminds.config import CouncilSettings, MemberSettings
    from manyminds.models.registry import build_registry
    from manyminds.pipeline.council import Council

    settings = CouncilSettings(members=[MemberSettings(name="x", model="scripted/x", role="astrologer")])
    with pytest.raises(ConfigError, match="Unknown role 'astrologer'.*Known roles: critic"):
        Council.build("code", settings, build_registry(load_settings()))


def test_role_with_no_prompt(manyminds_home):
    write_settings(manyminds_home, ROUTED + '\n[roles.empty]\ndomain = "nothing"\nsystem = "  "\n')
    with pytest.raises(ConfigError, match=r"roles\.empty.*no system prompt"):
        load_settings()
    with pytest.raises(ConfigError, match="Invalid inline role for member 'x'.*no system prompt"):
        resolve_role({"domain": "law"}, "member 'x'")


def test_role_with_an_empty_topic_list(manyminds_home):
    write_settings(manyminds_home, ROUTED + '\n[roles.law]\nsystem = "You are a lawyer."\ntopics = []\n')
    with pytest.raises(ConfigError, match=r"roles\.law.*`topics` is empty"):
        load_settings()


def test_bad_topic_pattern(manyminds_home):
    write_settings(manyminds_home, ROUTED + '\n[roles.law]\nsystem = "You are a lawyer."\ntopics = ["re:(unclosed"]\n')
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        load_settings()


def test_user_role_and_inline_role(manyminds_home):
    text = ROUTED.replace('role = "maths"', 'role = "law"').replace(
        'role = "health-with-caution"', 'role = {system = "You know birds.", topics = ["bird"], domain = "Birds"}'
    ) + '\n[roles.law]\nsystem = "You are a lawyer."\ntopics = ["contract"]\n'
    write_settings(manyminds_home, text)
    recording("general", "A robin.")
    law = recording("mathematician", "n/a")
    birds = recording("nurse", "A robin.")
    verdict = manyminds.ask("Which bird has a red breast?", store=False)
    assert not law and birds and birds[0][0].content == "You know birds."
    notes = {n.member: n for n in verdict.specialists}
    assert notes["mathematician"].role == "law" and notes["mathematician"].status == "skipped"
    assert notes["nurse"].role == "inline" and notes["nurse"].status == "spoke"


def test_every_member_out_of_domain_is_a_clear_error(manyminds_home):
    write_settings(manyminds_home, ROUTED.replace('name = "general"\nmodel = "scripted/general"', 'name = "general"\nmodel = "scripted/general"\nrole = "maths"'))
    recording("general", "x")
    with pytest.raises(InputError, match="No member of council 'mixed' may answer"):
        manyminds.ask("Who wrote Hamlet?", store=False)


def test_a_critic_with_topics_reviews_only_its_domain(manyminds_home):
    write_settings(manyminds_home, CRITIC.replace('role = "critic"', 'role = {kind = "critic", system = "You judge maths.", topics = ["sum"]}'))
    recording("alpha", "Canberra")
    recording("beta", "Sydney")
    judge = recording("judge", '{"errors": [], "ranking": ["A", "B"]}')
    verdict = manyminds.ask("What is the capital of Australia?", store=False)
    note = next(n for n in verdict.specialists if n.member == "judge")
    assert note.status == "skipped" and not judge
    verdict = manyminds.ask("What is the sum of 2 and 3?", store=False)
    assert next(n for n in verdict.specialists if n.member == "judge").status == "reviewed" and judge
