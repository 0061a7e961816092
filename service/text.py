"""Words, defined once: the function words that carry no topic, and a text's content terms.

Used wherever text is matched by its words (query terms in the retriever, sentence
openers that are not names in session summaries), and the speakers' names a question is
embedded without (the retriever).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "from",
        "by",
        "about",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "what",
        "when",
        "where",
        "who",
        "whom",
        "which",
        "why",
        "how",
        "i",
        "you",
        "he",
        "she",
        "it",
        "we",
        "they",
        "me",
        "him",
        "her",
        "us",
        "them",
        "my",
        "your",
        "his",
        "its",
        "our",
        "their",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "have",
        "has",
        "had",
        "not",
        "no",
        "yes",
        "so",
        "than",
        "then",
        "too",
        "very",
        "can",
        "could",
        "would",
        "should",
        "will",
        "just",
        "also",
        "into",
        "over",
        "after",
        "before",
        "up",
        "down",
        "out",
    ]
)
# words that start sentences with a capital without being a name
NOT_NAMES = frozenset(
    {w.title() for w in STOPWORDS}
    | {
        "Thanks",
        "Thank",
        "Hey",
        "Hello",
        "Hi",
        "Wow",
        "Oh",
        "Well",
        "Sure",
        "Great",
        "Really",
        "It's",
        "Let",
        "Ok",
        "Okay",
    }
)

_WORD = re.compile(r"\w+")


def content_terms(text: str) -> set[str]:
    """The content words of ``text``: lower-cased, stop words and single characters left out."""
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1}


def named_speakers(query: str, speakers: Sequence[str]) -> frozenset[str]:
    """The history's ``speakers`` the query names, as whole words (case-folded)."""
    return frozenset(s.casefold() for s in speakers if _names(s).search(query))


def without_names(query: str, speakers: Iterable[str]) -> str:
    """The query with these speakers' names (and a possessive "'s") taken out, spaces tidied;
    the query itself when nothing else would be left."""
    stripped = query
    for s in speakers:
        stripped = _names(s).sub("", stripped)
    stripped = " ".join(re.sub(r"\s+([,.?!;:])", r"\1", stripped).split())
    return stripped if re.search(r"\w", stripped) else query


@lru_cache(maxsize=4096)
def _names(speaker: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(speaker)}(?!\w)(?:['’]s(?!\w))?", re.IGNORECASE)
