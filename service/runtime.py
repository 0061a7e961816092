"""What a process holds while it runs: the settings, the PostgreSQL pool, the Neo4j driver,
the embedder, the catalog and (when configured) the LLM client. The API puts one on
``app.state`` and hands it to routes through ``Depends``; the worker owns its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import asyncpg
from neo4j import AsyncDriver

from graph.cache import GraphCache
from service.breaker import CircuitBreaker
from service.db import create_pool
from service.settings import Settings
from service.stores import open_graph

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from service.catalog import Catalog
    from service.extraction import RuleExtractor
    from vectors.embedder import Embedder

log = logging.getLogger("loft.runtime")


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    graph: AsyncDriver
    embedder: Embedder
    catalog: Catalog
    llm: AsyncOpenAI | None = None
    erasure_key: bytes = b""
    # per-customer graph facts, valid only at the customer's current graph version
    graph_cache: GraphCache = field(default_factory=GraphCache)
    graph_breaker: CircuitBreaker = field(default_factory=lambda: CircuitBreaker("neo4j"))
    _rules: RuleExtractor | None = None

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
        }

    def clear_caches(self) -> None:
        self.graph_cache.clear()
        self.embedder.clear()

    @classmethod
    async def open(cls, settings: Settings, *, pool_size: int = 10, role: Literal["api", "worker"] = "api") -> Runtime:
        """``role`` picks the embedder's default threads (see ``Settings.embedder_threads_for``)."""
        from service.catalog import Catalog
        from vectors.embedder import Threading, get_embedder

        if not (settings.database_url and settings.neo4j_uri):
            raise RuntimeError("resolve the stack before opening a runtime")
        pool = await create_pool(settings.database_url, max_size=pool_size)
        # not verified: the API must start (degraded) while Neo4j is down and recover
        # by itself when it returns
        graph = await open_graph(settings, verify=False)
        from graph import reads as graph_reads

        graph_reads.DATABASE = settings.neo4j_database
        llm = None
        if settings.llm_enabled and settings.openai_api_key is not None:
            from openai import AsyncOpenAI

            llm = AsyncOpenAI(
                api_key=settings.openai_api_key.get_secret_value(),
                base_url=settings.openai_base_url,
                timeout=settings.llm_timeout_s,
                max_retries=1,
            )
        from service.erasure import erasure_key
        from service.metrics import watch_embedder

        embedder = get_embedder(
            settings.embedder,
            settings.cache_dir,
            Threading(
                threads=settings.embedder_threads_for(role),
                spinning=settings.embedder_spinning,
                device=settings.embedder_device,
            ),
            query_batch=settings.embedder_query_batch,
        )
        watch_embedder(embedder)
        return cls(
            settings,
            pool,
            graph,
            embedder,
            Catalog.load(),
            llm,
            erasure_key(settings),
            graph_cache=GraphCache(max_bytes=settings.graph_cache_mb * 2**20),
        )

    async def close(self) -> None:
        await self.graph.close()
        await self.pool.close()
        if self.llm is not None:
            await self.llm.close()
