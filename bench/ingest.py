"""Ingestion throughput and chat latency.

    python -m bench.ingest --json [--users 50 --messages-per-user 20 --chats 200]

1. Ingestion: furniture-chat messages from templates (names, preferences, purchases,
   people, small talk) for many customers are stored through the import path, then one
   in-process worker drains the queue: batch embeddings, rule-based extraction,
   memories, graph writes and session summaries. Reported: messages per second from
   queue to all three tiers, next to the bound the embedder alone allows on the same
   texts (measured in the same process).
2. Chat: ``POST /v1/chat`` over HTTP against ``loftmem serve`` (no LLM, no worker
   running, so this is API time: store the turn, build context, offline reply, store it),
   sequential; p50/p95 in milliseconds.
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
from datetime import datetime, timedelta, timezone

import httpx

from bench.common import bench_stack, free_port, log, percentiles

NAMES = ["Sarah", "Tom", "Priya", "Marco", "Ines", "Dana", "Olu", "Lena", "Noor", "Theo", "Mei", "Jonas"]
PEOPLE = [("wife", "Emma"), ("husband", "Ravi"), ("sister", "Anna"), ("brother", "Luis"), ("dog", "Max"), ("cat", "Miso")]
SMALL_TALK = [
    "Thanks, that's really helpful!", "Can you tell me more about delivery times?", "We're redoing the living room this spring.",
    "The kids keep spilling juice on everything.", "What are your opening hours on Saturday?", "I work from home most days.",
]


def messages_for(rng: random.Random, catalog, n: int) -> list[str]:
    name = rng.choice(NAMES)
    relation, person = rng.choice(PEOPLE)
    out = [f"Hi, my name is {name} and I love {rng.choice(catalog.styles)} furniture."]
    while len(out) < n:
        product = rng.choice(catalog.products)
        out.append(rng.choice([
            f"Show me {product.category}s in {rng.choice(catalog.materials)}.",
            f"I bought the {product.name} last week.",
            f"I really don't like {rng.choice(catalog.materials)}, it scratches too easily.",
            f"My {relation} {person} is visiting next month, so we need a guest bed.",
            f"Actually I prefer {rng.choice(catalog.colors)} now.",
            f"Do you have the {product.name} in stock?",
            rng.choice(SMALL_TALK),
        ]))
    return out


async def ingest(settings, users: int, per_user: int, seed: int) -> dict:
    from service import history
    from service.runtime import Runtime
    from service.worker import Worker

    rt = await Runtime.open(settings)
    try:
        rng = random.Random(seed)
        start = datetime.now(timezone.utc) - timedelta(days=30)
        texts: list[str] = []
        t0 = time.perf_counter()
        for u in range(users):
            user = f"ingest-{u}-{uuid.uuid4().hex[:6]}"
            msgs = messages_for(rng, rt.catalog, per_user)
            texts += msgs
            async with rt.pool.acquire() as conn, conn.transaction():
                sid = await history.ensure_session(conn, user, None, at=start)
                await history.add_messages(
                    conn, user, sid,
                    [history.NewMessage("user", m, start + timedelta(minutes=i)) for i, m in enumerate(msgs)],
                    summary_idle_s=0,
                )
        stored_s = time.perf_counter() - t0
        worker = Worker(rt)
        log(f"ingest: {len(texts)} messages stored in {stored_s:.1f} s; draining the queue…")
        t0 = time.perf_counter()
        await worker.drain(timeout=3600)
        drain_s = time.perf_counter() - t0
        # the bound: the embedder alone on the same texts, same batch size, same process
        t0 = time.perf_counter()
        for i in range(0, len(texts), rt.settings.worker_batch):
            rt.embedder.embed(texts[i : i + rt.settings.worker_batch])
        embed_s = time.perf_counter() - t0
        counts = await rt.pool.fetchrow(
            "SELECT (SELECT count(*) FROM long_term_memories) AS memories, (SELECT count(*) FROM conversation_summaries) AS summaries"
        )
        return {
            "messages": len(texts),
            "messages_per_s": round(len(texts) / drain_s, 1),
            "store_messages_per_s": round(len(texts) / stored_s, 1),
            "embed_only_messages_per_s": round(len(texts) / embed_s, 1),
            "memories": counts["memories"],
            "summaries": counts["summaries"],
        }
    finally:
        await rt.close()


def chat_latency(settings, n: int) -> dict:
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": settings.database_url, "NEO4J_URI": settings.neo4j_uri, "NEO4J_USER": settings.neo4j_user,
        "NEO4J_PASSWORD": settings.neo4j_password.get_secret_value(), "LOFT_PORT": str(port),
    }
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
            phrases = ["Show me sectionals", "I love walnut", "What do you remember about me?", "Do you have oak dining tables?",
                       "My sister Anna is visiting next month", "We need a rug for the living room"]
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
        result = {"ingest": await ingest(settings, args.users, args.messages_per_user, args.seed)}
        log(f"ingest: {json.dumps(result['ingest'])}")
        result["chat"] = await asyncio.to_thread(chat_latency, settings, args.chats)
        log(f"chat: {json.dumps(result['chat'])}")
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--messages-per-user", type=int, default=20)
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
