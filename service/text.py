"""Words, defined once: the function words that carry no topic, and a text's content terms.

Used wherever text is matched by its words (query terms in the retriever, sentence
openers that are not names in session summaries), and the speakers' names a question is
embedded without (the retriever: ``SpeakerNames``, one matcher per customer).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence

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
    return SpeakerNames(speakers).named(query)


def without_names(query: str, speakers: Iterable[str]) -> str:
    """The query with these speakers' names (and a possessive "'s") taken out, spaces tidied;
    the query itself when nothing else would be left."""
    return SpeakerNames(speakers).without(query)


_WORD_CHAR = re.compile(r"\w")
_SPACE_BEFORE_MARK = re.compile(r" ([,.?!;:])")


class SpeakerNames:
    """The names of the people who speak in a customer's history, found in a question as whole
    words, in any case, with or without a possessive "'s" ("What is Caroline's job?").

    One pattern for all the names, shaped as a trie of them and tried at every character (a
    look-ahead, so a name inside another is found too): a question is read once, at each
    character at most as far as the longest name reaches, instead of once per name. Compiling
    it costs milliseconds (64 long names: tens), so it is built once per customer and set of
    names (``SpeakerCache``)."""

    def __init__(self, speakers: Iterable[str]) -> None:
        self.speakers = tuple(s for s in speakers if s)
        who: dict[str, set[str]] = {}  # a name as matched, folded -> the speakers it names (case-folded)
        for s in self.speakers:
            who.setdefault(_fold(s), set()).add(s.casefold())
        self._who = {k: frozenset(v) for k, v in who.items()}
        # the shorter names at the start of each name: "Anna" where "Anna Lee" is found
        self._inside = {k: [o for o in self._who if o != k and k.startswith(o)] for k in self._who}
        trie = _trie(self._who)
        # at each character: the longest name starting there, and the "'s" after it
        self.pattern = re.compile(rf"(?=(?<!\w)({trie})(?!\w)((?:['’]s(?!\w))?))", re.IGNORECASE) if trie else None

    def named(self, query: str) -> frozenset[str]:
        """The speakers the query names (case-folded)."""
        found: set[str] = set()
        for m in self._names(query):
            key = self._key(m.group(1))
            found |= self._who.get(key, frozenset())
            for shorter in self._inside.get(key, ()):
                end = m.start(1) + len(shorter)
                if end >= len(query) or not _WORD_CHAR.match(query, end):
                    found |= self._who[shorter]
        return frozenset(found)

    def without(self, query: str) -> str:
        """The query without the names (and a possessive "'s"), spaces tidied; the query itself
        when nothing else would be left."""
        kept, at = [], 0
        for m in self._names(query):
            if m.start() >= at:  # the first name from here (a name inside it is gone with it)
                kept.append(query[at : m.start()])
                at = m.end(2)
        stripped = "".join(kept) + query[at:]
        stripped = _SPACE_BEFORE_MARK.sub(r"\1", " ".join(stripped.split()))
        return stripped if _WORD_CHAR.search(stripped) else query

    def _names(self, query: str) -> Iterator[re.Match[str]]:
        return self.pattern.finditer(query) if self.pattern is not None else iter(())

    def _key(self, matched: str) -> str:
        key = _fold(matched)
        if key in self._who:
            return key
        # a character the pattern matched by its case-insensitive rules but whose lower case differs
        return next((k for k in self._who if k.casefold() == matched.casefold()), key)


def _fold(text: str) -> str:
    """Lower case, character for character (a character whose lower case is longer is kept)."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


_Trie = dict[str, "_Trie"]  # a character -> the rest ("" -> {}: a word ends here)


def _trie(words: Iterable[str]) -> str:
    """One alternation of ``words`` (escaped) shaped as a trie, longest first at each branch."""
    root: _Trie = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: _Trie) -> str:
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(root)


class SpeakerCache:
    """The speaker matchers of the customers asked about lately, one per customer (built again
    when their names change), at most ``size``. Erasure drops a customer's
    (``Runtime.forget_cached``), so no erased customer's speakers stay in a process; and a
    matcher built from names read before a forget (a context in flight while its customer
    was erased) is used but not kept (``ticket``). Safe to use from several threads."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._entries: OrderedDict[str, SpeakerNames] = OrderedDict()
        self._lock = threading.Lock()
        self._forgets = 0  # how many forgets and clears so far (no identifier is kept)

    def ticket(self) -> int:
        """Taken before a customer's names are read, and given to :meth:`get`."""
        return self._forgets

    def get(self, user: str, speakers: Sequence[str], ticket: int | None = None) -> SpeakerNames:
        """The customer's matcher for ``speakers``: the one kept, or a new one, kept unless a
        customer was forgotten since ``ticket`` (it may be this one)."""
        with self._lock:
            entry = self._entries.get(user)
            if entry is not None and entry.speakers == tuple(s for s in speakers if s):
                self._entries.move_to_end(user)
                return entry
        entry = SpeakerNames(speakers)  # compiled outside the lock
        with self._lock:
            if ticket is None or ticket == self._forgets:
                self._entries[user] = entry
                self._entries.move_to_end(user)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return entry

    def __contains__(self, user: str) -> bool:
        with self._lock:
            return user in self._entries

    def forget(self, user: str) -> int:
        with self._lock:
            self._forgets += 1
            return 1 if self._entries.pop(user, None) is not None else 0

    def clear(self) -> int:
        with self._lock:
            self._forgets += 1
            n = len(self._entries)
            self._entries.clear()
            return n
