"""``POST /v1/chat``: store the turn, build context, reply, store the reply.

Extraction for memory happens in the worker: the turn is queued in the same transaction
that stores it, so the call returns in milliseconds and nothing is lost. The reply does
not wait for the worker: the turn's own facts (rule extraction, sub-millisecond for a
chat-sized message, in the process's CPU pool) go straight into the answer.

A turn sent with a client id (``message_id`` in the body or an ``Idempotency-Key``
header) is stored once: a retry returns the stored reply (``replayed: true``), or 409
while the first attempt is still being answered.

With ``"stream": true`` the answer comes as server-sent events (``start``, ``token``…,
``done`` with the very JSON of the non-streaming call); everything that can fail with a
status (validation, access, a pending erasure, a store that is down while the turn is
stored) fails before the stream starts, as an ordinary JSON error. The reply is made and
stored by a task of its own, so a client that goes away mid-stream still finds the stored
reply when it retries with the same id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from service import chat, consent, history, users
from service.access import ANY_ROLE, Principal, StreamSlot, allow
from service.deps import retriever, runtime
from service.errors import Conflict, InvalidInput, LoftError, NotFound
from service.middleware import note_customer, request_id_of
from service.outages import is_outage
from service.retrieval import Retriever
from service.runtime import Runtime
from service.schemas import ChatRequest, ChatResponse, ErrorResponse, IdempotencyKey
from vectors.pg import Conn

log = logging.getLogger("loft.chat")

router = APIRouter(prefix="/v1", tags=["chat"])

STREAM_DESCRIPTION = """With `"stream": true`: `text/event-stream`, one event per step:

- `start` `{session_id, message_id, llm, replayed}` — the turn is stored;
- `token` `{text}` — the next piece of the reply (the LLM's tokens, or the offline answer a few words at a time);
- `reset` `{}` — drop the pieces so far (the LLM failed mid-answer; the offline answer follows);
- `done` — the same JSON as the non-streaming answer (`ChatResponse`), with the reply as stored;
- `error` `{error, detail, request_id}` — the reply could not be finished (nothing after it).
"""

# one server-sent event as clients (and schema checkers) parse it: its name and its JSON text
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["start", "token", "reset", "done", "error"]},
        "data": {"type": "string", "description": "a JSON object (see the operation's description)"},
    },
}

# replies being made for streams: a reference keeps each task alive when its client leaves
_REPLYING: set[asyncio.Task[None]] = set()


@router.post(
    "/chat",
    response_model=ChatResponse,
    summary="One chat turn: remember it, answer it (optionally streamed as server-sent events)",
    responses={
        200: {
            "description": "the answer (JSON), or with `stream: true` its server-sent events",
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
        },
        409: {
            "model": ErrorResponse,
            "description": "the same turn (same client id) is still being answered, or the customer is being erased",
        },
        410: {
            "model": ErrorResponse,
            "description": "the turn's id (or session) belonged to a customer who was erased; nothing was stored",
        },
    },
    description=STREAM_DESCRIPTION,
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
) -> ChatResponse | StreamingResponse:
    principal.require_customer(body.user_identifier)
    note_customer(request.scope, body.user_identifier)
    if body.message_id and idempotency_key and body.message_id != idempotency_key:
        raise InvalidInput("message_id and the Idempotency-Key header name different turns")
    if body.stream:  # refused (429) before the turn is stored; held until the reply is
        request.state.stream_slot = request.app.state.budgets.reserve_stream(principal)
    key = body.message_id or idempotency_key
    external_id = f"chat:{key}" if key else None
    user = body.user_identifier
    mode = await consent.mode_of(rt.pool, rt.erasure_key, user)
    if mode == "off":
        return await _unremembered(body, request, rt, retr)

    if external_id is not None:
        async with rt.pool.acquire() as conn:
            await users.refuse_while_erasing(conn, user)  # a replay reads the customer
            earlier = await history.message_by_external_id(conn, user, external_id)
        if earlier is not None:
            return _maybe_stream(body, request, await _replay(rt, retr, body, earlier))

    now = datetime.now(UTC)
    async with rt.pool.acquire() as conn, conn.transaction():
        session_id = await _session(conn, rt, user, body.session_id, at=now, mode=mode)
        (stored,) = await history.add_messages(
            conn,
            user,
            session_id,
            [history.NewMessage("user", body.message, now, external_id=external_id)],
            summary_idle_s=rt.settings.summary_idle_s,
            tombstone_key=rt.erasure_key,  # a retry of an erased turn is refused (410)
        )
    if not stored.created:  # the same turn arrived twice at once: answer the retry from the first
        async with rt.pool.acquire() as conn:
            assert external_id is not None  # only a turn with an id can be a duplicate
            earlier = await history.message_by_external_id(conn, user, external_id)
        if earlier is None:  # erased in between: nothing to replay
            raise NotFound(f"no turn '{external_id}' for customer '{user}'")
        return _maybe_stream(body, request, await _replay(rt, retr, body, earlier))

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
    # the facts of this very turn, without waiting for the worker (in the CPU pool: the work
    # grows with the message, and the event loop serves everyone)
    said = await rt.cpu_long(rt.rules.extract, body.message, at=now, role="user")

    async def store_reply(text: str) -> ChatResponse:
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
            memory_mode=mode,
        )

    if not body.stream:
        return await store_reply(await chat.reply(rt, user, body.message, ctx, turns, said=said))

    async def produce(emit: _Emit) -> ChatResponse:
        parts: list[str] = []
        async for piece in chat.reply_stream(rt, user, body.message, ctx, turns, said=said):
            if piece.reset:
                parts.clear()
                emit("reset", {})
            elif piece.text:
                parts.append(piece.text)
                emit("token", {"text": piece.text})
        return await store_reply("".join(parts).strip())

    start = {"session_id": str(session_id), "message_id": stored.id, "llm": rt.llm is not None, "replayed": False}
    return _event_stream(request, start, produce)


async def _session(
    conn: Conn, rt: Runtime, user: str, session_id: uuid.UUID | None, *, at: datetime, mode: consent.Mode
) -> uuid.UUID:
    """The turn's session; under 'session' mode it is marked to be removed once idle, and a
    session already removed as idle is followed by a new one."""
    if mode != "session":
        return await history.ensure_session(conn, user, session_id, at=at, tombstone_key=rt.erasure_key)
    try:
        async with conn.transaction():  # a savepoint: a missing session leaves the turn's transaction usable
            found = await history.ensure_session(conn, user, session_id, at=at, tombstone_key=rt.erasure_key)
    except NotFound:
        found = await history.ensure_session(conn, user, None, at=at, tombstone_key=rt.erasure_key)
    await consent.mark_ephemeral(conn, found)
    return found


async def _unremembered(
    body: ChatRequest, request: Request, rt: Runtime, retr: Retriever
) -> ChatResponse | StreamingResponse:
    """A turn under memory mode 'off': answered from what is known (the catalog; nothing of
    the customer is kept), and neither the turn nor the reply is stored."""
    user = body.user_identifier
    async with rt.pool.acquire() as conn:
        await users.refuse_while_erasing(conn, user)
    session_id = body.session_id or uuid.uuid4()
    context = await retr.context(user, body.message, budget=body.budget, track_access=False)
    ctx = context.as_dict()
    said = await rt.cpu_long(rt.rules.extract, body.message, at=datetime.now(UTC), role="user")

    def answer(text: str) -> ChatResponse:
        return ChatResponse(
            session_id=session_id,
            message_id=None,
            reply=text,
            reply_message_id=None,
            context=ctx,
            llm=rt.llm is not None,
            memory_mode="off",
        )

    if not body.stream:
        return answer(await chat.reply(rt, user, body.message, ctx, [], said=said))

    async def produce(emit: _Emit) -> ChatResponse:
        parts: list[str] = []
        async for piece in chat.reply_stream(rt, user, body.message, ctx, [], said=said):
            if piece.reset:
                parts.clear()
                emit("reset", {})
            elif piece.text:
                parts.append(piece.text)
                emit("token", {"text": piece.text})
        return answer("".join(parts).strip())

    start = {"session_id": str(session_id), "message_id": None, "llm": rt.llm is not None, "replayed": False}
    return _event_stream(request, start, produce)


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


# --- server-sent events ------------------------------------------------------------------

_Emit = Callable[[str, dict[str, Any]], None]  # queue an event for the client
_Produce = Callable[[_Emit], Awaitable[ChatResponse]]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


def _error_event(request: Request, exc: Exception) -> dict[str, Any]:
    """The error boundary's JSON for a failure after the stream started (its status is sent)."""
    rid = request_id_of(request.scope) or None
    if isinstance(exc, LoftError):
        return {"error": exc.code, "detail": exc.detail, "request_id": rid}
    if is_outage(exc) or isinstance(exc, TimeoutError):
        return {"error": "store_unavailable", "detail": "a store is unavailable; retry shortly", "request_id": rid}
    return {
        "error": "internal_error",
        "detail": f"an internal error occurred; quote request id {rid} when reporting it",
        "request_id": rid,
    }


def _event_stream(request: Request, start: dict[str, Any], produce: _Produce) -> StreamingResponse:
    """Run ``produce(emit)`` in a task of its own (it finishes and stores the reply even if the
    client leaves) and relay what it emits, then ``done`` with its ``ChatResponse``."""
    events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    def emit(event: str, data: dict[str, Any]) -> None:
        events.put_nowait((event, data))

    async def run() -> None:
        try:
            response: ChatResponse = await produce(emit)
        except Exception as exc:  # logged here, reported to the client as an `error` event
            log.exception("streamed reply failed rid=%s", request_id_of(request.scope))
            emit("error", _error_event(request, exc))
        else:
            emit("done", response.model_dump(mode="json"))

    task = asyncio.create_task(run())
    _REPLYING.add(task)
    task.add_done_callback(_REPLYING.discard)
    slot: StreamSlot | None = getattr(request.state, "stream_slot", None)
    if slot is not None:  # the key's streamed reply counts until this task ends
        slot.adopted = True
        task.add_done_callback(lambda _: slot.release())

    async def relay() -> AsyncIterator[bytes]:
        yield _sse("start", start)
        while True:
            event, data = await events.get()
            yield _sse(event, data)
            if event in ("done", "error"):
                return

    return StreamingResponse(
        relay(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _maybe_stream(body: ChatRequest, request: Request, response: ChatResponse) -> ChatResponse | StreamingResponse:
    """A replayed turn: as JSON, or (``stream``) as one ``token`` with the stored reply."""
    if not body.stream:
        return response
    start = {
        "session_id": str(response.session_id),
        "message_id": response.message_id,
        "llm": response.llm,
        "replayed": True,
    }

    async def produce(emit: _Emit) -> ChatResponse:
        emit("token", {"text": response.reply})
        return response

    return _event_stream(request, start, produce)
