"""The query layer: a question (and the conversation so far) in, a typed cited ``Answer`` out.

Steps: validate -> resolve follow-ups -> time scope -> hybrid retrieval -> answer (LLM when
configured, else extractive) -> check citations -> refuse when the evidence is weak.
Front ends reach it through ``index.engine``'s LlamaIndex engines, which wrap its answers in
LlamaIndex responses; nothing is formatted here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date

from index import followup
from index.cite import only_listed_markers, strip_markers
from index.conflicts import find_conflicts, state_conflicts
from index.embed import Embedder
from index.errors import QuestionError
from index.extract import Evidence, answered, pick, score_sentences, wants_more
from index.history import History, Turn, open_history
from index.identity import article_version, chunk_id
from index.latest import compose_latest, latest_topic, newest_hits
from index.models import (
    Answer,
    ArticleHit,
    Citation,
    Passage,
    Query,
    Resolved,
    citation_for,
    refusal,
)
from index.qkind import ANSWERED_BY, asked
from index.retrieve import Retriever, day_ts
from index.settings import Settings
from index.store import Store
from index.story_answer import with_reports
from index.text import terms
from index.timeline import asks_development, story_timeline, timeline_answer
from index.timeparse import parse_time_scope, strip_time_phrases

log = logging.getLogger(__name__)
WHOLE_LEADING = 12  # chunks of the top article read whole (besides those retrieved)
_SENTENCE_ENDS = frozenset(".!?…\"'”’)")
_COMPLETE = ("timeline", "latest")  # answer modes that are listings, not for an LLM to rewrite

_CITATION_REF = re.compile(r"\[(\d{1,2})\]")
# A year named in a question ("the 2025 Nobel Peace Prize", "the 2026 talks"); before a
# plural without "the" it is a count ("2000 homes").
_YEAR = re.compile(
    r"(?<![\d,.$])\b(?:(?<=the )(19[5-9]\d|20\d\d)\b|(19[5-9]\d|20\d\d)\b(?!\s+[a-z]+s\b))",
    re.IGNORECASE,
)


def validate_question(question: str, settings: Settings, *, follow_up: bool = False) -> str:
    """The question with its whitespace tidied, or ``QuestionError`` saying what is wrong;
    ``follow_up`` allows one without words to search for ("Where is it?"), which the
    conversation completes."""
    text = " ".join((question or "").split())
    if not text:
        raise QuestionError("Please ask a question in words.")
    if len(text) > settings.max_question_chars:
        raise QuestionError(
            f"That question is {len(text)} characters long; please keep it under "
            f"{settings.max_question_chars}."
        )
    no_words = not re.search(r"\w", _CITATION_REF.sub("", text))
    if not _CITATION_REF.search(text) and (no_words or (not terms(text) and not follow_up)):
        raise QuestionError("I couldn't find any words to search for in that question.")
    return text


class Answerer:
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        embedder: Embedder | None = None,
        history: History | None = None,
        llm: object | None = None,
    ) -> None:
        self.settings = settings
        self.retriever = Retriever(settings, store, embedder)
        self.history = history if history is not None else open_history(settings)
        if llm is None and settings.llm_enabled:
            from index.llm import make_llm

            llm = make_llm(settings)
        self.llm = llm

    # --- public API ---------------------------------------------------------------------------
    def ask(
        self, question: str, conversation_id: str | None = None, *, as_of: date | None = None
    ) -> Answer:
        """Answer synchronously (LLM without streaming, or offline)."""
        return self.respond(question, conversation_id, as_of=as_of)[1]

    def respond(
        self,
        question: str,
        conversation_id: str | None = None,
        *,
        as_of: date | None = None,
        k: int | None = None,
    ) -> tuple[Resolved, Answer]:
        """The answer, and what retrieval saw (``k`` articles, default ``top_k``)."""
        resolved = self.resolve(question, conversation_id, as_of=as_of, k=k)
        resolved, offline = self._settle(resolved, conversation_id, k)
        answer = self._answer(resolved, offline)
        self._remember(conversation_id, resolved, answer)
        return resolved, answer

    async def astream(
        self,
        question: str,
        conversation_id: str | None = None,
        *,
        as_of: date | None = None,
        k: int | None = None,
    ) -> AsyncIterator[str | Answer]:
        """Text deltas as they are generated, then the final checked ``Answer``."""
        import asyncio

        resolved = await asyncio.to_thread(
            self.resolve, question, conversation_id, as_of=as_of, k=k
        )
        resolved, answer = await asyncio.to_thread(self._settle, resolved, conversation_id, k)
        if self._llm_answers(resolved, answer):
            from index.llm import LLMUnavailable, stream

            try:
                final = None
                async for item in stream(self.llm, resolved, self.settings):
                    if isinstance(item, Answer):
                        final = item
                    else:
                        yield item
                answer = final or answer
            except LLMUnavailable as exc:
                log.warning("LLM unavailable, answering offline: %s", exc)
                answer.note = _offline_note(str(exc))
                yield "\n"
        else:
            yield answer.text
        answer = only_listed_markers(self._with_stories(answer, resolved))
        self._remember(conversation_id, resolved, answer)
        yield answer

    def reset(self, conversation_id: str) -> None:
        self.history.reset(conversation_id)

    # --- steps --------------------------------------------------------------------------------
    def validate(self, question: str, *, follow_up: bool = False) -> str:
        return validate_question(question, self.settings, follow_up=follow_up)

    def resolve(
        self,
        question: str,
        conversation_id: str | None = None,
        *,
        as_of: date | None = None,
        k: int | None = None,
    ) -> Resolved:
        previous = self.history.last(conversation_id) if conversation_id else None
        question = self.validate(question, follow_up=previous is not None)
        asked_for = followup.resolve(question, previous)
        standalone, offline_because = asked_for.standalone, ""
        if self.llm is not None and previous is not None and asked_for.is_follow_up:
            standalone, offline_because = self._condensed(question, previous, asked_for)
        reference = as_of or self.settings.reference_date or date.today()
        scope = parse_time_scope(standalone, reference)
        end = scope.end
        if as_of is not None:
            end = min(end, as_of) if end else as_of
        query = Query(
            text=strip_time_phrases(standalone, scope) or standalone,
            start=scope.start,
            end=end,
            reference=reference,
            recency=scope.recency,
            restrict_to=asked_for.restrict,
        )
        k = k or self.settings.top_k
        topic = latest_topic(question)
        if topic is not None:
            hits = newest_hits(self.retriever, query, topic, k=min(k, self.settings.top_k))
        else:
            hits = self._hits(query, asked_for, k)
        return Resolved(
            question,
            standalone,
            query,
            hits,
            asked_for.context,
            asked_for.already_said,
            asked_for.focus,
            as_of,
            kind=asked_for.kind,
            latest=topic,
            offline_because=offline_because,
        )

    def _condensed(
        self, question: str, previous: Turn, asked_for: followup.FollowUp
    ) -> tuple[str, str]:
        """The LLM's standalone rewrite of a follow-up, when it keeps what the offline
        resolution carried over from the previous turn; else the offline standalone, and
        why the LLM is not to answer this turn either."""
        from index.llm import condense

        rewrite = condense(self.llm, question, previous, self.settings)
        if rewrite is None:
            return asked_for.standalone, ""
        lost = followup.lost_in_rewrite(rewrite, question, asked_for)
        if not lost:
            log.debug("LLM rewrite of %r: %r", question, rewrite)
            return rewrite, ""
        log.info("LLM rewrite %r of %r %s; answering offline", rewrite, question, lost)
        # A model that cannot restate the follow-up rarely answers it: with Gemma 3 270M,
        # 5 of 28 such answers were right, against 24 of 28 offline (bench/RESULTS.md).
        return asked_for.standalone, "could not restate the follow-up"

    def _hits(self, query: Query, asked_for: followup.FollowUp, k: int) -> list[ArticleHit]:
        hits = self.retriever.retrieve(query, k=k)
        if asked_for.prior and not asked_for.restrict:
            hits = self._with_prior(query, hits, asked_for, k)
        return hits

    def _settle(
        self, resolved: Resolved, conversation_id: str | None, k: int | None = None
    ) -> tuple[Resolved, Answer]:
        """The offline answer; when the articles of a past period the question names do
        not answer it, the ones published since are read too: June's inflation is reported
        in July, last year's exports this summer."""
        answer = self._offline(resolved)
        query = resolved.query
        if not answer.refused or resolved.latest is not None:
            return resolved, answer
        if not (query.start and query.end and query.end < query.reference):
            return resolved, answer
        previous = self.history.last(conversation_id) if conversation_id else None
        asked_for = followup.resolve(resolved.question, previous)
        wider_query = replace(query, end=resolved.as_of or query.reference)
        hits = self._hits(wider_query, asked_for, k or self.settings.top_k)
        # Only a later article that names the period reports on it ("in 2021", "last
        # year"): a June 2022 story on rail workers says nothing of March 2021.
        period = period_names(query.start, query.end, query.reference)
        hits = [h for h in hits if all(p.search(_hit_text(h)) for p in period)]
        if not hits:
            return resolved, answer
        wider = replace(resolved, query=wider_query, hits=hits)
        again = self._offline(wider)
        return (resolved, answer) if again.refused else (wider, again)

    def _with_prior(
        self, query: Query, hits: list[ArticleHit], asked_for: followup.FollowUp, k: int
    ) -> list[ArticleHit]:
        """The previous turn's articles first, read for the new question, unless the
        follow-up clearly moved on to another article."""
        prior = self.retriever.retrieve(
            replace(query, restrict_to=list(asked_for.prior)), k=len(asked_for.prior)
        )
        if not prior:
            return hits
        top = next((h for h in hits if h.article_id not in asked_for.prior), None)
        if top is not None and not followup.keeps_prior(
            asked_for.focus, _hit_text(prior[0]), _hit_text(top)
        ):
            return hits
        kept = {h.article_id for h in prior}
        return (prior + [h for h in hits if h.article_id not in kept])[:k]

    def _answer(self, resolved: Resolved, offline: Answer) -> Answer:
        answer = self._answer_text(resolved, offline)
        return only_listed_markers(self._with_stories(answer, resolved))

    def _with_stories(self, answer: Answer, resolved: Resolved) -> Answer:
        """Who else reported each cited story, and where its reports disagree."""
        stories = self.retriever.stories
        with_reports(answer, stories, resolved.as_of)
        if answer.refused or answer.mode == "latest":
            return answer
        keywords = self.retriever.keyword_index()
        store = self.retriever.store
        conflicts = find_conflicts(
            resolved.focus or resolved.standalone,
            resolved.hits,
            keywords.idf(),
            lambda hit: f"{hit.title}\n{store.article_text(hit.article_id)}",
            boilerplate=keywords.boilerplate,
        )
        if conflicts:
            with_reports(state_conflicts(answer, conflicts), stories, resolved.as_of)
        return answer

    def _llm_answers(self, resolved: Resolved, answer: Answer) -> bool:
        """Whether the LLM writes this answer (else the offline ``answer`` stands, with a
        note when the LLM was passed over)."""
        if self.llm is None or answer.refused or answer.mode in _COMPLETE:
            return False  # a timeline or a "latest" listing is complete as it is
        if resolved.offline_because:
            answer.note = _offline_note(resolved.offline_because)
            return False
        return True

    def _answer_text(self, resolved: Resolved, answer: Answer) -> Answer:
        if not self._llm_answers(resolved, answer):
            return answer
        from index.llm import LLMUnavailable, complete

        try:
            return complete(self.llm, resolved, self.settings)
        except LLMUnavailable as exc:
            log.warning("LLM unavailable, answering offline: %s", exc)
            answer.note = _offline_note(str(exc))
            return answer

    def _offline(self, resolved: Resolved) -> Answer:
        if resolved.latest is not None:
            boilerplate = self.retriever.keyword_index().boilerplate
            return compose_latest(resolved.hits, resolved.latest, resolved.as_of, boilerplate)
        keyword_index = self.retriever.keyword_index()
        focus = resolved.focus or resolved.standalone
        # What the conversation already named is not the answer ("Who did they beat?").
        wanted = asked(f"{focus} {resolved.context}", resolved.kind)

        def score(hits: list[ArticleHit]) -> list[Evidence]:
            return score_sentences(
                focus,
                hits,
                keyword_index.idf(),
                context=resolved.context,
                avoid=resolved.already_said,
                boilerplate=keyword_index.boilerplate,
                asked=wanted,
            )

        evidence = score(resolved.hits)
        if wants_more(wanted, evidence) and resolved.hits:
            # The answer of the kind asked may sit in a passage retrieval did not keep:
            # read the top article whole ("She was 73." after three paragraphs).
            whole = self._whole(resolved.hits[0])
            evidence = score([whole, *resolved.hits[1:]])
        named = _named_year(resolved.standalone, resolved.query.reference)
        evidence = [
            e
            for e in evidence
            if not self._stale(e.hit, resolved.as_of) and not _predates(e.hit, named)
        ]
        confidence = evidence[0].confidence if evidence else 0.0
        if confidence < self.settings.refusal_threshold and not answered(evidence):
            return refusal(resolved.hits, question=resolved.standalone)
        if asks_development(resolved.question):
            told = self._timeline(resolved, evidence[0].hit)
            if told is not None:
                return told
        chosen = pick(evidence, typed=wanted.kind in ANSWERED_BY, alone=not resolved.context)
        return compose(chosen, resolved.standalone)

    def _timeline(self, resolved: Resolved, hit: ArticleHit) -> Answer | None:
        """ "How did X develop?": the best-matching story's reports, oldest first."""
        story = hit.story_id or self.retriever.stories.story_of(hit.article_id)
        timeline = story_timeline(self.retriever, story, as_of=resolved.as_of)
        answer = timeline_answer(timeline, resolved.question, resolved.already_said)
        if answer is not None:
            answer.mode = "timeline"  # told from the stored reports, in LLM mode too
        return answer

    def _whole(self, hit: ArticleHit) -> ArticleHit:
        """``hit`` with every passage of its article (retrieval keeps three)."""
        known = {p.chunk_id: p for p in hit.passages}
        if not known:
            return hit
        # Read by id, not by a ``where`` on the article (a scan: ~10 ms on the full feed).
        aid, version = article_version(hit.passages[0].chunk_id)
        ids = {chunk_id(aid, version, i) for i in range(WHOLE_LEADING)} | set(known)
        got = self.retriever.store.chunks.get(ids=list(ids), include=["documents", "metadatas"])
        floor = min((p.dense for p in hit.passages), default=0.0)
        passages = [
            known.get(cid) or Passage(cid, doc or "", int((meta or {}).get("position", 0)), floor)
            for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"])
        ]
        passages.sort(key=lambda p: p.position)
        # A live-update page runs to hundreds of sentences: the answer a news report gives
        # sits near its top or beside what retrieval found, so only those are read.
        kept = {p.chunk_id for p in passages[:WHOLE_LEADING]} | set(known)
        return replace(hit, passages=[p for p in passages if p.chunk_id in kept])

    def _stale(self, hit: ArticleHit, as_of: date | None) -> bool:
        """Asked as of a day, a question is about that day's news: years-old articles
        may share its words but not its events."""
        if as_of is None or not self.settings.stale_after_days or hit.published_ts < 0:
            return False
        age_days = (day_ts(as_of) - hit.published_ts) / 86_400
        return age_days > self.settings.stale_after_days

    def _remember(self, conversation_id: str | None, resolved: Resolved, answer: Answer) -> None:
        answer.question = resolved.standalone
        if conversation_id:
            self.history.add(
                conversation_id,
                Turn(
                    question=resolved.question,
                    standalone=resolved.standalone,
                    answer=answer.text,
                    citations=answer.citations,
                    refused=answer.refused,
                    created=0.0,
                    see_also=answer.see_also,
                ),
            )


def _offline_note(reason: str) -> str:
    return f"LLM unavailable ({reason}); offline answer shown."


def _named_year(question: str, reference: date | None) -> int | None:
    """The latest past-or-current year the question names: an article from before it cannot
    report that year's events. (A future year asks about plans, which older articles can.)"""
    years = [int(a or b) for a, b in _YEAR.findall(question)]
    past = [y for y in years if reference is None or y <= reference.year]
    return max(past) if past else None


def period_names(start: date, end: date, reference: date) -> list[re.Pattern[str]]:
    """What an article written later says to name the period ``start``..``end``: one of
    its years when they are past ("2021", or "last year"), and one of its months when it is
    a single month or a span of months of this year ("in June", "this spring")."""
    out = []
    if end.year < reference.year:
        years = "|".join(str(y) for y in range(start.year, end.year + 1))
        last = "|last year" if end.year == reference.year - 1 else ""
        out.append(re.compile(rf"\b(?:{years}{last})\b", re.IGNORECASE))
    one_month = (start.year, start.month) == (end.year, end.month)
    if one_month or not out:
        months, day = [], date(start.year, start.month, 1)
        while day <= end and len(months) < 12:
            months.append(f"{day:%B}")
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        out.append(re.compile(rf"\b(?:{'|'.join(months)})\b"))
    return out


def _predates(hit: ArticleHit, year: int | None) -> bool:
    return year is not None and 0 <= hit.published_ts < day_ts(date(year, 1, 1))


def _hit_text(hit: ArticleHit) -> str:
    return " ".join([hit.title, *(p.text for p in hit.passages)])


def compose(chosen: list[Evidence], standalone: str) -> Answer:
    """Join the chosen sentences, each with its article's [n], numbered by first use."""
    numbers: dict[str, int] = {}
    citations: list[Citation] = []
    parts: list[str] = []
    for ev in chosen:
        aid = ev.hit.article_id
        sentence = strip_markers(ev.sentence)  # the article's own "[9]" is not a citation
        if aid not in numbers:
            numbers[aid] = len(numbers) + 1
            citations.append(citation_for(numbers[aid], ev.hit, sentence))
        # A headline quoted as a sentence ends like one: "... title since 2001. [1]"
        end = "" if sentence.rstrip()[-1:] in _SENTENCE_ENDS else "."
        parts.append(f"{sentence.rstrip()}{end} [{numbers[aid]}]")
    # The answer sentence opens the reply; the sources footer carries the headline.
    return Answer(text=" ".join(parts), citations=citations, question=standalone)
