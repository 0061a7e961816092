"""Forgetting a customer: every store, every cache and every queued job, with a receipt.

``erase(rt, user)``:

1. **PostgreSQL, one transaction.** Take the customer's exclusive lock (no customer
   creation and no worker write for them until commit: :mod:`service.users`), delete
   their rows from every per-customer table, children first so each count is exact,
   and their queued and failed jobs; record a ``pending`` receipt and queue an
   ``erase_user`` job that finishes the erasure if this process cannot; notify every
   API process to drop the customer from its caches (``NOTIFY`` is delivered on
   commit).
2. **Re-check PostgreSQL**: every table with a ``user_identifier`` column (found in the
   catalog, so a table added later is covered), and the deleted rows by their ids.
3. **Neo4j**, in batches (:mod:`graph.erasure`), and its re-check by ``user_id`` and by
   the collected element ids.
4. Only when both re-checks find nothing: the receipt becomes ``complete`` and the
   ``erase_user`` job is deleted, in one transaction. If Neo4j is down, the receipt stays
   ``pending`` (the API answers 202) and a worker finishes step 3-4 when Neo4j returns.
   While it is pending, the identifier cannot be used again (409).

The receipt names the customer only by ``subject_hash``, an HMAC-SHA256 of the identifier
with a key from ``LOFT_ERASURE_KEY`` or generated under the data dir; with the key and an
identifier, an operator can find the receipts of that customer, and without the key the
table says nothing about whom it erased. The identifier itself remains only in the
``erase_user`` job row while the erasure is pending, and that row goes when it completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random

from graph import erasure as graph_erasure
from service import co_purchases, queue, users
from service.errors import InvalidInput
from service.outages import is_outage
from service.settings import Settings
from vectors.pg import Conn

if TYPE_CHECKING:
    from service.runtime import Runtime

log = logging.getLogger("loft.erasure")

CHANNEL = "loft_erasure"
LOCK_TIMEOUT = "30s"
GRAPH_TIMEOUT_S = 60.0
# the API finishes the Neo4j part inline; the worker steps in only if it could not
FINISH_BY_WORKER_AFTER = timedelta(seconds=30)


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
# not per-customer data: the receipts name nobody; the queue is handled on its own
NOT_ERASED = frozenset({"erasure_receipts", "jobs"})

PER_USER_TABLES = """
SELECT c.table_name FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = current_schema() AND c.column_name = 'user_identifier' AND t.table_type = 'BASE TABLE'
ORDER BY 1
"""

INSERT_RECEIPT = """
INSERT INTO erasure_receipts (receipt_id, subject_hash, status, counts, verification, requested_at)
VALUES ($1, $2, 'pending', $3::jsonb, $4::jsonb, $5)
"""
PENDING_ERROR = "UPDATE erasure_receipts SET error = $2 WHERE receipt_id = $1 AND status = 'pending'"
COMPLETE = """
UPDATE erasure_receipts
SET status = 'complete', completed_at = now(), error = NULL,
    counts = counts || $2::jsonb, verification = verification || $3::jsonb
WHERE receipt_id = $1 AND status = 'pending'
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


@dataclass
class Receipt:
    receipt_id: uuid.UUID
    status: str
    counts: dict[str, Any]
    verification: dict[str, Any]
    requested_at: datetime
    completed_at: datetime | None = None
    error: str | None = None

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


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


# -- the subject hash ------------------------------------------------------------------------

_KEY_FILE = "erasure.key"


def erasure_key(settings: Settings) -> bytes:
    """LOFT_ERASURE_KEY, or a random key generated once under the data dir (mode 0600)."""
    if settings.erasure_key is not None and settings.erasure_key.get_secret_value():
        return settings.erasure_key.get_secret_value().encode()
    path = settings.data_dir / _KEY_FILE
    if not path.exists():
        _create_key_file(path)
    return path.read_text().strip().encode()


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    try:
        os.link(tmp, path)  # atomic: processes starting together agree on one key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def subject_hash(key: bytes, user: str) -> str:
    return hmac.new(key, user.encode(), hashlib.sha256).hexdigest()


# -- erasing ----------------------------------------------------------------------------------


async def erase(rt: Runtime, user: str, *, graph_timeout_s: float = GRAPH_TIMEOUT_S) -> Receipt:
    """Erase ``user`` everywhere; the receipt is ``complete`` only once both stores were
    re-checked and found clean, else ``pending`` (a worker completes it)."""
    receipt_id = uuid.uuid4()
    requested_at = datetime.now(UTC)
    subject = subject_hash(rt.erasure_key, user)
    # another transaction on the customer's rows may still deadlock with this one (the
    # server then aborts one of them): run the whole transaction again
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type((asyncpg.DeadlockDetectedError, asyncpg.SerializationError)),
        stop=stop_after_attempt(5),
        wait=wait_random(0.05, 0.3),
        reraise=True,
    ):
        with attempt:
            async with rt.pool.acquire() as conn:
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    await users.lock_for_erasure(conn, user)
                    # before their orders go: what they added to the co-purchase statistics leaves them
                    await co_purchases.withdraw(conn, user)
                    pg_counts, deleted_ids = await _delete_postgres(conn, user)
                    await queue.enqueue(
                        conn,
                        "erase_user",
                        user,
                        _job_key(receipt_id),
                        {"receipt_id": str(receipt_id)},
                        run_after=requested_at + FINISH_BY_WORKER_AFTER,
                    )
                    # delivered on commit: every API process drops the customer from its caches
                    await conn.execute(NOTIFY, CHANNEL, user)
                    counts = {"postgres": pg_counts, "caches": rt.forget_cached(user) | {"other_processes": "notified"}}
                    await conn.execute(INSERT_RECEIPT, receipt_id, subject, json.dumps(counts), "{}", requested_at)
                # after commit, as any other session sees it: by identifier and by the deleted ids
                pg_left = await _postgres_leftovers(conn, user, deleted_ids)
    return await finish(rt, receipt_id, user, postgres_by_id=pg_left, graph_timeout_s=graph_timeout_s)


async def finish(
    rt: Runtime,
    receipt_id: uuid.UUID,
    user: str,
    *,
    postgres_by_id: dict[str, int] | None = None,
    graph_timeout_s: float = GRAPH_TIMEOUT_S,
) -> Receipt:
    """The Neo4j part and the final re-checks; marks the receipt complete when clean.
    Safe to run more than once (the API inline, a worker later)."""
    receipt = await get_receipt(rt.pool, receipt_id)
    if receipt is None or receipt.status == "complete":
        await queue.delete_by_key(rt.pool, _job_key(receipt_id))
        return receipt  # type: ignore[return-value]
    try:
        graph = await asyncio.wait_for(
            graph_erasure.erase_customer(rt.graph, user, database=rt.settings.neo4j_database), graph_timeout_s
        )
    except Exception as exc:
        log.warning("erasure %s pending: %s: %s", receipt_id, type(exc).__name__, exc)
        reason = f"Neo4j is unavailable ({type(exc).__name__}); the erasure completes when it returns"
        await rt.pool.execute(PENDING_ERROR, receipt_id, reason)
        if _is_outage(exc):
            return await get_receipt(rt.pool, receipt_id)  # type: ignore[return-value]
        raise
    async with rt.pool.acquire() as conn, conn.transaction():
        pg_left = (postgres_by_id or {}) | await _postgres_leftovers(conn, user, {})
        if graph.clean and not any(pg_left.values()):
            neo4j = {
                "nodes": graph.nodes,
                "relationships": graph.relationships,
                "vocabulary_nodes": graph.vocabulary_nodes,
            }
            verification = {"postgres": pg_left, "neo4j": graph.leftovers}
            await conn.execute(COMPLETE, receipt_id, json.dumps({"neo4j": neo4j}), json.dumps(verification))
            await queue.delete_by_key(conn, _job_key(receipt_id))
        else:
            detail = f"data remained after deleting: neo4j {graph.leftovers}, postgres {pg_left}"
            log.error("erasure %s: %s", receipt_id, detail)
            await conn.execute(PENDING_ERROR, receipt_id, detail)
    rt.forget_cached(user)
    return await get_receipt(rt.pool, receipt_id)  # type: ignore[return-value]


def _is_outage(exc: BaseException) -> bool:
    return is_outage(exc) or isinstance(exc, TimeoutError)


def _job_key(receipt_id: uuid.UUID) -> str:
    return f"erase:{receipt_id}"


async def _delete_postgres(conn: Conn, user: str) -> tuple[dict[str, int], dict[str, list[int]]]:
    counts: dict[str, int] = {}
    ids: dict[str, list[int]] = {}
    jobs, job_ids = await queue.delete_for_user(conn, user)
    counts["jobs"], ids["jobs"] = jobs, job_ids
    known = {t.name for t in TABLES}
    for table in TABLES:
        if table.name == "users":  # tables added later, before their parent goes
            for extra in await _unlisted_tables(conn, known):
                log.warning("erasing from %s, which erasure.TABLES does not list", extra)
                counts[extra] = int(await conn.fetchval(f'DELETE FROM "{extra}" WHERE user_identifier = $1', user) or 0)
        row = await conn.fetchrow(table.delete, user)
        assert row is not None  # the statement aggregates: one row
        counts[table.name] = row["n"]
        if table.by_id:
            ids[table.name] = list(row["ids"])
    return counts, ids


async def _unlisted_tables(conn: Conn, known: set[str]) -> list[str]:
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

    def _on_notify(self, _conn: object, _pid: int, _channel: str, user: object) -> None:
        self.rt.forget_cached(str(user))

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
