"""Neo4j driver handling: one async driver per process, with the pool and timeouts the
service relies on, and :class:`GraphStore`, the handle every graph read and write takes
(the driver and the database it works in). Checking that the server answers (and
explaining why not) is the caller's: see ``service.stores``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neo4j import READ_ACCESS, WRITE_ACCESS, AsyncDriver, AsyncGraphDatabase, AsyncSession


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


@dataclass(frozen=True)
class GraphStore:
    """The process's Neo4j: its driver and the database (``NEO4J_DATABASE``) every session
    opens, chosen once where the process starts (``Runtime``)."""

    driver: AsyncDriver
    database: str = "neo4j"

    def session(self, *, read: bool = False, **config: Any) -> AsyncSession:
        """A session on the store's database (``read``: routed and checked as a read)."""
        mode = READ_ACCESS if read else WRITE_ACCESS
        return self.driver.session(database=self.database, default_access_mode=mode, **config)

    async def close(self) -> None:
        await self.driver.close()
