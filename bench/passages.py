"""What the worker embeds for long messages, old scheme against new, side by side.

    python -m bench.passages --json [--users 2 --messages-per-user 40 --repeats 3]

The population of ``bench.ingest --long`` (same seed): the texts the worker embeds (each
message, plus its passages) under the old scheme (every passage of a message over 600
characters) and the new one (only the passages past the head the message's own
embedding covers, ``vectors.passages.for_message``), at passages of 400 and 800
characters. Embedded in one process, interleaved, in batches of 64 like the worker;
medians of ``--repeats`` runs, and each variant's time as a ratio of the old scheme at 400.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

OLD_LONG_MESSAGE_CHARS = 600


def run(args: argparse.Namespace) -> dict:
    from bench.ingest import long_messages_for
    from service.catalog import Catalog
    from vectors import passages
    from vectors.embedder import Embedder

    rng = random.Random(args.seed)
    catalog = Catalog.load()
    texts = [t for _ in range(args.users) for _, t in long_messages_for(rng, catalog, args.messages_per_user)]
    embedder = Embedder()
    variants: dict[str, list[str]] = {}
    stored: dict[str, int] = {}
    for size in (400, 800):
        old = [passages.split(t, size) if len(t) > OLD_LONG_MESSAGE_CHARS else [] for t in texts]
        new = [passages.for_message(t, embedder.covered(t), size) for t in texts]
        variants[f"old_{size}"] = texts + [t[p.start : p.end] for t, ps in zip(texts, old, strict=True) for p in ps]
        variants[f"new_{size}"] = texts + [
            t[p.start : p.end] for t, sp in zip(texts, new, strict=True) for p in sp.to_embed
        ]
        stored[f"old_{size}"] = sum(map(len, old))
        stored[f"new_{size}"] = sum(len(sp.passages) for sp in new)
    embedder.embed(texts[:8])  # warm up
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, batch in variants.items():
            t0 = time.perf_counter()
            for i in range(0, len(batch), 64):
                embedder.embed(batch[i : i + 64])
            times[name].append(time.perf_counter() - t0)
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "messages": len(texts),
        "passages_stored": stored,
        "passages_embedded_per_message": {k: round((len(v) - len(texts)) / len(texts), 2) for k, v in variants.items()},
        "texts_embedded": {k: len(v) for k, v in variants.items()},
        "median_s": {k: round(v, 2) for k, v in median.items()},
        "embed_bound_messages_per_s": {k: round(len(texts) / v, 1) for k, v in median.items()},
        "speedup_over_old_400": {k: round(median["old_400"] / v, 2) for k, v in median.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2)
    parser.add_argument("--messages-per-user", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
