"""Memory endpoints: context for a chat turn, a customer's summary, entity search,
memory history, sample data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from loft_memory.models import (
    USER_ID_PATTERN,
    ContextResponse,
    CustomerGraph,
    CustomerSummary,
    EntitySearchRequest,
    EntitySearchResponse,
    LongTermMemory,
    MemoryDeleted,
    MemoryHistory,
    MemoryPage,
    RecommendationsResponse,
    SafeText,
    SampleDataRequest,
    SampleDataResponse,
)
from service.api.access import allow, identify, own_origin
from service.api.deps import ContextQuery, context_query, not_being_erased, runtime
from service.api.deps import core as memory_core
from service.api.middleware import note_customer, request_id_of
from service.core import sample
from service.core.memory import Memory
from service.core.principal import ADMIN_ONLY, ANY_ROLE, Principal
from service.errors import Forbidden
from service.runtime import Runtime

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
    asked: ContextQuery = Depends(context_query),
    core: Memory = Depends(memory_core),
) -> JSONResponse:
    result = await core.context(
        user_identifier,
        asked.query,
        budget=asked.budget,
        session_id=asked.session_id,
        preset=asked.preset,
        as_of=asked.as_of,
    )
    # the audit entry is written once the answer is out (stamped with the read's time)
    by, rid = identify(request), request_id_of(request.scope)
    entry = BackgroundTask(core.audit_read, user_identifier, by=by, request_id=rid, at=datetime.now(UTC))
    # plain JSON types already: skip FastAPI's recursive encoder on the hot path
    return JSONResponse(result.as_dict(explain=asked.explain), background=entry)


@router.get(
    "/user/{user_identifier}/summary",
    response_model=CustomerSummary,
    summary="Everything LOFT remembers about a customer",
)
async def user_summary(
    user_identifier: str = UserPath,
    include_history: bool = Query(False, description="also closed preferences and superseded memories"),
    core: Memory = Depends(memory_core),
) -> CustomerSummary:
    return await core.summary(user_identifier, include_history=include_history)


@router.get(
    "/user/{user_identifier}/graph",
    response_model=CustomerGraph,
    summary="The customer's neighbourhood in the knowledge graph, as nodes and edges",
)
async def user_graph(
    user_identifier: str = UserPath,
    limit: int = Query(40, ge=1, le=200, description="at most this many facts, and as many mentioned entities"),
    include_history: bool = Query(False, description="also preferences that were superseded"),
    core: Memory = Depends(memory_core),
) -> CustomerGraph:
    """Preferences and dislikes, purchases, interests, mentioned people and things and how
    they relate, and the category and styles of the products among them. Needs Neo4j
    (503 while it is away)."""
    return await core.graph_view(user_identifier, limit=limit, include_history=include_history)


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
    core: Memory = Depends(memory_core),
) -> dict[str, Any]:
    """From the precomputed co-purchase neighbours of the customer's products, the
    consumables they buy again, their preferences and their categories' best sellers. The
    work is bounded and every store read has a timeout: a read that runs out of time or
    memory, or a graph that is away, gives a cheaper answer flagged ``degraded``, never an
    error. 409 while the customer's erasure is pending."""
    return await core.recommend(user_identifier, limit=limit, category=category, max_price=max_price)


@router.post(
    "/search/entities",
    response_model=EntitySearchResponse,
    summary="Semantic search over a customer's graph entities, with relationships",
)
async def search_entities(
    body: EntitySearchRequest,
    request: Request,
    core: Memory = Depends(memory_core),
    principal: Principal = Depends(allow(*ANY_ROLE)),
) -> EntitySearchResponse:
    principal.require_customer(body.user_identifier)
    note_customer(request.scope, body.user_identifier)
    return await core.search_entities(body.user_identifier, body.query, body.limit)


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
    core: Memory = Depends(memory_core),
) -> MemoryPage:
    return await core.memories(user_identifier, include_superseded=include_superseded, limit=limit, cursor=cursor)


@router.get(
    "/user/{user_identifier}/memories/{memory_id}", response_model=LongTermMemory, summary="One long-term memory"
)
async def memory_get(
    memory_id: uuid.UUID, user_identifier: str = UserPath, core: Memory = Depends(memory_core)
) -> LongTermMemory:
    return await core.memory(user_identifier, memory_id)


@router.get(
    "/user/{user_identifier}/memories/{memory_id}/history",
    response_model=MemoryHistory,
    summary="Every change to one long-term memory (add, update, supersede, delete)",
)
async def memory_history(
    memory_id: uuid.UUID, user_identifier: str = UserPath, core: Memory = Depends(memory_core)
) -> MemoryHistory:
    return await core.memory_history(user_identifier, memory_id)


@router.delete(
    "/user/{user_identifier}/memories/{memory_id}",
    response_model=MemoryDeleted,
    summary="Forget one long-term memory and the preference it states (the turns it came from stay)",
)
async def memory_delete(
    request: Request, memory_id: uuid.UUID, user_identifier: str = UserPath, core: Memory = Depends(memory_core)
) -> MemoryDeleted:
    """The memory goes, with its words in its history; the preference it states is closed
    in the graph (it stays only as history, like a replaced preference), so the next
    context, summary and graph view no longer state it, and a job still queued for an
    older message does not write it again. The turns it came from stay in the session's
    history, and so do conversation summaries; a new message that says it again is
    remembered again. Needs Neo4j when the memory states a preference (503, nothing
    deleted, while it is away)."""
    by, rid = identify(request), request_id_of(request.scope)
    return await core.forget(user_identifier, memory_id, by=by, request_id=rid)


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
