"""Small text utilities shared by the extractive answerer and the citation checker."""

from __future__ import annotations

import re

import Stemmer

_STEM = Stemmer.Stemmer("english")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-]*")
# A sentence ends at . ! ? (optionally followed by a closing quote/bracket) before a capital,
# digit or opening quote. Good enough for news prose and much faster than a model.
_SENT_END = re.compile(r"(?<=[.!?])[\"”’)\]]?\s+(?=[\"“‘(\[]?[A-Z0-9])")
_ABBREV = re.compile(
    r"\b(?:Mr|Mrs|Ms|Dr|Prof|Sen|Rep|Gov|Gen|Lt|Col|Sgt|St|Jr|Sr|Inc|Co|Corp|Ltd|No|vs|U\.S|U\.K|a\.m|p\.m|Jan|Feb|Mar|Apr|Aug|Sept|Sep|Oct|Nov|Dec)\.$"
)

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "aren't",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "also",
        "said",
        "says",
        "say",
        "according",
        "one",
        "two",
        "new",
        "recently",
        "recent",
        "week",
        "weeks",
        "this",
        "last",
        "year",
        "years",
        "month",
        "months",
        "day",
        "days",
        "today",
        "yesterday",
        "many",
        "much",
        "might",
        "may",
        'us".split()',
    ]
)


def sentences(text: str) -> list[str]:
    """Split prose into sentences, keeping abbreviations like 'Dr.' and 'U.S.' intact."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n|\n(?=[A-Z•\-*])", text):
        block = " ".join(block.split())
        if not block:
            continue
        start = 0
        for match in _SENT_END.finditer(block):
            piece = block[start : match.start()]
            if _ABBREV.search(piece.rstrip('"”’)]')):
                continue
            out.append(block[start : match.end()].strip())
            start = match.end()
        out.append(block[start:].strip())
    return [s for s in out if s]


def words(text: str) -> list[str]:
    return [w.lower().strip("'’-") for w in _WORD.findall(text)]


def terms(text: str) -> list[str]:
    """Content-word stems: lower-cased, stopwords dropped, Snowball-stemmed."""
    return _STEM.stemWords([w for w in words(text) if w not in STOPWORDS and len(w) > 1])
