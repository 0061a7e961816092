"""Mixed load against the whole service, then an audit: nothing acknowledged may be lost.

    python -m bench.load --json [--seconds 60 --clients 32 --customers 200]

Against ``loftmem serve --workers 2`` and one ``loftmem worker`` (separate processes, as
in production), ``--clients`` concurrent clients send for ``--seconds``: chat turns
(30 %), context reads (50 %), entity searches (10 %) and imports of ten messages
(10 %), for customers drawn at random from a seeded population. Every message says it
bought a catalog product, so each one leaves exactly one ``PURCHASED`` relationship
(keyed by its message id) once the worker has filed it: that is how "reached the graph"
is counted.

Reported per run: requests served, errors by status (goal: no 5xx), p50/p95 per route;
after the run, once the queue is drained: messages stored = messages acknowledged (goal:
equal) and messages that reached the graph (goal: all). The run is made twice: once
plainly, once with Neo4j stopped for ``--outage`` seconds in the middle (the API must
keep answering; the graph must catch up afterwards). Progress on stderr, one JSON object
on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import defaultdict

import httpx

from bench.common import bench_stack, log, percentiles
from bench.latency import Server
from loft_memory import ApiError, AsyncLoftClient

MIX = (("chat", 30), ("context", 50), ("entities", 10), ("import", 10))
QUESTIONS = [
    "What did I buy last time?",
    "Which sofa would suit my living room?",
    "What colours do I like?",
    "Remind me about my sister's visit",
    "Do I prefer oak or walnut?",
    "What was my budget?",
]


class Load:
    def __init__(self, base: str, customers: list[str], products: list[str], seed: int) -> None:
        self.base = base
        self.customers = customers
        self.products = products
        self.rng = random.Random(seed)
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.acked: list[int] = []
        self.transport_errors = 0

    def _message(self) -> str:
        return self.rng.choice(
            [
                "I bought the {p} last week and I love it.",
                "We finally bought the {p}; my partner prefers walnut though.",
                "Just bought the {p} for the guest room, my sister Anna visits in May.",
            ]
        ).format(p=self.rng.choice(self.products))

    async def one(self, client: AsyncLoftClient) -> None:
        kind = self.rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX])[0]
        user = self.rng.choice(self.customers)
        started = time.perf_counter()
        acked: list[int] = []
        try:
            if kind == "chat":
                acked = [(await client.chat(user, self._message())).message_id]
                status = 200
            elif kind == "context":
                await client.context(user, self.rng.choice(QUESTIONS))
                status = 200
            elif kind == "entities":
                await client.search_entities(user, "family visiting")
                status = 200
            else:
                messages = [
                    {"role": "user", "content": self._message(), "external_id": f"load-{uuid.uuid4().hex}"}
                    for _ in range(10)
                ]
                acked = (await client.import_messages(user, messages)).message_ids
                status = 201
        except ApiError as exc:
            status = exc.status
        except httpx.HTTPError:
            self.transport_errors += 1
            return
        self.latency[kind].append((time.perf_counter() - started) * 1000)
        self.statuses[kind][status] += 1
        self.acked += acked

    async def run(self, clients: int, seconds: float, during=None) -> float:
        deadline = time.monotonic() + seconds

        async def client_loop() -> None:
            async with AsyncLoftClient(self.base, timeout=60) as client:
                while time.monotonic() < deadline:
                    await self.one(client)

        started = time.monotonic()
        tasks = [asyncio.create_task(client_loop()) for _ in range(clients)]
        if during is not None:
            await during()
        await asyncio.gather(*tasks)
        return time.monotonic() - started

    def report(self, took: float) -> dict:
        served = sum(sum(s.values()) for s in self.statuses.values())
        errors = {
            kind: {str(code): n for code, n in codes.items() if code >= 400} for kind, codes in self.statuses.items()
        }
        return {
            "seconds": round(took, 1),
            "requests": served,
            "rps": round(served / took, 1),
            "server_errors": sum(n for codes in self.statuses.values() for code, n in codes.items() if code >= 500),
            "transport_errors": self.transport_errors,
            "errors_by_route": {k: v for k, v in errors.items() if v},
            "routes": {kind: {"n": len(lat)} | percentiles(lat) for kind, lat in self.latency.items()},
            "messages_acknowledged": len(self.acked),
        }


async def drained(base: str, timeout: float) -> float:
    started = time.monotonic()
    async with AsyncLoftClient(base, timeout=30) as client:
        while time.monotonic() - started < timeout:
            try:
                jobs = ((await client.status()).stats or {}).get("jobs")
            except (httpx.HTTPError, ApiError):
                jobs = None
            if jobs and jobs["ready"] == 0 and jobs["running"] == 0:
                return time.monotonic() - started
            await asyncio.sleep(1)
    raise TimeoutError("the queue did not drain")


async def audit(rt, acked: list[int]) -> dict:
    stored = await rt.pool.fetchval("SELECT count(*) FROM messages WHERE id = ANY($1::bigint[])", acked)
    embedded = await rt.pool.fetchval(
        "SELECT count(*) FROM messages WHERE id = ANY($1::bigint[]) AND embedding IS NOT NULL", acked
    )
    records, _, _ = await rt.graph.execute_query(
        "UNWIND $ids AS id MATCH ()-[p:PURCHASED {message_id: id}]->() RETURN count(DISTINCT id) AS n",
        ids=acked,
        database_=rt.settings.neo4j_database,
    )
    return {
        "messages_stored": stored,
        "messages_embedded": embedded,
        "messages_in_graph": records[0]["n"],
        "lost": len(acked) - stored,
    }


async def seed(base: str, customers: list[str], products: list[str]) -> None:
    async with AsyncLoftClient(base, timeout=120) as client:
        for i, user in enumerate(customers):
            await client.import_messages(
                user,
                [
                    {
                        "role": "user",
                        "content": f"Hi, I'm customer {i}. I bought the {products[(i + k) % len(products)]}.",
                        "external_id": f"seed-{i}-{k}",
                    }
                    for k in range(10)
                ],
            )


async def run(args) -> dict:
    from service.runtime import Runtime

    async with bench_stack(heap="1g", with_stack=True) as (settings, stack):
        rt = await Runtime.open(settings, pool_size=4)
        env = os.environ | {
            "DATABASE_URL": settings.database_url,
            "NEO4J_URI": settings.neo4j_uri,
            "NEO4J_USER": settings.neo4j_user,
            "NEO4J_PASSWORD": settings.neo4j_password.get_secret_value(),
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = Server(settings, args.workers)
        try:
            products = [p.name for p in rt.catalog.products[:60]]
            customers = [f"load-{i}-{uuid.uuid4().hex[:6]}" for i in range(args.customers)]
            log(f"seeding {len(customers)} customers")
            await seed(server.base, customers, products)
            await drained(server.base, 600)
            results = {}
            for name in ("plain", "neo4j_restart"):
                load = Load(server.base, customers, products, args.seed + len(results))

                async def outage() -> None:
                    await asyncio.sleep(max(0.0, (args.seconds - args.outage) / 2))
                    log(f"stopping Neo4j for {args.outage} s")
                    await asyncio.to_thread(stack.neo4j.stop)
                    await asyncio.sleep(args.outage)
                    await asyncio.to_thread(stack.neo4j.start)
                    log("Neo4j is back")

                log(f"run '{name}': {args.clients} clients for {args.seconds} s")
                took = await load.run(args.clients, args.seconds, outage if name == "neo4j_restart" else None)
                report = load.report(took)
                report["drain_s"] = round(await drained(server.base, 900), 1)
                report |= await audit(rt, load.acked)
                results[name] = report
                log(json.dumps({k: v for k, v in report.items() if k != "routes"}))
        finally:
            server.stop()
            worker.terminate()
            worker.wait(30)
            await rt.close()
    return {
        "benchmark": "load",
        "clients": args.clients,
        "seconds": args.seconds,
        "customers": args.customers,
        "api_workers": args.workers,
        "mix": dict(MIX),
        "runs": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="API processes")
    parser.add_argument("--outage", type=float, default=15.0, help="seconds Neo4j is down in the second run")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the result as JSON (always on stdout)")
    result = asyncio.run(run(parser.parse_args()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
