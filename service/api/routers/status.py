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
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from graph import reads as graph_reads
from loft_memory.models import StatusResponse
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


class Health:
    """One process's view of the stores' health: probes shared by concurrent callers, and
    the admins' statistics computed one at a time and reused for ``stats_ttl_s``."""

    def __init__(self, stats_ttl_s: float) -> None:
        self.stats_ttl_s = stats_ttl_s
        self._probe: asyncio.Future[tuple[dict[str, Any], dict[str, Any]]] | None = None
        self._stats_lock = asyncio.Lock()
        self._stats: tuple[float, dict[str, Any]] | None = None

    async def probe(self, rt: Runtime) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(postgres, neo4j)``: each ``{"ok": True}`` or ``{"ok": False, "error": …}``. A
        caller who asks while a probe runs gets that probe's answer."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(
                asyncio.gather(_check("postgres", _postgres_alive(rt)), _check("neo4j", _neo4j_alive(rt)))
            )
        return await asyncio.shield(self._probe)

    async def details(self, rt: Runtime) -> tuple[dict[str, Any], dict[str, Any]]:
        """What an admin sees: versions, the queue's counts (always fresh: they say whether
        the worker has caught up) and the table counts (reused while recent)."""
        async with self._stats_lock:
            pg, neo = await asyncio.gather(
                _check("postgres", _postgres_details(rt)), _check("neo4j", _neo4j_details(rt))
            )
            if not pg["ok"]:
                return pg, neo
            cached = self._stats
            if cached is None or time.monotonic() - cached[0] > self.stats_ttl_s:
                counted = await asyncio.gather(
                    _check("postgres statistics", _postgres_counts(rt)),
                    _check("neo4j statistics", _neo4j_counts(rt)) if neo["ok"] else _nothing(),
                )
                cached = (time.monotonic(), {"postgres": counted[0], "neo4j": counted[1]})
                if counted[0]["ok"] and counted[1]["ok"]:
                    self._stats = cached
            for store, part in (("postgres", pg), ("neo4j", neo)):
                counted_here = cached[1][store]
                if part["ok"] and counted_here["ok"]:
                    part["stats"] = counted_here["stats"]
                elif part["ok"]:  # slow counts are not an outage: the store answered
                    part["stats_error"] = counted_here["error"]
            return pg, neo


async def _postgres_alive(rt: Runtime) -> dict[str, Any]:
    async with rt.pool.acquire(timeout=CHECK_TIMEOUT_S) as conn:
        await conn.fetchval("SELECT 1")
    return {"ok": True}


async def _neo4j_alive(rt: Runtime) -> dict[str, Any]:
    await rt.graph_store.driver.execute_query("RETURN 1", database_=rt.graph_store.database)
    return {"ok": True}


async def _postgres_details(rt: Runtime) -> dict[str, Any]:
    async with rt.pool.acquire(timeout=CHECK_TIMEOUT_S) as conn:
        info = dict(await conn.fetchrow(PG_INFO) or {})
        jobs = await queue.counts(conn)
    return {"ok": True, "version": info["version"], "pgvector": info["pgvector"], "jobs": jobs}


async def _neo4j_details(rt: Runtime) -> dict[str, Any]:
    info = await graph_reads.server_info(rt.graph_store)
    return {"ok": True, "version": info["version"], "edition": info["edition"]}


async def _postgres_counts(rt: Runtime) -> dict[str, Any]:
    async with rt.pool.acquire(timeout=CHECK_TIMEOUT_S) as conn:
        stats = {"users": await users.count(conn)} | await history.counts(conn) | await ltm.counts(conn)
        stats["summaries"] = await vector_summaries.count(conn)
    return {"ok": True, "stats": stats}


async def _neo4j_counts(rt: Runtime) -> dict[str, Any]:
    return {"ok": True, "stats": await graph_reads.stats(rt.graph_store)}


async def _nothing() -> dict[str, Any]:
    return {"ok": False, "error": "not counted"}


async def _check(name: str, probe: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
    except Exception as exc:  # any failure of a store is reported, not raised
        return {"ok": False, "error": f"{name} is unavailable ({_kind(exc)})"}


def _kind(exc: BaseException) -> str:
    """The kind of a store's failure, never its message (which may name hosts or data)."""
    return "no answer in time" if isinstance(exc, TimeoutError) else type(exc).__name__


def _overall(pg: dict[str, Any], neo: dict[str, Any]) -> str:
    if pg["ok"] and neo["ok"]:
        return "ok"
    return "degraded" if pg["ok"] else "down"  # without Neo4j chat still answers from PostgreSQL


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
    stats: dict[str, Any] = {}
    if pg["ok"]:
        stats |= {"postgres": pg.pop("stats", {}), "jobs": pg.pop("jobs")}
    if neo["ok"]:
        stats |= {"neo4j": neo.pop("stats", {})}
    body = {
        "status": overall,
        "stores": {"postgres": pg, "neo4j": neo},
        "embedder": {"model": rt.embedder.model_name, "dim": rt.embedder.dim},
        "llm": {"enabled": rt.llm is not None, "model": rt.settings.llm_model if rt.llm is not None else None},
        "stats": stats,
    }
    return JSONResponse(body, status_code=200 if overall == "ok" else 503)
