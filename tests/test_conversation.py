"""Conversations, offline: answers of the kind asked, follow-ups, "tell me more", "latest".

The corpus is the seed article plus three short articles a newcomer might add (a chess
final, a mayor, a bridge vote): the examples of issue 12, where "How old is she?" found the
mayor's age and "Who voted against the bridge?" the vote count.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import SEED, make_settings

from index.answer import Answerer
from index.extract import pick, with_antecedents
from index.followup import is_dependent, keeps_prior, lost_in_rewrite, resolve
from index.history import Turn
from index.latest import latest_topic
from index.models import ArticleHit, Passage
from index.prompts import REFUSAL

ARTICLES = [
    {"url": "https://local.example/2022/05/02/chess", "published": "2022-05-02",
     "title": "Teenager takes the national chess title", "source": "local.example",
     "text": "Sixteen-year-old Mira Okafor won the national chess championship on Sunday, "
             "beating the defending champion in the final round in Leeds. She learned the "
             "game from her grandfather and trains at a club in her home town. The tournament "
             "drew 64 players from across the country."},
    {"url": "https://local.example/2022/05/03/mayor", "published": "2022-05-03",
     "title": "Mayor opens the new central library", "source": "local.example",
     "text": "The mayor, Tom Reyes, 58, opened the new central library on Monday. The "
             "building cost 12 million pounds and holds 200,000 books. Reyes said the library "
             "would open seven days a week from June. Last year the old library had 30,000 "
             "visitors."},
    {"url": "https://local.example/2022/05/04/bridge", "published": "2022-05-04",
     "title": "Council approves the new river bridge", "source": "local.example",
     "text": "The city council voted 7 to 2 on Tuesday to approve the new bridge over the "
             "river. Councillor Ada Brandt, who voted against the bridge, said the money would "
             "be better spent on schools. Construction is expected to start in March and to "
             "take two years."},
]  # fmt: skip


@pytest.fixture(scope="module")
def newcomer_dir(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    from index.ingest import index_paths

    root = tmp_path_factory.mktemp("newcomer")
    corpus = root / "corpus"
    corpus.mkdir()
    shutil.copy(SEED, corpus / SEED.name)
    (corpus / "mine.jsonl").write_text("\n".join(json.dumps(a) for a in ARTICLES) + "\n")
    summary = index_paths([corpus], make_settings(root), embedder=embedder)
    assert summary.failed == 0 and summary.added == 4
    return root


@pytest.fixture
def answerer(tmp_path: Path, newcomer_dir: Path, embedder) -> Answerer:
    shutil.copytree(newcomer_dir, tmp_path, dirs_exist_ok=True)
    return Answerer(make_settings(tmp_path), embedder=embedder)


def first_sentence(text: str) -> str:
    return text.split("[1]")[0]


# A conversation: (question, words the reply's first sentence must hold, or REFUSAL)
CONVERSATIONS: dict[str, list[tuple[str, str]]] = {
    "seed": [
        ("What did Pakistan and Azerbaijan agree on?", "agreed"),
        ("and on energy?", "energy"),
        ("Who attended?", "Mustafayev|Sharif|Asif"),  # refused before: "attend" is not in it
        ("What is the capital of France?", REFUSAL),
    ],
    "chess": [
        ("Who won the chess championship?", "Mira Okafor"),
        ("How old is she?", "Sixteen-year-old"),  # the mayor's "58" before
    ],
    "bridge": [
        ("Who voted against the bridge?", "Ada Brandt"),  # the 7-to-2 sentence before
        ("When will construction start?", "March"),
    ],
    "mayor": [
        ("Who opened the new library?", "Tom Reyes"),
        ("How much did it cost?", "12 million pounds"),
        ("How many books?", "200,000"),  # ellipsis
    ],
}


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_conversations_answer_what_was_asked(answerer: Answerer, name: str) -> None:
    for question, expected in CONVERSATIONS[name]:
        answer = answerer.ask(question, name)
        if expected == REFUSAL:
            assert answer.refused, (question, answer.text)
            continue
        assert not answer.refused, (question, answer.text)
        assert re.search(expected, first_sentence(answer.text)), (question, answer.text)


def test_who_attended_stands_alone_too(answerer: Answerer) -> None:
    answer = answerer.ask("Who attended the Joint Ministerial Commission?")
    assert not answer.refused
    assert re.search(r"Mustafayev|Asif|Sharif", first_sentence(answer.text))


def test_answers_open_with_the_answer_not_the_headline(answerer: Answerer) -> None:
    answer = answerer.ask("Who won the chess championship?")
    assert answer.text.startswith("Sixteen-year-old Mira Okafor")
    assert answer.citations[0].title == "Teenager takes the national chess title"


def test_tell_me_more_after_a_refusal_uses_see_also(answerer: Answerer) -> None:
    # Refused: the seed mentions 2025, not the prize; its articles are listed under "See also".
    refused = answerer.ask("Who won the 2025 Nobel Peace Prize?", "more")
    assert refused.refused and refused.see_also
    listed = refused.see_also[0]
    more = answerer.ask("tell me more about [1]", "more")
    assert not more.refused
    assert {c.article_id for c in more.citations} == {listed.article_id}


def test_a_rejected_looking_follow_up_is_answered_in_a_conversation(answerer: Answerer) -> None:
    answerer.ask("Who won the chess championship?", "where")
    answer = answerer.ask("Where was it?", "where")  # no word to search for on its own
    assert not answer.refused and "Leeds" in first_sentence(answer.text)


def test_a_follow_up_that_names_another_story_leaves_the_previous_article(
    answerer: Answerer,
) -> None:
    answerer.ask("Who won the chess championship?", "move")
    answer = answerer.ask("What did the mayor open?", "move")
    assert "library" in first_sentence(answer.text)
    assert answer.citations[0].title == "Mayor opens the new central library"


def test_a_past_period_is_read_in_later_reports_that_name_it(answerer: Answerer) -> None:
    from datetime import date

    # Nothing was published last year (2021): the May 2022 report that says "last year"
    # answers, as June's inflation is reported in July.
    asked = date(2022, 5, 10)
    answer = answerer.ask("How many visitors did the old library have last year?", as_of=asked)
    assert not answer.refused and "30,000" in first_sentence(answer.text)
    assert answer.citations[0].title == "Mayor opens the new central library"
    # A later report that does not name the period says nothing about it.
    older = answerer.ask("How many visitors did the old library have in 2020?", as_of=asked)
    assert older.refused


def test_latest_lists_newest_articles_first(answerer: Answerer) -> None:
    answer = answerer.ask("What is the latest news?")
    assert not answer.refused and answer.text != REFUSAL
    dates = [c.published for c in answer.citations]
    assert dates == sorted(dates, reverse=True) and len(dates) == 4
    assert dates[0] == "2025-01-24"
    for citation in answer.citations:
        assert f"{citation.published}: " in answer.text and f"[{citation.n}]" in answer.text
    # "tell me more" works on the listing too.
    answerer.ask("What's the latest?", "latest")
    more = answerer.ask("tell me more about [2]", "latest")
    assert not more.refused
    assert more.citations[0].title == "Council approves the new river bridge"


def test_latest_on_a_topic_and_as_of_a_day(answerer: Answerer) -> None:
    from datetime import date

    answer = answerer.ask("What's new on the council?", as_of=date(2022, 5, 10))
    assert not answer.refused
    assert answer.citations[0].title == "Council approves the new river bridge"
    assert all(c.published <= "2022-05-10" for c in answer.citations)
    # Only articles that name the topic are listed: retrieval ranks the others too.
    assert [c.title for c in answer.citations] == ["Council approves the new river bridge"]
    none = answerer.ask("What's new on volcanoes?", as_of=date(2022, 5, 10))
    assert not none.refused and not none.citations and none.mode == "latest"
    assert none.text == "No indexed article mentions volcanoes as of 2022-05-10."


def test_a_listed_articles_lead_skips_sign_ups_and_datelines() -> None:
    from index.bm25 import sentence_key
    from index.latest import compose_latest

    text = (
        "Sign up for our Wonder Theory science newsletter. New York CNN Business —\n"
        "Food prices rose again in August, the government said."
    )
    hit = one_article(text, "Grocery prices")
    hit.published = "2022-09-13"
    boilerplate = frozenset({sentence_key("Sign up for our Wonder Theory science newsletter.")})
    answer = compose_latest([hit], "", None, boilerplate)
    assert answer.citations[0].quote == "Food prices rose again in August, the government said."
    assert "Sign up" not in answer.text


# question -> the topic of a "latest" question (None: not one)
LATEST: list[tuple[str, str | None]] = [
    ("What is the latest news?", ""),
    ("what's the latest?", ""),
    ("Latest headlines", ""),
    ("Any news today?", None),  # no "latest"/"new": an ordinary question
    ("What's new on Ukraine?", "Ukraine"),
    ("What is the latest on the Yellowstone flooding?", "the Yellowstone flooding"),
    ("Any recent news about the heatwave?", "the heatwave"),
    ("What is the latest inflation rate?", None),  # asks for a figure
    ("Any new cases?", None),
]


@pytest.mark.parametrize(("question", "topic"), LATEST)
def test_latest_topic(question: str, topic: str | None) -> None:
    assert latest_topic(question) == topic


# question -> does it lean on the previous turn?
DEPENDENT: list[tuple[str, bool]] = [
    ("How old is she?", True),
    ("Where is it?", True),
    ("And worldwide so far?", True),
    ("What was it the month before?", True),
    ("Which group are they linked to?", True),
    ("Who attended?", True),
    ("Which other state besides Florida was hit?", True),  # names one, asks for the rest
    ("Who else was arrested?", True),
    ("Which workers walked out this week in a dispute over their pay and conditions?", False),
    ("What is the capital of France?", False),
    ("How old is Bird?", False),  # a name: it stands alone (the previous article may still)
    ("Liz Truss is quitting. Who held the record for the shortest time before her?", False),
]


@pytest.mark.parametrize(("question", "dependent"), DEPENDENT)
def test_is_dependent(question: str, dependent: bool) -> None:
    assert is_dependent(question) is dependent


# follow-up, previous article's text, best other article's text -> keep the previous one?
PRIOR: list[tuple[str, str, str, bool]] = [
    ("How old is she?", "Mira Okafor, 16, won.", "The mayor, 58, opened it.", True),
    ("How old is Bird?", "The Aces beat the Sun.", "Sue Bird, 41, retired.", False),
    ("What did the mayor open?", "Mira Okafor won the chess title.",
     "The mayor opened the new library.", False),
    ("Who is the park's superintendent?", "Flooding closed the park; superintendent Cam "
     "Sholly said...", "Another park reopened.", True),
]  # fmt: skip


@pytest.mark.parametrize(("question", "prior", "top", "kept"), PRIOR)
def test_keeps_prior(question: str, prior: str, top: str, kept: bool) -> None:
    assert keeps_prior(question, prior, top) is kept


# previous question, its answer, follow-up, an LLM's standalone rewrite -> may it stand in
# for the offline resolution? (It must keep the follow-up's words and what it refers to.)
REWRITES: list[tuple[str, str, str, str, bool]] = [
    ("Who won the chess championship?", "Mira Okafor won [1].", "How old is she?",
     "How old is Mira Okafor?", True),
    ("Who won the chess championship?", "Mira Okafor won [1].", "How old is she?",
     "How old is she?", False),  # an echo: "she" is anyone
    ("Who won the chess championship?", "Mira Okafor won [1].", "How old is she?",
     "How old is the chess champion?", True),  # the topic, if not the name
    ("Who won the chess championship?", "Mira Okafor won [1].", "How old is she?",
     "How old is the mayor of Leeds?", False),  # about someone else
    ("Who won the chess championship?", "Mira Okafor won [1].", "How old is she?",
     "Who won the chess championship?", False),  # the previous question, not this one
    ("What was the inflation rate in May?", "It was 8.6% [1].", "And the month before?",
     "What was the inflation rate in April, the month before May?", True),
    ("What was the inflation rate in May?", "It was 8.6% [1].", "And the month before?",
     "What happened the month before?", False),  # no names carried: its topic words count
    ("Where did the bridge vote take place?", "In Leeds [1].", "Who voted against it?",
     "Which councillors voted against the bridge?", True),
]  # fmt: skip


@pytest.mark.parametrize(("before", "answer", "question", "rewrite", "kept"), REWRITES)
def test_lost_in_rewrite(before: str, answer: str, question: str, rewrite: str, kept: bool) -> None:
    previous = Turn(question=before, standalone=before, answer=answer)
    lost = lost_in_rewrite(rewrite, question, resolve(question, previous))
    assert (lost == "") is kept, lost


def test_rejection_without_a_conversation_stays(answerer: Answerer) -> None:
    from index.answer import QuestionError

    with pytest.raises(QuestionError):
        answerer.ask("Where is it?")


# sentences -> candidates: a short pronoun-led sentence carries the one it leans on
ANTECEDENTS: list[tuple[list[str], list[str]]] = [
    (["Lynn died on Tuesday.", "She was 90."], ["Lynn died on Tuesday.",
                                                 "Lynn died on Tuesday. She was 90."]),
    (["The deal closed.", "It was worth $4 billion, the company said on Monday in a filing."],
     ["The deal closed.", "It was worth $4 billion, the company said on Monday in a filing."]),
    (["She was 90."], ["She was 90."]),  # nothing to lean on
    (["A.", "The team won."], ["A.", "The team won."]),
]  # fmt: skip


@pytest.mark.parametrize(("parts", "candidates"), ANTECEDENTS)
def test_with_antecedents(parts: list[str], candidates: list[str]) -> None:
    assert with_antecedents(parts) == candidates


def test_a_typed_question_gets_the_sentence_that_holds_its_answer() -> None:
    # The lede repeats the question's words; the figure comes a sentence later.
    text = (
        "Russia is calling up reservists to fight in Ukraine, President Putin said in a "
        "televised address on Wednesday, calling up reservists with military experience. "
        "Defense Minister Sergei Shoigu said the country will call up 300,000 of them."
    )
    hit = one_article(text, "Putin announces partial mobilization")
    question = "How many reservists is Russia calling up?"
    evidence = typed_scores(question, [hit])
    assert not evidence[0].typed  # the lede wins on words alone
    chosen = pick(evidence, typed=True)
    assert "300,000" in chosen[0].sentence  # the answer opens, the lede follows
    assert any("televised address" in e.sentence for e in chosen[1:])
    # Without the question's kind, the figure is too far behind the lede to be quoted.
    assert "300,000" not in " ".join(e.sentence for e in pick(evidence))


SRI_LANKA = (
    "He had been in Maldives for just over 24 hours after fleeing on Wednesday. "
    "Sri Lanka's president has fled to Singapore, before emailing his resignation on Thursday."
)


def test_an_answer_read_alone_does_not_open_with_he() -> None:
    from index.extract import Evidence

    hit = one_article(SRI_LANKA, "Sri Lanka's president flees")
    he, named = SRI_LANKA.split(". ")
    evidence = [
        Evidence(he, hit, 0, (0, 0), 0.6, 1.1, typed=True, bonus=0.2),
        Evidence(named, hit, 0, (0, 1), 0.5, 1.0, typed=True, bonus=0.2),
    ]
    chosen = [e.sentence for e in pick(evidence, typed=True, alone=True)]
    assert chosen == [named, he]
    # In a conversation the previous answer is the sentence "He" leans on: the order stays.
    assert [e.sentence for e in pick(evidence, typed=True)] == [he, named]
    # Nothing else chosen that names its subject: "He" still opens.
    assert [e.sentence for e in pick(evidence[:1], typed=True, alone=True)] == [he]


def test_a_sentence_said_before_is_repeated_only_when_it_is_about_the_follow_up() -> None:
    hit = one_article(SRI_LANKA, "Sri Lanka's president flees")
    said = frozenset({SRI_LANKA.split(". ")[1]})
    about = typed_scores("How did he send in his resignation?", [hit], avoid=said)
    assert any("emailing" in e.sentence for e in about)
    other = typed_scores("How long did he stay in Maldives?", [hit], avoid=said)
    assert not any("emailing" in e.sentence for e in other)


# (start, end, asked on) -> texts a later report naming that period may hold / may not
PERIODS: list[tuple[str, str, str, list[str], list[str]]] = [
    ("2021-01-01", "2021-12-31", "2022-08-09", ["exported in 2021", "fined last year"],
     ["exported in 2020", "fined this year"]),
    ("2022-06-01", "2022-06-30", "2022-07-14", ["prices rose 9.1% in June"], ["in May"]),
    ("2021-03-01", "2021-03-31", "2022-07-14", ["in March 2021"], ["in March", "in 2021"]),
    ("2021-12-01", "2022-02-28", "2022-07-14", ["over the winter, in January"], ["in June"]),
]  # fmt: skip


@pytest.mark.parametrize(("start", "end", "asked", "named", "unnamed"), PERIODS)
def test_period_names(
    start: str, end: str, asked: str, named: list[str], unnamed: list[str]
) -> None:
    from datetime import date

    from index.answer import period_names

    patterns = period_names(*(date.fromisoformat(d) for d in (start, end, asked)))
    for text in named:
        assert all(p.search(text) for p in patterns), text
    for text in unnamed:
        assert not all(p.search(text) for p in patterns), text


def test_a_typed_question_prefers_sentences_that_hold_an_answer() -> None:
    from index.extract import Evidence
    from index.models import ArticleHit

    hit = ArticleHit("a", "Gun deal", "https://x/a", "x", "", 0)

    def said(sentence: str, score: float, typed: bool, order: int) -> Evidence:
        bonus = 0.2 if typed else 0.0
        return Evidence(sentence, hit, 0, (0, order), 0.5, score, typed, bonus)

    evidence = [
        said("The deal adds a tougher review for buyers under 21.", 1.0, True, 0),
        said("The review is the bill's other major change.", 0.95, False, 1),
        said("The review could take up to 10 days.", 0.8, True, 2),
        said("Buyers under 21 will face the tougher review.", 0.78, False, 3),
    ]
    assert "10 days" in " ".join(e.sentence for e in pick(evidence, 2, typed=True))
    assert "10 days" not in " ".join(e.sentence for e in pick(evidence, 2))


def test_a_sentence_is_not_quoted_twice_when_joined_to_the_next() -> None:
    from index.extract import score_sentences

    text = (
        "Chelsea Gray was named WNBA Finals MVP. She averaged 18.3 points per game in the "
        "series. The Aces beat the Sun 78-71 to win the WNBA title."
    )
    hit = one_article(text, "Aces win the WNBA title")
    evidence = score_sentences("Who was named WNBA Finals MVP?", [hit], {})
    candidates = [e.sentence for e in evidence]
    assert "Chelsea Gray was named WNBA Finals MVP." in candidates
    assert any(s.startswith("Chelsea Gray was named") and "averaged" in s for s in candidates)
    quoted = " ".join(e.sentence for e in pick(evidence))
    assert quoted.count("Chelsea Gray was named") == 1


@pytest.mark.parametrize(
    ("sentence", "negated"),
    [
        ("They get $10,000 if they did not receive a Pell grant.", True),
        ("They get $10,000 if they didn’t receive a Pell grant.", True),
        ("Borrowers who never received Pell grants get less.", True),
        ("Those who did receive a Pell grant get $20,000.", False),
        ("There is no cap on it, and Pell grant recipients get $20,000.", False),  # too far
    ],
)
def test_a_sentence_that_denies_the_question_is_told_apart(sentence: str, negated: bool) -> None:
    from index.extract import negates
    from index.text import terms

    wanted = frozenset(terms("How much will borrowers who received Pell grants get?"))
    assert negates(sentence, wanted) is negated


def test_the_sentence_on_the_case_asked_about_wins_over_its_negation() -> None:
    from index.extract import score_sentences

    text = (
        "Borrowers will have up to $10,000 of student debt forgiven if they did not receive "
        "a Pell grant. Borrowers will have up to $20,000 of student debt forgiven if they "
        "did receive a Pell grant."
    )
    hit = one_article(text, "Student loan relief")
    question = "How much student debt is forgiven for borrowers who received a Pell grant?"
    evidence = score_sentences(question, [hit], {})
    assert "$20,000" in evidence[0].sentence
    # Asked the other way round, the negated case is the one asked about.
    evidence = score_sentences(question.replace("who received", "who did not receive"), [hit], {})
    assert "$10,000" in evidence[0].sentence


def test_the_scene_a_question_sets_weighs_less_than_what_it_asks() -> None:
    from index.extract import question_weights

    question = "Aaron Judge hit his 62nd home run this week. Who holds the major league record?"
    weights = question_weights(question, {})
    assert weights["judg"] < weights["record"] and weights["62nd"] < weights["hold"]
    # One sentence that asks: all its words count alike.
    alone = question_weights("Who holds the record that Aaron Judge chased?", {})
    assert alone["judg"] == alone["record"] == weights["record"]


def test_a_sentence_restating_the_scene_yields_to_the_one_that_answers() -> None:
    text = (
        "Aaron Judge hit his 62nd home run this week, passing Roger Maris in the American "
        "League. Barry Bonds holds the major league record of 73."
    )
    hit = one_article(text, "Yankees slugger in the record books")
    question = "Aaron Judge hit his 62nd home run this week. Who holds the major league record?"
    assert "Barry Bonds" in typed_scores(question, [hit])[0].sentence


def test_a_photo_caption_yields_to_the_reports_own_sentence() -> None:
    text = (
        "John Raoux/AP The SpaceX rocket with the Crew Dragon spacecraft sits on the launch "
        "pad at the Kennedy Space Center in Florida, where NASA launched it on Wednesday. "
        "SpaceX and NASA launched a crew of astronauts to the International Space Station "
        "on Wednesday."
    )
    hit = one_article(text, "SpaceX launch")
    question = "SpaceX and NASA launched a rocket on Wednesday. What was its destination?"
    evidence = typed_scores(question, [hit])
    assert "International Space Station" in evidence[0].sentence


@pytest.mark.parametrize(
    ("sentence", "furniture"),
    [
        ("John Raoux/AP The rocket sits on the launch pad.", True),
        ("Fiona in Cayey, Puerto Rico RICARDO ARDUENGO/X03743/REUTERS", True),
        ("►Related: Google Trends lists the most popular costumes.", True),
        ("NEW WEBB PHOTOS:NASA releases 'sharpest' images of the universe", True),
        ("Highest rate of inflation in 40 years:New level driven by gas", True),
        ("The council meets at 10:30 on Monday.", False),
        ("He said: the pandemic is over.", False),
        ("The AP reported that 31 men were arrested.", False),
    ],
)
def test_captions_and_links_to_other_stories_are_told_apart(sentence: str, furniture: bool) -> None:
    from index.extract import _furniture

    assert _furniture(sentence) is furniture


@pytest.mark.parametrize(
    ("title", "quoted"),
    [
        ("Instagram fined $400 million over children's data | CNN Business",
         "Instagram fined $400 million over children's data"),
        ("The 10 Senate seats most likely to flip in 2022 - CNNPolitics",
         "The 10 Senate seats most likely to flip in 2022"),
        ("Walmart is slashing prices on clothing - CNN", "Walmart is slashing prices on clothing"),
        ("Covid-19 - what we know", "Covid-19 - what we know"),
    ],
)  # fmt: skip
def test_a_headline_quoted_as_an_answer_drops_its_outlet(title: str, quoted: str) -> None:
    hit = one_article("Officials said more on Monday about it.", title)
    question = "Which company was it?"
    headlines = [e.sentence for e in typed_scores(question, [hit])]
    assert (quoted in headlines and title not in headlines) or title == quoted


def test_a_headline_quoted_in_an_answer_ends_like_a_sentence() -> None:
    from index.answer import compose
    from index.extract import Evidence

    hit = one_article("The Avalanche won the Cup on Sunday night.", "Avalanche win the Cup")
    chosen = [
        Evidence("Avalanche win the Cup", hit, 0, (-1, 0), 0.9, 1.2, typed=True, bonus=0.2),
        Evidence("The Avalanche won the Cup on Sunday night.", hit, 0, (0, 0), 0.8, 1.1),
    ]
    answer = compose(chosen, "Who won the Cup?")
    assert (
        answer.text == "Avalanche win the Cup. [1] The Avalanche won the Cup on Sunday night. [1]"
    )
    assert answer.citations[0].quote == "Avalanche win the Cup"  # the quote stays verbatim


def typed_scores(question: str, hits: list[ArticleHit], **options: str) -> list:
    """The hits' sentences scored for ``question``, knowing the kind of answer it asks for."""
    from index.extract import score_sentences
    from index.qkind import asked

    return score_sentences(question, hits, {}, asked=asked(question), **options)


def one_article(text: str, title: str) -> ArticleHit:
    """A retrieved article with one passage holding ``text``, for scoring its sentences."""
    hit = ArticleHit("a", title, "https://x/a", "x", "", 0)
    hit.passages = [Passage("a#0", text, 0, 0.5)]
    return hit


def _story(lead: ArticleHit, *reports: str) -> ArticleHit:
    """``lead`` with other outlets' reports of its story, one passage each."""
    for n, text in enumerate(reports, 1):
        report = ArticleHit(f"r{n}", f"Report {n}", f"https://x/r{n}", "x", "", 0)
        report.passages = [Passage(f"r{n}#0", text, 0, 0.4)]
        lead.reports.append(report)
    return lead


HOCKEY_LEAD = (
    "Analyst Mark Jones said the Stanley Cup Finals showed strong defence on both sides. "
    "The Colorado Avalanche won the Cup with a 2-1 victory over the Tampa Bay Lightning in Game 6."
)
HOCKEY_REPORTS = (
    "The Avalanche lifted the trophy on Sunday night after a tense final period.",
    "Thousands of Colorado Avalanche fans filled the streets of Denver to celebrate.",
)


def test_the_name_the_storys_reports_repeat_is_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from index import extract

    question = "Which team won the Stanley Cup Finals?"

    def top() -> str:
        hit = _story(one_article(HOCKEY_LEAD, "Hockey final"), *HOCKEY_REPORTS)
        return typed_scores(question, [hit])[0].sentence

    # The sentence with the question's words names an analyst; the reports name the team.
    assert "Colorado Avalanche" in top()
    monkeypatch.setattr(extract, "CORROBORATION_WEIGHT", 0.0)
    assert "Mark Jones" in top()


def test_corroboration_leaves_follow_ups_digests_and_confidence_alone() -> None:
    question = "Which team won the Stanley Cup Finals?"
    hit = _story(one_article(HOCKEY_LEAD, "Hockey final"), *HOCKEY_REPORTS)
    evidence = typed_scores(question, [hit])
    # It only orders sentences: the refusal reads the same confidence.
    assert all(e.confidence == e.score - e.bonus - e.lean for e in evidence)
    lone = one_article(HOCKEY_LEAD, "Hockey final")
    alone = {e.sentence: e.confidence for e in typed_scores(question, [lone])}
    assert all(alone[e.sentence] == pytest.approx(e.confidence) for e in evidence if e.hit is hit)
    # A follow-up asks a detail of a story whose names the conversation already gave.
    hit = _story(one_article(HOCKEY_LEAD, "Hockey final"), *HOCKEY_REPORTS)
    follow = typed_scores(question, [hit], context="hockey")
    assert "Mark Jones" in follow[0].sentence
    # Another story is another event: its sentences are not raised by the top story's names.
    from index.extract import RANK_EVIDENCE, RANK_WEIGHT

    other = one_article("Fans of the Colorado Avalanche bought every ticket.", "Ticket sales")
    other.article_id = "b"
    hit = _story(one_article(HOCKEY_LEAD, "Hockey final"), *HOCKEY_REPORTS)
    evidence = typed_scores(question, [hit, other])
    second = [e for e in evidence if e.hit is other]
    assert second and all(
        e.lean == pytest.approx((RANK_WEIGHT - RANK_EVIDENCE) / 2) for e in second
    )


def test_which_two_opens_with_the_sentence_naming_both() -> None:
    text = (
        "Sarah Miller said there is no reason to let two of the biggest supermarket chains "
        "merge. In a mega-deal, Kroger and Albertsons announced plans to merge."
    )
    question = "Which two major supermarkets plan to merge?"
    hit = one_article(text, "Grocery deal")
    assert "Kroger and Albertsons" in typed_scores(question, [hit])[0].sentence
    # Asked for one, the sentence that matches the question's words better comes first.
    question = "Which major supermarket chains plan to merge?"
    assert "Miller" in typed_scores(question, [hit])[0].sentence


def test_the_name_the_story_repeats_follows_a_best_sentence_without_it() -> None:
    from index.extract import Evidence

    hit = ArticleHit("a", "Netflix renews its hit", "https://x/a", "x", "", 0)
    other = ArticleHit("b", "Streaming news", "https://x/b", "x", "", 0)

    def said(sentence: str, score: float, corroborated: bool, in_hit: ArticleHit = hit) -> Evidence:
        e = Evidence(sentence, in_hit, 0, (0, 0), 0.5, score, True, 0.2)
        e.corroborated = corroborated
        return e

    evidence = [
        said("Netflix said the wildly popular show is green lit for a second season.", 1.3, False),
        said("Squid Game rose to become the most popular series ever.", 0.75, True, other),
        said("It took 12 days for Squid Game to become the most watched series.", 0.7, True),
        said("Netflix shares rose 3% on Monday.", 0.6, False),
    ]
    chosen = [e.sentence for e in pick(evidence, typed=True)]
    assert chosen[:2] == [evidence[0].sentence, evidence[2].sentence]  # one article quoted
    assert [e.sentence for e in pick(evidence)] == [evidence[0].sentence]
    evidence[0].corroborated = True  # the best sentence names it already: nothing added
    assert [e.sentence for e in pick(evidence, typed=True)] == [evidence[0].sentence]


def test_a_long_name_run_gathers_no_support_from_its_words_together() -> None:
    # "JetBlue CEO Robin Hayes" holds "JetBlue" but is said once: it is not the name repeated.
    text = (
        "JetBlue Airways agreed to buy Spirit Airlines on Thursday. JetBlue will pay $3.8 "
        "billion for the budget carrier. JetBlue CEO Robin Hayes said the deal helps fliers. "
        "Hayes has led the carrier since 2015. Analysts at Cowen said the deal faces review."
    )
    question = "Which airline agreed to buy Spirit Airlines?"
    evidence = typed_scores(question, [one_article(text, "Airline deal")])
    held = {e.sentence.split()[0]: e.corroborated for e in evidence}
    assert held["JetBlue"] and not held["Analysts"]
    assert all(e.corroborated for e in evidence if "JetBlue" in e.sentence)


def test_a_figure_is_corroborated_by_its_digits() -> None:
    # "billion" is in every figure; the deal's value is the one the reports repeat.
    text = (
        "The companies say they will use $500 million in cost savings from the merger to cut "
        "prices. The nearly $25 billion deal would be among the biggest in retail. Kroger "
        "will pay $34.10 a share, valuing the deal at $25 billion with debt. A $4 billion "
        "special dividend goes to Albertsons shareholders."
    )
    question = "How much is the merger worth?"
    hit = one_article(text, "Grocery deal")
    evidence = typed_scores(question, [hit])
    held = [e.sentence for e in evidence if e.corroborated]
    assert held and all("$25 billion" in s for s in held)
    assert "$25 billion" in " ".join(e.sentence for e in pick(evidence, typed=True)[:2])
