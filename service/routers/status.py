"""``GET /memory/status``: health read from the servers themselves."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from graph import reads as graph_reads
from service import history, queue, users
from service.access import Role, optional_principal
from service.deps import runtime
from service.runtime import Runtime
from service.schemas import StatusResponse
from vectors import memories as ltm
from vectors import summaries as vector_summaries

router = APIRouter(tags=["status"])

CHECK_TIMEOUT_S = 3.0

PG_INFO = """
SELECT current_setting('server_version') AS version,
       (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector
"""


async def _postgres(rt: Runtime) -> dict[str, Any]:
    async with rt.pool.acquire(timeout=CHECK_TIMEOUT_S) as conn:
        info = dict(await conn.fetchrow(PG_INFO) or {})
        stats = {"users": await users.count(conn)} | await history.counts(conn) | await ltm.counts(conn)
        stats["summaries"] = await vector_summaries.count(conn)
        jobs = await queue.counts(conn)
    return {"ok": True, "version": info["version"], "pgvector": info["pgvector"], "stats": stats, "jobs": jobs}


async def _neo4j(rt: Runtime) -> dict[str, Any]:
    info = await graph_reads.server_info(rt.graph)
    stats = await graph_reads.stats(rt.graph)
    return {"ok": True, "version": info["version"], "edition": info["edition"], "stats": stats}


async def _check(name: str, probe: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
    except Exception as exc:  # any failure of a store is reported, not raised
        detail = str(exc) or type(exc).__name__
        return {"ok": False, "error": f"{name} is unavailable: {detail}"}


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
    pg, neo = await asyncio.gather(_check("postgres", _postgres(rt)), _check("neo4j", _neo4j(rt)))
    stats: dict[str, Any] = {}
    if pg["ok"]:
        stats |= {"postgres": pg.pop("stats"), "jobs": pg.pop("jobs")}
    if neo["ok"]:
        stats |= {"neo4j": neo.pop("stats")}
    if pg["ok"] and neo["ok"]:
        overall = "ok"
    elif pg["ok"]:
        overall = "degraded"  # chat still answers from PostgreSQL
    else:
        overall = "down"
    principal = optional_principal(request)
    if principal is None or principal.role is not Role.ADMIN:
        return JSONResponse({"status": overall}, status_code=200 if overall == "ok" else 503)
    body = {
        "status": overall,
        "stores": {"postgres": pg, "neo4j": neo},
        "embedder": {"model": rt.embedder.model_name, "dim": rt.embedder.dim},
        "llm": {"enabled": rt.llm is not None, "model": rt.settings.llm_model if rt.llm is not None else None},
        "stats": stats,
    }
    return JSONResponse(body, status_code=200 if overall == "ok" else 503)
