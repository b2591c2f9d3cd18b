"""Time expressions in questions -> published-date filters (index.timeparse)."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from index.timeparse import TimeScope, parse_time_scope, strip_time_phrases

REF = date(2022, 6, 16)  # a Thursday
D = date

# question, start, end, recency, matched phrases
CASES: list[tuple[str, date | None, date | None, bool, tuple[str, ...]]] = [
    # relative days and weeks
    ("What happened today?", REF, REF, True, ("today",)),
    ("What did the court decide yesterday?", D(2022, 6, 15), REF, True, ("yesterday",)),
    ("What happened the day before yesterday?", D(2022, 6, 14), REF, True,
     ("the day before yesterday",)),
    ("Police arrested 31 men this week in a sting. Why?", D(2022, 6, 10), REF, True,
     ("this week",)),
    ("What did the Senate pass last week?", D(2022, 6, 3), REF, True, ("last week",)),
    ("What happened over the past week?", D(2022, 6, 3), REF, True, ("over the past week",)),
    ("Any storms in the past seven days?", D(2022, 6, 9), REF, True,
     ("in the past seven days",)),
    ("What happened in the last 3 days?", D(2022, 6, 13), REF, True, ("in the last 3 days",)),
    ("Fires in the past two weeks?", D(2022, 6, 2), REF, True, ("in the past two weeks",)),
    ("Outages in the last 24 hours?", D(2022, 6, 15), REF, True, ("in the last 24 hours",)),
    ("What was announced three days ago?", D(2022, 6, 12), D(2022, 6, 14), True,
     ("three days ago",)),
    ("What was signed two weeks ago?", D(2022, 5, 30), D(2022, 6, 5), True, ("two weeks ago",)),
    ("What did Musk tweet on Monday?", D(2022, 6, 13), REF, True, ("on Monday",)),
    ("What happened on Thursday?", REF, REF, True, ("on Thursday",)),
    ("What happened last Thursday?", D(2022, 6, 9), REF, True, ("last Thursday",)),
    ("Who was shot last weekend?", D(2022, 6, 11), REF, True, ("last weekend",)),
    ("Which films opened over the weekend?", D(2022, 6, 11), REF, True, ("over the weekend",)),
    # relative months and years
    ("What happened this month?", D(2022, 6, 1), REF, True, ("this month",)),
    ("What did the Fed do last month?", D(2022, 5, 1), D(2022, 5, 31), False, ("last month",)),
    ("How has inflation moved over the past month?", D(2022, 5, 16), REF, False,
     ("over the past month",)),
    ("How many shootings this year?", D(2022, 1, 1), REF, False, ("this year",)),
    ("Who won the Super Bowl last year?", D(2021, 1, 1), D(2021, 12, 31), False,
     ("last year",)),
    ("Prices in the last 6 months?", D(2021, 12, 16), REF, False, ("in the last 6 months",)),
    ("What was released a few months ago?", D(2022, 3, 1), D(2022, 3, 31), False,
     ("a few months ago",)),
    ("So far this year, how many layoffs?", D(2022, 1, 1), REF, True, ("So far", "this year")),
    # explicit months, years and dates
    ("Who won the election in June 2022?", D(2022, 6, 1), REF, False, ("in June 2022",)),
    ("Inflation June 2021", D(2021, 6, 1), D(2021, 6, 30), False, ("June 2021",)),
    ("What happened in June?", D(2022, 6, 1), REF, False, ("in June",)),
    ("What happened in July?", D(2021, 7, 1), D(2021, 7, 31), False, ("in July",)),
    ("What happened in may?", D(2022, 5, 1), D(2022, 5, 31), False, ("in may",)),
    ("Who resigned in 2021?", D(2021, 1, 1), D(2021, 12, 31), False, ("in 2021",)),
    ("What has changed since May 2022?", D(2022, 5, 1), REF, False, ("since May 2022",)),
    ("What did Russia say before March 2022?", None, D(2022, 2, 28), False,
     ("before March 2022",)),
    ("Which laws passed after March 2022?", D(2022, 4, 1), REF, False, ("after March 2022",)),
    ("Cases between May and July 2021?", D(2021, 5, 1), D(2021, 7, 31), False,
     ("between May and July 2021",)),
    ("Snow between November and February 2022?", D(2021, 11, 1), D(2022, 2, 28), False,
     ("between November and February 2022",)),
    ("What happened from 2019 to now?", D(2019, 1, 1), REF, False, ("from 2019 to now",)),
    ("What happened on 12 June 2022?", D(2022, 6, 12), D(2022, 6, 12), False,
     ("on 12 June 2022",)),
    ("What happened June 12, 2022?", D(2022, 6, 12), D(2022, 6, 12), False, ("June 12, 2022",)),
    ("What happened on 2022-06-12?", D(2022, 6, 12), D(2022, 6, 12), False,
     ("on 2022-06-12",)),
    ("What happened on Jan. 6, 2021?", D(2021, 1, 6), D(2021, 1, 6), False,
     ("on Jan. 6, 2021",)),
    ("What happened on June 20?", D(2021, 6, 20), D(2021, 6, 20), False, ("on June 20",)),
    ("What was the death toll as of 1 March 2022?", None, D(2022, 3, 1), False,
     ("as of 1 March 2022",)),
    ("Heat waves during the summer of 2021?", D(2021, 6, 1), D(2021, 8, 31), False,
     ("during the summer of 2021",)),
    ("Results in early 2021?", D(2021, 1, 1), D(2021, 12, 31), False, ("in early 2021",)),
    ("Compare last year and March 2020", D(2020, 3, 1), D(2021, 12, 31), False,
     ("last year", "March 2020")),
    # recency only
    ("Which wildly popular show was recently green lit for a new season?", None, None, True,
     ("recently",)),
    ("Who is the current CEO of Twitter?", None, None, True, ("current",)),
    ("What's the latest on the Ukraine war?", None, None, True, ("latest",)),
    ("What is the most recent jobs report?", None, None, True, ("most recent",)),
    ("Where is the tanker now?", None, None, True, ("now",)),
    ("What did Apple say in recent weeks?", None, None, True, ("in recent weeks",)),
    ("What is the case count as of today?", None, None, True, ("as of today",)),
    # nothing
    ("How much does a gallon of gas cost?", None, None, False, ()),
    ("What is the new law in New York about guns?", None, None, False, ()),
    ("Who is running for governor of California in 2026?", None, None, False, ()),
    ("Who will host the 2026 World Cup?", None, None, False, ()),
    ("What happened in the 2022 midterms?", None, None, False, ()),
    ("What happened in June 2023?", None, None, False, ()),
    ("What will change since 2030?", None, None, False, ()),
    ("How many of the 31 men were charged?", None, None, False, ()),
    ("Did it cost $5, 4,700 jobs or 10 Oscars?", None, None, False, ()),
    ("A crowd of 2000 people and up to 1990 votes in 2000 homes", None, None, False, ()),
    ("What did the Jan. 6 committee find?", None, None, False, ()),
    ("What did USA Today report about Black Friday?", None, None, False, ()),
    ("What was in last year's budget?", None, None, False, ()),
    ("What happened on 31 February 2022?", None, None, False, ()),
    # the baseline of a comparison is not the period asked about
    ("Which city's rents rose most compared to a year ago?", None, None, False, ()),
    ("Are gas prices higher than last year?", None, None, False, ()),
    ("Sales versus the same period last year?", None, None, False, ()),
    ("Did cases rise this week compared with two weeks ago?", D(2022, 6, 10), REF, True,
     ("this week",)),
]  # fmt: skip


@pytest.mark.parametrize(("question", "start", "end", "recency", "matched"), CASES)
def test_parse_time_scope(
    question: str,
    start: date | None,
    end: date | None,
    recency: bool,
    matched: tuple[str, ...],
) -> None:
    scope = parse_time_scope(question, REF)
    explicit = end is not None
    assert scope == TimeScope(start, end, recency, matched, explicit)


def test_nothing_found_is_empty_scope() -> None:
    assert parse_time_scope("Who founded Tesla?", REF) == TimeScope(None, None, False, (), False)


@pytest.mark.parametrize(
    ("reference", "question", "start", "end"),
    [
        (D(2022, 6, 18), "last weekend", D(2022, 6, 11), D(2022, 6, 18)),  # Sat: the one before
        (D(2022, 6, 18), "over the weekend", D(2022, 6, 18), D(2022, 6, 18)),  # Sat: this one
        (D(2022, 6, 19), "last weekend", D(2022, 6, 11), D(2022, 6, 19)),  # Sun: lenient
        (D(2022, 6, 19), "over the weekend", D(2022, 6, 18), D(2022, 6, 19)),
        (D(2022, 6, 20), "last weekend", D(2022, 6, 18), D(2022, 6, 20)),  # Mon: just over
        (D(2022, 6, 20), "last Monday", D(2022, 6, 13), D(2022, 6, 20)),  # strictly before
        (D(2022, 6, 20), "on Monday", D(2022, 6, 20), D(2022, 6, 20)),  # on or before
        (D(2022, 6, 20), "since Sunday", D(2022, 6, 19), D(2022, 6, 20)),
        (D(2024, 3, 1), "on Feb 29", D(2024, 2, 29), D(2024, 2, 29)),
        (D(2023, 3, 1), "on Feb 29", D(2020, 2, 29), D(2020, 2, 29)),  # latest leap day
        (D(2022, 1, 10), "in December", D(2021, 12, 1), D(2021, 12, 31)),
        (D(2022, 3, 31), "last month", D(2022, 2, 1), D(2022, 2, 28)),
        (D(2022, 3, 31), "a month ago", D(2022, 2, 1), D(2022, 2, 28)),
        (D(2022, 3, 31), "the past month", D(2022, 2, 28), D(2022, 3, 31)),
        (D(2022, 6, 16), "during the winter of 2022", D(2021, 12, 1), D(2022, 2, 28)),
    ],
)
def test_reference_dependent(reference: date, question: str, start: date, end: date) -> None:
    scope = parse_time_scope(question, reference)
    assert (scope.start, scope.end, scope.explicit) == (start, end, True)


def test_end_is_clamped_to_reference() -> None:
    scope = parse_time_scope("in 2022", REF)
    assert (scope.start, scope.end) == (D(2022, 1, 1), REF)
    scope = parse_time_scope("between 2021 and 2030", REF)
    assert (scope.start, scope.end) == (D(2021, 1, 1), REF)


@pytest.mark.parametrize(
    ("question", "stripped"),
    [
        ("Who won the election in June 2022?", "Who won the election?"),
        ("In June 2022, who won the NBA finals?", "Who won the NBA finals?"),
        ("Police arrested 31 men this week in a sting.", "Police arrested 31 men in a sting."),
        (
            "Which wildly popular show was recently green lit for a new season?",
            "Which wildly popular show was green lit for a new season?",
        ),
        ("What's the latest on the Ukraine war?", "What's the latest on the Ukraine war?"),
        ("What is the latest news on the Ukraine war?", "What is the news on the Ukraine war?"),
        ("So far this year, how many layoffs?", "How many layoffs?"),
        ("Compare last year and March 2020?", "Compare?"),
        ("How much does a gallon of gas cost?", "How much does a gallon of gas cost?"),
        ("Who is running for governor in 2026?", "Who is running for governor in 2026?"),
        ("today?", "today?"),  # nothing left: keep the question
    ],
)
def test_strip_time_phrases(question: str, stripped: str) -> None:
    assert strip_time_phrases(question, parse_time_scope(question, REF)) == stripped


FRAGMENTS = [
    "today", "yesterday", "this week", "last week", "this month", "last month", "this year",
    "last year", "in the last 5 days", "past 3 months", "in the past 400 years", "2 days ago",
    "a year ago", "on Monday", "last Sunday", "last weekend", "over the weekend",
    "in June 2022", "June 2020", "in June", "in December", "in 1999", "in 2035", "since 2001",
    "before 1950", "after 2024", "between May and July 2019", "from March to February",
    "between 2030 and 2010", "on 12 June 2027", "June 12, 2022", "2022-06-12", "2021-13-40",
    "as of 1 March 2022", "during the winter of 2022", "recently", "the latest", "31 men",
    "$5", "4,700 jobs", "10 Oscars", "the 2026 World Cup", "of 2000 votes", "New York",
    "until 2019", "through May", "the day before yesterday", "in the last 24 hours",
]  # fmt: skip


def _random_reference(rng: random.Random) -> date:
    return D(1995, 1, 1) + timedelta(days=rng.randrange(40 * 366))


def test_invariants_over_generated_questions() -> None:
    rng = random.Random(20220616)
    for _ in range(3000):
        reference = _random_reference(rng)
        parts = rng.sample(FRAGMENTS, rng.randint(0, 3))
        question = " ".join(["What happened", *parts, "to the economy?"])
        scope = parse_time_scope(question, reference)
        assert scope.explicit == (scope.end is not None), question
        if scope.end is not None:
            assert scope.end <= reference, (question, reference)
            assert scope.start is None or scope.start <= scope.end, (question, reference)
        else:
            assert scope.start is None, question
        for phrase in scope.matched:
            assert phrase.lower() in question.lower()
        stripped = strip_time_phrases(question, scope)
        assert "economy" in stripped


def test_future_years_never_filter() -> None:
    rng = random.Random(7)
    for _ in range(500):
        reference = _random_reference(rng)
        year = reference.year + rng.randint(1, 10)
        if year > 2099:
            continue
        prep = rng.choice(["in", "during", "since", "before", "after", "of", "until"])
        question = f"Who will win {prep} {year}?"
        assert parse_time_scope(question, reference) == TimeScope(None, None, False, (), False)


def test_plain_numbers_never_filter() -> None:
    rng = random.Random(11)
    nouns = ["men", "jobs", "Oscars", "votes", "dollars", "people", "homes"]
    for _ in range(500):
        number = rng.randrange(1, 3000)
        shown = rng.choice([str(number), f"{number:,}", f"${number}"])
        question = f"Why did {shown} {rng.choice(nouns)} and {rng.randrange(100)} more leave?"
        assert parse_time_scope(question, REF) == TimeScope(None, None, False, (), False)
