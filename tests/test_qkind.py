"""Question kinds and the answer-type tagger (index.qkind)."""

from __future__ import annotations

import pytest

from index.qkind import (
    Kind,
    answers,
    asked,
    counts,
    near,
    paired,
    places_in,
    question_kind,
    tag,
)

# question -> the kind of answer it asks for
KINDS: list[tuple[str, Kind]] = [
    ("Who attended?", Kind.PERSON),
    ("Who voted against the bridge?", Kind.PERSON),
    ("Whom did the jury acquit?", Kind.PERSON),
    ("Whose record did Aaron Judge break?", Kind.PERSON),
    ("How old is she?", Kind.AGE),
    ("At what age did he retire?", Kind.AGE),
    ("When is the runoff?", Kind.DATE),
    ("What year was Malcolm X assassinated?", Kind.DATE),
    ("Where is it?", Kind.PLACE),
    ("Which state is paying the most?", Kind.PLACE),
    ("Which country's regulator imposed it?", Kind.PLACE),
    ("Which province was it centered in?", Kind.PLACE),
    ("How many states have them already?", Kind.NUMBER),
    ("How much did the film make?", Kind.NUMBER),
    ("What's the deal worth?", Kind.NUMBER),
    ("What was the death toll of the quake?", Kind.NUMBER),
    ("What was the annual US inflation rate in June?", Kind.NUMBER),
    ("What share of the vote did he get?", Kind.NUMBER),
    ("How strong is it now?", Kind.NUMBER),
    ("How long could the check take?", Kind.NUMBER),
    ("Which galaxy cluster does that picture show?", Kind.NAME),
    ("Which of her songs spent 10 weeks at No. 1?", Kind.NAME),  # "No." ends no sentence
    ("What was her maiden name?", Kind.NAME),
    ("What's the subscription called?", Kind.NAME),
    ("What company makes it?", Kind.NAME),
    # the question word that comes first asks, not one in a later clause
    ("Which union represents the drivers who might strike?", Kind.NAME),
    ("Who was president when the war began?", Kind.PERSON),
    # ", who ..." is a relative clause, not the question word
    ("Kanye West, who changed his name to Ye, is buying which platform?", Kind.NAME),
    ("SpaceX launched a rocket. What was its destination?", Kind.PLACE),
    # the question proper is the last sentence
    ("Liz Truss is quitting. Who held the record before her?", Kind.PERSON),
    ("Texas has been busing migrants to Washington too. How many have arrived?", Kind.NUMBER),
    # no typed answer: the sentence that says most about it wins
    ("What did Pakistan and Azerbaijan agree on?", Kind.OTHER),
    ("Why did rail workers walk out?", Kind.OTHER),
    ("And worldwide so far?", Kind.OTHER),  # ellipsis: the conversation supplies the kind
    ("What were they charged with?", Kind.OTHER),
]


@pytest.mark.parametrize(("question", "kind"), KINDS)
def test_question_kind(question: str, kind: Kind) -> None:
    assert question_kind(question) is kind


# question, sentence, the answer spans the tagger finds (empty: the sentence holds none)
ANSWERS: list[tuple[str, str, list[str]]] = [
    # ages, in words or figures; the capitalised age is not a name
    ("How old is she?", "Sixteen-year-old Mira Okafor won the chess championship on Sunday.",
     ["Sixteen-year-old"]),
    ("How old is he?", "David DePape, 42, was charged on Monday.", ["42"]),
    ("How old are they?", "The tracks are about 113 million years old.",
     ["113 million years old"]),
    ("How old is she?", "The mayor opened the library on Saturday.", []),
    # people: names that the question does not already give, not places
    ("Who voted against the bridge?",
     "Councillor Ada Brandt, who voted against the bridge, cited the cost.",
     ["Councillor Ada Brandt"]),
    ("Who voted against the bridge?", "The council voted 7 to 2 to build the Wey bridge.", []),
    ("Who attended the Joint Ministerial Commission?",
     "Vugar Mustafayev met Prime Minister Muhammad Shehbaz Sharif in Islamabad.",
     ["Vugar Mustafayev", "Muhammad Shehbaz Sharif"]),
    ("Who is buying Spirit Airlines?", "JetBlue agreed to buy Spirit Airlines.", ["JetBlue"]),
    ("Who signed it?", "They signed the commercial agreement (ACP) in July.", []),  # abbreviation
    ("Who unveiled it?", "NASA's telescope captured a spectrum of WASP-96 b.", ["NASA's"]),
    ("Who unveiled the image?", "It was unveiled by President Biden at the White House.",
     ["Biden"]),  # "at the White House": a place
    # numbers and amounts, not the question's own figures
    ("How many men were detained?", "Police arrested 31 men near the park.", ["31"]),
    ("How many of the 31 men were charged?", "All 31 men were released.", []),
    ("How much is the merger worth?", "The merger should close in 2024, on October 2.", []),
    ("What's the deal worth?", "The Broncos were sold for $4.65 billion to Rob Walton.",
     ["$4.65 billion"]),
    ("What was the inflation rate?", "Prices rose 9.1% in the year to June.", ["9.1%"]),
    # a question about money wants a sum of money, not any figure
    ("How much is the merger worth?", "Grocery prices rose 13% in 2 months.", []),
    ("How much was Instagram fined?", "It was fined 405 million euros, or 3% of sales.",
     ["405 million euros"]),
    ("How much have gas prices risen?", "Gas prices rose 60% in a year.", ["60%"]),
    ("How strong is it now?", "Fiona is now a Category 4 storm.", ["Category 4"]),
    # dates
    ("When is the runoff?", "The runoff will be held on October 30.", ["October 30"]),
    ("What year was Malcolm X assassinated?", "Malcolm X was killed in 1965 in Manhattan.",
     ["in 1965"]),
    ("When will construction start?", "Work is expected to start in March.", ["in March"]),
    ("When do talks begin?", "Talks begin in the spring, the union said.", ["in the spring"]),
    ("When did it march?", "The band will march on.", []),  # a verb, not a month
    # places: introduced by "in", "at", "near"... or known from the article
    ("Where is the glacier?", "The glacier lies in West Antarctica.", ["West Antarctica"]),
    ("Where did it land?", "Bermuda braced for the storm.", []),
    ("Where is it heading?", "The center of Fiona is due to pass just west of Bermuda.",
     ["Bermuda"]),  # a compass bearing introduces a place; "center of" does not
    # named things
    ("Which galaxy cluster does the picture show?",
     "The image shows the galaxy cluster SMACS 0723.", ["SMACS 0723"]),
    # no typed kind: nothing to find
    ("What were they charged with?", "They were charged with conspiracy to riot.", []),
]  # fmt: skip


@pytest.mark.parametrize(("question", "sentence", "found"), ANSWERS)
def test_answer_spans(question: str, sentence: str, found: list[str]) -> None:
    assert [s.text for s in answers(asked(question), sentence)] == found


@pytest.mark.parametrize("kinds", [{k} for k in Kind] + [{Kind.NAME, Kind.PLACE}])
def test_tagging_some_kinds_gives_those_of_all_spans(kinds: set[Kind]) -> None:
    """``answers`` runs only the patterns it reads: the spans it then sees are exactly
    those of a full tagging, in the same order."""
    places = {"Islamabad", "Bozeman"}
    for _, sentence, _ in ANSWERS:
        full = [s for s in tag(sentence, places) if s.kind in kinds]
        assert tag(sentence, places, frozenset(kinds)) == full


def test_places_come_from_the_text_itself() -> None:
    article = "Flooding hit towns in Montana. Gardiner was cut off. Crews arrived from Bozeman."
    places = places_in(article)
    assert places == {"Montana", "Bozeman"}
    # A name the article introduced as a place is one wherever it appears.
    spans = answers(asked("Where did the storm hit?"), "Bozeman was hit hard.", places)
    assert [s.text for s in spans] == ["Bozeman"]


def test_an_elliptic_follow_up_takes_the_kind_it_is_given() -> None:
    q = asked("And worldwide so far?", Kind.NUMBER)
    assert [s.text for s in answers(q, "It has made $302 million worldwide.")] == ["$302 million"]


def test_months_weekdays_and_openers_are_not_names() -> None:
    spans = tag("On Monday, The Council met in June.")
    assert {s.text for s in spans if s.kind is Kind.NAME} == {"Council"}


# question, sentence, answer span -> within a few words of the question's key terms?
NEAR: list[tuple[str, str, str, bool]] = [
    ("What is the merger worth?", "The merger is worth $25 billion, analysts said.",
     "$25 billion", True),
    ("What is the merger worth?", "The merger, first floated by analysts who follow the "
     "grocery trade closely for years, also lifted shares 4% on Friday.", "4%", False),
]  # fmt: skip


@pytest.mark.parametrize(("question", "sentence", "span", "close"), NEAR)
def test_near_key_terms(question: str, sentence: str, span: str, close: bool) -> None:
    q = asked(question)
    (found,) = [s for s in answers(q, sentence) if s.text == span]
    assert near(q, sentence, found) is close


# "how many X" question, sentence, number -> does the number count X?
COUNTS: list[tuple[str, str, str, bool]] = [
    ("How many book bans did PEN America count?", "There were 2,532 book bans directed at "
     "1,648 different titles.", "2,532", True),
    ("How many book bans did PEN America count?", "There were 2,532 book bans directed at "
     "1,648 different titles.", "1,648", False),
    ("How many men can the shelter hold?", "It will initially accommodate 500 single men.",
     "500", True),
    ("How many of its members work at UPS?", "The union has 1.2 million members.",
     "1.2 million members", True),
    ("How many of its members work at UPS?", "The strike fund holds $300 million.",
     "$300 million", False),
]  # fmt: skip


@pytest.mark.parametrize(("question", "sentence", "span", "counted"), COUNTS)
def test_counts_what_the_question_counts(
    question: str, sentence: str, span: str, counted: bool
) -> None:
    q = asked(question)
    (found,) = [s for s in answers(q, sentence) if s.text == span]
    assert counts(q, sentence, found) is counted


# sentence -> whether it names two answers together, for "which two ..."
PAIRS: list[tuple[str, bool]] = [
    ("Kroger and Albertsons announced Friday plans to merge.", True),
    ("NATO invited Sweden and Finland to join the alliance.", True),
    ("The Houston Astros & Philadelphia Phillies meet in Game 5.", True),
    ("Kroger announced Friday it plans to buy a rival chain.", False),
    ("Sarah Miller said two big supermarket chains should not merge, and Kroger agreed.", False),
]  # fmt: skip


@pytest.mark.parametrize(("sentence", "together"), PAIRS)
def test_which_two_wants_two_names_said_together(sentence: str, together: bool) -> None:
    q = asked("Which two major supermarkets plan to merge?")
    assert q.pair
    assert paired(sentence, answers(q, sentence)) is together


def test_only_which_two_asks_for_a_pair() -> None:
    assert asked("What two countries signed the deal?").pair
    assert not asked("Which supermarket plans to buy a rival?").pair
    assert not asked("Which team won two titles?").pair
