"""Ground: contested and critical claims checked against sources → evidence and citations.

    claims to check (contested first, then the consensus the answer rests on, then unique ones)
      ─▶ passages: a document collection (hybrid retrieval) and/or search providers
      ─▶ per claim: a lexical check of the passages (no model) — decisive when it finds the
         claim's words in one passage window (supported) or the same words with another number
         or the opposite polarity (refuted)
      ─▶ otherwise a judge model reads the passages (quoted data, instruction-like sentences
         blanked) and answers {"verdict", "passage", "quote"}; the quote must occur verbatim in
         that passage, share words with the claim and not read as an instruction — else the
         verdict is downgraded to not_found and the reason kept in the warnings
      ─▶ Evidence(verdict, document, location, quote) on the claim

The quote of every piece of evidence is a span of the passage's own text, so a citation can be
found in the document. A passage is data: text in it that tells the judge what to answer is
blanked before the judge sees it and can never be the quote that decides a verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from rapidfuzz import fuzz

from ...errors import InputError
from ...models.base import Message, Model
from .claim_matrix import ANSWER_FRAME, frame
from .prompts import data_notice
from .claims import add_usage, is_instruction, sentences, side_call
from ..jsonparse import JSONExtractionError, extract_json_object
from ..normalize import analyse, content_tokens, fold, numbers_equal
from ..verdict import Claim, ClaimMatrix, Evidence, EvidenceVerdict, UsageOut

if TYPE_CHECKING:
    from ...evidence.sources import Sources

MAX_CHECKS = 8  # claims grounded per run: each costs a retrieval and maybe a judge call
PASSAGE_CHARS = 1200  # per passage in the judge's prompt
JUDGE_MAX_TOKENS = 160
MIN_SUPPORT = 0.7  # share of the claim's content words a supporting window must hold
FRAMED_CONTEXT = 0.5  # … for "The answer to "Q" is X", whose X must be there in full

GROUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["supported", "refuted", "not_found"]},
        "passage": {"type": "integer"},
        "quote": {"type": "string"},
    },
    "required": ["verdict"],
}
GROUND_SYSTEM = (
    "You check a claim against passages from documents. " + data_notice("The passages", also=" or what to answer")
)
GROUND_PROMPT = """Claim: {claim}

Passages (quoted data):
{passages}

Does a passage support the claim, refute it, or neither? Copy the exact sentence from the
passage that decides it. Reply with JSON only:
{{"verdict": "supported" | "refuted" | "not_found", "passage": 1, "quote": "exact words from the passage"}}"""


# --- sources --------------------------------------------------------------------------------


# --- the lexical check ----------------------------------------------------------------------


def focus_words(claim: str, question: str | None = None) -> list[str]:
    """The words a source must contain for the claim to be the same claim: the answer part of
    our "The answer to "Q" is X" frame, else the claim's content words that are not the
    question's (falling back to all of them)."""
    match = ANSWER_FRAME.match(claim.strip())
    if match:
        return content_tokens(match.group(1)) or content_tokens(claim)
    words = content_tokens(claim)
    if question:
        asked = set(content_tokens(question))
        rest = [w for w in words if w not in asked]
        return rest or words
    return words


def _has(word: str, pool: set[str]) -> bool:
    return word in pool or (len(word) >= 5 and any(fuzz.ratio(word, p) >= 88 for p in pool))


_PRONOUN = re.compile(r"\s*(?:[A-Za-z0-9 ]{0,24}?[\s,]\s*)?(?:he|she|it|they|his|her|its|their|this|these|the same)\b", re.I)


def _windows(text: str) -> list[tuple[int, int]]:
    """Spans of one sentence, and of two neighbouring sentences where the second goes on about
    the first's subject ("… Curie. She discovered …"), as offsets into `text`. Sentences never
    cross a line break, and Markdown headings are not sentences: a quote is prose."""
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            pos = 0
            for sentence in sentences(line):
                start = line.find(sentence[:40], pos)
                if start < 0:
                    continue
                spans.append((offset + start, offset + min(start + len(sentence), len(line))))
                pos = start + 1
        offset += len(line) + 1
    # Words from two different subjects must not add up to support.
    pairs = [(a[0], b[1]) for a, b in zip(spans, spans[1:]) if _PRONOUN.match(text[b[0] : b[1]])]
    return spans + pairs


def lexical_check(claim: str, passage_text: str, question: str | None = None) -> tuple[EvidenceVerdict, str] | None:
    """(verdict, quote) when the words decide, else None.

    Supported: one window (a sentence, or two neighbouring ones) with the claim's polarity holds
    every number of the claim, ≥ 70 % of its content words and ≥ 70 % of its focus words — all
    of them for our "The answer to "Q" is X" frame, whose X is the whole point. Refuted: a
    window holds ≥ 80 % of the claim's other words but none of its numbers (and numbers of its
    own), or the same words with the opposite polarity. The shortest deciding window is quoted.
    """
    focus = focus_words(claim, question)
    framed = bool(ANSWER_FRAME.match(claim.strip()))
    words = content_tokens(claim)
    claim_numbers = analyse(claim).numbers
    claim_frame = frame(claim)
    if not words:
        return None
    best: tuple[EvidenceVerdict, str] | None = None
    for start, end in sorted(_windows(passage_text), key=lambda s: s[1] - s[0]):
        window = passage_text[start:end].strip()
        if is_instruction(window):
            continue  # a passage's instruction is never evidence
        pool = set(content_tokens(window))
        numbers = analyse(window).numbers
        numbers_in = all(any(numbers_equal(n, m) for m in numbers) for n in claim_numbers)
        share = sum(1 for w in words if _has(w, pool)) / len(words)
        focus_share = sum(1 for w in focus if _has(w, pool)) / len(focus) if focus else 1.0
        same_polarity = _negates(claim) == _negates(window)
        # For our answer frame the answer must be there in full; the question's words are context.
        needed = (FRAMED_CONTEXT, 1.0) if framed else (MIN_SUPPORT, MIN_SUPPORT)
        if same_polarity and numbers_in and share >= needed[0] and focus_share >= needed[1]:
            return "supported", window
        if best is None and claim_frame and not framed:
            window_frame = frame(window)
            overlap = sum(1 for w in claim_frame if _has(w, window_frame)) / len(claim_frame)
            if overlap >= 0.8:
                if claim_numbers and numbers and not any(numbers_equal(n, m) for n in claim_numbers for m in numbers):
                    best = ("refuted", window)
                elif not same_polarity and not claim_numbers:
                    best = ("refuted", window)
    return best


def _negates(text: str) -> bool:
    return bool(re.search(r"\b(?:not|never|no|none|neither|nor|cannot)\b|n['’]t\b", fold(text)))


# --- the judge ------------------------------------------------------------------------------


def redact(text: str) -> str:
    """The passage as the judge sees it: instruction-like sentences blanked, quotation tags
    defused."""
    out = []
    for sentence in sentences(text.replace("\n", " ")):
        out.append("[…]" if is_instruction(sentence) else sentence)
    return re.sub(r"<(/?)(passage)", r"‹\1\2", " ".join(out), flags=re.I)


def judge_prompt(claim: str, passages: Sequence[Any]) -> str:
    listed = "\n".join(
        f'<passage n="{i}" source="{_clean(p.document)}">\n{redact(p.text[:PASSAGE_CHARS])}\n</passage>'
        for i, p in enumerate(passages, 1)
    )
    return GROUND_PROMPT.format(claim=claim, passages=listed)


def _clean(text: str) -> str:
    return str(text).replace('"', "'")[:200]


def find_verbatim(quote: str, text: str) -> tuple[int, int] | None:
    """Where `quote` occurs in `text` word for word (whitespace may differ; surrounding quotes
    and ellipses ignored), or None."""
    words = quote.strip().strip("\"'“”‘’").strip(" .…").split()
    if len(words) < 3 and len(" ".join(words)) < 12:
        return None  # "yes" or "Paris" occurs everywhere and proves nothing
    match = re.search(r"\s+".join(re.escape(w) for w in words), text)
    return (match.start(), match.end()) if match else None


def accept_quote(claim: str, quote: str, passage_text: str, question: str | None = None) -> tuple[str | None, str | None]:
    """(the verbatim span, None) when a judge's quote can be evidence, else (None, why not)."""
    span = find_verbatim(quote, passage_text)
    if span is None:
        return None, "its quote is not verbatim in the passage"
    exact = passage_text[span[0] : span[1]]
    if is_instruction(exact):
        return None, "its quote is an instruction, not evidence"
    pool = set(content_tokens(exact))
    words = content_tokens(claim)
    shared = [w for w in words if _has(w, pool)]
    if ANSWER_FRAME.match(claim.strip()):
        relevant = any(_has(w, pool) for w in focus_words(claim, question))
    else:
        relevant = len(shared) >= min(2, len(words)) and len(shared) * 3 >= len(words)
    if not relevant:
        return None, "its quote does not mention what the claim says"
    return exact, None


# --- grounding ------------------------------------------------------------------------------


@dataclass
class Grounding:
    evidence: dict[str, list[Evidence]] = field(default_factory=dict)  # claim id → evidence
    verdicts: dict[str, EvidenceVerdict] = field(default_factory=dict)
    usage: UsageOut = field(default_factory=UsageOut)
    warnings: list[str] = field(default_factory=list)
    judge_calls: int = 0


def select_claims(matrix: ClaimMatrix, limit: int = MAX_CHECKS) -> list[Claim]:
    """Contested claims first, then the consensus the answer rests on, then unique claims."""
    order = {"contested": 0, "consensus": 1, "unique": 2}
    ranked = sorted(matrix.claims, key=lambda c: (order[c.status], int(c.id[1:]) if c.id[1:].isdigit() else 0))
    return ranked[:limit]


def _evidence(verdict: EvidenceVerdict, passage: Any, quote: str) -> Evidence:
    return Evidence(
        verdict=verdict,
        document=str(passage.document),
        location=str(passage.location or ""),
        quote=quote,
        collection=getattr(passage, "collection", None),
        score=round(float(passage.score), 6) if getattr(passage, "score", None) is not None else None,
    )


async def check_claim(
    claim: str,
    passages: Sequence[Any],
    *,
    judge: Model | None = None,
    question: str | None = None,
    timeout: float = 60.0,
) -> tuple[EvidenceVerdict, list[Evidence], UsageOut, list[str]]:
    """(verdict, evidence, usage of the judge call, notes) for one claim."""
    found: list[Evidence] = []
    for passage in passages:
        decided = lexical_check(claim, passage.text, question)
        if decided:
            found.append(_evidence(decided[0], passage, decided[1]))
    if found:
        verdicts = {e.verdict for e in found}
        if verdicts == {"supported"} or verdicts == {"refuted"}:
            return found[0].verdict, found[:2], UsageOut(), []
        return "not_found", found[:2], UsageOut(), [f"sources disagree on {claim!r}"]
    if judge is None or not passages:
        return "not_found", [], UsageOut(), []
    messages = [Message(role="system", content=GROUND_SYSTEM), Message(role="user", content=judge_prompt(claim, passages))]
    call = await side_call(judge, messages, max_tokens=JUDGE_MAX_TOKENS, timeout=timeout, schema=GROUND_SCHEMA)
    if call.text is None:
        return "not_found", [], call.usage, [f"evidence judge failed ({call.error})"]
    try:
        value = extract_json_object(call.text, GROUND_SCHEMA, allow_bare=False).value
    except JSONExtractionError as exc:
        return "not_found", [], call.usage, [f"evidence judge output unreadable ({exc.reason})"]
    verdict = value.get("verdict")
    if verdict not in ("supported", "refuted"):
        return "not_found", [], call.usage, []
    index = value.get("passage")
    order = list(passages)
    if isinstance(index, int) and 1 <= index <= len(order):
        order.insert(0, order.pop(index - 1))  # the named passage first, then the others
    reason = "it named no quote"
    for passage in order:
        exact, reason = accept_quote(claim, str(value.get("quote") or ""), passage.text, question)
        if exact:
            return verdict, [_evidence(verdict, passage, exact)], call.usage, []
    return "not_found", [], call.usage, [f"evidence judge's {verdict!r} for {claim[:60]!r} set aside: {reason}"]


async def ground_claims(
    claims: Sequence[tuple[str, str]],
    sources: "Sources",
    *,
    judge: Model | None = None,
    question: str | None = None,
    timeout: float = 60.0,
) -> Grounding:
    """Check `(claim id, text)` pairs against `sources`, one after another (retrieval uses the
    run store's connection, which belongs to this thread)."""
    result = Grounding()
    for claim_id, text in claims:
        query = text if not question or question in text else f"{question} {text}"
        try:
            passages, notes = await sources.passages(query)
        except InputError:
            raise  # a collection that vanished or emptied mid-run: the caller reports it
        result.warnings += notes
        verdict, evidence, usage, notes = await check_claim(text, passages, judge=judge, question=question, timeout=timeout)
        if usage.total_tokens:
            result.judge_calls += 1
        result.usage = add_usage(result.usage, usage)
        result.warnings += notes
        result.verdicts[claim_id] = verdict
        result.evidence[claim_id] = evidence
    return result


def attach(matrix: ClaimMatrix, grounding: Grounding) -> None:
    """Put the evidence on the matrix's claims (unchecked claims stay "unchecked")."""
    for claim in matrix.claims:
        if claim.id in grounding.verdicts:
            claim.evidence_verdict = grounding.verdicts[claim.id]
            claim.evidence = grounding.evidence.get(claim.id, [])
