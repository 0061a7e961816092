"""The durable job queue: a PostgreSQL table, claimed with ``FOR UPDATE SKIP LOCKED``.

- **Durable**: a job is enqueued in the same transaction as the message it is about, so
  accepted work is never lost; ``dedupe_key`` makes enqueueing idempotent.
- **Fair**: two lanes, ``live`` (chat turns) and ``bulk`` (imports, feeds), claimed
  separately so the worker runs live batches first and keeps bulk batches small while
  customers chat (see :mod:`service.worker`); a back-fill still moves every round.
  Within a lane, a claim walks the customers that have ready work and takes a few jobs
  from each, oldest first: one customer's 20,000-message import cannot starve anyone.
- **Leased and fenced**: a claim sets ``locked_by`` and counts an attempt; the worker
  renews the lease while it works (:func:`heartbeat`). Every later change of the job
  (done, retry) names the holder *and* the attempt, so a worker whose lease ran out can
  never complete, retry or delete a job that another worker has claimed since.
- **Crash-safe**: a job whose lease expired (its worker died or hung) goes back with
  ``crashes`` counted; it then runs alone, and a second crash parks it as ``failed`` (the
  jobs of its batch are retried without it).
- **Retries**: a failure is retried with exponential back-off up to ``max_attempts``; a
  store outage (:mod:`service.outages`) does not use up attempts; a job that keeps failing
  is parked as ``failed`` with its error and blocks nothing.
- **Debounced jobs** (session summaries) re-armed while running run once more.

Finished jobs are deleted: the queue holds only pending and failed work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from vectors.pg import Conn, Executor

Lane = Literal["live", "bulk"]
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0
CRASHES_TO_PARK = 2
BATCHED_KINDS = frozenset({"ingest_message"})  # claimed many at a time (one crash must not sink a batch)

ENQUEUE = """
INSERT INTO jobs (kind, user_identifier, dedupe_key, payload, run_after, lane)
VALUES ($1, $2, $3, $4::jsonb, coalesce($5, now()), $6)
ON CONFLICT (dedupe_key) DO NOTHING
"""

# summaries: re-arm the job so it runs once the session has been quiet for a while; a
# job that is running now is marked to run again when it finishes
ENQUEUE_DEBOUNCED = """
INSERT INTO jobs (kind, user_identifier, dedupe_key, payload, run_after, lane)
VALUES ($1, $2, $3, $4::jsonb, $5, $6)
ON CONFLICT (dedupe_key) DO UPDATE
   SET run_after = greatest(jobs.run_after, excluded.run_after),
       rearmed = jobs.rearmed OR jobs.status = 'running',
       status = CASE WHEN jobs.status = 'failed' THEN 'queued' ELSE jobs.status END,
       attempts = CASE WHEN jobs.status = 'failed' THEN 0 ELSE jobs.attempts END,
       updated_at = now()
"""

# a lease that ran out: the worker died or hung. Count it; park a job after its second.
REQUEUE_EXPIRED = f"""
UPDATE jobs SET status = CASE WHEN crashes + 1 >= {CRASHES_TO_PARK} THEN 'failed' ELSE 'queued' END,
                crashes = crashes + 1,
                last_error = CASE WHEN crashes + 1 >= {CRASHES_TO_PARK}
                                  THEN 'the worker holding this job stopped twice (crashed, killed or hung)'
                                  ELSE last_error END,
                locked_by = NULL, locked_until = NULL, updated_at = now()
WHERE status = 'running' AND locked_until < now()
"""

# Fair claim within one kind and lane: the customers with queued work (a skip scan over
# the partial index, one probe per customer), a few ready jobs of each (enough to fill
# the batch), ranked so that every customer's oldest job comes before anyone's second.
CLAIM = """
WITH RECURSIVE customers AS (
  (SELECT user_identifier FROM jobs
   WHERE status = 'queued' AND kind = $4 AND lane = $5 ORDER BY user_identifier LIMIT 1)
  UNION ALL
  SELECT (SELECT j.user_identifier FROM jobs j
          WHERE j.status = 'queued' AND j.kind = $4 AND j.lane = $5 AND j.user_identifier > c.user_identifier
          ORDER BY j.user_identifier LIMIT 1)
  FROM customers c WHERE c.user_identifier IS NOT NULL
),
share AS (SELECT greatest(1, ceil($3::float / greatest(count(*), 1)))::int AS per_customer
          FROM customers WHERE user_identifier IS NOT NULL),
candidates AS (
  SELECT j.id, row_number() OVER (PARTITION BY c.user_identifier ORDER BY j.id) AS turn
  FROM customers c, share,
       LATERAL (SELECT id FROM jobs
                WHERE status = 'queued' AND kind = $4 AND lane = $5 AND user_identifier = c.user_identifier
                  AND run_after <= now() AND ($6::int IS NULL OR crashes = $6)
                ORDER BY id LIMIT share.per_customer) j
  WHERE c.user_identifier IS NOT NULL
),
picked AS (
  SELECT id FROM jobs
  WHERE id IN (SELECT id FROM candidates ORDER BY turn, id LIMIT $3) AND status = 'queued'
  FOR UPDATE SKIP LOCKED
)
UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1,
                locked_until = now() + $2::interval, updated_at = now()
WHERE id IN (SELECT id FROM picked)
RETURNING id, kind, user_identifier, dedupe_key, payload, attempts, max_attempts, crashes, lane
"""

HEARTBEAT = """
UPDATE jobs SET locked_until = now() + $3::interval
WHERE id = ANY($1::bigint[]) AND locked_by = $2 AND status = 'running'
"""

# done: delete, unless it was re-armed meanwhile (then it waits for its next run); both
# only for the holder of this very attempt
DONE = """
DELETE FROM jobs j USING unnest($1::bigint[], $2::int[]) AS t(id, attempt)
WHERE j.id = t.id AND j.attempts = t.attempt AND j.locked_by = $3 AND NOT j.rearmed
"""
RUN_AGAIN = """
UPDATE jobs j SET status = 'queued', rearmed = false, locked_by = NULL, locked_until = NULL, updated_at = now()
FROM unnest($1::bigint[], $2::int[]) AS t(id, attempt)
WHERE j.id = t.id AND j.attempts = t.attempt AND j.locked_by = $3 AND j.rearmed
"""

RETRY = """
UPDATE jobs SET status = CASE WHEN $3 AND attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
                attempts = CASE WHEN $3 THEN attempts ELSE attempts - 1 END,
                run_after = now() + $2::interval, last_error = $4, rearmed = false,
                locked_by = NULL, locked_until = NULL, updated_at = now()
WHERE id = $1 AND locked_by = $5 AND attempts = $6
RETURNING status
"""

# after an outage: jobs this worker claimed but never heard back about (the claim's answer
# was lost with the connection) go back at once, without counting an attempt or a crash
RELEASE_ORPHANS = """
UPDATE jobs SET status = 'queued', attempts = greatest(attempts - 1, 0), locked_by = NULL, locked_until = NULL,
                updated_at = now()
WHERE status = 'running' AND locked_by = $1 AND NOT (id = ANY($2::bigint[]))
"""

COUNTS = """
SELECT count(*) FILTER (WHERE status = 'queued' AND run_after <= now()) AS ready,
       count(*) FILTER (WHERE status = 'queued' AND run_after > now()) AS scheduled,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'failed') AS failed
FROM jobs
"""

ANY_PENDING = "SELECT EXISTS (SELECT 1 FROM jobs WHERE dedupe_key = ANY($1::text[]) AND status <> 'failed')"
# operators' view (GET /metrics): depth per kind, lane and state, and how long the oldest
# ready job has waited
STATS = """
SELECT kind, lane,
       CASE WHEN status = 'queued' AND run_after <= now() THEN 'ready'
            WHEN status = 'queued' THEN 'scheduled' ELSE status END AS state,
       count(*) AS n,
       extract(epoch FROM now() - min(run_after)) AS oldest_s
FROM jobs GROUP BY 1, 2, 3
"""

# An erasure job is never parked: it is enqueued with attempts that cannot run out and,
# each time it runs, its crash count starts again (a worker that dies holding it puts it
# back, not away). Until its Neo4j part is verified clean the identifier stays refused, so
# any erase_user row of the customer, whatever its status, means an erasure is pending.
ERASURE_ATTEMPTS = 2_147_483_647
ENQUEUE_ERASURE = f"""
INSERT INTO jobs (kind, user_identifier, dedupe_key, payload, run_after, lane, max_attempts)
VALUES ('erase_user', $1, $2, $3::jsonb, $4, 'live', {ERASURE_ATTEMPTS})
ON CONFLICT (dedupe_key) DO NOTHING
"""
KEEP_ERASURE = "UPDATE jobs SET crashes = 0 WHERE id = $1 AND kind = 'erase_user'"
PENDING_ERASURE = "SELECT EXISTS (SELECT 1 FROM jobs WHERE user_identifier = $1 AND kind = 'erase_user')"
# a completed erasure ends every erasure of the customer (older ones it superseded too):
# the identifier leaves the queue
DELETE_ERASURES = "DELETE FROM jobs WHERE user_identifier = $1 AND kind = 'erase_user'"

# an erasure drops the customer's queued and failed work (a failed job's error text can
# quote what they said) and the customer's earlier erasures (this one supersedes them);
# only its own job stays, to finish it
DELETE_FOR_USER = """
WITH d AS (DELETE FROM jobs WHERE user_identifier = $1 AND dedupe_key <> $2 RETURNING id)
SELECT count(*) AS n, coalesce(array_agg(id), '{}') AS ids FROM d
"""
COUNT_FOR_USER = "SELECT count(*) FROM jobs WHERE user_identifier = $1 AND kind <> 'erase_user'"
COUNT_BY_ID = "SELECT count(*) FROM jobs WHERE id = ANY($1::bigint[])"
DELETE_BY_KEY = "DELETE FROM jobs WHERE dedupe_key = $1"
# the work queued about a customer's turns or session that is deleted (running jobs too: their
# worker finds the rows gone inside its fence, and its later updates of the job match nothing)
DELETE_KEYS = """
WITH d AS (DELETE FROM jobs WHERE dedupe_key = ANY($2::text[]) AND user_identifier = $1 RETURNING 1)
SELECT count(*) FROM d
"""


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    user_identifier: str
    dedupe_key: str
    payload: dict[str, Any]
    attempts: int  # with locked_by, the claim's fencing token
    max_attempts: int
    crashes: int = 0
    lane: str = "live"


async def enqueue(
    conn: Conn,
    kind: str,
    user_identifier: str,
    dedupe_key: str,
    payload: dict[str, Any],
    *,
    run_after: datetime | None = None,
    debounce: bool = False,
    lane: Lane = "live",
) -> None:
    await conn.execute(
        ENQUEUE_DEBOUNCED if debounce else ENQUEUE,
        kind,
        user_identifier,
        dedupe_key,
        json.dumps(payload),
        run_after,
        lane,
    )


async def requeue_expired(conn: Executor) -> None:
    await conn.execute(REQUEUE_EXPIRED)


async def claim(
    pool: asyncpg.Pool,
    worker_id: str,
    limit: int,
    kind: str,
    *,
    lease: timedelta,
    lane: Lane = "live",
    crashed: bool = False,
) -> list[Job]:
    """Claim up to ``limit`` ready jobs of ``kind`` in ``lane``, fairly across customers.
    ``crashed=True`` claims jobs whose last worker died holding them (to run them one at a
    time), from either lane."""
    async with pool.acquire() as conn:
        await conn.execute(REQUEUE_EXPIRED)
        if crashed:
            return await _claim_lane(conn, worker_id, limit, kind, "live", lease, True) or await _claim_lane(
                conn, worker_id, limit, kind, "bulk", lease, True
            )
        return await _claim_lane(conn, worker_id, limit, kind, lane, lease, False)


async def _claim_lane(
    conn: Conn, worker_id: str, limit: int, kind: str, lane: str, lease: timedelta, crashed: bool
) -> list[Job]:
    if limit <= 0:
        return []
    # only message batches keep a crashed job apart (it runs alone); other kinds run one at a time anyway
    crash_filter = (1 if crashed else 0) if kind in BATCHED_KINDS else None
    rows = await conn.fetch(CLAIM, worker_id, lease, limit, kind, lane, crash_filter)
    return [
        Job(
            r["id"],
            r["kind"],
            r["user_identifier"],
            r["dedupe_key"],
            json.loads(r["payload"]),
            r["attempts"],
            r["max_attempts"],
            r["crashes"],
            r["lane"],
        )
        for r in rows
    ]


async def heartbeat(pool: asyncpg.Pool, worker_id: str, jobs: list[Job], lease: timedelta) -> int:
    """Renew the lease of jobs this worker still holds; returns how many it still holds."""
    if not jobs:
        return 0
    status = await pool.execute(HEARTBEAT, [j.id for j in jobs], worker_id, lease)
    return int(status.split()[-1])


async def complete(conn: Executor, worker_id: str, jobs: list[Job]) -> None:
    """Finish jobs this worker holds (this attempt): delete them, or queue the re-armed ones."""
    if jobs:
        ids, attempts = [j.id for j in jobs], [j.attempts for j in jobs]
        # this order matters: a re-arm that lands between the two statements is either seen by
        # DONE (which then leaves the job to RUN_AGAIN) or arrives after the delete (and simply
        # queues a new job); the other order could miss it and leave the job running for ever
        await conn.execute(DONE, ids, attempts, worker_id)
        await conn.execute(RUN_AGAIN, ids, attempts, worker_id)


async def release_orphans(pool: asyncpg.Pool, worker_id: str, holding: set[int]) -> int:
    """Give back the jobs ``worker_id`` holds in the table but not in memory."""
    status = await pool.execute(RELEASE_ORPHANS, worker_id, sorted(holding))
    return int(status.split()[-1])


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1)))


async def retry(pool: asyncpg.Pool, worker_id: str, job: Job, error: str, *, counts: bool = True) -> str | None:
    """Put a job back with back-off (only if this worker still holds this attempt).
    ``counts=False`` (a store outage) keeps its attempts. Returns the job's new status
    ('queued', or 'failed' once its attempts are spent; None if it was no longer ours)."""
    status: str | None = await pool.fetchval(
        RETRY, job.id, backoff(job.attempts), counts, error[:4000], worker_id, job.attempts
    )
    return status


async def counts(conn: Conn) -> dict[str, int]:
    """ready: waiting for a worker; scheduled: waiting for their time (debounced summaries,
    back-off); running; failed: parked with their error."""
    return _counts(await conn.fetchrow(COUNTS))


async def any_pending(conn: Conn, dedupe_keys: list[str]) -> bool:
    """Whether a job with one of these keys is queued or running (a parked one is not)."""
    return bool(dedupe_keys) and bool(await conn.fetchval(ANY_PENDING, dedupe_keys))


async def stats(conn: Executor) -> list[asyncpg.Record]:
    """Rows of (kind, lane, state, n, oldest_s): the queue as an operator graphs it."""
    return await conn.fetch(STATS)


async def enqueue_erasure(
    conn: Conn, user_identifier: str, dedupe_key: str, payload: dict[str, Any], *, run_after: datetime
) -> None:
    """Queue the job that finishes an erasure (never parked; see ``ENQUEUE_ERASURE``)."""
    await conn.execute(ENQUEUE_ERASURE, user_identifier, dedupe_key, json.dumps(payload), run_after)


async def keep_erasure(conn: Executor, job: Job) -> None:
    """An erasure job about to run: its crash count starts again, so it is never parked."""
    await conn.execute(KEEP_ERASURE, job.id)


async def erasure_pending(conn: Executor, user_identifier: str) -> bool:
    return bool(await conn.fetchval(PENDING_ERASURE, user_identifier))


async def delete_erasures(conn: Executor, user_identifier: str) -> int:
    """Drop every erasure job of the customer (their erasure is complete); how many."""
    status = await conn.execute(DELETE_ERASURES, user_identifier)
    return int(status.split()[-1])


async def delete_for_user(conn: Conn, user_identifier: str, *, keep: str) -> tuple[int, list[int]]:
    """Drop the customer's jobs, earlier erasures included, all but the job ``keep`` (the
    dedupe key of the erasure doing this); returns (count, job ids)."""
    row = await conn.fetchrow(DELETE_FOR_USER, user_identifier, keep)
    assert row is not None  # an aggregate always answers one row
    return int(row["n"]), list(row["ids"])


async def left_for_user(conn: Conn, user_identifier: str, job_ids: list[int]) -> tuple[int, int]:
    """Jobs still there for the customer: (by identifier, by the ids deleted before)."""
    return await conn.fetchval(COUNT_FOR_USER, user_identifier), await conn.fetchval(COUNT_BY_ID, job_ids)


async def delete_by_key(conn: Executor, dedupe_key: str) -> None:
    await conn.execute(DELETE_BY_KEY, dedupe_key)


async def delete_keys(conn: Conn, user_identifier: str, dedupe_keys: list[str]) -> int:
    """Drop the customer's jobs with these keys, whatever their state; how many went."""
    if not dedupe_keys:
        return 0
    return int(await conn.fetchval(DELETE_KEYS, user_identifier, dedupe_keys))


def _counts(row: asyncpg.Record | None) -> dict[str, int]:
    return {k: int(v) for k, v in (row or {}).items()}
