"""A chat turn: store it, build its context, answer it, store the answer.

Extraction for memory happens in the worker: the turn is queued in the same transaction
that stores it, so the turn is safe in milliseconds and nothing is lost. The answer does
not wait for the worker: the turn's own facts (rule extraction, in the process's CPU pool)
go straight into it, and so do the customer's facts the context was built from (one graph
read per turn, at the customer's graph version: :mod:`service.facts`).

A turn sent with a client id is stored once: a retry gets the stored answer
(``replayed``), or 409 while the first attempt is still being answered; a replay of a turn
of an erased customer is refused (410) and stores nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from loft_memory.models import ChatResponse, ContextResponse
from service.core import chat, consent
from service.core.chat import Piece
from service.errors import Conflict, NotFound
from service.extraction import Extraction
from service.postgres import history, users
from service.retrieval import Retriever
from service.retrieval.candidates import Context
from service.runtime import Runtime
from vectors.pg import Conn


@dataclass(frozen=True)
class TurnRequest:
    user: str
    message: str
    session_id: uuid.UUID | None = None
    budget: int = 1000
    client_id: str | None = None  # message_id or Idempotency-Key: the turn is stored once


@dataclass
class Turn:
    """A turn stored and ready to be answered (:meth:`answer` or :meth:`stream`, then
    :meth:`store`), or a replay whose stored answer is ``replayed``."""

    rt: Runtime
    request: TurnRequest
    session_id: uuid.UUID
    message_id: int | None  # None: memory mode 'off', nothing is stored
    replayed: ChatResponse | None = None
    mode: consent.Mode = "full"
    context: Context | None = None
    turns: list[dict[str, str]] | None = None
    said: Extraction | None = None
    _shown: ContextResponse | None = None  # the context as the answer shows it (built once)

    @property
    def llm(self) -> bool:
        return self.rt.llm is not None

    def shown(self) -> ContextResponse:
        """The context as the answer carries it."""
        assert self.context is not None
        if self._shown is None:
            self._shown = ContextResponse.model_validate(self.context.as_dict())
        return self._shown

    async def answer(self) -> ChatResponse:
        if self.replayed is not None:
            return self.replayed
        assert self.context is not None
        text = await chat.reply(self.rt, *self._reply_args(), said=self.said, known=self.context.known)
        return await self.store(text)

    def stream(self) -> AsyncIterator[Piece]:
        """The answer as it is made; :meth:`store` the joined pieces when it ends."""
        assert self.context is not None
        assert self.replayed is None
        return chat.reply_stream(self.rt, *self._reply_args(), said=self.said, known=self.context.known)

    async def store(self, text: str) -> ChatResponse:
        """Store the answer (once: a retry finds it by the turn's reply key); under memory
        mode 'off' nothing is stored."""
        assert self.context is not None
        if self.message_id is None:
            return ChatResponse(
                session_id=self.session_id,
                message_id=None,
                reply=text,
                reply_message_id=None,
                context=self.shown(),
                llm=self.llm,
                memory_mode="off",
            )
        at = datetime.now(UTC)
        async with self.rt.pool.acquire() as conn, conn.transaction():
            (answer,) = await history.add_messages(
                conn,
                self.request.user,
                self.session_id,
                [history.NewMessage("assistant", text, at, external_id=history.reply_key(self.message_id))],
                summary_idle_s=self.rt.settings.summary_idle_s,
            )
        return ChatResponse(
            session_id=self.session_id,
            message_id=self.message_id,
            reply=text,
            reply_message_id=answer.id,
            context=self.shown(),
            llm=self.llm,
            memory_mode=self.mode,
        )

    def _reply_args(self) -> tuple[str, str, str, list[dict[str, str]]]:
        assert self.context is not None
        return self.request.user, self.request.message, self.context.text, self.turns or []


async def start(rt: Runtime, retr: Retriever, req: TurnRequest) -> Turn:
    """Store the turn (or find the one a retry repeats) and gather what answering needs.
    Under the customer's memory mode (:mod:`service.core.consent`): 'session' marks the session to
    be removed once idle, 'off' stores nothing (the turn is answered from what is known)."""
    mode = await consent.mode_of(rt.pool, rt.erasure_key, req.user)
    if mode == "off":
        return await _unremembered(rt, retr, req)
    external_id = f"chat:{req.client_id}" if req.client_id else None
    if external_id is not None:
        async with rt.pool.acquire() as conn:
            await users.refuse_while_erasing(conn, req.user)  # a replay reads the customer
            earlier = await history.message_by_external_id(conn, req.user, external_id)
        if earlier is not None:
            return await _replay(rt, retr, req, earlier, mode)
    now = datetime.now(UTC)
    async with rt.pool.acquire() as conn, conn.transaction():
        session_id = await _session(conn, rt, req.user, req.session_id, at=now, mode=mode)
        (stored,) = await history.add_messages(
            conn,
            req.user,
            session_id,
            [history.NewMessage("user", req.message, now, external_id=external_id)],
            summary_idle_s=rt.settings.summary_idle_s,
            tombstone_key=rt.erasure_key,  # a retry of an erased turn is refused (410)
        )
    if not stored.created:  # the same turn arrived twice at once: answer the retry from the first
        return await _replay_of(rt, retr, req, external_id, mode)
    turn = Turn(rt, req, session_id, stored.id, mode=mode)
    turn.context = await retr.context(
        req.user, req.message, budget=req.budget, session_id=session_id, exclude_message_ids=frozenset({stored.id})
    )
    turn.turns = await _recent(rt, req.user, session_id, stored.id)
    # the facts of this very turn, without waiting for the worker (in the CPU pool: the work
    # grows with the message, and the event loop serves everyone)
    turn.said = await rt.cpu_long(rt.rules.extract, req.message, at=now, role="user")
    return turn


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


async def _unremembered(rt: Runtime, retr: Retriever, req: TurnRequest) -> Turn:
    """A turn under memory mode 'off': answered from what is known (the catalog; nothing of
    the customer is kept), and neither the turn nor the answer is stored."""
    async with rt.pool.acquire() as conn:
        await users.refuse_while_erasing(conn, req.user)
    turn = Turn(rt, req, req.session_id or uuid.uuid4(), None, mode="off")
    turn.context = await retr.context(req.user, req.message, budget=req.budget, track_access=False)
    turn.turns = []
    turn.said = await rt.cpu_long(rt.rules.extract, req.message, at=datetime.now(UTC), role="user")
    return turn


async def _recent(rt: Runtime, user: str, session_id: uuid.UUID, stored: int) -> list[dict[str, str]]:
    """The session's last turns as chat messages (for an LLM: the offline answer reads none)."""
    if rt.llm is None:
        return []
    async with rt.pool.acquire() as conn:
        recent = await history.recent_turns(conn, user, session_id, 10)
    return [{"role": t["role"], "content": t["content"]} for t in recent if t["id"] != stored and t["role"] != "system"]


async def _replay_of(
    rt: Runtime, retr: Retriever, req: TurnRequest, external_id: str | None, mode: consent.Mode
) -> Turn:
    async with rt.pool.acquire() as conn:
        assert external_id is not None  # only a turn with an id can be a duplicate
        earlier = await history.message_by_external_id(conn, req.user, external_id)
    if earlier is None:  # erased in between: nothing to replay
        raise NotFound(f"no turn '{external_id}' for customer '{req.user}'")
    return await _replay(rt, retr, req, earlier, mode)


async def _replay(
    rt: Runtime, retr: Retriever, req: TurnRequest, earlier: history.ClientTurn, mode: consent.Mode
) -> Turn:
    """A retry of a turn already stored: its stored answer, with the context as it is now."""
    if earlier.content != req.message:
        raise Conflict("this message_id / Idempotency-Key was already used for a different message")
    async with rt.pool.acquire() as conn:
        answer = await history.message_by_external_id(conn, req.user, history.reply_key(earlier.id))
    if answer is None:
        raise Conflict("this turn is still being answered; retry in a moment")
    context = await retr.context(
        req.user,
        req.message,
        budget=req.budget,
        session_id=earlier.session_id,
        exclude_message_ids=frozenset({earlier.id}),
        track_access=False,
    )
    replayed = ChatResponse(
        session_id=earlier.session_id,
        message_id=earlier.id,
        reply=answer.content,
        reply_message_id=answer.id,
        context=context.as_dict(),
        llm=rt.llm is not None,
        replayed=True,
        memory_mode=mode,
    )
    return Turn(rt, req, earlier.session_id, earlier.id, replayed=replayed, context=context, mode=mode)
