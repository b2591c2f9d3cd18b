"""Grouping reports into stories (index/stories.py): the rule, on vectors the test controls."""

from __future__ import annotations

import numpy as np
import pytest

from index import stories
from index.stories import Report, group, is_digest, keys

DAY = 86_400
T0 = 1_656_633_600  # 2022-07-01

# (headline, opening text, url) -> is it a digest/roundup (never a story member)?
DIGEST_CASES = [
    ("5 things to know for July 8: Shinzo Abe, Parade shooting", "If your day ...", "", True),
    ("Gun control law, Yosemite fire: 5 things to know Monday", "Editors USA TODAY", "", True),
    ("Vladimir Putin, Fed hike, Hurricane Fiona: Daily Briefing", "Vladimir Putin ...", "", True),
    ("Justice Stephen Breyer, NATO and R. Kelly. It's Wednesday's news.", "The Jan. 6 ...", "", True),
    ("Ukraine live updates: NATO invites Sweden, Finland", "On the same day NATO ...", "", True),
    ("French Open updates | Arevalo, Rojer win men's doubles title", "AP PARIS", "", True),
    ("President Biden calls for federal gas tax holiday", "Happy Wednesday, OnPolitics readers!", "", True),
    ("Gas prices, Rudy Giuliani, Liz Cheney ...", "Gas prices are dropping. 👋 Hey! Laura Davis here.", "", True),
    ("Boarding school stories: News from around our 50 states", "From USA TODAY Network", "", True),
    ("Are we in a recession?", "This story is part of CNN Business’ Nightcap newsletter. To get it", "", True),
    ("Premarket: Why stocks are weird", "A version of this story first appeared in CNN Business’ Before the Bell newsletter.", "", True),
    ("Russia-Ukraine news", "Follow the latest", "https://www.cnn.com/europe/live-news/ukraine-06-22/index.html", True),
    ("Ex-Japanese PM Abe shot and killed", "On today's episode of the 5 Things podcast: Ex-Japanese", "", True),
    # members, including a science story that opens with a newsletter sign-up line
    ("June's strawberry moon will light up the sky this week", "Sign up for CNN's Wonder Theory science newsletter. Explore the universe", "", False),
    ("Shinzo Abe of Japan dies after campaign speech shooting", "Shinzo Abe, Japan's longest-serving prime minister, died", "", False),
    ("Diahann Carroll, Oscar-nominated, pioneering actress, dies at 84", "Diahann Carroll ...", "", False),
]  # fmt: skip


@pytest.mark.parametrize(("title", "text", "url", "expected"), DIGEST_CASES)
def test_digest_detection(title: str, text: str, url: str, expected: bool) -> None:
    assert is_digest(title, text, url) is expected


# (headline, lead) -> names and numbers that must be found, and words that must not
KEY_CASES = [
    (
        "Iga Swiatek beats Coco Gauff 6-1, 6-3 in Paris",
        "(CNN) On Saturday, June 4, 2022, the world No. 1 won her second French Open.",
        {"swiatek", "coco", "gauff", "6-1", "6-3", "paris", "french", "open"},
        {"cnn", "saturday", "june", "2022", "the", "on"},
    ),
    # a capitalised word opening a sentence may be any word; inside one it is a name
    (
        "Replay",
        "Watch the video. Videos must be played 03:46 long. Lawmakers met Ron DeSantis.",
        {"ron", "desantis"},
        {"replay", "watch", "videos", "lawmakers", "03:46"},
    ),
    ("Iga wins", "Fans cheered Iga in Paris.", {"iga", "paris"}, {"fans", "wins"}),
]


@pytest.mark.parametrize(("title", "lead", "found", "absent"), KEY_CASES)
def test_keys_are_names_and_numbers_inside_sentences(
    title: str, lead: str, found: set[str], absent: set[str]
) -> None:
    got = keys(title, lead)
    assert found <= got
    assert not absent & got


def _unit(*weights: float, dim: int = 8) -> np.ndarray:
    vector = np.zeros(dim, dtype=np.float32)
    vector[: len(weights)] = weights
    return vector / np.linalg.norm(vector)


def _report(aid: str, vector: np.ndarray, day: float, title: str = "", lead: str = "") -> Report:
    return Report(aid, title or aid, lead, int(T0 + day * DAY), vector)


def test_near_leads_within_the_window_form_one_story_whose_id_is_the_earliest_report() -> None:
    event, other = _unit(1, 0.1), _unit(0, 1)
    reports = [
        _report("b-update", _unit(1, 0.15), 1),
        _report("a-first", event, 0),
        _report("c-other-outlet", _unit(1, 0.05), 2),
        _report("d-unrelated", other, 0),
    ]
    grouping = group(reports)
    first = stories.story_id("a-first")
    assert [grouping.story_of[a] for a in ("a-first", "b-update", "c-other-outlet")] == [first] * 3
    assert grouping.story_of["d-unrelated"] == stories.story_id("d-unrelated")
    # Order of arrival does not matter.
    assert group(list(reversed(reports))).story_of == grouping.story_of


def test_the_same_lead_outside_the_date_window_is_another_event() -> None:
    vector = _unit(1, 0.1)
    reports = [_report("may-moon", vector, 0), _report("june-moon", vector, 30)]
    grouping = group(reports)
    assert grouping.story_of["may-moon"] != grouping.story_of["june-moon"]


def test_moderately_similar_leads_join_only_when_they_share_rare_names_or_numbers() -> None:
    a, b = _unit(1, 0.8), _unit(1, -0.1)  # cosine ~0.71: linked only with shared names
    cos = float(a @ b)
    assert stories.MIN_COSINE <= cos < stories.LINK_SCORE
    filler = [
        _report(f"filler{i}", _unit(0, 0, 1, i), 10 + i, lead="Congress Senate House")
        for i in range(6)
    ]
    same = group(
        [
            _report("x", a, 0, "Swiatek beats Gauff", "Iga Swiatek won 6-1, 6-3 at Roland Garros."),
            _report("y", b, 1, "Swiatek takes title", "Iga Swiatek routed Coco Gauff 6-1, 6-3."),
            *filler,
        ]
    )
    assert same.story_of["x"] == same.story_of["y"]
    different = group(
        [
            _report("x", a, 0, "Swiatek beats Gauff", "Iga Swiatek won 6-1, 6-3 at Roland Garros."),
            _report("y", b, 1, "Nadal into final", "Rafael Nadal beat Alexander Zverev in Paris."),
            *filler,
        ]
    )
    assert different.story_of["x"] != different.story_of["y"]


def test_a_digest_is_its_own_story_and_never_glues_two_events() -> None:
    event_a, event_b = _unit(1, 0, 0), _unit(0, 1, 0)
    digest_vector = _unit(1, 1, 0)  # near both events (cosine ~0.71 with each)
    reports = [
        _report("a", event_a, 0),
        _report("b", event_b, 0),
        _report("digest", digest_vector, 0, "5 things to know for July 1: A, B"),
        _report("a2", _unit(1, 0.05, 0), 1),
    ]
    grouping = group(reports)
    assert grouping.digests == {"digest"}
    assert grouping.story_of["digest"] == stories.story_id("digest")
    assert grouping.story_of["a"] == grouping.story_of["a2"] != grouping.story_of["b"]


def test_a_report_linked_to_two_stories_joins_one_and_does_not_merge_them() -> None:
    # Two events of five reports each, leads 0.82 apart (unlinked); "bridge" lies between
    # them, within 0.95 of every report of both.
    angle = np.arccos(0.82)
    a_dir, b_dir = _unit(1, 0), _unit(np.cos(angle), np.sin(angle))
    bridge_dir = (a_dir + b_dir) / np.linalg.norm(a_dir + b_dir)
    a = [_report(f"a{i}", a_dir, i * 0.1) for i in range(5)]
    b = [_report(f"b{i}", b_dir, i * 0.1) for i in range(5)]
    bridge = _report("bridge", bridge_dir, 1)
    assert float(bridge_dir @ a_dir) >= stories.LINK_SCORE > float(a_dir @ b_dir)
    story = group([*a, *b, bridge]).story_of
    assert len({story[r.article_id] for r in a}) == len({story[r.article_id] for r in b}) == 1
    assert story["a0"] != story["b0"]
    assert story["bridge"] in (story["a0"], story["b0"])


def test_undated_reports_stay_alone() -> None:
    vector = _unit(1)
    grouping = group([Report("x", "x", "", -1, vector), Report("y", "y", "", -1, vector)])
    assert grouping.story_of["x"] != grouping.story_of["y"]


def test_a_later_update_needs_a_closer_match_the_later_it_comes() -> None:
    a, b = _unit(1, 0.1), _unit(1, 0.35)  # cosine ~0.97, and no names in common
    assert float(a @ b) >= stories.LINK_SCORE
    near = group([_report("x", a, 0), _report("y", b, 2)]).story_of
    assert near["x"] == near["y"]
    # 8 days apart the bar is 3 days' penalty higher: the same leads are not enough ...
    late = group([_report("x", a, 0), _report("y", b, 8)]).story_of
    assert late["x"] != late["y"]
    # ... the same event's names are (a trial's verdict and its opening arguments)
    lead = "The jury heard Alex Jones in Austin on the Sandy Hook case."
    named = group([_report("x", a, 0, "Trial", lead), _report("y", b, 8, "Verdict", lead)])
    assert named.story_of["x"] == named.story_of["y"]
    # and nothing links beyond the window
    far = [_report("x", a, 0, "Trial", lead), _report("y", a, stories.WINDOW_DAYS + 1, "V", lead)]
    assert len(set(group(far).story_of.values())) == 2


def test_groups_whose_pairs_are_close_on_average_merge_into_one_story() -> None:
    # Two angles of one day's event: each pair of angles is linked, but across them no pair
    # reaches LINK_SCORE; their mean cosine plus shared names does reach GROUP_SCORE.
    u, v = _unit(1, 0, 0.3), _unit(1, 0.62, 0)
    cross = float(u @ v)
    lead = "Storm Alder hit Port Kellan and Dunmore."
    assert cross + stories.KEYS_WEIGHT * 1.0 >= stories.GROUP_SCORE  # all names shared
    assert cross < stories.LINK_SCORE
    reports = [
        _report("a1", u, 0, "Storm", lead),
        _report("a2", u, 0.1, "Storm", lead),
        _report("b1", v, 0.2, "Storm", lead),
        _report("b2", v, 0.3, "Storm", lead),
    ]
    story = group(reports).story_of
    assert len(set(story.values())) == 1
    # Without the names in common the same leads stay two stories.
    apart = [
        _report("a1", u, 0, "Storm", "Storm Alder hit Port Kellan."),
        _report("a2", u, 0.1, "Storm", "Storm Alder hit Port Kellan."),
        _report("b1", v, 0.2, "Vote", "Voters in Brindleford chose Maria Okafor."),
        _report("b2", v, 0.3, "Vote", "Voters in Brindleford chose Maria Okafor."),
    ]
    story = group(apart).story_of
    assert story["a1"] == story["a2"] != story["b1"] == story["b2"]


def test_grouping_whole_components_gives_what_grouping_everything_gives() -> None:
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(6, 8))
    reports = []
    for n in range(60):
        centre = centres[n % 6]
        vector = centre + rng.normal(scale=0.35, size=8)
        vector /= np.linalg.norm(vector)
        day = float(rng.integers(0, 40))
        reports.append(_report(f"r{n:02d}", vector.astype(np.float32), day, lead=f"Name{n % 6}"))
    whole = group(reports).story_of
    parts = stories.components(reports)
    assert 1 < len(parts) < len(reports)  # the test means something only with both kinds
    stats = stories.KeyStats.of(r.keys for r in reports)
    assert group(reports, stats).story_of == whole
    by_id = {r.article_id: r for r in reports}
    for part in parts:
        alone = group([by_id[aid] for aid in part], stats).story_of
        assert alone == {aid: whole[aid] for aid in part}
    # no story crosses a component
    component_of = {aid: n for n, part in enumerate(parts) for aid in part}
    for aid, story in whole.items():
        assert {component_of[a] for a, s in whole.items() if s == story} == {component_of[aid]}


def test_key_stats_survive_their_record_and_go_stale_with_growth() -> None:
    stats = stories.KeyStats.of([{"a", "b"}, {"a"}, {"c"}])
    assert stats.n == 3 and stats.df == {"a": 2}  # keys of one lead are not stored
    again = stories.KeyStats.from_json(stats.to_json())
    assert again == stats
    idf = again.idf()
    assert idf("a") < idf("b") == idf("never-seen")
    assert not stats.stale(3) and stats.stale(4)


AD_STUB = (
    "1. How relevant is this ad to you?\n\nVideo player was slow to load content Video content "
    "never loaded Ad froze or did not finish loading Audio on ad was too loud Other issues"
)
CONSENT = (
    "We will use the details you have shared to manage your registration, as described in "
    "our Privacy Policy.\n\nWould you like to receive The WeekDay newsletter ?\n\n"
    "If you wish to object to the use of your data in this way, please tick here."
)


def test_page_furniture_is_told_from_the_news() -> None:
    caption = "SCHWEDT, GERMANY - MAY 03: In this aerial view, tanks of the PCK refinery."
    news = "Ford Motor Co. is recalling 2.9 million vehicles that may roll away while parked."
    assert stories.content(f"{AD_STUB}\n{caption}\n{news}").strip() == news
    assert stories.furnished(AD_STUB) and stories.furnished(CONSENT)
    assert stories.furnished(f"{caption}\n{news}") is False  # mostly news: the lead reads fine
    # a sign-up line above the story leaves the lead as it is
    signup = "Sign up for CNN's Wonder Theory science newsletter. Explore the universe."
    assert not stories.furnished(f"{signup}\n\n{news} {news}")


def test_a_lead_of_page_furniture_only_joins_nothing() -> None:
    # Video pages whose stored text is an ad survey: identical leads, unrelated events.
    vector = _unit(1, 0.1)
    stubs = [_report("ford", vector, 0, "Ford recall", AD_STUB)]
    stubs.append(_report("emmys", vector, 0.5, "Emmy awards winners", AD_STUB))
    assert len(set(group(stubs).story_of.values())) == 2
    # The same vectors with news in the lead are one story.
    news = [_report("a", vector, 0, "A", "Ford recalls cars."), _report("b", vector, 0.5, "B")]
    assert len(set(group(news).story_of.values())) == 1


def test_a_furnished_lead_is_read_from_the_next_chunk() -> None:
    body = "Fans cheered Iga Swiatek in Paris after the final."
    report = Report("x", "Final", CONSENT, int(T0), _unit(1), body=body)
    assert {"iga", "swiatek", "paris"} <= report.keys
    assert not {"privacy", "policy", "weekday"} & report.keys
    assert report.joinable  # the next chunk is news
    stub = Report("y", "Final", CONSENT, int(T0), _unit(1))
    assert not stub.joinable


def test_headline_words_are_any_case_without_the_outlet_or_slug_tags() -> None:
    assert stories.headline_words("Ford Recalls 2.9M Vehicles | CNN Business") == {
        "~ford",
        "~recall",
        "~2.9m",
        "~vehicle",
    }
    # a URL-slug title has no capitals to find names by, and carries slug tags
    assert stories.headline_words("Queen elizabeth ii funeral intl - CNN") == {
        "~queen",
        "~elizabeth",
        "~ii",
        "~funeral",
    }
    assert not stories.keys("Queen elizabeth ii funeral", "")  # no names found there


def test_same_day_headlines_of_one_event_link_leads_that_alone_would_not() -> None:
    a, b = _unit(1, 0.5), _unit(1, -0.2)  # cosine ~0.79, and no names in the leads
    cos = float(a @ b)
    assert stories.MIN_COSINE <= cos < stories.LINK_SCORE <= cos + stories.TITLE_WEIGHT
    first, second = "Ford recalls millions of pickup trucks", "Ford recall: pickup trucks"

    def together(day: float, title: str) -> bool:
        story = group([_report("x", a, 0, first), _report("y", b, day, title)]).story_of
        return story["x"] == story["y"]

    assert together(0.2, second)
    assert not together(0.2, "Emmy awards winners")  # other headlines: other events
    # Days later the same words name the next step of a saga, not this event.
    assert not together(2, second)


def test_a_blank_page_joins_the_story_whose_headline_holds_its_words() -> None:
    # A video page stores only an ad survey: its headline is all it says.
    trucks, other = _unit(1, 0.1), _unit(0, 1)

    def story_of_blank(title: str, day: float, *more: Report) -> dict[str, str]:
        reports = [
            _report("recall", trucks, 0, "Ford recalls millions of pickup trucks", "Ford said."),
            _report("emmys", other, 0, "Emmy winners list", "The Emmys were held."),
            _report("video", _unit(0.5, 0.5), day, title, AD_STUB),
            *more,
        ]
        return group(reports).story_of

    story = story_of_blank("Ford recall", 0.3)
    assert story["video"] == story["recall"] != story["emmys"]
    assert len(set(story_of_blank("Taco bell mexican pizza", 0.3).values())) == 3
    assert len(set(story_of_blank("Ford recall", 3).values())) == 3  # days later: another event
    # It joins one story and glues nothing: two pages like it stay apart from each other,
    # and the two stories it could join stay two.
    twin = _report("video2", _unit(0.5, 0.5), 0.3, "Ford recall", AD_STUB)
    story = story_of_blank("Ford recall", 0.3, twin)
    assert story["video"] == story["video2"] == story["recall"]  # both join the report ...
    two = [
        _report("a", trucks, 0, "Ford recall"),
        _report("b", twin.vector, 0.3, "Ford recall", AD_STUB),
        _report("c", other, 0.2, "Ford recall"),
    ]
    story = group(two).story_of
    assert story["a"] != story["c"] and story["b"] in (story["a"], story["c"])


def test_components_hold_the_stories_blank_pages_join() -> None:
    reports = [
        _report("recall", _unit(1, 0.1), 0, "Ford recalls millions of pickup trucks", "Ford."),
        _report("video", _unit(0, 1), 0.3, "Ford recall", AD_STUB),
        _report("other", _unit(0, 0, 1), 0.2, "Emmy winners", "The Emmys."),
    ]
    whole = group(reports).story_of
    assert whole["video"] == whole["recall"]
    parts = stories.components(reports)
    stats = stories.key_stats(reports)
    by_id = {r.article_id: r for r in reports}
    assert ["recall", "video"] in [sorted(part) for part in parts]
    for part in parts:
        assert group([by_id[a] for a in part], stats).story_of == {a: whole[a] for a in part}
