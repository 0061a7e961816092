"""Consent: how much of a customer's conversation LOFT remembers (their *memory mode*).

- ``full`` (the default): every turn is kept and mined into the graph, the long-term
  memories and the session summaries;
- ``session``: turns are kept for the session's own context (recent turns), nothing is
  extracted from them, and the session is removed once it goes idle (its turns with it);
- ``off``: turns are answered and not stored beyond the reply.

The mode is kept in ``memory_consents`` (owned here) under the erasure receipts' HMAC of
the identifier, so it outlives the erasure that lowering it runs: a customer who asked not
to be remembered stays unremembered, and the table names nobody without the key.

**Fences.** The worker writes derived data only for customers whose mode is ``full``,
checked while it holds their row (:func:`lock_remembered`, in place of
:func:`service.postgres.users.lock_live`); a mode change takes the same row lock first,
so it waits for a batch in flight, and every batch after it sees the new mode.
**Lowering** the mode (full → session → off) then erases the customer through
:func:`service.core.erasure.erase`, with its receipt: what the lower mode would not have kept
is everything already remembered (the current session's turns included: the
conversation continues in a new session). Raising it erases nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from service.core import erasure
from service.errors import Conflict
from service.postgres import users
from service.postgres.tombstones import subject_hash
from vectors.pg import Conn, Executor

if TYPE_CHECKING:
    from service.runtime import Runtime

log = logging.getLogger("loft.consent")

Mode = Literal["full", "session", "off"]
# how much each mode keeps: lowering means moving to a smaller number
RANK: dict[str, int] = {"off": 0, "session": 1, "full": 2}

GET = "SELECT mode FROM memory_consents WHERE subject_hash = $1"
SET = """
INSERT INTO memory_consents (subject_hash, mode) VALUES ($1, $2)
ON CONFLICT (subject_hash) DO UPDATE SET mode = EXCLUDED.mode, updated_at = now()
"""
# the customers of a batch that still exist and are fully remembered, rows locked in a
# fixed order (the worker's fence: see users.lock_live)
LOCK_REMEMBERED = """
SELECT u.user_identifier
FROM users u
JOIN unnest($1::text[], $2::text[]) AS x(user_identifier, subject_hash) ON x.user_identifier = u.user_identifier
LEFT JOIN memory_consents c ON c.subject_hash = x.subject_hash
WHERE coalesce(c.mode, 'full') = 'full'
ORDER BY u.user_identifier
FOR NO KEY UPDATE OF u
"""
# the worker's fence takes the same lock: a batch in flight finishes first
LOCK_CUSTOMER = "SELECT 1 FROM users WHERE user_identifier = $1 FOR NO KEY UPDATE"
# a 'session'-mode session is idle after LOFT_SUMMARY_IDLE_S without a turn, never sooner
# than this (a turn and its reply are never split by the sweep)
MIN_IDLE_S = 60.0


@dataclass(frozen=True)
class Changed:
    before: Mode
    mode: Mode
    receipt: erasure.Receipt | None  # the erasure a lowering ran


async def mode_of(conn: Executor, key: bytes, user: str) -> Mode:
    found = await conn.fetchval(GET, subject_hash(key, user))
    return "session" if found == "session" else "off" if found == "off" else "full"


async def lock_remembered(conn: Conn, key: bytes, customers: list[str]) -> set[str]:
    """:func:`service.postgres.users.lock_live` for derived writes: the customers that exist and
    whose mode is ``full`` (their rows locked until this transaction ends)."""
    names = sorted(set(customers))
    rows = await conn.fetch(LOCK_REMEMBERED, names, [subject_hash(key, n) for n in names])
    return {r["user_identifier"] for r in rows}


async def change(rt: Runtime, user: str, mode: Mode) -> Changed:
    """Set the customer's mode; lowering it erases them (the receipt is returned)."""
    async with rt.pool.acquire() as conn, conn.transaction():
        await users.hold_unless_erasing(conn, user)
        await conn.fetchval(LOCK_CUSTOMER, user)  # waits for a worker batch holding the row
        before = await mode_of(conn, rt.erasure_key, user)
        await conn.execute(SET, subject_hash(rt.erasure_key, user), mode)
    receipt = None
    if RANK[mode] < RANK[before]:
        receipt = await erasure.erase(rt, user, graph_timeout_s=20.0)
        log.info("memory mode lowered (%s -> %s): erasure %s %s", before, mode, receipt.receipt_id, receipt.status)
    return Changed(before, mode, receipt)


# -- sessions held under 'session' mode -------------------------------------------------------

MARK_EPHEMERAL = "UPDATE sessions SET ephemeral = true WHERE id = $1 AND NOT ephemeral"
# idle ephemeral sessions, a batch at a time; a turn that arrives meanwhile moves
# last_message_at on (and holds the row), so the re-check under the lock keeps the session
DELETE_IDLE = """
WITH idle AS (
  SELECT id FROM sessions
  WHERE ephemeral AND last_message_at < now() - make_interval(secs => $1)
  ORDER BY last_message_at LIMIT $2
  FOR UPDATE SKIP LOCKED
), d AS (
  DELETE FROM sessions s USING idle
  WHERE s.id = idle.id AND s.last_message_at < now() - make_interval(secs => $1)
  RETURNING s.id
)
SELECT count(*) FROM d
"""


async def mark_ephemeral(conn: Conn, session_id: object) -> None:
    """This session is held under 'session' mode: removed once idle."""
    await conn.execute(MARK_EPHEMERAL, session_id)


async def hold(conn: Conn, key: bytes, user: str, session_id: object) -> None:
    """For a write that stores turns (an import, an agent's note): refused under 'off'
    (409, nothing stored); under 'session' the session is marked to be removed once idle."""
    mode = await mode_of(conn, key, user)
    if mode == "off":
        raise Conflict(
            f"customer '{user}' chose not to be remembered (memory mode 'off'): nothing of theirs is stored; "
            "their turns are answered through /v1/chat without being kept"
        )
    if mode == "session":
        await mark_ephemeral(conn, session_id)


async def remove_idle_sessions(rt: Runtime, idle_s: float, *, batch: int = 500) -> int:
    """Delete ephemeral sessions idle for ``idle_s`` (their turns cascade); how many."""
    removed = 0
    while True:
        async with rt.pool.acquire() as conn, conn.transaction():
            n = int(await conn.fetchval(DELETE_IDLE, float(idle_s), batch))
        removed += n
        if n < batch:
            return removed
