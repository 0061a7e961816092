"""Context and entity-search latency over HTTP on a realistic population, with CPU by process.

    python -m bench.latency --json [--customers 5000 --memories 200 --messages 100]
                                   [--no-profile] [--peer mem0 --peer-customers 200]

The population: customers with long-term memories, message history (sessions of 20
turns), summaries, and a graph (preferences, purchases, entities with embeddings).
Texts come from furniture-chat templates over the sample catalog; each distinct template
text is embedded once with the real model and every row gets that embedding plus small
Gaussian noise (sigma 0.02, renormalised), so the data loads in minutes. Rows go in with
COPY; the graph with batched UNWIND. The cross-customer HNSW index on memories is
dropped during the bulk load and (with --rebuild-hnsw) rebuilt at the end: per-customer
context reads never use it (they scan the customer's rows through the btree), so the
numbers do not depend on it. So it runs on a throwaway embedded stack: with DATABASE_URL /
NEO4J_URI set it refuses, unless --throwaway-stores says those stores may be wiped.

Measured against ``loftmem serve --workers 2`` over HTTP, for customers drawn uniformly
at random (so the per-customer graph cache mostly misses). Questions come from a pool of
20,000 generated ones, and every phase takes its own slice of it, so no phase asks what
an earlier one asked and the query-embedding cache mostly misses (before, the
16-client run re-asked the sequential run's questions). Rows: sequential p50/p95 of
GET /memory/context, throughput and p95 with 16 concurrent clients, sequential POST
/memory/search/entities, and the context p95 as the population grows (10k, 100k, …
memories). Two extra rows show the caches at work: five different questions in a row
per customer, as in a chat session, and one question repeated by one customer.

CPU per request (``cpu`` in the JSON, one ``cpu …`` line per phase on stderr): for every
phase, CPU milliseconds per request of each process group, read from ``/proc`` before and
after (:mod:`bench.procstat`): ``api`` (the ``loftmem serve`` supervisor and its worker
processes), ``postgres`` (the postmaster and all its children), ``neo4j`` (the JVM),
``loadgen`` (this process: the HTTP clients), their ``total``; ``other`` is what the rest
of the machine used meanwhile (a shared machine's other work, the profiler), and
``cores_busy`` is CPU seconds per wall second (2.0 is both cores). A phase of N requests
on a 100 Hz tick clock resolves about 10/N ms: small runs are coarse.

Profile (``profile`` in the JSON, top 20 frames by self time on stderr): after the
measured 16-client run, the same load again (fresh questions) with ``py-spy record
--subprocesses`` attached to the API supervisor (and so its workers), collapsed stacks
saved to ``bench/results/latency-<time>-api.txt`` (open it in speedscope.app). py-spy
runs with ``--nonblocking``: it reads the workers' memory without pausing them, which
costs them least and lets its idle-thread filter work (a stack may now and then be
torn); --profile-blocking pauses them for each sample instead (on a loaded 2-core
machine, threads parked in ``Condition.wait`` then show up as busy). Sampling still
takes CPU (it shows as ``other``), so this run's throughput is reported separately
(``concurrent16_profiled``) and is not the measured one. Needs the ``bench`` extra
(``uv sync --extra bench``); without py-spy, or with --no-profile, it is skipped.

Peer (``--peer mem0``, needs the ``peer`` extra): in the same run, mem0 (see
:mod:`bench.peer_mem0`) is loaded with the long-term memories of ``--peer-customers``
customers (a random subset, through its own ``add(…, infer=False)``; loading all of
them that way would take hours), then both systems answer the same (customer, question)
pairs over that subset: our GET /memory/context over HTTP on a fresh server (cold
caches; each customer's graph is cached after its first question, so with few
customers the graph cache warms up), and mem0 ``search(query, filters={"user_id": …},
top_k=--peer-top-k)`` in this process (threads for the 16 clients). Reported for each:
sequential p50/p95, 16-client throughput and p95, mean results per call, CPU per
request; and ``ours_over_mem0`` (p50 and p95 ratios: below 1 we are faster; the
throughput ratio: above 1 we are faster). Our context searches memories, messages,
summaries and the graph and packs a budget; mem0 searches memories only.

A/B (``--ab NAME=VALUE,… [--ab-base NAME=VALUE,…] [--ab-rounds 3] [--ab-only]``; ``ab``
in the JSON): the 16-client load on two API configurations that differ only in their
environment (e.g. ``--ab LOFT_EMBEDDER_SPINNING=1``; repeat ``--ab`` for C, D, …), each round on
fresh servers (cold caches), the variants back to back in rotating order; medians over
the rounds of throughput, p95 and CPU per request by group, and ``b_over_a`` (…) (also
per round). On a
shared machine the ratio is the number to quote. ``--ab-only`` skips every other phase.

Progress on stderr, one JSON object on stdout; the same object is saved to
``bench/results/latency-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

from bench.common import bench_stack, free_port, log, percentiles, refuse_external_stores
from bench.procstat import CpuMeter, ProcessGroup, describe, neo4j_group, postgres_group, self_group
from service.postgres import graph_snapshots
from service.postgres import users as users_table

RESULTS = Path(__file__).resolve().parent / "results"
CLIENTS = 16
PEOPLE = ["Anna", "Tom", "Max", "Emma", "Ravi", "Luis", "Miso", "Priya", "Jonas", "Mei"]
RELATIONS = ["sister", "husband", "dog", "wife", "partner", "brother", "cat", "friend", "son", "daughter"]
ROOMS = ["living room", "home office", "nursery", "bedroom", "dining room", "patio", "guest room"]


def template_pool(catalog, rng: random.Random, size: int) -> list[str]:
    out: set[str] = set()
    while len(out) < size:
        p = rng.choice(catalog.products)
        k = rng.randrange(10)
        if k == 0:
            out.add(
                f"The customer loves {rng.choice(catalog.styles)} furniture and prefers {rng.choice(catalog.materials)}."
            )
        elif k == 1:
            out.add(
                f"The customer bought the {p.name} for the {rng.choice(ROOMS)} on {rng.randint(1, 28)} {rng.choice(['March', 'May', 'July', 'October'])} 202{rng.randint(2, 5)}."
            )
        elif k == 2:
            i = rng.randrange(len(PEOPLE))
            out.add(
                f"The customer's {RELATIONS[i]} {PEOPLE[i]} is visiting and needs a {rng.choice(catalog.categories)}."
            )
        elif k == 3:
            out.add(
                f"The customer dislikes {rng.choice(catalog.materials)} because it {rng.choice(['scratches', 'stains', 'feels cold', 'looks cheap'])}."
            )
        elif k == 4:
            out.add(
                f"The customer is redoing the {rng.choice(ROOMS)} in {rng.choice(catalog.colors)} and {rng.choice(catalog.colors)}."
            )
        elif k == 5:
            out.add(f"Do you have the {p.name} in {rng.choice(catalog.colors)}?")
        elif k == 6:
            out.add(
                f"Show me {p.category}s under ${rng.choice([500, 800, 1200, 2000, 3000])} in {rng.choice(catalog.styles)} style."
            )
        elif k == 7:
            out.add(
                f"We are moving to {rng.choice(['Portland', 'Denver', 'Austin', 'Boston', 'Seattle'])} in {rng.choice(['spring', 'June', 'the autumn'])} and need a {p.category}."
            )
        elif k == 8:
            out.add(
                f"The {p.name} arrived with a scratch on the {rng.choice(['leg', 'arm', 'top', 'frame'])}; delivery took {rng.randint(2, 9)} days."
            )
        else:
            out.add(
                f"The customer asked about the {p.name} and its {rng.choice(['dimensions', 'fabric care', 'warranty', 'assembly'])}."
            )
    return sorted(out)


def noisy(base: np.ndarray, rng: np.random.Generator, sigma: float = 0.02) -> np.ndarray:
    v = base + rng.normal(0, sigma, size=base.shape).astype(np.float32)
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def questions(catalog, rng: random.Random, n: int) -> list[str]:
    forms = [
        "What {style} pieces would suit her {room}?",
        "When did I buy the {product}?",
        "Does she like {material}?",
        "Show me {category}s that match my {material} {product}",
        "What did my {relation} need when visiting?",
        "Which colours am I using in the {room}?",
        "Was there a problem with the {product} delivery?",
        "Remind me what I said about {material} and {style} furniture",
    ]
    out = []
    for _ in range(n):
        p = rng.choice(catalog.products)
        out.append(
            rng.choice(forms).format(
                style=rng.choice(catalog.styles),
                room=rng.choice(ROOMS),
                product=p.name,
                material=rng.choice(catalog.materials),
                category=p.category,
                relation=rng.choice(RELATIONS),
            )
        )
    return out


class Population:
    def __init__(self, rt, seed: int) -> None:
        self.rt = rt
        self.rng = random.Random(seed)
        self.nrng = np.random.default_rng(seed)
        self.pool = template_pool(rt.catalog, self.rng, 3000)
        log(f"population: embedding {len(self.pool)} template texts once")
        self.pool_vecs = rt.embedder.embed(self.pool, batch_size=64)
        self.users: list[str] = []
        self.memories = 0

    async def add(self, customers: int, memories: int, messages: int) -> None:
        rt = self.rt
        now = datetime.now(UTC)
        for start in range(0, customers, 250):
            chunk = [f"lat-{len(self.users) + i}-{uuid.uuid4().hex[:6]}" for i in range(min(250, customers - start))]
            users, sessions, msgs, mems, graph = [], [], [], [], []
            for user in chunk:
                users.append((user, None, now - timedelta(days=400), now))
                picks = self.rng.sample(range(len(self.pool)), memories)
                vecs = noisy(self.pool_vecs[picks], self.nrng)
                for j, (idx, vec) in enumerate(zip(picks, vecs, strict=False)):
                    text = self.pool[idx]
                    at = now - timedelta(days=self.rng.randint(0, 400), minutes=j)
                    mems.append(
                        (
                            uuid.uuid4(),
                            user,
                            self.rng.choice(["fact", "preference", "event"]),
                            text,
                            None,
                            vec,
                            round(self.rng.random(), 2),
                            at,
                            at,
                            at,
                            [],
                            f"{user}:{idx}",
                            "{}",
                        )
                    )
                n_sessions = max(1, messages // 20)
                for s in range(n_sessions):
                    sid = uuid.uuid4()
                    s_at = now - timedelta(days=10 * (n_sessions - s))
                    sessions.append((sid, user, "chat", s_at, s_at + timedelta(minutes=20), "{}"))
                    picks = self.rng.sample(range(len(self.pool)), min(20, messages))
                    for k, (idx, vec) in enumerate(zip(picks, noisy(self.pool_vecs[picks], self.nrng), strict=False)):
                        msgs.append(
                            (
                                sid,
                                user,
                                "user" if k % 2 == 0 else "assistant",
                                None,
                                self.pool[idx],
                                None,
                                s_at + timedelta(minutes=k),
                                vec,
                                "{}",
                            )
                        )
                graph.append(
                    {
                        "user_id": user,
                        "prefs": [
                            {"label": lab, "value": val}
                            for lab, val in (
                                ("Style", self.rng.choice(rt.catalog.styles)),
                                ("Material", self.rng.choice(rt.catalog.materials)),
                                ("Color", self.rng.choice(rt.catalog.colors)),
                            )
                        ],
                        "purchases": [self.rng.choice(rt.catalog.products).sku for _ in range(2)],
                        "entities": [
                            {
                                "key": f"person:{PEOPLE[i].lower()}",
                                "name": PEOPLE[i],
                                "relation": RELATIONS[i],
                                "embedding": [
                                    float(x)
                                    for x in noisy(
                                        rt.embedder.embed_query(f"{PEOPLE[i]} (person, {RELATIONS[i]})"), self.nrng
                                    )
                                ],
                            }
                            for i in self.rng.sample(range(len(PEOPLE)), 4)
                        ],
                    }
                )
            async with rt.pool.acquire() as conn:
                await conn.copy_records_to_table(
                    "users", records=users, columns=["user_identifier", "display_name", "created_at", "updated_at"]
                )
                await conn.copy_records_to_table(
                    "sessions",
                    records=sessions,
                    columns=["id", "user_identifier", "channel", "started_at", "last_message_at", "metadata"],
                )
                await conn.copy_records_to_table(
                    "messages",
                    records=msgs,
                    columns=[
                        "session_id",
                        "user_identifier",
                        "role",
                        "speaker",
                        "content",
                        "external_id",
                        "created_at",
                        "embedding",
                        "metadata",
                    ],
                )
                await conn.copy_records_to_table(
                    "long_term_memories",
                    records=mems,
                    columns=[
                        "id",
                        "user_identifier",
                        "kind",
                        "content",
                        "subject",
                        "embedding",
                        "importance",
                        "created_at",
                        "updated_at",
                        "valid_from",
                        "source_message_ids",
                        "content_hash",
                        "metadata",
                    ],
                )
            await rt.graph.execute_query(GRAPH_LOAD, rows=graph)
            # as the worker does after a graph write: the version moves on and the
            # retriever's snapshot of the graph is read back at it (service.postgres.graph_snapshots)
            async with rt.pool.acquire() as conn, conn.transaction():
                versions = await users_table.bump_graph_version(conn, chunk)
                await graph_snapshots.refresh(conn, rt.graph_store, versions)
            self.users += chunk
            self.memories += len(mems)
            log(f"population: {len(self.users)} customers, {self.memories} memories")
        async with rt.pool.acquire() as conn:
            await conn.execute("ANALYZE")


GRAPH_LOAD = """
UNWIND $rows AS row
MERGE (c:Customer {user_id: row.user_id}) SET c.first_seen = datetime() - duration('P300D'), c.last_seen = datetime()
WITH c, row
CALL (c, row) {
  UNWIND row.prefs AS p
  MATCH (t) WHERE (t:Style OR t:Material OR t:Color) AND t.name = p.value AND p.label IN labels(t)
  CREATE (c)-[:PREFERS {attribute: toLower(p.label), strength: 0.7, confidence: 0.8, mentions: 1,
                        first_seen: datetime(), last_seen: datetime(), valid_from: datetime(), source_message_ids: []}]->(t)
}
CALL (c, row) {
  UNWIND row.purchases AS sku
  MATCH (p:Product {sku: sku})
  CREATE (c)-[:PURCHASED {at: datetime() - duration('P30D'), qty: 1, price: p.price, source_message_ids: []}]->(p)
}
CALL (c, row) {
  UNWIND row.entities AS e
  CREATE (n:Entity {user_id: row.user_id, key: e.key, name: e.name, type: 'person', first_seen: datetime(), last_seen: datetime()})
  WITH c, n, e
  CALL db.create.setNodeVectorProperty(n, 'embedding', e.embedding)
  CREATE (c)-[:MENTIONED {relation: e.relation, mentions: 2, first_seen: datetime(), last_seen: datetime(), source_message_ids: []}]->(n)
}
"""


class QuestionStream:
    """Hands out questions in order, never the same slice twice: each phase asks new ones."""

    def __init__(self, qs: list[str]) -> None:
        self.qs = qs
        self.cursor = 0

    def take(self, n: int) -> list[str]:
        if self.cursor + n > len(self.qs):
            log(f"warning: question pool exhausted ({len(self.qs)}); questions repeat from here on")
            self.cursor = 0
        out = self.qs[self.cursor : self.cursor + n]
        self.cursor += n
        return out


class Server:
    def __init__(self, settings, workers: int, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        env = (
            os.environ
            | (extra_env or {})
            | {
                "DATABASE_URL": settings.database_url,
                "NEO4J_URI": settings.neo4j_uri,
                "NEO4J_USER": settings.neo4j_user,
                "NEO4J_PASSWORD": settings.neo4j_password.get_secret_value(),
                "LOFT_PORT": str(self.port),
            }
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--workers", str(workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.base + "/memory/status", timeout=5).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("API did not start")
            time.sleep(0.5)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def sequential(client: httpx.AsyncClient, make_request, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        r = await make_request(client, i)
        out.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return out


async def concurrent(
    client: httpx.AsyncClient, make_request, clients: int, per_client: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def one(c: int) -> None:
        for i in range(per_client):
            t0 = time.perf_counter()
            r = await make_request(client, c * per_client + i)
            latencies.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(c) for c in range(clients)))
    return len(latencies) / (time.perf_counter() - t0), latencies


async def measure(base: str, users: list[str], warm_qs: list[str], qs: list[str]) -> list[float]:
    rng = random.Random(len(users))

    def on(questions: list[str]):
        async def context(client, i):
            return await client.get(
                f"/memory/context/{rng.choice(users)}", params={"query": questions[i], "budget": 1000}
            )

        return context

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for i in range(len(warm_qs)):
            await on(warm_qs)(client, i)
        return await sequential(client, on(qs), len(qs))


def cpu_meter(server: Server, pg: ProcessGroup | None, neo: ProcessGroup | None) -> CpuMeter:
    return CpuMeter({"api": ProcessGroup("api", [server.pid]), "postgres": pg, "neo4j": neo, "loadgen": self_group()})


async def metered(meter: CpuMeter, phase: str, cpu: dict, work, label: str | None = None):
    """Run ``work`` (a coroutine returning latencies or (rps, latencies)); record its CPU."""
    before = meter.snapshot()
    out = await work
    latencies = out[1] if isinstance(out, tuple) else out
    cpu[phase] = meter.report(before, meter.snapshot(), len(latencies))
    log(describe(label or phase, cpu[phase]))
    return out


async def profiled_run(server: Server, client, context, args, stamp: str, meter: CpuMeter, cpu: dict) -> dict:
    """The 16-client load again with py-spy attached to the API; its top frames."""
    from bench.pyspy import PySpy, py_spy_path, top_frames
    from bench.pyspy import describe as describe_profile

    if py_spy_path() is None:
        log("profile: skipped, py-spy is not installed (uv sync --extra bench)")
        return {"skipped": "py-spy is not installed (uv sync --extra bench)"}
    out = RESULTS / f"latency-{stamp}-api.txt"
    try:
        spy = PySpy(server.pid, out, rate=args.profile_rate, nonblocking=not args.profile_blocking)
    except RuntimeError as exc:
        log(f"profile: py-spy could not attach: {exc}")
        return {"skipped": f"py-spy could not attach: {exc}"}
    log(f"measuring: 16 concurrent clients again, with py-spy attached ({args.profile_rate} Hz)")
    try:
        rps, lat = await metered(
            meter, "concurrent16_profiled", cpu, concurrent(client, context, CLIENTS, args.concurrent_per_client)
        )
    finally:
        path = spy.stop()
    top = top_frames(path, 20, root=str(Path(__file__).resolve().parent.parent))
    log(describe_profile(top))
    return {
        "path": str(path),
        "format": "collapsed stacks (py-spy raw)",
        "rate_hz": args.profile_rate,
        "nonblocking": not args.profile_blocking,
        "concurrent16_profiled": {"rps": round(rps, 1), "p95_ms": percentiles(lat)["p95"]},
        "samples": top["samples"],
        "top_self": top["self"],
        "top_inclusive": top["inclusive"],
    }


async def peer_run(
    args,
    settings,
    subset: list[str],
    memories: dict[str, list[str]],
    stream: QuestionStream,
    pg: ProcessGroup | None,
    neo: ProcessGroup | None,
) -> dict:
    """Ours over HTTP and mem0 in-process on the same customers and questions."""
    import logging

    from bench.peer_mem0 import Mem0Peer

    logging.getLogger("mem0").setLevel(logging.ERROR)  # "spaCy is not installed", once per model
    rng = random.Random(args.seed + 5)
    warm, n_seq, n_conc = 20, args.sequential, CLIENTS * args.concurrent_per_client
    pairs = [(rng.choice(subset), q) for q in stream.take(warm + n_seq + n_conc)]
    warm_pairs, seq_pairs, conc_pairs = pairs[:warm], pairs[warm : warm + n_seq], pairs[warm + n_seq :]
    out: dict = {
        "system": "mem0",
        "customers": len(subset),
        "top_k": args.peer_top_k,
        "warm_up_requests": warm,
        "notes": [
            "mem0 runs in this process (no HTTP); ours over HTTP with the API's own processes",
            "mem0 searches long-term memories only; ours memories, messages, summaries and the graph",
            "mem0 runs without spaCy (no lemmatisation, no entity boosts): its [nlp] model cannot be fetched offline",
            "mem0's pgvector store without HNSW: an exact scan per search (with mem0's default HNSW "
            "the per-customer filter runs after the index scan and most searches would come back empty)",
        ],
    }

    log(
        f"mem0: starting (offline) and loading {sum(len(v) for v in memories.values())} memories of {len(subset)} customers"
    )
    t0 = time.perf_counter()
    peer = await asyncio.to_thread(Mem0Peer, settings.database_url, top_k=args.peer_top_k)
    out["version"] = peer.version
    out["start_s"] = round(time.perf_counter() - t0, 1)
    try:
        out["load"] = await asyncio.to_thread(peer.load, memories, log)
        log(f"mem0: loaded {json.dumps(out['load'])}")

        # ours: a fresh server (cold caches), the same pairs
        server = Server(settings, args.workers)
        ours_cpu: dict = {}
        try:
            meter = cpu_meter(server, pg, neo)
            items: list[int] = []

            async def context(client, i, chosen):
                user, query = chosen[i]
                return await client.get(f"/memory/context/{user}", params={"query": query, "budget": 1000})

            async with httpx.AsyncClient(
                base_url=server.base, timeout=60, limits=httpx.Limits(max_connections=32)
            ) as client:
                for i in range(warm):
                    (await context(client, i, warm_pairs)).raise_for_status()
                log("peer: ours, sequential")
                before = meter.snapshot()
                seq = []
                for i in range(n_seq):
                    t = time.perf_counter()
                    r = await context(client, i, seq_pairs)
                    seq.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                    items.append(len(r.json().get("items", [])))  # after the clock: parsing is not the server's time
                ours_cpu["sequential"] = meter.report(before, meter.snapshot(), n_seq)
                log(describe("peer ours sequential", ours_cpu["sequential"]))
                log("peer: ours, 16 concurrent clients")
                rps, conc = await metered(
                    meter,
                    "concurrent16",
                    ours_cpu,
                    concurrent(client, lambda c, i: context(c, i, conc_pairs), CLIENTS, args.concurrent_per_client),
                    label="peer ours concurrent16",
                )
        finally:
            server.stop()
        s, c = percentiles(seq), percentiles(conc)
        out["ours"] = {
            "sequential": {"p50_ms": s["p50"], "p95_ms": s["p95"]},
            "concurrent16": {"rps": round(rps, 1), "p95_ms": c["p95"]},
            "mean_items": round(statistics.fmean(items), 1) if items else 0,
            "cpu": ours_cpu,
        }

        # mem0: the same pairs, in this process (its CPU is loadgen's)
        meter = CpuMeter({"mem0_in_loadgen": self_group("mem0_in_loadgen"), "postgres": pg})
        m_cpu: dict = {}
        await asyncio.to_thread(peer.sequential, warm_pairs)
        log("peer: mem0, sequential")
        before = meter.snapshot()
        m_seq, m_counts = await asyncio.to_thread(peer.sequential, seq_pairs)
        m_cpu["sequential"] = meter.report(before, meter.snapshot(), n_seq)
        log(describe("peer mem0 sequential", m_cpu["sequential"]))
        log("peer: mem0, 16 concurrent threads")
        before = meter.snapshot()
        m_rps, m_conc, _m_counts2 = await asyncio.to_thread(peer.concurrent, conc_pairs, CLIENTS)
        m_cpu["concurrent16"] = meter.report(before, meter.snapshot(), len(m_conc))
        log(describe("peer mem0 concurrent16", m_cpu["concurrent16"]))
        ms, mc = percentiles(m_seq), percentiles(m_conc)
        out["mem0"] = {
            "sequential": {"p50_ms": ms["p50"], "p95_ms": ms["p95"]},
            "concurrent16": {"rps": round(m_rps, 1), "p95_ms": mc["p95"]},
            "mean_results": round(statistics.fmean(m_counts), 1) if m_counts else 0,
            "cpu": m_cpu,
        }
        out["blocked_connections"] = peer.blocked_connections
    finally:
        await asyncio.to_thread(peer.close)

    def ratio(a, b):
        return round(a / b, 2) if b else None

    out["ours_over_mem0"] = {
        "p50": ratio(out["ours"]["sequential"]["p50_ms"], out["mem0"]["sequential"]["p50_ms"]),
        "p95": ratio(out["ours"]["sequential"]["p95_ms"], out["mem0"]["sequential"]["p95_ms"]),
        "rps": ratio(out["ours"]["concurrent16"]["rps"], out["mem0"]["concurrent16"]["rps"]),
    }
    log(f"peer: ours {json.dumps({k: out['ours'][k] for k in ('sequential', 'concurrent16', 'mean_items')})}")
    log(f"peer: mem0 {json.dumps({k: out['mem0'][k] for k in ('sequential', 'concurrent16', 'mean_results')})}")
    log(f"peer: ours / mem0 {json.dumps(out['ours_over_mem0'])} (latency below 1 and rps above 1: ours is faster)")
    return out


def parse_env(spec: str | None) -> dict[str, str]:
    """``"A=1,B=two"`` as a dict (an A/B variant's extra environment)."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if part.strip():
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise SystemExit(f"--ab/--ab-base: expected NAME=VALUE, not {part!r}")
            out[key.strip()] = value.strip()
    return out


async def ab_run(args, settings, users: list[str], stream: QuestionStream, pg, neo) -> dict:
    """The 16-client load on API configurations that differ only in their environment
    (A: ``--ab-base``; B, C, …: each ``--ab``), fresh servers every round, the order
    rotating round by round (drift on a shared machine hits all alike); per variant the
    median throughput, p95 and CPU per request by group, and each over A."""
    names = [chr(ord("A") + i) for i in range(len(args.ab) + 1)]
    variants = dict(zip(names, [parse_env(args.ab_base)] + [parse_env(x) for x in args.ab], strict=True))
    runs: dict[str, list[dict]] = {n: [] for n in names}
    n_conc = CLIENTS * args.concurrent_per_client
    for r in range(args.ab_rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            server = Server(settings, args.workers, variants[name])
            try:
                meter = cpu_meter(server, pg, neo)
                rng = random.Random(args.seed + 100 + r)
                warm, qs = stream.take(30), stream.take(n_conc)

                async def context(client, i, qs=qs, rng=rng):
                    return await client.get(
                        f"/memory/context/{rng.choice(users)}", params={"query": qs[i], "budget": 1000}
                    )

                async with httpx.AsyncClient(
                    base_url=server.base, timeout=60, limits=httpx.Limits(max_connections=32)
                ) as client:
                    for i in range(len(warm)):
                        (await context(client, i, warm)).raise_for_status()
                    cpu: dict = {}
                    rps, lat = await metered(
                        meter,
                        "concurrent16",
                        cpu,
                        concurrent(client, context, CLIENTS, args.concurrent_per_client),
                        label=f"ab round {r + 1} {name} {variants[name]}",
                    )
            finally:
                server.stop()
            runs[name].append({"rps": round(rps, 1), "p95_ms": percentiles(lat)["p95"], "cpu": cpu["concurrent16"]})

    def summary(name: str) -> dict:
        rs = runs[name]
        per = [x["cpu"]["cpu_ms_per_request"] for x in rs]
        return {
            "env": variants[name],
            "rps_median": round(statistics.median(x["rps"] for x in rs), 1),
            "p95_ms_median": round(statistics.median(x["p95_ms"] for x in rs), 1),
            "cpu_ms_per_request_median": {
                g: round(statistics.median(p[g] for p in per), 2) if per[0][g] is not None else None for g in per[0]
            },
            "other_ms_per_request_median": round(statistics.median(x["cpu"]["other_ms_per_request"] for x in rs), 2),
            "rounds": rs,
        }

    out: dict = {"rounds": args.ab_rounds} | {n: summary(n) for n in names}
    a = out["A"]
    for name in names[1:]:
        b = out[name]
        out[f"{name.lower()}_over_a"] = {
            "rps": round(b["rps_median"] / a["rps_median"], 2) if a["rps_median"] else None,
            "p95": round(b["p95_ms_median"] / a["p95_ms_median"], 2) if a["p95_ms_median"] else None,
            "cpu_ms_per_request": {
                g: round(v / a["cpu_ms_per_request_median"][g], 2) if v and a["cpu_ms_per_request_median"][g] else None
                for g, v in b["cpu_ms_per_request_median"].items()
            },
            # the same ratio round by round (each round's variants ran back to back)
            "rps_per_round": [
                round(y["rps"] / x["rps"], 2) if x["rps"] else None for x, y in zip(runs["A"], runs[name], strict=True)
            ],
        }
    for name in names:
        v = out[name]
        log(
            f"ab: {name} {json.dumps({k: v[k] for k in ('env', 'rps_median', 'p95_ms_median', 'cpu_ms_per_request_median')})}"
        )
        if name != "A":
            log(f"ab: {name} / A {json.dumps(out[f'{name.lower()}_over_a'])}")
    return out


async def run(args) -> dict:
    from service.runtime import Runtime

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    # the bulk load drops ltm_embedding_hnsw_idx: never on stores not said to be throwaway
    async with bench_stack(heap="2g", throwaway_stores=args.throwaway_stores) as settings:
        rt = await Runtime.open(settings)
        try:
            async with rt.pool.acquire() as conn:
                await conn.execute("DROP INDEX IF EXISTS ltm_embedding_hnsw_idx")
                pg = await postgres_group(conn)
            neo = neo4j_group(settings.neo4j_uri)
            log(
                f"cpu groups: postgres {pg.pids() if pg else 'not on this machine'}, neo4j {neo.pids() if neo else 'not on this machine'}"
            )
            population = Population(rt, args.seed)
            stream = QuestionStream(questions(rt.catalog, random.Random(args.seed), 20000))
            growth = []
            stages = [s for s in (50, 500, 5000, 50000) if s < args.customers] + [args.customers]
            for stage in stages:
                await population.add(stage - len(population.users), args.memories, args.messages)
                if args.ab_only:
                    continue
                server = Server(settings, args.workers)
                try:
                    lat = await measure(
                        server.base, population.users, stream.take(20), stream.take(args.sequential // 2)
                    )
                finally:
                    server.stop()
                p = percentiles(lat)
                growth.append({"memories": population.memories, "context_p50_ms": p["p50"], "context_p95_ms": p["p95"]})
                log(f"growth: {growth[-1]}")
            hnsw_s = None
            if args.rebuild_hnsw:
                log("rebuilding the HNSW index on long_term_memories…")
                t0 = time.perf_counter()
                async with rt.pool.acquire() as conn:
                    await conn.execute("SET maintenance_work_mem = '2GB'")
                    await conn.execute(
                        "CREATE INDEX ltm_embedding_hnsw_idx ON long_term_memories USING hnsw (embedding vector_cosine_ops)"
                    )
                hnsw_s = round(time.perf_counter() - t0, 1)
            peer_memories: dict[str, list[str]] = {}
            if args.peer:
                subset = random.Random(args.seed + 4).sample(
                    population.users, min(args.peer_customers, len(population.users))
                )
                rows = await rt.pool.fetch(
                    "SELECT user_identifier, content FROM long_term_memories WHERE user_identifier = ANY($1) ORDER BY user_identifier, created_at",
                    subset,
                )
                for row in rows:
                    peer_memories.setdefault(row["user_identifier"], []).append(row["content"])
        finally:
            await rt.close()

        if args.ab_only:
            ab = await ab_run(args, settings, population.users, stream, pg, neo)
            result = {
                "memories": population.memories,
                "customers": len(population.users),
                "api_workers": args.workers,
                "ab": ab,
                "machine": {"cpus": os.cpu_count(), "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
            }
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"latency-{stamp}-ab.json").write_text(json.dumps(result, indent=2))
            return result

        cpu: dict = {}
        profile: dict | None = None
        server = Server(settings, args.workers)
        try:
            rng = random.Random(args.seed + 1)
            users = population.users
            meter = cpu_meter(server, pg, neo)
            log(f"cpu groups: api {meter.groups['api'].pids()}, loadgen [{os.getpid()}]")

            def context_on(qs: list[str]):
                async def context(client, i):
                    return await client.get(
                        f"/memory/context/{rng.choice(users)}", params={"query": qs[i], "budget": 1000}
                    )

                return context

            def entities_on(qs: list[str]):
                async def entities(client, i):
                    return await client.post(
                        "/memory/search/entities",
                        json={"query": qs[i], "user_identifier": rng.choice(users), "limit": 10},
                    )

                return entities

            n_conc = CLIENTS * args.concurrent_per_client
            async with httpx.AsyncClient(
                base_url=server.base, timeout=60, limits=httpx.Limits(max_connections=32)
            ) as client:
                warm = stream.take(30)
                for i in range(30):
                    await context_on(warm)(client, i)
                    await entities_on(warm)(client, i)
                log("measuring: sequential context")
                seq = await metered(
                    meter,
                    "sequential",
                    cpu,
                    sequential(client, context_on(stream.take(args.sequential)), args.sequential),
                )
                log("measuring: 16 concurrent clients")
                rps, conc = await metered(
                    meter,
                    "concurrent16",
                    cpu,
                    concurrent(client, context_on(stream.take(n_conc)), CLIENTS, args.concurrent_per_client),
                )
                if args.profile:
                    profile = await profiled_run(
                        server, client, context_on(stream.take(n_conc)), args, stamp, meter, cpu
                    )
                log("measuring: sequential entity search")
                ent = await metered(
                    meter,
                    "entity_search_sequential",
                    cpu,
                    sequential(client, entities_on(stream.take(args.sequential)), args.sequential),
                )
                # chat-like traffic: five different questions in a row per customer (a session),
                # so the per-customer graph cache is warm after the first
                session_qs = stream.take(args.sequential)
                session = await metered(
                    meter,
                    "sequential_5_turns_per_customer",
                    cpu,
                    sequential(
                        client,
                        lambda c, i: c.get(
                            f"/memory/context/{users[(i // 5) * 7 % len(users)]}",
                            params={"query": session_qs[i], "budget": 1000},
                        ),
                        args.sequential,
                    ),
                )
                # one question asked again and again by one customer (a retry, a repeated
                # question): its embedding is cached after the first. The query cache is per
                # customer, so the same text from many customers would miss every time
                repeated = stream.take(1)[0]
                asker = users[0]
                cached = await metered(
                    meter,
                    "sequential_cached_query",
                    cpu,
                    sequential(
                        client,
                        lambda c, i: c.get(f"/memory/context/{asker}", params={"query": repeated, "budget": 1000}),
                        200,
                    ),
                )
        finally:
            server.stop()

        ab = await ab_run(args, settings, population.users, stream, pg, neo) if args.ab is not None else None
        peer = None
        if args.peer:
            peer = await peer_run(args, settings, sorted(peer_memories), peer_memories, stream, pg, neo)

    s, c, e, h, t = percentiles(seq), percentiles(conc), percentiles(ent), percentiles(cached), percentiles(session)
    result = {
        "memories": population.memories,
        "customers": len(population.users),
        "context": {
            "sequential": {"p50_ms": s["p50"], "p95_ms": s["p95"]},
            "concurrent16": {"rps": round(rps, 1), "p95_ms": c["p95"]},
            "sequential_cached_query": {"p50_ms": h["p50"], "p95_ms": h["p95"]},
            "sequential_5_turns_per_customer": {"p50_ms": t["p50"], "p95_ms": t["p95"]},
        },
        "entity_search": {"sequential": {"p50_ms": e["p50"], "p95_ms": e["p95"]}},
        "cpu": cpu,
        "growth": growth,
        "api_workers": args.workers,
        "hnsw_rebuild_s": hnsw_s,
        "machine": {"cpus": os.cpu_count(), "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
    }
    if profile is not None:
        result["profile"] = profile
    if peer is not None:
        result["peer"] = peer
    if ab is not None:
        result["ab"] = ab
    RESULTS.mkdir(parents=True, exist_ok=True)
    saved = RESULTS / f"latency-{stamp}.json"
    saved.write_text(json.dumps(result, indent=2))
    log(f"saved {saved}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--memories", type=int, default=200, help="long-term memories per customer")
    parser.add_argument("--messages", type=int, default=100, help="messages per customer")
    parser.add_argument("--sequential", type=int, default=500)
    parser.add_argument("--concurrent-per-client", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2, help="API processes")
    parser.add_argument("--rebuild-hnsw", action="store_true", help="rebuild the cross-customer HNSW index at the end")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="repeat the 16-client run with py-spy attached to the API (needs the bench extra)",
    )
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument(
        "--profile-blocking",
        action="store_true",
        help="let py-spy pause the API for each sample (consistent stacks, more overhead, idle threads leak in)",
    )
    parser.add_argument(
        "--peer", choices=["mem0"], help="also measure a peer system on the same customers and questions"
    )
    parser.add_argument(
        "--peer-customers", type=int, default=200, help="customers (with all their memories) loaded into the peer"
    )
    parser.add_argument("--peer-top-k", type=int, default=20, help="results per peer search")
    parser.add_argument(
        "--ab",
        metavar="NAME=VALUE,…",
        action="append",
        help="also run the 16-client load on another API configuration (this extra environment) beside the first"
        " (repeat for more: B, C, …)",
    )
    parser.add_argument("--ab-base", metavar="NAME=VALUE,…", default="", help="the first configuration's environment")
    parser.add_argument("--ab-rounds", type=int, default=3, help="A/B rounds (fresh servers, order alternating)")
    parser.add_argument("--ab-only", action="store_true", help="build the population and run only the A/B rounds")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--throwaway-stores",
        action="store_true",
        help="the stores in DATABASE_URL / NEO4J_URI may be filled with made-up customers and lose the memories'"
        " HNSW index (without it, the run refuses them)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    refuse_external_stores(args.throwaway_stores)  # before the model loads and anything is built
    if args.ab_only and args.ab is None:
        parser.error("--ab-only needs --ab")
    result = asyncio.run(run(args))
    log(json.dumps({k: v for k, v in result.items() if k not in ("profile", "cpu", "ab")}, indent=2))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
