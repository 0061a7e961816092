"""The core every door calls: the REST routes, the MCP tools and the CLI.

One :class:`Memory` per process holds the runtime and the retriever. Its methods are the
use cases, typed in and out with the wire contract's models (:mod:`loft_memory.models`):
a door parses its input, checks who may call, calls one method and shapes the answer. No
door composes the stores itself, so every door sees a customer the same way: the graph
facts at the customer's graph version (:mod:`service.facts`), the same bounds, the same
refusals (404, 409 while an erasure is pending, 410 for a replay of an erased customer).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from graph import catalog as graph_catalog
from graph import reads as graph_reads
from loft_memory.models import (
    AuditAction,
    AuditEntry,
    AuditPage,
    CustomerGraph,
    CustomerSummary,
    EntityFact,
    EntityHit,
    EntitySearchResponse,
    ImportRequest,
    ImportResponse,
    LongTermMemory,
    MemoryAdded,
    MemoryDeleted,
    MemoryEvent,
    MemoryHistory,
    MemoryPage,
    MessageDeleted,
    SessionDeleted,
    SessionMessagesPage,
    SessionPage,
)
from service import facts
from service.catalog import feed as catalog_feed
from service.core import audit, consent, erasure, graph_view, recommendations, turns
from service.core import export as customer_export
from service.core.principal import Principal
from service.core.profile import customer_profile
from service.errors import InvalidInput, NotFound, StoreUnavailable
from service.outages import is_outage
from service.pagination import decode_cursor, encode_cursor
from service.postgres import history, users
from service.retrieval import PRESETS, Retriever
from service.retrieval.candidates import Context
from service.runtime import Runtime
from vectors import memories as ltm
from vectors.pg import Conn

GRAPH_VIEW_TIMEOUT_S = 3.0
ENTITY_SEARCH_TIMEOUT_S = 3.0
ERASE_GRAPH_TIMEOUT_S = 20.0


class Memory:
    """The service's use cases over the process's runtime and retriever."""

    def __init__(self, rt: Runtime, retriever: Retriever) -> None:
        self.rt = rt
        self.retriever = retriever

    # -- conversations -----------------------------------------------------------------------

    async def chat_turn(self, req: turns.TurnRequest) -> turns.Turn:
        """Store a turn and gather what answering it needs (see :mod:`service.core.turns`)."""
        return await turns.start(self.rt, self.retriever, req)

    async def add_turn(
        self, user: str, role: Literal["user", "assistant"], content: str, at: datetime | None, *, channel: str
    ) -> MemoryAdded:
        """Remember one thing said, in a session of its own; the worker files it."""
        when = at or datetime.now(UTC)
        async with self.rt.pool.acquire() as conn, conn.transaction():
            session_id = await history.ensure_session(
                conn, user, None, at=when, channel=channel, tombstone_key=self.rt.erasure_key
            )
            await consent.hold(conn, self.rt.erasure_key, user, session_id)
            (stored,) = await history.add_messages(
                conn,
                user,
                session_id,
                [history.NewMessage(role, content, at)],
                summary_idle_s=self.rt.settings.summary_idle_s,
                tombstone_key=self.rt.erasure_key,
            )
        return MemoryAdded(session_id=session_id, message_id=stored.id, queued=stored.created)

    async def import_messages(self, user: str, body: ImportRequest) -> ImportResponse:
        """Store a back-fill of messages with their own times, roles and speakers, in the
        order given, on the bulk lane (it never holds up live conversations); messages whose
        ``external_id`` is stored already are duplicates, and an erased customer's are refused
        (410)."""
        first_at = min((m.created_at for m in body.messages if m.created_at), default=datetime.now(UTC))
        new = [
            history.NewMessage(m.role, m.content, m.created_at, m.speaker, m.external_id, m.metadata)
            for m in body.messages
        ]
        async with self.rt.pool.acquire() as conn, conn.transaction():
            if body.session_id is None:
                session_id = await history.ensure_session(conn, user, None, at=first_at, channel=body.channel)
            else:
                session_id = body.session_id
                await history.create_session(
                    conn, user, session_id, at=first_at, channel=body.channel, tombstone_key=self.rt.erasure_key
                )
            await consent.hold(conn, self.rt.erasure_key, user, session_id)
            stored = await history.add_messages(
                conn,
                user,
                session_id,
                new,
                summary_idle_s=self.rt.settings.summary_idle_s,
                lane="bulk",
                tombstone_key=self.rt.erasure_key,
                max_speakers=self.rt.settings.max_speakers,
            )
        created = sum(s.created for s in stored)
        return ImportResponse(
            session_id=session_id, message_ids=[s.id for s in stored], created=created, duplicates=len(stored) - created
        )

    async def sessions(self, user: str, *, limit: int = 20, cursor: str | None = None) -> SessionPage:
        """The customer's sessions, newest first, each with its newest turns (bounded)."""
        found, next_cursor = await history.list_sessions(
            self.rt.pool,
            user,
            limit=limit,
            cursor=cursor,
            key=self.rt.erasure_key,
            per_session=self.rt.settings.session_list_messages,
        )
        return SessionPage(user_identifier=user, sessions=found, next_cursor=next_cursor)

    async def session_messages(
        self, user: str, session_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None
    ) -> SessionMessagesPage:
        """One session's turns before ``cursor`` (its newest without one), in order."""
        messages, older = await history.session_page(
            self.rt.pool, user, session_id, limit=limit, cursor=cursor, key=self.rt.erasure_key
        )
        return SessionMessagesPage(
            user_identifier=user,
            session_id=session_id,
            messages=messages,
            next_cursor=older,
        )

    async def forget_session(self, user: str, session_id: uuid.UUID) -> SessionDeleted:
        """Delete a session's transcript and what was made only from it (the memories and
        graph facts learned from it stay: see ``erasure.forget_session``)."""
        forgotten = await erasure.forget_session(self.rt, user, session_id)
        if forgotten is None:  # also another customer's session: the same answer, nothing revealed
            raise NotFound(f"session {session_id} does not exist")
        return SessionDeleted(
            session_id=session_id,
            deleted=True,
            messages=forgotten.messages,
            passages=forgotten.passages,
            summaries=forgotten.summaries,
            jobs=forgotten.jobs,
        )

    async def forget_turn(self, user: str, session_id: uuid.UUID, message_id: int) -> MessageDeleted:
        """Delete one turn of a session, returned as it was."""
        forgotten = await erasure.forget_turn(self.rt, user, session_id, message_id)
        if forgotten is None:
            raise NotFound(f"no message {message_id} in session {session_id}")
        return MessageDeleted(
            message=forgotten.message,
            passages=forgotten.passages,
            summaries=forgotten.summaries,
            jobs=forgotten.jobs,
        )

    # -- what the service knows about a customer -----------------------------------------------

    async def context(
        self,
        user: str,
        query: str,
        *,
        budget: int = 1000,
        session_id: uuid.UUID | None = None,
        preset: str = "default",
        as_of: datetime | None = None,
    ) -> Context:
        config = PRESETS.get(preset)
        if config is None:
            raise InvalidInput(f"unknown preset '{preset}'; use one of {', '.join(PRESETS)}")
        return await self.retriever.context(
            user, query, budget=budget, session_id=session_id, config=config, preset=preset, as_of=as_of, replica=True
        )

    async def summary(self, user: str, *, include_history: bool = False) -> CustomerSummary:
        profile = await customer_profile(self.rt, user, include_history=include_history, details=True)
        if profile is None:
            raise NotFound(f"no customer '{user}'")
        return profile

    async def graph_view(self, user: str, *, limit: int = 40, include_history: bool = False) -> CustomerGraph:
        """The customer's neighbourhood as nodes and edges, cut to the facts at their version."""
        known = await facts.read(self.rt, user)
        try:
            rows = await asyncio.wait_for(
                graph_reads.customer_graph(self.rt.graph_store, user, limit=limit, include_closed=include_history),
                GRAPH_VIEW_TIMEOUT_S,
            )
        except TimeoutError as exc:  # the store that was slow is named, not PostgreSQL
            raise StoreUnavailable("neo4j", facts.describe(exc)) from exc
        if rows is None or known.version is None:
            raise NotFound(f"no customer '{user}' in the graph")
        if known.error is not None:  # the facts at the customer's version could not be read
            raise StoreUnavailable("neo4j", known.error)
        return graph_view.shape(user, graph_view.at_version(rows, known))

    async def search_entities(self, user: str, query: str, limit: int = 10) -> EntitySearchResponse:
        """The customer's entities nearest ``query``, with their relationships; while Neo4j is
        away, from the facts at the customer's version (said so in ``errors``)."""
        await users.refuse_while_erasing(self.rt.pool, user)
        vector = await self.rt.embedder.aembed_query(query, user=user)
        known = await facts.read(self.rt, user)
        try:
            found = await asyncio.wait_for(
                graph_reads.search_entities(self.rt.graph_store, user, [float(x) for x in vector], limit),
                ENTITY_SEARCH_TIMEOUT_S,
            )
        except Exception as exc:
            if not (is_outage(exc) or isinstance(exc, TimeoutError)):
                raise
            hits = known.graph.nearest(vector, limit) if known.graph else []
            held = "answered from the customer's graph facts at their current version"
            return EntitySearchResponse(
                query=query,
                user_identifier=user,
                entities=[_entity_hit(e, score) for e, score in hits],
                tiers={"neo4j": False},
                errors={
                    "neo4j": "Neo4j is unavailable; "
                    + (held if known.graph else "no current copy of the customer's graph is at hand")
                },
            )
        if known.error is None:  # what Neo4j holds ahead of the version waits, as in every door
            found = [e for e in found if known.knows_entity(e.key)]
        return EntitySearchResponse(query=query, user_identifier=user, entities=found)

    async def recommend(
        self, user: str, *, limit: int = 10, category: str | None = None, max_price: float | None = None
    ) -> dict[str, Any]:
        """Products to suggest, each with its reasons (``category``: a catalog category's name
        as a customer writes it)."""
        wanted = None
        if category:
            found = self.rt.catalog.match_categories(category)
            if not found:
                known = ", ".join(self.rt.catalog.categories)
                raise InvalidInput(f"unknown category '{category}'; use one of: {known}")
            wanted = found[0]
        return await recommendations.recommend(self.rt, user, limit=limit, category=wanted, max_price=max_price)

    # -- long-term memories ------------------------------------------------------------------

    async def memories(
        self, user: str, *, include_superseded: bool = False, limit: int = 50, cursor: str | None = None
    ) -> MemoryPage:
        listed = f"memories\x00{user}"
        before = decode_cursor(self.rt.erasure_key, listed, cursor, uuid.UUID) if cursor else None
        rows = await ltm.page(self.rt.pool, user, include_superseded=include_superseded, limit=limit + 1, before=before)
        page, more = rows[:limit], len(rows) > limit
        last = page[-1] if more else None
        return MemoryPage(
            user_identifier=user,
            memories=[_memory(m) for m in page],
            next_cursor=encode_cursor(self.rt.erasure_key, listed, last["created_at"], last["id"]) if last else None,
        )

    async def memory(self, user: str, memory_id: uuid.UUID) -> LongTermMemory:
        found = await ltm.get(self.rt.pool, user, memory_id)
        if found is None:  # also another customer's memory: the same answer, nothing revealed
            raise NotFound(f"no memory {memory_id} for customer '{user}'")
        return _memory(found)

    async def memory_history(self, user: str, memory_id: uuid.UUID) -> MemoryHistory:
        found = await ltm.get(self.rt.pool, user, memory_id)
        events = await ltm.history(self.rt.pool, user, memory_id)
        if found is None and not events:
            raise NotFound(f"no memory {memory_id} for customer '{user}'")
        return MemoryHistory(
            memory=_memory(found) if found is not None else None,
            history=[
                MemoryEvent(
                    event=e["event"],
                    old_content=e["old_content"],
                    new_content=e["new_content"],
                    detail=_json(e["detail"]),
                    at=e["created_at"],
                )
                for e in events
            ],
        )

    async def forget(
        self, user: str, memory_id: uuid.UUID, *, by: Principal, request_id: str | None = None
    ) -> MemoryDeleted:
        """Forget one memory and the preference it states (see ``erasure.forget_memory``); its
        audit entry is written in the deletion's own transaction."""

        async def audited(conn: Conn) -> None:
            detail = {"memory_id": str(memory_id)}
            await audit.record(
                conn, self.rt.erasure_key, by, "delete_memory", user, request_id=request_id, detail=detail
            )

        forgotten = await erasure.forget_memory(self.rt, user, memory_id, audit=audited)
        if forgotten is None:
            raise NotFound(f"no memory {memory_id} for customer '{user}'")
        return MemoryDeleted(
            id=memory_id,
            deleted=True,
            events_scrubbed=forgotten.events_scrubbed,
            graph_facts_closed=forgotten.graph_facts_closed,
        )

    # -- erasure -----------------------------------------------------------------------------

    async def erase(self, user: str, *, by: Principal, request_id: str | None = None) -> erasure.Receipt:
        """Forget a customer in every store, cache and queue (see :mod:`service.core.erasure`), and
        audit it (the entry names the customer by the erasure HMAC only)."""
        receipt = await erasure.erase(self.rt, user, graph_timeout_s=ERASE_GRAPH_TIMEOUT_S)
        detail = {"receipt_id": str(receipt.receipt_id), "status": receipt.status}
        await audit.record(self.rt.pool, self.rt.erasure_key, by, "erase", user, request_id=request_id, detail=detail)
        return receipt

    async def receipt(self, receipt_id: uuid.UUID) -> erasure.Receipt:
        found = await erasure.get_receipt(self.rt.pool, receipt_id)
        if found is None:
            raise NotFound(f"no erasure receipt {receipt_id}")
        return found

    async def receipts(self, *, user: str | None = None, limit: int = 20) -> list[erasure.Receipt]:
        """Recent erasure receipts, newest first (of one customer: matched by the keyed hash)."""
        return await erasure.receipts(self.rt, user=user, limit=limit)

    # -- consent -------------------------------------------------------------------------------

    async def memory_mode(self, user: str) -> consent.Mode:
        """The customer's memory mode (``full`` for a customer never seen)."""
        return await consent.mode_of(self.rt.pool, self.rt.erasure_key, user)

    async def set_memory_mode(
        self, user: str, mode: consent.Mode, *, by: Principal, request_id: str | None = None, tool: str | None = None
    ) -> consent.Changed:
        """Change the memory mode (lowering it erases, with a receipt) and audit the change."""
        changed = await consent.change(self.rt, user, mode)
        detail: dict[str, str] = {"from": changed.before, "to": changed.mode}
        if tool is not None:
            detail["tool"] = tool
        if changed.receipt is not None:
            detail["receipt_id"] = str(changed.receipt.receipt_id)
        await audit.record(self.rt.pool, self.rt.erasure_key, by, "consent", user, request_id=request_id, detail=detail)
        return changed

    # -- a customer's rights: the export and the audit trail ---------------------------------

    async def refuse_while_erasing(self, user: str) -> None:
        """409 while the customer's erasure is pending: a door about one customer asks first."""
        await users.refuse_while_erasing(self.rt.pool, user)

    async def export(self, user: str, *, by: Principal, request_id: str | None = None) -> AsyncIterator[bytes]:
        """Everything both stores hold about the customer, as one JSON document read and sent
        in pieces (see :mod:`service.core.export`). The refusals (409 while an erasure is
        pending, 404 for a customer never seen) and the audit entry come before the first
        byte: a door that gets the stream has nothing left to check."""
        await self.refuse_while_erasing(user)
        if await users.get(self.rt.pool, user) is None:
            raise NotFound(f"no customer '{user}'")
        await audit.record(self.rt.pool, self.rt.erasure_key, by, "export", user, request_id=request_id)
        return customer_export.stream(self.rt, user)

    async def audit_trail(
        self,
        *,
        customer: str | None = None,
        action: AuditAction | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AuditPage:
        """Who read, exported, erased, changed consent or deleted memories, newest first,
        filtered; ``cursor`` (a page's ``next_cursor``) continues the list it came from."""
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise InvalidInput(f"{name} needs a time zone (e.g. 2026-01-31T00:00:00Z)")
        # a cursor continues the list it came from: the filters are part of what it signs
        bounds = (since.isoformat() if since else "", until.isoformat() if until else "")
        listed = "\x00".join(("audit", customer or "", action or "", *bounds))
        before = decode_cursor(self.rt.erasure_key, listed, cursor, int) if cursor else None
        found = await audit.page(
            self.rt.pool,
            self.rt.erasure_key,
            customer=customer,
            action=action,
            since=since,
            until=until,
            before=before,
            limit=limit + 1,
        )
        page, more = found[:limit], len(found) > limit
        return AuditPage(
            entries=[AuditEntry.model_validate(e, from_attributes=True) for e in page],
            next_cursor=encode_cursor(self.rt.erasure_key, listed, page[-1].at, page[-1].id) if more else None,
        )

    async def audit_read(
        self,
        user: str,
        *,
        by: Principal,
        request_id: str | None = None,
        tool: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """A context read's audit entry (``at``: the read's time; ``tool``: the MCP tool that
        read). It never fails the read: a failure is counted and logged
        (:func:`service.core.audit.record_read`)."""
        detail = {"tool": tool} if tool is not None else None
        await audit.record_read(
            self.rt.pool, self.rt.erasure_key, by, user, request_id=request_id, detail=detail, at=at
        )

    # -- the shop ------------------------------------------------------------------------------

    async def customer_count(self) -> int:
        """How many customers the service holds."""
        async with self.rt.pool.acquire() as conn:
            return await users.count(conn)

    async def load_catalog(
        self,
        products: Sequence[catalog_feed.FeedProduct],
        *,
        full: bool,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> catalog_feed.Summary:
        """Load a checked catalog feed (:mod:`service.catalog.feed`) into the shared graph in
        one transaction, all or nothing, and say what it changed: added, changed, unchanged,
        and (``full``: the feed is the whole catalog) discontinued. ``dry_run`` only says."""
        database = self.rt.settings.neo4j_database
        existing = await graph_catalog.feed_existing(self.rt.graph, database=database)
        summary = catalog_feed.diff(existing, products, full=full)
        if not dry_run:
            rows = [dict(p) for p in products]
            await graph_catalog.feed_load(
                self.rt.graph, rows, summary.discontinued, database=database, progress=progress
            )
        return summary


def _json(value: object) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, str) else value
    return dict(loaded) if isinstance(loaded, dict) else {}


def _memory(m: Mapping[str, Any] | asyncpg.Record) -> LongTermMemory:
    return LongTermMemory(
        id=m["id"],
        kind=m["kind"],
        content=m["content"],
        subject=m["subject"],
        importance=m["importance"],
        access_count=m["access_count"],
        last_accessed_at=m["last_accessed_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        valid_from=m["valid_from"],
        valid_to=m["valid_to"],
        superseded_by=m["superseded_by"],
        source_message_ids=list(m["source_message_ids"]),
    )


def _entity_hit(e: EntityFact, score: float) -> EntityHit:
    """An entity of the customer's facts as entity search answers it (no relationships)."""
    return EntityHit(
        key=e.key,
        name=e.name,
        type=e.type,
        summary=e.summary,
        event_at=e.event_at,
        score=score,
        relation=e.relation,
        mentions=e.mentions,
        last_seen=e.last_seen,
        source_message_ids=e.source_message_ids,
        relationships=[],
    )
