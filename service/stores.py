"""Opening the stores a process needs, with errors that say what to fix.

PostgreSQL: an asyncpg pool (``service.db``) or one connection for migrations. Neo4j: the
driver (``graph.driver``), verified when the caller needs the server now (migrations,
the CLI) and not verified for the API, which must start while Neo4j is down and
recover by itself when it returns.
"""

from __future__ import annotations

import asyncpg
from neo4j import AsyncDriver
from neo4j.exceptions import AuthError, ServiceUnavailable

from graph.driver import create_driver
from service.db import redact_dsn
from service.errors import ConfigurationError, StoreUnavailable
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
