"""Short-term tier endpoints: import messages, list sessions, delete a session or a turn."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Path, Query

from loft_memory.models import (
    USER_ID_PATTERN,
    ErrorResponse,
    ImportRequest,
    ImportResponse,
    MessageDeleted,
    SessionDeleted,
    SessionMessagesPage,
    SessionPage,
)
from service.api.access import allow
from service.api.deps import core as memory_core
from service.api.deps import not_being_erased
from service.core.memory import Memory
from service.core.principal import ANY_ROLE

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


WHAT_STAYS = """What the customer's memory learned from these turns before stays: long-term memories and
graph facts are the customer's memory, not the transcript (forget one with
`DELETE /memory/user/{user_identifier}/memories/{memory_id}`, everything with the erasure
`DELETE /memory/user/{user_identifier}`); their provenance may still name the deleted turns' ids.
Turns the worker had not filed yet are never learned from. Nothing is kept against a replay
(unlike an erasure): the ids of deleted turns and sessions may be sent again."""


# `:uuid` makes only a UUID segment match, so a path that is not a session (an identifier
# smuggling "%2F..") is answered 404 by no route rather than 405 by this one
@router.delete(
    "/{user_identifier}/{session_id:uuid}",
    response_model=SessionDeleted,
    summary="Delete a session: its turns and what was made only from them",
    responses={404: {"model": ErrorResponse, "description": "no such session for this customer"}},
    description="""Deletes the session, its turns, their passages and share of the customer's term
statistics, the session's conversation summary and the work queued about them, in one transaction
inside the fences erasure and the worker use: a worker batch in flight either committed before or
writes nothing, and a turn being added to the session meanwhile finds it gone (404).

"""
    + WHAT_STAYS,
)
async def delete_session(
    session_id: uuid.UUID, user_identifier: str = UserPath, core: Memory = Depends(memory_core)
) -> SessionDeleted:
    return await core.forget_session(user_identifier, session_id)


@router.delete(
    "/{user_identifier}/{session_id:uuid}/messages/{message_id}",
    response_model=MessageDeleted,
    summary="Delete one turn of a session (e.g. undo the last one), returned as it was",
    responses={404: {"model": ErrorResponse, "description": "no such turn in this customer's session"}},
    description="""Deletes the turn, its passages, its share of the term statistics and its queued
ingestion; the session's summary goes too if it was written from this turn, and is written again
without it once the session is quiet. The newest turn is the last of
`GET /v1/sessions/{user_identifier}/{session_id}/messages?limit=1`.

"""
    + WHAT_STAYS,
)
async def delete_message(
    session_id: uuid.UUID,
    message_id: int = Path(ge=1, le=2**63 - 1, description="the turn's id"),
    user_identifier: str = UserPath,
    core: Memory = Depends(memory_core),
) -> MessageDeleted:
    return await core.forget_turn(user_identifier, session_id, message_id)
