"""Offline answers: pick the one to three sentences that best answer the question.

A sentence scores by how much of the question's (IDF-weighted) content it covers, by how
close its passage is to the question in embedding space, and by its article's rank. The top
two stories are read, the top one in all its retrieved reports (``reading_order``); a
digest ("5 things to know") is read too but demoted, so the report it summarises is cited. Names
from the question that the article's headline already carries count less inside that
article: it is about them throughout, and its sentences say "both countries" or "she". The
best sentence opens the answer; up to two more, from other angles, follow in reading order.
No LLM is involved, so the quote shown for each citation is exactly the sentence used.

A question that asks for a kind of answer (who, when, where, how many, how old, which X;
``index.qkind``) prefers sentences that hold one: "Councillor Ada Brandt voted against"
over "The council voted 7 to 2 to approve the bridge", which only repeats the question.
And such a sentence in the top article, beside the question's key terms, is an answer even
when its overall score is modest (``answered``): "Who attended?" must not be refused.
Among names, the one the top story's reports repeat leans ahead (``_corroborate``): the
winner is named again and again, a rival or a quoted analyst once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from index.bm25 import sentence_key
from index.models import ArticleHit
from index.qkind import (
    ANSWERED_BY,
    Asked,
    Kind,
    Span,
    answers,
    counts,
    near,
    paired,
    places_in,
    without_kind_words,
)
from index.text import sentences, terms

MAX_SENTENCES = 3
ARTICLES_READ = 2  # stories read (digests aside); calibrated on dev data: precision vs. accuracy
REPORTS_READ = 3  # other reports of the top story read beside its lead (other outlets' wording)
RANK_WEIGHT = 0.25  # the best-ranked story's sentences first, unless another's say much more
RANK_EVIDENCE = 0.15  # the part of that which counts as evidence (the refusal threshold's)
DIGEST_PENALTY = 0.3  # a roundup's sentence, behind the report it summarises
NEGATED_PENALTY = 0.1  # a sentence that denies what the question states
CAPTION_PENALTY = 0.15  # a photo caption or a link to another story: not this report's say
# A link to another story set inside the text: "►Related: Google Trends lists ...",
# "NEW WEBB PHOTOS:NASA releases ...", "Highest rate of inflation in 40 years:New level ..."
_LINK_IN = re.compile(
    r"^\s*(?:[►▶»>]|(?:related|read more|more|see also|watch|listen)\b\s*:)|[a-z0-9'’]:[A-Z]",
    re.IGNORECASE,
)
# "John Raoux/AP The SpaceX Falcon 9 rocket ...", "... Puerto Rico RICARDO ARDUENGO/REUTERS"
_PHOTO_CREDIT = re.compile(
    r"[A-Za-z.]/(?:[A-Z0-9]+/)?(?:AP|AFP|Reuters|REUTERS|Getty(?: Images)?|Shutterstock|EPA|"
    r"Bloomberg|Sipa|NurPhoto|Anadolu|Zuma|ZUMA|Pool|POOL|USA TODAY|The Washington Post|"
    r"Kobal|Alamy|NASA|AP Photo)\b"
)
_NEGATION = re.compile(
    r"(?:\b(?:not|never|no|without)\b|n['’]t\b)\s*((?:[\w'’-]+\s+){0,2}[\w'’-]+)", re.I
)
DEFAULT_IDF = 4.0
ENTITY_WEIGHT = 0.3  # a question's names, inside an article whose headline carries them
PREMISE_SHARE = 0.3  # words only of the sentences before the one that asks (calibrated on dev)
CONTEXT_SHARE = 0.5  # carried topic's weight, at most, against the follow-up's own words
KIND_WEIGHT = 0.2  # a sentence holding an answer of the kind asked for
HEADLINE_PENALTY = 0.2  # a headline competes as a sentence, behind the text's own
KEY_COVERAGE = 0.4  # share of the question's words beside a typed answer that makes it one
CORROBORATION_WEIGHT = 0.15  # the name the read sentences repeat most (``_corroborate``)
CORROBORATION_MIN = 2  # sentences: a name said once corroborates nothing
CORROBORATED = frozenset({Kind.NAME, Kind.PERSON, Kind.NUMBER})  # places, dates: see RESULTS
SAID_COVERAGE = 0.4  # share of a follow-up's words that makes a said sentence worth repeating
SHORT_SENTENCE = 12  # words: a pronoun-led sentence this short leans on the one before
# A headline quoted as an answer drops its outlet: "Instagram fined $400 million | CNN Business"
_OUTLET_TAIL = re.compile(r"\s+(?:[|]|-|–)\s+(?:CNN\w*|USA TODAY|The Week)\b[\w ]*$")
_LEANS_BACK = re.compile(r"(?:He|She|It|They|His|Her|Its|Their|That|This)\b")
_NAME = re.compile(r"[A-Za-z][\w'’\-]*")
_YEAR = re.compile(r"(?:19|20)\d\d")


@dataclass
class Evidence:
    sentence: str
    hit: ArticleHit
    rank: int  # the article's rank in retrieval
    order: tuple[int, int]  # (passage position, sentence index): reading order in the article
    coverage: float  # share of the question's own IDF mass (not the carried topic's) it holds
    score: float
    typed: bool = False  # holds an answer of the kind the question asks for
    bonus: float = 0.0  # what that added to the score

    lean: float = 0.0  # what only orders sentences: the top story's lead, a digest's demotion
    corroborated: bool = False  # holds the name the top story's sentences repeat most

    @property
    def confidence(self) -> float:
        """The score without the kind bonus (a name or number alone is no evidence) and
        without the ``lean`` (a roundup's sentence is still evidence, a rank is not)."""
        return self.score - self.bonus - self.lean


def question_weights(question: str, idf: dict[str, float], context: str = "") -> dict[str, float]:
    """IDF weight per question term; terms carried over from earlier turns count less, and
    all of them together at most half as much as the question's own: "How much did it
    cost?" is about the cost, whatever the earlier turns said about the library. Words
    only of the sentences before the one that asks (the scene it sets) count less too."""
    # A year says when, not what: "the 2025 Nobel Peace Prize" is not covered by an
    # article that merely mentions 2025 (``answer._named_year`` checks the when).
    own = {t: idf.get(t, DEFAULT_IDF) for t in set(terms(question)) if not _YEAR.fullmatch(t)}
    # "Aaron Judge hit his 62nd home run this week. Who holds the record with 73?": the
    # sentences before the one that asks set the scene; an article restating them does
    # not answer the question.
    parts = sentences(question)
    if len(parts) > 1 and parts[-1].rstrip().endswith("?"):
        asking = set(terms(parts[-1]))
        own = {t: w if t in asking else w * PREMISE_SHARE for t, w in own.items()}
    carried = {t: 0.3 * idf.get(t, DEFAULT_IDF) for t in set(terms(context)) - set(own)}
    cap = CONTEXT_SHARE * sum(own.values())
    total = sum(carried.values())
    if own and total > cap:
        carried = {t: w * cap / total for t, w in carried.items()}
    return carried | own


def entity_terms(question: str) -> set[str]:
    """Stems of the question's capitalised words (its names), its first word aside."""
    names = [w for i, w in enumerate(_NAME.findall(question)) if i and w[0].isupper()]
    return set(terms(" ".join(names)))


def coverage(text_terms: set[str], weights: dict[str, float]) -> float:
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    return sum(w for t, w in weights.items() if t in text_terms) / total


def score_sentences(
    question: str,
    hits: list[ArticleHit],
    idf: dict[str, float],
    *,
    context: str = "",
    avoid: frozenset[str] = frozenset(),
    boilerplate: frozenset[str] = frozenset(),
    asked: Asked | None = None,
) -> list[Evidence]:
    """Rank candidate sentences; ``context`` is the earlier topic of a follow-up, ``avoid``
    holds sentences already given (a follow-up wants something new), and ``asked`` says
    what kind of answer the question wants."""
    # "How old", "what year": the kind's own words are not the topic to look for.
    topic = without_kind_words(question) if asked else question
    weights = question_weights(topic, idf, context)
    asked_own = question_weights(topic, idf)  # the question's own words, for ``answered``
    names = entity_terms(question)
    # "Borrowers who received Pell grants": a sentence on those who "did not receive" one
    # shares the words but not the case (unless the question itself negates).
    affirmed = frozenset() if _NEGATION.search(question) else frozenset(asked_own)
    out: list[Evidence] = []
    found: list[tuple[Evidence, list[Span], set[str]]] = []  # for ``_corroborate``
    said = {a.lower() for a in avoid}
    seen: set[str] = set()
    for rank, hit in reading_order(hits):
        title_terms = set(terms(hit.title))
        given = names & title_terms
        own = {t: w * ENTITY_WEIGHT if t in given else w for t, w in weights.items()}
        places = places_in(" ".join(p.text for p in hit.passages)) if asked else frozenset()
        candidates = [
            (sentence, passage.position, i, passage.dense)
            for passage in hit.passages
            for i, sentence in enumerate(with_antecedents(sentences(passage.text)))
        ]
        if asked and asked.kind in ANSWERED_BY and hit.passages:
            # A headline can carry the answer no sentence repeats ("..., dead at 73").
            best_dense = max(p.dense for p in hit.passages)
            headline = _OUTLET_TAIL.sub("", hit.title).strip()
            candidates.append((headline, -1, 0, best_dense - HEADLINE_PENALTY))
        for sentence, position, i, dense in candidates:
            key = sentence.lower()
            n_words = len(sentence.split())
            if key in seen or n_words < 3 or n_words > 80:
                continue
            if boilerplate and sentence_key(sentence) in boilerplate:
                continue
            seen.add(key)
            spans = answers(asked, sentence, places) if asked else []
            typed = bool(spans)
            # An answer beside the question's key terms counts fully, one elsewhere half;
            # for "how many X", a number of X ("2,532 book bans", not "50 groups").
            bonus = 0.0
            if spans:
                if asked.counted and asked.kind is Kind.NUMBER:
                    close = any(counts(asked, sentence, span) for span in spans)
                else:
                    close = any(near(asked, sentence, span) for span in spans)
                # "Which two supermarkets": one name alone is half the answer.
                close = close and (not asked.pair or paired(sentence, spans))
                bonus = KIND_WEIGHT if close else KIND_WEIGHT / 2
            # Short sentences say little on their own, unless they hold the answer ("She
            # was 73."); and a follow-up wants something new, unless the sentence said
            # already holds the answer to its new question ("How old is she?") or is about
            # what it asks ("How did he send in his resignation?": "... before emailing
            # his resignation").
            if (n_words < 5 or position < 0) and not typed:
                continue
            sentence_terms = set(terms(sentence))
            cov = coverage(sentence_terms, asked_own)
            if key in said and not typed and cov < SAID_COVERAGE:
                continue
            # The article's title gives context the sentence leaves implicit ("it", "he").
            context_cov = coverage(sentence_terms | title_terms, weights)
            lean = (
                (RANK_WEIGHT - RANK_EVIDENCE) / (1 + rank)
                - (DIGEST_PENALTY if hit.digest else 0.0)
                - (NEGATED_PENALTY if negates(sentence, affirmed) else 0.0)
                - (CAPTION_PENALTY if _furniture(sentence) else 0.0)
            )
            score = (
                0.6 * coverage(sentence_terms, own)
                + 0.2 * context_cov
                + 0.25 * max(dense, 0.0)
                + RANK_EVIDENCE / (1 + rank)
                + bonus
                + lean
                - (0.05 if sentence.endswith("?") else 0.0)
            )
            out.append(Evidence(sentence, hit, rank, (position, i), cov, score, typed, bonus, lean))
            found.append((out[-1], spans, sentence_terms))
    # A follow-up asks a detail of a story whose central names the conversation has given.
    if asked and asked.kind in CORROBORATED and not context:
        # The top story's reports corroborate each other; another story is another event,
        # and a digest's roundup sentence is no report of it.
        reports = [f for f in found if not f[0].hit.digest]
        lead = min((f[0].rank for f in reports), default=0)
        _corroborate(asked, [f for f in reports if f[0].rank == lead])
    out.sort(key=lambda e: e.score, reverse=True)
    return out


def _corroborate(asked: Asked, found: list[tuple[Evidence, list[Span], set[str]]]) -> None:
    """Raise the sentences holding the name that most of the read sentences repeat: the
    team that won is named again and again in the story's reports, the rival or the
    analyst quoted beside the question's words once or twice (redundancy, as in
    answer-mining QA). Only orders sentences: it goes to the lean, not the confidence."""
    said_in: dict[str, set[int]] = {}  # term -> the sentences that hold it
    for n, (_, _, sentence_terms) in enumerate(found):
        for term in sentence_terms:
            said_in.setdefault(term, set()).add(n)
    keys = [[_key(asked, s) for s in spans] for _, spans, _ in found]
    support: dict[frozenset[str], int] = {}
    for key in (k for ks in keys for k in ks if k and k not in support):
        # "The Avalanche" repeats "Colorado Avalanche": a name counts as often as its
        # most repeated word (not all its words together: a long run would gather more).
        support[key] = max(len(said_in.get(t, ())) for t in key)
    top = max(support.values(), default=0)
    if top < CORROBORATION_MIN:
        return
    for (evidence, _, _), ks in zip(found, keys, strict=True):
        best = max((support.get(k, 0) for k in ks), default=0)
        evidence.score += CORROBORATION_WEIGHT * best / top
        evidence.lean += CORROBORATION_WEIGHT * best / top
        evidence.corroborated = best == top


def _key(asked: Asked, span: Span) -> frozenset[str]:
    """The words by which a span is found again: a figure by its digits ("$25 billion" is
    not repeated by "$500 million")."""
    words = frozenset(terms(span.text)) - asked.terms
    if span.kind is Kind.NUMBER:
        return frozenset(w for w in words if any(c.isdigit() for c in w))
    return words


def _furniture(sentence: str) -> bool:
    """A photo caption with its credit, or a link to another story."""
    return bool(_PHOTO_CREDIT.search(sentence) or _LINK_IN.search(sentence))


def negates(sentence: str, wanted: frozenset[str]) -> bool:
    """Whether the sentence puts "not", "never", "no" or "without" right before one of the
    question's words ("if they did not receive a Pell grant")."""
    if not wanted or not _NEGATION.search(sentence):
        return False
    return any(set(terms(m.group(1))) & wanted for m in _NEGATION.finditer(sentence))


def reading_order(hits: list[ArticleHit]) -> list[tuple[int, ArticleHit]]:
    """The articles whose sentences are scored, each with its rank: the first
    ``ARTICLES_READ`` stories that are not digests (a digest ranked before them is read too,
    demoted: it often words the question best, but the report it summarises is the source),
    and beside the top story's lead, up to ``REPORTS_READ`` of its other retrieved reports,
    at the lead's rank: another outlet may state the answer the lead only implies."""
    out: list[tuple[int, ArticleHit]] = []
    stories = 0
    for rank, hit in enumerate(hits):
        if stories >= ARTICLES_READ:
            break
        stories += not hit.digest
        out.append((rank, hit))
        if rank == 0:
            out.extend((rank, report) for report in hit.reports[:REPORTS_READ])
    return out


def wants_more(asked: Asked, evidence: list[Evidence]) -> bool:
    """A question of a typed kind that the sentences at hand do not answer (``answered``):
    worth reading the rest of the top article."""
    return asked.kind in ANSWERED_BY and not answered(evidence)


def with_antecedents(parts: list[str]) -> list[str]:
    """Sentences, each short one that opens with a pronoun joined to the one before it:
    "She was 73." says whose age only with "Olivia Newton-John ... died on Monday." """
    out: list[str] = []
    for sentence in parts:
        if out and _LEANS_BACK.match(sentence) and len(sentence.split()) <= SHORT_SENTENCE:
            out.append(f"{out[-1]} {sentence}")
        else:
            out.append(sentence)
    return out


def answered(evidence: list[Evidence]) -> bool:
    """The best sentence comes from the top article, holds an answer of the kind asked for
    and sits beside the question's key terms: an answer, however modest its score."""
    best = evidence[0] if evidence else None
    return best is not None and best.rank == 0 and best.typed and best.coverage >= KEY_COVERAGE


def pick(
    evidence: list[Evidence],
    max_sentences: int = MAX_SENTENCES,
    *,
    typed: bool = False,
    alone: bool = False,
) -> list[Evidence]:
    """The best sentence, plus up to two more that are nearly as good and say something new.
    ``typed``: the question asks for a kind of answer. When the best sentence holds none
    beside the question's words, the best one of its article that does follows it (or, if
    the best holds none at all, the best that holds one anywhere): news often says the
    specifics a sentence after the lede that matched the question's words. Then the
    sentence holding an answer opens, and the lede follows it. ``alone``: the answer is
    read without a conversation before it, so it does not open with "He" or "That number"."""
    if not evidence:
        return []
    chosen = [evidence[0]]
    if typed and evidence[0].bonus < KIND_WEIGHT:
        same = [e for e in evidence[1:] if e.typed and e.hit is evidence[0].hit]
        holder = next((e for e in same if e.bonus >= KIND_WEIGHT), None)
        if holder is None and not evidence[0].typed:
            holder = next(iter(same), None)
        if holder is not None:
            chosen.append(holder)
    if typed and not evidence[0].corroborated and len(chosen) == 1:
        # The best sentence names someone else: the name the story repeats follows it.
        holder = next(
            (e for e in evidence[1:] if e.corroborated and e.hit is evidence[0].hit), None
        )
        if holder is not None:
            chosen.append(holder)
    # Beside the best, for a typed question, sentences that hold an answer of the kind
    # asked say more than ones that restate its topic: they are considered first.
    rest = sorted(evidence[1:], key=lambda e: not e.typed) if typed else evidence[1:]
    for candidate in rest:
        if len(chosen) >= max_sentences:
            break
        if candidate.score < 0.75 * evidence[0].score:
            continue
        if any(candidate is c for c in chosen):
            continue
        # Quote one article: measured on dev data, a second article's sentence was more
        # often a distractor than a help (citation precision 0.87 -> 0.92).
        if candidate.hit is not evidence[0].hit:
            continue
        new_terms = set(terms(candidate.sentence))
        if any(_jaccard(new_terms, set(terms(c.sentence))) > 0.5 for c in chosen):
            continue
        # A short sentence joined to the one after it (``with_antecedents``) holds it whole.
        if any(_contains(candidate.sentence, c.sentence) for c in chosen):
            continue
        chosen.append(candidate)
    # The answer first; what else is said follows in the article's own reading order.
    out = chosen[:1] + sorted(chosen[1:], key=lambda e: (e.rank, e.order))
    if typed and not out[0].typed:
        # The best match of the question's words holds no answer of the kind asked (it
        # restates the topic): the sentence that holds one opens, the match follows.
        lead = next((e for e in out if e.typed), None)
        if lead is not None:
            out = [lead] + [e for e in out if e is not lead]
    if alone and _LEANS_BACK.match(out[0].sentence):
        # "He had been in Maldives ..." leans on a sentence the reader has not seen (in a
        # conversation, the previous answer is that sentence): one that names its subject
        # opens instead, if one was chosen.
        lead = next(
            (e for e in out if not _LEANS_BACK.match(e.sentence) and (e.typed or not typed)),
            None,
        )
        if lead is not None:
            out = [lead] + [e for e in out if e is not lead]
    return out


def _contains(a: str, b: str) -> bool:
    return a in b or b in a


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(len(a | b), 1)
