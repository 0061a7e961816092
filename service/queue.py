"""The durable job queue: a PostgreSQL table claimed with ``FOR UPDATE SKIP LOCKED``.

- Enqueued in the same transaction as the message it is about, so accepted work is
  never lost; ``dedupe_key`` makes enqueueing idempotent.
- Claimed in batches with a lease (``locked_until``): a worker that dies mid-batch
  leaves jobs that any worker re-claims once the lease expires.
- A failure is retried with exponential back-off (``run_after``) up to
  ``max_attempts``; a store outage (``StoreUnavailable``) never uses up attempts. A job
  that keeps failing is parked as ``failed`` with its error and stops blocking nothing.
- Finished jobs are deleted: the queue holds only pending and failed work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

LEASE = timedelta(minutes=5)
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0

ENQUEUE = """
INSERT INTO jobs (kind, user_identifier, dedupe_key, payload, run_after)
VALUES ($1, $2, $3, $4::jsonb, coalesce($5, now()))
ON CONFLICT (dedupe_key) DO NOTHING
"""

# summaries: re-arm the job so it runs once the session has been quiet for a while
ENQUEUE_DEBOUNCED = """
INSERT INTO jobs (kind, user_identifier, dedupe_key, payload, run_after)
VALUES ($1, $2, $3, $4::jsonb, $5)
ON CONFLICT (dedupe_key) DO UPDATE
   SET run_after = greatest(jobs.run_after, excluded.run_after),
       status = CASE WHEN jobs.status = 'failed' THEN 'queued' ELSE jobs.status END,
       attempts = CASE WHEN jobs.status = 'failed' THEN 0 ELSE jobs.attempts END,
       updated_at = now()
"""

REQUEUE_EXPIRED = """
UPDATE jobs SET status = 'queued', locked_by = NULL, locked_until = NULL, updated_at = now()
WHERE status = 'running' AND locked_until < now()
"""

CLAIM = """
UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1,
                locked_until = now() + $2::interval, updated_at = now()
WHERE id IN (
    SELECT id FROM jobs
    WHERE status = 'queued' AND run_after <= now() AND kind = ANY($4::text[])
    ORDER BY id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING id, kind, user_identifier, dedupe_key, payload, attempts, max_attempts
"""

DONE = "DELETE FROM jobs WHERE id = ANY($1::bigint[]) AND locked_by = $2"

RETRY = """
UPDATE jobs SET status = CASE WHEN $3 AND attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
                attempts = CASE WHEN $3 THEN attempts ELSE attempts - 1 END,
                run_after = now() + $2::interval, last_error = $4,
                locked_by = NULL, locked_until = NULL, updated_at = now()
WHERE id = $1
"""

PENDING_ERASURE = "SELECT EXISTS (SELECT 1 FROM jobs WHERE user_identifier = $1 AND kind = 'erase_user')"

# an erasure drops the customer's queued and failed work (a failed job's error text can
# quote what they said), but not the job that finishes the erasure itself
DELETE_FOR_USER = """
WITH d AS (DELETE FROM jobs WHERE user_identifier = $1 AND kind <> 'erase_user' RETURNING id)
SELECT count(*) AS n, coalesce(array_agg(id), '{}') AS ids FROM d
"""
COUNT_FOR_USER = "SELECT count(*) FROM jobs WHERE user_identifier = $1 AND kind <> 'erase_user'"
COUNT_BY_ID = "SELECT count(*) FROM jobs WHERE id = ANY($1::bigint[])"
DELETE_BY_KEY = "DELETE FROM jobs WHERE dedupe_key = $1"

COUNTS = """
SELECT count(*) FILTER (WHERE status = 'queued' AND run_after <= now()) AS ready,
       count(*) FILTER (WHERE status = 'queued' AND run_after > now()) AS scheduled,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'failed') AS failed
FROM jobs
"""


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    user_identifier: str
    dedupe_key: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


async def enqueue(
    conn: asyncpg.Connection,
    kind: str,
    user_identifier: str,
    dedupe_key: str,
    payload: dict[str, Any],
    *,
    run_after: datetime | None = None,
    debounce: bool = False,
) -> None:
    await conn.execute(
        ENQUEUE_DEBOUNCED if debounce else ENQUEUE, kind, user_identifier, dedupe_key, json.dumps(payload), run_after
    )


async def claim(pool: asyncpg.Pool, worker_id: str, limit: int, kinds: tuple[str, ...]) -> list[Job]:
    async with pool.acquire() as conn:
        await conn.execute(REQUEUE_EXPIRED)
        rows = await conn.fetch(CLAIM, worker_id, LEASE, limit, list(kinds))
    return [
        Job(r["id"], r["kind"], r["user_identifier"], r["dedupe_key"], json.loads(r["payload"]), r["attempts"], r["max_attempts"])
        for r in rows
    ]


async def complete(pool: asyncpg.Pool, worker_id: str, job_ids: list[int]) -> None:
    if job_ids:
        await pool.execute(DONE, job_ids, worker_id)


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1)))


async def retry(pool: asyncpg.Pool, job: Job, error: str, *, counts: bool = True) -> None:
    """Put a job back with back-off. ``counts=False`` (a store outage) keeps its attempts."""
    await pool.execute(RETRY, job.id, backoff(job.attempts), counts, error[:4000])


async def erasure_pending(conn: asyncpg.Connection, user_identifier: str) -> bool:
    return await conn.fetchval(PENDING_ERASURE, user_identifier)


async def delete_for_user(conn: asyncpg.Connection, user_identifier: str) -> tuple[int, list[int]]:
    """Drop the customer's jobs (not a pending erasure's); returns (count, job ids)."""
    row = await conn.fetchrow(DELETE_FOR_USER, user_identifier)
    return row["n"], list(row["ids"])


async def left_for_user(conn: asyncpg.Connection, user_identifier: str, job_ids: list[int]) -> tuple[int, int]:
    """Jobs still there for the customer: (by identifier, by the ids deleted before)."""
    return await conn.fetchval(COUNT_FOR_USER, user_identifier), await conn.fetchval(COUNT_BY_ID, job_ids)


async def delete_by_key(conn: asyncpg.Connection | asyncpg.Pool, dedupe_key: str) -> None:
    await conn.execute(DELETE_BY_KEY, dedupe_key)


async def counts(conn: asyncpg.Connection) -> dict[str, int]:
    """ready: waiting for a worker; scheduled: waiting for their time (debounced summaries,
    back-off); running; failed: parked with their error."""
    return dict(await conn.fetchrow(COUNTS))
