"""Short-term tier endpoints: import messages, list sessions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Query

from service import history
from service.access import ANY_ROLE, allow
from service.deps import runtime
from service.runtime import Runtime
from service.schemas import USER_ID_PATTERN, ImportRequest, ImportResponse, SessionPage

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], dependencies=[Depends(allow(*ANY_ROLE))])

UserPath = Path(pattern=USER_ID_PATTERN, description="the customer's identifier")


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
            await history.create_session(conn, user_identifier, session_id, at=first_at, channel=body.channel)
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
            max_speakers=rt.settings.max_speakers,
        )
    created = sum(s.created for s in stored)
    return ImportResponse(
        session_id=session_id, message_ids=[s.id for s in stored], created=created, duplicates=len(stored) - created
    )


@router.get(
    "/{user_identifier}", response_model=SessionPage, summary="Sessions with their messages, newest first (paginated)"
)
async def list_sessions(
    user_identifier: str = UserPath,
    limit: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    sessions, next_cursor = await history.list_sessions(rt.pool, user_identifier, limit=limit, cursor=cursor)
    return {"user_identifier": user_identifier, "sessions": sessions, "next_cursor": next_cursor}
