"""Which failures mean "a store is away" (retry later, 503) rather than "this input or
this job is bad" (a clear error, or a counted attempt).

Only connection-level failures count: a refused or lost connection, a pool that cannot
hand out a connection in time, a server that is starting or shutting down. A data error,
a constraint violation or a Cypher error is never an outage, so a bad job cannot be
retried forever as if a store were down.
"""

from __future__ import annotations

import asyncpg
from neo4j.exceptions import ServiceUnavailable, SessionExpired

from service.errors import StoreUnavailable

OUTAGES: tuple[type[BaseException], ...] = (
    StoreUnavailable,
    # PostgreSQL: connection refused/lost, server starting or shutting down, admin shutdown
    ConnectionError,  # ConnectionRefusedError, ConnectionResetError, BrokenPipeError
    asyncpg.PostgresConnectionError,  # CannotConnectNowError, ConnectionFailureError, ...
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,  # "connection is closed", "pool is closing"
    # "cannot switch to state 12; another operation (2) is in progress": asyncpg's protocol
    # state machine, when the server ends a session in the middle of an operation (met here
    # on a PostgreSQL restart under load; MagicStack/asyncpg#1069). No query or value causes
    # it, so it is no more a bad job than InterfaceError's "connection is closed".
    asyncpg.InternalClientError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.CrashShutdownError,
    # Neo4j: no server reachable, or the session's connection was lost
    ServiceUnavailable,
    SessionExpired,
)


def is_outage(exc: BaseException) -> bool:
    """A store outage: one of :data:`OUTAGES`, or an ``OSError`` raised inside the
    PostgreSQL or Neo4j driver (e.g. the Unix socket of a restarting embedded
    PostgreSQL is missing: ``FileNotFoundError`` from asyncpg's connect)."""
    if isinstance(exc, OUTAGES):
        return True
    return isinstance(exc, OSError) and _raised_in_driver(exc)


def _raised_in_driver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename
        if "/asyncpg/" in path or "/neo4j/" in path:
            return True
        tb = tb.tb_next
    return False
