"""Telegram HTML for an ``Answer``, and splitting long messages safely.

Telegram's HTML parse mode rejects a whole message for one stray ``<`` or ``&``, so every
piece of article or model text is escaped here and nowhere else. ``split_message`` cuts at
paragraph, line, sentence or word boundaries, and never inside a tag, an entity (``&amp;``)
or a citation marker (``[3]``); a cut inside an open element (only for pathological input)
closes the element and reopens it in the next message, so each part parses on its own.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.render import other_reports
from index.models import Answer, Citation

if TYPE_CHECKING:
    from index.timeline import Timeline

MAX_MESSAGE = 4096  # Telegram's limit for one message's text

_LINKABLE = ("http://", "https://", "tg://")
_ANCHOR = re.compile(r'<a\s+href="([^"]*)"\s*>(.*?)</a>', re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^<>]*>")
# Atoms a cut may not fall inside. Tags and entities only count in HTML mode.
_HTML_ATOM = re.compile(r"<[^<>]*>|&(?:#[0-9]{1,8}|#[xX][0-9a-fA-F]{1,8}|[A-Za-z]{1,10});|\[\d+\]")
_PLAIN_ATOM = re.compile(r"\[\d+\]")
_TAG_NAME = re.compile(r"<\s*(/?)\s*([A-Za-z][\w-]*)")
# Text before a cut that ends a sentence: "end." / "end.)" / "end. [1]" / "end. [1][2]".
_SENTENCE_END = re.compile(r"""[.!?…]["'”’)\]]*(?:\s*(?:\[\d+\])+)?$""")


# --- formatting -------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Text for Telegram HTML: ``&``, ``<`` and ``>`` escaped (quotes are fine in text)."""
    return html.escape(text or "", quote=False)


def source_line(c: Citation) -> str:
    """``n. <a href=url>title</a> — source, date`` with everything escaped."""
    title = escape(c.title or "(untitled)")
    if c.url and c.url.lower().startswith(_LINKABLE):
        title = f'<a href="{html.escape(c.url, quote=True)}">{title}</a>'
    details = ", ".join(escape(part) for part in (c.source, c.published) if part)
    also = other_reports(c, lambda r: _link(r.source or r.url, r.url))
    return f"{c.n}. {title}" + (f" — {details}" if details else "") + also


def _link(text: str, url: str) -> str:
    if url and url.lower().startswith(_LINKABLE):
        return f'<a href="{html.escape(url, quote=True)}">{escape(text)}</a>'
    return escape(text)


def format_answer(answer: Answer) -> str:
    """The answer with its [n] markers, an optional note, then the sources footer."""
    parts = [escape(answer.text.strip())]
    if answer.note:
        parts.append(f"<i>{escape(answer.note)}</i>")
    if answer.citations:
        parts.append("<b>Sources</b>\n" + "\n".join(source_line(c) for c in answer.citations))
    elif answer.refused and answer.see_also:
        parts.append("<b>See also</b>\n" + "\n".join(source_line(c) for c in answer.see_also))
    return "\n\n".join(p for p in parts if p)


def format_timeline(timeline: Timeline) -> str:
    """A story's reports oldest first: date, linked source and headline, what each added."""
    entries = timeline.entries
    noun = "report" if len(entries) == 1 else "reports"
    lines = [f"<b>{escape(timeline.title)}</b> — {len(entries)} {noun}"]
    for e in entries:
        lines.append(
            f"{escape(e.published or '(undated)')} · {_link(e.source or e.url, e.url)}: "
            f"{escape(e.title)}"
        )
        if e.new:
            lines.append(f"<i>{escape(e.new)}</i>")
    return "\n".join(lines)


def html_to_plain(text: str) -> str:
    """The visible text of Telegram HTML, links kept as ``title (url)``: the fallback when
    Telegram refuses to parse a message."""
    text = _ANCHOR.sub(lambda m: f"{m[2]} ({m[1]})", text)
    return html.unescape(_TAG.sub("", text))


# --- splitting --------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units (an emoji may count as two)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


@dataclass
class _Cut:
    pos: int
    open_tags: tuple[str, ...]  # opening tags of the elements still open at `pos`
    cost: int  # length of the part before the cut, with its closing tags
    shown: int  # visible characters before the cut: a cut must leave some in the part


def split_message(text: str, limit: int = MAX_MESSAGE, *, html_mode: bool = True) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` UTF-16 units (measured on the raw text,
    tags included, so it is never too long for Telegram).

    Cuts prefer, in order: a paragraph break, a line break, a sentence end (after its
    ``[n]`` markers), a space; a preferred cut is taken when it keeps at least half the limit.
    """
    if limit < 16:
        raise ValueError("limit too small")
    parts: list[str] = []
    rest = text.strip()
    while rest and utf16_len(rest) > limit:
        cut = _best_cut(rest, limit, html_mode)
        closing = "".join(f"</{_tag_name(t)}>" for t in reversed(cut.open_tags))
        head = rest[: cut.pos].rstrip() + closing
        rest = "".join(cut.open_tags) + rest[cut.pos :].lstrip()
        if head.strip():
            parts.append(head)
    if rest.strip():
        parts.append(rest)
    return parts


def _tag_name(tag: str) -> str:
    m = _TAG_NAME.match(tag)
    return m[2].lower() if m else ""


def _cuts(text: str, html_mode: bool) -> list[_Cut]:
    """Every position a cut may fall on, with the elements open there, in order."""
    atom = _HTML_ATOM if html_mode else _PLAIN_ATOM
    stack: list[str] = []
    cuts: list[_Cut] = []
    closing_len = 0
    pos = 0
    prefix16 = 0  # UTF-16 length of text[:pos]
    shown = 0
    for m in [*atom.finditer(text), None]:
        end = m.start() if m else len(text)
        for i in range(pos, end):  # plain characters: a cut may fall before each
            if i > 0:
                cuts.append(_Cut(i, tuple(stack), prefix16 + closing_len, shown))
            prefix16 += 2 if ord(text[i]) > 0xFFFF else 1
            shown += 1
        if m is None:
            break
        if m.start() > 0:
            cuts.append(_Cut(m.start(), tuple(stack), prefix16 + closing_len, shown))
        token = m[0]
        prefix16 += utf16_len(token)
        if not (html_mode and token.startswith("<")):
            shown += 1
        if html_mode and token.startswith("<"):
            m_tag = _TAG_NAME.match(token)
            close, name = (m_tag[1], m_tag[2]) if m_tag else ("", "")
            if close:
                # Pop up to the matching element (Telegram would reject a mismatch anyway).
                while stack:
                    closing_len -= len(_tag_name(stack[-1])) + 3
                    if _tag_name(stack.pop()) == name.lower():
                        break
            elif name and not token.endswith("/>"):
                stack.append(token)
                closing_len += len(name) + 3
        pos = m.end()
    cuts.append(_Cut(len(text), tuple(stack), prefix16 + closing_len, shown))
    return cuts


def _kind(text: str, pos: int) -> int:
    """How good a cut at ``pos`` is: 0 paragraph, 1 line, 2 sentence, 3 word, 4 anywhere."""
    if pos >= len(text) or not text[pos].isspace() or text[pos - 1].isspace():
        return 4  # only cut at the start of a whitespace run
    gap_end = pos
    while gap_end < len(text) and text[gap_end].isspace():
        gap_end += 1
    gap = text[pos:gap_end]
    if gap.count("\n") >= 2:
        return 0
    if "\n" in gap:
        return 1
    following = text[gap_end : gap_end + 1]
    if following != "[" and _SENTENCE_END.search(text[max(0, pos - 40) : pos]):
        return 2
    return 3


def _best_cut(text: str, limit: int, html_mode: bool) -> _Cut:
    # A part must show something: a cut right after an opening tag would reopen that tag in
    # the next part and never make progress.
    fitting = [
        c for c in _cuts(text, html_mode) if c.shown > 0 and c.cost <= limit and c.pos < len(text)
    ]
    if not fitting:
        # Nothing fits (a tag longer than the limit): cut the raw text; malformed but rare.
        return _Cut(min(len(text) - 1, limit), (), limit, 1)
    best: dict[int, _Cut] = {}
    for cut in fitting:
        kind = _kind(text, cut.pos) if not cut.open_tags else 5
        best[kind] = cut  # cuts come in order: the last one of a kind is the longest
    for kind in range(6):
        if kind in best and (best[kind].cost >= limit // 2 or kind == 5):
            return best[kind]
    return max(best.values(), key=lambda c: c.pos)
