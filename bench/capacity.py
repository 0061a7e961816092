"""Capacity model: cores, memory and disk per tier for a shop's customers and traffic, from
figures measured on this machine.

    python -m bench.capacity --customers 100000 --messages-per-day 0.2 \\
        --contexts-per-day 50000 --retention-days 365 [--json] [--figures FILE]

The figures (CPU per operation of each process, resident memory of each process, bytes per
stored message and per customer in each store) are measured by this command on a throwaway
embedded stack, the way production runs: customers' messages imported and filed by
``loftmem worker --once`` (its CPU and peak memory read from the kernel when it exits), then
``GET /memory/context`` and ``POST /v1/chat`` over HTTP against ``loftmem serve`` (its CPU
from ``/proc``), PostgreSQL's and Neo4j's CPU from their processes meanwhile, and the bytes
from the stores themselves. ``--json`` prints them with the plan; ``--figures FILE`` reads
them back from such an output instead of measuring, so several shops are planned from one
measurement. Every number of the plan names the figure it comes from.

What a unit of traffic means: a *message* is one ``POST /v1/chat`` (the customer's turn and
the reply are both stored and filed: two rows); a *context* is one ``GET
/memory/context`` (a chat turn reads its own context, counted in the chat's figure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import bench_stack, log

# per-customer and per-message rows, measured together: every table a customer's traffic grows
TABLES = (
    "users",
    "sessions",
    "messages",
    "message_passages",
    "user_terms",
    "long_term_memories",
    "memory_events",
    "conversation_summaries",
    "graph_snapshots",
)
SECONDS_PER_DAY = 86_400
SEARCH_WINDOW = 2000  # LOFT_SEARCH_WINDOW's default: the newest rows a context searches per customer
GIB = 2**30


# -- measuring ------------------------------------------------------------------------------


async def _sizes(pool) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT c.relname AS name, pg_total_relation_size(c.oid) AS total, pg_indexes_size(c.oid) AS indexes "
        "FROM pg_class c WHERE c.relname = ANY($1::text[]) AND c.relkind = 'r'",
        list(TABLES),
    )
    return {"total": sum(r["total"] for r in rows), "indexes": sum(r["indexes"] for r in rows)}


# Neo4j's record sizes ("Understanding Neo4j's data on disk", neo4j.com knowledge base): the
# store files are preallocated in large steps, so a sample this small does not move their size
NODE_RECORD, REL_RECORD, PROPERTY_RECORD, DYNAMIC_BLOCK, DYNAMIC_PAYLOAD = 15, 34, 41, 128, 120
INLINE_VALUE = 24  # values up to about this many bytes live in the property record itself


def _value_bytes(value: object) -> int:
    """Bytes a property value takes beyond its property record (strings and arrays)."""
    if isinstance(value, str):
        size = len(value.encode())
    elif isinstance(value, list):
        size = sum(len(v.encode()) if isinstance(v, str) else 8 for v in value)
    else:
        return 0
    return 0 if size <= INLINE_VALUE else math.ceil(size / DYNAMIC_PAYLOAD) * DYNAMIC_BLOCK


async def _graph_store(rt) -> tuple[int, int]:
    """(nodes + relationships, their bytes as Neo4j's record format stores them; indexes aside)."""
    items = total = 0
    async with rt.graph.session(database=rt.settings.neo4j_database) as s:
        for record_size, query in (
            (NODE_RECORD, "MATCH (n) RETURN properties(n) AS p"),
            (REL_RECORD, "MATCH ()-[r]->() RETURN properties(r) AS p"),
        ):
            async for row in await s.run(query):
                props = row["p"]
                items += 1
                total += record_size + PROPERTY_RECORD * math.ceil(len(props) / 4)
                total += sum(_value_bytes(v) for v in props.values())
    return items, total


async def _seed(settings, customers: int, per_customer: int, seed: int) -> list[str]:
    """Store ``customers`` × ``per_customer`` messages through the import path (queued)."""
    from bench.ingest import messages_for, store_turns
    from service.runtime import Runtime

    rt = await Runtime.open(settings, role="worker", pool_size=2)
    try:
        rng = random.Random(seed)
        start = datetime.now(UTC) - timedelta(days=30)
        users = [f"cap-{i}-{uuid.uuid4().hex[:6]}" for i in range(customers)]
        for user in users:
            turns = [("user", m) for m in messages_for(rng, rt.catalog, per_customer)]
            await store_turns(rt, user, turns, start, 10)
        return users
    finally:
        await rt.close()


async def _store_state(settings) -> dict[str, Any]:
    from service.runtime import Runtime

    rt = await Runtime.open(settings, role="worker", pool_size=2)
    try:
        sizes = await _sizes(rt.pool)
        messages = int(await rt.pool.fetchval("SELECT count(*) FROM messages"))
        users = int(await rt.pool.fetchval("SELECT count(*) FROM users"))
        graph, graph_bytes = await _graph_store(rt)
    finally:
        await rt.close()
    return {"pg": sizes, "messages": messages, "users": users, "graph_items": graph, "neo4j_bytes": graph_bytes}


def _file_with_worker(settings, meter) -> dict[str, Any]:
    """``loftmem worker --once`` drains the queue; its CPU and peak RSS come from the kernel
    (``wait4``'s resource usage of that one child)."""
    with tempfile.TemporaryFile() as err:
        before = meter.snapshot()
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "--once"],
            env=_service_env(settings),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stores = meter.report(before, meter.snapshot(), 1)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError("worker --once failed:\n" + err.read().decode(errors="replace")[-3000:])
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss": usage.ru_maxrss * 1024, "stores": stores}


def _service_env(settings) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": settings.database_url,
        "NEO4J_URI": settings.neo4j_uri,
        "NEO4J_USER": settings.neo4j_user,
        "NEO4J_PASSWORD": settings.neo4j_password.get_secret_value(),
    }


def _over_http(server, meter, requests: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """The requests one after another; the CPU of the API process and the stores per request."""
    with httpx.Client(base_url=server.base, timeout=60) as client:
        before = meter.snapshot()
        for method, path, body in requests:
            r = client.request(method, path, **body)
            if r.status_code != 200:
                raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return meter.report(before, meter.snapshot(), len(requests))


async def _server_phases(settings, users: list[str], contexts: int, chats: int, seed: int) -> dict[str, Any]:
    from bench.latency import Server, questions
    from bench.procstat import CpuMeter, ProcessGroup, neo4j_group, postgres_group
    from service.catalog import Catalog

    rng = random.Random(seed)
    asked = questions(Catalog.load(), rng, contexts + chats + 20)
    server = await asyncio.to_thread(Server, settings, 1, {"LOFT_ENV": "development"})
    try:
        import asyncpg

        conn = await asyncpg.connect(settings.database_url)
        try:
            pg = await postgres_group(conn)
        finally:
            await conn.close()
        meter = CpuMeter(
            {"api": ProcessGroup("api", [server.pid]), "postgres": pg, "neo4j": neo4j_group(settings.neo4j_uri)}
        )
        ctx = [
            ("GET", f"/memory/context/{rng.choice(users)}", {"params": {"query": q}}) for q in asked[: contexts + 20]
        ]
        await asyncio.to_thread(_over_http, server, meter, ctx[:20])  # warm: models, caches, plans
        context = await asyncio.to_thread(_over_http, server, meter, ctx[20:])
        talk = [
            ("POST", "/v1/chat", {"json": {"user_identifier": rng.choice(users), "message": q}})
            for q in asked[contexts + 20 :]
        ]
        chat = await asyncio.to_thread(_over_http, server, meter, talk)
        rss = sum(p.memory_info().rss for p in [psutil.Process(server.pid), *psutil.Process(server.pid).children(True)])
        return {"context": context, "chat": chat, "api_rss": rss}
    finally:
        await asyncio.to_thread(server.stop)


async def measure(customers: int, per_customer: int, contexts: int, chats: int, seed: int) -> dict[str, Any]:
    """Every figure the model uses, measured now on a throwaway stack."""
    from bench.procstat import CpuMeter, neo4j_group, postgres_group

    load_before = os.getloadavg()[0]
    async with bench_stack(heap="768m") as settings:
        empty = await _store_state(settings)
        users = await _seed(settings, customers, per_customer, seed)
        import asyncpg

        conn = await asyncpg.connect(settings.database_url)
        try:
            pg = await postgres_group(conn)
        finally:
            await conn.close()
        meter = CpuMeter({"postgres": pg, "neo4j": neo4j_group(settings.neo4j_uri)})
        log(f"capacity: {customers * per_customer} messages stored; filing them with `loftmem worker --once`…")
        filed = await asyncio.to_thread(_file_with_worker, settings, meter)
        full = await _store_state(settings)
        log("capacity: contexts and chats over HTTP…")
        served = await _server_phases(settings, users, contexts, chats, seed)
    return _figures(empty, full, filed, served, load_before, os.getloadavg()[0])


def _figures(empty, full, filed, served, load_before: float, load_after: float) -> dict[str, Any]:
    messages = full["messages"] - empty["messages"]
    customers = full["users"] - empty["users"]
    stores = filed["stores"]["cpu_ms_per_request"]
    ctx, chat = served["context"]["cpu_ms_per_request"], served["chat"]["cpu_ms_per_request"]
    pg_bytes = full["pg"]["total"] - empty["pg"]["total"]
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "load_average": [round(load_before, 2), round(load_after, 2)]},
        "sample": {
            "customers": customers,
            "messages": messages,
            "contexts": served["context"]["requests"],
            "chats": served["chat"]["requests"],
        },
        "cpu_ms": {
            "worker_per_message": round(1000 * filed["cpu_s"] / messages, 2),
            "postgres_per_filed_message": _per(stores.get("postgres"), messages),
            "neo4j_per_filed_message": _per(stores.get("neo4j"), messages),
            "api_per_context": ctx["api"],
            "postgres_per_context": ctx.get("postgres") or 0.0,
            "neo4j_per_context": ctx.get("neo4j") or 0.0,
            "api_per_chat": chat["api"],
            "postgres_per_chat": chat.get("postgres") or 0.0,
            "neo4j_per_chat": chat.get("neo4j") or 0.0,
            "other_processes_per_context": served["context"]["other_ms_per_request"],
        },
        "memory_bytes": {"api_process": served["api_rss"], "worker_process_peak": filed["peak_rss"]},
        "disk_bytes": {
            "postgres_per_message": round(pg_bytes / messages),
            "postgres_index_share": round((full["pg"]["indexes"] - empty["pg"]["indexes"]) / max(pg_bytes, 1), 3),
            "neo4j_per_message": round((full["neo4j_bytes"] - empty["neo4j_bytes"]) / messages),
            "graph_items_per_message": round((full["graph_items"] - empty["graph_items"]) / messages, 3),
        },
    }


def _per(total_ms_for_one: float | None, n: int) -> float:
    """CpuMeter reported the whole phase as one request: per message."""
    return round((total_ms_for_one or 0.0) / n, 3)


# -- the model ------------------------------------------------------------------------------

# assumptions of the model, not measurements (each is printed with the plan)
ASSUMED = {
    "peak_over_average": "3.0 (--peak): the busiest hour's rate over the day's average",
    "utilisation": "0.6 (--utilisation): the share of a core planned busy at peak",
    "cores_per_worker_process": "2: a worker embeds with 2 threads (service/settings.py)",
    "postgres_overhead": "1.3: WAL, free space and bloat over the tables' size",
    "hot_customers": "every request of the peak hour is a different customer (at most all of them)",
    "postgres_ram": "the hot customers' rows (at most LOFT_SEARCH_WINDOW each) + 1 GiB; colder reads hit the disk",
    "neo4j_ram": "page cache = the hot customers' share of the store (the hot path reads snapshots) + 2 GiB heap",
    "box_cores": "16 (--box-cores): cores of one database machine; past it, the contexts' reads go to replicas",
}


def plan(f: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Cores, memory and disk per tier; each number with the figures it comes from."""
    cpu, mem, disk = f["cpu_ms"], f["memory_bytes"], f["disk_bytes"]
    chats = args.customers * args.messages_per_day / SECONDS_PER_DAY * args.peak  # per second at peak
    contexts = args.contexts_per_day / SECONDS_PER_DAY * args.peak
    rows = 2 * chats  # the customer's turn and the reply, both filed
    retained = 2 * args.customers * args.messages_per_day * args.retention_days

    def cores(ms_per_s: float) -> float:
        return round(ms_per_s / 1000 / args.utilisation, 2)

    api = cores(chats * cpu["api_per_chat"] + contexts * cpu["api_per_context"])
    worker = cores(rows * cpu["worker_per_message"])
    # a context's reads can move to replicas; a chat turn (its context included) and filing stay
    pg_reads = cores(contexts * cpu["postgres_per_context"])
    pg_primary = cores(chats * cpu["postgres_per_chat"] + rows * cpu["postgres_per_filed_message"])
    neo = cores(rows * cpu["neo4j_per_filed_message"] + contexts * cpu["neo4j_per_context"])
    api_procs, worker_procs = max(1, math.ceil(api)), max(1, math.ceil(worker / 2))
    pg_disk = retained * disk["postgres_per_message"] * 1.3
    neo_disk = retained * disk["neo4j_per_message"]
    hot = min(args.customers, (chats + contexts) * 3600)
    rows_each = min(retained / args.customers, SEARCH_WINDOW)
    replicas = math.ceil(pg_reads / args.box_cores) if pg_reads + pg_primary > args.box_cores else 0
    return {
        "load_at_peak_per_s": {"chats": round(chats, 2), "contexts": round(contexts, 2), "rows_filed": round(rows, 2)},
        "rows_retained": round(retained),
        "hot_customers": round(hot),
        "api": {
            "cores": api,
            "processes": api_procs,
            "memory_gib": round(api_procs * mem["api_process"] / GIB, 1),
            "from": "cpu_ms.api_per_chat, cpu_ms.api_per_context; memory_bytes.api_process",
        },
        "worker": {
            "cores": worker,
            "processes": worker_procs,
            "memory_gib": round(worker_procs * mem["worker_process_peak"] / GIB, 1),
            "from": "cpu_ms.worker_per_message; memory_bytes.worker_process_peak",
        },
        "postgres": {
            "cores": round(pg_reads + pg_primary, 2),
            "of_which_reads": pg_reads,
            "read_replicas": replicas,
            "primary_fits_one_box": pg_primary <= args.box_cores,
            "memory_gib": round(hot * rows_each * disk["postgres_per_message"] / GIB + 1, 1),
            "disk_gib": round(pg_disk / GIB, 1),
            "from": "cpu_ms.postgres_per_context, postgres_per_chat, postgres_per_filed_message; "
            "disk_bytes.postgres_per_message (memory: of the hot customers' rows)",
        },
        "neo4j": {
            "cores": neo,
            "memory_gib": round(neo_disk * hot / args.customers / GIB + 2, 1),
            "disk_gib": round(neo_disk / GIB, 1),
            "from": "cpu_ms.neo4j_per_filed_message, neo4j_per_context; disk_bytes.neo4j_per_message "
            "(records and values, from Neo4j's record sizes; indexes aside)",
        },
        "assumed": ASSUMED,
    }


def noise(f: dict[str, Any]) -> str:
    machine = f["machine"]
    load = max(machine["load_average"])
    shared = load > 0.5 * (machine["cores"] or 1)
    return (
        f"figures measured {f['measured_at']} on {machine['cores']} cores at load average "
        f"{machine['load_average'][0]}-{machine['load_average'][1]}"
        + (
            ": the machine was shared, so every CPU figure carries other work's contention (an upper "
            "bound, noisy from run to run); measure again on a quiet machine before buying one"
            if shared
            else ""
        )
    )


def render(f: dict[str, Any], p: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"{args.customers:,} customers, {args.messages_per_day} messages each a day, "
        f"{args.contexts_per_day:,} contexts a day, kept {args.retention_days} days; peak x{args.peak}",
        f"at peak: {p['load_at_peak_per_s']['chats']} chats/s, {p['load_at_peak_per_s']['contexts']} contexts/s, "
        f"{p['load_at_peak_per_s']['rows_filed']} rows filed/s; {p['rows_retained']:,} rows kept; "
        f"{p['hot_customers']:,} customers in the peak hour",
        "",
        "| tier | cores | processes | memory GiB | disk GiB | from |",
        "|---|---|---|---|---|---|",
    ]
    for tier in ("api", "worker", "postgres", "neo4j"):
        t = p[tier]
        procs = t.get("processes", "")
        if tier == "postgres":
            procs = f"1 primary + {t['read_replicas']} replicas (context reads {t['of_which_reads']} cores)"
            if not t["primary_fits_one_box"]:
                procs += "; the primary's own work exceeds one machine"
        lines.append(
            f"| {tier} | {t['cores']} | {procs} | {t['memory_gib']} | {t.get('disk_gib', '-')} | {t['from']} |"
        )
    lines += ["", "figures: " + json.dumps(f["cpu_ms"]), "bytes: " + json.dumps(f["disk_bytes"] | f["memory_bytes"])]
    lines += ["assumed: " + "; ".join(f"{k} {v}" for k, v in p["assumed"].items()), "note: " + noise(f)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--messages-per-day", type=float, required=True, help="chat messages per customer per day")
    parser.add_argument(
        "--contexts-per-day", type=int, required=True, help="GET /memory/context calls a day, all customers"
    )
    parser.add_argument("--retention-days", type=int, required=True)
    parser.add_argument("--peak", type=float, default=3.0, help="the busiest hour's rate over the day's average")
    parser.add_argument("--utilisation", type=float, default=0.6, help="the share of a core planned busy at peak")
    parser.add_argument("--box-cores", type=int, default=16, help="cores of one database machine")
    parser.add_argument("--figures", type=Path, help="read the figures from an earlier --json output")
    parser.add_argument("--sample-customers", type=int, default=40)
    parser.add_argument("--sample-messages", type=int, default=25, help="per sample customer")
    parser.add_argument("--sample-contexts", type=int, default=300)
    parser.add_argument("--sample-chats", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.figures is not None:
        figures = json.loads(args.figures.read_text())["figures"]
    else:
        figures = asyncio.run(
            measure(args.sample_customers, args.sample_messages, args.sample_contexts, args.sample_chats, args.seed)
        )
    p = plan(figures, args)
    print(render(figures, p, args), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"figures": figures, "plan": p, "inputs": vars(args) | {"figures": str(args.figures)}}))


if __name__ == "__main__":
    main()
