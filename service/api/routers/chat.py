"""``POST /v1/chat``: one chat turn over HTTP (the turn itself: :mod:`service.core.turns`).

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
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from loft_memory.models import (
    ChatRequest,
    ChatResponse,
    ChatStreamStart,
    ChatStreamToken,
    ErrorResponse,
    IdempotencyKey,
)
from service.api.access import StreamSlot, allow
from service.api.deps import core as memory_core
from service.api.middleware import note_customer, request_id_of
from service.core.memory import Memory
from service.core.principal import ANY_ROLE, Principal
from service.core.turns import Turn, TurnRequest
from service.errors import InvalidInput, LoftError
from service.outages import is_outage

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
    core: Memory = Depends(memory_core),
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
    client_id = body.message_id or idempotency_key
    turn = await core.chat_turn(
        TurnRequest(body.user_identifier, body.message, body.session_id, body.budget, client_id)
    )
    if turn.replayed is not None:
        return _maybe_stream(body, request, turn.replayed)
    if not body.stream:
        return await turn.answer()
    start = ChatStreamStart(session_id=turn.session_id, message_id=turn.message_id, llm=turn.llm, replayed=False)
    return _event_stream(request, start, _streamed(turn))


def _streamed(turn: Turn) -> _Produce:
    """Relay the turn's answer piece by piece, then store it."""

    async def produce(emit: _Emit) -> ChatResponse:
        parts: list[str] = []
        async for piece in turn.stream():
            if piece.reset:
                parts.clear()
                emit("reset", None)
            elif piece.text:
                parts.append(piece.text)
                emit("token", ChatStreamToken(text=piece.text))
        return await turn.store("".join(parts).strip())

    return produce


# --- server-sent events ------------------------------------------------------------------

_Emit = Callable[[str, BaseModel | None], None]  # queue an event for the client (None: an empty one)
_Produce = Callable[[_Emit], Awaitable[ChatResponse]]


def _sse(event: str, data: BaseModel | None) -> bytes:
    return f"event: {event}\ndata: {'{}' if data is None else data.model_dump_json()}\n\n".encode()


def _error_event(request: Request, exc: Exception) -> ErrorResponse:
    """The error boundary's JSON for a failure after the stream started (its status is sent)."""
    rid = request_id_of(request.scope) or None
    if isinstance(exc, LoftError):
        return ErrorResponse(error=exc.code, detail=exc.detail, request_id=rid)
    if is_outage(exc) or isinstance(exc, TimeoutError):
        return ErrorResponse(error="store_unavailable", detail="a store is unavailable; retry shortly", request_id=rid)
    return ErrorResponse(
        error="internal_error",
        detail=f"an internal error occurred; quote request id {rid} when reporting it",
        request_id=rid,
    )


def _event_stream(request: Request, start: ChatStreamStart, produce: _Produce) -> StreamingResponse:
    """Run ``produce(emit)`` in a task of its own (it finishes and stores the reply even if the
    client leaves) and relay what it emits, then ``done`` with its ``ChatResponse``."""
    events: asyncio.Queue[tuple[str, BaseModel | None]] = asyncio.Queue()

    def emit(event: str, data: BaseModel | None) -> None:
        events.put_nowait((event, data))

    async def run() -> None:
        try:
            response: ChatResponse = await produce(emit)
        except Exception as exc:  # logged here, reported to the client as an `error` event
            log.exception("streamed reply failed rid=%s", request_id_of(request.scope))
            emit("error", _error_event(request, exc))
        else:
            emit("done", response)

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
    start = ChatStreamStart(
        session_id=response.session_id, message_id=response.message_id, llm=response.llm, replayed=True
    )

    async def produce(emit: _Emit) -> ChatResponse:
        emit("token", ChatStreamToken(text=response.reply))
        return response

    return _event_stream(request, start, produce)
