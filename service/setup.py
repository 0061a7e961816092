"""Bring the stores to the current schema and load the sample catalog (idempotent)."""

from __future__ import annotations

import logging

from neo4j import AsyncDriver

from graph import catalog as graph_catalog
from service import migrate
from service.settings import Settings
from service.stores import connect_postgres, open_graph

log = logging.getLogger("loft.setup")


async def migrate_all(settings: Settings, *, load_catalog: bool = True) -> dict[str, list[str]]:
    if not (settings.database_url and settings.neo4j_uri):
        raise RuntimeError("resolve the stack before migrating")
    conn = await connect_postgres(settings.database_url)
    try:
        pg = await migrate.migrate_postgres(conn)
    finally:
        await conn.close()
    driver = await open_graph(settings, verify=True)
    try:
        neo = await migrate.migrate_neo4j(driver, settings.neo4j_database)
        if load_catalog:
            await ensure_catalog(driver, settings.neo4j_database)
    finally:
        await driver.close()
    return {"postgres": pg, "neo4j": neo}


async def ensure_catalog(driver: AsyncDriver, database: str = "neo4j") -> bool:
    """Load the bundled sample catalog into Neo4j unless this exact version is there."""
    from service.catalog import Catalog

    catalog = Catalog.load()
    products = [p.model_dump() for p in catalog.products]
    categories = [c.model_dump() for c in catalog.category_info.values()]
    return await graph_catalog.ensure_catalog(driver, products, categories, catalog.vocabulary(), database=database)
