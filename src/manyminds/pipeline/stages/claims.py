"""Claims: each member answer split into atomic, self-contained factual claims.

    answer ─▶ sanitize (instruction-like text, JSON objects, code, role tags out: data, not claims)
           ─▶ the model asked for {"claims": [...]} against CLAIMS_SCHEMA, every claim checked
              (a sentence, grounded in the answer, not an instruction)
           ─▶ fallback: a sentence / clause splitter (`split_claims`), tested on its own

Small models return fragments, placeholders and endless repetitions for the JSON request (seen
with SmolLM2-135M: `["Marie Curie", "1898", "1912", "1912", …]`), so model claims are accepted
only when they pass the checks and together cover at least half of the answer's content words;
otherwise the splitter's claims are used and the reason is kept in `notes`. `mode="split"`
skips the model call altogether (the local council's default: see `extraction_mode`).

The splitter makes claims self-contained where it is cheap: a leading pronoun ("She discovered
…") becomes the subject of the sentence before it, or the question's subject; a bare answer
with no verb ("Paris") becomes "The answer to "<question>" is Paris." At most `MAX_CLAIMS`
claims are kept per answer (answers put their main points first).

Text that tries to instruct the pipeline ("ignore previous instructions…", a fake JSON verdict,
"System:" lines) is removed before extraction and reported, so it can never become a claim that
reviewers, judges or the chair are shown as a point to weigh.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from rapidfuzz import fuzz

from ... import budget
from ...errors import ManymindsError
from ...models.base import Message, Model, ModelOptions
from ..jsonparse import JSONExtractionError, extract_json_object
from ..normalize import content_tokens, fold
from ..verdict import UsageOut
from .prompts import data_notice

MAX_CLAIMS = 12
MAX_CLAIM_CHARS = 400
EXTRACT_MAX_TOKENS = 400
SIDE_CALL_TIMEOUT_S = 60.0
# Model claims must cover this share of the answer's content words, or they left too much out.
MIN_COVERAGE = 0.5
# A model claim must take this share of its content words from the answer (else it is invented).
MIN_GROUNDING = 0.6

ExtractionMethod = Literal["model", "split", "none"]

CLAIMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"claims": {"type": "array", "items": {"type": "string"}}},
    "required": ["claims"],
}
EXTRACT_SYSTEM = (
    "You split a text into atomic factual claims. " + data_notice("The text", plural=False) + " Never add facts of your own."
)
EXTRACT_PROMPT = """Question: {question}

Text (quoted data):
<text>
{text}
</text>

List every factual claim the text makes about the question, each as one short sentence that
stands on its own (write names instead of pronouns). At most {limit} claims.
Reply with JSON only: {{"claims": ["...", "..."]}}"""


# --- bounded side calls ---------------------------------------------------------------------


@dataclass
class SideCall:
    """The outcome of one bounded call outside the member answers (extraction, judgement…)."""

    text: str | None
    usage: UsageOut = field(default_factory=UsageOut)
    error: str | None = None
    truncated: bool = False


async def side_call(
    model: Model,
    messages: list[Message],
    *,
    max_tokens: int,
    timeout: float = SIDE_CALL_TIMEOUT_S,
    schema: dict[str, Any] | None = None,
) -> SideCall:
    """One model call bounded in time (the council's retries included) and tokens, never
    raising: a stage that gets nothing back degrades to its fallback and says why."""
    options = ModelOptions(temperature=0.0, max_tokens=max_tokens, json_schema=schema)
    try:
        async with asyncio.timeout(timeout):
            completion = await model.complete(messages, options)
    except TimeoutError:
        if (cut := budget.cut_on_timeout(model, timeout)) is not None:
            return SideCall(None, error=str(cut))  # stopped by the budget, not by a slow model
        return SideCall(None, error=f"no answer within {timeout:g} s")
    except ManymindsError as exc:
        return SideCall(None, error=str(exc) or type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - a faulty provider plugin degrades a side stage, not the run
        return SideCall(None, error=f"{type(exc).__name__}: {exc}")
    usage = UsageOut(**completion.usage.to_dict())
    return SideCall(completion.text, usage=usage, truncated=completion.finish_reason == "length")


def add_usage(total: UsageOut, extra: UsageOut) -> UsageOut:
    return UsageOut(
        input_tokens=total.input_tokens + extra.input_tokens,
        output_tokens=total.output_tokens + extra.output_tokens,
        total_tokens=total.total_tokens + extra.total_tokens,
    )


# --- injections -----------------------------------------------------------------------------

_INJECTION = [
    re.compile(p, re.I)
    for p in (
        r"\b(?:ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,60}\b(?:instructions?|prompts?|rules|"
        r"directions|guidelines|above|previous|prior|earlier|everything|all of (?:that|this))\b",
        r"\b(?:you are now|you must now|from now on,? you|new instructions?|system prompt|developer mode|jailbreak)\b",
        r"^\s*[\[<(]?\s*(?:system|assistant|user|developer|instructions?|note to (?:the )?(?:ai|model|chair|reviewers?|judge))\s*[\]>)]?\s*:",
        r"\b(?:the\s+)?(?:chair|reviewers?|judges?|graders?|evaluators?|fact-?checkers?|language models?|ai models?|"
        r"assistants?)\b[^.!?\n]{0,60}\b(?:must|should|shall|has to|have to|are instructed|is instructed|needs? to)\b",
        r"\b(?:respond|reply|output|print|return)\s+(?:only\s+)?(?:with\s+)?(?:the following|exactly|verbatim|json)\b",
        r"\b(?:rank|rate|score|mark|label)\s+(?:this|the following|my)\s+(?:response|answer|claim|text)\b",
        r"\bconfidence\s*(?:=|:|of|to|at)\s*(?:1(?:\.0+)?|100\s*%)",
        r"[\"']?\b(?:verdict|stance|ranking|evidence_verdict)\b[\"']?\s*[:=]",
        r"\bdo not (?:check|verify|fact-?check|review|question)\b",
        r"<\|?(?:im_start|im_end|system|endoftext|eot_id)\|?>|\[/?INST\]|</?(?:response|passage|text|claims?)\b",
    )
]


def is_instruction(text: str) -> bool:
    """Whether `text` reads as an instruction to the pipeline's models or a fake verdict rather
    than a statement about the world. Deliberately broad: a removed sentence is reported."""
    return any(p.search(text) for p in _INJECTION)


_FENCED = re.compile(r"```.*?(?:```|\Z)", re.S)
_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.S | re.I)


def _json_spans(text: str) -> list[tuple[int, int]]:
    """Balanced `{…}` spans that open with a quoted key: inline JSON objects in prose."""
    spans: list[tuple[int, int]] = []
    for match in re.finditer(r"\{\s*[\"'“]", text):
        start = match.start()
        if spans and start < spans[-1][1]:
            continue
        depth, end = 0, None
        for i in range(start, min(len(text), start + 5000)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    end = i + 1
                    break
        spans.append((start, end if end is not None else len(text)))
    return spans


def sanitize(text: str) -> tuple[str, list[str]]:
    """(the text with non-claims removed, what was removed because it tried to instruct).

    Out go: `<think>` blocks; fenced code (no claims in code); inline JSON objects (a fake
    verdict is not a claim); and sentences or lines that read as instructions (`is_instruction`).
    """
    removed: list[str] = []
    text = _THINK.sub(" ", text or "")
    text = _FENCED.sub(lambda m: _note(removed, m.group()) if _looks_like_verdict(m.group()) else " ", text)
    for start, end in reversed(_json_spans(text)):
        removed.append(_clip(text[start:end]))
        text = text[:start] + " " + text[end:]
    kept_lines = []
    for line in text.splitlines():
        kept = []
        for sentence in sentences(line):
            if is_instruction(sentence):
                removed.append(_clip(sentence))
            else:
                kept.append(sentence)
        kept_lines.append(" ".join(kept))
    return "\n".join(kept_lines).strip(), removed


def _looks_like_verdict(block: str) -> bool:
    return bool(re.search(r"[{\[]", block)) and bool(re.search(r"verdict|claims|ranking|confidence|answer", block, re.I))


def _note(removed: list[str], text: str) -> str:
    removed.append(_clip(text))
    return " "


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the splitter ---------------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st jr sr vs etc approx no fig ca mt ft prof gen col lt sgt rev inc ltd co corp e.g i.e u.s u.k".split()
)
_BOILERPLATE = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|well|great question|good question|absolutely|hello|hi)\b[\s!,.:;-]*$|"
    r"^(?:i hope (?:this|that) helps|let me know|feel free|hope this helps|in (?:summary|conclusion)$|"
    r"here(?:'s| is| are) (?:a|an|the|some|my)\b[^.]{0,40}:?$|as an ai\b|i(?:'m| am) (?:not sure|unsure)|"
    r"i (?:don't|do not|cannot|can't) (?:know|say|answer|be sure|provide)|i have no (?:information|idea))",
    re.I,
)
_LEAD_IN = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|well|yes|no|great question|good question|absolutely|in short|"
    r"in summary|in conclusion|to summarize|overall|basically|simply put|in fact|indeed|"
    r"(?:i think|i believe|i would say|i'd say)(?: that)?)\s*[!,.:;-]*\s+",
    re.I,
)
# Auxiliaries and common irregular past tenses: words that are verbs wherever they stand.
_AUX = (
    r"is|are|was|were|be|been|being|has|have|had|will|would|can|could|shall|should|may|might|must|"
    r"did|does|do|became|become|becomes|made|won|wrote|began|found|gave|took|led|built|fought|"
    r"grew|knew|went|came|saw|held|left|lost|met|paid|sold|told|thought|brought|caught|taught|chose|"
    r"drew|drove|fell|flew|rose|spoke|threw|wore|lay|sat|stood|meant|remained|occurred|caused|used|produced"
)
# A verb somewhere in the text: the above, a past participle, or a lower-case word in -s
# ("boils", "contains"; "Paris" is capitalised and does not count).
_VERB = re.compile(rf"(?i:\b(?:{_AUX})\b|n't\b)|\b[a-z]{{3,}}(?:ed|es)\b|\b[a-z]{{3,}}(?<!s)s\b")
_STRONG_VERB = re.compile(rf"(?i:\b(?:{_AUX})\b|n't\b)|\b[a-z]{{3,}}ed\b")
_SUBJECT_VERB = re.compile(rf"\s(?i:{_AUX})\b|\s[a-z]{{3,}}ed\b")
_PRONOUN_START = re.compile(r"^((?:[^,.;:]{1,40},\s+)?)(he|she|it|they)\b(?!['’])", re.I)
_POSSESSIVE_START = re.compile(r"^((?:[^,.;:]{1,40},\s+)?)(his|her|its|their)\b", re.I)
_PRONOUNS = frozenset("he she it they this that these those there i we you his her its their".split())
_CLAUSE_JOIN = re.compile(r"\s*;\s+|,\s+(?:and|but|while|whereas|yet)\s+(?=\S)", re.I)
_INDEPENDENT = re.compile(
    rf"^(?:(?i:it|he|she|they|this|these|that|there|we|the|a|an|his|her|its|their)|[A-Z][\w'’-]*)\b[^,;]{{0,40}}?"
    rf"\b(?i:{_AUX})\b|^(?:(?i:it|he|she|they|we)|[A-Z][\w'’-]*)\s+[a-z]{{3,}}ed\b"
)


def sentences(text: str) -> list[str]:
    """Sentences of one line or paragraph; "Dr. Watson", "J. K. Rowling", "3.14", "e.g." are
    not sentence ends. Also splits "century.First" (knowledge text glued without a space)."""
    out, start = [], 0
    for match in re.finditer(r"[.!?]+(?=[\"'”’)\]]*(?:\s+|$|(?=[A-Z][a-z])))", text):
        before = text[start : match.start()].split()
        last = before[-1].lower().rstrip(".") if before else ""
        if match.group() == "." and (last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())):
            continue
        if match.group() == "." and re.match(r"\d", text[match.end() : match.end() + 1]):
            continue
        end = match.end()
        while end < len(text) and text[end] in "\"'”’)]":
            end += 1
        piece = text[start:end].strip()
        if piece:
            out.append(piece)
        start = end
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def units(text: str) -> list[str]:
    """Sentences from prose, one unit per list item; a lead-in that ends with a colon is put in
    front of the fragments listed under it ("Causes include:" + "- greenhouse gases")."""
    units: list[str] = []
    lead: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            lead = None
            continue
        bullet = re.match(r"^(?:[-*•+]|\d+[.)])\s+", line)
        line = re.sub(r"^(?:#{1,6}\s+|>\s*|[-*•+]\s+|\d+[.)]\s+)", "", line)
        line = re.sub(r"[*_`]{1,3}", "", line).strip()
        if not line:
            continue
        if re.match(r"^#{1,6}\s", raw.strip()) or (len(line.split()) <= 6 and not _VERB.search(line) and line.endswith(":")):
            lead = line.rstrip(":").strip() if line.endswith(":") else None
            continue  # a heading: context for what follows, not a claim
        if bullet and lead and not _STRONG_VERB.search(line):
            units.append(f"{lead}: {line}".rstrip(".") + ".")
            continue
        if not bullet:
            lead = line.rstrip(":") if line.endswith(":") else lead
            if line.endswith(":"):
                lead_sentences = sentences(line[:-1])
                lead = lead_sentences[-1] if lead_sentences else None
                units += lead_sentences[:-1]
                continue
        units += sentences(line)
    return units


def _clauses(sentence: str) -> list[str]:
    """A sentence cut at "; " and at ", and / but / while …" where what follows is an
    independent clause ("She won in 1903, and she won again in 1911")."""
    parts: list[str] = []
    pos = 0
    for match in _CLAUSE_JOIN.finditer(sentence):
        left, right = sentence[pos : match.start()], sentence[match.end() :]
        independent = _has_verb(right) if ";" in match.group() else bool(_INDEPENDENT.match(right))
        if len(left.split()) >= 3 and len(right.split()) >= 3 and independent:
            parts.append(left.strip())
            pos = match.end()
    parts.append(sentence[pos:].strip())
    return [p for p in parts if p]


def leading_subject(sentence: str) -> str | None:
    """The words before the first verb of a sentence that opens with its subject ("Marie Curie
    was…" → "Marie Curie"), or None: no verb, a long or pronoun subject, a prepositional start."""
    match = _SUBJECT_VERB.search(" " + sentence)
    if not match:
        return None
    subject = sentence[: max(0, match.start() - 1)].strip(" ,")
    words = subject.split()
    if not 1 <= len(words) <= 6 or fold(words[0]) in _PRONOUNS:
        return None
    if fold(words[0]) in {"in", "on", "at", "by", "for", "from", "during", "after", "before", "since", "when", "if", "although"}:
        return None
    if not (words[0][:1].isupper() or fold(words[0]) in {"the", "a", "an"}):
        return None
    return subject


def question_subject(question: str) -> str | None:
    """What a question is about, cheaply: "Who was Marie Curie?" → "Marie Curie", "What is the
    Eiffel Tower made of?" → "the Eiffel Tower", "Tell me about photosynthesis" → "photosynthesis"."""
    q = question.strip().rstrip("?.! ")
    names = re.findall(r"(?<!^)(?<![.!?]\s)\b[A-Z][\w'’-]*(?:\s+(?:of|the|de|da|van|von)?\s*[A-Z][\w'’-]*)*", q)
    names = [n for n in names if fold(n.split()[0]) not in _PRONOUNS]
    if names:
        return max(names, key=len)
    match = re.match(
        r"^(?:what|who|where|when|why|how)\s+(?:is|are|was|were|does|do|did)\s+(.+?)(?:\s+(?:made of|used for|known for|"
        r"work|works|mean|do|located|called|for))?$|^(?:tell me about|describe|explain|define)\s+(.+)$|"
        r"^(?:what|which|who|how)\s+(?:causes|caused|makes|made|affects|affected|drives|explains)\s+(.+)$",
        q,
        re.I,
    )
    if match:
        subject = next((g for g in match.groups() if g), "").strip()
        return subject if 0 < len(subject.split()) <= 6 else None
    return None


def _has_verb(text: str) -> bool:
    return bool(_VERB.search(text))


def _person_like(subject: str) -> bool:
    """"Marie Curie", "Dr. J. K. Rowling": capitalised words and no article — a "he" or "she",
    never an "it" ("It sold 500 million copies" after "Rowling wrote Harry Potter" is the book)."""
    words = subject.split()
    return 2 <= len(words) <= 5 and all(w[:1].isupper() for w in words) and fold(words[0]) not in {"the", "a", "an"}


def _self_contained(claim: str, subject: str | None) -> str:
    """Replace a leading pronoun (after at most a short introductory phrase) by `subject`, when
    the pronoun can stand for it: he/she/his/her for a person-like subject, it/its/they/their
    for anything else."""
    if not subject:
        return claim
    for pattern, suffix in ((_PRONOUN_START, ""), (_POSSESSIVE_START, "'s")):
        match = pattern.match(claim)
        if not match:
            continue
        prefix, pronoun = match.group(1), match.group(2).lower()
        words = subject.split()
        named = all(w[:1].isupper() for w in words) and fold(words[0]) not in {"the", "a", "an"}
        # he/she for a name ("Curie", "Marie Curie"); it/they for anything but a full name.
        if (pronoun in ("he", "she", "his", "her") and not named) or (pronoun in ("it", "its", "they", "their") and _person_like(subject)):
            return claim
        name = subject if prefix else subject[0].upper() + subject[1:]
        return f"{prefix}{name}{suffix}{claim[match.end():]}"
    return claim


def _is_claim(text: str) -> bool:
    if text.endswith("?") or _BOILERPLATE.search(text):
        return False
    return len(content_tokens(text)) >= 1


def split_claims(text: str, question: str | None = None, *, max_claims: int = MAX_CLAIMS) -> list[str]:
    """Claims cut out of `text` without a model: sentences and independent clauses, list items
    (with their lead-in), boilerplate and questions dropped, leading pronouns replaced by the
    subject they stand for, a bare answer turned into "The answer to "<question>" is X."."""
    text = _THINK.sub(" ", text or "")
    q_subject = question_subject(question) if question else None
    subject = q_subject
    claims: list[str] = []
    seen: set[str] = set()
    for unit in units(text):
        for clause in _clauses(unit):
            clause = clause.strip()
            polar = re.match(r"(?i)(yes|no)\b(?:[.!,:;]+\s*|\s*$)", clause) if question else None
            if polar:  # "No, it is not." answers a yes/no question: that answer is a claim
                framed = f'The answer to "{question.strip()}" is {polar.group(1).lower()}.'
                if framed not in claims:
                    claims.append(framed)
                clause = clause[polar.end() :].strip()
            clause = _LEAD_IN.sub("", clause).strip()
            clause = re.sub(r"\s+", " ", clause).strip(" -–—")
            if not clause or not _is_claim(clause):
                continue
            words = clause.rstrip(".!").split()
            if question and not _has_verb(clause) and len(words) <= 8:
                clause = f'The answer to "{question.strip()}" is {clause.rstrip(".!")}.'
            elif len(words) < 3 and not question:
                continue  # a fragment with nothing to anchor it
            clause = _self_contained(clause, subject)
            found = leading_subject(clause)
            # "Curie's research …" and "Curie discovered …" keep "Marie Curie" as the subject.
            if found and not (subject and (found.startswith(subject) or f" {found} " in f" {subject} ")):
                subject = found
            if clause[-1] not in ".!\"'”":
                clause += "."
            clause = clause[0].upper() + clause[1:]
            if len(clause) > MAX_CLAIM_CHARS:
                clause = clause[: MAX_CLAIM_CHARS - 1].rsplit(" ", 1)[0] + "…"
            key = " ".join(content_tokens(clause))
            if key in seen:
                continue
            seen.add(key)
            claims.append(clause)
            if len(claims) >= max_claims:
                return claims
    return claims


# --- model extraction -----------------------------------------------------------------------


@dataclass
class ExtractedClaims:
    member: str
    claims: list[str]
    method: ExtractionMethod
    notes: list[str] = field(default_factory=list)  # why the model's claims were set aside, caps…
    removed: list[str] = field(default_factory=list)  # instruction-like text taken out as data
    usage: UsageOut = field(default_factory=UsageOut)


def grounding(claim: str, text: str) -> float:
    """The share of the claim's content words found in `text` (near spellings count)."""
    words = content_tokens(claim)
    if not words:
        return 0.0
    source = set(content_tokens(text))
    found = sum(1 for w in words if w in source or (len(w) >= 5 and any(fuzz.ratio(w, s) >= 85 for s in source)))
    return found / len(words)


def check_model_claims(raw: list[Any], text: str, question: str | None) -> tuple[list[str], list[str]]:
    """(the model's claims that pass, reasons for the ones that did not)."""
    kept, rejected = [], []
    seen: set[str] = set()
    q_words = set(content_tokens(question or ""))
    for item in raw:
        claim = re.sub(r"\s+", " ", str(item)).strip().strip("\"'")
        if not claim or claim in ("...", "…"):
            rejected.append("placeholder")
        elif is_instruction(claim):
            rejected.append(f"instruction-like: {_clip(claim, 60)!r}")
        elif len(claim.split()) < 3 or not _has_verb(claim):
            rejected.append(f"not a sentence: {_clip(claim, 60)!r}")
        elif grounding(claim, text) < MIN_GROUNDING and not set(content_tokens(claim)) <= q_words | set(content_tokens(text)):
            rejected.append(f"not in the answer: {_clip(claim, 60)!r}")
        else:
            key = " ".join(content_tokens(claim))
            if key in seen:
                rejected.append("duplicate")
                continue
            seen.add(key)
            kept.append(claim if claim[-1] in ".!\"'”" else claim + ".")
    return kept, rejected


def coverage(claims: list[str], text: str) -> float:
    """The share of the text's content words that the claims carry."""
    words = set(content_tokens(text))
    if not words:
        return 1.0
    said = set()
    for claim in claims:
        said |= set(content_tokens(claim))
    return len(words & said) / len(words)


async def extract_claims(
    question: str,
    member: str,
    text: str,
    model: Model | None = None,
    *,
    mode: str = "auto",
    max_claims: int = MAX_CLAIMS,
    timeout: float = SIDE_CALL_TIMEOUT_S,
    max_tokens: int = EXTRACT_MAX_TOKENS,
) -> ExtractedClaims:
    """The claims of one answer. `mode`: "model" or "auto" ask `model` first (auto skips the
    call for answers of one sentence, which the splitter handles as well), "split" never does."""
    if mode not in ("auto", "model", "split"):
        raise ValueError(f"claim extraction mode must be auto, model or split, not {mode!r}")
    clean, removed = sanitize(text)
    notes: list[str] = []
    if removed:
        notes.append(f"{len(removed)} instruction-like passage(s) treated as data, not claims")
    fallback = split_claims(clean, question, max_claims=max_claims)
    ask_model = model is not None and mode != "split" and clean and (mode == "model" or len(units(clean)) > 1)
    if not ask_model:
        method: ExtractionMethod = "split" if fallback else "none"
        return ExtractedClaims(member, fallback, method, notes, removed)

    messages = [
        Message(role="system", content=EXTRACT_SYSTEM),
        Message(role="user", content=EXTRACT_PROMPT.format(question=question.strip(), text=clean[:4000], limit=max_claims)),
    ]
    call = await side_call(model, messages, max_tokens=max_tokens, timeout=timeout, schema=CLAIMS_SCHEMA)
    reason = call.error
    claims: list[str] = []
    if call.text is not None:
        try:
            parsed = extract_json_object(call.text, CLAIMS_SCHEMA, allow_bare=False)
            raw = parsed.value.get("claims") or []
            claims, rejected = check_model_claims(raw if isinstance(raw, list) else [raw], clean, question)
            if rejected:
                notes.append(f"model claims rejected: {len(rejected)} ({'; '.join(rejected[:3])})")
            if call.truncated or parsed.truncated:
                notes.append("model claims cut off at max_tokens")
            if not claims:
                reason = "no usable claims in the model's JSON"
            elif coverage(claims, clean) < MIN_COVERAGE <= coverage(fallback, clean):
                reason = f"model claims cover only {coverage(claims, clean):.0%} of the answer"
        except JSONExtractionError as exc:
            reason = f"model output unreadable: {exc.reason}"
    if reason or not claims:
        notes.append(f"{reason}; used the sentence splitter")
        return ExtractedClaims(member, fallback, "split" if fallback else "none", notes, removed, call.usage)
    if len(claims) > max_claims:
        notes.append(f"{len(claims) - max_claims} claim(s) beyond the cap of {max_claims} dropped")
    return ExtractedClaims(member, claims[:max_claims], "model", notes, removed, call.usage)


def extraction_mode(requested: str, short_answer_setting: str) -> str:
    """"auto" becomes "split" for councils whose `short_answer` setting is "heuristic": that
    setting marks models too small to trust with structured side tasks (the local council:
    its models' claim JSON was unusable on every probe, see docs/claims.md)."""
    if requested == "auto" and short_answer_setting == "heuristic":
        return "split"
    return requested
