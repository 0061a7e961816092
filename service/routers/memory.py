"""Memory endpoints: context for a chat turn, a customer's summary, entity search,
memory history, sample data."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from graph import reads as graph_reads
from service import audit, erasure, graph_view, recommendations, sample, users
from service.access import ADMIN_ONLY, ANY_ROLE, Principal, allow, identify, own_origin
from service.deps import not_being_erased, retriever, runtime
from service.errors import Forbidden, InvalidInput, NotFound
from service.middleware import note_customer, request_id_of
from service.outages import is_outage
from service.pagination import decode_cursor, encode_cursor
from service.profile import customer_profile
from service.retrieval import PRESETS, Retriever
from service.runtime import Runtime
from service.schemas import (
    MAX_QUERY_CHARS,
    QUESTION_TIME_EXAMPLES,
    USER_ID_PATTERN,
    ContextResponse,
    CustomerGraph,
    CustomerSummary,
    EntitySearchRequest,
    EntitySearchResponse,
    LongTermMemory,
    MemoryDeleted,
    MemoryEvent,
    MemoryHistory,
    MemoryPage,
    QuestionTime,
    RecommendationsResponse,
    SafeText,
    SampleDataRequest,
    SampleDataResponse,
)
from vectors import memories as ltm
from vectors.pg import Conn

# every route here is about one customer: chat and admin keys for any, a customer key
# for its own (checked on the path's {user_identifier}, or on the body's)
# every route here is about one customer, and answers 409 while their erasure is pending
router = APIRouter(
    prefix="/memory", tags=["memory"], dependencies=[Depends(allow(*ANY_ROLE)), Depends(not_being_erased)]
)

UserPath = Path(pattern=USER_ID_PATTERN, description="the customer's identifier")


@router.get(
    "/context/{user_identifier}",
    response_model=ContextResponse,
    summary="Prompt-ready context for a chat turn, with provenance",
)
async def context(
    request: Request,
    user_identifier: str = UserPath,
    query: Annotated[
        SafeText,
        Query(
            max_length=MAX_QUERY_CHARS,
            description="the customer's message or question",
            examples=["which sofa did I like?", "what did I order for 9999-12-31?", "and on 0001-01-01?"],
        ),
    ] = "",
    budget: int = Query(1000, ge=50, le=16000, description="tokens (characters / 4)"),
    session_id: uuid.UUID | None = Query(None, description="the current session: its recent turns are included"),
    preset: str = Query("default", description=f"retrieval preset: {', '.join(PRESETS)}"),
    explain: bool = Query(False, description="include each item's score parts"),
    as_of: Annotated[
        QuestionTime | None,
        Query(
            description="when the question is asked (ISO 8601 with a time zone, between 1970-01-01 and tomorrow; "
            "default now): periods and relative dates it names ('last May', 'two weeks ago') are resolved against "
            "it, in its time zone, and recency counts from it",
            examples=QUESTION_TIME_EXAMPLES,
        ),
    ] = None,
    retr: Retriever = Depends(retriever),
    rt: Runtime = Depends(runtime),
) -> JSONResponse:
    config = PRESETS.get(preset)
    if config is None:
        raise InvalidInput(f"unknown preset '{preset}'; use one of {', '.join(PRESETS)}")
    result = await retr.context(
        user_identifier, query, budget=budget, session_id=session_id, config=config, preset=preset, as_of=as_of
    )
    # the audit entry is written once the answer is out (stamped with the read's time)
    entry = BackgroundTask(
        audit.record_read,
        rt.pool,
        rt.erasure_key,
        identify(request),
        user_identifier,
        request_id=request_id_of(request.scope),
        at=datetime.now(UTC),
    )
    # plain JSON types already: skip FastAPI's recursive encoder on the hot path
    return JSONResponse(result.as_dict(explain=explain), background=entry)


@router.get(
    "/user/{user_identifier}/summary",
    response_model=CustomerSummary,
    summary="Everything LOFT remembers about a customer",
)
async def user_summary(
    user_identifier: str = UserPath,
    include_history: bool = Query(False, description="also closed preferences and superseded memories"),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    profile = await customer_profile(rt, user_identifier, include_history=include_history)
    if profile is None:
        raise NotFound(f"no customer '{user_identifier}'")
    return profile


@router.get(
    "/user/{user_identifier}/graph",
    response_model=CustomerGraph,
    summary="The customer's neighbourhood in the knowledge graph, as nodes and edges",
)
async def user_graph(
    user_identifier: str = UserPath,
    limit: int = Query(40, ge=1, le=200, description="at most this many facts, and as many mentioned entities"),
    include_history: bool = Query(False, description="also preferences that were superseded"),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Preferences and dislikes, purchases, interests, mentioned people and things and how
    they relate, and the category and styles of the products among them. Needs Neo4j
    (503 while it is away)."""
    rows = await asyncio.wait_for(
        graph_reads.customer_graph(rt.graph, user_identifier, limit=limit, include_closed=include_history), 3.0
    )
    if rows is None:
        raise NotFound(f"no customer '{user_identifier}' in the graph")
    return graph_view.shape(user_identifier, rows)


@router.get(
    "/user/{user_identifier}/recommendations",
    response_model=RecommendationsResponse,
    summary="Products to suggest, each with its reasons and graph path",
)
async def user_recommendations(
    user_identifier: str = UserPath,
    limit: int = Query(10, ge=1, le=50, description="how many products"),
    category: Annotated[
        SafeText | None, Query(max_length=64, description="only this category and its sub-categories")
    ] = None,
    max_price: float | None = Query(None, gt=0, le=10_000_000, description="only products up to this price"),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    wanted = None
    if category:
        found = rt.catalog.match_categories(category)
        if not found:
            raise InvalidInput(f"unknown category '{category}'; use one of: {', '.join(rt.catalog.categories)}")
        wanted = found[0]
    return await recommendations.recommend(
        rt.graph,
        user_identifier,
        database=rt.settings.neo4j_database,
        limit=limit,
        category=wanted,
        max_price=max_price,
    )


@router.post(
    "/search/entities",
    response_model=EntitySearchResponse,
    summary="Semantic search over a customer's graph entities, with relationships",
)
async def search_entities(
    body: EntitySearchRequest,
    request: Request,
    rt: Runtime = Depends(runtime),
    principal: Principal = Depends(allow(*ANY_ROLE)),
) -> EntitySearchResponse:
    principal.require_customer(body.user_identifier)
    note_customer(request.scope, body.user_identifier)
    await users.refuse_while_erasing(rt.pool, body.user_identifier)
    vector = await rt.embedder.aembed_query(body.query, user=body.user_identifier)
    try:
        found = await asyncio.wait_for(
            graph_reads.search_entities(rt.graph, body.user_identifier, [float(x) for x in vector], body.limit), 3.0
        )
    except Exception as exc:
        if not (is_outage(exc) or isinstance(exc, TimeoutError)):
            raise
        # degraded, and said so: this process's copy of the customer's graph, if it is at
        # their current graph version (not one of an erased customer, nor a stale one)
        cached = rt.graph_cache.latest(body.user_identifier)
        if cached is not None:
            current = await users.get(rt.pool, body.user_identifier)
            if current is None or current["graph_version"] != cached.version:
                cached = None
        hits = (cached.view(vector, body.limit) or {}).get("matched", []) if cached else []
        return EntitySearchResponse(
            query=body.query,
            user_identifier=body.user_identifier,
            entities=[_cached_hit(e) for e in hits],
            tiers={"neo4j": False},
            errors={
                "neo4j": "Neo4j is unavailable; "
                + (
                    "answered from this process's copy of the customer's current graph"
                    if cached
                    else "no current copy of the customer's graph is at hand"
                )
            },
        )
    return EntitySearchResponse(query=body.query, user_identifier=body.user_identifier, entities=found)


def _cached_hit(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": e["key"],
        "name": e.get("name"),
        "type": e.get("type"),
        "summary": e.get("summary"),
        "event_at": e.get("event_at"),
        "score": e["score"],
        "relation": e.get("relation"),
        "mentions": e.get("mentions"),
        "last_seen": e.get("last_seen"),
        "source_message_ids": e.get("source_message_ids"),
        "relationships": [],
    }


@router.get(
    "/user/{user_identifier}/memories",
    response_model=MemoryPage,
    summary="A customer's long-term memories, newest first",
)
async def memories_list(
    user_identifier: str = UserPath,
    include_superseded: bool = Query(False, description="also memories a newer one replaced"),
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
    rt: Runtime = Depends(runtime),
) -> MemoryPage:
    listed = f"memories\x00{user_identifier}"
    before = decode_cursor(rt.erasure_key, listed, cursor, uuid.UUID) if cursor else None
    rows = await ltm.page(
        rt.pool, user_identifier, include_superseded=include_superseded, limit=limit + 1, before=before
    )
    page, more = rows[:limit], len(rows) > limit
    return MemoryPage(
        user_identifier=user_identifier,
        memories=[_memory(m) for m in page],
        next_cursor=encode_cursor(rt.erasure_key, listed, page[-1]["created_at"], page[-1]["id"]) if more else None,
    )


@router.get(
    "/user/{user_identifier}/memories/{memory_id}", response_model=LongTermMemory, summary="One long-term memory"
)
async def memory_get(
    memory_id: uuid.UUID, user_identifier: str = UserPath, rt: Runtime = Depends(runtime)
) -> LongTermMemory:
    memory = await ltm.get(rt.pool, user_identifier, memory_id)
    if memory is None:  # also another customer's memory: the same answer, nothing revealed
        raise NotFound(f"no memory {memory_id} for customer '{user_identifier}'")
    return _memory(memory)


@router.get(
    "/user/{user_identifier}/memories/{memory_id}/history",
    response_model=MemoryHistory,
    summary="Every change to one long-term memory (add, update, supersede, delete)",
)
async def memory_history(
    memory_id: uuid.UUID, user_identifier: str = UserPath, rt: Runtime = Depends(runtime)
) -> MemoryHistory:
    memory = await ltm.get(rt.pool, user_identifier, memory_id)
    events = await ltm.history(rt.pool, user_identifier, memory_id)
    if memory is None and not events:
        raise NotFound(f"no memory {memory_id} for customer '{user_identifier}'")
    return MemoryHistory(
        memory=_memory(memory) if memory is not None else None,
        history=[
            MemoryEvent(
                event=e["event"],
                old_content=e["old_content"],
                new_content=e["new_content"],
                detail=_json(e["detail"]),
                at=e["created_at"],
            )
            for e in events
        ],
    )


@router.delete(
    "/user/{user_identifier}/memories/{memory_id}",
    response_model=MemoryDeleted,
    summary="Forget one long-term memory and the preference it states (the turns it came from stay)",
)
async def memory_delete(
    request: Request, memory_id: uuid.UUID, user_identifier: str = UserPath, rt: Runtime = Depends(runtime)
) -> MemoryDeleted:
    """The memory goes, with its words in its history; the preference it states is closed
    in the graph (it stays only as history, like a replaced preference), so the next
    context, summary and graph view no longer state it, and a job still queued for an
    older message does not write it again. The turns it came from stay in the session's
    history, and so do conversation summaries; a new message that says it again is
    remembered again. Needs Neo4j when the memory states a preference (503, nothing
    deleted, while it is away)."""
    return await forget(rt, identify(request), request_id_of(request.scope), user_identifier, memory_id)


async def forget(
    rt: Runtime, principal: Principal, request_id: str | None, user: str, memory_id: uuid.UUID
) -> MemoryDeleted:
    """Forget one memory and write its audit entry in the same transaction (REST and MCP)."""

    async def audited(conn: Conn) -> None:
        detail = {"memory_id": str(memory_id)}
        await audit.record(conn, rt.erasure_key, principal, "delete_memory", user, request_id=request_id, detail=detail)

    forgotten = await erasure.forget_memory(rt, user, memory_id, audit=audited)
    if forgotten is None:
        raise NotFound(f"no memory {memory_id} for customer '{user}'")
    return MemoryDeleted(
        id=memory_id,
        deleted=True,
        events_scrubbed=forgotten.events_scrubbed,
        graph_facts_closed=forgotten.graph_facts_closed,
    )


def _json(value: object) -> dict[str, Any]:
    import json

    loaded = json.loads(value) if isinstance(value, str) else value
    return dict(loaded) if isinstance(loaded, dict) else {}


def _memory(m: Mapping[str, Any] | asyncpg.Record) -> LongTermMemory:
    return LongTermMemory(
        id=m["id"],
        kind=m["kind"],
        content=m["content"],
        subject=m["subject"],
        importance=m["importance"],
        access_count=m["access_count"],
        last_accessed_at=m["last_accessed_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        valid_from=m["valid_from"],
        valid_to=m["valid_to"],
        superseded_by=m["superseded_by"],
        source_message_ids=list(m["source_message_ids"]),
    )


@router.post(
    "/test/populate-sample-data",
    response_model=SampleDataResponse,
    summary="Load a sample customer history (LOFT_ENV=development only; admin)",
    dependencies=[Depends(allow(*ADMIN_ONLY))],
)
async def populate_sample_data(
    body: SampleDataRequest, request: Request, rt: Runtime = Depends(runtime)
) -> SampleDataResponse:
    if rt.settings.env != "development":
        raise Forbidden(f"sample data is only available with LOFT_ENV=development (this is {rt.settings.env})")
    # the address the request reached, not its Host (which a rebinding page chooses)
    origin = request.headers.get("origin")
    if origin is not None and not own_origin(origin, request.scope.get("server"), rt.settings.allowed_hosts):
        raise Forbidden("sample data may only be requested from this service's own pages")
    return await sample.populate(rt, body.user_identifier)
