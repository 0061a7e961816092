"""Recommendations: latency and quality on the demo shop at scale.

    python -m bench.recommend --json            # 10,000 customers, ~50,000 order lines
    python -m bench.recommend --json --quick    # 1,000 customers, for a quick look

The population is the demo shop's (service/demo.py: rooms furnished in a taste, favourites
per style and category), written through the real feeds: orders with
``service.orders.record`` and the worker's ``ingest_order`` path, chat for a share of
the customers through the import path and the worker. For ``--eval`` customers with at
least two orders, the **last order is held back** (never written). Then, in one run:

- **hits@10**: the share of held-back customers for whom at least one held-back SKU is
  among the 10 recommendations; next to a **popularity baseline** (the 10 most bought
  products the customer does not own yet), computed from the same graph in the same run;
- **latency** of ``service.recommendations.recommend`` (graph query + scoring, in
  process; no HTTP) over customers drawn at random (p50/p95, goal p95 <= 50 ms), next
  to the analysts' plain co-purchase query (``graph/queries/co_purchases.cypher``) on
  the same customers, and the ratio of medians.

JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from collections import Counter
from typing import Any

from bench.common import bench_stack, log, percentiles

POPULAR = """
MATCH (p:Product) WHERE coalesce(p.in_stock, true)
RETURN p.sku AS sku, COUNT { (p)<-[:PURCHASED]-() } AS n ORDER BY n DESC, sku LIMIT 200
"""
OWNED = "MATCH (:Customer {user_id: $u})-[:PURCHASED]->(p:Product) RETURN collect(p.sku) AS skus"


async def load(rt: Any, people: list[Any], held: dict[str, Any], chat_share: float, seed: int) -> dict[str, Any]:
    """Write the population (without the held-back orders) and let the worker file it."""
    from service import history, orders
    from service.worker import Worker

    rng = random.Random(seed)
    t0 = time.perf_counter()
    written = lines = messages = 0
    for start in range(0, len(people), 200):
        async with rt.pool.acquire() as conn, conn.transaction():
            for c in people[start : start + 200]:
                for order in c.orders:
                    if held.get(c.user) is order:
                        continue
                    written += await orders.record(conn, c.user, order)
                    lines += len(order.lines)
                if c.messages and rng.random() < chat_share:
                    session = uuid.uuid5(uuid.NAMESPACE_URL, f"loft-bench:{c.user}")
                    await history.create_session(conn, c.user, session, at=c.messages[0].created_at, channel="bench")
                    await history.add_messages(conn, c.user, session, c.messages, summary_idle_s=3600, lane="bulk")
                    messages += len(c.messages)
        if start % 2000 == 0:
            log(f"  wrote {start + 200} customers ({time.perf_counter() - t0:.0f} s)")
    wrote_s = time.perf_counter() - t0
    handled = await Worker(rt).drain(timeout=7200)
    return {
        "orders": written,
        "order_lines": lines,
        "messages": messages,
        "write_s": round(wrote_s, 1),
        "worker_s": round(time.perf_counter() - t0 - wrote_s, 1),
        "jobs": handled,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from graph import analyst
    from service import demo, recommendations
    from service.catalog import Catalog
    from service.runtime import Runtime

    customers = 1000 if args.quick else args.customers
    evaluate = min(args.eval, 150 if args.quick else args.eval)
    people = demo.population(Catalog.load(), customers=customers, seed=args.seed)
    rng = random.Random(args.seed)
    eligible = [c for c in people if len(c.orders) >= 2]
    held = {c.user: c.orders[-1] for c in rng.sample(eligible, min(evaluate, len(eligible)))}
    async with bench_stack(heap="1500m", extra_env={"LOFT_WORKER_BATCH": "256"}) as settings:
        rt = await Runtime.open(settings, pool_size=4)
        try:
            log(f"loading {customers} customers ({len(held)} with their last order held back)")
            loaded = await load(rt, people, held, args.chat_share, args.seed)
            log(f"loaded: {loaded}")
            db = settings.neo4j_database
            popular, _, _ = await rt.graph.execute_query(POPULAR, database_=db, routing_="r")
            ranking = [r["sku"] for r in popular]

            # quality: hits@10 on held-back last orders, system vs popularity
            hits = base_hits = cold = 0
            for user, order in held.items():
                wanted = {x.sku for x in order.lines}
                answer = await recommendations.recommend(rt.graph, user, database=db, limit=10)
                cold += answer["cold_start"]
                hits += bool(wanted & {i["sku"] for i in answer["items"]})
                owned_rows, _, _ = await rt.graph.execute_query(OWNED, u=user, database_=db, routing_="r")
                owned = set(owned_rows[0]["skus"])
                baseline = [s for s in ranking if s not in owned][:10]
                base_hits += bool(wanted & set(baseline))

            # latency: the API's recommendations vs the analysts' plain co-purchase query
            plain = next(q for q in analyst.load() if q.name == "co_purchases").cypher
            sample = [c.user for c in rng.sample(people, min(args.calls, len(people)))]
            for user in sample[:20]:  # warm the page cache and the query plans
                await recommendations.recommend(rt.graph, user, database=db, limit=10)
                await rt.graph.execute_query(plain, user_id=user, database_=db, routing_="r")
            system_ms: list[float] = []
            plain_ms: list[float] = []
            for user in sample:
                t = time.perf_counter()
                await recommendations.recommend(rt.graph, user, database=db, limit=10)
                system_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                await rt.graph.execute_query(plain, user_id=user, database_=db, routing_="r")
                plain_ms.append((time.perf_counter() - t) * 1000)
            degrees = Counter(len(c.orders) for c in people)
        finally:
            await rt.close()

    n = len(held)
    system = percentiles(system_ms)
    baseline_latency = percentiles(plain_ms)
    return {
        "benchmark": "recommend",
        "population": {
            "customers": customers,
            "orders": loaded["orders"],
            "order_lines": loaded["order_lines"],
            "chat_messages": loaded["messages"],
            "orders_per_customer": dict(sorted(degrees.items())),
            "load": loaded,
        },
        "quality": {
            "held_back_customers": n,
            "hits_at_10": round(hits / n, 3) if n else None,
            "popularity_hits_at_10": round(base_hits / n, 3) if n else None,
            "ratio_to_popularity": round(hits / base_hits, 2) if base_hits else None,
            "cold_start_answers": cold,
        },
        "latency_ms": {
            "calls": len(system_ms),
            "recommendations": system,
            "plain_co_purchase_query": baseline_latency,
            "ratio_p50_to_plain": round(system["p50"] / baseline_latency["p50"], 2)
            if baseline_latency["p50"]
            else None,
            "goal_p95": 50.0,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--eval", type=int, default=500, help="customers whose last order is held back")
    parser.add_argument("--calls", type=int, default=500, help="timed recommendation calls")
    parser.add_argument("--chat-share", type=float, default=0.2, help="share of customers whose chat is ingested")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1,000 customers, 150 held back")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (always on stdout)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2 if not args.json else None))


if __name__ == "__main__":
    main()
