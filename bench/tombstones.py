"""Tombstones benchmark: one row per erasure (the ids in a uuid[]) beside one row per id.

    python -m bench.tombstones --json [--ids 10000 --others 200 --other-ids 1000 --repeat 5 --checks 500]

PostgreSQL only (an embedded server in a temp dir, or DATABASE_URL), migrated. Both
designs hold the same population: ``--others`` erased customers with ``--other-ids``
client ids each, then ``--repeat`` large customers with ``--ids`` each (a customer with
10,000 messages and external ids leaves 10,000). The service's design is
``service.postgres.tombstones`` itself (``erasure_tombstones``: one row per erasure, the 16-byte
HMACs in a ``uuid[]``, stored out of line); the baseline is a table with one row per id
(``uuid`` primary key and expiry), created by this benchmark in the same database.

Reported per design, medians: writing one large customer's tombstones (the HMACs
computed in Python and the insert, as an erasure does it), the bytes one large customer
adds (heap, TOAST and indexes), and the time of a replay check for a customer never
erased (what almost every write pays), for a large erased customer who came back (one
id), and for an import of 1,000 ids from them. Progress on stderr, JSON on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import log

ROWS_TABLE = """
CREATE TABLE IF NOT EXISTS bench_tombstone_rows (
    id_hash    uuid PRIMARY KEY,
    expires_at timestamptz NOT NULL
)
"""
ROWS_INSERT = """
INSERT INTO bench_tombstone_rows (id_hash, expires_at)
SELECT x, now() + interval '400 days' FROM unnest($1::uuid[]) AS x ON CONFLICT DO NOTHING
"""
ROWS_CHECK = """
SELECT coalesce(array_agg(id_hash), '{}') FROM bench_tombstone_rows
WHERE id_hash = ANY($1::uuid[]) AND expires_at > now()
"""
SIZE = "SELECT pg_total_relation_size($1::regclass)"


def _ids(key: bytes, user: str, n: int) -> list[uuid.UUID]:
    from service.postgres.tombstones import client_id_hash

    return [client_id_hash(key, user, "message", f"crm-{user}-{i}") for i in range(n)]


async def _timed(work) -> float:
    started = time.perf_counter()
    await work
    return (time.perf_counter() - started) * 1000


async def run(args: argparse.Namespace) -> dict:
    import asyncpg

    from service.postgres import tombstones
    from service.postgres.migrate import migrate_postgres

    data_dir = None
    url = os.environ.get("DATABASE_URL")
    server = None
    if not url:
        from devstack.postgres import EmbeddedPostgres

        data_dir = Path(tempfile.mkdtemp(prefix="loft-bench-tomb-"))
        server = EmbeddedPostgres(data_dir / "postgres")
        url = await asyncio.to_thread(server.start)
    conn = await asyncpg.connect(url)
    try:
        await migrate_postgres(conn)
        await conn.execute(ROWS_TABLE)
        key = secrets.token_bytes(32)
        subject = tombstones.subject_hash

        async def write_array(user: str, n: int) -> None:
            ids = sorted(set(_ids(key, user, n)))
            await conn.execute(tombstones.INSERT, uuid.uuid4(), subject(key, user), ids, 400)

        async def write_rows(user: str, n: int) -> None:
            await conn.execute(ROWS_INSERT, _ids(key, user, n))

        tag = uuid.uuid4().hex[:6]
        for i in range(args.others):
            user = f"other-{tag}-{i}"
            await write_array(user, args.other_ids)
            await write_rows(user, args.other_ids)
        await conn.execute("ANALYZE")
        log(f"{args.others} erased customers of {args.other_ids} ids each in both designs")

        results: dict[str, dict[str, list[float]]] = {
            d: {"write_ms": [], "bytes": [], "check_unknown_ms": [], "check_returned_ms": [], "check_import_ms": []}
            for d in ("array", "rows")
        }
        for r in range(args.repeat):
            user = f"large-{tag}-{r}"
            for design, write, table in (
                ("array", write_array, "erasure_tombstones"),
                ("rows", write_rows, "bench_tombstone_rows"),
            ):
                before = await conn.fetchval(SIZE, table)
                results[design]["write_ms"].append(await _timed(write(user, args.ids)))
                results[design]["bytes"].append(await conn.fetchval(SIZE, table) - before)
            await conn.execute("ANALYZE")
            unknown = f"never-{uuid.uuid4().hex[:8]}"
            one_new = [tombstones.client_id_hash(key, user, "message", f"new-{uuid.uuid4().hex}")]
            one_unknown = _ids(key, unknown, 1)
            batch = _ids(key, user, args.ids)[:500] + [
                tombstones.client_id_hash(key, user, "message", f"new-{i}") for i in range(500)
            ]
            for _ in range(args.checks):
                for design, check in (
                    ("array", lambda u, ids: conn.fetchval(tombstones.REPLAYED, subject(key, u), ids)),
                    ("rows", lambda _u, ids: conn.fetchval(ROWS_CHECK, ids)),
                ):
                    results[design]["check_unknown_ms"].append(await _timed(check(unknown, one_unknown)))
                    results[design]["check_returned_ms"].append(await _timed(check(user, one_new)))
            for _ in range(max(1, args.checks // 10)):
                for design, check in (
                    ("array", lambda u, ids: conn.fetchval(tombstones.REPLAYED, subject(key, u), ids)),
                    ("rows", lambda _u, ids: conn.fetchval(ROWS_CHECK, ids)),
                ):
                    results[design]["check_import_ms"].append(await _timed(check(user, batch)))
            log(f"large customer {r + 1}/{args.repeat} done")
        found = await conn.fetchval(tombstones.REPLAYED, subject(key, f"large-{tag}-0"), _ids(key, f"large-{tag}-0", 3))
        assert len(found) == 3, "the array design must find the ids it kept"
    finally:
        await conn.execute("DROP TABLE IF EXISTS bench_tombstone_rows")
        await conn.close()
        if server is not None:
            await asyncio.to_thread(server.stop)
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    summary = {d: {k: med(v) for k, v in m.items()} for d, m in results.items()}
    return {
        "benchmark": "tombstones",
        "population": {"others": args.others, "other_ids": args.other_ids, "large_ids": args.ids},
        "array": summary["array"],
        "rows": summary["rows"],
        "ratio_array_to_rows": {
            k: round(summary["array"][k] / summary["rows"][k], 2) if summary["rows"][k] else None
            for k in summary["array"]
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", type=int, default=10_000)
    parser.add_argument("--others", type=int, default=200)
    parser.add_argument("--other-ids", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--checks", type=int, default=500)
    parser.add_argument("--json", action="store_true", help="print the result as JSON (always on stdout)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    log(json.dumps({k: result[k] for k in ("array", "rows")}))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
