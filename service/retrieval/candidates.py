"""The retriever's typed results: what a source finds (:class:`Candidate`), what a client
reads (:class:`ContextItem` with its :class:`Provenance`, in a :class:`ContextResponse`),
and how a store's row becomes a candidate.

A candidate's text is final once made: dated, clipped to the sentences that match the
query, phrased for the prompt. Fusion and packing only score, choose and order. A turn's,
a memory's or a summary's text is made on first use (:class:`Text`): a request gathers
~150 candidates, and clipping a long turn is work that grows with its length, wasted on the
many that are ranked out before packing reads them.
The public models (``ContextResponse``, ``ContextItem``, ``Provenance``) are the wire
contract's, in ``loft_memory.models``.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, overload

import asyncpg
import numpy as np

from graph.facts import CustomerFacts, Preference
from graph.schema import POLARITY_OF, fact_key
from loft_memory.models import EntityFact, InterestFact, ItemKind, PurchaseFact
from service.extraction.dates import MONTH_NAMES
from service.retrieval.config import CHARS_PER_TOKEN
from service.text import STOPWORDS, content_terms
from vectors.embedder import as_array
from vectors.passages import END_MARKS, SENTENCE_END

if TYPE_CHECKING:
    from service.facts import Known

Row = Mapping[str, Any] | asyncpg.Record  # an asyncpg record or a graph read's dict


class Text:
    """A candidate's ``text`` (a data descriptor): set to a string, or to a function that
    makes it, called on first read and its result kept. Whoever reads a candidate's text
    may thus clip a long turn: do it off the event loop (``Runtime.cpu``)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Text: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> str: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> str | Text:
        if obj is None:
            raise AttributeError(self.slot)  # a required field: no default
        value: str | Callable[[], str] = obj.__dict__[self.slot]
        if not isinstance(value, str):
            value = obj.__dict__[self.slot] = value()
        return value

    def __set__(self, obj: object, value: str | Callable[[], str]) -> None:
        obj.__dict__[self.slot] = value


@dataclass
class Candidate:
    """One thing the context could say, with where it came from and how it scored."""

    key: str  # one candidate per key, whichever sources found it ("message:12", "memory:<uuid>", …)
    kind: ItemKind
    section: str
    timestamp: datetime | None
    text: Text = Text()  # required (Text.__get__ gives no default): a string, or made on first read
    message_ids: list[int] = field(default_factory=list)
    memory_id: str | None = None
    graph_path: str | None = None
    importance: float = 0.5
    fact_keys: tuple[str, ...] = ()
    mention_ids: list[int] = field(default_factory=list)  # entities: the turns that mention them
    parts: dict[str, float] = field(default_factory=dict)  # source -> rrf contribution
    raw: dict[str, float] = field(default_factory=dict)  # source -> raw score
    score: float = 0.0
    pinned: bool = False
    role: str | None = None
    speaker: str | None = None  # who said it (a turn), when the history names speakers
    embedding: np.ndarray | None = None  # the stored embedding, when asked for (packing's diversity)
    group: str | None = None  # conversation turns are listed under a "### <day>" heading
    clipped: bool = False  # a turn too long to list whole, listed as a window around what matched
    least: int = 0  # what ``len(text)`` is at least, known before the text is made (a turn's "who: ")

    @property
    def fused(self) -> float:
        """The sum of the sources' (and expansion's) contributions, before any boost."""
        return sum(self.parts.values())

    def as_item(self) -> dict[str, Any]:
        """The JSON form of a :class:`ContextItem`, built directly (the hot path skips validation)."""
        return {
            "kind": self.kind,
            "section": self.section,
            "text": self.text,
            "score": round(self.score, 6),
            "score_parts": {k: round(v, 6) for k, v in self.parts.items()}
            | {f"raw_{k}": round(v, 4) for k, v in self.raw.items()},
            "provenance": {"message_ids": self.message_ids, "memory_id": self.memory_id, "graph_path": self.graph_path},
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
        }


@dataclass
class Context:
    """What ``Retriever.context`` returns; ``as_dict()`` is the JSON of a :class:`ContextResponse`."""

    text: str
    sections: dict[str, list[str]]
    items: list[dict[str, Any]]  # ContextItem-shaped, see Candidate.as_item
    tiers: dict[str, bool]
    took_ms: float
    budget: int
    preset: str
    errors: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    # the customer's facts the context was built from: a reply composed with it says what the
    # context says (and reads the graph once per turn)
    known: Known | None = field(default=None, compare=False, repr=False)

    def as_dict(self, explain: bool = False) -> dict[str, Any]:
        items = self.items if explain else [{k: v for k, v in i.items() if k != "score_parts"} for i in self.items]
        return {
            "text": self.text,
            "sections": self.sections,
            "items": items,
            "tiers": self.tiers,
            "errors": self.errors,
            "budget": self.budget,
            "tokens": math.ceil(len(self.text) / CHARS_PER_TOKEN),
            "preset": self.preset,
            "took_ms": round(self.took_ms, 2),
        } | ({"timings_ms": self.timings} if explain else {})


# -- text ----------------------------------------------------------------------------------------


def message_key(message_id: int) -> str:
    """The one candidate a turn is, whichever source (search, session, expansion) found it."""
    return f"message:{message_id}"


# "%b" through strftime costs more than the rest of a candidate's text and depends on the locale
_MONTH_ABBR = tuple(name[:3].title() for name in MONTH_NAMES)


def day(ts: datetime | None) -> str:
    """``1 May 2024``: how every item is dated in the prompt."""
    return f"{ts.day} {_MONTH_ABBR[ts.month - 1]} {ts.year}" if ts else "undated"


# ``SENTENCE_END``'s boundaries (a passage's sentences are the clip's), each found from the
# mark that ends its sentence, which stays with it: without the look-behind, splitting a
# long text takes 40 % less time
_SENTENCE_MARK = re.compile(rf"[{END_MARKS}]\s+|\n\s*")
_WORD = re.compile(r"\w+")
_SUFFIXES = ("ing", "ed", "es", "s", "ly")
# the suffixes by their last letter, in their order: a word is tested only against those
# it can end with (stemming is most of the CPU of comparing a long turn's words)
_SUFFIXES_ENDING = {end: tuple(s for s in _SUFFIXES if s.endswith(end)) for end in {s[-1] for s in _SUFFIXES}}


def stem(word: str) -> str:
    """A crude stem, enough to match "researching" with "research" and "dogs" with "dog":
    the word less the first of ``_SUFFIXES`` it ends with, when three letters remain."""
    for suffix in _SUFFIXES_ENDING.get(word[-1:], ()):
        if len(word) - len(suffix) >= 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def stems(text: str) -> set[str]:
    """The stems of the content words of ``text``."""
    return {stem(w) for w in content_terms(text)}


# a turn is covered by other items only when they hold this share of its content words
COVER_SHARE = 0.8


def says_most_of(words: set[str], text: str) -> bool:
    """Whether ``words`` (stems) hold at least ``COVER_SHARE`` of the content words of ``text``."""
    own = stems(text)
    return not own or len(own & words) >= COVER_SHARE * len(own)


def clip(text: str, limit: int, query_terms: set[str], focus: tuple[int, int] | None = None) -> str:
    """A long text cut to one window of at most ``limit`` characters around what matched:
    the passage that matched (``focus``, offsets into ``text``) or else the sentence that
    shares the most query words; the window then grows by whole sentences, the following
    one first, then the preceding (an answer tends to follow the words that ask for it).
    A cut end is marked "…". With nothing matched, the text's head.

    With a ``focus``, only the sentences within ``limit`` characters of it can be in the
    window, so only they are read (a pasted 30,000-character text is not split and scanned
    whole for one window of a few hundred)."""
    if focus is not None and len(text) > _WINDOWED * limit and text[focus[0] : focus[1]].strip():
        start, end = _around(text, focus, limit)
        if start > 0 or end < len(text):
            inner = _clip(text[start:end], limit, query_terms, (focus[0] - start, focus[1] - start), cut=True)
            head = "…" if start > 0 and not inner.startswith("…") else ""
            tail = "…" if end < len(text) and not inner.endswith("…") else ""
            return head + inner + tail
    return _clip(text, limit, query_terms, focus)


def _clip(text: str, limit: int, query_terms: set[str], focus: tuple[int, int] | None, cut: bool = False) -> str:
    """:func:`clip` on ``text`` whole; ``cut``: ``text`` is a window of a longer text, so it
    is never returned whole just because it fits (the longer text would not be)."""
    flat = " ".join(text.split())
    if len(flat) <= limit and not cut:
        return flat
    spans = _sentences(text)
    terms = frozenset(stem(t) for t in query_terms)
    overlap = _overlaps(text, spans, terms)
    inside = [i for i, (a, b) in enumerate(spans) if a < focus[1] and b > focus[0]] if focus else []
    candidates: Sequence[int] = inside or range(len(spans))
    best = max(candidates, key=lambda i: (overlap[i], -i))
    if focus is None and overlap[best] == 0:
        best = 0
    first = last = best
    size = len(" ".join(text[spans[best][0] : spans[best][1]].split()))
    if inside:  # the whole matched passage, when it fits
        whole = len(" ".join(text[spans[inside[0]][0] : spans[inside[-1]][1]].split()))
        if whole <= limit - 2:
            first, last, size = inside[0], inside[-1], whole
    if size > limit - 2:
        return _cut_sentence(text[spans[best][0] : spans[best][1]], limit, terms, best > 0, best < len(spans) - 1)
    grew = True
    while grew:
        grew = False
        for i in (last + 1, first - 1):
            if 0 <= i < len(spans):
                extra = len(" ".join(text[spans[i][0] : spans[i][1]].split())) + 1
                if size + extra <= limit - 2:
                    size += extra
                    first, last = min(first, i), max(last, i)
                    grew = True
    body = " ".join(text[spans[first][0] : spans[last][1]].split())
    return ("…" if first > 0 else "") + body + ("…" if last < len(spans) - 1 else "")


# a text this many times the window or longer is read only around its focus
_WINDOWED = 4


def _around(text: str, focus: tuple[int, int], limit: int) -> tuple[int, int]:
    """The whole sentences of ``text`` that reach within ``limit`` characters of ``focus``,
    counted as the window counts them (runs of whitespace as one): from the start of the
    sentence holding the first such character before it to the end of the one holding the
    last after it (offsets)."""
    low, high = _reach(text, focus[0], -limit), _reach(text, focus[1], limit)
    start, reach = 0, limit
    while low > 0:  # back to the nearest sentence boundary, looking further each time
        begin = max(0, low - reach)
        ends = [m.end() for m in SENTENCE_END.finditer(text, begin, low)]
        if ends:
            start = ends[-1]
            break
        if begin == 0:
            break
        reach *= 2
    after = SENTENCE_END.search(text, high)
    return start, after.start() if after else len(text)


def _reach(text: str, at: int, chars: int) -> int:
    """The offset ``chars`` characters of flattened text (runs of whitespace count as one)
    before (negative) or after ``at``, or the text's edge: raw offsets first, widened
    until the flattened span is long enough."""
    step = abs(chars)
    while True:
        edge = max(0, at - step) if chars < 0 else min(len(text), at + step)
        span = text[edge:at] if chars < 0 else text[at:edge]
        if edge in (0, len(text)) or len(" ".join(span.split())) > abs(chars):
            return edge
        step *= 2


def _overlaps(text: str, spans: list[tuple[int, int]], terms: frozenset[str]) -> list[int]:
    """How many of ``terms`` (stems) each span's content words have: ``len(terms &
    stems(span))`` for every span. A word's stem is a prefix of the word, so only words
    that start with a term can match: each term is looked for in the lower-cased text
    (``str.find``), and only the words found are stemmed (stemming every word of a long
    pasted text cost ~1.5 ms a clip; finding the words with one regular expression of
    every term, more than half of a clip of a turn of 1,000–2,000 characters)."""
    found: list[set[str]] = [set() for _ in spans]
    starts = [a for a, _ in spans]
    low = _lower_in_place(text)
    for term in terms:
        at = low.find(term)
        while at >= 0:
            word = _WORD.match(low, at)
            if word is not None and (at == 0 or not _WORD.match(low, at - 1)):  # a word starts here
                _count(found, spans, starts, at, word.group(), terms)
            at = low.find(term, at + 1)
    return [len(f) for f in found]


def _lower_in_place(text: str) -> str:
    """``text`` lower-cased, offset for offset: a character whose lower case is longer
    ("İ" -> "i̇") is left as it is (no word holding it stems to a query term either way)."""
    low = text.lower()
    return low if len(low) == len(text) else "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _count(
    found: list[set[str]], spans: list[tuple[int, int]], starts: list[int], at: int, word: str, terms: frozenset[str]
) -> None:
    """Count ``word`` (lower case, at offset ``at``) for the span it is in, when it stems to a term."""
    if word in STOPWORDS or len(word) < 2:
        return
    root = stem(word)
    if root in terms:
        i = bisect_right(starts, at) - 1
        if i >= 0 and at < spans[i][1]:
            found[i].add(root)


def _sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of ``text`` (offsets), blank ones left out."""
    spans, start = [], 0
    for m in _SENTENCE_MARK.finditer(text):
        end = m.start() if text[m.start()] == "\n" else m.start() + 1
        # a boundary takes all the blanks after it: only the text's own start can be blank
        if end > start and (start or not text[:end].isspace()):
            spans.append((start, end))
        start = m.end()
    if start < len(text) and (start or not text.isspace()):
        spans.append((start, len(text)))
    return spans or [(0, len(text))]


def _cut_sentence(sentence: str, limit: int, terms: frozenset[str], before: bool, after: bool) -> str:
    """One sentence longer than ``limit``: a window starting a little before its first query word."""
    flat = " ".join(sentence.split())
    words = flat.split(" ")
    hit = next((i for i, w in enumerate(words) if stem(re.sub(r"\W", "", w.lower())) in terms), 0)
    start = max(0, len(" ".join(words[:hit])) - limit // 4)
    if start:
        start = flat.find(" ", start) + 1 or start
    end = start + limit - 2
    window = flat[start:end]
    if end < len(flat):
        window = window.rsplit(" ", 1)[0]
    head = "…" if (start > 0 or before) else ""
    tail = "…" if (end < len(flat) or after) else ""
    return head + window + tail


# -- rows -> candidates ------------------------------------------------------------------------


def memory(r: Row, limit: int, terms: set[str]) -> Candidate:
    meta = json.loads(r["metadata"]) if isinstance(r["metadata"], str) else (r["metadata"] or {})
    return Candidate(
        key=f"memory:{r['id']}",
        kind="memory",
        section="memories",
        text=lambda: f"[{day(r['ts'])}] {clip(r['content'], limit, terms)}",
        timestamp=r["ts"],
        message_ids=list(r["source_message_ids"]),
        memory_id=str(r["id"]),
        importance=r["importance"],
        fact_keys=tuple(meta.get("fact_keys", ())),
        embedding=_embedding(r),
    )


def message(r: Row, limit: int, terms: set[str]) -> Candidate:
    at = r["ts"] if "ts" in r else r["created_at"]
    mid = int(r["id"])
    return Candidate(
        key=message_key(mid),
        kind="message",
        section="conversation",
        text=lambda: _said(r, limit, terms),
        timestamp=at,
        group=day(at),
        message_ids=[mid],
        importance=0.5,
        role=r["role"],
        speaker=r["speaker"],
        embedding=_embedding(r),
        clipped=len(r["content"]) > limit,
        least=len(_who(r)) + 2,
    )


# The words of a sentence that says nothing: a greeting, thanks, an exclamation.
_SMALL_TALK_WORDS = """
    thanks thank you ya wow cool awesome great hey hi hello there bye goodbye yeah yes yep yup
    sure definitely congrats congratulations totally absolutely nice amazing oh ah aw aww
    haha lol ok okay sounds good that's thats it's so really keep it up take care talk to
    later soon see glad exactly true agreed same me too long time no indeed wonderful
    fantastic incredible sweet lovely man buddy dude hope well you're welcome right fun
    much very got
"""
SMALL_TALK = frozenset(_SMALL_TALK_WORDS.split())


def without_small_talk(text: str) -> str:
    """``text`` without the small talk it opens with ("Wow, Caroline! That's great! I just
    signed up for…"): sentences of at most six words, each one of :data:`SMALL_TALK` but
    for one name after the first. It is most of a dialogue's small talk (a twentieth of its
    characters), never holds a fact and costs the budget other turns. A question is never
    dropped, nor a text that is all small talk."""
    start = 0
    while True:
        window = text[start : start + 48]
        ends = [i for i in (window.find("! "), window.find(". ")) if i >= 0]
        if not ends:
            break
        end = min(ends) + 1
        if not _small_talk(window[:end]):
            break
        start += end + 1
    rest = text[start:].lstrip()
    return rest if start and rest and not _small_talk(rest) else text


def _said(r: Row, limit: int, terms: set[str]) -> str:
    """A turn's text as packed: who said it, then what, clipped around what matched, without
    the small talk it opens with and, for a turn the customer did not write (a named
    speaker's in an imported dialogue, the assistant's), without the questions it closes with."""
    text = without_small_talk(clip(r["content"], limit, terms, _focus(r)))
    if r["speaker"] or r["role"] == "assistant":
        text = without_closing_questions(text)
    return f"{_who(r)}: {text}"


def _who(r: Row) -> str:
    """Who said a turn, as its text names them: the speaker, else the role."""
    return str(r["speaker"] or r["role"])


# the questions a text closes with, after a sentence that ends otherwise (``END_MARKS``
# but "?"), none holding a bracket (each run possessive: a question's words end at its "?",
# so no split of the text between them is ever tried again)
_STATEMENT_END = END_MARKS.replace("?", "")
_QUESTION = rf"[^{END_MARKS}\[\]]*+\?"
_CLOSING_QUESTIONS = re.compile(rf"(?<=[{_STATEMENT_END}])\s++{_QUESTION}(?:\s++{_QUESTION})*+\s*+$")


def without_closing_questions(text: str) -> str:
    """``text`` without the questions it closes with ("I finished my second screenplay last
    week. How's the new job going?"). In a dialogue they ask the other person about
    themselves and say nothing of the speaker: 8.5 % of the characters of LoCoMo's turns,
    that other turns' facts can use. Kept: a question that is the whole text or follows only
    small talk ("Wow! Did you see that band?"); what is cut never holds a shared photo's
    caption ("[shares a photo: …]"). A customer's own closing question ("Does it come in
    blue?") is what they want; the caller keeps it."""
    if not text.rstrip().endswith("?"):
        return text
    m = _CLOSING_QUESTIONS.search(text)
    if m is None or _small_talk(text[: m.start()]):
        return text
    return text[: m.start()]


def _small_talk(sentence: str) -> bool:
    words = sentence.split()
    if len(words) > 6 or "?" in sentence:
        return False
    names = 0
    for i, word in enumerate(words):
        word = word.strip(",.!")
        if word.lower() not in SMALL_TALK:
            names += 1  # one name, addressed: "Wow, Caroline!" (not "The Minnesota Wolves!")
            if i == 0 or names > 1 or not word[:1].isupper():
                return False
    return True


def _embedding(r: Row) -> np.ndarray | None:
    """The row's stored embedding (when the search returned it) as float32 numpy."""
    value = r.get("embedding")
    return as_array(value) if value is not None else None


def _focus(r: Row) -> tuple[int, int] | None:
    """The passage a long message ranked by (offsets into its content), if it did."""
    start = r.get("passage_start")
    return (start, r["passage_end"]) if start is not None else None


def turn(r: Row, limit: int, terms: set[str]) -> Candidate:
    """A turn of the current session: pinned, dated inline rather than under a day heading."""
    c = message(r, limit, terms)
    dated = f"[{c.group}] "
    c.kind, c.section, c.pinned = "turn", "session", True
    c.text, c.group, c.least = lambda: dated + _said(r, limit, terms), None, len(dated) + c.least
    return c


def summary(r: Row, limit: int, terms: set[str]) -> Candidate:
    return Candidate(
        key=f"summary:{r['id']}",
        kind="summary",
        section="summaries",
        text=lambda: clip(r["content"], limit * 2, terms),
        timestamp=r["ts"],
        message_ids=list(r["source_message_ids"]),
        embedding=_embedding(r),
    )


def entity(e: EntityFact) -> Candidate:
    relation = f", {e.relation}" if e.relation else ""
    when = f", {day(e.event_at)}" if e.event_at else ""
    related = ""
    if e.related:
        related = "; " + ", ".join(f"{x.type.lower().replace('_', ' ')} {x.other}" for x in e.related[:3])
    return Candidate(
        key=f"entity:{e.key}",
        kind="entity",
        section="entities",
        text=f"{e.name} ({e.type}{relation}{when}; mentioned {e.mentions or 1}×){related}",
        timestamp=e.last_seen,
        # an entity points at the turns that mention it; those are pulled in as their own items
        message_ids=[],
        graph_path=f"(:Customer)-[:MENTIONED]->(:Entity {{key: '{e.key}'}})",
        importance=0.5,
        mention_ids=list(e.source_message_ids or []),
    )


def profile(facts: CustomerFacts, terms: set[str]) -> list[Candidate]:
    """The customer's graph facts as candidates, best first: the name, then by strength and
    by how many of the query's words they share."""
    ranked: list[tuple[float, Candidate]] = []
    if facts.name:
        ranked.append((10.0, _name(facts)))
    ranked += [_preference(p, terms) for p in facts.preferences]
    ranked += [_purchase(p, terms) for p in facts.purchases]
    ranked += [_interest(i, terms) for i in facts.interests]
    ranked.sort(key=lambda x: -x[0])
    return [c for _, c in ranked]


def _name(facts: CustomerFacts) -> Candidate:
    return Candidate(
        key="profile:name",
        kind="profile",
        section="profile",
        text=f"Name: {facts.name} (customer since {day(facts.first_seen)})",
        timestamp=facts.first_seen,
        graph_path="(:Customer)",
        importance=1.0,
        pinned=True,
    )


def _preference(p: Preference, terms: set[str]) -> tuple[float, Candidate]:
    verb = "likes" if p.rel == "PREFERS" else "dislikes"
    since = day(p.valid_from)
    c = Candidate(
        key=f"pref:{p.rel}:{p.attribute}:{p.value}",
        kind="preference",
        section="preferences",
        text=f"{verb} {p.attribute}: {p.value} (strength {p.strength:.1f}, {p.mentions}× since {since})",
        timestamp=p.last_seen,
        message_ids=list(p.source_message_ids or [])[-5:],
        graph_path=f"(:Customer)-[:{p.rel}]->({p.value})",
        importance=0.5 + 0.5 * (p.strength or 0.5),
        fact_keys=(fact_key(POLARITY_OF[p.rel], p.attribute, p.value),),
    )
    overlap = len(terms & content_terms(f"{p.attribute} {p.value}"))
    return (p.strength or 0.5) + overlap, c


def _purchase(p: PurchaseFact, terms: set[str]) -> tuple[float, Candidate]:
    price = f", ${p.price:,.0f}" if p.price else ""
    sku = f" ({p.sku})" if p.sku else ""
    c = Candidate(
        key=f"purchase:{p.sku or p.name}:{(p.source_message_ids or [0])[0]}",
        kind="purchase",
        section="purchases",
        text=f"[{day(p.at)}] bought {p.name}{sku}{price}",
        timestamp=p.at,
        message_ids=list(p.source_message_ids or []),
        graph_path=f"(:Customer)-[:PURCHASED]->({p.sku or p.name})",
        importance=0.8,
    )
    overlap = len(terms & content_terms(f"{p.name} {p.category or ''} bought purchase order"))
    return 0.8 + overlap, c


def _interest(i: InterestFact, terms: set[str]) -> tuple[float, Candidate]:
    c = Candidate(
        key=f"interest:{i.name}",
        kind="interest",
        section="interests",
        text=f"[{day(i.at)}] asked about {i.name} ({i.mentions}×)",
        timestamp=i.at,
        message_ids=list(i.source_message_ids or [])[-3:],
        graph_path=f"(:Customer)-[:{i.rel}]->({i.name})",
        importance=0.4,
    )
    return 0.3 + len(terms & content_terms(i.name or "")), c
