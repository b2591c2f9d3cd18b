"""Time expressions in a question -> a filter on the articles' published dates.

``parse_time_scope(question, reference)`` finds phrases such as "in June 2022", "last week" or
"recently" and turns them into a :class:`TimeScope`. ``reference`` is "today" for the question.

Rules (all case-insensitive; every window is inclusive and its end is clamped to ``reference``):

- today / tonight / this morning|afternoon|evening: reference .. reference.
- yesterday / last night: reference-1 .. reference (reports of yesterday's events appear today).
- the day before yesterday: reference-2 .. reference.
- this week: reference-6 .. reference.
- last week / past week / previous week / this past week: reference-13 .. reference (lenient:
  covers both the calendar week before this one and "the past seven days").
- this month: the 1st of the reference's month .. reference.
- last month / previous month: the whole previous calendar month.
- past month / the last month: rolling, reference minus one month .. reference.
- this year: 1 January .. reference. last year / previous year: the whole previous calendar year.
  past year / the last year: rolling, reference minus one year .. reference.
- in the last/past N hours|days|weeks|months|years (N a number, a word, "a few" = 3,
  "a couple" = 2, "several" = 5): reference minus N units .. reference (hours round up to days).
- N days ago: that day +-1; N weeks ago: that day +-3; N months ago: that calendar month;
  N years ago: that calendar year; N hours ago: reference-1 .. reference.
- on/this/since Monday: the most recent Monday on or before the reference .. reference.
  last/past/previous/this past Monday: the same, but strictly before the reference.
- the weekend / this weekend / over the weekend: most recent Saturday on or before the
  reference .. reference. last weekend / this past weekend: the Saturday of the last weekend
  that is over (on or before reference-2) .. reference.
- Dates that carry a year need no preposition: "June 2022", "June of 2022", "June 12, 2022",
  "12 June 2022", "2022-06-12", "the summer of 2022" (spring = Mar-May, summer = Jun-Aug,
  fall/autumn = Sep-Nov, winter of Y = Dec Y-1 .. Feb Y). "early/mid/late" are accepted and
  ignored (the whole period is used).
- A bare month ("June"), a month and day without a year ("June 12") or a bare year ("2022")
  only count after a preposition (in, during, throughout, on, of, from, since, after, before,
  prior to, until, till, through, as of), so "the 2022 midterms" or "the Jan. 6 committee" do
  not filter. A bare year followed by a lowercase plural ("of 2000 votes") is a count, not a
  year. A month or date without a year is its most recent occurrence on or before the
  reference.
- in/during/throughout/on/of/from P: the period P. since P: start of P .. reference.
  after P: the day after P .. reference. before/prior to P: open start .. the day before P.
  until/till/through/as of P: open start .. end of P.
- between P1 and P2 / from P1 to|until|through P2 (P2 may be "now", "today", "the present"):
  start of P1 .. end of P2; a P1 without a year takes the latest occurrence not after P2.
- The baseline of a comparison ("compared to a year ago", "than last year", "versus the same
  period last year") names no period to search: it is ignored.
- Possessive relative phrases ("last year's budget", "today's ruling") name a topic and are
  ignored, like "the 2022 midterms".
- A period that starts after the reference (a future year or date) never filters; its words
  are left in the question.
- Several windows in one question are merged into their hull (lenient: never over-filter).
- Recency (rank newer articles higher): latest, newest, (most) recent(ly), lately, current(ly),
  now, right now, nowadays, these days, so far, to date, as of now/today, at the moment,
  at present, presently, in recent days/weeks/...; plus the day- and week-level relative
  phrases above and "this month". "new" alone is never a recency word ("New York", "new law").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from dateutil.relativedelta import relativedelta


@dataclass(frozen=True)
class TimeScope:
    start: date | None  # inclusive lower bound on the article's published date
    end: date | None  # inclusive upper bound
    recency: bool  # the question asks for latest/recent/newest/current: rank newer higher
    matched: tuple[str, ...]  # the phrases that produced the scope, in question order
    explicit: bool  # True when a date range was found (not just recency)


@dataclass(frozen=True)
class _Found:
    """What one phrase contributes: a window (end set) and/or recency."""

    start: date | None
    end: date | None
    recency: bool = False


_Handler = Callable[[re.Match[str], date], _Found | None]

# --- vocabulary -------------------------------------------------------------------------------

_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
    "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_SEASONS = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 12}  # first month
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "few": 3, "a few": 3, "couple": 2, "a couple": 2, "several": 5,
}  # fmt: skip

# --- regex building blocks --------------------------------------------------------------------


def _alternation(words: list[str] | dict[str, int]) -> str:
    return "|".join(sorted(words, key=len, reverse=True))


_MONTH = rf"(?:{_alternation(_MONTHS)})\b\.?"
_SEASON = rf"(?:{_alternation(_SEASONS)})\b"
_DAY = r"(?:3[01]|[12]\d|0?[1-9])(?:st|nd|rd|th)?\b"
_YEAR = r"(?<![\d$£€])(?:19|20)\d{2}\b(?![.,]\d|%)"
# A lowercase plural right after a bare number makes it a count ("of 2000 votes"), not a year.
_COUNT_AFTER = (
    r"(?!\s+(?-i:people|men|women|children|percent|feet|more|fewer"
    r"|(?!(?:this|his|its|was|has|is|as|does|thus|plus|unless)\b)[a-z]+s)\b)"
)
_ISO = r"(?<![\d-])\d{4}[-/]\d{1,2}[-/]\d{1,2}(?![\d-])"
_MODIFIER = r"(?:(?:the\s+)?(?:early|mid|late)(?:\s+|-))?"

_DATED_FORMS = [  # carry a year: safe without a preposition
    _ISO,
    rf"{_DAY}\s+(?:of\s+)?{_MONTH},?\s*{_YEAR}",  # 12 June 2022, 12th of June, 2022
    rf"{_MONTH}\s*{_DAY},?\s*{_YEAR}",  # June 12, 2022
    rf"{_MONTH},?\s+(?:of\s+)?{_YEAR}",  # June 2022, June of 2022
    rf"(?:the\s+)?{_SEASON}\s+(?:of\s+)?{_YEAR}",  # the summer of 2022
]
_UNDATED_FORMS = [  # need a preposition in front
    rf"{_DAY}\s+(?:of\s+)?{_MONTH}",  # 12 June
    rf"{_MONTH}\s*{_DAY}",  # June 12
    _MONTH,  # June
    _YEAR + _COUNT_AFTER,  # 2022
]
_DATED = _MODIFIER + "(?:" + "|".join(_DATED_FORMS) + ")"
_PERIOD = _MODIFIER + "(?:" + "|".join(_DATED_FORMS + _UNDATED_FORMS) + ")"
_PREPOSITIONS = (
    r"since|after|before|prior\s+to|until|till|through|as\s+of|in|during|throughout|on|of|from"
)
_NUMBER = rf"\d{{1,3}}|a\s+couple(?:\s+of)?|couple(?:\s+of)?|{_alternation(_NUMBER_WORDS)}"
_UNIT = r"(?P<unit>hour|day|week|month|year)s?\b"
_LEAD = r"(?:(?:in|over|during|within|for|from|since)\s+)?"
_NOT_POSSESSIVE = r"(?!['’]s\b)"  # "last year's budget" names a topic, like "the 2022 midterms"


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# --- date helpers -----------------------------------------------------------------------------


def _month_end(year: int, month: int) -> date:
    return date(year, month, 1) + relativedelta(months=1) - timedelta(days=1)


def _bounded(
    start: date | None, end: date | None, ref: date, recency: bool = False
) -> _Found | None:
    """A window with its end clamped to the reference; None if it would be empty."""
    end = ref if end is None else min(end, ref)
    if start is not None and start > end:
        return None
    return _Found(start, end, recency)


def _latest_day(month: int, day: int, anchor: date) -> date | None:
    """The most recent month/day on or before ``anchor`` (None for e.g. 31 February)."""
    for year in range(anchor.year, anchor.year - 8, -1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate <= anchor:
            return candidate
    return None


def _period(text: str, anchor: date) -> tuple[date, date] | None:
    """First and last day of a period matched by ``_PERIOD``; a missing year is resolved to
    the latest occurrence on or before ``anchor``."""
    text = text.lower()
    if iso := re.search(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})", text):
        try:
            day = date(*(int(part) for part in iso.groups()))
        except ValueError:
            return None
        return day, day
    year_match = re.search(r"\b(?:19|20)\d{2}\b", text)
    year = int(year_match.group()) if year_match else None
    rest = text[: year_match.start()] + text[year_match.end() :] if year_match else text
    season = re.search(_SEASON, rest)
    month = re.search(rf"\b({_alternation(_MONTHS)})\b", rest)
    day = re.search(r"\b(\d{1,2})(?:st|nd|rd|th)?\b", rest)
    if season and year is not None:
        first_month = _SEASONS[season.group()]
        first_year = year - 1 if first_month == 12 else year
        first = date(first_year, first_month, 1)
        last = first + relativedelta(months=3) - timedelta(days=1)
        return first, last
    if month and day:
        if year is None:
            found = _latest_day(_MONTHS[month.group(1)], int(day.group(1)), anchor)
            return (found, found) if found else None
        try:
            exact = date(year, _MONTHS[month.group(1)], int(day.group(1)))
        except ValueError:
            return None
        return exact, exact
    if month:
        number = _MONTHS[month.group(1)]
        if year is None:
            year = anchor.year if number <= anchor.month else anchor.year - 1
        return date(year, number, 1), _month_end(year, number)
    if year is not None:
        return date(year, 1, 1), date(year, 12, 31)
    return None


def _count(text: str) -> int:
    words = re.sub(r"\s+", " ", text.lower()).removesuffix(" of")
    return int(words) if words.isdigit() else _NUMBER_WORDS[words]


# --- rule handlers ----------------------------------------------------------------------------


def _range(m: re.Match[str], ref: date) -> _Found | None:
    last_text = m.group("b")
    if re.fullmatch(r"now|today|(?:the\s+)?present", last_text, re.IGNORECASE):
        last = ref
    elif (second := _period(last_text, ref)) is not None:
        last = second[1]
    else:
        return None
    first = _period(m.group("a"), min(last, ref))
    if first is None or first[0] > ref:
        return None
    return _bounded(first[0], last, ref)


def _at_period(m: re.Match[str], ref: date) -> _Found | None:
    prep = re.sub(r"\s+", " ", m.group("prep").lower())
    period = _period(m.group("period"), ref)
    if period is None or period[0] > ref:  # a future period never filters
        return None
    first, last = period
    if prep == "since":
        return _bounded(first, ref, ref)
    if prep == "after":
        return _bounded(last + timedelta(days=1), ref, ref)
    if prep in ("before", "prior to"):
        return _bounded(None, first - timedelta(days=1), ref)
    if prep in ("until", "till", "through", "as of"):
        return _bounded(None, last, ref)
    return _bounded(first, last, ref)


def _dated(m: re.Match[str], ref: date) -> _Found | None:
    period = _period(m.group(), ref)
    if period is None or period[0] > ref:
        return None
    return _bounded(*period, ref)


def _recency(m: re.Match[str], ref: date) -> _Found | None:
    return _Found(None, None, recency=True)


def _past_n(m: re.Match[str], ref: date) -> _Found | None:
    n, unit = _count(m.group("n")), m.group("unit").lower()
    if unit == "hour":
        start = ref - timedelta(days=math.ceil(n / 24))
    else:
        start = ref - relativedelta(**{unit + "s": n})
    return _bounded(start, ref, ref, recency=unit in ("hour", "day", "week"))


def _ago(m: re.Match[str], ref: date) -> _Found | None:
    n, unit = _count(m.group("n")), m.group("unit").lower()
    if unit == "hour":
        return _bounded(ref - timedelta(days=1), ref, ref, recency=True)
    center = ref - relativedelta(**{unit + "s": n})
    if unit == "day":
        return _bounded(center - timedelta(days=1), center + timedelta(days=1), ref, True)
    if unit == "week":
        return _bounded(center - timedelta(days=3), center + timedelta(days=3), ref, True)
    if unit == "month":
        return _bounded(center.replace(day=1), _month_end(center.year, center.month), ref)
    return _bounded(date(center.year, 1, 1), date(center.year, 12, 31), ref)


def _calendar(m: re.Match[str], ref: date) -> _Found | None:
    which = re.sub(r"\s+", " ", m.group("which").lower())
    unit = m.group("unit").lower()
    if which == "last" and m.group("the"):  # "the last month" is rolling, like "the past month"
        which = "past"
    if unit == "week":
        days = 6 if which == "this" else 13
        return _bounded(ref - timedelta(days=days), ref, ref, recency=True)
    if which == "this":
        first = ref.replace(day=1) if unit == "month" else ref.replace(month=1, day=1)
        return _bounded(first, ref, ref, recency=unit == "month")
    if which in ("last", "previous"):
        if unit == "month":
            previous = ref.replace(day=1) - timedelta(days=1)
            return _bounded(previous.replace(day=1), previous, ref)
        return _bounded(date(ref.year - 1, 1, 1), date(ref.year - 1, 12, 31), ref)
    return _bounded(ref - relativedelta(**{unit + "s": 1}), ref, ref)  # past, this past


def _day_word(m: re.Match[str], ref: date) -> _Found | None:
    word = m.group().lower()
    if "before" in word:
        back = 2
    elif "yesterday" in word or "night" in word:
        back = 1
    else:
        back = 0
    return _bounded(ref - timedelta(days=back), ref, ref, recency=True)


def _weekend(m: re.Match[str], ref: date) -> _Found | None:
    which = re.sub(r"\s+", " ", m.group("which").lower())
    over = which in ("last", "past", "this past")  # a weekend that is already over
    latest = ref - timedelta(days=2) if over else ref
    saturday = latest - timedelta(days=(latest.weekday() - 5) % 7)
    return _bounded(saturday, ref, ref, recency=True)


def _weekday(m: re.Match[str], ref: date) -> _Found | None:
    which = m.group("which").lower()
    back = (ref.weekday() - _WEEKDAYS.index(m.group("day").lower())) % 7
    if back == 0 and which not in ("on", "since", "from", "this"):
        back = 7  # "last Thursday" said on a Thursday means a week ago
    return _bounded(ref - timedelta(days=back), ref, ref, recency=True)


# --- rules, in priority order: an earlier rule's match hides later matches it overlaps --------


def _comparison(m: re.Match[str], ref: date) -> _Found | None:
    return None  # the baseline of a comparison, not the period asked about


_RULES: list[tuple[re.Pattern[str], _Handler]] = [
    (
        _compile(
            r"\b(?:compared\s+(?:with|to)|than|versus|vs\.?)\s+"
            r"(?:(?:the\s+)?same\s+(?:time|period|day|week|month|quarter)\s+)?"
            rf"(?:(?:{_NUMBER})\s+{_UNIT}\s+(?:ago|earlier|before)|a\s+year\s+(?:ago|earlier)"
            r"|last\s+(?:year|month|week|quarter))\b"
        ),
        _comparison,
    ),
    (
        _compile(
            rf"\b(?:between|from)\s+(?P<a>{_PERIOD})\s*(?:and|to|until|till|through|-|–)\s*"
            rf"(?P<b>{_PERIOD}|(?:now|today|(?:the\s+)?present)\b)"
        ),
        _range,
    ),
    (_compile(rf"\b(?P<prep>{_PREPOSITIONS})\s+(?P<period>{_PERIOD})"), _at_period),
    (_compile(rf"(?<![\w-]){_DATED}"), _dated),
    (
        _compile(
            r"\b(?:(?:in|over)\s+recent\s+(?:days|weeks|months|years|times)|most\s+recent(?:ly)?"
            r"|latest|newest|recent(?:ly)?|lately|current(?:ly)?|right\s+now|nowadays|now"
            r"|these\s+days|so\s+far|to\s+date|as\s+of\s+(?:now|today)"
            r"|at\s+(?:the\s+moment|present)|presently)\b"
        ),
        _recency,
    ),
    (
        _compile(
            rf"\b{_LEAD}(?:the\s+)?(?:last|past|previous|preceding)\s+(?P<n>{_NUMBER})\s+{_UNIT}"
        ),
        _past_n,
    ),
    (_compile(rf"\b(?P<n>{_NUMBER})\s+{_UNIT}\s+ago\b"), _ago),
    (
        _compile(
            r"\b(?:(?:in|over|during|within|for|from|since|earlier|later)\s+)?(?P<the>the\s+)?"
            r"(?P<which>this\s+past|this|last|past|previous)\s+(?P<unit>week|month|year)\b"
            + _NOT_POSSESSIVE
        ),
        _calendar,
    ),
    (
        _compile(
            r"(?:\b(?:the\s+)?day\s+before\s+yesterday|\b(?:since\s+)?yesterday"
            r"|\blast\s+night|(?<!usa )\btoday|\btonight|\bthis\s+(?:morning|afternoon|evening))\b"
            + _NOT_POSSESSIVE
        ),
        _day_word,
    ),
    (
        _compile(
            r"\b(?:(?:over|during|on|at|from|since)\s+)?"
            r"(?P<which>this\s+past|the|this|last|past)\s+weekend\b" + _NOT_POSSESSIVE
        ),
        _weekend,
    ),
    (
        _compile(
            r"\b(?P<which>on|since|from|this\s+past|last|past|previous|this)\s+"
            rf"(?P<day>{_alternation(_WEEKDAYS)})\b" + _NOT_POSSESSIVE
        ),
        _weekday,
    ),
]


def parse_time_scope(question: str, reference: date) -> TimeScope:
    """The published-date window and recency wish expressed in ``question``."""
    taken: list[tuple[int, int]] = []
    hits: list[tuple[int, str, _Found]] = []
    for pattern, handler in _RULES:
        for m in pattern.finditer(question):
            if any(m.start() < end and start < m.end() for start, end in taken):
                continue
            taken.append(m.span())  # claimed even when rejected: "in June 2030" must not
            found = handler(m, reference)  # fall back to "in June"
            if found is not None:
                hits.append((m.start(), m.group().strip(), found))
    hits.sort(key=lambda hit: hit[0])
    windows = [found for _, _, found in hits if found.end is not None]
    starts = [found.start for found in windows]
    return TimeScope(
        start=None if not windows or None in starts else min(s for s in starts if s),
        end=max((found.end for found in windows if found.end), default=None),
        recency=any(found.recency for _, _, found in hits),
        matched=tuple(phrase for _, phrase, _ in hits),
        explicit=bool(windows),
    )


_RECENCY_NOUNS = {"latest", "newest", "most recent"}  # "the latest on X" keeps its noun


def strip_time_phrases(question: str, scope: TimeScope) -> str:
    """``question`` without the phrases in ``scope.matched``, tidied up for keyword search."""
    text = question
    for phrase in sorted(scope.matched, key=len, reverse=True):
        pattern = rf"(?<!\w){re.escape(phrase)}(?!\w)"
        if re.sub(r"\s+", " ", phrase.lower()) in _RECENCY_NOUNS:
            pattern += r"(?!\s+(?:on|about|regarding|in|with|from|for)\b)"
        text = re.sub(pattern, " ", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([?.!,;:])", r"\1", text)
    text = re.sub(r"[,;:]+(?=[?.!,;:]|$)", "", text)
    text = re.sub(r",?\s+(?:and|or)(?=[?.!]|$)", "", text, flags=re.IGNORECASE)  # "X and?"
    text = text.strip(" ,;:-")
    if not re.search(r"\w", text):
        return question.strip()
    if question[:1].isupper():
        text = text[0].upper() + text[1:]
    return text
