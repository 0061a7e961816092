"""Which failures mean "a store is away" (retry later, 503) rather than "this input or
this job is bad" (a clear error, or a counted attempt).

Only connection-level failures count: a refused or lost connection, a pool that cannot
hand out a connection in time, a server that is starting or shutting down. A data error,
a constraint violation or a Cypher error is never an outage, so a bad job cannot be
retried forever as if a store were down.

Nor is a *slow statement*: one that ran past its time limit (asyncpg's
``command_timeout`` or ``timeout=``, which cancels it and raises ``TimeoutError``, or
PostgreSQL's own ``statement_timeout``: ``QueryCanceledError``) is about the data it
touched or the locks it waited for. The worker counts an attempt for it and isolates its
batch, once :func:`postgres_answers` shows the server itself still answers; the API
answers 504.
"""

from __future__ import annotations

import asyncio

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
PROBE_TIMEOUT_S = 5.0
PING = "SELECT 1"


def is_outage(exc: BaseException) -> bool:
    """A store outage: one of :data:`OUTAGES`, or an ``OSError`` raised inside the
    PostgreSQL or Neo4j driver (e.g. the Unix socket of a restarting embedded
    PostgreSQL is missing: ``FileNotFoundError`` from asyncpg's connect; or a connection
    or a pooled connection not handed out in time), but never a statement that ran past
    its time limit (:func:`is_statement_timeout`)."""
    if isinstance(exc, OUTAGES):
        return True
    return isinstance(exc, OSError) and _raised_in_driver(exc) and not is_statement_timeout(exc)


def is_statement_timeout(exc: BaseException) -> bool:
    """A PostgreSQL statement that ran past its time limit: asyncpg's query timeout (a
    ``TimeoutError`` raised where asyncpg's protocol waits for a statement's result, not
    where it connects or waits for a pooled connection), or PostgreSQL's
    ``statement_timeout`` (``QueryCanceledError``)."""
    if isinstance(exc, asyncpg.QueryCanceledError):
        return True
    if not isinstance(exc, TimeoutError):
        return False
    innermost = None
    tb = exc.__traceback__
    while tb is not None:
        innermost = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    # Cython names its frames by the module's relative path ("asyncpg/protocol/protocol.pyx")
    return innermost is not None and "asyncpg/protocol/" in innermost


async def postgres_answers(pool: asyncpg.Pool, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether PostgreSQL answers a trivial statement at once: tells a slow statement (it
    does) from a server that has stopped answering (a paused or unreachable server makes
    every statement time out)."""
    try:
        async with asyncio.timeout(timeout):
            await pool.fetchval(PING)
    except Exception:
        return False
    return True


def _raised_in_driver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename
        if "/asyncpg/" in path or "/neo4j/" in path:
            return True
        tb = tb.tb_next
    return False
