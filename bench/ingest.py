"""Ingestion throughput and chat latency.

    python -m bench.ingest --json [--users 50 --messages-per-user 20 --chats 200]
    python -m bench.ingest --long --json [--users 20 --messages-per-user 200]

1. Ingestion: furniture-chat messages for many customers are stored through the import
   path, then one in-process worker drains the queue: batch embeddings, rule-based
   extraction, memories, graph writes and session summaries. Reported: messages per
   second from queue to all three tiers (``messages_per_s``), and, in the same run:

   * ``embed_bound_messages_per_s``: the bound the embedder alone allows. Every call the
     worker made to the embedder during the drain is recorded (texts and batch size) and
     replayed after it, alone, in the same order: the content of each message of each batch of
     ``LOFT_WORKER_BATCH`` (64) messages, the batch's memory candidates and entities, the
     session summaries (each distinct text of a batch once, as the worker sends them). The replay runs twice (``embed_replay_s``) and the bound takes
     the faster. ``embed_only_messages_per_s`` is the older, looser bound: the
     message texts alone, in batches of ``LOFT_WORKER_BATCH``.
   * ``drain_embed_share``: the share of the drain's wall time during which the
     embedder was running (every ``embed`` call timed, by monkeypatching the runtime's
     embedder in this process: measurement only; the union of the calls' spans, since the
     worker prepares the next batch while it writes the last and one call may wait for
     another), with ``embed_calls`` broken down by call site (``function:line`` of the
     pipeline's call; its ``seconds`` include such waits); the rest of the drain is the
     part of extraction, the PostgreSQL and Neo4j writes and the queue that did not
     overlap an embedding.
   * ``cpu``: CPU milliseconds per message during the drain, by process group
     (``worker``: this process; ``postgres``; ``neo4j``), read from ``/proc``
     (:mod:`bench.procstat`). ``embed_cpu_ms_per_message``: this process's CPU during
     the faster replay, per message (the embedder's own cost, all its threads);
     ``worker_cpu_outside_embed_share``: the share of the worker's drain CPU beyond that
     (extraction, drivers, the queue): on a busy machine, where the drain's embedding
     competes for the cores with everything else, CPU is the figure that does not
     depend on the neighbours.

   The default population: short messages from templates (names, preferences,
   purchases, people, small talk), all from the customer. ``--long``: long messages
   instead (default 200 per customer, in sessions of 20 turns), alternating customer
   and assistant: pasted text (product sheets, delivery e-mails; about 3 in 100 of the
   customer's turns are a whole list of product sheets, 10,000-16,000 characters), long
   questions that tell a story before asking, and long assistant answers that compare
   several products: about 1,300 characters on average, median 1,100. ``texts``
   reports their length distribution. The embedder reads at most 256 tokens
   of each text (``max_seq_length``), but tokenises all of it.
   ``--warm-users N`` drains N other customers first, unmeasured (a warm server: query
   plans, JIT, caches). ``--profile`` adds ``profile``: every statement of the drain by
   name, count and milliseconds per batch and per message, with the Neo4j process's CPU per
   Cypher statement and per commit, and the pipeline's ``prepare`` and ``commit``
   (:mod:`bench.statements`).

   ``--ab-rounds N`` instead measures the worker's write path against the one before
   batching (:mod:`bench.write_paths`: ``before``, one statement per kind of fact and 2-3
   round trips per memory; ``graph``, the graph write batched; ``lists``, both batched but
   the graph statement's rows in six list parameters; ``graph+memories``, today's),
   a fresh population per arm and round in a rotating order after a warm-up with each:
   medians per arm, each arm over ``before``, and the load average. ``--cold-plans``
   clears Neo4j's query caches before each measured drain (a fresh server's planning).
2. Chat: ``POST /v1/chat`` over HTTP against ``loftmem serve`` (no LLM, no worker
   running, so this is API time: store the turn, build context, offline reply, store it),
   sequential; p50/p95 in milliseconds. ``--chats 0`` skips it.
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

import httpx

from bench.common import bench_stack, free_port, log, percentiles

NAMES = ["Sarah", "Tom", "Priya", "Marco", "Ines", "Dana", "Olu", "Lena", "Noor", "Theo", "Mei", "Jonas"]
PEOPLE = [
    ("wife", "Emma"),
    ("husband", "Ravi"),
    ("sister", "Anna"),
    ("brother", "Luis"),
    ("dog", "Max"),
    ("cat", "Miso"),
]
SMALL_TALK = [
    "Thanks, that's really helpful!",
    "Can you tell me more about delivery times?",
    "We're redoing the living room this spring.",
    "The kids keep spilling juice on everything.",
    "What are your opening hours on Saturday?",
    "I work from home most days.",
]


def messages_for(rng: random.Random, catalog, n: int) -> list[str]:
    name = rng.choice(NAMES)
    relation, person = rng.choice(PEOPLE)
    out = [f"Hi, my name is {name} and I love {rng.choice(catalog.styles)} furniture."]
    while len(out) < n:
        product = rng.choice(catalog.products)
        out.append(
            rng.choice(
                [
                    f"Show me {product.category}s in {rng.choice(catalog.materials)}.",
                    f"I bought the {product.name} last week.",
                    f"I really don't like {rng.choice(catalog.materials)}, it scratches too easily.",
                    f"My {relation} {person} is visiting next month, so we need a guest bed.",
                    f"Actually I prefer {rng.choice(catalog.colors)} now.",
                    f"Do you have the {product.name} in stock?",
                    rng.choice(SMALL_TALK),
                ]
            )
        )
    return out


ROOMS = ["living room", "home office", "nursery", "bedroom", "dining room", "patio", "guest room", "hallway"]
CITIES = ["Portland", "Denver", "Austin", "Boston", "Seattle", "Chicago"]


def _product_sheet(rng: random.Random, catalog) -> str:
    """A pasted product page: what a customer copies from a shop or a competitor's site."""
    p = rng.choice(catalog.products)
    return (
        f"{p.name} by {p.brand}. {p.description} Category: {p.category}. Price: ${p.price:,.2f}. "
        f"Dimensions: {p.width_cm} x {p.depth_cm} x {p.height_cm} cm (W x D x H). "
        f"Materials: {', '.join(p.materials)}. Colours: {', '.join(p.colors)}. Style: {', '.join(p.styles)}. "
        f"Care: wipe with a soft, dry cloth; avoid direct sunlight and heat sources; use coasters and felt pads; "
        f"tighten the fittings after the first month. Delivery in {rng.randint(2, 9)} to {rng.randint(10, 21)} working days, "
        f"assembly {rng.choice(['included', 'available for $79', 'not required'])}, {rng.choice([2, 5, 10])}-year warranty. "
    )


def _delivery_mail(rng: random.Random, catalog, name: str) -> str:
    p = rng.choice(catalog.products)
    return (
        f"Dear {name}, thank you for your order #{rng.randint(100000, 999999)} of the {p.name} ({p.sku}). "
        f"Your delivery is scheduled for {rng.choice(['Monday', 'Wednesday', 'Friday'])} {rng.randint(1, 28)} "
        f"{rng.choice(['March', 'May', 'July', 'October'])} between {rng.randint(7, 12)}:00 and {rng.randint(13, 18)}:00. "
        "Please make sure the access route is clear, measure doorways and stairwells, and let us know of any parking "
        "restrictions. Our two-person team will bring the item to the room of your choice, unpack it and take the "
        "packaging away. If anything arrives damaged, note it on the delivery slip and send us photos within 48 hours. "
    )


def _long_question(rng: random.Random, catalog, relation: str, person: str) -> str:
    p, q = rng.choice(catalog.products), rng.choice(catalog.products)
    room = rng.choice(ROOMS)
    return (
        f"Okay, some background first. We moved to {rng.choice(CITIES)} in {rng.choice(['spring', 'June', 'the autumn'])} and "
        f"the {room} is still mostly empty: it is about {rng.randint(9, 30)} square metres with a big window facing "
        f"{rng.choice(['north', 'south', 'west'])}, and the floor is {rng.choice(catalog.materials)}. My {relation} {person} "
        f"works from there two days a week, so it has to be comfortable but not look like an office. I really like "
        f"{rng.choice(catalog.styles)} furniture and I'd prefer {rng.choice(catalog.materials)} or "
        f"{rng.choice(catalog.materials)}; I don't like {rng.choice(catalog.materials)} because it scratches too easily "
        f"and the kids are rough on everything. Colour-wise we are going for {rng.choice(catalog.colors)} with some "
        f"{rng.choice(catalog.colors)}. We already have the {p.name}, and I was looking at the {q.name} but I'm not sure "
        f"it fits next to it. Our budget is around ${rng.choice([800, 1200, 2000, 3500])} for the whole room. "
        f"Which {q.category}s would you recommend, and would they go with what we have? Also, can you deliver on a "
        f"Saturday, and do you take the old furniture away? "
    )


def _long_answer(rng: random.Random, catalog) -> str:
    parts = ["Thanks for all the detail, that helps a lot. Here are a few options that fit what you described. "]
    for _ in range(rng.randint(3, 5)):
        p = rng.choice(catalog.products)
        parts.append(
            f"The {p.name} from {p.brand} (${p.price:,.0f}) is a {', '.join(p.styles)} {p.category} in "
            f"{' and '.join(p.materials)}, {p.width_cm} cm wide, available in {', '.join(p.colors[:3])}. {p.description} "
        )
    parts.append(
        "All of these can be delivered on a Saturday for a small surcharge, and we take old furniture away for free "
        "when we deliver. If you'd like, I can put two of them side by side with your current pieces so you can compare "
        "the proportions, or reserve one in the showroom nearest to you so you can see the finish in daylight. "
    )
    return "".join(parts)


def _repeat_to(text_fn, target: int) -> str:
    out = ""
    while len(out) < target:
        out += text_fn()
    return out.strip()


def long_messages_for(rng: random.Random, catalog, n: int) -> list[tuple[str, str]]:
    """``n`` long (role, text) turns: the customer pastes and tells stories, the assistant answers at length."""
    name = rng.choice(NAMES)
    relation, person = rng.choice(PEOPLE)
    out: list[tuple[str, str]] = [
        (
            "user",
            f"Hi, my name is {name} and I love {rng.choice(catalog.styles)} furniture. "
            + _long_question(rng, catalog, relation, person),
        )
    ]
    while len(out) < n:
        if len(out) % 2 == 1:
            out.append(("assistant", _long_answer(rng, catalog)))
            continue
        kind = rng.random()
        if kind < 0.03:  # a whole catalogue section or a long thread pasted in: 10-16k characters
            target = rng.randint(10_000, 16_000)
            out.append(
                (
                    "user",
                    "I'm pasting everything I found so far, sorry it's long: "
                    + _repeat_to(lambda: _product_sheet(rng, catalog), target),
                )
            )
        elif kind < 0.35:
            sheet = _product_sheet(rng, catalog) + _product_sheet(rng, catalog)
            out.append(("user", f"What do you think of this one? {sheet} Would it work in our {rng.choice(ROOMS)}?"))
        elif kind < 0.5:
            out.append(
                (
                    "user",
                    "I got this e-mail, can you check it? "
                    + _delivery_mail(rng, catalog, name)
                    + _delivery_mail(rng, catalog, name),
                )
            )
        elif kind < 0.9:
            out.append(("user", _long_question(rng, catalog, relation, person)))
        else:
            out.append(("user", rng.choice(SMALL_TALK)))
    return out


class EmbedMeter:
    """Times and records every embedder call of this process (a measurement-only monkeypatch).

    Each call is labelled with the caller of ``aembed`` (``function:line``), through a
    context variable that ``asyncio.to_thread`` carries into the worker thread."""

    def __init__(self, embedder) -> None:
        import contextvars

        self.embedder = embedder
        self.calls: list[tuple[str, list[str], int, float]] = []  # (site, texts, batch_size, seconds)
        self.spans: list[tuple[float, float]] = []  # (start, end) of each call
        self._site: contextvars.ContextVar[str] = contextvars.ContextVar("embed_site", default="direct")
        self._embed, self._aembed = embedder.embed, embedder.aembed
        meter = self

        def embed(texts, *, batch_size: int = 32, query: bool = False):
            t0 = time.perf_counter()
            out = meter._embed(texts, batch_size=batch_size, query=query)
            t1 = time.perf_counter()
            meter.calls.append((meter._site.get(), list(texts), batch_size, t1 - t0))
            meter.spans.append((t0, t1))
            return out

        async def aembed(texts):
            caller = sys._getframe(1)
            if caller.f_code.co_name == "_embed_distinct" and caller.f_back is not None:
                caller = caller.f_back  # the pipeline's helper: label by the call site that used it
            token = meter._site.set(f"{caller.f_code.co_name}:{caller.f_lineno}")
            try:
                return await meter._aembed(texts)
            finally:
                meter._site.reset(token)

        embedder.embed, embedder.aembed = embed, aembed

    def restore(self) -> None:
        del self.embedder.embed, self.embedder.aembed  # the instance attributes: back to the class's methods

    def seconds(self) -> float:
        """Wall time during which the embedder was running: the union of the calls' spans
        (the worker prepares two batches side by side, so one call can wait for another's
        turn at the model; summing the calls would count that wait twice)."""
        total, end = 0.0, float("-inf")
        for t0, t1 in sorted(self.spans):
            if t1 > end:
                total += t1 - max(t0, end)
                end = t1
        return total

    def by_site(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for site, texts, _, seconds in self.calls:
            row = out.setdefault(site, {"calls": 0, "texts": 0, "seconds": 0.0})
            row["calls"] += 1
            row["texts"] += len(texts)
            row["seconds"] += seconds
        return {k: v | {"seconds": round(v["seconds"], 2)} for k, v in out.items()}

    def replay(self) -> tuple[float, float]:
        """The same calls again, alone, in the same order and batch sizes: (seconds, CPU
        seconds of this process, all its threads)."""
        t0, c0 = time.perf_counter(), time.process_time()
        for _, texts, batch_size, _ in self.calls:
            self._embed(texts, batch_size=batch_size)
        return time.perf_counter() - t0, time.process_time() - c0


def text_stats(texts: list[str]) -> dict:
    lengths = sorted(len(t) for t in texts)
    return {
        "mean_chars": round(sum(lengths) / len(lengths)),
        "p50_chars": lengths[len(lengths) // 2],
        "max_chars": lengths[-1],
        "over_10k_chars": sum(1 for n in lengths if n > 10_000),
    }


async def store_turns(rt, user: str, turns: list[tuple[str, str]], start: datetime, session_size: int) -> None:
    """Store ``(role, text)`` turns through the import path, a session of ``session_size``
    turns a day from ``start`` (queued for the worker, as an import is)."""
    from service.postgres import history

    async with rt.pool.acquire() as conn, conn.transaction():
        for s in range(0, len(turns), session_size):
            at = start + timedelta(days=s // session_size)
            sid = await history.ensure_session(conn, user, None, at=at)
            await history.add_messages(
                conn,
                user,
                sid,
                [
                    history.NewMessage(role, m, at + timedelta(minutes=i))
                    for i, (role, m) in enumerate(turns[s : s + session_size])
                ],
                summary_idle_s=0,
            )


async def store_population(rt, users: int, per_user: int, rng: random.Random, *, long: bool) -> tuple[list[str], float]:
    """Store ``users`` new customers' turns through the import path: (texts, seconds)."""
    start = datetime.now(UTC) - timedelta(days=30)
    texts: list[str] = []
    t0 = time.perf_counter()
    for u in range(users):
        user = f"ingest-{u}-{uuid.uuid4().hex[:6]}"
        if long:
            turns = long_messages_for(rng, rt.catalog, per_user)
            session_size = 20  # sessions of 20 turns, as in a chat: each gets its summary
        else:
            turns = [("user", m) for m in messages_for(rng, rt.catalog, per_user)]
            session_size = len(turns)
        texts += [t for _, t in turns]
        await store_turns(rt, user, turns, start, session_size)
    return texts, time.perf_counter() - t0


async def measured_drain(rt, settings, messages: int, *, profile: bool) -> tuple[float, dict, dict | None]:
    """Drain the queue with one in-process worker: (seconds, CPU per message by process,
    the statements' profile if asked)."""
    from bench.procstat import CpuMeter, describe, neo4j_group, postgres_group, self_group
    from bench.statements import StatementMeter
    from service.worker import Worker

    async with rt.pool.acquire() as conn:
        pg = await postgres_group(conn)
    neo4j = neo4j_group(settings.neo4j_uri)
    cpu_meter = CpuMeter({"worker": self_group("worker"), "postgres": pg, "neo4j": neo4j})
    statements = StatementMeter(neo4j) if profile else None
    if statements is not None:
        statements.install()
    before = cpu_meter.snapshot()
    t0 = time.perf_counter()
    try:
        await Worker(rt).drain(timeout=3 * 3600)
    finally:
        if statements is not None:
            statements.restore()
    drain_s = time.perf_counter() - t0
    cpu = cpu_meter.report(before, cpu_meter.snapshot(), messages)
    log(describe("drain", cpu, unit="message"))
    cpu = {k.replace("request", "message"): v for k, v in cpu.items()}
    report = statements.report(messages, int(statements.phases["prepare"][0])) if statements else None
    return drain_s, cpu, report


async def ingest(
    settings, users: int, per_user: int, seed: int, *, long: bool = False, profile: bool = False, warm_users: int = 0
) -> dict:
    from service.runtime import Runtime

    rt = await Runtime.open(settings, role="worker")
    try:
        rng = random.Random(seed)
        if warm_users:  # a warm server: Neo4j's plans and JIT, PostgreSQL's caches
            warm, _ = await store_population(rt, warm_users, per_user, random.Random(seed + 1000), long=long)
            log(f"ingest: warming up with {len(warm)} messages…")
            await measured_drain(rt, settings, len(warm), profile=False)
        texts, stored_s = await store_population(rt, users, per_user, rng, long=long)
        log(
            f"ingest: {len(texts)} messages stored in {stored_s:.1f} s ({json.dumps(text_stats(texts))}); draining the queue…"
        )
        embed_meter = EmbedMeter(rt.embedder)
        try:
            drain_s, cpu, statements = await measured_drain(rt, settings, len(texts), profile=profile)
        finally:
            embed_meter.restore()
        # the bound: the embedder alone, every call of the drain replayed as it was made;
        # best of two, since whatever else runs on a shared machine only ever slows it down
        replayed = [embed_meter.replay() for _ in range(2)]
        replays = [wall for wall, _ in replayed]
        replay_s = min(replays)
        replay_cpu_s = min(cpu for _, cpu in replayed)
        # the older bound: message texts alone, in batches of the worker's size
        t0 = time.perf_counter()
        for i in range(0, len(texts), rt.settings.worker_batch):
            rt.embedder.embed(texts[i : i + rt.settings.worker_batch])
        embed_s = time.perf_counter() - t0
        counts = await rt.pool.fetchrow(
            "SELECT (SELECT count(*) FROM long_term_memories) AS memories, (SELECT count(*) FROM conversation_summaries) AS summaries"
        )
        in_drain = embed_meter.seconds()
        return {
            "population": "long" if long else "short",
            "messages": len(texts),
            "texts": text_stats(texts),
            "worker_batch": rt.settings.worker_batch,
            "messages_per_s": round(len(texts) / drain_s, 1),
            "drain_s": round(drain_s, 1),
            "store_messages_per_s": round(len(texts) / stored_s, 1),
            "embed_bound_messages_per_s": round(len(texts) / replay_s, 1),
            "embed_replay_s": [round(x, 1) for x in replays],
            "embed_only_messages_per_s": round(len(texts) / embed_s, 1),
            "embed_cpu_ms_per_message": round(1000 * replay_cpu_s / len(texts), 2),
            "worker_cpu_outside_embed_share": round(
                max(0.0, 1 - 1000 * replay_cpu_s / len(texts) / cpu["cpu_ms_per_message"]["worker"]), 3
            ),
            "drain_embed_s": round(in_drain, 1),
            "drain_embed_share": round(in_drain / drain_s, 3),
            "embed_calls": embed_meter.by_site(),
            "cpu": cpu,
            "memories": counts["memories"],
            "summaries": counts["summaries"],
        } | ({"profile": statements} if statements else {})
    finally:
        await rt.close()


async def ab(
    settings, users: int, per_user: int, seed: int, *, rounds: int, warm_users: int, profile: bool, cold_plans: bool
) -> dict:
    """The write paths of ``bench.write_paths.ARMS`` side by side: after a warm-up drain with
    each, ``rounds`` rounds of one fresh population per arm, in an order that rotates every
    round (the stores grow as the run goes on). Medians per arm, and each arm over ``before``.
    ``cold_plans``: Neo4j's query caches are cleared before every measured drain, so each
    arm plans its statements again (as on a fresh server, or after the graph's statistics
    moved)."""
    from bench.write_paths import ARMS, Baseline, arm
    from service.runtime import Runtime

    baseline = Baseline()
    load_before = list(os.getloadavg())
    rt = await Runtime.open(settings, role="worker")
    runs: dict[str, list[dict]] = {name: [] for name in ARMS}
    try:
        rng = random.Random(seed)
        for name in ARMS:
            with arm(name, baseline):
                warm, _ = await store_population(rt, warm_users, per_user, rng, long=False)
                log(f"ab: warming up {name} with {len(warm)} messages…")
                await measured_drain(rt, settings, len(warm), profile=False)
        for r in range(rounds):
            order = ARMS[r % len(ARMS) :] + ARMS[: r % len(ARMS)]
            for name in order:
                texts, _ = await store_population(rt, users, per_user, rng, long=False)
                if cold_plans:
                    await _clear_query_caches(rt)
                with arm(name, baseline):
                    drain_s, cpu, statements = await measured_drain(rt, settings, len(texts), profile=profile)
                run = {"messages_per_s": round(len(texts) / drain_s, 1), "cpu": cpu} | (
                    {"profile": statements} if statements else {}
                )
                log(f"ab: round {r + 1} {name}: {run['messages_per_s']} messages/s")
                runs[name].append(run)
    finally:
        await rt.close()
    return _ab_summary(runs, baseline.rev, users * per_user) | {
        "load_average_before": load_before,
        "cold_plans": cold_plans,
    }


async def _clear_query_caches(rt) -> None:
    async with rt.graph.session(database=rt.settings.neo4j_database) as session:
        await (await session.run("CALL db.clearQueryCaches()")).consume()


def _ab_summary(runs: dict[str, list[dict]], rev: str, messages: int) -> dict:
    def median(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    arms = {}
    for name, got in runs.items():
        cpu = {
            k: median([g["cpu"]["cpu_ms_per_message"][k] for g in got if g["cpu"]["cpu_ms_per_message"][k] is not None])
            for k in got[0]["cpu"]["cpu_ms_per_message"]
        }
        arms[name] = {
            "messages_per_s": median([g["messages_per_s"] for g in got]),
            "messages_per_s_runs": [g["messages_per_s"] for g in got],
            "cpu_ms_per_message": cpu,
            "other_ms_per_message": median([g["cpu"]["other_ms_per_message"] for g in got]),
        } | ({"profile": got[-1]["profile"]} if "profile" in got[-1] else {})
    base = arms["before"]
    ratios = {
        name: {
            "messages_per_s": round(a["messages_per_s"] / base["messages_per_s"], 3),
            "cpu_ms_per_message": {
                k: round(v / base["cpu_ms_per_message"][k], 3) if base["cpu_ms_per_message"].get(k) else None
                for k, v in a["cpu_ms_per_message"].items()
            },
        }
        for name, a in arms.items()
    }
    return {
        "baseline": rev,
        "messages_per_population": messages,
        "rounds": len(runs["before"]),
        "load_average_after": list(os.getloadavg()),
        "arms": arms,
        "over_before": ratios,
    }


def chat_latency(settings, n: int) -> dict:
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": settings.database_url,
        "NEO4J_URI": settings.neo4j_uri,
        "NEO4J_USER": settings.neo4j_user,
        "NEO4J_PASSWORD": settings.neo4j_password.get_secret_value(),
        "LOFT_PORT": str(port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if client.get("/memory/status").status_code in (200, 503):
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("API did not start")
                time.sleep(0.3)
            rng = random.Random(7)
            phrases = [
                "Show me sectionals",
                "I love walnut",
                "What do you remember about me?",
                "Do you have oak dining tables?",
                "My sister Anna is visiting next month",
                "We need a rug for the living room",
            ]
            users = [f"chat-{i}-{uuid.uuid4().hex[:4]}" for i in range(20)]
            sessions: dict[str, str] = {}
            for _ in range(10):  # warm-up: model, pools, caches
                client.post("/v1/chat", json={"user_identifier": users[0], "message": rng.choice(phrases)})
            latencies = []
            for i in range(n):
                user = users[i % len(users)]
                body = {"user_identifier": user, "message": rng.choice(phrases), "session_id": sessions.get(user)}
                t0 = time.perf_counter()
                r = client.post("/v1/chat", json=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
                sessions[user] = r.json()["session_id"]
            status = []
            for _ in range(50):
                t0 = time.perf_counter()
                client.get("/memory/status")
                status.append((time.perf_counter() - t0) * 1000)
        p = percentiles(latencies)
        return {"requests": n, "p50_ms": p["p50"], "p95_ms": p["p95"], "status_p50_ms": percentiles(status)["p50"]}
    finally:
        proc.terminate()
        proc.wait(20)


async def main_async(args) -> dict:
    async with bench_stack() as settings:
        per_user = args.messages_per_user or (200 if args.long else 20)
        if args.ab_rounds:
            warm = args.warm_users or 10
            result = {
                "ab": await ab(
                    settings,
                    args.users,
                    per_user,
                    args.seed,
                    rounds=args.ab_rounds,
                    warm_users=warm,
                    profile=args.profile,
                    cold_plans=args.cold_plans,
                )
            }
            log(f"ab: {json.dumps(result['ab'])}")
            return result
        result = {
            "ingest": await ingest(
                settings,
                args.users,
                per_user,
                args.seed,
                long=args.long,
                profile=args.profile,
                warm_users=args.warm_users,
            )
        }
        log(f"ingest: {json.dumps(result['ingest'])}")
        if args.chats:
            result["chat"] = await asyncio.to_thread(chat_latency, settings, args.chats)
            log(f"chat: {json.dumps(result['chat'])}")
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--messages-per-user", type=int, default=None, help="default 20 (200 with --long)")
    parser.add_argument("--long", action="store_true", help="long messages: pasted text, long questions and answers")
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--warm-users", type=int, default=0, help="drain this many customers first, unmeasured")
    parser.add_argument(
        "--ab-rounds", type=int, default=0, help="drain the write paths before and after batching side by side"
    )
    parser.add_argument("--profile", action="store_true", help="time every statement of the drain (bench.statements)")
    parser.add_argument(
        "--cold-plans", action="store_true", help="with --ab-rounds: clear Neo4j's query caches before every drain"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
