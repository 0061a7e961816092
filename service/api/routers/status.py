"""``GET /memory/status``: health read from the servers themselves.

Anyone may ask; an anonymous answer costs a ``SELECT 1`` and a ``RETURN 1``, shared by
every caller who asks while it runs. Versions, the queue and the table counts are for
admin keys: the counts (which grow with the data) are computed one at a time per process
and reused for ``LOFT_STATUS_STATS_TTL_S``, so however often status is asked, it holds at
most two of the API's PostgreSQL connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from graph import reads as graph_reads
from loft_memory.models import EmbedderStatus, LlmStatus, StatusResponse, StatusStats, StoreStatus
from service.api.access import optional_principal
from service.api.deps import runtime
from service.core.principal import Role
from service.postgres import history, queue, users
from service.runtime import Runtime
from vectors import memories as ltm
from vectors import summaries as vector_summaries

router = APIRouter(tags=["status"])

CHECK_TIMEOUT_S = 3.0

PG_INFO = """
SELECT current_setting('server_version') AS version,
       (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector
"""


@dataclass
class StoreHealth:
    """One store's answer: ``ok``, or why not (``error``); for an admin, its version, the
    queue's counts (PostgreSQL) and the table or node counts (or why they are missing)."""

    ok: bool
    error: str | None = None
    about: dict[str, str | None] = field(default_factory=dict)  # version, pgvector or edition
    jobs: dict[str, int] | None = None
    stats: dict[str, int] | None = None
    stats_error: str | None = None

    def shown(self) -> StoreStatus:
        """As the status answer lists it (its counts are listed apart, under ``stats``)."""
        if not self.ok:
            return StoreStatus(ok=False, error=self.error)
        shown: dict[str, object] = {"ok": True, **self.about}
        if self.stats_error is not None:
            shown["stats_error"] = self.stats_error
        return StoreStatus.model_validate(shown)


@dataclass
class _Counted:
    """Both stores' counts, as computed at ``at`` (monotonic)."""

    at: float
    postgres: StoreHealth
    neo4j: StoreHealth


class Health:
    """One process's view of the stores' health: probes shared by concurrent callers, and
    the admins' statistics computed one at a time and reused for ``stats_ttl_s``."""

    def __init__(self, stats_ttl_s: float) -> None:
        self.stats_ttl_s = stats_ttl_s
        self._probe: asyncio.Future[tuple[StoreHealth, StoreHealth]] | None = None
        self._stats_lock = asyncio.Lock()
        self._stats: _Counted | None = None

    async def probe(self, rt: Runtime) -> tuple[StoreHealth, StoreHealth]:
        """``(postgres, neo4j)``, each ok or not. A caller who asks while a probe runs gets
        that probe's answer."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(
                asyncio.gather(_check("postgres", _postgres_alive(rt)), _check("neo4j", _neo4j_alive(rt)))
            )
        return await asyncio.shield(self._probe)

    async def details(self, rt: Runtime) -> tuple[StoreHealth, StoreHealth]:
        """What an admin sees: versions, the queue's counts (always fresh: they say whether
        the worker has caught up) and the table counts (reused while recent)."""
        async with self._stats_lock:
            pg, neo = await asyncio.gather(
                _check("postgres", _postgres_details(rt)), _check("neo4j", _neo4j_details(rt))
            )
            if not pg.ok:
                return pg, neo
            cached = self._stats
            if cached is None or time.monotonic() - cached.at > self.stats_ttl_s:
                pg_counts, neo_counts = await asyncio.gather(
                    _check("postgres statistics", _postgres_counts(rt)),
                    _check("neo4j statistics", _neo4j_counts(rt)) if neo.ok else _nothing(),
                )
                cached = _Counted(time.monotonic(), pg_counts, neo_counts)
                if pg_counts.ok and neo_counts.ok:
                    self._stats = cached
            for part, counted in ((pg, cached.postgres), (neo, cached.neo4j)):
                if part.ok and counted.ok:
                    part.stats = counted.stats
                elif part.ok:  # slow counts are not an outage: the store answered
                    part.stats_error = counted.error
            return pg, neo


async def _postgres_alive(rt: Runtime) -> StoreHealth:
    async with rt.pool.acquire(timeout=CHECK_TIMEOUT_S) as conn:
        await conn.fetchval("SELECT 1")
    return StoreHealth(True)


async def _neo4j_alive(rt: Runtime) -> StoreHealth:
    await rt.graph_store.driver.execute_query("RETURN 1", database_=rt.graph_store.database)
    return StoreHealth(True)


async def _postgres_details(rt: Runtime) -> StoreHealth:
    async with rt.pool.acquire(timeout=CHECK_TIMEOUT_S) as conn:
        info = await conn.fetchrow(PG_INFO)
        jobs = await queue.counts(conn)
    assert info is not None  # one row, always
    return StoreHealth(True, about={"version": info["version"], "pgvector": info["pgvector"]}, jobs=jobs)


async def _neo4j_details(rt: Runtime) -> StoreHealth:
    info = await graph_reads.server_info(rt.graph_store)
    return StoreHealth(True, about={"version": info["version"], "edition": info["edition"]})


async def _postgres_counts(rt: Runtime) -> StoreHealth:
    async with rt.pool.acquire(timeout=CHECK_TIMEOUT_S) as conn:
        stats = {"users": await users.count(conn)} | await history.counts(conn) | await ltm.counts(conn)
        stats["summaries"] = await vector_summaries.count(conn)
    return StoreHealth(True, stats=stats)


async def _neo4j_counts(rt: Runtime) -> StoreHealth:
    return StoreHealth(True, stats=await graph_reads.stats(rt.graph_store))


async def _nothing() -> StoreHealth:
    return StoreHealth(False, "not counted")


async def _check(name: str, probe: Awaitable[StoreHealth]) -> StoreHealth:
    try:
        return await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
    except Exception as exc:  # any failure of a store is reported, not raised
        return StoreHealth(False, f"{name} is unavailable ({_kind(exc)})")


def _kind(exc: BaseException) -> str:
    """The kind of a store's failure, never its message (which may name hosts or data)."""
    return "no answer in time" if isinstance(exc, TimeoutError) else type(exc).__name__


def _overall(pg: StoreHealth, neo: StoreHealth) -> str:
    if pg.ok and neo.ok:
        return "ok"
    return "degraded" if pg.ok else "down"  # without Neo4j chat still answers from PostgreSQL


@router.get(
    "/memory/status",
    response_model=StatusResponse,
    summary="Health of every store, read from the servers (details with an admin key)",
    responses={
        503: {"model": StatusResponse, "description": "a store is down: 'degraded' (Neo4j) or 'down' (PostgreSQL)"}
    },
)
async def status(request: Request, rt: Runtime = Depends(runtime)) -> JSONResponse:
    """Anyone may ask whether the service is ok, degraded or down; versions, counts, the
    queue and store errors need an admin key (or a service running without keys)."""
    health: Health = request.app.state.health
    principal = optional_principal(request)
    if principal is None or principal.role is not Role.ADMIN:
        overall = _overall(*await health.probe(rt))
        return JSONResponse({"status": overall}, status_code=200 if overall == "ok" else 503)
    pg, neo = await health.details(rt)
    overall = _overall(pg, neo)
    body = StatusResponse(
        status=overall,
        stores={"postgres": pg.shown(), "neo4j": neo.shown()},
        embedder=EmbedderStatus(model=rt.embedder.model_name, dim=rt.embedder.dim),
        llm=LlmStatus(enabled=rt.llm is not None, model=rt.settings.llm_model if rt.llm is not None else None),
        stats=_stats(pg, neo),
    )
    # only what was set: a store lists the details it has
    return JSONResponse(body.model_dump(mode="json", exclude_unset=True), status_code=200 if overall == "ok" else 503)


def _stats(pg: StoreHealth, neo: StoreHealth) -> StatusStats:
    stats: dict[str, object] = {}
    if pg.ok:
        stats |= {"postgres": pg.stats or {}, "jobs": pg.jobs}
    if neo.ok:
        stats |= {"neo4j": neo.stats or {}}
    return StatusStats.model_validate(stats)
