"""Scoring, as pure functions: weighted reciprocal-rank fusion of the sources' rankings,
the expansion's share, and the boosts (importance, recency, the period a query names,
the assistant's own turns, a memory ranking with the turn it came from).

No I/O here: every function takes candidates and a :class:`RetrievalConfig` and either
returns a value or sets the candidates' ``parts`` and ``score``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from service.extraction.dates import find_dates
from service.retrieval.candidates import Candidate, message_key, says_most_of, stems
from service.retrieval.config import RetrievalConfig

# the order candidates are collected in (a candidate found twice keeps its first form)
SOURCE_ORDER = (
    "memories_vector",
    "memories_text",
    "messages_vector",
    "messages_text",
    "messages_period",
    "summaries_vector",
    "summaries_text",
    "recent_turns",
    "graph_profile",
    "graph_entities",
)
Period = tuple[datetime, datetime]
# a memory holding only part of its turn ranks just below the turn
PARTIAL_MEMORY = 0.999


# -- fusion --------------------------------------------------------------------------------------


def fuse(ranked: Mapping[str, list[Candidate]], config: RetrievalConfig) -> dict[str, Candidate]:
    """One candidate per key, each source's contribution ``weight / (rrf_k + rank)`` in its
    ``parts`` (rank from 1) and each source's raw score in its ``raw``."""
    candidates: dict[str, Candidate] = {}
    lists: dict[str, list[str]] = {}
    for source in SOURCE_ORDER:
        for c in ranked.get(source) or ():
            if c.kind == "turn":
                candidates[c.key] = c  # the session's own turns replace a search hit of the same turn
            else:
                first = candidates.setdefault(c.key, c)
                if first is not c:
                    first.raw.update(c.raw)
            lists.setdefault(source, []).append(c.key)
    for source, keys in lists.items():
        weight = getattr(config, source).weight
        for rank, key in enumerate(keys):
            c = candidates[key]
            c.parts[source] = c.parts.get(source, 0.0) + weight / (config.rrf_k + rank + 1)
    return candidates


# -- expansion -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expansion:
    """What to fetch around the best hits, and what each fetched turn inherits."""

    anchors: list[int]  # the best message hits, whose neighbouring turns are fetched
    seed_score: dict[int, float]  # anchor -> its fused score
    mentions: dict[int, float]  # a turn that mentions a matched entity -> the score it inherits
    fetch: list[int]  # the mentioned turns that are not candidates yet
    # a turn that mentions an entity one of the best hits mentions -> the score it inherits
    co_mentions: dict[int, float] = field(default_factory=dict)


def plan_expansion(
    candidates: Mapping[str, Candidate], config: RetrievalConfig, mentioned: Sequence[Sequence[int]] = ()
) -> Expansion | None:
    """The neighbours of the ``neighbour_hits`` best message hits, the latest turns that
    mention each matched entity, and (a second round seeded by the first round's entities)
    the turns that mention an entity one of the ``co_mention_hits`` best hits mentions;
    ``mentioned``: each of the customer's entities as the turns that mention it. None when
    there is nothing to expand."""
    messages = sorted((c for c in candidates.values() if c.kind == "message"), key=lambda c: -c.fused)
    seeds = messages[: config.neighbour_hits]
    anchors = [c.message_ids[0] for c in seeds if c.message_ids] if config.neighbour_width else []
    mentions: dict[int, float] = {}
    for c in candidates.values():
        if c.kind == "entity" and config.entity_mentions:
            for mid in c.mention_ids[-config.entity_mentions :]:
                mentions[mid] = max(mentions.get(mid, 0.0), c.fused * config.neighbour_decay)
    co_mentions = co_mentioned(messages[: config.co_mention_hits], mentioned, config)
    if not anchors and not mentions and not co_mentions:
        return None
    return Expansion(
        anchors=anchors,
        seed_score={c.message_ids[0]: c.fused for c in seeds if c.message_ids},
        mentions=mentions,
        fetch=sorted(m for m in mentions.keys() | co_mentions.keys() if message_key(m) not in candidates),
        co_mentions=co_mentions,
    )


def co_mentioned(
    hits: Sequence[Candidate], mentioned: Sequence[Sequence[int]], config: RetrievalConfig
) -> dict[int, float]:
    """The turns that mention an entity one of ``hits`` mentions, each with the best share
    it inherits: the hit's fused score times ``co_mention_decay``, divided by how many turns
    mention the entity (a rare entity says more than "family" does). Entities mentioned in
    more than ``co_mention_max`` turns are left out."""
    score_of = {c.message_ids[0]: c.fused for c in hits if c.message_ids}
    out: dict[int, float] = {}
    if not score_of or config.co_mention_decay <= 0:
        return out
    for turns in mentioned:
        if not 1 < len(turns) <= config.co_mention_max:
            continue
        seed = max((score_of[m] for m in turns if m in score_of), default=0.0)
        if seed:
            share = seed * config.co_mention_decay / len(turns)
            for m in turns:
                if m not in score_of:
                    out[m] = max(out.get(m, 0.0), share)
    return out


def apply_expansion(
    candidates: dict[str, Candidate],
    plan: Expansion,
    fetched: Iterable[tuple[Candidate, int | None]],
    config: RetrievalConfig,
) -> None:
    """Add the fetched turns (``anchor`` set: a neighbour of that hit; None: a mentioned turn)
    with a decayed share of what led to them; a turn already a candidate keeps its form.
    A turn that shares an entity with a best hit gets its share whether it was fetched or
    already a candidate."""
    for turn, anchor in fetched:
        c = candidates.setdefault(turn.key, turn)
        if anchor is not None:
            contribution = plan.seed_score.get(anchor, 0.0) * config.neighbour_decay
            c.parts["neighbour"] = max(c.parts.get("neighbour", 0.0), contribution)
        elif turn.message_ids[0] in plan.mentions:
            c.parts["entity_mention"] = max(
                c.parts.get("entity_mention", 0.0), plan.mentions.get(turn.message_ids[0], 0.0)
            )
    for mid, share in plan.co_mentions.items():
        found = candidates.get(message_key(mid))
        if found is not None:
            found.parts["co_mention"] = max(found.parts.get("co_mention", 0.0), share)


# -- boosts --------------------------------------------------------------------------------------


def period_of(query: str, reference: datetime) -> Period | None:
    """The period the query names ("in May 2023", "last week"), if any, in UTC. Dates are
    resolved in ``reference``'s time zone (its "today"); a period at the calendar's edges
    ("9999-12-31", "year 1", in any zone) ends at the edge instead of overflowing."""
    spans = {"day": timedelta(days=1), "week": timedelta(days=7), "weekend": timedelta(days=3)}
    for mention in find_dates(query, reference):
        start = mention.value
        try:
            if mention.precision == "month":
                end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
            elif mention.precision == "year":
                end = start.replace(year=start.year + 1)
            else:
                end = start + spans.get(mention.precision, timedelta(days=1))
        except (OverflowError, ValueError):
            end = datetime.max.replace(tzinfo=start.tzinfo)
        return _utc(start), _utc(end)
    return None


_FIRST = datetime.min.replace(tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC, clamped to what UTC can hold (the store's encoder converts to UTC
    and would overflow on 9999-12-31T23:00-05:00)."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return _FIRST if moment.year == 1 else _LAST


_NOW = re.compile(
    r"\b(now|nowadays|these days|at the moment|currently|current|still|anymore|latest|most recent(ly)?)\b", re.I
)


def asks_now(query: str) -> bool:
    """Whether the question asks how things are now ("what is my current…", "do I still…"):
    then the newest of conflicting facts should win."""
    return bool(_NOW.search(query))


def in_period(c: Candidate, period: Period | None) -> bool:
    return period is not None and c.timestamp is not None and period[0] <= c.timestamp < period[1]


def boost(
    c: Candidate,
    config: RetrievalConfig,
    reference: datetime,
    period: Period | None,
    now: bool = False,
    speakers: frozenset[str] = frozenset(),
) -> float:
    """The factor a candidate's fused score is multiplied by: importance (around 0.5),
    the assistant's weight, recency (halving every ``recency_half_life_days``; weighed
    ``now_recency_weight`` when the question asks about now), the period, and
    ``other_speaker_weight`` for a turn said by someone else when the question names
    ``speakers`` (case-folded): a question about a person is answered by what they said."""
    factor = 1.0 + config.importance_weight * (c.importance - 0.5)
    if c.role == "assistant":
        factor *= config.assistant_weight
    if speakers and c.speaker and c.speaker.casefold() not in speakers:
        factor *= config.other_speaker_weight
    if c.timestamp is not None:
        age_days = max(0.0, (reference - c.timestamp).total_seconds() / 86400)
        weight = config.now_recency_weight if now else config.recency_weight
        factor *= 1.0 + weight * 0.5 ** (age_days / config.recency_half_life_days)
        if in_period(c, period):
            factor *= config.period_boost
    return factor


def score(
    candidates: Mapping[str, Candidate],
    config: RetrievalConfig,
    reference: datetime,
    period: Period | None,
    now: bool = False,
    speakers: frozenset[str] = frozenset(),
) -> None:
    """Set every candidate's score: fused share times its boost; then lift each memory to
    the score of the turn it came from. A memory counts as said by the speaker of the turn
    it came from (when that turn is a candidate)."""
    if speakers:
        for c in candidates.values():
            if c.kind == "memory" and c.speaker is None:
                said = (candidates.get(message_key(m)) for m in c.message_ids)
                c.speaker = next((t.speaker for t in said if t is not None and t.speaker), None)
    for c in candidates.values():
        base = c.fused
        c.score = base * boost(c, config, reference, period, now, speakers)
        if in_period(c, period):
            c.parts["period"] = 0.0  # shown in explain: the boost applied
    lift_memories(candidates)


def lift_memories(candidates: Mapping[str, Candidate]) -> None:
    """A memory is the compact, standalone form of the turn it came from: it ranks as high
    as that turn, and when it says most of what the turn says it is packed first and makes
    the turn redundant. A memory that holds only part of its turn (one fact of a long turn)
    ranks just below it instead: the turn goes in whole, and the memory adds nothing."""
    for c in candidates.values():
        if c.kind == "memory":
            sources = [s for s in (candidates.get(message_key(m)) for m in c.message_ids) if s is not None]
            best = max(sources, key=lambda s: s.score, default=None)
            if best is None:
                continue
            if c.score > best.score:  # ranked above its turn on its own: kept (no text read)
                target = c.score
            elif says_most_of(stems(c.text), best.text):
                target = best.score
            else:
                target = best.score * PARTIAL_MEMORY
            if target != c.score:
                c.parts["source_turn"] = target - c.score
                c.score = target
