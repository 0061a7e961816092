"""What a process holds while it runs: the settings, the PostgreSQL pool, the Neo4j driver,
the embedder, the catalog and (when configured) the LLM client. The API puts one on
``app.state`` and hands it to routes through ``Depends``; the worker owns its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from neo4j import AsyncDriver

from graph.driver import create_driver
from service.db import create_pool
from service.settings import Settings

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from service.catalog import Catalog
    from vectors.embedder import Embedder

log = logging.getLogger("loft.runtime")


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    graph: AsyncDriver
    embedder: "Embedder"
    catalog: "Catalog"
    llm: "AsyncOpenAI | None" = None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    async def open(cls, settings: Settings, *, pool_size: int = 10) -> "Runtime":
        from service.catalog import Catalog
        from vectors.embedder import get_embedder

        assert settings.database_url and settings.neo4j_uri, "resolve the stack before opening a runtime"
        pool = await create_pool(settings.database_url, max_size=pool_size)
        # not verified: the API must start (degraded) while Neo4j is down and recover
        # by itself when it returns
        graph = await create_driver(
            settings.neo4j_uri,
            settings.neo4j_user,
            settings.neo4j_password.get_secret_value() if settings.neo4j_password else None,
            verify=False,
        )
        from graph import reads as graph_reads

        graph_reads.DATABASE = settings.neo4j_database
        llm = None
        if settings.llm_enabled:
            from openai import AsyncOpenAI

            llm = AsyncOpenAI(
                api_key=settings.openai_api_key.get_secret_value(),
                base_url=settings.openai_base_url,
                timeout=settings.llm_timeout_s,
                max_retries=1,
            )
        return cls(settings, pool, graph, get_embedder(), Catalog.load(), llm)

    async def close(self) -> None:
        await self.graph.close()
        await self.pool.close()
        if self.llm is not None:
            await self.llm.close()
