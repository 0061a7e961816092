"""The embedder's threading options side by side: wall time and CPU per embedding.

    python -m bench.embedder --json [--queries 300 --gap-ms 5 --repeats 3]

ONNX Runtime's intra-op pool busy-waits ("spins") after each run, waiting for the next
one. In an API process the next query embedding comes only after the request's SQL and
Cypher, so the spinning is pure CPU taken from PostgreSQL and Neo4j on the same cores.
This measures, for each configuration (intra-op threads × spinning), in one process and
interleaved round by round:

* ``query``: one query embedding at a time (distinct questions, so no cache), each
  followed by ``--gap-ms`` of idle time as a request's store round trips would be; wall
  milliseconds per embedding (p50) and the process's CPU milliseconds per embedding,
  the gap included (that is where spinning burns).
* ``batch``: the worker's shape, ``LOFT_WORKER_BATCH`` (64) chat turns of mixed length
  per call; texts per second and CPU milliseconds per text.

Medians over ``--repeats`` rounds; ratios are to the default configuration (2 threads,
spinning), which was the behaviour before the threading options existed.

``query_batches``: with the service's setting (2 threads, no spinning), short distinct
queries embedded ``k`` per model call for each of ``--query-batch-sizes`` (interleaved
round by round): CPU and wall milliseconds per query and the CPU ratio to one per call.
This is what the API's natural batching of concurrent query embeddings buys
(``vectors.embedder._QueryBatcher``).

``query_precision``: the service's setting again, one query at a time (as ``query``),
through the int8 query model against the fp32 one (``LOFT_EMBEDDER_QUERY_PRECISION``),
interleaved round by round: CPU and wall per query, the ratio, and the cosine of each
query's int8 vector to its fp32 one (min, p5, median).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import numpy as np

from bench.common import log, percentiles
from vectors.embedder import Embedder, Threading

CONFIGS = {
    "2 threads, spinning": Threading(threads=2, spinning=True),
    "2 threads, no spinning": Threading(threads=2, spinning=False),
    "1 thread, spinning": Threading(threads=1, spinning=True),
    "1 thread, no spinning": Threading(threads=1, spinning=False),
}
BASELINE = "2 threads, spinning"

WORDS = [
    "sofa",
    "oak",
    "walnut",
    "velvet",
    "table",
    "chair",
    "delivery",
    "tuesday",
    "daughter",
    "office",
    "desk",
    "grey",
    "linen",
    "lamp",
    "rug",
    "wool",
    "kitchen",
    "island",
    "bed",
    "frame",
    "storage",
    "assembly",
    "warranty",
    "price",
    "discount",
    "sectional",
    "modular",
    "corner",
    "armchair",
]


def texts(rng: random.Random, n: int, lo: int, hi: int) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) + f" #{i}" for i in range(n)]


def query_round(e: Embedder, qs: list[str], gap_s: float, *, query: bool = False) -> dict[str, float]:
    walls = []
    cpu0 = time.process_time()
    for q in qs:
        t0 = time.perf_counter()
        e.embed([q], query=query)
        walls.append((time.perf_counter() - t0) * 1000)
        time.sleep(gap_s)
    cpu = (time.process_time() - cpu0) * 1000 / len(qs)
    return {"wall_p50_ms": percentiles(walls)["p50"], "cpu_ms": round(cpu, 2)}


def batch_round(e: Embedder, batches: list[list[str]]) -> dict[str, float]:
    n = sum(len(b) for b in batches)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for b in batches:
        e.embed(b, batch_size=32)
    wall = time.perf_counter() - t0
    return {"texts_per_s": round(n / wall, 1), "cpu_ms_per_text": round((time.process_time() - cpu0) * 1000 / n, 2)}


def query_batch_round(e: Embedder, qs: list[str], k: int) -> dict[str, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    for start in range(0, len(qs), k):
        e.embed(qs[start : start + k], batch_size=k)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"cpu_ms_per_query": round(cpu * 1000 / len(qs), 2), "wall_ms_per_query": round(wall * 1000 / len(qs), 2)}


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in rounds), 2) for k in rounds[0]}


def run(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    embedders = {name: Embedder(backend="onnx", threads=t) for name, t in CONFIGS.items()}
    for name, e in embedders.items():
        if e.backend != "onnx":
            raise SystemExit(f"{name}: the ONNX backend fell back to torch")
        e.embed(texts(rng, 8, 5, 20))  # first inference out of the way
    query: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    batch: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    for r in range(args.repeats):
        for name, e in embedders.items():
            query[name].append(query_round(e, texts(rng, args.queries, 4, 16), args.gap_ms / 1000))
            batch[name].append(batch_round(e, [texts(rng, 64, 5, 120) for _ in range(args.batches)]))
            log(f"round {r + 1}: {name}: query {query[name][-1]}, batch {batch[name][-1]}")
    out: dict = {"queries_per_round": args.queries, "gap_ms": args.gap_ms, "repeats": args.repeats, "configs": {}}
    base_q, base_b = median_of(query[BASELINE]), median_of(batch[BASELINE])
    for name in CONFIGS:
        q, b = median_of(query[name]), median_of(batch[name])
        out["configs"][name] = {
            "query": q,
            "batch": b,
            "query_cpu_ratio": round(q["cpu_ms"] / base_q["cpu_ms"], 2),
            "query_wall_ratio": round(q["wall_p50_ms"] / base_q["wall_p50_ms"], 2),
            "batch_rate_ratio": round(b["texts_per_s"] / base_b["texts_per_s"], 2),
        }
        log(f"{name:24s} {json.dumps(out['configs'][name])}")
    sizes = [int(x) for x in args.query_batch_sizes.split(",") if x.strip()]
    service = embedders["2 threads, no spinning"]
    per_size: dict[int, list[dict[str, float]]] = {k: [] for k in sizes}
    for r in range(args.repeats):
        for k in sizes:
            per_size[k].append(query_batch_round(service, texts(rng, args.queries, 4, 16), k))
        log(f"round {r + 1}: query batches {json.dumps({k: v[-1] for k, v in per_size.items()})}")
    one = median_of(per_size[sizes[0]])["cpu_ms_per_query"]
    out["query_batches"] = {
        str(k): median_of(v) | {"cpu_ratio": round(median_of(v)["cpu_ms_per_query"] / one, 2)}
        for k, v in per_size.items()
    }
    log(f"query batches (2 threads, no spinning): {json.dumps(out['query_batches'])}")
    out["query_precision"] = precision(rng, args, service)
    log(f"query precision: {json.dumps(out['query_precision'])}")
    return out


def precision(rng: random.Random, args: argparse.Namespace, fp32: Embedder) -> dict:
    """One query at a time through the int8 query model against the fp32 one."""
    int8 = Embedder(backend="onnx", threads=CONFIGS["2 threads, no spinning"], query_precision="int8")
    if int8.query_precision != "int8":
        raise SystemExit("the int8 query model is unavailable (see the logged warning)")
    rounds: dict[str, list[dict[str, float]]] = {"fp32": [], "int8": []}
    for _ in range(args.repeats):
        qs = texts(rng, args.queries, 4, 16)
        rounds["fp32"].append(query_round(fp32, qs, args.gap_ms / 1000))  # fp32: the fp32 model either way
        rounds["int8"].append(query_round(int8, qs, args.gap_ms / 1000, query=True))
    qs = texts(rng, args.queries, 4, 16)
    cos = np.sum(int8.embed(qs, query=True) * fp32.embed(qs), axis=1)
    medians = {name: median_of(r) for name, r in rounds.items()}
    return medians | {
        "int8_over_fp32_cpu": round(medians["int8"]["cpu_ms"] / medians["fp32"]["cpu_ms"], 2),
        "int8_over_fp32_wall": round(medians["int8"]["wall_p50_ms"] / medians["fp32"]["wall_p50_ms"], 2),
        "cosine_to_fp32": {
            "min": round(float(cos.min()), 4),
            "p5": round(float(np.percentile(cos, 5)), 4),
            "median": round(float(np.median(cos)), 4),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=300, help="query embeddings per configuration and round")
    parser.add_argument("--gap-ms", type=float, default=5.0, help="idle time after each query embedding")
    parser.add_argument("--batches", type=int, default=3, help="batches of 64 texts per configuration and round")
    parser.add_argument(
        "--query-batch-sizes", default="1,2,4,8", help="queries per model call to compare (the first is the baseline)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
