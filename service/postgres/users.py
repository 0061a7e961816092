"""The ``users`` table: one row per customer, the parent of every per-customer row.

Every statement on ``users`` lives here. Two locks make erasure safe by construction:

- creating a customer takes a *shared* per-customer advisory lock and refuses while an
  erasure of the same identifier is still pending (:func:`refuse_while_erasing`), so a
  new customer is never mixed up with the remains of an erased one;
- the worker writes derived data (memories, graph facts) only while holding the
  customer's row with ``FOR NO KEY UPDATE`` (:func:`lock_live`), and an erasure deletes
  the row only after taking ``FOR UPDATE``: one waits for the other, so a batch that was
  mid-flight when the erasure landed can never write afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.errors import Conflict
from service.postgres import queue
from vectors.pg import Conn, Executor

# (classid, objid) advisory locks; this classid is the "customer" namespace
CUSTOMER_LOCK = 0x4C4F
SHARED_LOCK = "SELECT pg_advisory_xact_lock_shared($1, hashtext($2))"
TRY_SHARED_LOCK = "SELECT pg_try_advisory_xact_lock_shared($1, hashtext($2))"
SHARED_LOCKS = "SELECT pg_advisory_xact_lock_shared($1, hashtext(u)) FROM unnest($2::text[]) AS u ORDER BY u"
EXCLUSIVE_LOCK = "SELECT pg_advisory_xact_lock($1, hashtext($2))"

ENSURE = "INSERT INTO users (user_identifier) VALUES ($1) ON CONFLICT DO NOTHING"
EXISTS = "SELECT 1 FROM users WHERE user_identifier = $1"
GET = "SELECT user_identifier, display_name, created_at, graph_version FROM users WHERE user_identifier = $1"
LOCK_LIVE = """
SELECT user_identifier FROM users WHERE user_identifier = ANY($1::text[])
ORDER BY user_identifier FOR NO KEY UPDATE
"""
LOCK_FOR_ERASURE = "SELECT user_identifier FROM users WHERE user_identifier = $1 FOR UPDATE"
# versions come from one sequence: never reused, even by a customer created again
BUMP_GRAPH_VERSION = """
UPDATE users SET graph_version = nextval('graph_version_seq') WHERE user_identifier = ANY($1::text[])
RETURNING user_identifier, graph_version
"""
COUNT = "SELECT count(*) FROM users"
SET_DISPLAY_NAME = "UPDATE users SET display_name = $2, updated_at = now() WHERE user_identifier = $1"


async def lock_shared(conn: Conn, user: str) -> None:
    """Hold off an erasure of ``user`` until this transaction ends. Every transaction that
    writes the customer's rows from the API takes it first, so an erasure (which takes
    it exclusively, then the customer's row) never meets them half-way: no deadlock."""
    await conn.execute(SHARED_LOCK, CUSTOMER_LOCK, user)


async def lock_shared_many(conn: Conn, users: list[str]) -> None:
    """:func:`lock_shared` for many customers in one round trip (in a fixed order)."""
    await conn.execute(SHARED_LOCKS, CUSTOMER_LOCK, sorted(set(users)))


async def refuse_while_erasing(conn: Executor, user: str) -> None:
    """409 while an erasure of ``user`` is pending: the one check every route that reads or
    writes a customer makes (REST through ``service.api.deps.not_being_erased``, MCP tools, and
    :func:`ensure` for every write), so nothing of a customer who asked to be forgotten is
    served or stored until the erasure has finished in every store."""
    if await queue.erasure_pending(conn, user):
        raise Conflict(
            f"customer '{user}' is being erased and the erasure is not finished yet "
            "(its receipt says why); try again once it completes"
        )


async def hold_unless_erasing(conn: Conn, user: str) -> None:
    """:func:`lock_shared`, then :func:`refuse_while_erasing`: what a request that writes the
    customer takes first. An erasure holds the lock exclusively while it runs, and a pending
    one (a worker's attempt) may hold it while it waits for the customer's rows, up to the
    erasure's lock timeout. A request that finds the lock taken (or asked for) and the
    erasure pending is refused at once (409) rather than queued behind it; one that finds an
    erasure running inline (not committed, so not pending yet) waits for it as before: its
    wait for the rows ends within that timeout, then the request is refused while that
    erasure is pending, and goes on for a customer who starts empty once it is complete."""
    if not await conn.fetchval(TRY_SHARED_LOCK, CUSTOMER_LOCK, user):
        await refuse_while_erasing(conn, user)
        await lock_shared(conn, user)
    await refuse_while_erasing(conn, user)


async def ensure(conn: Conn, user: str) -> None:
    """Create the customer if new (call inside the transaction that stores their data)."""
    await hold_unless_erasing(conn, user)
    # a customer who exists is not inserted again: the INSERT's uniqueness check waits for
    # any transaction that is updating their row (the worker filing their facts), and a
    # chat turn must not wait for the worker
    if await conn.fetchval(EXISTS, user) is None:
        await conn.execute(ENSURE, user)


async def lock_for_erasure(conn: Conn, user: str) -> bool:
    """Exclusive: no customer creation or derived write for ``user`` until commit.
    Returns whether the customer row exists."""
    await conn.execute(EXCLUSIVE_LOCK, CUSTOMER_LOCK, user)
    return await conn.fetchval(LOCK_FOR_ERASURE, user) is not None


async def lock_live(conn: Conn, users: list[str]) -> set[str]:
    """Lock the rows of ``users`` that still exist (in a fixed order: no deadlocks) and
    return them; an erasure waits until this transaction ends."""
    return {r["user_identifier"] for r in await conn.fetch(LOCK_LIVE, sorted(set(users)))}


@dataclass(frozen=True)
class Customer:
    """A customer's row (:data:`GET`'s columns)."""

    user_identifier: str
    display_name: str | None
    created_at: datetime
    graph_version: int


async def get(conn: Executor, user: str) -> Customer | None:
    row = await conn.fetchrow(GET, user)
    return Customer(**row) if row else None


async def bump_graph_version(conn: Conn, users: list[str]) -> dict[str, int]:
    """Move the customers' graph versions on (after a graph write); their new versions."""
    rows = await conn.fetch(BUMP_GRAPH_VERSION, sorted(set(users)))
    return {r["user_identifier"]: int(r["graph_version"]) for r in rows}


async def set_display_name(conn: Conn, user: str, name: str) -> None:
    await conn.execute(SET_DISPLAY_NAME, user, name)


async def count(conn: Conn) -> int:
    return int(await conn.fetchval(COUNT))
