"""Neo4j driver handling: one async driver per process, typed errors on failure."""

from __future__ import annotations

from neo4j import AsyncDriver, AsyncGraphDatabase
from neo4j.exceptions import AuthError, ServiceUnavailable

from service.errors import ConfigurationError, StoreUnavailable


async def create_driver(uri: str, user: str, password: str | None, *, verify: bool = True) -> AsyncDriver:
    driver = AsyncGraphDatabase.driver(
        uri,
        auth=(user, password or ""),
        max_connection_pool_size=50,
        connection_acquisition_timeout=5.0,
        connection_timeout=3.0,
        max_transaction_retry_time=5.0,
        # schema-less property warnings ("property does not exist yet") are noise here
        notifications_min_severity="OFF",
    )
    if verify:
        try:
            await driver.verify_connectivity()
        except AuthError as exc:
            await driver.close()
            raise ConfigurationError(
                f"Neo4j at {uri} rejected user '{user}': wrong NEO4J_USER/NEO4J_PASSWORD ({exc.message})"
            ) from exc
        except (ServiceUnavailable, OSError) as exc:
            await driver.close()
            raise StoreUnavailable("neo4j", f"cannot connect to Neo4j at {uri}: {exc}") from exc
    return driver
