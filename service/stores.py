"""Opening the stores a process needs, with errors that say what to fix.

PostgreSQL: an asyncpg pool (``service.postgres.db``) or one connection for migrations. Neo4j: the
driver (``graph.driver``), verified when the caller needs the server now (migrations,
the CLI) and not verified for the API, which must start while Neo4j is down and
recover by itself when it returns.

:func:`migrate_all` brings both stores to the current schema and loads the sample catalog
(idempotent; `loftmem migrate`, `loftmem up`).
"""

from __future__ import annotations

import asyncpg
from neo4j import AsyncDriver
from neo4j.exceptions import AuthError, ServiceUnavailable

from graph import catalog as graph_catalog
from graph.driver import create_driver
from service.errors import ConfigurationError, StoreUnavailable
from service.postgres import migrate
from service.postgres.db import redact_dsn
from service.settings import Settings
from vectors.pg import Conn


async def open_graph(settings: Settings, *, verify: bool) -> AsyncDriver:
    assert settings.neo4j_uri, "resolve the stack before opening the graph"
    password = settings.neo4j_password.get_secret_value() if settings.neo4j_password else None
    driver = create_driver(settings.neo4j_uri, settings.neo4j_user, password)
    if not verify:
        return driver
    try:
        await driver.verify_connectivity()
    except AuthError as exc:
        await driver.close()
        raise ConfigurationError(
            f"Neo4j at {settings.neo4j_uri} rejected user '{settings.neo4j_user}': "
            f"wrong NEO4J_USER/NEO4J_PASSWORD ({exc.message})"
        ) from exc
    except (ServiceUnavailable, OSError) as exc:
        await driver.close()
        raise StoreUnavailable("neo4j", f"cannot connect to Neo4j at {settings.neo4j_uri}: {exc}") from exc
    return driver


async def connect_postgres(dsn: str) -> Conn:
    """One connection (migrations, set-up), with a clear message when it cannot be had."""
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except asyncpg.InvalidPasswordError as exc:
        raise ConfigurationError(
            f"PostgreSQL at {redact_dsn(dsn)} rejected the credentials in DATABASE_URL: {exc}"
        ) from exc
    except asyncpg.InvalidCatalogNameError as exc:
        raise ConfigurationError(
            f"PostgreSQL at {redact_dsn(dsn)}: {exc}; create the database or fix DATABASE_URL"
        ) from exc
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise StoreUnavailable(
            "postgres",
            f"cannot reach PostgreSQL at {redact_dsn(dsn)} ({exc.__class__.__name__}: {exc}); check DATABASE_URL",
        ) from exc


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
