"""The retriever's sources, each returning typed candidates best first.

- PostgreSQL: every per-customer search in one statement (``vectors.search.hybrid``):
  pgvector and BM25 full-text over long-term memories, turns and summaries, and the
  current session's recent turns.
- The graph: the customer's current facts and the entities nearest the query, from the
  per-customer cache when it holds the customer's graph version, else from the customer's
  snapshot in PostgreSQL at that version (read with the version, same round trip:
  ``service.graph_snapshots``), else one Cypher read (``graph.reads.customer_facts``)
  behind the circuit breaker, written back as the snapshot off the hot path.
- The expansion: the neighbouring turns of the best hits and the turns that mention a
  matched entity (``vectors.search.expand``).

The SQL and Cypher live with the modules that own those stores; this module only calls
them and turns their rows into candidates (in the process's CPU pool: a turn of 32 KB is
clipped to a window around what matched, work that grows with its length). PostgreSQL is
the tier the context cannot do without; the graph costs its candidates, never the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from graph import reads as graph_reads
from graph.cache import CustomerGraph
from service import graph_snapshots
from service.errors import StoreUnavailable
from service.outages import is_outage
from service.retrieval import candidates as make
from service.retrieval.candidates import Candidate
from service.retrieval.config import GRAPH_TIMEOUT_S, RetrievalConfig, item_chars
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


@dataclass
class Found:
    """What the sources found: each source's candidates best first, and how each tier fared."""

    ranked: dict[str, list[Candidate]] = field(default_factory=dict)
    latest: datetime | None = None  # the customer's newest turn: "now" for recency and periods
    mentioned: list[list[int]] = field(default_factory=list)  # each graph entity: the turns that mention it
    tiers: dict[str, bool] = field(default_factory=lambda: {"postgres": True, "neo4j": True, "vectors": True})
    errors: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def unreachable(exc: BaseException) -> bool:
    """A store that is away or too slow to answer (rather than a bug)."""
    return is_outage(exc) or isinstance(exc, TimeoutError)


def describe(exc: BaseException) -> str:
    """What a client may read about a failed graph tier: the kind of failure, not its internals."""
    if isinstance(exc, StoreUnavailable):
        return exc.detail
    if isinstance(exc, TimeoutError):
        return "Neo4j did not answer in time"
    return f"Neo4j is unavailable ({type(exc).__name__})"


async def graph_state(rt: Runtime, user: str) -> graph_snapshots.GraphState:
    """The customer's graph version (None: no such customer), and the snapshot at it when
    this process's cached copy is not at it."""
    cached = rt.graph_cache.latest(user)
    return await graph_snapshots.state(
        rt.pool, user, cached.version if cached else None, with_snapshot=rt.settings.graph_snapshots
    )


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
                if unreachable(exc):
                    raise StoreUnavailable("postgres", POSTGRES_DOWN) from exc
                raise
            if not unreachable(exc):
                log.error("graph read failed for a context: %r", exc)
            found.tiers["neo4j"] = False
            found.errors[name] = describe(exc)
            continue
        found.timings[name] = (time.perf_counter() - started) * 1000
        found.ranked.update(part.ranked)
        found.latest = found.latest or part.latest
        found.mentioned += part.mentioned
    return found


async def postgres(rt: Runtime, req: Request) -> Found:
    """Every PostgreSQL source in one round trip, as candidates."""
    config = req.config
    limits = {
        name: getattr(config, name).limit if getattr(config, name).enabled else 0 for name in search.HYBRID_SOURCES
    }
    async with rt.pool.acquire() as conn:
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
    # a row several sources found is built (and its text clipped) once: fusion keeps the
    # first source's form (this order is its order) and only adds the others' scores
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
            first = built.get(key)
            c = replace(first, raw={}, parts={}) if first is not None else build(r, limit, terms)
            built.setdefault(key, c)
            ranked[source].append(_scored(c, source, r["score"]))
    ranked["recent_turns"] = [make.turn(r, limit, terms) for r in rows["recent_turns"]]
    return ranked


async def graph(rt: Runtime, req: Request, state: graph_snapshots.GraphState) -> Found:
    """The customer's graph facts and the ``graph_entities`` entities nearest the query: from
    the cache when it holds this version, else the snapshot at it, else one Cypher read
    (then cached, and written back as the snapshot). No users row: nothing in the graph either."""
    version = state.version
    if version is None:
        return Found()
    entry = rt.graph_cache.get(req.user, version)
    if entry is None and state.snapshot is not None:
        entry = rt.graph_cache.put_entry(req.user, state.snapshot)
    if entry is None:
        breaker = rt.graph_breaker
        if not breaker.allow():
            raise StoreUnavailable("neo4j", "Neo4j was unreachable moments ago (circuit open); skipped")
        try:
            facts = await asyncio.wait_for(graph_reads.customer_facts(rt.graph, req.user), GRAPH_TIMEOUT_S)
        except Exception as exc:
            if is_outage(exc):
                breaker.failure()  # the store is away; a timeout of one slow read is not
            raise
        breaker.success()
        entry = rt.graph_cache.put(req.user, version, facts)
        if rt.settings.graph_snapshots:
            _write_back(rt, req.user, entry)
    hits = req.config.graph_entities.limit if req.config.graph_entities.enabled else 0
    view = entry.view(req.embedding, hits)
    if not view:
        return Found()
    return Found(
        mentioned=[e["source_message_ids"] for e in entry.entities if e.get("source_message_ids")],
        ranked={
            "graph_profile": make.profile(view, req.terms),
            "graph_entities": [
                _scored(make.entity(r), "graph_entities", r["score"]) for r in view.get("matched") or []
            ],
        },
    )


async def expand(
    rt: Runtime, req: Request, plan: Expansion, known: Mapping[str, Candidate]
) -> list[tuple[Candidate, int | None]]:
    """The turns the plan asks for, each with the hit it neighbours (None: a mentioned turn).
    A turn already among the candidates (``known``) keeps its form there, so it is not built again."""
    config = req.config
    async with rt.pool.acquire() as conn:
        rows = await search.expand(conn, req.user, plan.anchors, config.neighbour_width, plan.fetch)
    limit = item_chars(config, req.budget)

    def build() -> list[tuple[Candidate, int | None]]:
        return [
            (known.get(make.message_key(int(r["id"]))) or make.message(r, limit, req.terms), r["anchor"]) for r in rows
        ]

    return await rt.cpu(build) if rows else []


_write_backs: set[asyncio.Task[None]] = set()


def _write_back(rt: Runtime, user: str, entry: CustomerGraph) -> None:
    """Store a graph read as the customer's snapshot, off the hot path."""

    async def run() -> None:
        try:
            await graph_snapshots.write_back(rt.pool, user, entry)
        except Exception as exc:  # an optimisation: the next cold read goes to the graph again
            log.warning("could not store a graph snapshot: %r", exc)

    task = asyncio.create_task(run())
    _write_backs.add(task)
    task.add_done_callback(_write_backs.discard)


def _scored(c: Candidate, source: str, raw: float) -> Candidate:
    c.raw[source] = float(raw)
    return c
