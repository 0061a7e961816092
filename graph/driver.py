"""Neo4j driver handling: one async driver per process, with the pool and timeouts the
service relies on. Checking that the server answers (and explaining why not) is the
caller's: see ``service.stores``."""

from __future__ import annotations

from neo4j import AsyncDriver, AsyncGraphDatabase


def create_driver(uri: str, user: str, password: str | None) -> AsyncDriver:
    return AsyncGraphDatabase.driver(
        uri,
        auth=(user, password or ""),
        max_connection_pool_size=50,
        connection_acquisition_timeout=5.0,
        connection_timeout=3.0,
        max_transaction_retry_time=5.0,
        # schema-less property warnings ("property does not exist yet") are noise here
        notifications_min_severity="OFF",
    )
