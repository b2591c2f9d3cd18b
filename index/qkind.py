"""Question kinds and a small answer-type tagger, so offline answers say what was asked.

"Who voted against the bridge?" wants a name, "How old is she?" an age, "When is the
runoff?" a date. ``question_kind`` reads the kind from the question's wording; ``tag`` finds
the spans of each kind in a sentence with patterns, no model: capitalised-name runs,
numbers and amounts, dates, ages, and places -- names that the text itself puts after "in",
"at", "near"... (a gazetteer from the article, as news prose introduces its places that
way). A sentence *answers* a kind when it holds a span of that kind made of words the
question does not already contain: "The council voted 7 to 2" repeats the question's
topic, "Councillor Ada Brandt voted against" names someone new.

Spans are approximate by design: they only steer which sentence opens an answer and whether
an answer exists, never what is quoted (the quote is always the whole sentence).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from itertools import pairwise

from index.text import sentences, terms


class Kind(str, Enum):
    PERSON = "person"  # who/whom/whose: a person or an organisation
    DATE = "date"  # when, what year/day
    PLACE = "place"  # where, which city/country/state...
    NUMBER = "number"  # how many/much/big/long..., what share/rate
    AGE = "age"  # how old, what age
    NAME = "name"  # which/what X, what is it called: a named thing
    OTHER = "other"  # what happened, why, how: no typed answer


# The earliest match decides; on a tie, the first rule (more specific wordings come first).
_KIND_RULES: list[tuple[Kind, re.Pattern[str]]] = [
    (Kind.AGE, re.compile(r"\bhow old\b|\bwhat age\b|\bat what age\b", re.I)),
    (
        Kind.DATE,
        re.compile(
            r"\bwhen\b|\b(?:what|which) (?:year|date|day|month|time of year)\b|"
            r"\bhow long ago\b|\bwhat time\b",
            re.I,
        ),
    ),
    (
        Kind.NUMBER,
        re.compile(
            r"\bhow (?:many|much|big|large|long|far|fast|heavy|high|tall|deep|strong|"
            r"expensive|severe|wide|powerful|hot|cold|often)\b|"
            r"\b(?:what|which)(?: is| was|'s| are| were)?(?: the| its| his| her| their)?"
            r"(?: \w+){0,3}? (?:share|percentage|percent|proportion|fraction|rate|"
            r"magnitude|number|amount|price|temperature|speed|score|sum|total|cost|size|"
            r"category|figure|margin|value)\b|\bwhat (?:is|was|'s) the (?:\w+ )?(?:worth|tally|toll)\b|"
            r"\bworth\b\??$",
            re.I,
        ),
    ),
    (
        Kind.PLACE,
        re.compile(
            r"\bwhere\b|\b(?:what|which) (?:\w+ )?(?:city|cities|country|countries|state|states|"
            r"province|county|town|village|region|island|nation|continent|place|venue|"
            r"capital|district|neighbou?rhood|port|airport|park|destination)\b|"
            r"\b(?:what|which)\b.*\bdestination\b|"
            r"\b(?:what|which) (?:\w+ )?(?:country|state)'s\b|\bwhich .*\bin\?$",
            re.I,
        ),
    ),
    # ", who ..." opens a relative clause ("Kanye West, who changed his name to Ye, is
    # acquiring which platform?"): the question word comes later.
    (Kind.PERSON, re.compile(r"(?<!,\s)\bwho(?:m|se)?\b", re.I)),
    (
        Kind.NAME,
        re.compile(
            r"\bwhich\b|\bwhat (?:is|was|'s|are|were) (?:the |its |his |her |their )?"
            r"(?:\w+ )?name\b|\bwhat(?:'s| is| was| are| were)? (?:\w+ ){0,3}called\b|"
            r"\bwhat (?:company|group|team|film|movie|show|song|book|album|party|agency|"
            r"firm|brand|organi[sz]ation|union|galaxy|planet|storm|hurricane|ship)\b",
            re.I,
        ),
    ),
]


def question_kind(question: str) -> Kind:
    """The kind of answer the question asks for (OTHER when its wording does not say)."""
    # The question proper is its last sentence: "Liz Truss is quitting. Who held...?"
    parts = sentences(question.strip())
    asked = parts[-1] if parts else question
    # The question word that comes first asks: "Which union represents the drivers who
    # might strike?" wants a name, not a person; on a tie the more specific rule wins.
    found = [
        (m.start(), order, kind)
        for order, (kind, pattern) in enumerate(_KIND_RULES)
        if (m := pattern.search(asked))
    ]
    return min(found)[2] if found else Kind.OTHER


# The words that only say which kind is asked: "how old", "what year", "what's it called".
_KIND_WORDS = re.compile(
    r"\bhow (?:old|long|far|fast|big|large|heavy|high|tall|deep|strong|wide|often)\b|"
    r"\bwhat age\b|\b(?<=what )(?:year|date|day|month)\b|\bcalled\b|\bname\b",
    re.I,
)


def without_kind_words(question: str) -> str:
    """The question minus the words that only name the kind asked for: its topic."""
    return _KIND_WORDS.sub(" ", question)


@dataclass(frozen=True)
class Span:
    kind: Kind
    text: str
    start: int


_MONTH = (
    r"(?:Jan(?:uary|\.)?|Feb(?:ruary|\.)?|Mar(?:ch|\.)?|Apr(?:il|\.)?|May|June?|July?|"
    r"Aug(?:ust|\.)?|Sep(?:t(?:ember|\.)?|\.)?|Oct(?:ober|\.)?|Nov(?:ember|\.)?|Dec(?:ember|\.)?)"
)
_WEEKDAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_NUMBER_WORD = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
    r"eighty|ninety|hundred|a hundred|dozens?|a dozen|half|a third|a quarter)"
)
_SCALE = r"(?:hundred|thousand|million|billion|trillion|[mbk]n?\b)"
_UNIT = (
    r"(?:%|\s?percent(?:age points?)?|\s?per ?cent|\s(?:points?|people|acres|miles|"
    r"kilometers|kilometres|km|feet|meters|metres|pounds|kilograms|kg|tonnes|tons|euros|"
    r"dollars|pounds|yen|yuan|rupees|degrees|votes|years|months|weeks|days|hours|minutes|"
    r"seconds|times|homes|houses|deaths|cases|members|workers|passengers|students|"
    r"species|shares|barrels|games|goals|runs|eggs)\b)"
)
_TAGGERS: list[tuple[Kind, re.Pattern[str]]] = [
    (
        Kind.AGE,
        re.compile(
            rf"\b(?:\d{{1,3}}|{_NUMBER_WORD}(?:-{_NUMBER_WORD})?)-year-old\b|"
            r"\baged? \d{1,3}\b|\bage of \d{1,3}\b|\b\d{1,3} years? old\b|"
            r"\b[\d,.]+ (?:million |billion |thousand )?years? (?:old|ago)\b|"
            r"(?<=[A-Za-z]), \d{1,3},|\b(?:died|dies|retired) at \d{1,3}\b|"
            r"\bat (?:the )?age \d{1,3}\b|\(\d{1,3}\)|"
            r"\b(?:was|is|turned|turns|will turn) (?:just |only )?\d{1,3}\b(?![.,]\d|\s*(?:%|[a-z]))",
            re.I,
        ),
    ),
    (
        Kind.DATE,
        re.compile(
            rf"\b{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?\b|\b\d{{1,2}} {_MONTH}"
            rf"(?: \d{{4}})?\b|\b{_MONTH},? \d{{4}}\b|\b(?:in|since|by|until|from|of|early|"
            rf"late|mid-?) (?:19|20)\d\d\b|\b(?:19|20)\d\d\b|\b{_WEEKDAY}\b|"
            r"\b(?:yesterday|today|tomorrow|tonight|last (?:week|month|year)|next "
            r"(?:week|month|year))\b|"
            # "start in March", "by the spring": a month or season after a preposition
            r"\b(?:in|since|by|until|from|through|before|after|early|late|mid-?)(?: the)? "
            r"(?:January|February|March|April|May|June|July|August|September|October|"
            r"November|December|spring|summer|fall|autumn|winter)\b"
        ),
    ),
    (
        Kind.NUMBER,
        re.compile(
            rf"(?:[$€£¥]\s?|\bUS\$|\bR\$)?\b\d[\d,]*(?:\.\d+)?(?:\s?{_SCALE})*{_UNIT}?|"
            rf"\b{_NUMBER_WORD}(?:[ -]{_NUMBER_WORD})*(?: {_SCALE})*{_UNIT}|"
            r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten) (?:million|billion)\b|"
            r"\bCategory \d\b",
            re.I,
        ),
    ),
]
# A run of capitalised words (with inner "of", "de", initials, hyphens and apostrophes):
# a person, organisation, place or title. Digits may follow ("SMACS 0723", "WASP-96 b").
_CAP = r"(?:[A-Z]\.|[A-Z][\w'’\-]*)"
_NAME_RUN = re.compile(
    rf"{_CAP}(?:(?:\s+(?:of|de|da|del|la|le|van|von|bin|al|the|and|for)(?=\s+[A-Z]))?"
    rf"\s+(?:{_CAP}|\d[\w\-]*\b(?!\s*(?:%|percent|million|billion))))*"
)
# Capitalised words that are not names on their own: sentence openers, months, titles.
_NOT_NAMES_TEXT = """a an the this that these those it its he she they we i you his her their our my your
    in on at by for from to of with after before during as and but or if when while where who
    what which why how there here then now also however meanwhile yet still so but
    monday tuesday wednesday thursday friday saturday sunday january february march april may
    june july august september october november december jan feb mar apr aug sep sept oct nov
    dec mr mrs ms dr president prime minister secretary sen rep gov governor chancellor
    officials police authorities according read watch related cnn ap reuters"""
_NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())
_TITLE = re.compile(
    r"\b(?:Mr|Mrs|Ms|Dr|Sir|Dame|President|Minister|Sen|Senator|Rep|Gov|Governor|Chancellor|"
    r"Secretary|Councillor|Councilor|Mayor|Judge|Justice|Coach|CEO|King|Queen|Pope|"
    r"Prince|Princess|General|Gen|Chief)\.?\s+$"
)
_WORD = re.compile(r"[\w'’\-$%.,]+")
_DIGITS = re.compile(r"\d[\d,.]*")
_AGE_WORD = re.compile(r"\w+-year-old$", re.I)
_PLACE_CUE = re.compile(
    r"\b(?:in|at|near|from|to|across|outside|inside|throughout|into|toward|towards|around|"
    r"over|along|off|via|"
    r"(?:north|south|east|west|north-?east|north-?west|south-?east|south-?west)"
    r"(?:ward|erly)? of|"
    r"northern|southern|eastern|western|central)\s+(?:the\s+)?$",
    re.I,
)


def names(sentence: str) -> list[Span]:
    """Capitalised-name runs, minus openers and titles that stand alone."""
    out = []
    for m in _NAME_RUN.finditer(sentence):
        words = m.group(0).split()
        # Drop leading words that are not names ("The", "In", "President" before a name).
        while words and (words[0].lower().strip(".") in _NOT_NAMES or _AGE_WORD.match(words[0])):
            words = words[1:]
        while words and words[-1].lower().strip(".") in _NOT_NAMES:
            words = words[:-1]
        if not words or not any(w[0].isupper() for w in words):
            continue
        text = " ".join(words)
        out.append(Span(Kind.NAME, text, m.start() + m.group(0).find(words[0])))
    return out


_TAGGER = dict(_TAGGERS)


@lru_cache(maxsize=1 << 13)
def _typed(sentence: str, kind: Kind) -> tuple[Span, ...]:
    """One pattern's spans of a sentence: a question scores the same candidate sentences
    more than once (a follow-up, a second reading), and Span is frozen."""
    return tuple(
        Span(kind, m.group(0).strip(" ,"), m.start()) for m in _TAGGER[kind].finditer(sentence)
    )


@lru_cache(maxsize=1 << 12)
def _names(sentence: str) -> tuple[Span, ...]:
    return tuple(names(sentence))


@lru_cache(maxsize=256)
def places_in(text: str) -> frozenset[str]:
    """A gazetteer from the text itself: names it introduces with "in", "at", "near"...
    (kept for a few texts: a second reading of the sources scores the same articles)."""
    found = set()
    for span in names(text):
        if _PLACE_CUE.search(text[max(0, span.start - 24) : span.start]):
            found.add(span.text)
    return frozenset(found)


def tag(
    sentence: str,
    places: set[str] | frozenset[str] = frozenset(),
    kinds: frozenset[Kind] | None = None,
) -> list[Span]:
    """Every typed span in the sentence; ``places`` are names known to be places. ``kinds``
    limits the spans to those kinds (None: all), and only their patterns are run."""
    spans = [
        span
        for kind, _ in _TAGGERS
        if kinds is None or kind in kinds
        for span in _typed(sentence, kind)
    ]
    if kinds is not None and not kinds & {Kind.NAME, Kind.PLACE}:
        return spans
    for span in _names(sentence):
        if kinds is None or Kind.NAME in kinds:
            spans.append(span)
        if kinds is not None and Kind.PLACE not in kinds:
            continue
        cue = _PLACE_CUE.search(sentence[max(0, span.start - 24) : span.start])
        if cue or span.text in places or any(p in span.text for p in places if len(p) > 3):
            spans.append(Span(Kind.PLACE, span.text, span.start))
    return spans


# Which span kinds answer which question kind.
ANSWERED_BY: dict[Kind, frozenset[Kind]] = {
    Kind.PERSON: frozenset({Kind.NAME}),
    Kind.NAME: frozenset({Kind.NAME}),
    Kind.PLACE: frozenset({Kind.PLACE}),
    Kind.DATE: frozenset({Kind.DATE}),
    Kind.NUMBER: frozenset({Kind.NUMBER}),
    Kind.AGE: frozenset({Kind.AGE}),
}


def _person_like(span: Span, sentence: str, places: set[str]) -> bool:
    """A name that can be someone: not a place, and two words ("Ada Brandt"), or one
    word that is all or mixed capitals, as organisations write themselves ("JetBlue",
    "NATO"), or a surname after a title ("President Biden")."""
    if span.text in places or sentence[span.start - 1 : span.start] == "(":
        return False  # a place, or an abbreviation of the words before it ("(ACP)")
    words = span.text.split()
    if any(c.isdigit() for c in span.text):
        return False  # "WASP-96 b", "SMACS 0723": things, not people
    return (
        len(words) >= 2
        or any(c.isupper() for c in words[0][1:])
        or bool(_TITLE.search(sentence[: span.start]))
    )


@dataclass(frozen=True)
class Asked:
    """What a question asks for, and what it already says."""

    kind: Kind
    terms: frozenset[str]
    numbers: frozenset[str]  # figures written in the question: never its answer
    counted: frozenset[str] = frozenset()  # "how many book bans": what the number counts
    money: bool = False  # "how much is it worth", "how much was it fined": an amount of money
    pair: bool = False  # "which two supermarkets": two names, said together


# "How many book bans", "how many of its members": the words naming what is counted.
_COUNTED = re.compile(
    r"\bhow many (?:(?:of|more|fewer|other|new) )*(?:(?:the|its|his|her|their|these|those) )?"
    r"([a-z][\w\-]*)",
    re.I,
)


# "How much is the merger worth?", "How much was Instagram fined?": a sum of money, not any
# figure ("grocery prices rose 13%"), is the answer.
_MONEY_QUESTION = re.compile(
    r"\bhow much\b.*\b(?:worth|cost|costs|costing|pay|paid|pays|fined?|sell|sold|"
    r"raised?|spen[dt]|donat\w*|earn(?:ed|s)?|make|made|charg\w*|owe[ds]?|budget|salary|"
    r"revenue|debt|loans?|aid|funding)\b|\bhow much (?:money|cash|funding)\b",
    re.I,
)
_MONEY = re.compile(
    r"[$€£¥]|\bUS\$|\b(?:dollars|euros?|pounds|yen|yuan|rupees|francs|pesos)\b", re.I
)


_PAIR_QUESTION = re.compile(r"\b(?:which|what|who are the) two\b", re.I)
_JOINED = re.compile(r"\s+(?:and|&)\s+")


def asked(question: str, kind: Kind | None = None) -> Asked:
    """``kind`` overrides the question's own (an elliptic follow-up reuses the last one)."""
    numbers = frozenset(n.strip(",.") for n in _DIGITS.findall(question))
    counted = _COUNTED.search(question)
    return Asked(
        kind or question_kind(question),
        frozenset(terms(question)),
        numbers,
        frozenset(terms(counted.group(1))) if counted else frozenset(),
        bool(_MONEY_QUESTION.search(question)),
        bool(_PAIR_QUESTION.search(question)),
    )


def paired(sentence: str, spans: list[Span]) -> bool:
    """Whether the sentence names two of its answer spans together ("Kroger and
    Albertsons", "Sweden and Finland"): what "which two ..." asks for."""
    if any(_JOINED.search(s.text) for s in spans):
        return True  # a name run takes in its "and": "Kroger and Albertsons"
    ends = sorted((s.start, s.start + len(s.text)) for s in spans)
    return any(
        _JOINED.fullmatch(sentence[a_end:b_start]) for (_, a_end), (b_start, _) in pairwise(ends)
    )


def counts(q: Asked, sentence: str, span: Span, window: int = 3) -> bool:
    """Whether the number ``span`` counts what the question asks about: "2,532 book bans"
    for "how many book bans", not "50 groups" in a sentence about book bans."""
    end = span.start + len(span.text)
    following = _WORD.findall(sentence[end:])[:window]
    return bool(set(terms(" ".join([span.text, *following]))) & q.counted)


def answers(q: Asked, sentence: str, places: set[str] | frozenset[str] = frozenset()) -> list[Span]:
    """The spans of the sentence that could answer ``q``: of the right kind, and not merely
    the question's own words (a number or a name the question already gives)."""
    wanted = ANSWERED_BY.get(q.kind)
    if not wanted:
        return []
    # Only the kinds read below are tagged: places rule out persons, dates hold no amounts.
    needed = wanted | ({Kind.PLACE} if q.kind is Kind.PERSON else set())
    needed |= {Kind.DATE} if Kind.NUMBER in wanted else set()
    spans = tag(sentence, places, frozenset(needed))
    where = {s.text for s in spans if s.kind is Kind.PLACE}
    dates = [(s.start, s.start + len(s.text)) for s in spans if s.kind is Kind.DATE]
    out = []
    for span in spans:
        if span.kind not in wanted:
            continue
        # A figure inside a date ("in 2024", "October 2") is no amount.
        if span.kind is Kind.NUMBER and any(a <= span.start < b for a, b in dates):
            continue
        if q.money and span.kind is Kind.NUMBER and not _MONEY.search(span.text):
            continue
        if q.kind is Kind.PERSON and not _person_like(span, sentence, where):
            continue
        if q.kind in (Kind.NUMBER, Kind.AGE, Kind.DATE):
            digits = [d.strip(",.") for d in _DIGITS.findall(span.text)]
            if digits and all(d in q.numbers for d in digits):
                continue
        else:
            span_terms = set(terms(span.text))
            if not span_terms or span_terms <= q.terms:
                continue
        out.append(span)
    return out


def near(q: Asked, sentence: str, span: Span, window: int = 8) -> bool:
    """Whether ``span`` sits within ``window`` words of one of the question's key terms:
    "the nearly $25 billion deal" answers "what is the merger worth" better than a figure
    at the far end of a long sentence."""
    starts, found = _words(sentence)
    at = bisect_left(starts, span.start)  # the words before the span
    end = at + len(span.text.split())
    # Only the words in the window are stemmed: most of a long sentence is out of reach.
    return any(
        not at <= i < end and set(terms(found[i])) & q.terms
        for i in range(max(0, at - window), min(len(found), end + window))
    )


@lru_cache(maxsize=1 << 12)
def _words(sentence: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Where each word of a sentence starts, and the words: ``near`` looks at the same
    sentence once per span of it."""
    found = list(_WORD.finditer(sentence))
    return tuple(m.start() for m in found), tuple(m.group(0) for m in found)
