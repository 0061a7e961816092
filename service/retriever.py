"""The hybrid retriever: graph neighbourhood + vector + full-text, fused into a budgeted context.

One request embeds the query once (cached), then runs every enabled source concurrently:

- pgvector (exact, per customer) over long-term memories, message turns and summaries;
- PostgreSQL full-text search over the same;
- Neo4j: the customer's neighbourhood (current preferences, purchases, interests,
  mentioned entities) and the customer's entities closest to the query;
- the current session's recent turns.

Candidates are fused with weighted reciprocal-rank fusion, then nudged by importance,
recency and (when the query names a period: "last May", "in 2022") by whether they fall
in that period. A memory and a graph fact that state the same thing count once; a turn
whose source messages are already covered by a packed item is skipped. The best message
hits are expanded with their neighbouring turns and a matched entity with the turns that
mention it. Items are packed greedily into the token budget (tokens = characters / 4),
and the prompt text never exceeds it.

What runs, how many candidates each source returns and how they are weighted is a
:class:`RetrievalConfig`; named presets are copies of the default (``PRESETS``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from graph import reads as graph_reads
from graph.schema import POLARITY_OF, fact_key
from service import users
from service.errors import StoreUnavailable
from service.extraction.dates import find_dates
from service.outages import is_outage
from service.schemas import MAX_QUERY_CHARS
from service.text import content_terms
from service.runtime import Runtime
from vectors import memories as ltm
from vectors import search

log = logging.getLogger("loft.retriever")

CHARS_PER_TOKEN = 4
GRAPH_TIMEOUT_S = 1.5


class Source(BaseModel):
    model_config = ConfigDict(frozen=True)
    enabled: bool = True
    limit: int = Field(default=20, ge=0, le=500)
    weight: float = Field(default=1.0, ge=0)


class RetrievalConfig(BaseModel):
    """Which sources run, how many candidates each returns, how they are fused."""

    model_config = ConfigDict(frozen=True)
    memories_vector: Source = Source(limit=30, weight=1.0)
    memories_text: Source = Source(limit=20, weight=0.7)
    messages_vector: Source = Source(limit=40, weight=1.0)
    messages_text: Source = Source(limit=40, weight=0.9)
    summaries_vector: Source = Source(limit=4, weight=0.4)
    summaries_text: Source = Source(limit=4, weight=0.3)
    graph_profile: Source = Source(limit=30, weight=0.6)
    graph_entities: Source = Source(limit=8, weight=0.5)
    recent_turns: Source = Source(limit=6, weight=1.0)
    rrf_k: float = Field(default=60.0, gt=0)
    # expansion
    neighbour_hits: int = Field(default=10, ge=0, description="top message hits expanded with their neighbours")
    neighbour_width: int = Field(default=1, ge=0, le=5)
    neighbour_decay: float = Field(default=0.55, ge=0, le=1)
    entity_mentions: int = Field(default=3, ge=0, description="turns pulled in per matched entity")
    # boosts
    importance_weight: float = Field(default=0.3, ge=0)
    recency_weight: float = Field(default=0.1, ge=0)
    recency_half_life_days: float = Field(default=60.0, gt=0)
    period_boost: float = Field(default=1.6, ge=1)
    assistant_weight: float = Field(default=0.5, ge=0, description="the assistant's own turns matter less than the customer's")
    # packing
    max_item_chars: int = Field(default=320, ge=40)
    session_share: float = Field(default=0.3, ge=0, le=1, description="most of the budget the current session may take")


DEFAULT = RetrievalConfig()
PRESETS: dict[str, RetrievalConfig] = {
    "default": DEFAULT,
    # fewer candidates, no expansion: lowest latency
    "fast": DEFAULT.model_copy(
        update={
            "memories_text": Source(limit=10, weight=0.7),
            "messages_vector": Source(limit=20, weight=1.0),
            "messages_text": Source(limit=20, weight=0.9),
            "summaries_text": Source(enabled=False),
            "graph_entities": Source(enabled=False),
            "neighbour_hits": 0,
        }
    ),
    # more candidates and wider expansion: best recall for large budgets
    "deep": DEFAULT.model_copy(
        update={
            "messages_vector": Source(limit=80, weight=1.0),
            "messages_text": Source(limit=80, weight=0.9),
            "memories_vector": Source(limit=60, weight=1.0),
            "neighbour_hits": 20,
            "neighbour_width": 2,
        }
    ),
    # graph and memories only: what the customer is like, not what they said
    "profile": DEFAULT.model_copy(
        update={
            "messages_vector": Source(enabled=False),
            "messages_text": Source(enabled=False),
            "summaries_vector": Source(enabled=False),
            "summaries_text": Source(enabled=False),
            "neighbour_hits": 0,
        }
    ),
}

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


@dataclass
class Candidate:
    key: str
    kind: str  # profile | preference | purchase | interest | entity | memory | summary | message | turn
    section: str
    text: str
    timestamp: datetime | None
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
    group: str | None = None  # conversation turns are listed under a "### <day>" heading


@dataclass
class Context:
    text: str
    sections: dict[str, list[str]]
    items: list[dict[str, Any]]
    tiers: dict[str, bool]
    took_ms: float
    budget: int
    preset: str
    errors: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

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


# -- helpers -----------------------------------------------------------------------------------


def _day(ts: datetime | None) -> str:
    return f"{ts.day} {ts:%b %Y}" if ts else "undated"


def _clip(text: str, limit: int, query_terms: set[str]) -> str:
    """Keep a long turn to its sentences that best match the query (in their order)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    sentences = re.split(r"(?<=[.!?])\s+", text)
    if len(sentences) > 1 and query_terms:
        scored = sorted(
            range(len(sentences)),
            key=lambda i: (-len(query_terms & set(re.findall(r"\w+", sentences[i].lower()))), i),
        )
        keep: list[int] = []
        used = 0
        for i in scored:
            if used + len(sentences[i]) + 1 > limit:
                continue
            keep.append(i)
            used += len(sentences[i]) + 1
        if keep:
            return " … ".join(sentences[i] for i in sorted(keep))
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _describe(exc: BaseException) -> str:
    """What a client may read about a failed tier: the kind of failure, not its internals."""
    if isinstance(exc, StoreUnavailable):
        return exc.detail
    if isinstance(exc, TimeoutError):
        return "Neo4j did not answer in time"
    return f"Neo4j is unavailable ({type(exc).__name__})"


def _period(query: str, reference: datetime) -> tuple[datetime, datetime] | None:
    """The period the query names ("in May 2023", "last week"), if any. A period at the
    calendar's edges ("9999-12-31", "year 1") ends at the edge instead of overflowing."""
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
        return start, end
    return None


# -- the retriever -----------------------------------------------------------------------------


class Retriever:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._touch_tasks: set[asyncio.Task] = set()

    async def context(
        self,
        user: str,
        query: str,
        *,
        budget: int = 1000,
        session_id: uuid.UUID | None = None,
        config: RetrievalConfig = DEFAULT,
        preset: str = "default",
        exclude_message_ids: frozenset[int] = frozenset(),
        track_access: bool = True,
    ) -> Context:
        started = time.perf_counter()
        timings: dict[str, float] = {}
        query = query.strip()[:MAX_QUERY_CHARS]  # the same clip on every route
        version_task = asyncio.create_task(self._graph_version(user))
        embedding = await self.rt.embedder.aembed_query(query, user=user) if query else None
        timings["embed"] = (time.perf_counter() - started) * 1000
        try:
            version = await version_task
        except Exception as exc:  # PostgreSQL is down: the context cannot be built
            if is_outage(exc) or isinstance(exc, TimeoutError):
                raise StoreUnavailable("postgres", "PostgreSQL is unavailable; retry shortly") from exc
            raise
        terms = content_terms(query)

        tiers = {"postgres": True, "neo4j": True, "vectors": True}
        errors: dict[str, str] = {}
        tasks = {
            name: asyncio.create_task(coro)
            for name, coro in self._sources(user, query, embedding, session_id, config, version).items()
        }
        results: dict[str, Any] = {}
        for name, task in tasks.items():
            try:
                found = await task
                timings[name] = (time.perf_counter() - started) * 1000 - timings["embed"]
            except Exception as exc:
                if name != "graph":  # PostgreSQL is the tier the context cannot do without
                    for other in tasks.values():
                        other.cancel()
                    if is_outage(exc) or isinstance(exc, TimeoutError):
                        raise StoreUnavailable("postgres", "PostgreSQL is unavailable; retry shortly") from exc
                    raise
                # the graph costs its candidates, never the answer
                if not (is_outage(exc) or isinstance(exc, TimeoutError)):
                    log.error("graph read failed for a context: %r", exc)
                tiers["neo4j"] = False
                errors[name] = _describe(exc)
                continue
            if name == "postgres":
                results.update(found)
            elif found:
                results["graph_profile"] = found
                results["graph_entities"] = found.get("matched") or []

        reference = results.get("latest") or datetime.now(timezone.utc)
        period = _period(query, reference) if query else None

        candidates: dict[str, Candidate] = {}
        ranked_lists = self._candidates(results, config, terms, candidates)
        for source, keys in ranked_lists.items():
            weight = getattr(config, source).weight if hasattr(config, source) else 1.0
            for rank, key in enumerate(keys):
                contribution = weight / (config.rrf_k + rank + 1)
                c = candidates[key]
                c.parts[source] = c.parts.get(source, 0.0) + contribution

        mark = time.perf_counter()
        await self._expand(user, results, config, candidates, terms)
        timings["expand"] = (time.perf_counter() - mark) * 1000
        for c in candidates.values():
            base = sum(c.parts.values())
            boost = 1.0 + config.importance_weight * (c.importance - 0.5)
            if c.role == "assistant":
                boost *= config.assistant_weight
            if c.timestamp is not None:
                age_days = max(0.0, (reference - c.timestamp).total_seconds() / 86400)
                boost *= 1.0 + config.recency_weight * 0.5 ** (age_days / config.recency_half_life_days)
                if period and period[0] <= c.timestamp < period[1]:
                    boost *= config.period_boost
                    c.parts["period"] = 0.0
            c.score = base * boost
        # a memory is the compact, standalone form of the turn it came from: it ranks at
        # least as high as that turn, and packing it first makes the turn redundant
        for c in candidates.values():
            if c.kind == "memory":
                sources = [candidates.get(f"message:{m}") for m in c.message_ids]
                best = max((s.score for s in sources if s is not None), default=0.0)
                if best > c.score:
                    c.parts["source_turn"] = best - c.score
                    c.score = best

        packed = self._pack(
            # the turn being answered is the prompt itself, not context
            [c for c in candidates.values() if not (set(c.message_ids) & exclude_message_ids and c.kind in ("message", "turn"))],
            budget,
            config,
        )
        text, sections = self._render(packed)
        items = [
            {
                "kind": c.kind,
                "section": c.section,
                "text": c.text,
                "score": round(c.score, 6),
                "score_parts": {k: round(v, 6) for k, v in c.parts.items()} | {f"raw_{k}": round(v, 4) for k, v in c.raw.items()},
                "provenance": {"message_ids": c.message_ids, "memory_id": c.memory_id, "graph_path": c.graph_path},
                "timestamp": c.timestamp.isoformat() if c.timestamp else None,
            }
            for c in packed
        ]
        if track_access:
            served = [uuid.UUID(c.memory_id) for c in packed if c.memory_id]
            if served:  # off the hot path
                task = asyncio.create_task(self._touch(user, served))
                self._touch_tasks.add(task)
                task.add_done_callback(self._touch_tasks.discard)
        took = (time.perf_counter() - started) * 1000
        timings = {k: round(v, 2) for k, v in timings.items()}
        return Context(text, sections, items, tiers, took, budget, preset, errors, timings)

    async def _touch(self, user: str, ids: list[uuid.UUID]) -> None:
        try:
            async with self.rt.pool.acquire() as conn, conn.transaction():
                await users.lock_shared(conn, user)  # an erasure waits rather than deadlocks
                await ltm.touch(conn, user, ids)
        except Exception as exc:
            log.warning("could not record memory access: %s", exc)

    # -- sources ---------------------------------------------------------------------------

    async def _graph_version(self, user: str) -> int | None:
        return await users.graph_version(self.rt.pool, user)

    async def _graph(self, user: str, version: int | None, embedding, hits: int) -> dict[str, Any] | None:
        """The customer's graph facts: from the cache when it holds this version, else one
        Cypher query (and cached). No users row: nothing in the graph either."""
        if version is None:
            return None
        entry = self.rt.graph_cache.get(user, version)
        if entry is None:
            breaker = self.rt.graph_breaker
            if not breaker.allow():
                raise StoreUnavailable("neo4j", "Neo4j was unreachable moments ago (circuit open); skipped")
            try:
                facts = await asyncio.wait_for(graph_reads.customer_facts(self.rt.graph, user), GRAPH_TIMEOUT_S)
            except Exception as exc:
                if is_outage(exc):
                    breaker.failure()  # the store is away; a timeout of one slow read is not
                raise
            breaker.success()
            entry = self.rt.graph_cache.put(user, version, facts)
        return entry.view(embedding, hits)

    def _sources(self, user, query, embedding, session_id, config: RetrievalConfig, version: int | None = None) -> dict[str, Any]:
        """Run concurrently: PostgreSQL (every per-customer search in one statement) and the
        graph facts (cached per customer version, else one Cypher query)."""
        limits = {
            name: getattr(config, name).limit if getattr(config, name).enabled else 0
            for name in ("memories_vector", "memories_text", "messages_vector", "messages_text",
                         "summaries_vector", "summaries_text", "recent_turns")
        }

        async def postgres():
            async with self.rt.pool.acquire() as conn:
                return await search.hybrid(conn, user, embedding, query, limits, session_id)

        sources: dict[str, Any] = {"postgres": postgres()}
        if config.graph_profile.enabled:
            hits = config.graph_entities.limit if config.graph_entities.enabled else 0
            sources["graph"] = self._graph(user, version, embedding, hits)
        return sources

    # -- candidates --------------------------------------------------------------------------

    def _candidates(self, results, config: RetrievalConfig, terms: set[str], out: dict[str, Candidate]) -> dict[str, list[str]]:
        lists: dict[str, list[str]] = {}
        clip = config.max_item_chars

        def add(source: str, c: Candidate, raw: float | None = None) -> None:
            existing = out.setdefault(c.key, c)
            if raw is not None:
                existing.raw[source] = float(raw)
            lists.setdefault(source, []).append(c.key)

        for source in ("memories_vector", "memories_text"):
            for r in results.get(source) or []:
                meta = json.loads(r["metadata"]) if isinstance(r["metadata"], str) else (r["metadata"] or {})
                add(source, Candidate(
                    key=f"memory:{r['id']}", kind="memory", section="memories",
                    text=f"[{_day(r['ts'])}] {_clip(r['content'], clip, terms)}", timestamp=r["ts"],
                    message_ids=list(r["source_message_ids"]), memory_id=str(r["id"]), importance=r["importance"],
                    fact_keys=tuple(meta.get("fact_keys", ())),
                ), r["score"])
        for source in ("messages_vector", "messages_text"):
            for r in results.get(source) or []:
                add(source, _message_candidate(r, clip, terms), r["score"])
        for source in ("summaries_vector", "summaries_text"):
            for r in results.get(source) or []:
                add(source, Candidate(
                    key=f"summary:{r['id']}", kind="summary", section="summaries",
                    text=_clip(r["content"], clip * 2, terms), timestamp=r["ts"],
                    message_ids=list(r["source_message_ids"]),
                ), r["score"])
        for r in results.get("recent_turns") or []:
            c = _message_candidate(r, clip, terms)
            c.kind, c.section, c.pinned = "turn", "session", True
            c.text, c.group = f"[{c.group}] {c.text}", None
            out[c.key] = c  # the session's own turns replace a search hit of the same turn
            lists.setdefault("recent_turns", []).append(c.key)

        profile = results.get("graph_profile")
        if profile:
            self._graph_candidates(profile, terms, add)
        for r in results.get("graph_entities") or []:
            add("graph_entities", _entity_candidate(r), r["score"])
        return lists

    def _graph_candidates(self, profile: dict[str, Any], terms: set[str], add) -> None:
        ranked: list[tuple[float, Candidate]] = []
        if profile.get("name"):
            c = Candidate(
                key="profile:name", kind="profile", section="profile",
                text=f"Name: {profile['name']} (customer since {_day(profile.get('first_seen'))})",
                timestamp=profile.get("first_seen"), graph_path="(:Customer)", importance=1.0, pinned=True,
            )
            ranked.append((10.0, c))
        for p in profile.get("preferences") or []:
            verb = "likes" if p["rel"] == "PREFERS" else "dislikes"
            since = _day(p.get("valid_from"))
            c = Candidate(
                key=f"pref:{p['rel']}:{p['attribute']}:{p['value']}", kind="preference", section="preferences",
                text=f"{verb} {p['attribute']}: {p['value']} (strength {p['strength']:.1f}, {p['mentions']}× since {since})",
                timestamp=p.get("last_seen"), message_ids=list(p.get("source_message_ids") or [])[-5:],
                graph_path=f"(:Customer)-[:{p['rel']}]->({p['value']})", importance=0.5 + 0.5 * (p.get("strength") or 0.5),
                fact_keys=(fact_key(POLARITY_OF[p["rel"]], p["attribute"], p["value"]),),
            )
            overlap = len(terms & content_terms(f"{p['attribute']} {p['value']}"))
            ranked.append(((p.get("strength") or 0.5) + overlap, c))
        for p in profile.get("purchases") or []:
            price = f", ${p['price']:,.0f}" if p.get("price") else ""
            sku = f" ({p['sku']})" if p.get("sku") else ""
            c = Candidate(
                key=f"purchase:{p.get('sku') or p['name']}:{(p.get('source_message_ids') or [0])[0]}", kind="purchase",
                section="purchases", text=f"[{_day(p.get('at'))}] bought {p['name']}{sku}{price}",
                timestamp=p.get("at"), message_ids=list(p.get("source_message_ids") or []),
                graph_path=f"(:Customer)-[:PURCHASED]->({p.get('sku') or p['name']})", importance=0.8,
            )
            overlap = len(terms & content_terms(f"{p['name']} {p.get('category') or ''} bought purchase order"))
            ranked.append((0.8 + overlap, c))
        for i in profile.get("interests") or []:
            c = Candidate(
                key=f"interest:{i['name']}", kind="interest", section="interests",
                text=f"[{_day(i.get('at'))}] asked about {i['name']} ({i['mentions']}×)",
                timestamp=i.get("at"), message_ids=list(i.get("source_message_ids") or [])[-3:],
                graph_path=f"(:Customer)-[:{i['rel']}]->({i['name']})", importance=0.4,
            )
            ranked.append((0.3 + len(terms & content_terms(i["name"])), c))
        ranked.sort(key=lambda x: -x[0])
        for _, c in ranked:
            add("graph_profile", c)

    async def _expand(self, user: str, results, config: RetrievalConfig, candidates: dict[str, Candidate], terms: set[str]) -> None:
        """Neighbouring turns of the best message hits, and turns that mention matched entities."""
        seeds = sorted(
            (c for c in candidates.values() if c.kind == "message"), key=lambda c: -sum(c.parts.values())
        )[: config.neighbour_hits]
        want_neighbours = [c.message_ids[0] for c in seeds if c.message_ids] if config.neighbour_width else []
        entity_ids: dict[int, float] = {}
        for c in candidates.values():
            if c.kind == "entity" and config.entity_mentions:
                for mid in c.mention_ids[-config.entity_mentions:]:
                    entity_ids[mid] = max(entity_ids.get(mid, 0.0), sum(c.parts.values()) * config.neighbour_decay)
        if not want_neighbours and not entity_ids:
            return
        extra_ids = [m for m in entity_ids if f"message:{m}" not in candidates]
        async with self.rt.pool.acquire() as conn:
            rows = await search.expand(conn, user, want_neighbours, config.neighbour_width, extra_ids)
        seed_score = {c.message_ids[0]: sum(c.parts.values()) for c in seeds if c.message_ids}
        for r in rows:
            key = f"message:{r['id']}"
            c = candidates.get(key)
            if c is None:
                c = candidates[key] = _message_candidate(r, config.max_item_chars, terms)
            if r["anchor"] is not None:
                contribution = seed_score.get(r["anchor"], 0.0) * config.neighbour_decay
                c.parts["neighbour"] = max(c.parts.get("neighbour", 0.0), contribution)
            else:
                c.parts["entity_mention"] = max(c.parts.get("entity_mention", 0.0), entity_ids.get(r["id"], 0.0))

    # -- packing -----------------------------------------------------------------------------

    def _pack(self, candidates: list[Candidate], budget: int, config: RetrievalConfig) -> list[Candidate]:
        limit = budget * CHARS_PER_TOKEN
        used = 0
        sections_used: set[str] = set()
        groups_used: set[tuple[str, str]] = set()
        covered: set[int] = set()
        facts: set[str] = set()
        session_limit = int(limit * config.session_share)
        session_used = 0
        packed: list[Candidate] = []
        # equal scores: the compact forms (memories, graph facts) before raw turns
        order = sorted(candidates, key=lambda c: (not c.pinned, -c.score, c.kind == "message", c.key))
        # pinned session turns: newest first, so the latest survive a small budget
        pinned_turns = sorted((c for c in order if c.kind == "turn"), key=lambda c: c.timestamp or datetime.min.replace(tzinfo=timezone.utc), reverse=True)
        order = [c for c in order if c.kind != "turn"]
        order = [c for c in order if c.pinned] + pinned_turns + [c for c in order if not c.pinned]
        for c in order:
            if c.fact_keys and set(c.fact_keys) <= facts:
                continue  # the same fact from another tier is already in
            if c.message_ids and c.kind in ("message", "memory", "summary") and set(c.message_ids) <= covered:
                continue
            cost = len(c.text) + 3  # "- " and newline
            if c.section not in sections_used:
                cost += len(SECTION_TITLES[c.section]) + 5  # "## " + title + newline (+ blank line)
            if c.group and (c.section, c.group) not in groups_used:
                cost += len(c.group) + 5  # "### " + day + newline
            if used + cost > limit:
                continue
            if c.kind == "turn":
                if session_used + cost > session_limit:
                    continue
                session_used += cost
            packed.append(c)
            used += cost
            sections_used.add(c.section)
            if c.group:
                groups_used.add((c.section, c.group))
            covered.update(c.message_ids)
            facts.update(c.fact_keys)
        return packed

    def _render(self, packed: list[Candidate]) -> tuple[str, dict[str, list[str]]]:
        sections: dict[str, list[Candidate]] = {}
        for c in packed:
            sections.setdefault(c.section, []).append(c)
        chronological = {"conversation", "session", "memories", "purchases", "summaries"}
        blocks: list[str] = []
        out: dict[str, list[str]] = {}
        for name in SECTION_ORDER:
            items = sections.get(name)
            if not items:
                continue
            if name in chronological:
                items = sorted(items, key=lambda c: (c.timestamp or datetime.min.replace(tzinfo=timezone.utc), c.key))
            out[name] = [f"[{c.group}] {c.text}" if c.group else c.text for c in items]
            lines, group = [], None
            for c in items:
                if c.group and c.group != group:
                    lines.append(f"### {c.group}")
                group = c.group
                lines.append(f"- {c.text}")
            blocks.append(f"## {SECTION_TITLES[name]}\n" + "\n".join(lines))
        return "\n\n".join(blocks), out


def _message_candidate(r, clip: int, terms: set[str]) -> Candidate:
    who = r["speaker"] or r["role"]
    at = r["ts"] if "ts" in r.keys() else r["created_at"]
    mid = int(r["id"])
    return Candidate(
        key=f"message:{mid}", kind="message", section="conversation",
        text=f"{who}: {_clip(r['content'], clip, terms)}", timestamp=at, group=_day(at),
        message_ids=[mid], importance=0.5, role=r["role"],
    )


def _entity_candidate(r: dict[str, Any]) -> Candidate:
    relation = f", {r['relation']}" if r.get("relation") else ""
    when = f", {_day(r['event_at'])}" if r.get("event_at") else ""
    related = ""
    if r.get("related") or r.get("relationships"):
        rels = r.get("related") or r.get("relationships")
        related = "; " + ", ".join(f"{x['type'].lower().replace('_', ' ')} {x.get('other') or x.get('name')}" for x in rels[:3])
    return Candidate(
        key=f"entity:{r['key']}", kind="entity", section="entities",
        text=f"{r['name']} ({r['type']}{relation}{when}; mentioned {r.get('mentions') or 1}×){related}",
        timestamp=r.get("last_seen"),
        # an entity points at the turns that mention it; those are pulled in as their own items
        message_ids=[], graph_path=f"(:Customer)-[:MENTIONED]->(:Entity {{key: '{r['key']}'}})",
        importance=0.5, mention_ids=list(r.get("source_message_ids") or []),
    )

