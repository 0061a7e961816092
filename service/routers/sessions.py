"""Short-term tier endpoints: import messages, list sessions."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Path, Query

from loft_memory.models import (
    USER_ID_PATTERN,
    ImportRequest,
    ImportResponse,
    SessionMessagesPage,
    SessionPage,
)
from service.access import ANY_ROLE, allow
from service.deps import core as memory_core
from service.deps import not_being_erased
from service.memory import Memory

router = APIRouter(
    prefix="/v1/sessions",
    tags=["sessions"],
    dependencies=[Depends(allow(*ANY_ROLE)), Depends(not_being_erased)],
)

UserPath = Path(pattern=USER_ID_PATTERN, description="the customer's identifier")
MAX_SESSIONS_PER_PAGE = 100
MAX_SESSION_MESSAGES_PER_PAGE = 200


@router.post(
    "/{user_identifier}/messages",
    response_model=ImportResponse,
    status_code=201,
    summary="Import messages with their real timestamps and roles (back-fills, benchmarks)",
)
async def import_messages(
    body: ImportRequest, user_identifier: str = UserPath, core: Memory = Depends(memory_core)
) -> ImportResponse:
    return await core.import_messages(user_identifier, body)


@router.get(
    "/{user_identifier}",
    response_model=SessionPage,
    summary="Sessions with their newest messages, newest first (paginated)",
)
async def list_sessions(
    user_identifier: str = UserPath,
    limit: int = Query(20, ge=1, le=MAX_SESSIONS_PER_PAGE, description="sessions per page"),
    cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
    core: Memory = Depends(memory_core),
) -> SessionPage:
    """Each session carries its newest ``LOFT_SESSION_LIST_MESSAGES`` turns (20 by default);
    a longer session says so with ``messages_cursor``, which reads its older turns a page at a
    time from ``GET /v1/sessions/{user_identifier}/{session_id}/messages``."""
    return await core.sessions(user_identifier, limit=limit, cursor=cursor)


@router.get(
    "/{user_identifier}/{session_id}/messages",
    response_model=SessionMessagesPage,
    summary="One session's messages, a page at a time from the newest",
)
async def session_messages(
    session_id: uuid.UUID,
    user_identifier: str = UserPath,
    limit: int = Query(50, ge=1, le=MAX_SESSION_MESSAGES_PER_PAGE, description="messages per page"),
    cursor: str | None = Query(
        None,
        max_length=200,
        description="next_cursor of the previous page, or a listed session's messages_cursor; omit for the newest",
    ),
    core: Memory = Depends(memory_core),
) -> SessionMessagesPage:
    """The session's turns before ``cursor`` (its newest without one), in order. 404 for a
    session that is not this customer's, exactly as for one that does not exist."""
    return await core.session_messages(user_identifier, session_id, limit=limit, cursor=cursor)
