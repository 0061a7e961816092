"""``POST /v1/chat``: store the turn, build context, reply, store the reply.

Extraction for memory happens in the worker: the turn is queued in the same transaction
that stores it, so the call returns in milliseconds and nothing is lost. The reply does
not wait for the worker: the turn's own facts (rule extraction, sub-millisecond) go
straight into the answer.

A turn sent with a client id (``message_id`` in the body or an ``Idempotency-Key``
header) is stored once: a retry returns the stored reply (``replayed: true``), or 409
while the first attempt is still being answered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Header, Request

from service import chat, history
from service.access import ANY_ROLE, Principal, allow
from service.deps import retriever, runtime
from service.errors import Conflict, InvalidInput, NotFound
from service.middleware import note_customer
from service.retrieval import Retriever
from service.runtime import Runtime
from service.schemas import ChatRequest, ChatResponse, ErrorResponse, IdempotencyKey

router = APIRouter(prefix="/v1", tags=["chat"])


@router.post(
    "/chat",
    response_model=ChatResponse,
    summary="One chat turn: remember it, answer it",
    responses={409: {"model": ErrorResponse, "description": "the same turn (same client id) is still being answered"}},
)
async def chat_turn(
    body: ChatRequest,
    request: Request,
    rt: Runtime = Depends(runtime),
    retr: Retriever = Depends(retriever),
    principal: Principal = Depends(allow(*ANY_ROLE)),
    idempotency_key: IdempotencyKey | None = Header(
        default=None, description="a client id for this turn; a retry with the same key returns the stored reply"
    ),
) -> ChatResponse:
    principal.require_customer(body.user_identifier)
    note_customer(request.scope, body.user_identifier)
    if body.message_id and idempotency_key and body.message_id != idempotency_key:
        raise InvalidInput("message_id and the Idempotency-Key header name different turns")
    key = body.message_id or idempotency_key
    external_id = f"chat:{key}" if key else None
    user = body.user_identifier

    if external_id is not None:
        async with rt.pool.acquire() as conn:
            earlier = await history.message_by_external_id(conn, user, external_id)
        if earlier is not None:
            return await _replay(rt, retr, body, earlier)

    now = datetime.now(UTC)
    async with rt.pool.acquire() as conn, conn.transaction():
        session_id = await history.ensure_session(conn, user, body.session_id, at=now)
        (stored,) = await history.add_messages(
            conn,
            user,
            session_id,
            [history.NewMessage("user", body.message, now, external_id=external_id)],
            summary_idle_s=rt.settings.summary_idle_s,
        )
    if not stored.created:  # the same turn arrived twice at once: answer the retry from the first
        async with rt.pool.acquire() as conn:
            assert external_id is not None  # only a turn with an id can be a duplicate
            earlier = await history.message_by_external_id(conn, user, external_id)
        if earlier is None:  # erased in between: nothing to replay
            raise NotFound(f"no turn '{external_id}' for customer '{user}'")
        return await _replay(rt, retr, body, earlier)

    context = await retr.context(
        user,
        body.message,
        budget=body.budget,
        session_id=session_id,
        exclude_message_ids=frozenset({stored.id}),
    )
    ctx = context.as_dict()
    turns: list[dict[str, str]] = []
    if rt.llm is not None:  # the LLM gets the session's turns as chat messages
        async with rt.pool.acquire() as conn:
            recent = await history.recent_turns(conn, user, session_id, 10)
        turns = [
            {"role": t["role"], "content": t["content"]}
            for t in recent
            if t["id"] != stored.id and t["role"] != "system"
        ]
    # the facts of this very turn, without waiting for the worker
    said = rt.rules.extract(body.message, at=now, role="user")
    text = await chat.reply(rt, user, body.message, ctx, turns, said=said)
    async with rt.pool.acquire() as conn, conn.transaction():
        (answer,) = await history.add_messages(
            conn,
            user,
            session_id,
            [history.NewMessage("assistant", text, datetime.now(UTC), external_id=history.reply_key(stored.id))],
            summary_idle_s=rt.settings.summary_idle_s,
        )
    return ChatResponse(
        session_id=session_id,
        message_id=stored.id,
        reply=text,
        reply_message_id=answer.id,
        context=ctx,
        llm=rt.llm is not None,
    )


async def _replay(rt: Runtime, retr: Retriever, body: ChatRequest, earlier: dict[str, Any]) -> ChatResponse:
    """A retry of a turn already stored: its stored reply, with the context as it is now."""
    if earlier["content"] != body.message:
        raise Conflict("this message_id / Idempotency-Key was already used for a different message")
    async with rt.pool.acquire() as conn:
        answer = await history.message_by_external_id(conn, body.user_identifier, history.reply_key(earlier["id"]))
    if answer is None:
        raise Conflict("this turn is still being answered; retry in a moment")
    context = await retr.context(
        body.user_identifier,
        body.message,
        budget=body.budget,
        session_id=earlier["session_id"],
        exclude_message_ids=frozenset({earlier["id"]}),
        track_access=False,
    )
    return ChatResponse(
        session_id=earlier["session_id"],
        message_id=earlier["id"],
        reply=answer["content"],
        reply_message_id=answer["id"],
        context=context.as_dict(),
        llm=rt.llm is not None,
        replayed=True,
    )
