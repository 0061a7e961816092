"""Context latency for a customer with a very long history, with the search window and without.

    python -m bench.large_customer --json [--messages 50000 --questions 40]

One customer gets ``--messages`` chat-length turns (``bench.ingest.messages_for``; sessions of
20 turns, one session a day ending today) and a second customer ``--small`` turns, both
stored through the import path's own functions with real embeddings (each distinct text
embedded once) and their BM25 document counts, as the worker leaves them; no worker runs
(the context reads the turns, which is what grows without bound).

Then ``Retriever.context`` (the code behind ``GET /memory/context``, budget 1,000 tokens)
answers the same questions, interleaved in this process: the large customer with the search
window (``LOFT_SEARCH_WINDOW``, the default), the large customer with a window larger than
the history (every turn searched: the statement as it was before the window), and the small
customer (whose history fits the window either way). Wall p50/p95 milliseconds, the
process's CPU per context, and the PostgreSQL stage's median (``Context.timings``); ratios
in ``ratios``. The graph cache is cleared before every question, and every question is new
to the query-embedding cache.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from bench.common import bench_stack, log, percentiles
from bench.ingest import messages_for
from bench.long_context import QUESTIONS, RELATIONS

UNBOUNDED = 10**9
SESSION = 20


async def populate(rt, user: str, n: int, rng: random.Random) -> None:
    """``n`` turns for ``user``, embedded, as the worker would leave them (no jobs run)."""
    from service.postgres import history

    texts = messages_for(rng, rt.catalog, n)
    distinct = sorted(set(texts))
    vectors = {}
    for i in range(0, len(distinct), 256):
        chunk = distinct[i : i + 256]
        vectors |= dict(zip(chunk, await rt.embedder.aembed(chunk), strict=True))
    start = datetime.now(UTC) - timedelta(days=n // SESSION + 1)
    for s in range(0, n, SESSION * 50):  # one transaction per 50 sessions
        async with rt.pool.acquire() as conn, conn.transaction():
            stored = []
            for k in range(s, min(n, s + SESSION * 50), SESSION):
                at = start + timedelta(days=k // SESSION)
                sid = await history.ensure_session(conn, user, None, at=at)
                turns = [
                    history.NewMessage("user" if i % 2 == 0 else "assistant", t, at + timedelta(minutes=i))
                    for i, t in enumerate(texts[k : k + SESSION])
                ]
                rows = await history.add_messages(conn, user, sid, turns, summary_idle_s=3600)
                stored += [(r.id, vectors[t.content]) for r, t in zip(rows, turns, strict=True)]
            await history.store_embeddings(conn, stored)
        log(f"{user}: {min(n, s + SESSION * 50)} of {n} turns")


async def run(args: argparse.Namespace) -> dict:
    from service.retrieval import Retriever
    from service.runtime import Runtime

    async with bench_stack() as settings:
        rt = await Runtime.open(settings)
        try:
            rng = random.Random(args.seed)
            large, small = f"large-{uuid.uuid4().hex[:6]}", f"small-{uuid.uuid4().hex[:6]}"
            t0 = time.perf_counter()
            await populate(rt, large, args.messages, rng)
            await populate(rt, small, args.small, rng)
            log(f"stored in {time.perf_counter() - t0:.0f} s")
            window = rt.settings.search_window
            retriever = Retriever(rt)
            products = [p.name for p in rt.catalog.products]
            runs = {"large_windowed": (large, window), "large_unbounded": (large, UNBOUNDED), "small": (small, window)}
            samples: dict[str, dict[str, list[float]]] = {name: {} for name in runs}
            for i in range(args.questions + 2):  # the first two warm the caches and plans: not counted
                q = rng.choice(QUESTIONS).format(p=rng.choice(products), r=rng.choice(RELATIONS))
                for name, (user, size) in runs.items():
                    rt.settings = rt.settings.model_copy(update={"search_window": size})
                    rt.graph_cache.clear()
                    question = f"{q} ({name} {i})"  # new to the query-embedding cache
                    c0, w0 = time.process_time(), time.perf_counter()
                    ctx = await retriever.context(user, question, budget=1000, track_access=False)
                    wall, cpu = (time.perf_counter() - w0) * 1000, (time.process_time() - c0) * 1000
                    if i < 2:
                        continue
                    got = samples[name]
                    got.setdefault("wall_ms", []).append(wall)
                    got.setdefault("cpu_ms", []).append(cpu)
                    got.setdefault("items", []).append(len(ctx.items))
                    got.setdefault("stage_postgres_ms", []).append(ctx.timings.get("postgres", 0.0))
            out: dict = {"messages": args.messages, "small_messages": args.small, "window": window}
            for name, got in samples.items():
                out[name] = {"context": percentiles(got["wall_ms"])} | {
                    k: round(statistics.median(v), 2) for k, v in got.items() if k != "wall_ms"
                }
                log(f"{name}: {json.dumps(out[name])}")
            w, u, s = out["large_windowed"], out["large_unbounded"], out["small"]
            out["ratios"] = {
                "unbounded_over_windowed_p50": round(u["context"]["p50"] / w["context"]["p50"], 2),
                "unbounded_over_windowed_postgres": round(u["stage_postgres_ms"] / w["stage_postgres_ms"], 2),
                "windowed_over_small_p50": round(w["context"]["p50"] / s["context"]["p50"], 2),
            }
            log(f"ratios: {json.dumps(out['ratios'])}")
            return out
        finally:
            await rt.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000, help="turns of the large customer")
    parser.add_argument("--small", type=int, default=500, help="turns of the small customer")
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
