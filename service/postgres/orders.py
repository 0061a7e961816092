"""Orders from the shop's order feed: the owner of the ``orders`` and ``order_lines`` tables.

An order is the record of a purchase (PostgreSQL); the graph's ``PURCHASED {order_id, at,
qty, price, source: 'order'}`` relationships are derived from it by the worker
(``ingest_order`` jobs, bulk lane), exactly as messages are: the order, its lines and its
job are written in one transaction, so an accepted order is never lost and a refused one
leaves nothing behind.

Idempotent on ``order_id`` (the shop's id, unique across the shop): the same order sent
again is a replay (``created: false``); the same id with other lines, another time or
another customer is refused (409), never merged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from loft_memory.models import OrderLineOut, OrderRecord
from service.errors import Conflict
from service.postgres import queue, tombstones, users

JOB_KIND = "ingest_order"

Conn = asyncpg.Connection | PoolConnectionProxy  # a connection, or one lent by the pool

INSERT_ORDER = """
INSERT INTO orders (order_id, user_identifier, placed_at, total, content_hash)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (order_id) DO NOTHING
RETURNING order_id
"""
EXISTING = "SELECT user_identifier, content_hash FROM orders WHERE order_id = $1"
INSERT_LINES = """
INSERT INTO order_lines (order_id, line_no, user_identifier, sku, qty, unit_price)
SELECT $1, t.line_no, $2, t.sku, t.qty, t.unit_price
FROM unnest($3::int[], $4::text[], $5::int[], $6::numeric[]) AS t(line_no, sku, qty, unit_price)
"""
LOCK_LIVE = "SELECT order_id FROM orders WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR SHARE"
LINES_OF = """
SELECT o.order_id, o.user_identifier, o.placed_at, l.line_no, l.sku, l.qty, l.unit_price
FROM orders o JOIN order_lines l USING (order_id)
WHERE o.order_id = ANY($1::text[])
ORDER BY o.placed_at, o.order_id, l.line_no
"""
LIST = """
SELECT o.order_id, o.placed_at, o.received_at, o.total,
       json_agg(json_build_object('sku', l.sku, 'qty', l.qty, 'unit_price', l.unit_price) ORDER BY l.line_no) AS lines
FROM orders o JOIN order_lines l USING (order_id)
WHERE o.user_identifier = $1
GROUP BY o.order_id
ORDER BY o.placed_at DESC, o.order_id
LIMIT $2
"""
COUNT = "SELECT count(*) FROM orders"
# the products whose first line was counted in the co-purchase statistics (service.postgres.co_purchases)
COUNTED = """
SELECT user_identifier, array_agg(DISTINCT sku) AS skus
FROM order_lines WHERE user_identifier = ANY($1::text[]) AND counted
GROUP BY user_identifier
"""
MARK_COUNTED = """
UPDATE order_lines l SET counted = true
FROM unnest($1::text[], $2::int[]) AS t(order_id, line_no)
WHERE l.order_id = t.order_id AND l.line_no = t.line_no
"""
# a customer's products in their most recent orders: how many of those orders hold each,
# and when it was last bought (bounded: a customer with thousands of orders costs no more)
RECENT_PRODUCTS = """
WITH o AS (
  SELECT order_id, placed_at, row_number() OVER (ORDER BY placed_at DESC, order_id DESC) - 1 AS ago
  FROM orders WHERE user_identifier = $1 ORDER BY placed_at DESC, order_id DESC LIMIT $2
)
SELECT l.sku, count(DISTINCT o.order_id)::int AS orders, min(o.ago)::int AS ago, max(o.placed_at) AS last_at,
       (SELECT count(*) FROM o)::int AS of_orders
FROM o JOIN order_lines l USING (order_id)
GROUP BY l.sku
ORDER BY ago, orders DESC, l.sku
"""
EXISTING_IDS = "SELECT order_id FROM orders WHERE order_id = ANY($1::text[])"


@dataclass(frozen=True)
class Line:
    sku: str
    qty: int
    unit_price: float


@dataclass(frozen=True)
class Order:
    order_id: str
    placed_at: datetime
    lines: tuple[Line, ...]

    @property
    def total(self) -> Decimal:
        return sum((Decimal(str(line.unit_price)) * line.qty for line in self.lines), Decimal(0))

    def content_hash(self) -> str:
        """The order's identity beyond its id: time and lines, in order."""
        blob = json.dumps(
            [self.placed_at.isoformat(), [[x.sku, x.qty, round(x.unit_price, 2)] for x in self.lines]],
            separators=(",", ":"),
        )
        return hashlib.sha256(blob.encode()).hexdigest()


async def record(conn: asyncpg.Connection, user: str, order: Order, *, tombstone_key: bytes | None = None) -> bool:
    """Store an order and queue its graph write (call inside a transaction); True when new,
    False for a replay of the same order. Raises Conflict for a different order under a
    known id, or while the customer's erasure is pending. With ``tombstone_key`` (the
    erasure key; the order feed's route passes it), an order erased with its customer is
    refused (Gone, 410) instead of re-creating them."""
    await users.ensure(conn, user)
    if tombstone_key is not None:
        await tombstones.refuse_replays(conn, tombstone_key, user, orders=[order.order_id])
    digest = order.content_hash()
    inserted = await conn.fetchval(INSERT_ORDER, order.order_id, user, order.placed_at, order.total, digest)
    if inserted is None:
        row = await conn.fetchrow(EXISTING, order.order_id)
        if row is None:  # deleted meanwhile by an erasure of its customer: not the same order
            raise Conflict(f"order '{order.order_id}' was erased with its customer; send it under a new id")
        if row["user_identifier"] != user or row["content_hash"] != digest:
            raise Conflict(f"order '{order.order_id}' was already received with different content; ids are final")
        return False
    await conn.execute(
        INSERT_LINES,
        order.order_id,
        user,
        list(range(1, len(order.lines) + 1)),
        [x.sku for x in order.lines],
        [x.qty for x in order.lines],
        [Decimal(str(x.unit_price)) for x in order.lines],
    )
    await queue.enqueue(conn, JOB_KIND, user, f"order:{order.order_id}", {"order_id": order.order_id}, lane="bulk")
    return True


async def lock_live(conn: Conn, order_ids: list[str]) -> set[str]:
    """Lock the orders that still exist (an erasure waits for this transaction)."""
    return {r["order_id"] for r in await conn.fetch(LOCK_LIVE, sorted(set(order_ids)))}


async def lines_of(conn: Conn, order_ids: list[str]) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(LINES_OF, order_ids)]


async def list_for(conn: Conn | asyncpg.Pool, user: str, limit: int) -> list[OrderRecord]:
    out = []
    for r in await conn.fetch(LIST, user, limit):
        lines = json.loads(r["lines"]) if isinstance(r["lines"], str) else r["lines"]
        out.append(
            OrderRecord(
                order_id=r["order_id"],
                placed_at=r["placed_at"],
                received_at=r["received_at"],
                total=float(r["total"]),
                lines=[OrderLineOut(sku=x["sku"], qty=x["qty"], unit_price=float(x["unit_price"])) for x in lines],
            )
        )
    return out


async def existing_ids(conn: Conn | asyncpg.Pool, order_ids: list[str]) -> set[str]:
    """Which of these order ids are stored already."""
    return {r["order_id"] for r in await conn.fetch(EXISTING_IDS, order_ids)}


async def counted_products(conn: Conn, users: list[str]) -> dict[str, set[str]]:
    """Each customer's products already counted in the co-purchase statistics."""
    rows = await conn.fetch(COUNTED, sorted(set(users)))
    return {r["user_identifier"]: set(r["skus"]) for r in rows}


async def mark_counted(conn: Conn, lines: list[tuple[str, int]]) -> None:
    """Mark ``(order_id, line_no)`` lines as the ones that brought their product into the
    statistics (call in the transaction that adds their counts)."""
    if lines:
        await conn.execute(MARK_COUNTED, [o for o, _ in lines], [n for _, n in lines])


async def recent_products(
    conn: Conn | asyncpg.Pool, user: str, *, orders: int, timeout: float | None = None
) -> list[dict[str, Any]]:
    """The products of the customer's ``orders`` most recent orders, most recently bought
    first: ``{sku, orders, ago, last_at, of_orders}`` (``orders``: how many of those orders
    hold it; ``ago``: 0 when the latest one does; ``of_orders``: how many orders were read)."""
    return [dict(r) for r in await conn.fetch(RECENT_PRODUCTS, user, orders, timeout=timeout)]


async def count(conn: Conn | asyncpg.Pool) -> int:
    return int(await conn.fetchval(COUNT))
