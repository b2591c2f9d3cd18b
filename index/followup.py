"""Follow-up questions, resolved against the conversation without an LLM.

People chat: "Who won the chess championship?" then "How old is she?", "And the men's?",
"tell me more about [2]". A follow-up is resolved against the previous turn:

- "tell me more about [n]" is about the article the previous turn listed as [n], cited or
  under "See also" beside a refusal;
- a pronoun (she, it, they, there...) points at the previous turn's entity: the name it
  answered with ("Mira Okafor"), else the name its question was about;
- an ellipsis ("And worldwide so far?", "How many?") reuses the previous question's frame:
  its topic (weighted lower) and the kind of answer it asked for;
- the previous turn's articles are read first (a strong prior), unless the follow-up names
  something they do not mention and another article does (checked after retrieval, by
  ``keeps_prior``): follow-ups in a chat mostly stay on the story, and a follow-up's few
  words ("How old is she?") would otherwise match any article with an age in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from index.history import Turn
from index.qkind import Kind, answers, asked, names, question_kind
from index.text import sentences, terms

CONTEXT_CHARS = 300  # carried topic is capped, so a long conversation cannot snowball
NEW_TOPIC_MARGIN = 0.3  # how much better another article must cover a follow-up's words
_CITATION_REF = re.compile(r"\[(\d{1,2})\]")
_MORE = re.compile(r"\bmore\b|\babout\b|\bdetail|\bexpand|\bsay\b", re.IGNORECASE)
_OPENER = re.compile(
    r"^(and|but|so|also|what about|how about|why|tell me more|more on|more about|what else)\b",
    re.IGNORECASE,
)
# Pronouns only mark a follow-up in a short question: "this week" or "it" inside a full
# question ("Which company said this week it would...") stand on their own.
_PRONOUN = re.compile(
    r"\b(he|she|it|they|them|him|his|her|its|their|this|that|those|these|there|then|"
    r"the other side)\b",
    re.IGNORECASE,
)
_TIME_PHRASE = re.compile(
    r"\b(?:this|that|these|those) (?:week|month|year|morning|afternoon|evening|weekend|day)s?\b",
    re.IGNORECASE,
)
# "Which other state besides Florida was hit?", "Who else was arrested?": the question
# names one thing but asks about the rest of what the previous turn was about.
_BESIDES = re.compile(r"\b(?:other|else|besides|another|apart from|aside from)\b", re.I)
_NAME_KINDS = (Kind.PERSON, Kind.NAME, Kind.PLACE)


@dataclass
class FollowUp:
    """How to answer a question in its conversation."""

    standalone: str  # what retrieval searches for
    focus: str  # what the chosen sentences must answer
    context: str = ""  # the earlier topic: its words count less
    kind: Kind | None = None  # answer kind carried over by an elliptic follow-up
    restrict: list[str] | None = None  # "tell me more about [n]": that article only
    prior: tuple[str, ...] = ()  # the previous turn's articles, read first
    already_said: frozenset[str] = frozenset()  # quotes the previous answer used

    @property
    def is_follow_up(self) -> bool:
        return bool(self.context or self.restrict)


def resolve(question: str, previous: Turn | None) -> FollowUp:
    """The question as it stands in the conversation (``previous``: the last turn)."""
    if previous is None:
        return FollowUp(question, question)
    said = frozenset(c.quote for c in previous.citations if c.quote)
    ref = _CITATION_REF.search(question)
    if ref:
        listed = [*previous.citations, *previous.see_also]
        cited = [c for c in listed if c.n == int(ref.group(1)) and c.article_id]
        if cited and (_MORE.search(question) or not terms(_CITATION_REF.sub("", question))):
            title = cited[0].title
            topic = _CITATION_REF.sub("", question).strip()
            return FollowUp(
                f"{topic} {title}".strip(),
                title,
                restrict=[cited[0].article_id],
                already_said=said,
            )
    prior = tuple(dict.fromkeys(c.article_id for c in previous.citations if c.article_id))
    if not is_dependent(question):
        return FollowUp(question, question, prior=prior)
    # The entity a pronoun points at joins the earlier topic: it says which story, while
    # the follow-up's own words say what is asked about it.
    entity = previous_entity(previous) if _PRONOUN.search(question) else ""
    context = f"{entity} {previous.standalone}".strip()[:CONTEXT_CHARS]
    own = question_kind(question)
    return FollowUp(
        standalone=f"{question} {context}",
        focus=question,
        context=context,
        kind=question_kind(previous.question) if own is Kind.OTHER else own,
        prior=prior,
        already_said=said,
    )


def is_dependent(question: str) -> bool:
    """Whether the question leans on the previous turn: an opener ("And ..."), or too few
    words or a pronoun in a short question that names nothing itself ("Liz Truss is
    quitting. Who ... before her?" names whom "her" means)."""
    parts = sentences(question) or [question]
    asked_part = _TIME_PHRASE.sub("", parts[-1])
    if _OPENER.search(question) or _BESIDES.search(asked_part):
        return True
    pronoun = _PRONOUN.search(asked_part)
    # A name of its own makes a short question stand alone ("What is the capital of
    # France?"), and a preamble that names someone resolves the question's pronouns.
    named_here = bool(names(asked_part)) and not pronoun
    if named_here or (len(parts) > 1 and names(" ".join(parts[:-1]))):
        return False
    return len(terms(question)) <= 2 or bool(pronoun and len(terms(asked_part)) <= 4)


def previous_entity(previous: Turn) -> str:
    """Who or what the previous turn was about: the name it answered with, else the first
    name its question gave."""
    kind = question_kind(previous.question)
    if kind in _NAME_KINDS and not previous.refused:
        lead = _CITATION_REF.split(previous.answer, maxsplit=1)[0]
        spans = answers(asked(previous.standalone, kind), lead)
        if spans:
            return spans[0].text
    spans = names(previous.question)
    # The question's first word is capitalised anyway ("Who", "Which"): names() drops it.
    return spans[0].text if spans else ""


def keeps_prior(question: str, prior_text: str, top_text: str) -> bool:
    """Keep reading the previous turn's articles, unless the follow-up clearly moves on:
    it names something they do not mention while the best other article does, or, with no
    pronoun or opener tying it to the last turn, another article covers its words much
    better. (A pronoun's question's few words decide nothing: "How old are they?" about
    tracks "113 million years" old must not move to an article saying "600 years old".)"""
    own = set(terms(question))
    if not own:
        return True
    prior_terms, top_terms = set(terms(prior_text)), set(terms(top_text))
    named = set(terms(" ".join(s.text for s in names(question))))
    missing = named - prior_terms
    if missing and missing & top_terms:
        return False
    if _OPENER.search(question) or _PRONOUN.search(question) or _BESIDES.search(question):
        return True
    share = len(own & prior_terms) / len(own)
    return len(own & top_terms) / len(own) - share < NEW_TOPIC_MARGIN


def lost_in_rewrite(rewrite: str, question: str, resolved: FollowUp) -> str:
    """Why an LLM's standalone ``rewrite`` of the follow-up ``question`` cannot stand in
    for the offline resolution ``resolved``, or "" when it can. The offline standalone is
    the follow-up's own words plus what it carries over from the previous turn (the name
    "she" stands for, the earlier question's topic, the title of the article [n] lists); a
    rewrite must keep some of both."""
    # A small model often echoes the follow-up ("How old is she?"), rewrites the previous
    # question instead, or asks about something else: retrieval and the answer then lose
    # what the conversation is about, and later turns lose it too.
    own = set(terms(question))
    kept = set(terms(rewrite))
    # "tell me more about [2]" asks for an article, not about its own words.
    if own and not own & kept and not resolved.restrict:
        return f"drops the follow-up's own words ({', '.join(sorted(own))})"
    carried = set(terms(resolved.standalone)) - own
    if carried and not carried & kept:
        said = resolved.context or resolved.focus
        return f"drops what it refers to ({said[:CONTEXT_CHARS]})"
    return ""
