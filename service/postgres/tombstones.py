"""Tombstones: an erased customer's client ids, so that a replay does not bring them back.

Clients and feeds send ids of their own with what they store: a chat turn's
``Idempotency-Key`` / ``message_id``, an import's ``external_id``\\ s and ``session_id``,
the order feed's ``order_id``. After an erasure those ids are free again, so a retry of a
turn, a feed that sends its orders again or an import run a second time would re-create
the customer with the very data that was erased. An erasure therefore records, in the
same transaction that deletes the rows, every such id the customer had, and a write that
carries one of them is refused with ``410 Gone`` (:class:`service.errors.Gone`) and
stores nothing: no customer row, no message, no order. New messages and orders (new ids,
or none) start a fresh customer as before.

**What is stored.** One row per erasure (``erasure_tombstones``, owned here): the
receipt's ``subject_hash`` (HMAC-SHA256 of the identifier) and, for each client id, the
first 16 bytes of HMAC-SHA256(key, kind, customer, id) as a ``uuid``. The key is the
erasure key (``LOFT_ERASURE_KEY`` or the one generated under the data dir), never in the
database. Without it the table names no customer and no id and cannot be linked to
anything else; with it an operator can only confirm a guess (an identifier and an id), as
with the receipts. That is why tombstones are not part of the customer's data that an
erasure deletes: they hold nothing of the customer, and they exist to keep the erasure.

**Why one row per erasure, with the ids in an array.** A customer with 10,000 messages
leaves 10,000 ids. One ``uuid[]`` holds them in 160 KB (out of line) written in one
statement; one row per id took 784 KB with its index. Checks find the customer's rows by
``subject_hash`` (an index probe that finds nothing for the customers who were never
erased, i.e. almost every write) and intersect the ids sent with the ids kept.
``python -m bench.tombstones`` (10,000 ids, beside 200 erased customers of 1,000, both
designs in one run, medians): write 244 ms vs 333 ms, 0.11 ms vs 0.20 ms to check a
customer never erased, 0.59 ms vs 0.11 ms for one id of a returning customer (the array
is read whole), 3.9 ms vs 9.7 ms for an import of 1,000 ids.
A Bloom filter would be smaller but can refuse a new id by mistake; refusing a customer's
new message is not an acceptable error, so the set is exact (16 bytes of HMAC: a false
match needs a 2^-128 coincidence).

**How long.** ``LOFT_TOMBSTONE_DAYS`` (default 400, see ``service/settings.py``) from the
erasure; expired rows are ignored and deleted by the next erasure. Past that a replay
re-creates the customer, as it would have without tombstones.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable
from typing import Literal

from service.errors import Gone
from vectors.pg import Conn, Executor

Kind = Literal["message", "order", "session"]

# the ids a client could send again, read just before the erasure deletes their rows
CLIENT_IDS = """
SELECT 'message' AS kind, external_id AS id FROM messages WHERE user_identifier = $1 AND external_id IS NOT NULL
UNION ALL
SELECT 'order', order_id FROM orders WHERE user_identifier = $1
UNION ALL
SELECT 'session', id::text FROM sessions WHERE user_identifier = $1
"""
INSERT = """
INSERT INTO erasure_tombstones (receipt_id, subject_hash, client_ids, expires_at)
VALUES ($1, $2, $3::uuid[], now() + make_interval(days => $4))
ON CONFLICT (receipt_id) DO NOTHING
"""
PURGE = "DELETE FROM erasure_tombstones WHERE expires_at <= now()"
# the ids sent that an unexpired tombstone of the customer holds
REPLAYED = """
SELECT coalesce(array_agg(x), '{}') FROM (
  SELECT unnest($2::uuid[]) AS x
  INTERSECT
  SELECT unnest(client_ids) FROM erasure_tombstones WHERE subject_hash = $1 AND expires_at > now()
) s
"""

_WHAT: dict[Kind, str] = {
    "message": "message id (Idempotency-Key, message_id or external_id)",
    "order": "order_id",
    "session": "session_id",
}


def subject_hash(key: bytes, user: str) -> str:
    """The customer as erasure receipts and tombstones name them: HMAC-SHA256 of the identifier."""
    return hmac.new(key, user.encode(), hashlib.sha256).hexdigest()


def client_id_hash(key: bytes, user: str, kind: Kind, client_id: str) -> uuid.UUID:
    """One client id of one customer, as a tombstone keeps it."""
    message = b"\x00".join((b"tombstone", kind.encode(), user.encode(), client_id.encode()))
    return uuid.UUID(bytes=hmac.new(key, message, hashlib.sha256).digest()[:16])


async def record(conn: Conn, key: bytes, user: str, receipt_id: uuid.UUID, *, days: int) -> int:
    """Keep the client ids of ``user``'s rows (call in the erasure's transaction, before
    deleting them) and drop expired tombstones; returns how many ids were kept."""
    await conn.execute(PURGE)
    if days <= 0:
        return 0
    ids = {client_id_hash(key, user, r["kind"], r["id"]) for r in await conn.fetch(CLIENT_IDS, user)}
    if ids:
        await conn.execute(INSERT, receipt_id, subject_hash(key, user), sorted(ids), days)
    return len(ids)


async def refuse_replays(
    conn: Executor,
    key: bytes,
    user: str,
    *,
    messages: Iterable[str | None] = (),
    orders: Iterable[str] = (),
    sessions: Iterable[uuid.UUID | str] = (),
) -> None:
    """Raise :class:`Gone` if any of these client ids belonged to ``user`` when they were
    erased. Call after :func:`service.postgres.users.lock_shared` (or ``ensure``) in the transaction
    that would store them, so an erasure committing meanwhile is seen."""
    sent: dict[uuid.UUID, tuple[Kind, str]] = {}
    kinds: tuple[tuple[Kind, Iterable[str | uuid.UUID | None]], ...] = (
        ("message", messages),
        ("order", orders),
        ("session", sessions),
    )
    for kind, values in kinds:
        for value in values:
            if value is not None:
                sent[client_id_hash(key, user, kind, str(value))] = (kind, str(value))
    if not sent:
        return
    replayed = await conn.fetchval(REPLAYED, subject_hash(key, user), list(sent))
    if replayed:
        found = sorted(sent[h] for h in replayed)
        kind, example = found[0]
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        raise Gone(
            f"{_WHAT[kind]} '{example}'{more} belonged to customer '{user}' before they were erased; "
            "an erased customer is not re-created from a replay, so nothing was stored. "
            "Send new messages and orders under new ids (or without the erased ones)"
        )
