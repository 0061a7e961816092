"""What a process holds while it runs: the settings, the PostgreSQL pool, the Neo4j driver,
the embedder, the catalog, (when configured) the LLM client, and the pool of threads that
runs CPU work off the event loop. The API puts one on ``app.state`` and hands it to routes
through ``Depends``; the worker owns its own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, ParamSpec, TypeVar

import asyncpg
from neo4j import AsyncDriver

from graph.cache import GraphCache
from graph.driver import GraphStore
from service.breaker import CircuitBreaker
from service.postgres.db import ReadReplica, create_pool, open_replica
from service.settings import Settings
from service.stores import open_graph
from service.text import SpeakerCache

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from service.catalog import Catalog
    from service.extraction import RuleExtractor
    from vectors.embedder import Embedder

log = logging.getLogger("loft.runtime")

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    graph_store: GraphStore  # Neo4j: the driver and the database every graph read and write uses
    embedder: Embedder
    catalog: Catalog
    llm: AsyncOpenAI | None = None
    erasure_key: bytes = b""
    # DATABASE_READ_URL: a streaming replica for the context's reads (API processes only)
    replica: ReadReplica | None = None
    # per-customer graph facts, valid only at the customer's current graph version
    graph_cache: GraphCache = field(default_factory=GraphCache)
    graph_breaker: CircuitBreaker = field(default_factory=lambda: CircuitBreaker("neo4j"))
    # per-customer matchers of the speakers' names (dropped with the customer's other caches)
    speaker_names: SpeakerCache = field(default_factory=SpeakerCache)
    _rules: RuleExtractor | None = None
    _cpu_pool: ThreadPoolExecutor | None = None
    _long_slots: asyncio.Semaphore | None = None
    _lag_watch: asyncio.Task[None] | None = None

    async def cpu(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in the process's CPU pool (``LOFT_CPU_WORKERS`` threads), for
        work whose cost grows with a text's length (reading a question, clipping candidates):
        the event loop keeps serving every other request meanwhile. Python holds the GIL for a
        whole regular-expression match, so the pool bounds such work and interleaves it with
        the loop; it does not make a slow pattern fast (the patterns are linear:
        ``tests/test_regex_linear.py``)."""
        if self._cpu_pool is None:
            self._cpu_pool = ThreadPoolExecutor(self.settings.cpu_workers, thread_name_prefix="loft-cpu")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._cpu_pool, functools.partial(fn, *args, **kwargs))

    async def cpu_long(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """:meth:`cpu` for work on a whole message (up to 32 KB: mining it takes a tenth of a
        second or more, matching it against the catalog tens of milliseconds). At most
        ``LOFT_CPU_WORKERS - 1`` of these hold a thread at once, so one is always free for the
        short work of other requests (a question of at most 4,000 characters, a context's
        candidates): a burst of long messages delays no one's question."""
        if self._long_slots is None:
            self._long_slots = asyncio.Semaphore(max(1, self.settings.cpu_workers - 1))
        async with self._long_slots:
            return await self.cpu(fn, *args, **kwargs)

    @property
    def graph(self) -> AsyncDriver:
        """The Neo4j driver alone, for callers that still pass the database themselves
        (prefer :attr:`graph_store`)."""
        return self.graph_store.driver

    @property
    def rules(self) -> RuleExtractor:
        """The deterministic extractor (compiled once per process)."""
        if self._rules is None:
            from service.extraction import RuleExtractor

            self._rules = RuleExtractor(self.catalog)
        return self._rules

    def forget_cached(self, user: str, *, graph_floor: int | None = None) -> dict[str, int]:
        """Drop a customer from this process's caches (erasure); returns what went.
        ``graph_floor``: the erasure's graph-version floor (see ``graph.cache``)."""
        return {
            "graph_facts": self.graph_cache.forget(user, floor=graph_floor),
            "query_embeddings": self.embedder.forget(user),
            "speaker_names": self.speaker_names.forget(user),
        }

    def clear_caches(self) -> None:
        self.graph_cache.clear()
        self.embedder.clear()
        self.speaker_names.clear()

    @classmethod
    async def open(cls, settings: Settings, *, pool_size: int = 10, role: Literal["api", "worker"] = "api") -> Runtime:
        """``role`` picks the embedder's default threads (see ``Settings.embedder_threads_for``)."""
        from service.catalog import Catalog
        from vectors.embedder import Threading, get_embedder

        if not (settings.database_url and settings.neo4j_uri):
            raise RuntimeError("resolve the stack before opening a runtime")
        pool = await create_pool(settings.database_url, max_size=pool_size)
        wait_s = settings.replica_wait_ms / 1000
        replica_dsn = settings.database_read_url if role == "api" else None
        replica = await open_replica(replica_dsn, max_size=pool_size, max_wait_s=wait_s)
        # not verified: the API must start (degraded) while Neo4j is down and recover
        # by itself when it returns
        graph = GraphStore(await open_graph(settings, verify=False), settings.neo4j_database)
        llm = None
        if settings.llm_enabled and settings.openai_api_key is not None:
            from openai import AsyncOpenAI

            llm = AsyncOpenAI(
                api_key=settings.openai_api_key.get_secret_value(),
                base_url=settings.openai_base_url,
                timeout=settings.llm_timeout_s,
                max_retries=1,
            )
        from service.keys import erasure_key
        from service.metrics import watch_embedder, watch_event_loop

        embedder = get_embedder(
            settings.embedder,
            settings.cache_dir,
            Threading(
                threads=settings.embedder_threads_for(role),
                spinning=settings.embedder_spinning,
                device=settings.embedder_device,
            ),
            query_batch=settings.embedder_query_batch,
            query_precision=settings.embedder_query_precision,
        )
        watch_embedder(embedder)
        rt = cls(
            settings,
            pool,
            graph,
            embedder,
            Catalog.load(),
            llm,
            erasure_key(settings),
            graph_cache=GraphCache(max_bytes=settings.graph_cache_mb * 2**20),
            replica=replica,
        )
        # the process's event-loop lag, for /metrics (the API) and the worker's metrics port
        rt._lag_watch = asyncio.create_task(watch_event_loop(settings.loop_lag_interval_s))
        rt.rules  # noqa: B018 (compiled now, not on the event loop under the first message)
        return rt

    async def close(self) -> None:
        if self._lag_watch is not None:
            self._lag_watch.cancel()
        if self._cpu_pool is not None:
            self._cpu_pool.shutdown(wait=False, cancel_futures=True)
        await self.graph_store.close()
        await self.pool.close()
        if self.replica is not None:
            await self.replica.pool.close()
        if self.llm is not None:
            await self.llm.close()
