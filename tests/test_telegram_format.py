"""Telegram HTML formatting of answers and safe message splitting (no network).

Every part is checked with the fake Bot API's tdlib-faithful HTML parser, so "parses here"
means "Telegram accepts it".
"""

from __future__ import annotations

import re

import pytest
from fakes.telegram_server import parse_html

from bot.telegram_format import (
    escape,
    format_answer,
    html_to_plain,
    source_line,
    split_message,
    utf16_len,
)
from index.models import Answer, Citation
from index.prompts import REFUSAL


def cite(n: int, **kw: str) -> Citation:
    values = {
        "title": f"Title {n}",
        "source": "example.com",
        "published": f"2022-06-{n:02d}",
        "url": f"https://example.com/{n}",
        "quote": "",
    }
    values.update(kw)
    return Citation(n=n, **values)  # type: ignore[arg-type]


def visible(html: str) -> str:
    return parse_html(html)[0]


def links(html: str) -> list[str]:
    return [e["url"] for e in parse_html(html)[1] if e["type"] == "text_link"]


def squash(text: str) -> str:
    return " ".join(text.split())


def nospace(text: str) -> str:
    return "".join(text.split())


# --- formatting ------------------------------------------------------------------------------


def test_answer_with_sources_footer() -> None:
    answer = Answer(
        text="Both sides agreed on an MOU. [1] Trade grew. [2]",
        citations=[cite(1), cite(2, url="")],
    )
    html = format_answer(answer)
    assert html.startswith("Both sides agreed on an MOU. [1] Trade grew. [2]\n\n<b>Sources</b>\n")
    assert '1. <a href="https://example.com/1">Title 1</a> — example.com, 2022-06-01' in html
    assert "2. Title 2 — example.com, 2022-06-02" in html  # no url: no link
    assert links(html) == ["https://example.com/1"]


def test_everything_is_escaped() -> None:
    hostile = "<script>alert('x')</script> & *bold* `code` __u__ <b>unclosed [1] &amp; &#0;"
    answer = Answer(
        text=hostile,
        citations=[
            cite(
                1,
                title="<i>T&C</i> “quoted”",
                source="A & B <news>",
                url='https://ex.com/?a=1&b="<x>"',
            )
        ],
        note="LLM unavailable (HTTP 500 <boom>); offline answer shown.",
    )
    html = format_answer(answer)
    text, entities = parse_html(html)  # strict: a bare & would raise
    assert hostile in text
    assert "<i>T&C</i> “quoted”" in text and "A & B <news>" in text
    assert "LLM unavailable (HTTP 500 <boom>)" in text
    assert links(html) == ['https://ex.com/?a=1&b="<x>"']
    assert {e["type"] for e in entities} == {"bold", "italic", "text_link"}


def test_unsafe_url_schemes_are_not_linked() -> None:
    line = source_line(cite(1, url="javascript:alert(1)"))
    assert "<a" not in line and "Title 1" in line


def test_refusal_with_see_also() -> None:
    answer = Answer(text=REFUSAL, refused=True, see_also=[cite(1), cite(2)])
    html = format_answer(answer)
    assert visible(html).startswith(REFUSAL)
    assert "<b>See also</b>" in html and "<b>Sources</b>" not in html
    assert links(html) == ["https://example.com/1", "https://example.com/2"]
    assert format_answer(Answer(text=REFUSAL, refused=True)) == escape(REFUSAL)


def test_html_to_plain_keeps_link_targets() -> None:
    html = format_answer(
        Answer(text="a & b [1]", citations=[cite(1, url="https://x.org/?a=1&b=2")])
    )
    plain = html_to_plain(html)
    assert "a & b [1]" in plain
    assert "1. Title 1 (https://x.org/?a=1&b=2) — example.com, 2022-06-01" in plain
    assert "<" not in plain


# --- splitting -------------------------------------------------------------------------------


def check_parts(parts: list[str], original: str, limit: int) -> None:
    """Each part fits and parses; together they show exactly the original's visible text."""
    assert all(utf16_len(p) <= limit for p in parts)
    for part in parts:
        parse_html(part)
    # Cuts only drop whitespace at the cut.
    assert nospace("".join(visible(p) for p in parts)) == nospace(visible(original))


def test_short_text_is_one_part() -> None:
    assert split_message("  hello <b>there</b>  ") == ["hello <b>there</b>"]
    assert split_message("") == []


def test_splits_at_paragraphs_first() -> None:
    para = " ".join(f"Sentence {i} is here. [1]" for i in range(10))
    text = "\n\n".join([para, para, para])
    parts = split_message(text, limit=len(para) * 2 + 10)
    assert parts == [f"{para}\n\n{para}", para]


def test_splits_at_sentence_ends_after_markers() -> None:
    text = " ".join(f"Claim number {i} holds. [{i % 3 + 1}]" for i in range(200))
    parts = split_message(text, limit=500)
    check_parts(parts, text, 500)
    assert len(parts) > 5
    for part in parts:
        assert re.fullmatch(r"Claim number \d+ holds\. \[\d\](?: Claim.*\[\d\])?", part), part


def test_never_splits_markers_entities_or_tags() -> None:
    # No spaces at all: cuts must fall between atoms, never inside them.
    text = "&amp;[12]<b>bold</b>&lt;x&gt;" * 200
    parts = split_message(text, limit=100)
    check_parts(parts, text, 100)
    for part in parts:
        assert part.count("<b>") == part.count("</b>")
        assert not re.search(r"\[\d*$|^\d*\]", part)
        assert not re.search(r"&[a-z#0-9]*$", part)


def test_footer_links_are_never_cut() -> None:
    citations = [cite(i, title=f"A rather long headline number {i} & more") for i in range(1, 60)]
    html = format_answer(Answer(text="Answer. [1]", citations=citations))
    parts = split_message(html, limit=400)
    check_parts(parts, html, 400)
    all_links = [url for p in parts for url in links(p)]
    assert all_links == [c.url for c in citations]
    for part in parts[1:]:
        assert re.match(r"\d+\. <a href=", part)  # each later part starts at a source line


def test_overlong_element_is_closed_and_reopened() -> None:
    html = '<a href="https://x.org/?a=1&amp;b=2">' + "word " * 300 + "</a> tail"
    parts = split_message(html, limit=400)
    check_parts(parts, html, 400)
    assert len(parts) > 3
    assert all(links(p) == ["https://x.org/?a=1&b=2"] for p in parts[:-1])


def test_limit_counts_utf16_units() -> None:
    text = "😀 " * 3000  # each emoji is two UTF-16 units
    parts = split_message(text, limit=4096)
    assert all(utf16_len(p) <= 4096 for p in parts)
    assert max(len(p) for p in parts) < 4096
    assert squash(" ".join(parts)) == squash(text)


def test_plain_mode_ignores_angle_brackets_but_keeps_markers() -> None:
    text = ("x < y & z > w [1] " * 100).strip()
    parts = split_message(text, limit=90, html_mode=False)
    assert squash(" ".join(parts)) == squash(text)
    assert all(len(p) <= 90 and not re.search(r"\[\d*$", p) for p in parts)


def test_hard_cut_without_any_space() -> None:
    text = "x" * 10_000
    parts = split_message(text, limit=4096)
    assert [len(p) for p in parts] == [4096, 4096, 1808]


def test_five_thousand_character_answer() -> None:
    sentences = [
        f"Point {i}: the minister said the talks went well. [{i % 4 + 1}]" for i in range(95)
    ]
    text = " ".join(sentences[:50]) + "\n\n" + " ".join(sentences[50:])
    answer = Answer(text=text, citations=[cite(i) for i in range(1, 5)])
    html = format_answer(answer)
    assert len(html) > 5000
    parts = split_message(html)
    check_parts(parts, html, 4096)
    assert len(parts) == 2
    assert parts[0].endswith("[2]") and parts[1].startswith("Point 50:")  # the paragraph break
    assert links(parts[1]) == [f"https://example.com/{i}" for i in range(1, 5)]


@pytest.mark.parametrize("limit", [60, 61, 333, 4096])
def test_random_mixtures_always_parse(limit: int) -> None:
    import random

    rng = random.Random(limit)
    pieces = ["word ", "end. ", "[3] ", "&amp; ", "<b>bold</b> ", "\n", "\n\n", "é ", "😀 "]
    pieces.append('<a href="https://e.com/?q=1&amp;r=2">link text</a> ')
    for _ in range(20):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 400)))
        parts = split_message(text, limit=limit)
        if text.strip():
            check_parts(parts, text, limit)
