"""Export benchmark: stream one large customer's export among many, beside a naive export.

    python -m bench.export --json [--others 1000 --sizes 10000,30000 --memories-per-message 0.2
                                   --nodes-per-message 0.05 --repeat 3]

The population is :class:`bench.erasure.Builder`'s (``--others`` customers with a modest
history each, and one large customer per size with ``size`` messages, a fifth as many
memories and a twentieth as many graph entities: 10,000 / 2,000 / 500 for the first size).
For each large customer the service's own export (:func:`service.core.export.stream`: a
REPEATABLE READ cursor on its own connection, Neo4j in fetch batches, rows encoded per
batch off the event loop) is read to the end into a byte counter, and beside it, in the
same run, a naive export that fetches every row and node at once and encodes the whole
document in one ``json.dumps``. Reported per size: wall time (median of ``--repeat``) and
the peak of Python allocations while exporting (``tracemalloc``, a separate pass so it
does not slow the timed one), for both, and the document's size. Progress on stderr, one
JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import tracemalloc
import uuid
from typing import Any

from bench.common import bench_stack, log
from bench.erasure import Builder


async def streamed(rt: Any, user: str) -> int:
    from service.core import export

    size = 0
    async for chunk in export.stream(rt, user):
        size += len(chunk)
    return size


async def naive(rt: Any, user: str) -> int:
    """Everything at once: every table's rows and the graph in memory, one dumps."""
    from service.core import export

    doc: dict[str, Any] = {"postgres": {}, "neo4j": {}}
    async with rt.pool.acquire() as conn:
        for table in await export.tables(conn):
            doc["postgres"][table.name] = [dict(r) for r in await conn.fetch(table.select, user)]
    records, _, _ = await rt.graph.execute_query(
        "MATCH (n) WHERE (n:Customer OR n:Entity) AND n.user_id = $u "
        "OPTIONAL MATCH (n)-[r]->(m) RETURN properties(n) AS n, collect(properties(r)) AS rels",
        u=user,
        database_=rt.settings.neo4j_database,
    )
    doc["neo4j"] = [r.data() for r in records]
    return len(json.dumps(doc, default=export._plain).encode())


async def measure(work: Any, repeat: int) -> dict[str, Any]:
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        size = await work()
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    try:
        await work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"s_median": round(statistics.median(times), 3), "peak_mib": round(peak / 2**20, 1), "bytes": size}


class _Loading:
    """What :class:`Builder` reads from a runtime, with a pool that has no statement
    timeout: one large customer's rows go in one COPY, which may take longer than the
    service's 30 s limit on a busy machine."""

    def __init__(self, rt: Any, pool: Any) -> None:
        self.pool, self.graph, self.catalog, self.settings = pool, rt.graph, rt.catalog, rt.settings


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import asyncpg
    from pgvector.asyncpg import register_vector

    from service.runtime import Runtime

    sizes = [int(s) for s in args.sizes.split(",")]
    async with bench_stack(heap="1g") as settings:
        rt = await Runtime.open(settings, pool_size=4)
        loading = await asyncpg.create_pool(
            settings.database_url, min_size=1, max_size=2, command_timeout=None, init=register_vector
        )
        try:
            builder = Builder(_Loading(rt, loading), args.seed)
            t0 = time.perf_counter()
            others = [f"other-{i}-{uuid.uuid4().hex[:6]}" for i in range(args.others)]
            await builder.customers(
                others, messages=args.other_messages, memories=args.other_memories, nodes=args.other_nodes
            )
            large = {}
            for size in sizes:
                user = f"large-{size}-{uuid.uuid4().hex[:6]}"
                await builder.customers(
                    [user],
                    messages=size,
                    memories=int(size * args.memories_per_message),
                    nodes=int(size * args.nodes_per_message),
                )
                large[size] = user
                log(f"loaded a customer of {size} messages ({time.perf_counter() - t0:.0f} s)")
            async with loading.acquire() as conn:
                await conn.execute("ANALYZE")
            runs = []
            for size, user in large.items():
                ours = await measure(lambda u=user: streamed(rt, u), args.repeat)
                theirs = await measure(lambda u=user: naive(rt, u), args.repeat)
                runs.append(
                    {
                        "messages": size,
                        "memories": int(size * args.memories_per_message),
                        "nodes": int(size * args.nodes_per_message),
                        "streamed": ours,
                        "naive": theirs,
                        "time_ratio_to_naive": round(ours["s_median"] / theirs["s_median"], 2),
                    }
                )
                log(f"{size} messages: streamed {ours}, naive {theirs}")
        finally:
            await loading.close()
            await rt.close()
    return {
        "benchmark": "export",
        "population": {
            "others": args.others,
            "per_other": {"messages": args.other_messages, "memories": args.other_memories, "nodes": args.other_nodes},
        },
        "goal_s": 2.0,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--others", type=int, default=1000)
    parser.add_argument("--other-messages", type=int, default=100)
    parser.add_argument("--other-memories", type=int, default=20)
    parser.add_argument("--other-nodes", type=int, default=10)
    parser.add_argument("--sizes", default="10000,30000", help="messages of each large customer, comma-separated")
    parser.add_argument("--memories-per-message", type=float, default=0.2)
    parser.add_argument("--nodes-per-message", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the result as JSON (always on stdout)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
