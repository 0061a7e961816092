"""Context latency for customers whose history is long messages, beside chat-length ones.

    python -m bench.long_context --json [--users 2 --messages-per-user 240 --questions 60]
    python -m bench.long_context --json --store /tmp/lc-store --ab   # kept stores, an A/B in one run

Two populations are stored through the import path and drained by one in-process worker
(embeddings, passages, extraction, graph, memories, summaries), in the same stores:

* ``long``: ``bench.ingest``'s long-message customers (pasted product sheets and e-mails,
  some over 10,000 characters, long questions, long assistant answers; about 1,300
  characters on average), in sessions of 20 turns;
* ``short``: the same number of chat-length turns per customer (``bench.ingest``'s
  default population).

Then ``Retriever.context`` (the code behind ``GET /memory/context``, budget 1,000 tokens)
answers the same questions for both, interleaved (a long customer's question, then a
short customer's), sequentially in this process: p50/p95 wall milliseconds, the
process's CPU milliseconds per context, and the median of each stage
(``Context.timings``: embed, postgres, graph, expand, fuse, pack), so the difference says
where a long history costs. The graph cache is cleared before every question, and every
question is new to the query-embedding cache. ``long_over_short`` gives the ratios.

``--store DIR`` keeps the stack and the customers in DIR and leaves its servers running:
the next run with the same DIR, seed and sizes reuses them (a change to ingestion needs a
new DIR). ``--ab`` also asks every question with each candidate's text made when the
candidate is made (``eager_text``: the code before texts were made on first read),
alternating which goes first, and reports that under ``eager_text`` with
``long_lazy_over_eager``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import bench_stack, log, percentiles
from bench.ingest import long_messages_for, messages_for, store_turns

QUESTIONS = [
    "what did the delivery e-mail say about the {p}?",
    "which {p} did you recommend to me?",
    "what were the measurements of the {p}?",
    "did I ask about the price of the {p}?",
    "when is the {p} being delivered?",
    "what did I say about my {r} and the {p}?",
    "which material was the {p} made of?",
    "what did you compare the {p} with?",
]
RELATIONS = ["sister", "husband", "wife", "son", "daughter", "friend", "partner", "dog"]


async def populate(rt, users: int, per_user: int, long: bool, rng: random.Random, kept: str | None) -> list[str]:
    """Store the population's customers; with ``kept`` (a kept store's run: the seed), a
    customer already stored under its name is reused. The turns are drawn either way, so
    the questions that follow are the same."""
    start = datetime.now(UTC) - timedelta(days=60)
    made = []
    for u in range(users):
        name = "long" if long else "short"
        user = f"{name}-{u}-{kept}-{per_user}" if kept else f"{name}-{u}-{uuid.uuid4().hex[:6]}"
        turns = (
            long_messages_for(rng, rt.catalog, per_user)
            if long
            else [("user", m) for m in messages_for(rng, rt.catalog, per_user)]
        )
        made.append(user)
        if kept:
            stored = await rt.pool.fetchval("SELECT count(*) FROM messages WHERE user_identifier = $1", user)
            if stored == len(turns):
                continue
            if stored:
                raise SystemExit(f"{user} holds {stored} of {len(turns)} turns; delete the store")
        await store_turns(rt, user, turns, start, 20)
    return made


async def run(args: argparse.Namespace) -> dict:
    from service.retrieval import Retriever
    from service.runtime import Runtime
    from service.worker import Worker

    async with bench_stack(store=args.store) as settings:
        rt = await Runtime.open(settings)
        try:
            rng = random.Random(args.seed)
            t0 = time.perf_counter()
            kept = f"s{args.seed}" if args.store else None
            long_users = await populate(rt, args.users, args.messages_per_user, True, rng, kept)
            short_users = await populate(rt, args.users, args.messages_per_user, False, rng, kept)
            log(f"stored {2 * args.users * args.messages_per_user} messages; draining through the worker…")
            await Worker(rt).drain(timeout=3 * 3600)
            log(f"populations ready in {time.perf_counter() - t0:.0f} s")
            retriever = Retriever(rt)
            products = [p.name for p in rt.catalog.products]
            modes = ("lazy", "eager") if args.ab else ("lazy",)
            samples: dict[str, dict[str, dict[str, list[float]]]] = {m: {"long": {}, "short": {}} for m in modes}
            for i in range(args.questions):
                q = rng.choice(QUESTIONS).format(p=rng.choice(products), r=rng.choice(RELATIONS))
                for name, pool in (("long", long_users), ("short", short_users)):
                    for mode in modes if i % 2 == 0 else modes[::-1]:  # each first every other question
                        rt.graph_cache.clear()
                        question = f"{q} ({name} {i} {mode})"  # new to the query-embedding cache
                        with eager_text() if mode == "eager" else nullcontext():
                            await _measure(retriever, pool[i % len(pool)], question, samples[mode][name])
            out: dict = {"users_per_population": args.users, "messages_per_user": args.messages_per_user}
            out |= _summary(samples["lazy"])
            if args.ab:
                out["eager_text"] = _summary(samples["eager"])
                eager = out["eager_text"]["long"]
                out["long_lazy_over_eager"] = {
                    "p50": round(out["long"]["context"]["p50"] / eager["context"]["p50"], 2),
                    "cpu": round(out["long"]["cpu_ms"] / eager["cpu_ms"], 2),
                }
                log(f"eager text: {json.dumps(out['eager_text'])}")
                log(f"long, lazy over eager: {json.dumps(out['long_lazy_over_eager'])}")
            return out
        finally:
            await rt.close()


async def _measure(retriever, user: str, question: str, got: dict[str, list[float]]) -> None:
    c0, w0 = time.process_time(), time.perf_counter()
    ctx = await retriever.context(user, question, budget=1000, track_access=False)
    wall, cpu = (time.perf_counter() - w0) * 1000, (time.process_time() - c0) * 1000
    got.setdefault("wall_ms", []).append(wall)
    got.setdefault("cpu_ms", []).append(cpu)
    got.setdefault("items", []).append(len(ctx.items))
    for stage, ms in ctx.timings.items():
        got.setdefault(f"stage_{stage}_ms", []).append(ms)


def _summary(samples: dict[str, dict[str, list[float]]]) -> dict:
    """Each population's percentiles and medians, and the long one's over the short one's."""
    out: dict = {}
    for name, got in samples.items():
        out[name] = {"context": percentiles(got["wall_ms"])} | {
            k: round(statistics.median(v), 2) for k, v in got.items() if k != "wall_ms"
        }
        log(f"{name}: {json.dumps(out[name])}")
    out["long_over_short"] = {
        "p50": round(out["long"]["context"]["p50"] / out["short"]["context"]["p50"], 2),
        "p95": round(out["long"]["context"]["p95"] / out["short"]["context"]["p95"], 2),
        "cpu": round(out["long"]["cpu_ms"] / out["short"]["cpu_ms"], 2),
    }
    log(f"long over short: {json.dumps(out['long_over_short'])}")
    return out


@contextmanager
def eager_text() -> Iterator[None]:
    """The baseline of ``--ab``: every candidate's text made when the candidate is made (in
    the CPU pool, with the rows), as it was before a text was made on first read."""
    from service.retrieval.candidates import Text

    lazy = Text.__set__

    def eager(self: Text, obj: object, value: str | Callable[[], str]) -> None:
        lazy(self, obj, value if isinstance(value, str) else value())

    Text.__set__ = eager  # type: ignore[method-assign]
    try:
        yield
    finally:
        Text.__set__ = lazy  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2, help="customers per population")
    parser.add_argument("--messages-per-user", type=int, default=240)
    parser.add_argument("--questions", type=int, default=60, help="questions asked of each population")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--store",
        type=Path,
        help="keep the stack and the customers in this directory and reuse them on the next run "
        "(stop it with LOFT_DATA_DIR=<store> loftmem stop)",
    )
    parser.add_argument(
        "--ab",
        action="store_true",
        help="also measure every question with each candidate's text made when the candidate is "
        "(the baseline, alternating), under eager_text",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
