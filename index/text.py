"""Small text utilities shared by the extractive answerer and the citation checker."""

from __future__ import annotations

import re
from functools import lru_cache

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
    # "U.S." and "U.K." are the words "US" and "UK", not single letters.
    text = _DOTTED.sub(lambda m: m.group(0).replace(".", ""), text)
    return [w.lower().strip("'’-") for w in _WORD.findall(text)]


_DOTTED = re.compile(r"\b(?:[A-Z]\.){2,3}(?![A-Za-z])")


def terms(text: str) -> list[str]:
    """Content-word stems: lower-cased, one spelling per word, stopwords dropped, stemmed."""
    if len(text) > _CACHED_TEXT:
        return _stems(text)
    return list(_short_terms(text))


# Answering stems the same words and sentences again and again (scoring, answer typing,
# nearness), so short texts' stems are kept; long ones (whole chunks while indexing) are
# not, which bounds the cache to a few MB.
_CACHED_TEXT = 300


@lru_cache(maxsize=1 << 15)
def _short_terms(text: str) -> tuple[str, ...]:
    return tuple(_stems(text))


def _stems(text: str) -> list[str]:
    found = words(text)
    out = [_stem(w) for w in found if w not in STOPWORDS and len(w) > 1]
    # A compound also counts as its word parts: "7.0-magnitude quake" answers "what was
    # the magnitude", "single-season record" matches "the record for a single season",
    # "Covid-19" matches "Covid" (not "19": a bare figure would match any other).
    parts = [p for w in found if "-" in w for p in w.split("-")]
    return out + [_stem(p) for p in parts if p.isalpha() and len(p) > 2 and p not in STOPWORDS]


@lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    # Per word: new sentences are mostly known words (half the cost of stemming them).
    word = _american(word)
    return _STEM.stemWord(_DEMONYMS.get(word, word))


def one_spelling(text: str) -> str:
    """Lower-cased ``text`` with British spellings made American ("defence" -> "defense"),
    so that a question and an article match whichever side of the Atlantic wrote them. The
    stemmer does not do this: "defence" and "defense" stem differently."""
    return _LETTERS.sub(lambda m: _SPELLING.get(m.group(0), m.group(0)), text.lower())


def _american(word: str) -> str:
    base, possessive = (word[:-2], word[-2:]) if word.endswith(("'s", "’s")) else (word, "")
    return _SPELLING.get(base, base) + possessive


def _spellings() -> dict[str, str]:
    """British -> American for common news words: whole words and regular families."""
    table = dict(
        pair.split(":")
        for pair in _listed(
            "defence:defense defences:defenses offence:offense offences:offenses "
            "licence:license licences:licenses pretence:pretense programme:program "
            "programmes:programs centre:center centres:centers centred:centered "
            "theatre:theater theatres:theaters metre:meter metres:meters litre:liter "
            "litres:liters fibre:fiber calibre:caliber manoeuvre:maneuver "
            "manoeuvres:maneuvers catalogue:catalog dialogue:dialog analogue:analog "
            "grey:gray jewellery:jewelry ageing:aging judgement:judgment "
            "judgements:judgments enquiry:inquiry enquiries:inquiries sceptic:skeptic "
            "sceptical:skeptical scepticism:skepticism artefact:artifact artefacts:artifacts "
            "paediatric:pediatric paediatrician:pediatrician anaesthetic:anesthetic "
            "haemorrhage:hemorrhage oestrogen:estrogen foetus:fetus diarrhoea:diarrhea "
            "mould:mold plough:plow aluminium:aluminum"
        )
    )
    for stem in _listed(
        "colour favour honour labour neighbour behaviour harbour rumour humour flavour armour "
        "endeavour vapour savour parlour valour vigour rigour splendour odour tumour fervour "
        "candour ardour clamour"
    ):
        for end in ("", "s", "ed", "ing", "ite", "ites", "able", "ful", "er", "ers", "al", "hood"):
            table[stem + end] = stem[:-3] + "or" + end
    for stem in _listed(
        "organ recogn real apolog critic author priorit categor character civil colon final "
        "legal mobil modern neutral normal optim penal privat standard stabil subsid summar util "
        "visual hospital minim maxim capital central global immun national polar sanit special "
        "sympath terror memorial digital criminal jeopard scrutin monopol industrial urban "
        "synchron symbol familiar emphas energ hypothes fantas patron agon steril decriminal "
        "destabil revolution harmon"
    ):
        for end in ("e", "ed", "es", "ing", "ation", "ations", "er", "ers"):
            table[stem + "is" + end] = stem + "iz" + end
    for stem in ("anal", "paral", "catal"):
        for end in ("e", "ed", "ing"):
            table[stem + "ys" + end] = stem + "yz" + end
    for word in _listed("travel cancel model label fuel signal counsel level total channel"):
        for end in ("led", "ling", "ler", "lers", "lor", "lors"):
            table[word + end] = word + end[1:]
    return table


def _listed(words: str) -> list[str]:
    return words.split()


_LETTERS = re.compile(r"[a-z]+")
_SPELLING = _spellings()
# A people's or a place's adjective is the place: "the Russian army" is "Russia's army",
# "British prime minister" answers "prime minister of Britain". Only stems see this.
_DEMONYMS = dict(
    pair.split(":")
    for pair in _listed(
        "russian:russia ukrainian:ukraine chinese:china british:britain french:france "
        "german:germany italian:italy japanese:japan korean:korea indian:india "
        "mexican:mexico canadian:canada brazilian:brazil iranian:iran israeli:israel "
        "palestinian:palestine turkish:turkey australian:australia european:europe "
        "american:america pakistani:pakistan azerbaijani:azerbaijan afghan:afghanistan "
        "spanish:spain swedish:sweden finnish:finland irish:ireland scottish:scotland "
        "egyptian:egypt nigerian:nigeria taiwanese:taiwan filipino:philippines "
        "philippine:philippines vietnamese:vietnam cuban:cuba venezuelan:venezuela "
        "colombian:colombia argentine:argentina argentinian:argentina chilean:chile "
        "peruvian:peru greek:greece lankan:lanka texan:texas californian:california "
        "floridian:florida saudi:saudi syrian:syria iraqi:iraq lebanese:lebanon "
        "african:africa asian:asia danish:denmark norwegian:norway belgian:belgium "
        "austrian:austria hungarian:hungary romanian:romania bulgarian:bulgaria "
        "serbian:serbia croatian:croatia czech:czech haitian:haiti jamaican:jamaica "
        "kenyan:kenya ethiopian:ethiopia sudanese:sudan somali:somalia moroccan:morocco "
        "algerian:algeria libyan:libya yemeni:yemen qatari:qatar emirati:emirates "
        "indonesian:indonesia malaysian:malaysia thai:thailand singaporean:singapore "
        "mongolian:mongolia nepalese:nepal bangladeshi:bangladesh welsh:wales "
        "dutch:netherlands uk:britain"
    )
)
