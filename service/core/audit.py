"""The audit trail: who read, exported, erased, changed the consent of, or deleted a
memory of which customer, when, and under which request.

One append-only table (``audit_events``, owned here; a trigger refuses UPDATE, DELETE and
TRUNCATE). A customer is named only by the erasure receipts' ``subject_hash`` (HMAC-SHA256
of the identifier under the erasure key, which is never in the database): the trail is
not the customer's data, outlives their erasure (it is how the shop shows the erasure
happened and who asked), and without the key it identifies nobody. With the key and an
identifier an operator finds that customer's entries (``GET /memory/audit?customer=``).

Entries of actions that change or hand out a customer's data (export, erase, consent,
delete_memory) are written before the answer leaves, and a failure to write one fails
the request. Context reads are the chat's hot path: their entry (stamped with the time of
the read) is written just after the answer is sent, so it never holds up the answer or
waits for a pooled connection in its place; if PostgreSQL cannot take it, that is counted
in ``loft_audit_failures_total`` and logged, so an outage of the trail never silences a
shop and a gap in the trail is visible.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from service.core.principal import Principal
from service.postgres.tombstones import subject_hash
from vectors.pg import Executor

log = logging.getLogger("loft.audit")

Action = Literal["context", "export", "erase", "consent", "delete_memory"]
ACTIONS: tuple[Action, ...] = ("context", "export", "erase", "consent", "delete_memory")

INSERT = """
INSERT INTO audit_events (action, key_name, key_role, subject_hash, request_id, detail, at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, coalesce($7, clock_timestamp()))
"""
# newest first, keyset on (at, id); every filter optional ($n IS NULL)
PAGE = """
SELECT id, at, action, key_name, key_role, subject_hash, request_id, detail
FROM audit_events
WHERE ($1::text IS NULL OR subject_hash = $1)
  AND ($2::text IS NULL OR action = $2)
  AND ($3::timestamptz IS NULL OR at >= $3)
  AND ($4::timestamptz IS NULL OR at < $4)
  AND ($5::timestamptz IS NULL OR (at, id) < ($5, $6::bigint))
ORDER BY at DESC, id DESC
LIMIT $7
"""


@dataclass(frozen=True)
class Entry:
    id: int
    at: datetime
    action: str
    key_name: str
    key_role: str
    subject_hash: str
    request_id: str | None
    detail: dict[str, Any]


async def record(
    conn: Executor,
    key: bytes,
    principal: Principal,
    action: Action,
    user: str,
    *,
    request_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Append one entry (in the caller's transaction, if it runs in one); ``at`` defaults
    to the moment it is written."""
    await conn.execute(
        INSERT,
        action,
        principal.name,
        str(principal.role),
        subject_hash(key, user),
        request_id or None,
        json.dumps(dict(detail or {})),
        at,
    )


async def record_read(
    conn: Executor,
    key: bytes,
    principal: Principal,
    user: str,
    *,
    request_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """A context read's entry: never fails the read (counted and logged instead)."""
    from service.metrics import AUDIT_FAILURES

    try:
        await record(conn, key, principal, "context", user, request_id=request_id, detail=detail, at=at)
    except Exception as exc:
        AUDIT_FAILURES.labels("context").inc()
        log.warning("audit entry of a context read not written (%s); request %s", type(exc).__name__, request_id)


async def page(
    conn: Executor,
    key: bytes,
    *,
    customer: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: tuple[datetime, int] | None = None,
    limit: int = 100,
) -> list[Entry]:
    """Entries newest first, filtered; ``before`` continues after a page's last entry."""
    subject = subject_hash(key, customer) if customer is not None else None
    at, row_id = before if before is not None else (None, None)
    rows = await conn.fetch(PAGE, subject, action, since, until, at, row_id, limit)
    return [
        Entry(
            r["id"],
            r["at"],
            r["action"],
            r["key_name"],
            r["key_role"],
            r["subject_hash"],
            r["request_id"],
            json.loads(r["detail"]) if isinstance(r["detail"], str) else dict(r["detail"]),
        )
        for r in rows
    ]
