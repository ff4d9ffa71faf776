"""Text normalisation for comparing short answers: accents, case, punctuation, articles,
numbers written in words or digits, roman numerals in names, yes/no synonyms.

`analyse(text)` does the work once per string (cached) and returns an `Analysed` with the
normalised tokens and the numbers found, which `compare.similarity` and the grounding check use.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "ARTICLES",
    "STOPWORDS",
    "Analysed",
    "Number",
    "analyse",
    "content_tokens",
    "fold",
    "normalize_answer",
    "numbers_equal",
    "yes_no",
]

ARTICLES = frozenset({"a", "an", "the"})
# Words that carry no answer content; used for grounding and for "what else does the longer
# answer add" in containment.
STOPWORDS = frozenset(
    """a an the and or of in on at to for from by with as is are was were be been being it its
    this that these those there here which who whom whose what when where why how i we you he she
    they his her their our your my me him them us do does did has have had not no yes so but if
    then than also very just only about approximately around roughly nearly almost exactly some
    any all both each answer final short correct think believe would could should will can may
    might must shall called named known""".split()
)
# Words around a number that do not change it ("about 300", "in 1945", "approximately 8").
_NUMBER_FILLER = frozenset(
    """about approximately approx around roughly nearly almost exactly precisely only just over
    under some circa ca in on by year years is are was were it its answer total of equals equal
    to be there than more less""".split()
)
# Unit spellings reduced to one form, so "5 km" and "5 kilometres" agree.
_UNITS = {
    "kilometer": "km", "kilometre": "km", "kms": "km",
    "meter": "m", "metre": "m", "meters": "m", "metres": "m",
    "centimeter": "cm", "centimetre": "cm", "millimeter": "mm", "millimetre": "mm",
    "kilogram": "kg", "kilo": "kg", "kgs": "kg", "gram": "g", "grams": "g",
    "mile": "mi", "miles": "mi", "foot": "ft", "feet": "ft", "inch": "in", "inches": "in",
    "pound": "lb", "pounds": "lb", "lbs": "lb", "percent": "%", "pct": "%", "percentage": "%",
    "celsius": "c", "centigrade": "c", "fahrenheit": "f", "degree": "deg", "degrees": "deg",
    "second": "s", "seconds": "s", "sec": "s", "secs": "s", "minute": "min", "minutes": "min",
    "mins": "min", "hour": "h", "hours": "h", "hr": "h", "hrs": "h",
    "dollar": "usd", "dollars": "usd", "$": "usd", "euro": "eur", "euros": "eur", "€": "eur",
    "£": "gbp",
}
_CURRENCY = {"$": "usd", "€": "eur", "£": "gbp", "¥": "jpy"}

_SMALL = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "dozen": 12,
}
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000,
           "trillion": 1_000_000_000_000, "bn": 1_000_000_000, "mln": 1_000_000}
_A_SCALES = frozenset({"hundred", "thousand", "million", "billion", "dozen"})
# Strong words decide alone before punctuation ("Yes, ..."); weak ones only in a short answer
# ("Certainly." is a yes; "Certainly! The capital is Paris" is not).
_YES = frozenset({"yes", "yeah", "yep", "yup", "true", "correct", "affirmative"})
_NO = frozenset({"no", "nope", "nah", "false", "incorrect", "negative"})
_YES_WEAK = frozenset({"indeed", "certainly", "definitely", "absolutely", "sure", "right"})
_NO_WEAK = frozenset({"not", "never", "wrong"})
# Letters that fold() does not reduce through NFKD.
_SPECIAL = str.maketrans({"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "æ": "ae",
                          "Æ": "AE", "œ": "oe", "Œ": "OE", "ı": "i", "þ": "th", "ð": "d"})
_ROMAN = re.compile(r"^M{0,3}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})$")
_DIGITS = re.compile(r"(?<![\w.])(-?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\d])")


@dataclass(frozen=True)
class Number:
    value: float
    decimals: int  # digits after the point as written: the precision two numbers agree to


@dataclass(frozen=True)
class Analysed:
    text: str  # normalised: folded, no punctuation or articles, numbers as digits
    tokens: tuple[str, ...]
    numbers: tuple[Number, ...]
    words: tuple[str, ...]  # the tokens that are not numbers

    @property
    def number(self) -> Number | None:
        """The number, when the answer is one number with at most one word around it
        ("8", "8 legs", "about 300 km", "in 1945")."""
        values = {n.value for n in self.numbers}
        if len(values) != 1:
            return None
        return self.numbers[0] if len(self.unit_words) <= 1 else None

    @property
    def unit_words(self) -> tuple[str, ...]:
        """The words beside the numbers that could be units, in one spelling ("kilometres" → "km")."""
        return tuple(_unit(w) for w in self.words if w not in _NUMBER_FILLER and w not in STOPWORDS)


def _unit(word: str) -> str:
    singular = word[:-1] if len(word) > 3 and word.endswith("s") else word
    return _UNITS.get(word) or _UNITS.get(singular) or singular


def fold(text: str) -> str:
    """Casefold and strip accents: "Zürich" → "zurich", "Ångström" → "angstrom"."""
    text = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    return "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()


def normalize_answer(text: str) -> str:
    """The comparable form of an answer (see `Analysed.text`)."""
    return analyse(text).text


@lru_cache(maxsize=4096)
def analyse(text: str) -> Analysed:
    """Normalise once: roman numerals in names, fold, punctuation, numbers, articles."""
    text = _romans_to_digits(text)
    text = fold(text)
    for sym in _CURRENCY:
        text = text.replace(sym, " ")  # "$5" is 5: the unit only matters when both name one
    text = text.replace("&", " and ").replace("−", "-").replace("–", "-")
    text = re.sub(r"['’`´]", "", text)  # O'Neill and ONeill, Newton's and Newtons
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text)  # 21st → 21
    text = re.sub(r"(\d)\s*%", r"\1 %", text)

    tokens: list[str] = []
    numbers: list[Number] = []
    pos = 0
    for match in _DIGITS.finditer(text):
        tokens += _words(text[pos : match.start()])
        sign, whole, frac = match.groups()
        value = float(sign + whole.replace(",", "") + (frac or ""))
        tokens.append(f"\x00{len(numbers)}")  # a slot, filled once scale words are applied
        numbers.append(Number(value, len(frac) - 1 if frac else 0))
        pos = match.end()
    tokens += _words(text[pos:])
    tokens, numbers = _merge_number_words(tokens, numbers)

    out: list[str] = []
    words: list[str] = []
    for tok in tokens:
        if tok.startswith("\x00"):
            out.append(_format(numbers[int(tok[1:])].value))
        elif tok not in ARTICLES:
            out.append(tok)
            words.append(tok)
    return Analysed(" ".join(out), tuple(out), tuple(numbers), tuple(words))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+|%", text.replace("-", " "))


def _merge_number_words(tokens: list[str], numbers: list[Number]) -> tuple[list[str], list[Number]]:
    """Turn number words into numbers ("one hundred and forty-four" → 144) and apply scale
    words to digits ("1.5 million" → 1500000)."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("\x00"):
            slot = int(tok[1:])
            value, j = numbers[slot].value, i + 1
            while j < len(tokens) and tokens[j] in _SCALES:
                value *= _SCALES[tokens[j]]
                j += 1
            if j > i + 1:
                numbers[slot] = Number(value, 0 if value.is_integer() else numbers[slot].decimals)
            out.append(tok)
            i = j
            continue
        starts = tok in _SMALL or (tok == "a" and i + 1 < len(tokens) and tokens[i + 1] in _A_SCALES)
        if tok in _ORDINALS or starts:
            value, j = (_ORDINALS[tok], i + 1) if tok in _ORDINALS else _read_number_words(tokens, i)
            out.append(f"\x00{len(numbers)}")
            numbers.append(Number(float(value), 0))
            i = j
            continue
        out.append(tok)
        i += 1
    return out, numbers


def _read_number_words(tokens: list[str], i: int) -> tuple[int, int]:
    """Read "two hundred and forty five thousand" from tokens[i:]; returns (value, next index)."""
    total = current = 0
    j = i
    seen = False
    while j < len(tokens):
        tok = tokens[j]
        if tok in _SMALL:
            current += _SMALL[tok]
        elif tok == "hundred":
            current = max(current, 1) * 100
        elif tok in ("thousand", "million", "billion", "trillion"):
            total += max(current, 1) * _SCALES[tok]
            current = 0
        elif tok == "and" and seen and j + 1 < len(tokens) and tokens[j + 1] in _SMALL:
            pass
        elif tok == "a" and not seen and j + 1 < len(tokens) and tokens[j + 1] in _A_SCALES:
            pass
        else:
            break
        seen = True
        j += 1
    return total + current, j


def _romans_to_digits(text: str) -> str:
    """Roman numerals after a capitalised word ("Louis XIV", "World War II", "Henry VIII",
    "Elizabeth I") become digits. Only numerals with I, V or X count, so "Washington DC" and
    "5 CM" stay words; a lone "I" only at the end ("World War I"), never the pronoun."""
    tokens = re.split(r"(\s+)", text)
    words = [i for i, t in enumerate(tokens) if t.strip()]
    for n, idx in enumerate(words):
        raw = tokens[idx]
        core = raw.strip(".,;:!?)(\"'")
        if not core or not _ROMAN.match(core) or not re.search(r"[IVX]", core):
            continue
        if core == "I" and n != len(words) - 1:
            continue
        if n == 0 or not tokens[words[n - 1]][:1].isupper():
            continue
        tokens[idx] = raw.replace(core, str(_roman_value(core)))
    return "".join(tokens)


def _roman_value(numeral: str) -> int:
    values = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
    total = 0
    for a, b in zip(numeral, numeral[1:] + " "):
        va, vb = values[a], values.get(b, 0)
        total += -va if va < vb else va
    return total


def _format(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e18 else repr(value)


def numbers_equal(a: Number, b: Number) -> bool:
    """Equal at the precision both were written with: "3" = "3.0", "3.14" = "3.14159",
    but "2.6" ≠ "3" (rounding to whole numbers would make nearly everything agree)."""
    if abs(a.value - b.value) <= 1e-9 * max(1.0, abs(a.value), abs(b.value)):
        return True
    places = min(a.decimals, b.decimals)
    return places > 0 and round(a.value, places) == round(b.value, places)


def yes_no(text: str) -> bool | None:
    """True for "Yes", "Yes, it is", "True."; False for "No.", "Not at all", "False"; else None.

    The first word decides, but only when punctuation follows it ("No, ...", "Yes.") or the
    answer is at most three words: "Correct answer is Paris" is not a yes."""
    folded = fold(text).strip().lstrip("*_#>-• \"'")
    match = re.match(r"([a-z]+)(\W?)", folded)
    if not match:
        return None
    word, after = match.groups()
    short = len(re.findall(r"[a-z0-9]+", folded)) <= 3
    alone = after in {",", ".", "!", ";", ":", "—", "-"} or not after
    if (word in _YES and (short or alone)) or (word in _YES_WEAK and short):
        return True
    if (word in _NO and (short or alone)) or (word in _NO_WEAK and short):
        return False
    return None


def content_tokens(text: str) -> list[str]:
    """The normalised tokens of `text` that carry content (stopwords removed)."""
    return [t for t in analyse(text).tokens if t not in STOPWORDS]
