"""The retriever's sources, each returning typed candidates best first.

- PostgreSQL: every per-customer search in one statement (``vectors.search.hybrid``):
  pgvector and BM25 full-text over long-term memories, turns and summaries, and the
  current session's recent turns.
- The graph: the customer's current facts at their graph version, as every door reads
  them (:mod:`service.facts`: this process's cache, else the snapshot read with the
  version in the same round trip, else one Cypher read behind the circuit breaker), and
  the entities nearest the query, ranked in-process from the facts' embeddings.
- The expansion: the neighbouring turns of the best hits and the turns that mention a
  matched entity (``vectors.search.expand``).

The SQL and Cypher live with the modules that own those stores; this module only calls
them and turns their rows into candidates, in the process's CPU pool. A candidate's text
(a turn of 32 KB clipped to a window around what matched, work that grows with its
length) is made later, when scoring or packing first reads it (``retriever.choose``, in
the pool too). PostgreSQL is the tier the context cannot do without; the graph costs its
candidates, never the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from graph.cache import CustomerGraph
from service import facts
from service.errors import StoreUnavailable
from service.postgres import graph_snapshots
from service.retrieval import candidates as make
from service.retrieval.candidates import Candidate
from service.retrieval.config import RetrievalConfig, item_chars
from service.retrieval.fusion import Expansion, Period
from service.runtime import Runtime
from vectors import search

log = logging.getLogger("loft.retriever")

POSTGRES_DOWN = "PostgreSQL is unavailable; retry shortly"


@dataclass(frozen=True)
class Request:
    """One context request, as every source sees it."""

    user: str
    query: str  # already clipped
    terms: set[str]  # the query's content words
    embedding: np.ndarray | None  # None for an empty query
    session_id: uuid.UUID | None
    config: RetrievalConfig
    budget: int = 1000  # tokens: a long text is clipped to a share of it
    period: Period | None = None  # the [start, end) the question names
    speakers: tuple[str, ...] = ()  # the names of the people who speak in the history
    pool: asyncpg.Pool | None = None  # where the reads go (None: the primary; see db.read_pool)


@dataclass
class Found:
    """What the sources found: each source's candidates best first, and how each tier fared."""

    ranked: dict[str, list[Candidate]] = field(default_factory=dict)
    latest: datetime | None = None  # the customer's newest turn: "now" for recency and periods
    mentioned: list[list[int]] = field(default_factory=list)  # each graph entity: the turns that mention it
    tiers: dict[str, bool] = field(default_factory=lambda: {"postgres": True, "neo4j": True, "vectors": True})
    errors: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    graph: CustomerGraph | None = None  # the customer's facts the graph source read (service.facts)


async def gather(rt: Runtime, req: Request, state: graph_snapshots.GraphState) -> Found:
    """Run the sources concurrently. PostgreSQL failing fails the request (StoreUnavailable
    when it is away); the graph failing is reported in ``tiers`` and ``errors``."""
    found = Found()
    started = time.perf_counter()
    runs: dict[str, Coroutine[Any, Any, Found]] = {"postgres": postgres(rt, req)}
    if req.config.graph_profile.enabled:
        runs["graph"] = graph(rt, req, state)
    tasks = {name: asyncio.create_task(run) for name, run in runs.items()}
    for name, task in tasks.items():
        try:
            part = await task
        except Exception as exc:
            if name != "graph":
                for other in tasks.values():
                    other.cancel()
                if facts.unreachable(exc):
                    raise StoreUnavailable("postgres", POSTGRES_DOWN) from exc
                raise
            if not facts.unreachable(exc):
                log.error("graph read failed for a context: %r", exc)
            found.tiers["neo4j"] = False
            found.errors[name] = facts.describe(exc)
            continue
        found.timings[name] = (time.perf_counter() - started) * 1000
        found.ranked.update(part.ranked)
        found.latest = found.latest or part.latest
        found.mentioned += part.mentioned
        found.graph = found.graph or part.graph
    return found


async def postgres(rt: Runtime, req: Request) -> Found:
    """Every PostgreSQL source in one round trip, as candidates."""
    config = req.config
    limits = {
        name: getattr(config, name).limit if getattr(config, name).enabled else 0 for name in search.HYBRID_SOURCES
    }
    async with (req.pool or rt.pool).acquire() as conn:
        found = await search.hybrid(
            conn,
            req.user,
            req.embedding,
            req.query,
            limits,
            req.session_id,
            req.period,
            config.mmr_weight > 0,
            req.speakers,
            window=rt.settings.search_window,
        )
    ranked = await rt.cpu(_candidates, found.rows, item_chars(config, req.budget), req.terms)
    return Found(ranked=ranked, latest=found.latest)


def _candidates(rows: Mapping[str, list[Any]], limit: int, terms: set[str]) -> dict[str, list[Candidate]]:
    """The hybrid statement's rows as candidates, each source's best first."""
    ranked: dict[str, list[Candidate]] = {}
    # a row several sources found is one candidate, holding each source's raw score (in this
    # order: fusion's), and its text is made once
    built: dict[tuple[object, str], Candidate] = {}
    for source, build in (
        ("memories_vector", make.memory),
        ("memories_text", make.memory),
        ("messages_vector", make.message),
        ("messages_text", make.message),
        ("messages_period", make.message),
        ("summaries_vector", make.summary),
        ("summaries_text", make.summary),
    ):
        ranked[source] = []
        for r in rows[source]:
            key = (build, r["id"])
            c = built.get(key)
            if c is None:
                c = built[key] = build(r, limit, terms)
            ranked[source].append(_scored(c, source, r["score"]))
    ranked["recent_turns"] = [make.turn(r, limit, terms) for r in rows["recent_turns"]]
    return ranked


async def graph(rt: Runtime, req: Request, state: graph_snapshots.GraphState) -> Found:
    """The customer's graph facts at their version (:mod:`service.facts`, the read every door
    shares) and the ``graph_entities`` entities nearest the query. No users row: nothing in
    the graph either."""
    entry = await facts.graph_at(rt, req.user, state)
    if entry is None:
        return Found()
    hits = req.config.graph_entities.limit if req.config.graph_entities.enabled else 0
    if entry.customer is None:
        return Found(graph=entry)
    return Found(
        graph=entry,
        mentioned=[e.source_message_ids for e in entry.entities if e.source_message_ids],
        ranked={
            "graph_profile": make.profile(entry.customer, req.terms),
            "graph_entities": [
                _scored(make.entity(e), "graph_entities", score) for e, score in entry.nearest(req.embedding, hits)
            ],
        },
    )


async def expand(
    rt: Runtime, req: Request, plan: Expansion, known: Mapping[str, Candidate]
) -> list[tuple[Candidate, int | None]]:
    """The turns the plan asks for, each with the hit it neighbours (None: a mentioned turn).
    A turn already among the candidates (``known``) keeps its form there, so it is not built again."""
    config = req.config
    async with (req.pool or rt.pool).acquire() as conn:
        rows = await search.expand(conn, req.user, plan.anchors, config.neighbour_width, plan.fetch)
    limit = item_chars(config, req.budget)

    def build() -> list[tuple[Candidate, int | None]]:
        return [
            (known.get(make.message_key(int(r["id"]))) or make.message(r, limit, req.terms), r["anchor"]) for r in rows
        ]

    return await rt.cpu(build) if rows else []


def _scored(c: Candidate, source: str, raw: float) -> Candidate:
    c.raw[source] = float(raw)
    return c
