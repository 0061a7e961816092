"""PostgreSQL connections: one asyncpg pool per process, pgvector codecs registered."""

from __future__ import annotations

import asyncpg
from pgvector.asyncpg import register_vector

from service.errors import StoreUnavailable

# no transaction may sit idle holding locks for long (a hung process must not stall an
# erasure or other writers): the server ends it
IDLE_IN_TRANSACTION = "120s"
# asyncpg cancels a statement that runs longer and raises TimeoutError: a slow statement,
# not an outage (service.outages.is_statement_timeout): a counted attempt in the worker,
# 504 from the API
STATEMENT_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0


async def _init_connection(conn: asyncpg.Connection) -> None:
    await register_vector(conn)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a released connection needs beyond asyncpg's own clean-up (which rolls back an
    open transaction and drops listeners): nothing. By default asyncpg also sends
    ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every release, a
    round trip that was about 4 % of an API process's CPU (2-3 releases per context).
    Pooled connections here never hold session state: settings are ``SET LOCAL``,
    advisory locks are transaction-scoped (the migration lock is unlocked explicitly),
    cursors live in transactions, and LISTEN has its own connection (``ErasureListener``)."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_keep_session,
            server_settings={"idle_in_transaction_session_timeout": IDLE_IN_TRANSACTION},
            command_timeout=STATEMENT_TIMEOUT_S,
            timeout=CONNECT_TIMEOUT_S,
            # statement cache is per connection; keep it (all our statements are constants)
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise StoreUnavailable("postgres", f"cannot connect to PostgreSQL at {redact_dsn(dsn)}: {exc}") from exc


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)
