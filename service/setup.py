"""Bring the stores to the current schema and load the sample catalog (idempotent)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from graph import writes as graph_writes
from graph.driver import create_driver
from service import migrate
from service.db import redact_dsn
from service.errors import ConfigurationError, StoreUnavailable
from service.settings import Settings

log = logging.getLogger("loft.setup")


async def connect_postgres(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except asyncpg.InvalidPasswordError as exc:
        raise ConfigurationError(f"PostgreSQL at {redact_dsn(dsn)} rejected the credentials in DATABASE_URL: {exc}") from exc
    except asyncpg.InvalidCatalogNameError as exc:
        raise ConfigurationError(f"PostgreSQL at {redact_dsn(dsn)}: {exc}; create the database or fix DATABASE_URL") from exc
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        raise StoreUnavailable(
            "postgres", f"cannot reach PostgreSQL at {redact_dsn(dsn)} ({exc.__class__.__name__}: {exc}); check DATABASE_URL"
        ) from exc


async def migrate_all(settings: Settings, *, load_catalog: bool = True) -> dict[str, list[str]]:
    assert settings.database_url and settings.neo4j_uri
    conn = await connect_postgres(settings.database_url)
    try:
        pg = await migrate.migrate_postgres(conn)
    finally:
        await conn.close()
    driver = await create_driver(
        settings.neo4j_uri,
        settings.neo4j_user,
        settings.neo4j_password.get_secret_value() if settings.neo4j_password else None,
    )
    try:
        neo = await migrate.migrate_neo4j(driver, settings.neo4j_database)
        if load_catalog:
            await ensure_catalog(driver, settings.neo4j_database)
    finally:
        await driver.close()
    return {"postgres": pg, "neo4j": neo}


async def ensure_catalog(driver, database: str = "neo4j") -> bool:
    """Load the sample catalog into Neo4j unless this exact version is already there."""
    from service.catalog import Catalog

    catalog = Catalog.load()
    products = [p.model_dump() for p in catalog.products]
    categories = [c.model_dump() for c in catalog.category_info.values()]
    vocabulary = catalog.vocabulary()
    digest = graph_writes.catalog_hash(products, categories, vocabulary)
    records, _, _ = await driver.execute_query(graph_writes.CATALOG_VERSION, database_=database)
    if records and records[0]["hash"] == digest:
        return False
    await driver.execute_query(graph_writes.LOAD_CATEGORIES, categories=categories, database_=database)
    for start in range(0, len(products), 200):
        await driver.execute_query(graph_writes.LOAD_CATALOG, products=products[start : start + 200], database_=database)
    for label, names in vocabulary.items():
        await driver.execute_query(graph_writes.LOAD_VOCABULARY[label], names=names, database_=database)
    await driver.execute_query(graph_writes.SET_CATALOG_VERSION, hash=digest, count=len(products), database_=database)
    log.info("loaded the sample catalog into Neo4j: %d products", len(products))
    return True
