"""The durable job queue: a PostgreSQL table, claimed with ``FOR UPDATE SKIP LOCKED``.

- **Durable**: a job is enqueued in the same transaction as the message it is about, so
  accepted work is never lost; ``dedupe_key`` makes enqueueing idempotent.
- **Fair**: two lanes, ``live`` (chat turns) and ``bulk`` (imports, feeds), claimed
  separately so the worker runs live batches first and keeps bulk batches small while
  customers chat (see :mod:`service.worker`); a back-fill still moves every round.
  Within a lane, a claim walks only the customers that have *ready* work (not in back-off,
  not waiting to run alone after a crash) and takes an equal share from each, oldest
  first: one customer's 20,000-message import cannot starve anyone, and customers whose
  jobs wait for their time do not shrink anyone's share.
- **Leased and fenced**: a claim sets ``locked_by``, counts an attempt and draws a fresh
  ``claim_token`` from a sequence; the worker renews the lease while it works
  (:func:`heartbeat`). Every later change of the job (done, retry, run again, renewal)
  names the token, which is never drawn twice, so a holder whose claim has ended (its
  lease ran out, or it gave the job back) can never touch the job again.
- **Crash or outage**: every worker beats a row of ``worker_heartbeats`` (:func:`beat`)
  that also says since when it has beaten without a break. A lease that ran out counts
  as a *crash* only if its holder stopped beating while another worker kept reaching
  PostgreSQL from well before the lease ran out until now (:data:`REQUEUE_EXPIRED`).
  Otherwise PostgreSQL was away for everyone (or the holder is alive and lost track of
  the job): the job goes back with no crash and no attempt counted. A crashed job then
  runs alone, whatever its kind, and a second crash parks it as ``failed`` (the jobs of
  its batch are retried without it).
- **Retries**: a failure is retried with exponential back-off up to ``max_attempts``; a
  store outage (:mod:`service.outages`) does not use up attempts; a job that keeps failing
  is parked as ``failed`` with its error and blocks nothing. Parked ingestion and summary
  jobs are put back by a slow sweep (:func:`revive_failed`) a few times, further apart
  each time, so a turn is not left unembedded for good by a passing fault.
- **Debounced jobs** (session summaries) re-armed while running run once more; re-arming
  a parked one revives it with a clean slate.

Finished jobs are deleted: the queue holds only pending and failed work.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from vectors.pg import Conn, Executor

log = logging.getLogger("loft.queue")

Lane = Literal["live", "bulk"]
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0
CRASHES_TO_PARK = 2
# the parked jobs the sweep puts back (an erasure's are its own module's business)
REVIVED_KINDS = ("ingest_message", "ingest_order", "summarize_session")
REVIVE_AFTER = timedelta(minutes=10)  # doubled after each revival
MAX_REVIVALS = 6  # 10 min, 20, 40, 80, 160, 320 after each parking: about 10 hours in all
REVIVAL_ATTEMPTS = 3  # attempts a revived job gets before it is parked again
REVIVE_BATCH = 200
HEARTBEATS_KEPT = timedelta(days=1)  # rows of workers that stopped beating, kept for operators


def renew_every(lease: timedelta) -> timedelta:
    """How often a worker renews the leases it holds."""
    return lease / 3


def beat_every(lease: timedelta) -> timedelta:
    """How often an idle worker beats its ``worker_heartbeats`` row."""
    return lease / 6


def unbroken(lease: timedelta) -> timedelta:
    """Beats further apart than this mean the worker lost PostgreSQL (or stalled) between
    them. It must exceed the longest normal gap (a renewal period) and stay below the
    shortest outage that can expire a live holder's lease (two renewal periods)."""
    return lease / 2


ENQUEUE = """
INSERT INTO jobs (kind, user_identifier, dedupe_key, payload, run_after, lane)
VALUES ($1, $2, $3, $4::jsonb, coalesce($5, now()), $6)
ON CONFLICT (dedupe_key) DO NOTHING
"""

# summaries: re-arm the job so it runs once the session has been quiet for a while; a
# job that is running now is marked to run again when it finishes; a parked one is
# revived with a clean slate (its crashes too: else its next lease expiry would park it)
_REARM = """
ON CONFLICT (dedupe_key) DO UPDATE
   SET run_after = greatest(jobs.run_after, excluded.run_after),
       rearmed = jobs.rearmed OR jobs.status = 'running',
       status = CASE WHEN jobs.status = 'failed' THEN 'queued' ELSE jobs.status END,
       attempts = CASE WHEN jobs.status = 'failed' THEN 0 ELSE jobs.attempts END,
       crashes = CASE WHEN jobs.status = 'failed' THEN 0 ELSE jobs.crashes END,
       revivals = CASE WHEN jobs.status = 'failed' THEN 0 ELSE jobs.revivals END,
       updated_at = now()
"""
ENQUEUE_DEBOUNCED = (
    """
INSERT INTO jobs (kind, user_identifier, dedupe_key, payload, run_after, lane)
VALUES ($1, $2, $3, $4::jsonb, $5, $6)"""
    + _REARM
)

# the same for many jobs of one kind in one statement (their keys distinct), in key order:
# two transactions re-arming overlapping sets lock them in the same order
ENQUEUE_DEBOUNCED_MANY = (
    """
INSERT INTO jobs (kind, user_identifier, dedupe_key, payload, run_after, lane)
SELECT $1, t.user_identifier, t.dedupe_key, t.payload::jsonb, t.run_after, $6
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS t(user_identifier, dedupe_key, payload, run_after)
ORDER BY t.dedupe_key"""
    + _REARM
)

# a worker's beat: up_since restarts when the previous beat is older than $2 (the worker
# could not reach PostgreSQL in between, or was stalled)
BEAT = """
INSERT INTO worker_heartbeats AS w (worker_id) VALUES ($1)
ON CONFLICT (worker_id) DO UPDATE
   SET up_since = CASE WHEN now() - w.beat_at > $2::interval THEN now() ELSE w.up_since END,
       beat_at = now()
"""
PRUNE_HEARTBEATS = "DELETE FROM worker_heartbeats WHERE beat_at < now() - $1::interval"

# leases that ran out. A crash only if the holder has stopped beating ($1: an unbroken
# gap) while another worker has been beating without a break since a renewal period ($2)
# before the lease ran out: PostgreSQL was reachable, and a live holder would have renewed.
# Otherwise the job goes back uncounted (attempts too), saying why.
REQUEUE_EXPIRED = f"""
WITH expired AS (
  SELECT j.id,
         EXISTS (SELECT 1 FROM worker_heartbeats h
                 WHERE h.worker_id = j.locked_by AND h.beat_at > now() - $1::interval) AS holder_alive,
         EXISTS (SELECT 1 FROM worker_heartbeats w
                 WHERE w.worker_id <> j.locked_by AND w.beat_at > now() - $1::interval
                   AND w.up_since <= j.locked_until - $2::interval) AS witnessed
  FROM jobs j
  WHERE j.status = 'running' AND j.locked_until < now()
  FOR UPDATE OF j SKIP LOCKED
),
judged AS (SELECT id, witnessed AND NOT holder_alive AS crashed, holder_alive FROM expired)
UPDATE jobs j
   SET crashes = j.crashes + d.crashed::int,
       status = CASE WHEN d.crashed AND j.crashes + 1 >= {CRASHES_TO_PARK} THEN 'failed' ELSE 'queued' END,
       attempts = CASE WHEN d.crashed THEN j.attempts ELSE greatest(j.attempts - 1, 0) END,
       last_error = CASE
         WHEN d.crashed AND j.crashes + 1 >= {CRASHES_TO_PARK}
           THEN 'the worker holding this job stopped twice while PostgreSQL was reachable (crashed, killed or hung)'
         WHEN d.crashed THEN j.last_error  -- crashes says it; the job runs alone next
         WHEN d.holder_alive
           THEN 'the lease ran out while its worker was still beating (it lost track of the job); '
                'given back, no crash counted'
         ELSE 'the lease ran out while no other worker was reaching PostgreSQL (PostgreSQL was away, '
              'or every worker had stopped); given back, no crash counted'
       END,
       locked_by = NULL, locked_until = NULL, claim_token = NULL, updated_at = now()
  FROM judged d
 WHERE j.id = d.id
RETURNING j.kind, d.crashed, j.status
"""

# one token for the whole claim (drawn once): (job, token) never repeats, since no other
# claim ever draws the same token
_CLAIMED = """, token AS (SELECT nextval('jobs_claim_token_seq') AS token)
UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1, locked_until = now() + $2::interval,
                claim_token = (SELECT token FROM token), updated_at = now()
WHERE id IN (SELECT id FROM picked)
RETURNING id, kind, user_identifier, dedupe_key, payload, attempts, max_attempts, crashes, lane, claim_token
"""

# Fair claim within one kind and lane: the customers with ready work (a skip scan over the
# partial index, one probe per customer; a job in back-off is skipped on its index entry),
# a few ready jobs of each (their share of the batch), ranked so that every customer's
# oldest job comes before anyone's second. Jobs that crashed a worker are not in the index:
# they are claimed alone (CLAIM_CRASHED).
CLAIM = (
    """
WITH RECURSIVE customers AS (
  (SELECT user_identifier FROM jobs
   WHERE status = 'queued' AND crashes = 0 AND kind = $4 AND lane = $5 AND run_after <= now()
   ORDER BY user_identifier LIMIT 1)
  UNION ALL
  SELECT (SELECT j.user_identifier FROM jobs j
          WHERE j.status = 'queued' AND j.crashes = 0 AND j.kind = $4 AND j.lane = $5 AND j.run_after <= now()
            AND j.user_identifier > c.user_identifier
          ORDER BY j.user_identifier LIMIT 1)
  FROM customers c WHERE c.user_identifier IS NOT NULL
),
share AS (SELECT greatest(1, ceil($3::float / greatest(count(*), 1)))::int AS per_customer
          FROM customers WHERE user_identifier IS NOT NULL),
candidates AS (
  SELECT j.id, row_number() OVER (PARTITION BY c.user_identifier ORDER BY j.id) AS turn
  FROM customers c, share,
       LATERAL (SELECT id FROM jobs
                WHERE status = 'queued' AND crashes = 0 AND kind = $4 AND lane = $5
                  AND user_identifier = c.user_identifier AND run_after <= now()
                ORDER BY id LIMIT share.per_customer) j
  WHERE c.user_identifier IS NOT NULL
),
picked AS (
  SELECT id FROM jobs
  WHERE id IN (SELECT id FROM candidates ORDER BY turn, id LIMIT $3) AND status = 'queued'
  FOR UPDATE SKIP LOCKED
)
"""
    + _CLAIMED
)

# jobs whose last worker died holding them, of any lane, oldest first (run one at a time)
CLAIM_CRASHED = (
    """
WITH picked AS (
  SELECT id FROM jobs
  WHERE status = 'queued' AND crashes > 0 AND kind = ANY($4::text[]) AND run_after <= now()
  ORDER BY id LIMIT $3
  FOR UPDATE SKIP LOCKED
)
"""
    + _CLAIMED
)

# a renewal also beats the worker's row (a worker busy with long batches claims rarely)
HEARTBEAT = f"""
WITH beat AS ({BEAT.strip()})
UPDATE jobs j SET locked_until = now() + $3::interval
FROM unnest($4::bigint[], $5::bigint[]) AS t(id, token)
WHERE j.id = t.id AND j.claim_token = t.token AND j.locked_by = $1 AND j.status = 'running'
"""

# done: delete, unless it was re-armed meanwhile (then it waits for its next run); both
# only for the holder of this very claim
DONE = """
DELETE FROM jobs j USING unnest($1::bigint[], $2::bigint[]) AS t(id, token)
WHERE j.id = t.id AND j.claim_token = t.token AND j.locked_by = $3 AND NOT j.rearmed
"""
RUN_AGAIN = """
UPDATE jobs j SET status = 'queued', rearmed = false, locked_by = NULL, locked_until = NULL, claim_token = NULL,
                  updated_at = now()
FROM unnest($1::bigint[], $2::bigint[]) AS t(id, token)
WHERE j.id = t.id AND j.claim_token = t.token AND j.locked_by = $3 AND j.rearmed
"""

# $3: the failure counts (an attempt used); else a give-back (a store was away), which
# hands the claim's attempt back. Neither touches anything that fences: the next claim
# draws a new token.
RETRY = """
UPDATE jobs SET status = CASE WHEN $3 AND attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
                attempts = CASE WHEN $3 THEN attempts ELSE greatest(attempts - 1, 0) END,
                run_after = now() + $2::interval, last_error = $4, rearmed = false,
                locked_by = NULL, locked_until = NULL, claim_token = NULL, updated_at = now()
WHERE id = $1 AND locked_by = $5 AND claim_token = $6
RETURNING status
"""

# after an outage: jobs this worker claimed but never heard back about (the claim's answer
# was lost with the connection) go back at once, without counting an attempt or a crash
RELEASE_ORPHANS = """
UPDATE jobs SET status = 'queued', attempts = greatest(attempts - 1, 0), locked_by = NULL, locked_until = NULL,
                claim_token = NULL, updated_at = now()
WHERE status = 'running' AND locked_by = $1 AND NOT (id = ANY($2::bigint[]))
"""

# the slow sweep: a parked job goes back after REVIVE_AFTER, doubled with each revival,
# with a few attempts; one that crashed a worker runs alone (one more crash parks it)
REVIVE_FAILED = """
UPDATE jobs j SET status = 'queued', revivals = j.revivals + 1, attempts = greatest(j.max_attempts - $2, 0),
                  crashes = least(j.crashes, 1), run_after = now(), updated_at = now()
WHERE j.id IN (SELECT id FROM jobs
               WHERE status = 'failed' AND kind = ANY($1::text[]) AND revivals < $3
                 AND updated_at < now() - $4::interval
                 AND updated_at < now() - $4::interval * power(2, revivals)
               ORDER BY updated_at LIMIT $5
               FOR UPDATE SKIP LOCKED)
RETURNING j.kind
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
    attempts: int
    max_attempts: int
    crashes: int = 0
    lane: str = "live"
    token: int = 0  # the claim's fencing token: drawn from a sequence, never twice


@dataclass(frozen=True)
class Expired:
    """A job whose lease ran out, as :func:`requeue_expired` judged it."""

    kind: str
    crashed: bool  # its holder stopped while PostgreSQL was reachable
    parked: bool  # the second such crash: parked as failed


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


@dataclass(frozen=True)
class Debounced:
    """One job to (re)arm with :func:`enqueue_debounced`."""

    user_identifier: str
    dedupe_key: str
    payload: dict[str, Any]
    run_after: datetime


async def enqueue_debounced(conn: Conn, kind: str, jobs: Sequence[Debounced], *, lane: Lane = "live") -> None:
    """:func:`enqueue` with ``debounce`` for many jobs of one ``kind`` in one statement (their
    ``dedupe_key`` distinct)."""
    if not jobs:
        return
    await conn.execute(
        ENQUEUE_DEBOUNCED_MANY,
        kind,
        [j.user_identifier for j in jobs],
        [j.dedupe_key for j in jobs],
        [json.dumps(j.payload) for j in jobs],
        [j.run_after for j in jobs],
        lane,
    )


async def beat(conn: Executor, worker_id: str, lease: timedelta) -> None:
    """Say that ``worker_id`` is alive and reaching PostgreSQL."""
    await conn.execute(BEAT, worker_id, unbroken(lease))


async def requeue_expired(conn: Executor, lease: timedelta) -> list[Expired]:
    """Put back the jobs whose lease ran out: counted as a crash only when PostgreSQL was
    reachable meanwhile and the holder had stopped (see :data:`REQUEUE_EXPIRED`)."""
    rows = await conn.fetch(REQUEUE_EXPIRED, unbroken(lease), renew_every(lease))
    expired = [Expired(r["kind"], r["crashed"], r["status"] == "failed") for r in rows]
    crashed = sum(e.crashed for e in expired)
    if crashed:
        log.warning("%d jobs were held by a worker that stopped (%d parked)", crashed, sum(e.parked for e in expired))
    if len(expired) > crashed:
        log.info("%d jobs whose lease ran out while PostgreSQL was away went back uncounted", len(expired) - crashed)
    return expired


async def claim(
    conn: Executor,
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
    time), from either lane (:func:`claim_crashed`). Jobs whose lease ran out are put back
    by :func:`requeue_expired`, which a worker runs before it claims."""
    if limit <= 0:
        return []
    if crashed:
        return await claim_crashed(conn, worker_id, [kind], lease=lease, limit=limit)
    return [_job(r) for r in await conn.fetch(CLAIM, worker_id, lease, limit, kind, lane)]


async def claim_crashed(
    conn: Executor, worker_id: str, kinds: list[str], *, lease: timedelta, limit: int = 1
) -> list[Job]:
    """Claim the oldest ready jobs of ``kinds`` whose last worker died holding them."""
    return [_job(r) for r in await conn.fetch(CLAIM_CRASHED, worker_id, lease, limit, kinds)]


def _job(r: asyncpg.Record) -> Job:
    return Job(
        id=r["id"],
        kind=r["kind"],
        user_identifier=r["user_identifier"],
        dedupe_key=r["dedupe_key"],
        payload=json.loads(r["payload"]),
        attempts=r["attempts"],
        max_attempts=r["max_attempts"],
        crashes=r["crashes"],
        lane=r["lane"],
        token=r["claim_token"],
    )


async def heartbeat(pool: asyncpg.Pool, worker_id: str, jobs: list[Job], lease: timedelta) -> int:
    """Renew the lease of jobs this worker still holds under these claims (and beat the
    worker's row); returns how many it still holds."""
    if not jobs:
        return 0
    status = await pool.execute(
        HEARTBEAT, worker_id, unbroken(lease), lease, [j.id for j in jobs], [j.token for j in jobs]
    )
    return int(status.split()[-1])


async def complete(conn: Executor, worker_id: str, jobs: list[Job]) -> None:
    """Finish jobs this worker holds (this claim): delete them, or queue the re-armed ones."""
    if jobs:
        ids, tokens = [j.id for j in jobs], [j.token for j in jobs]
        # this order matters: a re-arm that lands between the two statements is either seen by
        # DONE (which then leaves the job to RUN_AGAIN) or arrives after the delete (and simply
        # queues a new job); the other order could miss it and leave the job running for ever
        await conn.execute(DONE, ids, tokens, worker_id)
        await conn.execute(RUN_AGAIN, ids, tokens, worker_id)


async def release_orphans(pool: asyncpg.Pool, worker_id: str, holding: set[int]) -> int:
    """Give back the jobs ``worker_id`` holds in the table but not in memory."""
    status = await pool.execute(RELEASE_ORPHANS, worker_id, sorted(holding))
    return int(status.split()[-1])


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1)))


async def retry(pool: asyncpg.Pool, worker_id: str, job: Job, error: str, *, counts: bool = True) -> str | None:
    """Put a job back with back-off (only if this worker still holds this claim).
    ``counts=False`` (a store outage) keeps its attempts. Returns the job's new status
    ('queued', or 'failed' once its attempts are spent; None if it was no longer ours)."""
    status: str | None = await pool.fetchval(
        RETRY, job.id, backoff(job.attempts), counts, error[:4000], worker_id, job.token
    )
    return status


async def revive_failed(conn: Executor) -> list[str]:
    """The slow sweep: put parked jobs back (a bounded number of times, further apart each
    time) and forget workers that stopped beating long ago; returns the revived jobs' kinds."""
    rows = await conn.fetch(
        REVIVE_FAILED, list(REVIVED_KINDS), REVIVAL_ATTEMPTS, MAX_REVIVALS, REVIVE_AFTER, REVIVE_BATCH
    )
    await conn.execute(PRUNE_HEARTBEATS, HEARTBEATS_KEPT)
    if rows:
        log.info("revived %d parked jobs", len(rows))
    return [r["kind"] for r in rows]


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
