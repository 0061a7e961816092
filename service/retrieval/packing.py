"""Packing, as pure functions: choose the scored candidates that fit the token budget,
saying each thing once, and render them as prompt text and sections.

A fact stated by a memory and by a graph preference counts once (their fact keys); a
memory or summary whose source messages are all covered by a packed item is skipped, and
so is a turn, but only when what covers it says most of what it says (a memory holds one
fact of a turn; the turn may hold the answer too). Items are packed greedily, best first,
counting every character the rendered text will hold (bullets, section and day headings),
so the text never exceeds the budget; past half of it, a turn is listed by its opening.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from itertools import groupby

import numpy as np

from service.retrieval.candidates import Candidate, says_most_of, stems
from service.retrieval.config import CHARS_PER_TOKEN, RetrievalConfig
from vectors.embedder import DIM

SECTION_TITLES = {
    "profile": "Customer",
    "preferences": "Current preferences",
    "purchases": "Purchases",
    "interests": "Recently asked about",
    "entities": "People, places and things",
    "memories": "Memories",
    "summaries": "Earlier conversations",
    "conversation": "From past conversations",
    "session": "This conversation",
}
SECTION_ORDER = list(SECTION_TITLES)
# sections listed oldest first; the others in the order they were packed (best first)
CHRONOLOGICAL = frozenset({"conversation", "session", "memories", "purchases", "summaries"})
# a turn, memory or summary adds nothing once the messages it came from are covered
COVERABLE = frozenset({"message", "memory", "summary"})
_UNDATED = datetime.min.replace(tzinfo=UTC)


def excluding(candidates: Iterable[Candidate], message_ids: frozenset[int]) -> list[Candidate]:
    """Leave out the turns ``message_ids`` (the turn being answered is the prompt itself, not context)."""
    return [c for c in candidates if not (set(c.message_ids) & message_ids and c.kind in ("message", "turn"))]


def packing_order(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Pinned items first (the profile, then the session's turns newest first, so the latest
    survive a small budget), then by score; on equal scores the compact forms (memories,
    graph facts) before raw turns."""
    order = _ranked(candidates)
    turns = sorted((c for c in order if c.kind == "turn"), key=lambda c: c.timestamp or _UNDATED, reverse=True)
    order = [c for c in order if c.kind != "turn"]
    return [c for c in order if c.pinned] + turns + [c for c in order if not c.pinned]


def _ranked(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Sorted by ``_rank``, then by text and key: never by a random id (a memory's is a
    UUID), so the same history gives the same context however often it is re-ingested.
    Only candidates that tie on ``_rank`` are compared by text, so no other's is made."""
    order = sorted(candidates, key=_rank)
    out: list[Candidate] = []
    for _, run in groupby(order, key=_rank):
        tied = list(run)
        out += sorted(tied, key=lambda c: (c.text, c.key)) if len(tied) > 1 else tied
    return out


def _rank(c: Candidate) -> tuple[bool, float, bool, datetime]:
    """Pinned first, then by score; on equal scores the compact forms (memories, graph facts)
    before raw turns, then the older."""
    return (not c.pinned, -c.score, c.kind == "message", c.timestamp or _UNDATED)


def pack(candidates: Iterable[Candidate], budget: int, config: RetrievalConfig) -> list[Candidate]:
    """The candidates that fit ``budget`` tokens once rendered, chosen greedily in packing
    order; the current session's turns take at most ``session_share`` of it, and once
    ``short_items_after`` of it is used a past turn is listed by its opening
    ``short_item_chars`` (:func:`shortened`; the best turns are whole, more turns fit; a
    long one, already a window around what matched, is left as it is). With
    ``mmr_weight``, the unpinned candidates are chosen by their score discounted for how
    close they are to what is already packed (:func:`diverse_order`)."""
    packer = _Packer(budget * CHARS_PER_TOKEN, config)
    order = packing_order(candidates)
    if config.mmr_weight <= 0:
        for c in order:
            packer.take(c)
        return packer.packed
    fixed = [c for c in order if c.pinned or c.kind == "turn"]
    for c in fixed:
        packer.take(c)
    rest = [c for c in order if not (c.pinned or c.kind == "turn")]
    diverse_order(rest, [c for c in packer.packed if c.embedding is not None], config, packer.take)
    return packer.packed


class _Packer:
    """The greedy packing's state: what is packed, what it costs, what it already says."""

    def __init__(self, limit: int, config: RetrievalConfig) -> None:
        self.limit = limit
        self.config = config
        self.used = 0
        self.sections_used: set[str] = set()
        self.groups_used: set[tuple[str, str]] = set()
        self.covered: dict[int, set[str]] = {}  # message id -> the content words of the packed items citing it
        self.facts: set[str] = set()
        self.session_limit = int(limit * config.session_share)
        # past this much of the budget, a turn is listed by its opening (more turns, each shorter)
        self.short_from = limit * config.short_items_after if config.short_item_chars else limit + 1
        self.session_used = 0
        self.packed: list[Candidate] = []

    def take(self, c: Candidate) -> bool:
        """Pack ``c`` if it says something new and fits; whether it was packed. Its text is
        read only when it might fit: most candidates come once the budget is nearly spent,
        and their text (a long turn clipped) is then never made."""
        short = c.kind == "message" and self.used >= self.short_from and not c.clipped
        if self.used + self._headings(c) + 3 + (0 if short else c.least) > self.limit:
            return False
        if self._redundant(c):
            return False
        if short:
            text = shortened(c.text, self.config.short_item_chars)
            if text is not c.text:
                c = replace(c, text=text)  # the candidate itself stays whole (packing is pure)
        cost = self._cost(c)
        if self.used + cost > self.limit:
            return False
        if c.kind == "turn":
            if self.session_used + cost > self.session_limit:
                return False
            self.session_used += cost
        self._add(c, cost)
        return True

    def _redundant(self, c: Candidate) -> bool:
        """The same fact from another tier, or a turn the packed items already say, is in."""
        if c.fact_keys and set(c.fact_keys) <= self.facts:
            return True
        covered = self.covered
        return bool(
            c.message_ids
            and c.kind in COVERABLE
            and all(m in covered for m in c.message_ids)
            and (c.kind != "message" or says_most_of(set().union(*(covered[m] for m in c.message_ids)), c.text))
        )

    def _cost(self, c: Candidate) -> int:
        """Its characters once rendered, with a heading it would open."""
        return len(c.text) + 3 + self._headings(c)  # "- " and newline

    def _headings(self, c: Candidate) -> int:
        """The characters of the headings ``c`` would open."""
        cost = 0
        if c.section not in self.sections_used:
            cost += len(SECTION_TITLES[c.section]) + 5  # "## " + title + newline (+ blank line)
        if c.group and (c.section, c.group) not in self.groups_used:
            cost += len(c.group) + 5  # "### " + day + newline
        return cost

    def _add(self, c: Candidate, cost: int) -> None:
        self.packed.append(c)
        self.used += cost
        self.sections_used.add(c.section)
        if c.group:
            self.groups_used.add((c.section, c.group))
        words = stems(c.text)
        for m in c.message_ids:
            self.covered[m] = self.covered.get(m, set()) | words
        self.facts.update(c.fact_keys)


def shortened(text: str, limit: int) -> str:
    """A turn cut to its first ``limit`` characters or so, at the end of a sentence when one
    ends in the last third of them, else of a word (never inside brackets: a shared photo's
    caption), marked "…". A turn says what it is about first, once the small talk it opens
    with is left out."""
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    end = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    if end >= limit * 2 // 3:
        return head[: end + 1] + " …"
    head = head[:limit].rsplit(" ", 1)[0]
    bracket = head.rfind("[")
    if bracket > head.rfind("]") and bracket >= limit // 3:  # not into a "[shares a photo: …]"
        head = head[:bracket]
    return head.rstrip(" ,;:-") + " …"


def diverse_order(
    ranked: list[Candidate],
    already: list[Candidate],
    config: RetrievalConfig,
    take: Callable[[Candidate], bool],
) -> None:
    """Maximal marginal relevance: offer ``take`` the candidates of ``ranked`` (best first)
    one at a time, each time the one whose score, discounted by ``mmr_weight`` times how
    far its highest cosine similarity to an item taken so far (``already`` included) exceeds
    ``mmr_threshold``, is highest; ``take`` says whether it was packed. Candidates without an
    embedding are never discounted and never discount others."""
    n = len(ranked)
    if not n:
        return
    has = np.array([c.embedding is not None for c in ranked])
    matrix = np.zeros((n, DIM), dtype=np.float32)
    if has.any():
        matrix[has] = np.stack([c.embedding for c in ranked if c.embedding is not None])
    closest = np.full(n, -1.0, dtype=np.float32)
    for c in already:
        if c.embedding is not None:
            closest = np.maximum(closest, matrix @ c.embedding)
    scores = np.array([c.score for c in ranked], dtype=np.float64)
    open_ = np.ones(n, dtype=bool)
    span = 1.0 - config.mmr_threshold
    for _ in range(n):
        discount = config.mmr_weight * np.clip((closest - config.mmr_threshold) / span, 0.0, 1.0)
        adjusted = np.where(open_, scores * (1.0 - discount), -np.inf)
        i = int(np.argmax(adjusted))  # on a tie the first: packing order
        open_[i] = False
        if take(ranked[i]) and has[i]:
            closest = np.maximum(closest, matrix @ matrix[i])


def render(packed: Iterable[Candidate]) -> tuple[str, dict[str, list[str]]]:
    """The prompt text (a "## " block per section, conversation turns under "### <day>"
    headings) and the same lines by section."""
    by_section: dict[str, list[Candidate]] = {}
    for c in packed:
        by_section.setdefault(c.section, []).append(c)
    blocks: list[str] = []
    sections: dict[str, list[str]] = {}
    for name in SECTION_ORDER:
        items = by_section.get(name)
        if not items:
            continue
        if name in CHRONOLOGICAL:
            items = sorted(items, key=lambda c: (c.timestamp or _UNDATED, c.text, c.key))
        sections[name] = [f"[{c.group}] {c.text}" if c.group else c.text for c in items]
        lines, group = [], None
        for c in items:
            if c.group and c.group != group:
                lines.append(f"### {c.group}")
            group = c.group
            lines.append(f"- {c.text}")
        blocks.append(f"## {SECTION_TITLES[name]}\n" + "\n".join(lines))
    return "\n\n".join(blocks), sections
