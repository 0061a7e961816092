"""``POST /v1/chat``: store the turn, build context, reply, store the reply.

Extraction does not happen here: the turn is queued for the worker in the same
transaction that stores it, so the call returns in milliseconds and nothing is lost.
"""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Depends

from service import chat, history
from service.access import ANY_ROLE, Principal, allow
from service.deps import retriever, runtime
from service.retriever import Retriever
from service.runtime import Runtime
from service.schemas import ChatRequest, ChatResponse

router = APIRouter(prefix="/v1", tags=["chat"])


@router.post("/chat", response_model=ChatResponse, summary="One chat turn: remember it, answer it")
async def chat_turn(
    body: ChatRequest, rt: Runtime = Depends(runtime), retr: Retriever = Depends(retriever),
    principal: Principal = Depends(allow(*ANY_ROLE)),
) -> ChatResponse:
    principal.require_customer(body.user_identifier)
    now = datetime.now(timezone.utc)
    async with rt.pool.acquire() as conn, conn.transaction():
        session_id = await history.ensure_session(conn, body.user_identifier, body.session_id, at=now)
        (stored,) = await history.add_messages(
            conn, body.user_identifier, session_id, [history.NewMessage("user", body.message, now)],
            summary_idle_s=rt.settings.summary_idle_s,
        )
    context = await retr.context(
        body.user_identifier, body.message, budget=body.budget, session_id=session_id,
        exclude_message_ids=frozenset({stored.id}),
    )
    ctx = context.as_dict()
    turns: list[dict[str, str]] = []
    if rt.llm is not None:  # the LLM gets the session's turns as chat messages
        async with rt.pool.acquire() as conn:
            recent = await history.recent_turns(conn, body.user_identifier, session_id, 10)
        turns = [{"role": t["role"], "content": t["content"]} for t in recent if t["id"] != stored.id and t["role"] != "system"]
    text = await chat.reply(rt, body.user_identifier, body.message, ctx, turns)
    async with rt.pool.acquire() as conn, conn.transaction():
        (answer,) = await history.add_messages(
            conn, body.user_identifier, session_id, [history.NewMessage("assistant", text, datetime.now(timezone.utc))],
            summary_idle_s=rt.settings.summary_idle_s,
        )
    return ChatResponse(
        session_id=session_id, message_id=stored.id, reply=text, reply_message_id=answer.id, context=ctx, llm=rt.llm is not None
    )
