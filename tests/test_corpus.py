"""Reading articles: every reader, the helpers (dates, URLs, ids, hashes) and every bad input."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from index.corpus import SUPPORTED_SUFFIXES, iter_articles
from index.identity import article_id, canonical_url, content_hash
from index.models import Article, LoadError
from index.readers import derive_title, normalize_text, parse_date

REPO = Path(__file__).resolve().parents[1]
REALTIMEQA = Path(__file__).resolve().parents[2] / "shared/data/realtimeqa/corpus.jsonl"
LIMITS = {"max_file_bytes": 100_000, "max_article_chars": 5_000}
BODY = "The council approved the budget on Monday.\n\nIt takes effect in July."


def read(path: Path, **limits: int) -> list[Article | LoadError]:
    return list(iter_articles(path, **{**LIMITS, **limits}))


def one(path: Path) -> Article:
    items = read(path)
    assert len(items) == 1 and isinstance(items[0], Article), items
    return items[0]


def error(path: Path, **limits: int) -> LoadError:
    items = read(path, **limits)
    assert len(items) == 1 and isinstance(items[0], LoadError), items
    return items[0]


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# --- readers ------------------------------------------------------------------------------------


def test_markdown_with_front_matter(tmp_path: Path) -> None:
    file = write(
        tmp_path / "budget.md",
        "---\ntitle: Council passes budget\npublished: 2022-06-12\nsource: City Times\n"
        "url: https://www.example.com/news/budget/?utm_source=x#top\n"
        "authors: [Ann Lee, Bo Chan]\nextra: ignored\n---\n\n" + BODY + "\n",
    )
    article = one(file)
    assert article.title == "Council passes budget"
    assert article.text == BODY
    assert (article.published, article.published_ts) == ("2022-06-12", 1654992000)
    assert article.source == "City Times"
    assert article.url == "https://www.example.com/news/budget"
    assert article.authors == ["Ann Lee", "Bo Chan"]
    assert article.path == file.as_posix()
    assert article.id == article_id("https://www.example.com/news/budget", "x", None)
    assert article.hash == content_hash(article) and len(article.hash) == 16


def test_markdown_heading_is_the_title_without_front_matter(tmp_path: Path) -> None:
    article = one(write(tmp_path / "a.markdown", "# Council passes budget\n\n" + BODY))
    assert article.title == "Council passes budget"
    assert article.text == BODY
    assert (article.published, article.published_ts, article.url) == ("", -1, "")


def test_markdown_without_any_title_derives_one(tmp_path: Path) -> None:
    article = one(write(tmp_path / "a.md", BODY))
    assert article.title == "The council approved the budget on Monday"


def test_markdown_single_author_string_and_date_key(tmp_path: Path) -> None:
    text = "---\nauthor: Ann Lee\ndate: June 12, 2022\n---\n" + BODY
    article = one(write(tmp_path / "a.md", text))
    assert article.authors == ["Ann Lee"]
    assert article.published == "2022-06-12"


def test_txt_first_line_is_the_title(tmp_path: Path) -> None:
    article = one(write(tmp_path / "a.txt", "\n\nCouncil passes budget\n" + BODY))
    assert article.title == "Council passes budget"
    assert article.text == BODY


def test_txt_long_first_sentence_stays_in_the_text(tmp_path: Path) -> None:
    first = "Officials from both countries met on Friday in the capital " + "and talked " * 15
    assert len(first) > 150
    article = one(write(tmp_path / "a.txt", first + "\nSecond line."))
    assert article.text.startswith("Officials from both countries")
    assert article.title == "Officials from both countries met on Friday in the capital and talked…"


HTML = """<!doctype html>
<html><head>
  <title>Council passes budget - City Times</title>
  <meta property="og:title" content="Council passes budget">
  <meta property="og:site_name" content="City Times">
  <meta property="article:published_time" content="2022-06-12T23:30:00-05:00">
  <meta name="author" content="Ann Lee">
  <link rel="canonical" href="https://www.example.com/2022/06/12/budget/index.html">
  <style>p { color: red }</style>
  <script>var tracking = "do not index";</script>
</head><body>
  <header>Site header</header>
  <nav><a href="/">Home</a> <a href="/news">News</a></nav>
  <div class="promo">Subscribe now</div>
  <article>
    <h1>Council passes budget</h1>
    <p>The council   approved the <b>budget</b>
       on Monday.</p>
    <script>alert("no")</script>
    <aside>Related: other stories</aside>
    <p>It takes effect<br>in July.</p>
    <form><input value="newsletter"></form>
  </article>
  <footer>Copyright</footer>
</body></html>"""


def test_html_page(tmp_path: Path) -> None:
    article = one(write(tmp_path / "page.html", HTML))
    assert article.title == "Council passes budget"
    assert article.source == "City Times"
    assert article.url == "https://www.example.com/2022/06/12/budget"
    assert article.published == "2022-06-13"  # 23:30 at UTC-5 is the next day in UTC
    assert article.authors == ["Ann Lee"]
    assert article.text == "The council approved the budget on Monday.\n\nIt takes effect\nin July."
    for furniture in ("tracking", "alert", "Home", "Related", "newsletter", "Copyright", "promo"):
        assert furniture not in article.text


def test_html_fallbacks(tmp_path: Path) -> None:
    page = """<html><head><title>Plain title</title>
    <link rel="canonical" href="https://news.example.org/story/budget-passes">
    <script type="application/ld+json">{"@graph": [{"@type": "WebPage"},
        {"@type": "NewsArticle", "datePublished": "2022-06-12", "author": [{"name": "Bo Chan"}]}]}
    </script></head>
    <body><main><p>First paragraph.</p><div><p>Second paragraph.</p></div></main>
    <p>Outside main.</p></body></html>"""
    article = one(write(tmp_path / "page.htm", page))
    assert article.title == "Plain title"
    assert article.published == "2022-06-12"
    assert article.source == "news.example.org"  # no og:site_name: the canonical URL's domain
    assert article.text == "First paragraph.\n\nSecond paragraph."


def test_html_h1_title_and_time_element(tmp_path: Path) -> None:
    page = """<body><h1>Heading title</h1><time datetime="2022-06-12T10:00:00Z">Sunday</time>
    <p>Body text here.</p></body>"""
    article = one(write(tmp_path / "page.html", page))
    assert article.title == "Heading title"
    assert article.published == "2022-06-12"
    assert "Body text here." in article.text


def test_json_object(tmp_path: Path) -> None:
    record = {
        "url": "https://example.com/a",
        "title": "Budget",
        "source": "City Times",
        "published": "2022-06-12",
        "authors": "Ann Lee",
        "text": BODY,
        "tags": ["ignored"],
    }
    article = one(write(tmp_path / "a.json", json.dumps(record)))
    assert (article.title, article.text, article.authors) == ("Budget", BODY, ["Ann Lee"])
    assert article.path == (tmp_path / "a.json").as_posix()


def test_json_list_numbers_records(tmp_path: Path) -> None:
    records = [{"title": "One", "body": "First."}, {"title": "Two", "content": "Second."}]
    file = write(tmp_path / "list.json", json.dumps(records))
    articles = read(file)
    assert [a.title for a in articles] == ["One", "Two"]
    assert [a.text for a in articles] == ["First.", "Second."]
    assert [a.path for a in articles] == [f"{file.as_posix()}#1", f"{file.as_posix()}#2"]
    assert [a.id for a in articles] == [
        article_id("", "list.json", 1),
        article_id("", "list.json", 2),
    ]


def test_jsonl_with_body(tmp_path: Path) -> None:
    lines = [
        {
            "url": "https://example.com/a",
            "title": "A",
            "body": "Text A.",
            "published": "2022-06-12",
        },
        {"url": "https://example.com/b", "title": "B", "body": "Text B.", "authors": ["X", "Y"]},
    ]
    file = write(tmp_path / "feed.jsonl", "\n".join(map(json.dumps, lines)) + "\n\n")
    a, b = read(file)
    assert (a.title, a.text, a.published, a.source) == ("A", "Text A.", "2022-06-12", "example.com")
    assert (b.path, b.authors) == (f"{file.as_posix()}#2", ["X", "Y"])


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    article = one(write(tmp_path / "a.txt", "\ufeffTitle\nBody text.".encode()))
    assert article.title == "Title"


# --- helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "url", "title"),
    [
        ("Anything.", "https://www.cnn.com/2022/06/12/media/squid-game-season-2/index.html",
         "Squid game season 2"),
        ("Anything.", "https://www.usatoday.com/story/news/stromboli-erupts/8236663001/",
         "Stromboli erupts"),
        ("Short headline. More text.", "https://example.com/2022/06/12/12345/", "Short headline"),
        ("Short headline. More text.", "https://example.com/news/index.html", "Short headline"),
        ("One two three four five six seven eight nine ten eleven twelve thirteen.", "",
         "One two three four five six seven eight nine ten eleven twelve…"),
        ("A" * 150, "", "A" * 100 + "…"),
    ],
)  # fmt: skip
def test_derive_title(text: str, url: str, title: str) -> None:
    assert derive_title(text, url) == title


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-06-12", "2022-06-12"),
        ("2022-06-12T10:00:00Z", "2022-06-12"),
        ("2022-06-12T23:30:00-05:00", "2022-06-13"),
        ("2022-06-13T01:00:00+05:30", "2022-06-12"),
        ("Sun, 12 Jun 2022 23:30:00 EST", "2022-06-13"),
        ("Mon, 13 Jun 2022 01:30:00 +0000", "2022-06-13"),
        ("June 12, 2022", "2022-06-12"),
        ("12 June 2022", "2022-06-12"),
        ("Sunday, June 12, 2022 at 4:00 PM", "2022-06-12"),
        (1655035200, "2022-06-12"),
        ("1655035200", "2022-06-12"),
        (date(2022, 6, 12), "2022-06-12"),
        (datetime(2022, 6, 12, 22, tzinfo=timezone(timedelta(hours=-4))), "2022-06-13"),
        (2022, "2022-01-01"),
        ("not a date", ""),
        ("May", ""),
        ("", ""),
        (None, ""),
        ([], ""),
        ("2022-13-45", ""),
    ],
)
def test_parse_date(value: object, expected: str) -> None:
    day, ts = parse_date(value)
    assert day == expected
    if expected:
        assert datetime.fromtimestamp(ts, tz=timezone.utc) == datetime.fromisoformat(
            expected + "T00:00:00+00:00"
        )
    else:
        assert ts == -1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.cnn.com/2022/06/12/tech/x/index.html#:~:text=Foo",
         "https://www.cnn.com/2022/06/12/tech/x"),
        ("https://www.cnn.com/2022/06/12/tech/x/", "https://www.cnn.com/2022/06/12/tech/x"),
        ("https://www.cnn.com/2022/09/09/us/x/index.html/", "https://www.cnn.com/2022/09/09/us/x"),
        ("https://example.com/index.htm?id=3", "https://example.com/?id=3"),
        ("https://example.com/docs/index.html.bak", "https://example.com/docs/index.html.bak"),
        ("https://example.com/reindex.html", "https://example.com/reindex.html"),
        ("HTTPS://WWW.Example.COM/Path/Case/", "https://www.example.com/Path/Case"),
        ("https://example.com/a?utm_source=tw&id=7&fbclid=x&UTM_MEDIUM=y&ref=home&q=a%20b",
         "https://example.com/a?id=7&q=a%20b"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/", "https://example.com/"),
        ("https://example.com:443/a/", "https://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("  https://example.com/a?gclid=1  ", "https://example.com/a"),
        ("", ""),
        ("not a url#frag", "not a url"),
    ],
)  # fmt: skip
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected
    assert canonical_url(expected) == expected  # idempotent


def test_normalize_text() -> None:
    raw = "  Line one  \r\nLine\x00 two\x07\t\r\n\r\n\r\n\r\n\rLast\ufeff line \n "
    assert normalize_text(raw) == "Line one\nLine two\n\nLast line"


def test_ids_from_urls_are_stable_across_paths_and_url_variants() -> None:
    url = "https://www.cnn.com/2022/06/12/media/squid-game-season-2/index.html"
    first = article_id(url, "a/feed.jsonl", 3)
    assert first == article_id(url + "?utm_source=x#:~:text=Foo", "b/other.md", None)
    assert first != article_id(url.replace("squid", "octopus"), "a/feed.jsonl", 3)
    assert len(first) == 20 and int(first, 16) >= 0


def test_ids_from_paths_and_record_numbers() -> None:
    assert article_id("", "news/a.md", None) == article_id("", "news/a.md", None)
    assert article_id("", "news/a.md", None) != article_id("", "news/b.md", None)
    assert article_id("", "feed.jsonl", 1) != article_id("", "feed.jsonl", 2)
    assert article_id("", "feed.jsonl", 1) != article_id("", "feed.jsonl", None)


def test_ids_are_relative_to_the_indexed_root(tmp_path: Path) -> None:
    file = write(tmp_path / "corpus" / "a.md", BODY)
    from_file = one(file)
    from_folder = one(tmp_path / "corpus")
    assert from_file.id == from_folder.id == article_id("", "a.md", None)
    nested = write(tmp_path / "other" / "deep" / "a.md", BODY)
    assert one(nested).id == from_file.id  # same name relative to its own root
    assert one(tmp_path / "other").id == article_id("", "deep/a.md", None)


def test_content_hash_follows_content_not_location(tmp_path: Path) -> None:
    a = one(write(tmp_path / "x" / "a.md", BODY))
    b = one(write(tmp_path / "y" / "b.md", BODY))
    assert a.id != b.id
    assert a.hash == b.hash
    changed = one(write(tmp_path / "z" / "a.md", BODY + " Updated."))
    assert changed.hash != a.hash
    assert content_hash(Article(id="1", text="t", title="x")) != content_hash(
        Article(id="1", text="t", title="x", authors=["A"])
    )
    assert content_hash(Article(id="1", text="ab", title="c")) != content_hash(
        Article(id="1", text="a", title="bc")
    )


# --- bad input ----------------------------------------------------------------------------------


def test_binary_file(tmp_path: Path) -> None:
    assert "binary" in error(write(tmp_path / "a.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00")).reason
    assert "binary" in error(write(tmp_path / "b.txt", bytes(range(1, 32)) * 20)).reason
    assert "binary" in error(write(tmp_path / "c.jsonl", b'{"text": "x"}\n\x00\x01')).reason


@pytest.mark.parametrize("name", ["a.md", "a.txt", "a.html", "a.json", "a.jsonl"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    assert error(write(tmp_path / name, " \n\n ")).reason == "empty file"


def test_empty_text_after_extraction(tmp_path: Path) -> None:
    page = "<html><head><title>T</title></head><body><nav>menu</nav><script>x</script></body>"
    assert error(write(tmp_path / "a.html", page)).reason == "no article text"
    assert error(write(tmp_path / "a.md", "---\ntitle: Only a title\n---\n")).reason == (
        "no article text"
    )


def test_non_utf8(tmp_path: Path) -> None:
    file = write(tmp_path / "a.txt", "Caf\u00e9 news\nBody".encode("latin-1"))
    assert error(file).reason == "not UTF-8 text (byte 0xe9 at offset 3)"


def test_malformed_json(tmp_path: Path) -> None:
    reason = error(write(tmp_path / "a.json", '{"text": "x",')).reason
    assert reason.startswith("malformed JSON")
    assert "JSON must be" in error(write(tmp_path / "b.json", '"just a string"')).reason


def test_malformed_front_matter(tmp_path: Path) -> None:
    file = write(tmp_path / "a.md", "---\ntitle: [unclosed\n---\nBody")
    assert error(file).reason.startswith("malformed front matter")


def test_jsonl_bad_lines_do_not_stop_the_good_ones(tmp_path: Path) -> None:
    file = write(
        tmp_path / "feed.jsonl",
        '{"title": "A", "text": "Good one."}\n'
        '{"title": "B", "text": \n'
        '["not", "an", "object"]\n'
        '{"title": "D", "text": ""}\n'
        '{"title": "E", "text": "Good two."}\n',
    )
    items = read(file)
    assert [type(item).__name__ for item in items] == [
        "Article", "LoadError", "LoadError", "LoadError", "Article"
    ]  # fmt: skip
    assert [item.path for item in items[1:4]] == [f"{file.as_posix()}#{n}" for n in (2, 3, 4)]
    assert items[1].reason.startswith("malformed JSON")
    assert items[2].reason == "record is a list, not an object"
    assert items[3].reason == "no article text"
    assert items[4].title == "E"


def test_jsonl_bad_encoding_on_one_line(tmp_path: Path) -> None:
    file = write(tmp_path / "feed.jsonl", b'{"text": "Caf\xe9"}\n{"text": "Fine."}\n')
    bad, good = read(file)
    assert isinstance(bad, LoadError) and bad.reason.startswith("not UTF-8 text (byte 0xe9")
    assert isinstance(good, Article)


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    file = write(tmp_path / "big.txt", "Title\n" + "x" * 2_500)
    reason = error(file, max_file_bytes=1_000, max_article_chars=10_000).reason
    assert reason == "file is 2.5 KB, over the 1 KB limit"


def test_jsonl_size_limit_applies_per_line(tmp_path: Path) -> None:
    small = json.dumps({"title": "S", "text": "Small."})
    big = json.dumps({"title": "B", "text": "y" * 3_000})
    file = write(tmp_path / "feed.jsonl", "\n".join([small, big, small, small]) + "\n")
    assert file.stat().st_size > 3_000
    items = read(file, max_file_bytes=1_000, max_article_chars=10_000)
    assert [type(item).__name__ for item in items] == ["Article", "LoadError", "Article", "Article"]
    assert items[1].path.endswith("#2") and "over the 1 KB limit" in items[1].reason
    assert items[3].path.endswith("#4")


def test_overlong_article(tmp_path: Path) -> None:
    file = write(tmp_path / "a.txt", "Title\n" + "word " * 2_000)
    reason = error(file, max_file_bytes=100_000, max_article_chars=1_000).reason
    assert reason == "article text is 9,999 characters, over the 1,000 limit"


def test_unsupported_extension_given_explicitly(tmp_path: Path) -> None:
    reason = error(write(tmp_path / "a.pdf", b"%PDF-1.4")).reason
    assert reason.startswith("unsupported file type '.pdf'")
    assert ".pdf" not in SUPPORTED_SUFFIXES


def test_missing_path(tmp_path: Path) -> None:
    assert error(tmp_path / "nope").reason == "no such file or folder"


# --- folders ------------------------------------------------------------------------------------


def test_folder_walk_is_recursive_sorted_and_skips_hidden(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write(root / "b.md", "# B\nText b.")
    write(root / "a.txt", "A\nText a.")
    write(root / "sub" / "deeper" / "c.json", json.dumps({"title": "C", "text": "Text c."}))
    write(root / "sub" / "e.HTML", "<title>E</title><p>Text e.</p>")
    write(root / ".hidden.md", "# Hidden\nNo.")
    write(root / ".git" / "e.md", "# Git\nNo.")
    write(root / "notes.pdf", b"%PDF")  # unsupported in a folder: skipped silently
    write(root / "image.png", b"\x89PNG\x00")
    items = read(root)
    assert all(isinstance(item, Article) for item in items), items
    assert [item.title for item in items] == ["A", "B", "C", "E"]  # sorted by path components
    assert items[2].path == (root / "sub" / "deeper" / "c.json").as_posix()
    assert items[2].id == article_id("", "sub/deeper/c.json", None)


def test_folder_errors_do_not_stop_the_walk(tmp_path: Path) -> None:
    write(tmp_path / "a.md", b"\x00\x01binary")
    write(tmp_path / "b.md", "# B\nFine.")
    items = read(tmp_path)
    assert [type(item).__name__ for item in items] == ["LoadError", "Article"]
    assert str(items[0]).startswith((tmp_path / "a.md").as_posix() + ": binary")


# --- real files ---------------------------------------------------------------------------------


def test_seed_article() -> None:
    article = one(REPO / "corpus" / "000_pakistan-azerbaijan-joint-ministerial-commission.md")
    assert article.title.startswith("Pakistan and Azerbaijan")
    assert (article.published, article.published_ts) == ("2025-01-24", 1737676800)
    assert article.text.startswith("Azerbaijan defense industry, Vugar Mustafayev")
    assert "January 23 to 24, 2025 in Islamabad" in article.text
    assert article.url == ""


def test_realtimeqa_corpus() -> None:
    if not REALTIMEQA.exists():
        pytest.skip(f"{REALTIMEQA} not present")
    items = list(iter_articles(REALTIMEQA, max_file_bytes=50_000_000, max_article_chars=200_000))
    errors = [item for item in items if isinstance(item, LoadError)]
    assert not errors, errors[:3]
    assert len(items) == 218
    assert len({item.id for item in items}) == 218
    assert all(item.title and item.published and item.url for item in items)
