"""Forgetting a customer: every store, every cache and every queued job, with a receipt.

``erase(rt, user)``:

1. **PostgreSQL, one transaction.** Take the customer's exclusive lock (no customer
   creation and no worker write for them until commit: :mod:`service.postgres.users`), keep
   tombstones of the client ids a replay could carry (:mod:`service.postgres.tombstones`), delete
   their rows from every per-customer table, children first so each count is exact, and
   their queued and failed jobs (earlier erasures of the same customer included: this one
   supersedes them); record a ``pending`` receipt and queue an ``erase_user`` job that
   finishes the erasure if this process cannot; notify every API process to drop the
   customer from its caches (``NOTIFY`` is delivered on commit, with a graph-version floor
   below which no cache may take the customer back).
2. **Re-check PostgreSQL**: every table with a ``user_identifier`` column (found in the
   catalog, so a table added later is covered), and the deleted rows by their ids.
3. **Neo4j**, in batches, with retries on transient errors (:mod:`graph.erasure`), and
   its re-check by counting what is left of the customer.
4. Only when both re-checks find nothing: the receipt becomes ``complete`` in one
   transaction with every other pending receipt of the same customer (a later erasure
   that succeeds completes the earlier ones), and every ``erase_user`` job of the customer
   is deleted, so the identifier leaves the queue.

``DELETE`` never fails half-way with a 500. If the customer's rows are held by other work
past the lock timeout, nothing is deleted yet and the receipt is ``pending`` (a worker
erases them); if Neo4j is down, slow or fails in any other way after PostgreSQL was
erased, the receipt is ``pending`` with the reason in ``error`` (202), and the worker
retries it with back-off until it succeeds: an erasure job is never parked. While any
erasure of a customer is pending, the identifier is refused by every route (409,
:func:`service.postgres.users.refuse_while_erasing`).

The receipt names the customer only by ``subject_hash``, an HMAC-SHA256 of the identifier
with a key from ``LOFT_ERASURE_KEY`` or generated under the data dir; with the key and an
identifier, an operator can find the receipts of that customer, and without the key the
table says nothing about whom it erased. The identifier itself remains only in the
``erase_user`` job rows while an erasure is pending; they go when it completes.

:func:`forget_memory` is the small sibling: one long-term memory, and the preference it
states in the graph, forgotten on the customer's request. :func:`forget_session` and
:func:`forget_turn` forget a transcript (a session, or one turn of it) and what was made
only from it, and keep what the customer's memory learned from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random

from graph import erasure as graph_erasure
from graph import writes as graph_writes
from loft_memory.models import ErasureReceipt, SessionMessage
from service.errors import InvalidInput
from service.outages import is_outage
from service.postgres import co_purchases, graph_snapshots, history, queue, tombstones, users
from service.postgres.tombstones import subject_hash
from vectors import memories as ltm
from vectors import passages
from vectors import summaries as session_summaries
from vectors.pg import Conn

if TYPE_CHECKING:
    from service.runtime import Runtime

log = logging.getLogger("loft.erasure")

CHANNEL = "loft_erasure"
# how long an erasure waits for the customer's rows (a worker's fence may hold them for
# a graph write); past it the erasure is left to a worker, which waits again. Well below
# the statement time limit (service.postgres.db.STATEMENT_TIMEOUT_S): the lock's wait ends
# first, as a pending receipt, and so does that of a request queued behind the erasure
LOCK_TIMEOUT_S = 10.0
GRAPH_TIMEOUT_S = 60.0
# the API finishes the Neo4j part inline; the worker steps in only if it could not
FINISH_BY_WORKER_AFTER = timedelta(seconds=30)
# forgetting one memory's preference in the graph (inline, in the request)
FORGET_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Table:
    """A per-customer table: how to delete the customer's rows (returning how many and
    their ids) and how to look for the same rows again by id."""

    name: str
    delete: str
    by_id: str | None = None


def _table(name: str, id_column: str | None = None, id_type: str = "bigint") -> Table:
    if id_column is None:
        delete = f"WITH d AS (DELETE FROM {name} WHERE user_identifier = $1 RETURNING 1) SELECT count(*) AS n FROM d"
        return Table(name, delete)
    delete = (
        f"WITH d AS (DELETE FROM {name} WHERE user_identifier = $1 RETURNING {id_column} AS id) "
        "SELECT count(*) AS n, coalesce(array_agg(id), '{}') AS ids FROM d"
    )
    return Table(name, delete, f"SELECT count(*) FROM {name} WHERE {id_column} = ANY($1::{id_type}[])")


# Children before parents, so every table's count is its own (not hidden in a cascade).
# ``jobs`` is deleted through the queue module (it keeps the erasure's own job).
TABLES: tuple[Table, ...] = (
    _table("memory_events", "id"),
    _table("user_terms", None),
    _table("message_passages", None),
    _table("conversation_summaries", "id", "uuid"),
    _table("long_term_memories", "id", "uuid"),
    _table("order_lines", None),
    _table("orders", "order_id", "text"),
    _table("graph_snapshots", None),
    _table("messages", "id"),
    _table("sessions", "id", "uuid"),
    _table("users", None),
)
# Tables an erasure does not empty of the customer, and why. None of them holds the
# identifier or anything the customer said: receipts and tombstones name them only by
# keyed hashes (without the erasure key they identify nobody), and exist to prove and to
# keep the erasure; the queue is handled on its own (the erasure's own job keeps the
# identifier until it completes). Tables without a user_identifier column are listed for
# the reader; the catalog scan below only ever sees the ones that have one.
NOT_ERASED = frozenset({"erasure_receipts", "erasure_tombstones", "jobs"})

PER_USER_TABLES = """
SELECT c.table_name FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = current_schema() AND c.column_name = 'user_identifier' AND t.table_type = 'BASE TABLE'
ORDER BY 1
"""

INSERT_RECEIPT = """
INSERT INTO erasure_receipts (receipt_id, subject_hash, status, counts, verification, requested_at, error)
VALUES ($1, $2, 'pending', $3::jsonb, $4::jsonb, $5, $6)
"""
# the PostgreSQL part, run by a worker for a receipt recorded without it (lock timeout)
ADD_COUNTS = "UPDATE erasure_receipts SET counts = counts || $2::jsonb WHERE receipt_id = $1"
PENDING_ERROR = "UPDATE erasure_receipts SET error = $2 WHERE receipt_id = $1 AND status = 'pending'"
COMPLETE = """
UPDATE erasure_receipts
SET status = 'complete', completed_at = now(), error = NULL,
    counts = counts || $2::jsonb, verification = verification || $3::jsonb
WHERE receipt_id = $1 AND status = 'pending'
"""
# the customer's other pending erasures: this one, verified clean, completes them too
COMPLETE_SUPERSEDED = """
UPDATE erasure_receipts
SET status = 'complete', completed_at = now(), error = NULL,
    verification = verification || jsonb_build_object('completed_by', $2::text)
WHERE subject_hash = $1 AND status = 'pending' AND receipt_id <> $2
"""
GET_RECEIPT = """
SELECT receipt_id, status, counts, verification, requested_at, completed_at, error
FROM erasure_receipts WHERE receipt_id = $1
"""
RECEIPTS_OF = """
SELECT receipt_id, status, counts, verification, requested_at, completed_at, error
FROM erasure_receipts WHERE subject_hash = $1 ORDER BY requested_at DESC LIMIT $2
"""
RECENT_RECEIPTS = """
SELECT receipt_id, status, counts, verification, requested_at, completed_at, error
FROM erasure_receipts ORDER BY requested_at DESC LIMIT $1
"""
NOTIFY = "SELECT pg_notify($1, $2)"
# graph versions come from one sequence: every version read before the erasure is below
# this, every version of a customer created afterwards above it
VERSION_FLOOR = "SELECT nextval('graph_version_seq')"


@dataclass
class Receipt:
    receipt_id: uuid.UUID
    status: str
    counts: dict[str, Any]
    verification: dict[str, Any]
    requested_at: datetime
    completed_at: datetime | None = None
    error: str | None = None

    def wire(self) -> ErasureReceipt:
        """As the API, the MCP server and the CLI show it."""
        status: Literal["pending", "complete"] = "complete" if self.status == "complete" else "pending"
        return ErasureReceipt(
            receipt_id=self.receipt_id,
            status=status,
            counts=self.counts,
            verification=self.verification,
            requested_at=self.requested_at,
            completed_at=self.completed_at,
            error=self.error,
        )

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Receipt:
        return cls(
            row["receipt_id"],
            row["status"],
            _json(row["counts"]),
            _json(row["verification"]),
            row["requested_at"],
            row["completed_at"],
            row["error"],
        )


@dataclass(frozen=True)
class Attempt:
    """One try at finishing an erasure: its receipt afterwards (None: no such receipt), and
    whether it is still pending only because a store is unreachable (then the worker tries
    again without counting a failed attempt)."""

    receipt: Receipt | None
    store_unavailable: bool = False

    @property
    def complete(self) -> bool:
        return self.receipt is None or self.receipt.status == "complete"


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


# -- erasing ----------------------------------------------------------------------------------


async def erase(
    rt: Runtime, user: str, *, graph_timeout_s: float = GRAPH_TIMEOUT_S, lock_timeout_s: float = LOCK_TIMEOUT_S
) -> Receipt:
    """Erase ``user`` everywhere; the receipt is ``complete`` only once both stores were
    re-checked and found clean, else ``pending`` with the reason (a worker completes it).
    Raises only when PostgreSQL cannot be reached before anything was recorded."""
    receipt_id = uuid.uuid4()
    requested_at = datetime.now(UTC)
    try:
        pg_left = await _erase_postgres(rt, user, receipt_id, requested_at, lock_timeout_s=lock_timeout_s)
    except asyncpg.LockNotAvailableError:
        return await _defer(rt, user, receipt_id, requested_at)
    try:
        return await finish(rt, receipt_id, user, postgres_by_id=pg_left, graph_timeout_s=graph_timeout_s)
    except Exception as exc:  # PostgreSQL is erased and the receipt recorded: say so, never fail
        log.warning("erasure %s pending after PostgreSQL: %s", receipt_id, type(exc).__name__)
        found = await _receipt_or_none(rt, receipt_id)
        return found or Receipt(
            receipt_id,
            "pending",
            {},
            {},
            requested_at,
            error=f"PostgreSQL was erased; the rest could not be finished ({type(exc).__name__}); a worker finishes it",
        )


async def finish(
    rt: Runtime,
    receipt_id: uuid.UUID,
    user: str,
    *,
    postgres_by_id: dict[str, int] | None = None,
    graph_timeout_s: float = GRAPH_TIMEOUT_S,
) -> Receipt:
    """The rest of an erasure (see :func:`attempt`); its receipt afterwards."""
    done = await attempt(rt, receipt_id, user, postgres_by_id=postgres_by_id, graph_timeout_s=graph_timeout_s)
    return done.receipt  # type: ignore[return-value]


async def attempt(
    rt: Runtime,
    receipt_id: uuid.UUID,
    user: str,
    *,
    postgres_by_id: dict[str, int] | None = None,
    graph_timeout_s: float = GRAPH_TIMEOUT_S,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> Attempt:
    """Try to finish an erasure: its PostgreSQL part if it has not run (the rows were held
    when it was requested), the Neo4j part and the final re-checks; marks the receipt (and
    the customer's other pending ones) complete when clean. Safe to run more than once (the
    API inline, a worker later). A failure is written on the receipt, not raised; only
    PostgreSQL being unreachable raises."""
    receipt = await get_receipt(rt.pool, receipt_id)
    if receipt is None or receipt.status == "complete":
        await queue.delete_by_key(rt.pool, _job_key(receipt_id))
        return Attempt(receipt)
    if "postgres" not in receipt.counts:
        try:
            postgres_by_id = await _erase_postgres(
                rt, user, receipt_id, receipt.requested_at, lock_timeout_s=lock_timeout_s, recorded=True
            )
        except asyncpg.LockNotAvailableError:
            return await _pending(rt, receipt_id, LOCKED, store_unavailable=False)
    try:
        graph = await asyncio.wait_for(graph_erasure.erase_customer(rt.graph_store, user), graph_timeout_s)
    except Exception as exc:
        outage = _is_outage(exc)
        if outage:
            log.warning("erasure %s pending: Neo4j unavailable (%s)", receipt_id, type(exc).__name__)
            reason = f"Neo4j is unavailable ({type(exc).__name__}); the erasure completes when it returns"
        else:
            log.error("erasure %s pending: Neo4j failed: %r", receipt_id, exc)
            code = getattr(exc, "code", None) or type(exc).__name__
            reason = f"the Neo4j part failed ({code}); a worker retries it until it succeeds"
        return await _pending(rt, receipt_id, reason, store_unavailable=outage)
    async with rt.pool.acquire() as conn, conn.transaction():
        pg_left = (postgres_by_id or {}) | await _postgres_leftovers(conn, user, {})
        clean = graph.clean and not any(pg_left.values())
        if clean:
            neo4j = {
                "nodes": graph.nodes,
                "relationships": graph.relationships,
                "vocabulary_nodes": graph.vocabulary_nodes,
                "labels": graph.labels,
            }
            verification = {"postgres": pg_left, "neo4j": graph.leftovers}
            await conn.execute(COMPLETE, receipt_id, json.dumps({"neo4j": neo4j}), json.dumps(verification))
            await conn.execute(COMPLETE_SUPERSEDED, subject_hash(rt.erasure_key, user), str(receipt_id))
            await queue.delete_erasures(conn, user)
        else:
            detail = f"data remained after deleting: neo4j {graph.leftovers}, postgres {pg_left}; a worker retries"
            log.error("erasure %s: %s", receipt_id, detail)
            await conn.execute(PENDING_ERROR, receipt_id, detail)
    rt.forget_cached(user)  # anything a request of this process put back meanwhile
    return Attempt(await get_receipt(rt.pool, receipt_id))


LOCKED = (
    "the customer's rows are held by other work (a worker's write); nothing is deleted yet, "
    "a worker erases them when they are free"
)


async def note(rt: Runtime, receipt_id: uuid.UUID, reason: str) -> None:
    """Say on a pending receipt why it is still pending (best effort: PostgreSQL may be why)."""
    try:
        await rt.pool.execute(PENDING_ERROR, receipt_id, reason)
    except Exception as exc:
        log.warning("could not note why erasure %s is pending: %s", receipt_id, type(exc).__name__)


async def _pending(rt: Runtime, receipt_id: uuid.UUID, reason: str, *, store_unavailable: bool) -> Attempt:
    await rt.pool.execute(PENDING_ERROR, receipt_id, reason)
    return Attempt(await get_receipt(rt.pool, receipt_id), store_unavailable)


async def _receipt_or_none(rt: Runtime, receipt_id: uuid.UUID) -> Receipt | None:
    with contextlib.suppress(Exception):  # PostgreSQL may be the reason we are here
        return await get_receipt(rt.pool, receipt_id)
    return None


async def _defer(rt: Runtime, user: str, receipt_id: uuid.UUID, requested_at: datetime) -> Receipt:
    """The customer's rows are held past the lock timeout: record a pending receipt and the
    job that erases everything (the identifier is refused from now on), delete nothing."""
    async with rt.pool.acquire() as conn, conn.transaction():
        await queue.enqueue_erasure(
            conn, user, _job_key(receipt_id), {"receipt_id": str(receipt_id)}, run_after=datetime.now(UTC)
        )
        await conn.execute(
            INSERT_RECEIPT, receipt_id, subject_hash(rt.erasure_key, user), "{}", "{}", requested_at, LOCKED
        )
    log.warning("erasure %s deferred to a worker: the customer's rows are locked", receipt_id)
    return await get_receipt(rt.pool, receipt_id)  # type: ignore[return-value]


async def _erase_postgres(
    rt: Runtime,
    user: str,
    receipt_id: uuid.UUID,
    requested_at: datetime,
    *,
    lock_timeout_s: float,
    recorded: bool = False,
) -> dict[str, int]:
    """Step 1 (``recorded``: for a receipt and job that exist already), then step 2's
    re-check by id; returns what the re-check found."""
    # another transaction on the customer's rows may still deadlock with this one (the
    # server then aborts one of them): run the whole transaction again
    async for retry in AsyncRetrying(
        retry=retry_if_exception_type((asyncpg.DeadlockDetectedError, asyncpg.SerializationError)),
        stop=stop_after_attempt(5),
        wait=wait_random(0.05, 0.3),
        reraise=True,
    ):
        with retry:
            async with rt.pool.acquire() as conn:
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
                    await users.lock_for_erasure(conn, user)
                    # before their orders go: what they added to the co-purchase statistics leaves them
                    await co_purchases.withdraw(conn, user)
                    floor = int(await conn.fetchval(VERSION_FLOOR))
                    kept = await tombstones.record(
                        conn, rt.erasure_key, user, receipt_id, days=rt.settings.tombstone_days
                    )
                    pg_counts, deleted_ids = await _delete_postgres(conn, user, keep=_job_key(receipt_id))
                    # delivered on commit: every API process drops the customer from its caches
                    await conn.execute(NOTIFY, CHANNEL, json.dumps({"user": user, "floor": floor}))
                    caches = rt.forget_cached(user) | {"other_processes": "notified"}
                    counts = {"postgres": pg_counts, "tombstones": kept, "caches": caches}
                    if recorded:
                        await conn.execute(ADD_COUNTS, receipt_id, json.dumps(counts))
                    else:
                        await queue.enqueue_erasure(
                            conn,
                            user,
                            _job_key(receipt_id),
                            {"receipt_id": str(receipt_id)},
                            run_after=requested_at + FINISH_BY_WORKER_AFTER,
                        )
                        subject = subject_hash(rt.erasure_key, user)
                        await conn.execute(
                            INSERT_RECEIPT, receipt_id, subject, json.dumps(counts), "{}", requested_at, None
                        )
                # committed: from now on this process refuses copies read before (a rolled-back
                # erasure must not keep a customer who still exists out of the cache)
                rt.forget_cached(user, graph_floor=floor)
                # after commit, as any other session sees it: by identifier and by the deleted ids
                return await _postgres_leftovers(conn, user, deleted_ids)
    raise AssertionError("unreachable: the retry re-raises")


def _is_outage(exc: BaseException) -> bool:
    return is_outage(exc) or isinstance(exc, TimeoutError)


def _job_key(receipt_id: uuid.UUID) -> str:
    return f"erase:{receipt_id}"


async def _delete_postgres(conn: Conn, user: str, *, keep: str) -> tuple[dict[str, int], dict[str, list[int]]]:
    counts: dict[str, int] = {}
    ids: dict[str, list[int]] = {}
    jobs, job_ids = await queue.delete_for_user(conn, user, keep=keep)
    counts["jobs"], ids["jobs"] = jobs, job_ids
    known = {t.name for t in TABLES}
    for table in TABLES:
        if table.name == "users":  # tables added later, before their parent goes
            for extra in await unlisted_tables(conn, known):
                log.warning("erasing from %s, which erasure.TABLES does not list", extra)
                counts[extra] = int(await conn.fetchval(f'DELETE FROM "{extra}" WHERE user_identifier = $1', user) or 0)
        row = await conn.fetchrow(table.delete, user)
        assert row is not None  # the statement aggregates: one row
        counts[table.name] = row["n"]
        if table.by_id:
            ids[table.name] = list(row["ids"])
    return counts, ids


async def unlisted_tables(conn: Conn, known: set[str]) -> list[str]:
    """Tables with a ``user_identifier`` column that :data:`TABLES` does not list (erased
    and exported all the same, with a warning)."""
    names = [r["table_name"] for r in await conn.fetch(PER_USER_TABLES)]
    return [n for n in names if n not in known and n not in NOT_ERASED and n.replace("_", "").isalnum()]


async def _postgres_leftovers(conn: Conn, user: str, deleted_ids: dict[str, list[int]]) -> dict[str, int]:
    """Rows still there: in every table with a user_identifier column, and by id."""
    left: dict[str, int] = {}
    for name in [r["table_name"] for r in await conn.fetch(PER_USER_TABLES)]:
        if name in NOT_ERASED or not name.replace("_", "").isalnum():
            continue
        left[name] = await conn.fetchval(f'SELECT count(*) FROM "{name}" WHERE user_identifier = $1', user)
    jobs_by_user, jobs_by_id = await queue.left_for_user(conn, user, deleted_ids.get("jobs", []))
    left["jobs"] = jobs_by_user
    if deleted_ids:
        left["jobs_by_id"] = jobs_by_id
        for table in TABLES:
            if table.by_id:
                left[f"{table.name}_by_id"] = await conn.fetchval(table.by_id, deleted_ids[table.name])
    return left


# -- reading receipts -------------------------------------------------------------------------


async def get_receipt(pool: asyncpg.Pool | Conn, receipt_id: uuid.UUID) -> Receipt | None:
    row = await pool.fetchrow(GET_RECEIPT, receipt_id)
    return Receipt.from_row(row) if row else None


async def receipts(rt: Runtime, *, user: str | None = None, limit: int = 20) -> list[Receipt]:
    if user is not None:
        rows = await rt.pool.fetch(RECEIPTS_OF, subject_hash(rt.erasure_key, user), limit)
    else:
        rows = await rt.pool.fetch(RECENT_RECEIPTS, limit)
    return [Receipt.from_row(r) for r in rows]


def parse_receipt_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidInput(f"'{value}' is not a receipt id") from exc


# -- every process forgets --------------------------------------------------------------------


def parse_notice(payload: str) -> tuple[str, int | None]:
    """An erasure notice: ``{"user", "floor"}`` (the graph-version floor: no cache may take
    the customer back below it), or the bare identifier."""
    if payload.startswith("{"):  # an identifier never does
        notice = json.loads(payload)
        return str(notice["user"]), int(notice["floor"]) if notice.get("floor") is not None else None
    return payload, None


class ErasureListener:
    """Listens for erasures (``NOTIFY loft_erasure``) and drops the customer from this
    process's caches. If the connection drops, a notification may have been missed, so
    every cache is cleared before listening again. (Correctness does not depend on this:
    cached graph facts are keyed by a graph version that is never reused; this keeps
    erased words out of memory.)"""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="erasure-listener")
        try:
            await asyncio.wait_for(self._connected.wait(), 5.0)
        except TimeoutError:
            log.warning("erasure listener not connected yet; it keeps trying")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        user, floor = parse_notice(str(payload))
        self.rt.forget_cached(user, graph_floor=floor)

    async def _run(self) -> None:
        first = True
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self.rt.settings.database_url, timeout=10)
                await conn.add_listener(CHANNEL, self._on_notify)
                if not first:
                    self.rt.clear_caches()  # anything may have happened while we were away
                first = False
                self._connected.set()
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _c: closed.set())  # noqa: B023 (awaited below, same turn)
                await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("erasure listener: %s", exc)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()
            self.rt.clear_caches()
            await asyncio.sleep(1.0)


# -- forgetting one memory ------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryForgotten:
    memory_id: uuid.UUID
    events_scrubbed: int  # history entries whose words were removed
    graph_facts_closed: int  # preference relationships closed in the graph


async def forget_memory(
    rt: Runtime, user: str, memory_id: uuid.UUID, *, audit: Callable[[Conn], Awaitable[None]] | None = None
) -> MemoryForgotten | None:
    """Forget one long-term memory on the customer's request; None if they have no such memory.

    What goes: the memory, its words in its history (and in the history of the memories it
    replaced), and the preference it states in the graph (``fact_keys``): the current
    relationship is closed as of now and marked ``forgotten_at``, the customer's graph
    version moves on and their graph snapshot is read again, so the next context, summary
    and graph view no longer state it. A job still queued or retried for a message sent
    before now does not write the memory or the preference again (the delete event keeps
    a marker: :func:`vectors.memories.delete`); a new message that says it again does.

    What stays: the turns it came from (the session's history, until the session or the
    customer is erased), conversation summaries written before, other memories, and the
    closed relationship as history (as a replaced preference is; ``include_history``).

    Everything happens in one PostgreSQL transaction holding the customer's row, like a
    worker's graph write (:func:`service.postgres.users.lock_live`): the Neo4j write commits inside
    it, and if Neo4j cannot be reached nothing is deleted (503; retry). ``audit`` writes
    the audit entry in the same transaction: no deletion without its entry."""
    async with rt.pool.acquire() as conn, conn.transaction():
        await users.hold_unless_erasing(conn, user)
        live = await users.lock_live(conn, [user])  # before the memory's row: the worker's order
        through = await history.newest_message_id(conn)
        deleted = await ltm.delete(conn, user, memory_id, through_message_id=through)
        if deleted is None:
            return None
        if audit is not None:
            await audit(conn)
        closed = 0
        if deleted.fact_keys and live:
            async with rt.graph_store.session() as session:
                closed = await asyncio.wait_for(
                    session.execute_write(graph_writes.forget_preferences, user, deleted.fact_keys, datetime.now(UTC)),
                    FORGET_TIMEOUT_S,
                )
            if closed:
                versions = await users.bump_graph_version(conn, [user])
                if rt.settings.graph_snapshots:
                    await graph_snapshots.refresh(conn, rt.graph_store, versions)
    return MemoryForgotten(memory_id, deleted.events_scrubbed, closed)


# -- forgetting a session, or one turn of it ------------------------------------------------


@dataclass(frozen=True)
class SessionForgotten:
    messages: int  # the session's turns
    passages: int  # the passages of its long turns
    summaries: int  # its conversation summary
    jobs: int  # work queued about it (ingestion, the summary)


@dataclass(frozen=True)
class TurnForgotten:
    message: SessionMessage  # the turn as it was (what a client popping it gets back)
    passages: int
    summaries: int  # the session's summary, when it was written from this turn
    jobs: int  # its ingestion, if still queued


async def forget_session(rt: Runtime, user: str, session_id: uuid.UUID) -> SessionForgotten | None:
    """Delete one session's transcript; None if the customer has no such session.

    What goes, in one PostgreSQL transaction: the session, its turns, their passages, their
    share of the customer's term statistics, the session's summary, and the jobs queued
    about them. What stays: what the customer's memory learned from the session before
    (long-term memories and graph facts; their provenance may name turns that are gone);
    turns still waiting for the worker are never learned from. No tombstone: the session's
    id may be used again, and starts empty.

    It runs inside the fences the erasure and the worker use: the customer's shared lock
    (an erasure waits) and their row as the worker locks it (:func:`service.postgres.users.lock_live`),
    so a worker batch either committed before (its memories stay) or finds the turns gone
    and writes nothing; a turn being added to the session meanwhile finds it gone (404)."""
    async with rt.pool.acquire() as conn, conn.transaction():
        await users.hold_unless_erasing(conn, user)
        if not await users.lock_live(conn, [user]):
            return None
        ids = await history.lock_session(conn, user, session_id)
        if ids is None:
            return None
        counted = await passages.delete_for_messages(conn, user, ids)
        summarised = await session_summaries.delete_for_session(conn, user, session_id)
        deleted = await history.delete_messages(conn, user, ids)
        await history.delete_session(conn, user, session_id)
        keys = [history.ingest_key(i) for i in ids] + [history.summary_key(session_id)]
        jobs = await queue.delete_keys(conn, user, keys)
    return SessionForgotten(deleted, counted, summarised, jobs)


async def forget_turn(rt: Runtime, user: str, session_id: uuid.UUID, message_id: int) -> TurnForgotten | None:
    """Delete one turn of a session (a chat framework undoing its last one); None if there is
    no such turn. As :func:`forget_session`, for one turn: its passages, its share of the term
    statistics and its queued ingestion go; the session's summary goes if it was written from
    this turn, and is written again (without it) once the session is quiet."""
    async with rt.pool.acquire() as conn, conn.transaction():
        await users.hold_unless_erasing(conn, user)
        if not await users.lock_live(conn, [user]):
            return None
        message = await history.lock_message(conn, user, session_id, message_id)
        if message is None:
            return None
        counted = await passages.delete_for_messages(conn, user, [message_id])
        summarised = await session_summaries.delete_for_session(conn, user, session_id, citing=[message_id])
        await history.delete_messages(conn, user, [message_id])
        jobs = await queue.delete_keys(conn, user, [history.ingest_key(message_id)])
        newest = await history.newest_turn_at(conn, user, session_id)
        if newest is not None:  # a summary drafted with this turn meanwhile is written again
            await history.arm_summary(conn, user, session_id, newest, rt.settings.summary_idle_s)
    return TurnForgotten(message, counted, summarised, jobs)
