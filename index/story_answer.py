"""Stories where answers are shown: who else reported a cited story."""

from __future__ import annotations

from datetime import date

from index.models import Answer, Citation, OtherReport
from index.retrieve import day_ts
from index.story_store import StoryMap


def with_reports(answer: Answer, stories: StoryMap, as_of: date | None = None) -> Answer:
    """Fill each citation's ``story_id`` and ``also``: the story's other reports, oldest
    first (none published after ``as_of``, the day the question is asked as of)."""
    latest = day_ts(as_of, end_of_day=True) if as_of else None
    for citation in [*answer.citations, *answer.see_also]:
        _fill(citation, stories, latest)
    return answer


def _fill(citation: Citation, stories: StoryMap, latest: int | None) -> None:
    if not citation.article_id:
        return
    citation.story_id = citation.story_id or stories.story_of(citation.article_id)
    citation.also = [
        OtherReport(
            source=str(r.get("source", "")),
            url=str(r.get("url", "")),
            published=str(r.get("published", "")),
            title=str(r.get("title", "")),
        )
        for r in stories.reports(citation.story_id)
        if r["article_id"] != citation.article_id
        and (latest is None or int(r.get("published_ts", -1)) <= latest)
    ]
