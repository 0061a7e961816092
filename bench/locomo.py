"""LoCoMo retrieval benchmark: evidence recall of /memory/context against turn-level baselines.

    python -m bench.locomo --data '../shared/bench/locomo/*.json' --json

For each conversation a fresh customer is created and every turn is ingested through the
service's own path (stored as a message at its session's date, queued, processed by the
worker: embeddings, extraction, graph, memories, summaries). Both speakers are stored as
role "user" with their names as ``speaker`` (they are two people, not a customer and the
assistant); a shared photo becomes " [shares a photo: <caption>]". The derived
annotations (observation, session_summary, event_summary) are never read.

Then, for every question of categories 1-4, the same code that serves
``/memory/context`` (``Retriever.context``) is asked at budgets 500, 1000 and 2000, and
evidence recall is scored from the provenance of the returned items (message ids mapped
back to the turns' ``dia_id``). In the same run, on the same turns and budgets: BM25 over
turns, dense all-MiniLM-L6-v2 over turns, and their reciprocal-rank fusion (k=60), each
packed greedily into the budget with the same line format. One JSON object on stdout, a
table on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import re
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from bench.common import bench_stack, log, percentiles

BUDGETS = (500, 1000, 2000)
CATEGORIES = ("1", "2", "3", "4")
DEFAULT_DATA = str(Path(__file__).resolve().parent.parent.parent / "shared" / "bench" / "locomo" / "*.json")
RRF_K = 60
CHARS_PER_TOKEN = 4


# -- data ------------------------------------------------------------------------------------


def parse_when(text: str) -> datetime:
    """'1:56 pm on 8 May, 2023' -> aware datetime (UTC)."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=timezone.utc)


def load_conversation(path: str) -> dict:
    data = json.load(open(path))
    conv = data.get("conversation", data)  # the original release nests it
    sessions = []
    n = 1
    while f"session_{n}" in conv:
        turns = conv[f"session_{n}"]
        when = conv.get(f"session_{n}_date_time")
        if turns and when:
            sessions.append((n, parse_when(when), turns))
        n += 1
    qa = data.get("qa", [])
    return {"name": Path(path).stem, "sessions": sessions, "qa": qa}


def turn_text(turn: dict) -> str:
    text = turn.get("text", "").strip()
    caption = turn.get("blip_caption")
    if caption:
        text = f"{text} [shares a photo: {caption}]".strip()
    return text


# -- baselines -------------------------------------------------------------------------------

_TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]


def pack(order: list[int], lines: list[str], budget: int) -> list[int]:
    limit = budget * CHARS_PER_TOKEN
    used, chosen = 0, []
    for i in order:
        cost = len(lines[i]) + 1
        if used + cost > limit:
            continue
        chosen.append(i)
        used += cost
    return chosen


def rrf(*rankings: list[int], k: int = RRF_K) -> list[int]:
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, i in enumerate(ranking):
            scores[i] = scores.get(i, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores, key=lambda i: -scores[i])


# -- the run ---------------------------------------------------------------------------------


async def run(paths: list[str], preset: str) -> dict:
    from rank_bm25 import BM25Okapi
    from tqdm import tqdm

    from service import history
    from service.retriever import PRESETS, Retriever
    from service.runtime import Runtime
    from service.worker import Worker

    conversations = [load_conversation(p) for p in paths]
    async with bench_stack() as settings:
        rt = await Runtime.open(settings)
        try:
            worker = Worker(rt)
            retriever = Retriever(rt)
            total_turns = sum(len(t) for c in conversations for _, _, t in c["sessions"])
            bar = tqdm(total=total_turns, desc="ingest", unit="msg", file=sys.stderr, mininterval=2.0)
            ingest_started = time.perf_counter()
            for conv in conversations:
                conv["user"] = f"locomo-{conv['name']}-{uuid.uuid4().hex[:6]}"
                for n, when, turns in conv["sessions"]:
                    session_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{conv['user']}:{n}")
                    async with rt.pool.acquire() as conn, conn.transaction():
                        await history.create_session(conn, conv["user"], session_id, at=when, channel="import")
                        await history.add_messages(
                            conn, conv["user"], session_id,
                            [
                                history.NewMessage("user", turn_text(t), when + timedelta(seconds=i), speaker=t["speaker"], external_id=t["dia_id"])
                                for i, t in enumerate(turns)
                            ],
                            summary_idle_s=0,
                        )
                    # the worker keeps up as turns arrive, the way a live import runs
                    await worker.drain()
                    bar.update(len(turns))
            await worker.drain()
            ingest_s = time.perf_counter() - ingest_started
            bar.close()

            config = PRESETS[preset]
            scores = {str(b): {name: {c: [] for c in CATEGORIES} for name in ("system", "bm25", "dense", "rrf")} for b in BUDGETS}
            context_ms: list[float] = []
            n_questions = 0
            qbar = tqdm(total=sum(1 for c in conversations for q in c["qa"] if str(q.get("category")) in CATEGORIES), desc="questions", unit="q", file=sys.stderr, mininterval=2.0)
            for conv in conversations:
                rows = await rt.pool.fetch(
                    "SELECT id, external_id, speaker, content, created_at FROM messages WHERE user_identifier = $1 ORDER BY id",
                    conv["user"],
                )
                dia_of = {r["id"]: r["external_id"] for r in rows}
                lines = [f"[{r['created_at'].day} {r['created_at']:%b %Y}] {r['speaker']}: {r['content']}" for r in rows]
                dia = [r["external_id"] for r in rows]
                bm25 = BM25Okapi([tokenize(f"{r['speaker']} {r['content']}") for r in rows])
                turn_vecs = rt.embedder.embed([f"{r['speaker']}: {r['content']}" for r in rows])
                valid = set(dia)
                for q in conv["qa"]:
                    category = str(q.get("category"))
                    if category not in CATEGORIES:
                        continue
                    gold = {e.strip() for ev in q.get("evidence", []) for e in re.split(r"[;,\s]+", ev) if e.strip()} & valid
                    qbar.update(1)
                    if not gold:
                        continue
                    n_questions += 1
                    question = q["question"]
                    qvec = rt.embedder.embed_query(question)
                    bm25_order = list(np.argsort(-bm25.get_scores(tokenize(question)), kind="stable"))
                    dense_order = list(np.argsort(-(turn_vecs @ qvec), kind="stable"))
                    fused = rrf(bm25_order, dense_order)
                    for budget in BUDGETS:
                        started = time.perf_counter()
                        ctx = await retriever.context(conv["user"], question, budget=budget, config=config, preset=preset, track_access=False)
                        context_ms.append((time.perf_counter() - started) * 1000)
                        got = {dia_of.get(m) for item in ctx.items for m in item["provenance"]["message_ids"]}
                        b = str(budget)
                        scores[b]["system"][category].append(len(gold & got) / len(gold))
                        for name, order in (("bm25", bm25_order), ("dense", dense_order), ("rrf", fused)):
                            chosen = {dia[i] for i in pack(order, lines, budget)}
                            scores[b][name][category].append(len(gold & chosen) / len(gold))
            qbar.close()
        finally:
            await rt.close()

    def summarise(per_cat: dict[str, list[float]]) -> dict:
        all_values = [v for vs in per_cat.values() for v in vs]
        return {
            "overall": round(float(np.mean(all_values)), 4) if all_values else 0.0,
            "by_category": {c: round(float(np.mean(v)), 4) if v else 0.0 for c, v in per_cat.items()},
        }

    return {
        "questions": n_questions,
        "budgets": {b: {name: summarise(per) for name, per in by_name.items()} for b, by_name in scores.items()},
        "context_ms": percentiles(context_ms),
        "ingest_messages_per_s": round(total_turns / ingest_s, 1),
    }


def table(result: dict) -> str:
    out = [f"LoCoMo evidence recall ({result['questions']} questions)", ""]
    out.append(f"{'budget':>6} {'retriever':<8} {'overall':>8} " + " ".join(f"{'cat' + c:>6}" for c in CATEGORIES))
    for budget, by_name in result["budgets"].items():
        for name, r in by_name.items():
            out.append(f"{budget:>6} {name:<8} {r['overall']:>8.3f} " + " ".join(f"{r['by_category'][c]:>6.3f}" for c in CATEGORIES))
    out.append("")
    out.append(f"context p50 {result['context_ms']['p50']} ms, p95 {result['context_ms']['p95']} ms; ingest {result['ingest_messages_per_s']} msg/s")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="glob of LoCoMo json files")
    parser.add_argument("--preset", default="default", help="retrieval preset")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    args = parser.parse_args()
    paths = sorted(glob.glob(args.data))
    if not paths:
        sys.exit(f"no LoCoMo files match {args.data!r}")
    result = asyncio.run(run(paths, args.preset))
    log(table(result))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
