"""Short answers: each member's final answer in a few words, the unit the compare stage
clusters. Three ways, cheapest first: the answer's own JSON, the heuristic (a marked final
line, "the answer is …", a yes/no, a number, the answering clause of the first sentence), or
the member's own model copying it out (`mode`: "auto", "model", "heuristic").

Extraction usage: the extraction call runs on the member's own model, so its tokens are added to
that member's `MemberAnswer.usage` (and `cost_usd`, when the price is known). Totals summed
over members therefore include them; the per-member split is in the `stage_done` event's
`data["extraction_usage"]`.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from rapidfuzz import fuzz

from ... import budget
from ...errors import ManymindsError
from ...models.base import Message, Model, ModelOptions, Usage
from ..events import Event, EventSink, ignore_event
from ..jsonparse import JSONExtractionError, extract_json_object, parse_json_object
from ..normalize import STOPWORDS, analyse, content_tokens, fold, numbers_equal, yes_no
from ..verdict import MemberAnswer, UsageOut

STAGE = "short_answers"
EXTRACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}
EXTRACTION_MAX_TOKENS = 40
EXTRACTION_TIMEOUT_S = 60.0
MAX_SHORT_WORDS = 12
MAX_SHORT_CHARS = 100
# In auto mode an answer this short is its own short answer: no extraction call is spent on it.
AUTO_SKIP_WORDS = 6
# How much of a long member answer the extraction prompt shows (start and end: final answers
# tend to sit at either end).
PROMPT_HEAD_CHARS = 1500
PROMPT_TAIL_CHARS = 600

EXTRACTION_SYSTEM = "You copy the final answer out of a text. You never add facts of your own."
EXTRACTION_PROMPT = """Question: {question}

Response:
\"\"\"
{text}
\"\"\"

What short final answer does the response give to the question? Copy it from the response in a
few words, with no explanation. Reply with JSON only: {{"answer": "..."}}"""



# --- short answers ------------------------------------------------------------------------


async def extract_short_answers(
    question: str,
    answers: list[MemberAnswer],
    models: dict[str, Model],
    mode: str = "auto",
    emit: EventSink = ignore_event,
    *,
    run_id: str = "",
    timeout: float = EXTRACTION_TIMEOUT_S,
) -> list[MemberAnswer]:
    """Copies of `answers` with `short_answer` and `short_answer_method` filled in.

    Per member that answered: (a) text that is itself JSON with an `answer` → "json";
    (b) in "model" or "auto" mode, the member's own model (`models[member]`) is asked to copy
    the short answer out as JSON — accepted only if grounded in the member's text → "model";
    (c) otherwise the heuristic → "heuristic". "auto" skips (b) for answers of at most
    six words, and any failure of (b) falls back to (c) with a note in the stage_done event.
    Extraction calls run concurrently; their usage is added to the member's usage.
    Failed members are returned unchanged.
    """
    if mode not in ("auto", "model", "heuristic"):
        raise ValueError(f"short answer mode must be auto, model or heuristic, not {mode!r}")
    emit(Event("stage_started", run_id=run_id, stage=STAGE, data={"mode": mode}))
    results: list[MemberAnswer] = [a.model_copy(deep=True) for a in answers]
    notes: dict[str, str] = {}
    usage: dict[str, dict[str, int]] = {}
    pending: list[tuple[int, Model]] = []
    for i, answer in enumerate(results):
        if not answer.ok or not answer.text.strip():
            continue  # nothing to extract from: the heuristic below leaves it at "none"
        from_json = json_short_answer(answer.text)
        if from_json:
            answer.short_answer, answer.short_answer_method = from_json, "json"
            continue
        if mode == "heuristic" or (mode == "auto" and _already_short(answer.text)):
            continue
        model = models.get(answer.member)
        if model is None:
            notes[answer.member] = "no model to ask for extraction"
        else:
            pending.append((i, model))

    outcomes = await asyncio.gather(
        *(_extract_with_model(question, results[i], model, timeout) for i, model in pending)
    )
    for (i, model), (short, note, call_usage) in zip(pending, outcomes):
        answer = results[i]
        if call_usage is not None:
            _add_usage(answer, model, call_usage)
            usage[answer.member] = call_usage
        if short:
            answer.short_answer, answer.short_answer_method = short, "model"
        elif note:
            notes[answer.member] = note

    for answer in results:
        if answer.ok and answer.short_answer_method == "none":
            short = heuristic_short_answer(question, answer.text)
            answer.short_answer = short or None
            answer.short_answer_method = "heuristic" if short else "none"
    emit(
        Event(
            "stage_done",
            run_id=run_id,
            stage=STAGE,
            data={
                "methods": {a.member: a.short_answer_method for a in results if a.ok},
                "short_answers": {a.member: a.short_answer for a in results if a.ok},
                "notes": notes,
                "extraction_usage": usage,
            },
        )
    )
    return results


async def _extract_with_model(
    question: str, answer: MemberAnswer, model: Model, timeout: float
) -> tuple[str | None, str | None, dict[str, int] | None]:
    """(short answer or None, note on why not, usage of the call or None)."""
    text = answer.text.strip()
    if len(text) > PROMPT_HEAD_CHARS + PROMPT_TAIL_CHARS:
        text = text[:PROMPT_HEAD_CHARS] + "\n[…]\n" + text[-PROMPT_TAIL_CHARS:]
    messages = [
        Message(role="system", content=EXTRACTION_SYSTEM),
        Message(role="user", content=EXTRACTION_PROMPT.format(question=question.strip(), text=text)),
    ]
    options = ModelOptions(json_schema=EXTRACTION_SCHEMA, temperature=0, max_tokens=EXTRACTION_MAX_TOKENS)
    try:
        async with asyncio.timeout(timeout):  # in this task, so the budget can tell why it ran out
            completion = await model.complete(messages, options)
    except TimeoutError:
        if (cut := budget.cut_on_timeout(model, timeout)) is not None:
            return None, f"extraction stopped by the budget: {cut}", None  # not a slow model
        return None, f"extraction call failed: no answer within {timeout:g} s", None
    except ManymindsError as exc:
        return None, f"extraction call failed: {str(exc) or type(exc).__name__}", None
    call_usage = completion.usage.to_dict()
    try:
        parsed = extract_json_object(completion.text, EXTRACTION_SCHEMA)
    except JSONExtractionError as exc:
        return None, f"extraction output unreadable: {exc.reason}", call_usage
    if parsed.truncated:
        return None, "extraction output cut off", call_usage
    candidate = _finish(str(parsed.value["answer"]))
    if len(str(parsed.value["answer"]).split()) > 2 * MAX_SHORT_WORDS:
        return None, "extraction gave a long answer", call_usage
    if len(candidate.split()) > AUTO_SKIP_WORDS:
        # Small models copy the whole sentence ("Paris is the capital of France"): narrow it.
        candidate = heuristic_short_answer(question, candidate)
    if not candidate:
        return None, "extraction gave an empty answer", call_usage
    if not is_grounded(candidate, answer.text):
        return None, f"extraction not grounded in the answer: {candidate!r}", call_usage
    return candidate, None, call_usage


def _add_usage(answer: MemberAnswer, model: Model, call: dict[str, int]) -> None:
    before = answer.usage
    answer.usage = UsageOut(
        input_tokens=before.input_tokens + call["input_tokens"],
        output_tokens=before.output_tokens + call["output_tokens"],
        total_tokens=before.total_tokens + call["total_tokens"],
    )
    if answer.cost_usd is not None:
        extra = model.cost_usd(Usage(call["input_tokens"], call["output_tokens"]))
        answer.cost_usd = None if extra is None else answer.cost_usd + extra


def _already_short(text: str) -> bool:
    text = text.strip()
    return bool(text) and "\n" not in text and len(text.split()) <= AUTO_SKIP_WORDS


def json_short_answer(text: str) -> str | None:
    """The `answer` of a member text that is itself a JSON object (fenced or not), else None."""
    stripped = text.strip()
    if not stripped.startswith(("{", "```")):
        return None  # prose that merely contains braces is not a JSON answer
    found = parse_json_object(stripped, EXTRACTION_SCHEMA, allow_bare=False)
    if not found:
        return None
    return _finish(str(found["answer"])) or None


def is_grounded(candidate: str, text: str) -> bool:
    """Whether an extracted answer comes from `text` rather than from the extractor.

    A yes/no needs a matching word in the text (a negation for "no"); a number must appear
    in the text (in digits or words); otherwise at least 60% of the candidate's content words
    must appear (a near spelling counts), and every number it mentions.
    """
    cand, src = analyse(candidate), analyse(text)
    polarity = yes_no(candidate)
    if polarity is not None and len(cand.tokens) <= 3:
        folded = fold(text)
        if polarity:
            return bool(re.search(r"\b(yes|yeah|yep|true|correct|indeed|right)\b", folded))
        return bool(re.search(r"\b(no|not|never|none|nope|false|incorrect|wrong)\b|n[’']?t\b", folded))
    if cand.numbers and not all(any(numbers_equal(n, m) for m in src.numbers) for n in cand.numbers):
        return False
    if cand.number is not None:
        # "8 legs" from "eight legs"; a unit the text never names ("8 eyes") is invented.
        return set(cand.unit_words) <= set(src.unit_words)
    words = [t for t in cand.words if t not in STOPWORDS]
    if not words:
        return False
    source = set(src.words)
    found = sum(1 for t in words if t in source or (len(t) >= 5 and any(fuzz.ratio(t, s) >= 85 for s in source)))
    return found / len(words) >= 0.6


# --- the heuristic ------------------------------------------------------------------------

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.S | re.I)
_FINAL_LINE = re.compile(
    r"^[\s#>*_-]*(?:the\s+)?(?:final|short|correct)?\s*answer\s*[*_]*\s*[:：=]\s*(.+)$", re.I | re.M
)
_ANSWER_IS = re.compile(r"\b(?:the\s+)?(?:final\s+|short\s+|correct\s+)?answer\s+is\s*:?\s*(.+)", re.I)
_BOXED = re.compile(r"\\boxed\{([^{}]+)\}")
_HASHES = re.compile(r"^####\s*(.+)$", re.M)
_BOILERPLATE = [
    re.compile(p, re.I)
    for p in (
        r"^(?:sure|certainly|of course|okay|ok|well|so|hmm+|alright|great question|good question|"
        r"that's a great question|interesting question)\s*[!,.:;-]+\s*",
        r"^here(?:'s| is| are)\s+(?:the|my)\s+(?:short\s+|final\s+)?answers?\s*[:.,-]?\s*",
        r"^(?:the|my)\s+(?:short\s+|final\s+|correct\s+|right\s+)?answer(?:\s+to\s+(?:the|your|this)\s+question)?"
        r"\s*(?:is|would be|:|=|-)\s*:?\s*",
        r"^answer\s*[:=-]\s*",
        r"^(?:i think|i believe|i guess|i would say|i'd say|in my opinion|it seems|most likely|probably|"
        r"i'm (?:fairly |pretty |quite )?(?:sure|confident)|i am (?:fairly |pretty |quite )?(?:sure|confident))"
        r"(?:\s+that)?\s*,?\s*",
        r"^(?:based on|according to|as of)\s+[^,]{1,60},\s*",
        r"^(?:it is|it's|it was|that would be|that is|that's|this is)\s+",
    )
]
_LABEL_ONLY = re.compile(r"(?:the\s+)?(?:final\s+|short\s+)?(?:answer|response)s?\s*[:：]?", re.I)
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr vs etc approx no fig ca mt ft".split())
_YES_NO_QUESTION = re.compile(
    r"^\s*(?:is|are|was|were|do|does|did|can|could|will|would|should|has|have|had|may|might|must|shall)\b", re.I
)
_NUMERIC_QUESTION = re.compile(
    r"^\s*(?:how\s+(?:many|much|old|long|far|tall|big|high|deep|fast|heavy|large)|"
    r"(?:in\s+)?(?:what|which)\s+year|when\b|what\s+(?:is|was)\s+(?:the\s+)?(?:number|population|sum|product|"
    r"total|value|result|square|difference|age))|\d+\s*(?:[-+*/x×÷^]|plus|minus|times|divided\s+by)\s*\d+",
    re.I,
)
_YEAR_QUESTION = re.compile(r"^\s*(?:when|(?:in\s+)?(?:what|which)\s+year)\b", re.I)


def heuristic_short_answer(question: str, text: str) -> str:
    """A short answer cut out of `text` without a model (at most 12 words / 100 characters).

    In order: a "Final answer: X" line, "#### X" or \\boxed{X}; otherwise the first sentence
    with boilerplate ("Sure!", "The answer is", "I think") removed. For yes/no questions the
    yes or no; for numeric questions the first number not already in the question; otherwise
    the part of an "X is Y" sentence that does not repeat the question.
    """
    text = _THINK.sub("", text or "").replace("’", "'").strip()
    if not text:
        return ""
    if question and len(_OPTION_LINE.findall(question)) >= 2:
        letter = _OPTION_PICKED.match(text)
        if letter:  # "B", "B.", "(B) You grow…": for lettered options the letter is the answer
            return letter.group(1).upper()
        options = {m.group(1): fold(m.group(2)).rstrip(".!") for m in _OPTION_TEXT.finditer(question)}
        said = fold(_first_sentence(text)).rstrip(".!")
        named = [k for k, v in options.items() if v and v == said]
        if len(named) == 1:  # an option's own words stand for its letter
            return named[0]
    marked = _marked_answer(text)
    sentence = _first_sentence(marked or text)
    sentence = _strip_boilerplate(sentence)
    if question and is_yes_no_question(question):
        verdict = _yes_no_answer(sentence, question)  # before the cut: "round, not flat" is a no
        if verdict:
            return verdict
    sentence = _cut_tail(sentence)
    if question and _NUMERIC_QUESTION.search(question):
        number = _number_answer(sentence, question)
        if number:
            return number
    if question:
        sentence = _answer_clause(sentence, question)
    return _finish(sentence)


_OPTION_LINE = re.compile(r"^\s*\(?[A-H][.)]\s+\S", re.M)
_OPTION_TEXT = re.compile(r"^\s*\(?([A-H])[.)]\s+(.+?)\s*$", re.M)
_OPTION_PICKED = re.compile(r"^\(?([A-H])(?:[.):]|\s*$)")
_SAYS_YES_NO = re.compile(r"\b(?:yes\s+or\s+no|true\s+or\s+false)\b", re.I)


def is_yes_no_question(question: str) -> bool:
    """"Is …?" / "Could …?" on the first or the last line ("Question: …\nIs the proposed answer
    correct?"), with no other "or" in it ("Is it red or blue?" asks for a colour); or a
    question that says "yes or no" / "true or false" outright."""
    if _SAYS_YES_NO.search(question):
        return True
    lines = [line for line in question.splitlines() if line.strip()]
    if not lines or re.search(r"\bor\b", question, re.I):
        return False
    return bool(_YES_NO_QUESTION.match(lines[0]) or _YES_NO_QUESTION.match(lines[-1]))


def _marked_answer(text: str) -> str | None:
    for pattern in (_BOXED, _HASHES):
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    lines = _FINAL_LINE.findall(text)
    if lines and lines[-1].strip():
        return lines[-1].strip()
    found = _ANSWER_IS.findall(text)
    if found:
        return found[-1].strip()
    return None


def _first_sentence(text: str) -> str:
    """The first non-empty line's first sentence, without markdown decoration."""
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:#{1,6}\s+|[-*•>]\s+|\d+[.)]\s+(?=\D))", "", line)
        line = re.sub(r"[*_`]{1,3}", "", line).strip()
        if not line or re.fullmatch(r"[\W_]+", line) or _LABEL_ONLY.fullmatch(line):
            continue  # blank, decoration, or a heading such as "## Answer"
        for match in re.finditer(r"[.!?](?=\s+\S|$)", line):
            before = line[: match.start()].split()
            last = before[-1].lower() if before else ""
            # "Dr. Watson", "George W. Bush", "3.5" are not sentence ends.
            if last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
                continue
            return line[: match.start() + 1].strip()
        return line
    return text.strip()


def _strip_boilerplate(sentence: str) -> str:
    previous = None
    while previous != sentence:
        previous = sentence
        for pattern in _BOILERPLATE:
            sentence = pattern.sub("", sentence).strip()
    return sentence


def _cut_tail(sentence: str) -> str:
    """Drop what follows a comma, dash or semicolon when it goes on in lower case: "Paris, a
    city on the Seine" → "Paris", "Marlowe, though many disagree" → "Marlowe"; but "Paris,
    France" and "Washington, D.C." stay whole."""
    match = re.search(r"\s*(?:[,;]|\s[-–—])\s+(?=[a-z])", sentence)
    if match and match.start() > 0:
        sentence = sentence[: match.start()].strip()
    return sentence


def _yes_no_answer(sentence: str, question: str) -> str | None:
    polarity = yes_no(sentence)
    if polarity is None:
        folded = fold(sentence)
        if re.search(r"\b(not|never|no)\b|n[’']?t\b", folded):
            polarity = False
        else:
            q = set(content_tokens(question))
            s = set(content_tokens(sentence))
            if q and len(q & s) / len(q) >= 0.6:
                polarity = True  # the question restated as a statement
    if polarity is None:
        return None
    return "Yes" if polarity else "No"


def _number_answer(sentence: str, question: str) -> str | None:
    numbers = analyse(sentence).numbers
    asked = analyse(question).numbers
    fresh = [n for n in numbers if not any(numbers_equal(n, q) for q in asked)] or list(numbers)
    if _YEAR_QUESTION.match(question):
        years = [n for n in fresh if n.value.is_integer() and 1000 <= n.value <= 2100]
        fresh = years or fresh
    if not fresh:
        return None
    value = fresh[0].value
    return str(int(value)) if value.is_integer() else f"{value:.{max(fresh[0].decimals, 1)}f}"


def _answer_clause(sentence: str, question: str) -> str:
    """From "X is Y", the side that does not repeat the question; drops a trailing echo of the
    question ("William Shakespeare wrote Hamlet" → "William Shakespeare")."""
    q = set(content_tokens(question))
    if not q:
        return sentence
    if re.match(r"\s*who\b", question, re.I):
        names = _name_spans(sentence, q)
        if names:
            # "Hamlet by William Shakespeare is often attributed to…" → "William Shakespeare":
            # for a who-question, a name the question does not contain is the answer.
            return next((n for n in names if len(n.split()) > 1), names[0])
    match = re.search(r"\s(?:is|was|are|were)\s", sentence)
    if match:
        left, right = sentence[: match.start()].strip(), sentence[match.end() :].strip()

        def echo(part: str) -> float:
            words = content_tokens(part)
            return sum(1 for w in words if w in q) / len(words) if words else 1.0

        if echo(left) > echo(right) and right:
            sentence = right
        elif echo(right) > echo(left) and left:
            sentence = left
    if re.match(r"\s*who\b", question, re.I) and re.search(r"\bby\s+\S", sentence):
        # "written by William Shakespeare", "a tragedy by the playwright William Shakespeare"
        sentence = re.split(r"\bby\s+", sentence)[-1]
    sentence = re.sub(r"^\w+(?:ed|en)\s+(?:to|by)\s+(?=\S)", "", sentence)  # "attributed to Leonardo"
    # A date after the answer: "written by William Shakespeare around the year 1600".
    dated = re.search(
        r"\s+(?:in|around|about|circa|during|since)\s+(?:the\s+)?(?:year\s+)?\d{3,4}\W*$", sentence
    )
    if dated and dated.start() > 0:
        sentence = sentence[: dated.start()]
    words = sentence.split()
    while len(words) > 1 and (fold(words[-1]).strip(".,!?;:") in q or fold(words[-1]).strip(".,!?;:") in STOPWORDS):
        trimmed = [w for w in words[:-1]]
        if not any(fold(w).strip(".,!?;:") not in STOPWORDS for w in trimmed):
            break
        words = trimmed
    return " ".join(words)


_NAME_SPAN = re.compile(
    r"[A-Z][\w'’.-]*(?:\s+(?:(?:da|de|di|del|della|van|von|der|den|du|la|le|bin|ibn|al)\s+)*[A-Z][\w'’.-]*)*"
)
_NOT_NAMES = frozenset("the a an it he she they this that there i yes no who what when where which why how".split())


def _name_spans(sentence: str, question_tokens: set[str]) -> list[str]:
    """Capitalised word runs ("William Shakespeare", "Leonardo da Vinci") that share no word
    with the question, in order of appearance."""
    spans = []
    for match in _NAME_SPAN.finditer(sentence):
        words = match.group().split()
        while words and fold(words[0]) in _NOT_NAMES:
            words = words[1:]
        tokens = [fold(w).strip(".,'’") for w in words]
        tokens = [t[:-2] if t.endswith("'s") else t for t in tokens]
        if not words or any(t in question_tokens for t in tokens):
            continue
        spans.append(" ".join(words).rstrip(".,'’"))
    return spans


def _finish(answer: str) -> str:
    """Trim decoration and cap the length of a short answer."""
    answer = re.sub(r"\([^()]*\)", "", answer)  # parentheticals: "Paris (France)"
    answer = re.sub(r"[*_`]{1,3}", "", answer)
    answer = answer.strip().strip("\"'“”‘’«»").strip()
    answer = re.sub(r"\s+", " ", answer).rstrip(" .,;:!")
    words = answer.split()
    if len(words) > MAX_SHORT_WORDS:
        head = re.split(r"[,;:—]", answer, maxsplit=1)[0].strip()
        answer = head if len(head.split()) <= MAX_SHORT_WORDS else " ".join(words[:MAX_SHORT_WORDS])
    if len(answer) > MAX_SHORT_CHARS:
        answer = answer[:MAX_SHORT_CHARS].rsplit(" ", 1)[0]
    return answer.strip().strip("\"'“”‘’«»").strip()
