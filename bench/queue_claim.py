"""The fair claim with many customers waiting: the claim statement before and after it
walks only customers with ready work, side by side on one PostgreSQL.

    python -m bench.queue_claim --json [--ready 4 --jobs-per-ready 500 --waiting 0,1000,10000 --repeats 30]

A throwaway embedded PostgreSQL (no Neo4j), migrated. For each ``--waiting`` count W: the
``jobs`` table holds ``--ready`` customers with ``--jobs-per-ready`` ready message jobs
each (an import), and W other customers with one job each that is not ready: half in
back-off (``run_after`` an hour ahead, like a retried job or a summary scheduled five
minutes ahead), half waiting to run alone after a worker crash. Each variant claims a batch
of 64 from the bulk lane inside a transaction that is rolled back (the table is the same
for every call), interleaved (each goes first half the time), ``--repeats`` times. The
old statement runs against the index it was written for (created here beside the new
one). Reported per W: the median and p95 milliseconds the client waits, the median of the
server's own execution time (EXPLAIN ANALYZE: no round trip, no transfer of the rows),
their ratios new/old, and how many jobs each claimed (the old share shrinks to one job
per ready customer once W reaches the batch size).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.common import log, percentiles

BATCH = 64
LEASE = timedelta(seconds=300)

# the claim as it was before (walks every customer with queued work, ready or not)
OLD_INDEX = "CREATE INDEX bench_old_ready_idx ON jobs (kind, lane, user_identifier, id) WHERE status = 'queued'"
OLD_CLAIM = """
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

POPULATE_READY = """
INSERT INTO jobs (kind, user_identifier, dedupe_key, payload, lane)
SELECT 'ingest_message', 'ready-' || c, 'bench:ready:' || c || ':' || g, jsonb_build_object('message_id', g), 'bulk'
FROM generate_series(1, $1::int) c, generate_series(1, $2::int) g
"""
POPULATE_WAITING = """
INSERT INTO jobs (kind, user_identifier, dedupe_key, payload, lane, run_after, crashes)
SELECT 'ingest_message', 'waiting-' || lpad(c::text, 6, '0'), 'bench:waiting:' || c, '{}'::jsonb, 'bulk',
       CASE WHEN c % 2 = 0 THEN now() + interval '1 hour' ELSE now() END, (c % 2)::int
FROM generate_series($1::int, $2::int) c
"""


async def _time(conn, statement: str, *args) -> tuple[float, int]:
    """Milliseconds the client waits for the claim, and how many jobs it claimed."""
    tx = conn.transaction()
    await tx.start()
    try:
        started = time.perf_counter()
        rows = await conn.fetch(statement, *args)
        return (time.perf_counter() - started) * 1000, len(rows)
    finally:
        await tx.rollback()


async def _server_ms(conn, statement: str, *args) -> float:
    """The server's own execution time (EXPLAIN ANALYZE): without the round trip and the
    transfer of the claimed rows."""
    tx = conn.transaction()
    await tx.start()
    try:
        plan = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, *args)
        return float(json.loads(plan)[0]["Execution Time"])
    finally:
        await tx.rollback()


async def run(args: argparse.Namespace) -> dict:
    import asyncpg

    from devstack.postgres import EmbeddedPostgres
    from service.postgres import queue
    from service.postgres.migrate import migrate_postgres

    data_dir = Path(tempfile.mkdtemp(prefix="loft-bench-claim-"))
    server = EmbeddedPostgres(data_dir / "postgres")
    url = await asyncio.to_thread(server.start)
    try:
        conn = await asyncpg.connect(url)
        try:
            await migrate_postgres(conn)
            await conn.execute(OLD_INDEX)
            await conn.execute(POPULATE_READY, args.ready, args.jobs_per_ready)
            results = []
            have = 0
            for waiting in sorted(args.waiting):
                if waiting > have:
                    await conn.execute(POPULATE_WAITING, have + 1, waiting)
                    have = waiting
                await conn.execute("VACUUM ANALYZE jobs")
                old_args = ("bench", LEASE, BATCH, "ingest_message", "bulk", 0)
                new_args = ("bench", LEASE, BATCH, "ingest_message", "bulk")
                for _ in range(3):  # warm the plans and the cache
                    await _time(conn, OLD_CLAIM, *old_args)
                    await _time(conn, queue.CLAIM, *new_args)
                old_ms, new_ms, old_server, new_server, old_n, new_n = [], [], [], [], 0, 0
                for i in range(args.repeats):
                    first, second = ("old", "new") if i % 2 else ("new", "old")  # neither always goes first
                    for variant in (first, second):
                        if variant == "old":
                            ms, old_n = await _time(conn, OLD_CLAIM, *old_args)
                            old_ms.append(ms)
                            old_server.append(await _server_ms(conn, OLD_CLAIM, *old_args))
                        else:
                            ms, new_n = await _time(conn, queue.CLAIM, *new_args)
                            new_ms.append(ms)
                            new_server.append(await _server_ms(conn, queue.CLAIM, *new_args))
                    if i % 10 == 9:
                        await conn.execute("VACUUM jobs")  # the rolled-back claims leave dead rows
                row = {
                    "waiting_customers": waiting,
                    "old": {**percentiles(old_ms), "server_p50": _median(old_server), "claimed": old_n},
                    "new": {**percentiles(new_ms), "server_p50": _median(new_server), "claimed": new_n},
                    "ratio_new_over_old_p50": round(statistics.median(new_ms) / statistics.median(old_ms), 3),
                    "ratio_new_over_old_server_p50": round(_median(new_server) / _median(old_server), 3),
                }
                log(json.dumps(row))
                results.append(row)
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "bench": "queue_claim",
        "batch": BATCH,
        "ready_customers": args.ready,
        "jobs_per_ready_customer": args.jobs_per_ready,
        "repeats": args.repeats,
        "results": results,
    }


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ready", type=int, default=4)
    parser.add_argument("--jobs-per-ready", type=int, default=500)
    parser.add_argument("--waiting", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
