"""Short-term tier endpoints: import messages, list sessions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Query

from service import consent, history
from service.access import ANY_ROLE, allow
from service.deps import not_being_erased, runtime
from service.runtime import Runtime
from service.schemas import (
    USER_ID_PATTERN,
    ImportRequest,
    ImportResponse,
    SessionMessage,
    SessionMessagesPage,
    SessionPage,
)

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
    body: ImportRequest, user_identifier: str = UserPath, rt: Runtime = Depends(runtime)
) -> ImportResponse:
    # messages are stored in the order given (ids follow it); the session starts at the earliest
    first_at = min((m.created_at for m in body.messages if m.created_at), default=datetime.now(UTC))
    async with rt.pool.acquire() as conn, conn.transaction():
        if body.session_id is None:
            session_id = await history.ensure_session(conn, user_identifier, None, at=first_at, channel=body.channel)
        else:
            session_id = body.session_id
            await history.create_session(
                conn, user_identifier, session_id, at=first_at, channel=body.channel, tombstone_key=rt.erasure_key
            )
        await consent.hold(conn, rt.erasure_key, user_identifier, session_id)
        stored = await history.add_messages(
            conn,
            user_identifier,
            session_id,
            [
                history.NewMessage(m.role, m.content, m.created_at, m.speaker, m.external_id, m.metadata)
                for m in body.messages
            ],
            summary_idle_s=rt.settings.summary_idle_s,
            lane="bulk",  # a back-fill must not hold up live conversations
            tombstone_key=rt.erasure_key,  # an erased customer's import sent again is refused (410)
            max_speakers=rt.settings.max_speakers,
        )
    created = sum(s.created for s in stored)
    return ImportResponse(
        session_id=session_id, message_ids=[s.id for s in stored], created=created, duplicates=len(stored) - created
    )


@router.get(
    "/{user_identifier}",
    response_model=SessionPage,
    summary="Sessions with their newest messages, newest first (paginated)",
)
async def list_sessions(
    user_identifier: str = UserPath,
    limit: int = Query(20, ge=1, le=MAX_SESSIONS_PER_PAGE, description="sessions per page"),
    cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Each session carries its newest ``LOFT_SESSION_LIST_MESSAGES`` turns (20 by default);
    a longer session says so with ``messages_cursor``, which reads its older turns a page at a
    time from ``GET /v1/sessions/{user_identifier}/{session_id}/messages``."""
    sessions, next_cursor = await history.list_sessions(
        rt.pool,
        user_identifier,
        limit=limit,
        cursor=cursor,
        key=rt.erasure_key,
        per_session=rt.settings.session_list_messages,
    )
    return {"user_identifier": user_identifier, "sessions": sessions, "next_cursor": next_cursor}


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
    rt: Runtime = Depends(runtime),
) -> SessionMessagesPage:
    """The session's turns before ``cursor`` (its newest without one), in order. 404 for a
    session that is not this customer's, exactly as for one that does not exist."""
    messages, older = await history.session_page(
        rt.pool, user_identifier, session_id, limit=limit, cursor=cursor, key=rt.erasure_key
    )
    return SessionMessagesPage(
        user_identifier=user_identifier,
        session_id=session_id,
        messages=[SessionMessage(**m) for m in messages],
        next_cursor=older,
    )
