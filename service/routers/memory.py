"""Memory endpoints: context for a chat turn, a customer's summary, entity search,
memory history, sample data."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from graph import reads as graph_reads
from service import history
from service.deps import retriever, runtime
from service.errors import Forbidden, InvalidInput, NotFound, StoreUnavailable
from service.profile import customer_profile
from service.retriever import PRESETS, Retriever
from service.runtime import Runtime
from service.schemas import USER_ID_PATTERN, EntitySearchRequest
from vectors import memories as ltm

router = APIRouter(prefix="/memory", tags=["memory"])

UserPath = Path(pattern=USER_ID_PATTERN, description="the customer's identifier")


@router.get("/context/{user_identifier}", summary="Prompt-ready context for a chat turn, with provenance")
async def context(
    user_identifier: str = UserPath,
    query: str = Query("", max_length=4000, description="the customer's message or question"),
    budget: int = Query(1000, ge=50, le=16000, description="tokens (characters / 4)"),
    session_id: uuid.UUID | None = Query(None, description="the current session: its recent turns are included"),
    preset: str = Query("default", description=f"retrieval preset: {', '.join(PRESETS)}"),
    explain: bool = Query(False, description="include each item's score parts"),
    retr: Retriever = Depends(retriever),
) -> JSONResponse:
    config = PRESETS.get(preset)
    if config is None:
        raise InvalidInput(f"unknown preset '{preset}'; use one of {', '.join(PRESETS)}")
    result = await retr.context(user_identifier, query, budget=budget, session_id=session_id, config=config, preset=preset)
    # plain JSON types already: skip FastAPI's recursive encoder on the hot path
    return JSONResponse(result.as_dict(explain=explain))


@router.get("/user/{user_identifier}/summary", summary="Everything LOFT remembers about a customer")
async def user_summary(
    user_identifier: str = UserPath,
    include_history: bool = Query(False, description="also closed preferences and superseded memories"),
    rt: Runtime = Depends(runtime),
) -> dict:
    profile = await customer_profile(rt, user_identifier, include_history=include_history)
    if profile is None:
        raise NotFound(f"no customer '{user_identifier}'")
    return profile


@router.post("/search/entities", summary="Semantic search over a customer's graph entities, with relationships")
async def search_entities(body: EntitySearchRequest, rt: Runtime = Depends(runtime)) -> dict:
    vector = await rt.embedder.aembed_query(body.query)
    try:
        found = await asyncio.wait_for(
            graph_reads.search_entities(rt.graph, body.user_identifier, [float(x) for x in vector], body.limit), 3.0
        )
    except Exception as exc:
        raise StoreUnavailable("neo4j", f"entity search needs Neo4j, which is unavailable: {exc}") from exc
    return {"query": body.query, "user_identifier": body.user_identifier, "entities": found}


@router.get("/{memory_id}/history", summary="Every change to one long-term memory")
async def memory_history(memory_id: uuid.UUID, rt: Runtime = Depends(runtime)) -> dict:
    memory = await ltm.get(rt.pool, memory_id)
    if memory is None:
        raise NotFound(f"no memory {memory_id}")
    events = await ltm.history(rt.pool, memory_id)
    return {
        "memory": _memory_json(memory),
        "history": [
            {"event": e["event"], "old_content": e["old_content"], "new_content": e["new_content"], "detail": _json(e["detail"]), "at": e["created_at"]}
            for e in events
        ],
    }


@router.get("/{memory_id}", summary="One long-term memory")
async def memory_get(memory_id: uuid.UUID, rt: Runtime = Depends(runtime)) -> dict:
    memory = await ltm.get(rt.pool, memory_id)
    if memory is None:
        raise NotFound(f"no memory {memory_id}")
    return _memory_json(memory)


def _json(value):
    import json

    return json.loads(value) if isinstance(value, str) else value


def _memory_json(m) -> dict:
    return {
        "id": str(m["id"]), "user_identifier": m["user_identifier"], "kind": m["kind"], "content": m["content"],
        "subject": m["subject"], "importance": m["importance"], "access_count": m["access_count"],
        "last_accessed_at": m["last_accessed_at"], "created_at": m["created_at"], "updated_at": m["updated_at"],
        "valid_from": m["valid_from"], "valid_to": m["valid_to"],
        "superseded_by": str(m["superseded_by"]) if m["superseded_by"] else None,
        "source_message_ids": list(m["source_message_ids"]), "metadata": _json(m["metadata"]),
    }


SAMPLE_HISTORY: list[tuple[int, list[tuple[str, str]]]] = [
    (30, [
        ("user", "Hi, my name is Sarah and I love modern furniture."),
        ("assistant", "Lovely to meet you, Sarah! Modern pieces are some of our favourites too."),
        ("user", "We just moved to Portland with my husband Tom and our dog Max."),
        ("user", "I'm looking for a sectional for the living room, ideally under $3,000."),
        ("user", "I really don't like glass tables, they show every fingerprint."),
    ]),
    (12, [
        ("user", "I prefer oak for the dining table."),
        ("user", "Do you have oak dining tables?"),
        ("user", "I bought a walnut coffee table last week for the living room."),
    ]),
    (2, [
        ("user", "Actually I prefer walnut now, it matches the coffee table."),
        ("user", "My sister Anna is visiting next month, so we need a guest bed."),
    ]),
]


@router.post("/test/populate-sample-data", summary="Load a sample customer history (not in production)")
async def populate_sample_data(
    user_identifier: str = Query("sarah", pattern=USER_ID_PATTERN), rt: Runtime = Depends(runtime)
) -> dict:
    if rt.settings.env == "production":
        raise Forbidden("sample data is disabled in production (LOFT_ENV=production)")
    now = datetime.now(timezone.utc)
    created = 0
    sessions = []
    async with rt.pool.acquire() as conn, conn.transaction():
        for days_ago, turns in SAMPLE_HISTORY:
            start = now - timedelta(days=days_ago)
            session_id = uuid.uuid5(uuid.NAMESPACE_URL, f"loft-sample:{user_identifier}:{days_ago}")
            await history.create_session(conn, user_identifier, session_id, at=start, channel="sample")
            stored = await history.add_messages(
                conn, user_identifier, session_id,
                [
                    history.NewMessage(role, text, start + timedelta(minutes=i), external_id=f"sample:{days_ago}:{i}")
                    for i, (role, text) in enumerate(turns)
                ],
                summary_idle_s=rt.settings.summary_idle_s,
            )
            created += sum(s.created for s in stored)
            sessions.append(str(session_id))
    return {"user_identifier": user_identifier, "sessions": sessions, "messages_created": created,
            "note": "extraction runs in the background worker; the summary fills in within seconds"}
