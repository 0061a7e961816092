"""Retention: data is kept no longer than the shop says, in both stores together.

Each kind has its own setting (``LOFT_RETENTION_MESSAGES_DAYS``, ``_MEMORIES_DAYS``,
``_SUMMARIES_DAYS``, ``_ORDERS_DAYS``; unset keeps it for ever), measured from when it
happened: a message's ``created_at`` (an imported message's own time), a memory's
``valid_from`` (when what it states was said), a summary's last turn, an order's ``placed_at``. Graph facts follow their
sources: a chat fact goes once every message it came from is gone
(:mod:`graph.retention`), a purchase with its order.

The worker sweeps every ``LOFT_RETENTION_SWEEP_S`` (:func:`sweep`): customers with expired
data are found through the per-customer indexes, and each is handled in batches of
``BATCH_ROWS`` rows per kind, each batch one PostgreSQL transaction holding the customer
as every writer does (the shared per-customer lock of the API's writes, and the row lock
of the worker's fence), so a batch never meets an erasure or an ingestion half-way; rows
another transaction is writing are skipped (``SKIP LOCKED``) and taken by the next sweep.
The Neo4j delete commits inside that transaction (a failure rolls the PostgreSQL part
back: nothing is half-deleted), then the customer's graph version moves on, their
snapshot is read again and every API process drops them from its caches. What was
removed is counted in ``loft_privacy_removed_total`` and in ``retention_sweeps``.

When a customer's last message goes, their display name (learnt from a message) goes
too, and the search terms kept per customer are recomputed from what is left; empty
sessions go with their turns. The customer row and ``Customer`` node stay (with no
content) until an erasure.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from graph import retention as graph_retention
from service.core import erasure
from service.metrics import PRIVACY_REMOVED
from service.postgres import graph_snapshots, users
from service.settings import Settings
from vectors.pg import Conn

if TYPE_CHECKING:
    from service.runtime import Runtime

log = logging.getLogger("loft.retention")

BATCH_ROWS = 1000
CUSTOMERS_PER_PAGE = 200
GRAPH_TIMEOUT_S = 60.0
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class Policy:
    """Days kept per kind (None: for ever)."""

    messages_days: int | None = None
    memories_days: int | None = None
    summaries_days: int | None = None
    orders_days: int | None = None

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(
            settings.retention_messages_days,
            settings.retention_memories_days,
            settings.retention_summaries_days,
            settings.retention_orders_days,
        )

    @property
    def active(self) -> bool:
        return any(v is not None for v in asdict(self).values())


# customers with anything expired, a page at a time (each EXISTS is one probe of a
# per-customer index); a kind whose days are null is never expired
CUSTOMERS = """
SELECT u.user_identifier FROM users u
WHERE u.user_identifier > $5
  AND (($1::int IS NOT NULL AND EXISTS (SELECT 1 FROM messages m WHERE m.user_identifier = u.user_identifier
                                        AND m.created_at < now() - make_interval(days => $1)))
    OR ($2::int IS NOT NULL AND EXISTS (SELECT 1 FROM long_term_memories l WHERE l.user_identifier = u.user_identifier
                                        AND l.valid_from < now() - make_interval(days => $2)))
    OR ($3::int IS NOT NULL AND EXISTS (SELECT 1 FROM conversation_summaries s
                                        WHERE s.user_identifier = u.user_identifier
                                        AND s.last_message_at < now() - make_interval(days => $3)))
    OR ($4::int IS NOT NULL AND EXISTS (SELECT 1 FROM orders o WHERE o.user_identifier = u.user_identifier
                                        AND o.placed_at < now() - make_interval(days => $4))))
  AND ($7::text[] IS NULL OR u.user_identifier = ANY($7::text[]))
ORDER BY u.user_identifier
LIMIT $6
"""
EXPIRED_MESSAGES = """
SELECT id FROM messages WHERE user_identifier = $1 AND created_at < now() - make_interval(days => $2)
ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED
"""
DELETE_PASSAGES = (
    "WITH d AS (DELETE FROM message_passages WHERE message_id = ANY($1::bigint[]) RETURNING 1) SELECT count(*) FROM d"
)
DELETE_MESSAGES = "WITH d AS (DELETE FROM messages WHERE id = ANY($1::bigint[]) RETURNING 1) SELECT count(*) FROM d"
# sessions left with no turn and no summary (a summary keeps its session: it has its own days)
DELETE_EMPTY_SESSIONS = """
WITH d AS (
  DELETE FROM sessions s WHERE s.user_identifier = $1
    AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id)
    AND NOT EXISTS (SELECT 1 FROM conversation_summaries c WHERE c.session_id = s.id)
  RETURNING 1)
SELECT count(*) FROM d
"""
STILL_THERE = "SELECT id FROM messages WHERE id = ANY($1::bigint[])"
ANY_MESSAGE = "SELECT EXISTS (SELECT 1 FROM messages WHERE user_identifier = $1)"
FORGET_NAME = "UPDATE users SET display_name = NULL, speakers = '{}', updated_at = now() WHERE user_identifier = $1"
# the per-customer search terms, counted again from the turns that are left (as built first)
DROP_TERMS = "DELETE FROM user_terms WHERE user_identifier = $1"
RECOUNT_TERMS = """
INSERT INTO user_terms (user_identifier, lexeme, ndoc)
SELECT $1, t.lexeme, count(*)
FROM messages m, unnest(m.tsv) AS t(lexeme, positions, weights)
WHERE m.user_identifier = $1 AND m.embedding IS NOT NULL
GROUP BY 2
"""
DELETE_MEMORIES = """
WITH expired AS (
  SELECT id FROM long_term_memories WHERE user_identifier = $1 AND valid_from < now() - make_interval(days => $2)
  ORDER BY valid_from LIMIT $3 FOR UPDATE SKIP LOCKED
), d AS (DELETE FROM long_term_memories l USING expired WHERE l.id = expired.id RETURNING l.id)
SELECT coalesce(array_agg(id), '{}') FROM d
"""
DELETE_MEMORY_EVENTS = """
WITH d AS (DELETE FROM memory_events WHERE user_identifier = $1 AND memory_id = ANY($2::uuid[]) RETURNING 1)
SELECT count(*) FROM d
"""
DELETE_SUMMARIES = """
WITH expired AS (
  SELECT id FROM conversation_summaries
  WHERE user_identifier = $1 AND last_message_at < now() - make_interval(days => $2)
  ORDER BY last_message_at LIMIT $3 FOR UPDATE SKIP LOCKED
), d AS (DELETE FROM conversation_summaries c USING expired WHERE c.id = expired.id RETURNING 1)
SELECT count(*) FROM d
"""
EXPIRED_ORDERS = """
SELECT order_id FROM orders WHERE user_identifier = $1 AND placed_at < now() - make_interval(days => $2)
ORDER BY placed_at LIMIT $3 FOR UPDATE SKIP LOCKED
"""
DELETE_ORDER_LINES = (
    "WITH d AS (DELETE FROM order_lines WHERE order_id = ANY($1::text[]) RETURNING 1) SELECT count(*) FROM d"
)
DELETE_ORDERS = "WITH d AS (DELETE FROM orders WHERE order_id = ANY($1::text[]) RETURNING 1) SELECT count(*) FROM d"

# one sweep per interval across all workers (a second one at the same moment is harmless:
# every batch skips what another holds)
RECENT_SWEEP = "SELECT EXISTS (SELECT 1 FROM retention_sweeps WHERE started_at > now() - make_interval(secs => $1))"
START = "INSERT INTO retention_sweeps (policy) VALUES ($1::jsonb) RETURNING id"
FINISH = "UPDATE retention_sweeps SET finished_at = now(), customers = $2, counts = $3::jsonb, error = $4 WHERE id = $1"


async def due(rt: Runtime) -> bool:
    """Whether retention is configured and no sweep started within LOFT_RETENTION_SWEEP_S."""
    if not Policy.of(rt.settings).active:
        return False
    return not await rt.pool.fetchval(RECENT_SWEEP, float(rt.settings.retention_sweep_s))


@dataclass(frozen=True)
class Swept:
    """What one sweep removed: rows per kind, from how many customers (``sweep_id``: its row
    in ``retention_sweeps``; None when no retention is configured)."""

    sweep_id: int | None
    customers: int
    counts: dict[str, int]


async def sweep(rt: Runtime, policy: Policy | None = None, *, customers: Sequence[str] | None = None) -> Swept:
    """One sweep over every customer (or only ``customers``: an operator's targeted run);
    returns (and logs in ``retention_sweeps``) what it removed."""
    policy = policy or Policy.of(rt.settings)
    totals: Counter[str] = Counter()
    if not policy.active:
        return Swept(None, 0, {})
    sweep_id = await rt.pool.fetchval(START, json.dumps(asdict(policy)))
    handled, error = 0, None
    try:
        after = ""
        while True:
            page = [
                r["user_identifier"]
                for r in await rt.pool.fetch(
                    CUSTOMERS,
                    policy.messages_days,
                    policy.memories_days,
                    policy.summaries_days,
                    policy.orders_days,
                    after,
                    CUSTOMERS_PER_PAGE,
                    list(customers) if customers is not None else None,
                )
            ]
            for user in page:
                totals.update(await _customer(rt, user, policy))
                handled += 1
            if len(page) < CUSTOMERS_PER_PAGE:
                break
            after = page[-1]
    except Exception as exc:
        error = f"{type(exc).__name__}: the next sweep goes on from where this one stopped"
        log.warning("retention sweep %s stopped: %r", sweep_id, exc)
        raise
    finally:
        counts = {k: v for k, v in sorted(totals.items()) if v}
        await rt.pool.execute(FINISH, sweep_id, handled, json.dumps(counts), error)
        for what, n in counts.items():
            PRIVACY_REMOVED.labels(f"retention_{what}").inc(n)
        if counts:
            log.info("retention sweep %s: %d customers, removed %s", sweep_id, handled, counts)
    return Swept(sweep_id, handled, counts)


async def _customer(rt: Runtime, user: str, policy: Policy) -> Counter[str]:
    """Every expired row of one customer, a batch per transaction."""
    done: Counter[str] = Counter()
    while True:
        batch = await _batch(rt, user, policy)
        done.update(batch)
        if not any(batch[k] for k in ("messages", "long_term_memories", "conversation_summaries", "orders")):
            return done


async def _batch(rt: Runtime, user: str, policy: Policy) -> Counter[str]:
    counts: Counter[str] = Counter()
    async with rt.pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        await users.lock_shared(conn, user)  # as the API's writers: an erasure waits for this batch
        if not await users.lock_live(conn, [user]):  # as the worker's fence
            return counts
        message_ids: list[int] = []
        if policy.messages_days is not None:
            message_ids = [r["id"] for r in await conn.fetch(EXPIRED_MESSAGES, user, policy.messages_days, BATCH_ROWS)]
            if message_ids:
                counts["message_passages"] += await conn.fetchval(DELETE_PASSAGES, message_ids)
                counts["messages"] += await conn.fetchval(DELETE_MESSAGES, message_ids)
                counts["sessions"] += await conn.fetchval(DELETE_EMPTY_SESSIONS, user)
                await conn.execute(DROP_TERMS, user)
                await conn.execute(RECOUNT_TERMS, user)
                if not await conn.fetchval(ANY_MESSAGE, user):
                    await conn.execute(FORGET_NAME, user)
        if policy.memories_days is not None:
            memory_ids = await conn.fetchval(DELETE_MEMORIES, user, policy.memories_days, BATCH_ROWS)
            counts["long_term_memories"] += len(memory_ids)
            if memory_ids:
                counts["memory_events"] += await conn.fetchval(DELETE_MEMORY_EVENTS, user, memory_ids)
        if policy.summaries_days is not None:
            counts["conversation_summaries"] += await conn.fetchval(
                DELETE_SUMMARIES, user, policy.summaries_days, BATCH_ROWS
            )
            if counts["conversation_summaries"]:
                counts["sessions"] += await conn.fetchval(DELETE_EMPTY_SESSIONS, user)
        order_ids: list[str] = []
        if policy.orders_days is not None:
            order_ids = [r["order_id"] for r in await conn.fetch(EXPIRED_ORDERS, user, policy.orders_days, BATCH_ROWS)]
            if order_ids:
                counts["order_lines"] += await conn.fetchval(DELETE_ORDER_LINES, order_ids)
                counts["orders"] += await conn.fetchval(DELETE_ORDERS, order_ids)
        if message_ids or order_ids:
            graph = await _graph(rt, conn, user, message_ids, order_ids)
            for what, n in graph.items():
                counts[f"graph_{what}"] += n
        if any(counts.values()):
            # delivered on commit: every API process drops the customer from its caches
            floor = int(await conn.fetchval(erasure.VERSION_FLOOR))
            await conn.execute(erasure.NOTIFY, erasure.CHANNEL, json.dumps({"user": user, "floor": floor}))
    if any(counts.values()):
        rt.forget_cached(user)
    return counts


async def _graph(rt: Runtime, conn: Conn, user: str, message_ids: list[int], order_ids: list[str]) -> dict[str, int]:
    """The facts these messages and orders were the last sources of, deleted in Neo4j
    (inside the caller's transaction: a failure rolls the batch back), then the
    customer's graph version and snapshot move on."""
    async with rt.graph_store.session() as session:
        cited = (
            await asyncio.wait_for(session.execute_read(graph_retention.citing, user, message_ids), GRAPH_TIMEOUT_S)
            if message_ids
            else []
        )
        sources = sorted({i for c in cited for i in c.sources})
        kept = {r["id"] for r in await conn.fetch(STILL_THERE, sources)} if sources else set()
        gone = [c for c in cited if not kept.intersection(c.sources)]
        nodes = [c.id for c in gone if c.kind == "node"]
        relationships = [c.id for c in gone if c.kind == "relationship"]
        if not (nodes or relationships or order_ids):
            return {}
        deleted: dict[str, int] = await asyncio.wait_for(
            session.execute_write(graph_retention.delete, user, nodes, relationships, order_ids), GRAPH_TIMEOUT_S
        )
    if any(deleted.values()):
        versions = await users.bump_graph_version(conn, [user])
        if rt.settings.graph_snapshots:
            await graph_snapshots.refresh(conn, rt.graph_store, versions)
    return deleted
