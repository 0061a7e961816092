"""PostgreSQL connections: one asyncpg pool per process, pgvector codecs registered, and
(``DATABASE_READ_URL``) a second pool on a streaming replica for reads that may leave the
primary (:class:`ReadReplica`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
from pgvector.asyncpg import register_vector

from service.errors import StoreUnavailable

log = logging.getLogger("loft.postgres")

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


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, on_connect: Callable[[], None] | None = None
) -> asyncpg.Pool:
    """``on_connect``: called whenever the pool opens a connection."""

    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection(conn)
        if on_connect is not None:
            on_connect()

    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=init,
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


# -- a streaming replica for reads ---------------------------------------------------------

# WAL positions as byte offsets (a bigint compares in Python; pg_lsn text does not)
PRIMARY_LSN = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
# NULL on a server that is not in recovery: DATABASE_READ_URL then names no replica
REPLAYED_LSN = "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint"
# seconds since the last transaction replayed, 0 once everything received is replayed (an
# idle primary sends nothing, and the replica is then not behind however old that is)
REPLAY_AGE = """
SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END
"""
REPLAY_POLL_S = 0.005
# a replica that does not answer this fast is skipped for the request (the primary serves it)
REPLICA_PROBE_TIMEOUT_S = 1.0
# …and not asked again for this long
REPLICA_RETRY_S = 5.0


class ReadReplica:
    """A PostgreSQL streaming replica (``DATABASE_READ_URL``) and how this process's reads
    fared on it.

    A read sent here sees everything the primary had committed when the read began: the
    process asks the primary for its WAL position (``pg_current_wal_lsn()``, no table read)
    and reads the replica once it has replayed that far (``pg_last_wal_replay_lsn()``),
    waiting at most ``max_wait_s``, else reads the primary. So a customer's own turn, an
    erasure finished a moment ago (by any process), a memory just deleted are never missing
    from (or still in) an answer the replica gives; what moves to the replica is the work
    of the read, not its freshness. Replay only moves forward, so once one connection saw
    the position every connection of the same server sees at least as much: the URL must
    name one server (not a balancer over several replicas). A new connection may reach a
    restarted or replaced server, so the position seen is forgotten whenever one opens."""

    pool: asyncpg.Pool

    def __init__(self, *, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s
        self.replayed = -1  # the furthest position this process saw the replica replay
        self.served: dict[tuple[str, str], int] = {}  # (pool, why) -> reads
        self._away_until = 0.0  # an unreachable replica is not asked again before this

    async def choose(self, primary: asyncpg.Pool) -> asyncpg.Pool:
        """The pool a fresh read goes to: this replica once it has replayed the primary's
        current position, else (lagging past ``max_wait_s``, unreachable, not a replica)
        the primary. The primary's errors propagate: without it nothing is known fresh."""
        needed = int(await primary.fetchval(PRIMARY_LSN))
        if needed <= self.replayed:
            return self._count(self.pool, "replica", "replayed")
        loop = asyncio.get_running_loop()
        if loop.time() < self._away_until:
            return self._count(primary, "primary", "unreachable")
        deadline = loop.time() + self.max_wait_s
        while True:
            try:
                async with self.pool.acquire(timeout=REPLICA_PROBE_TIMEOUT_S) as conn:
                    found = await conn.fetchval(REPLAYED_LSN, timeout=REPLICA_PROBE_TIMEOUT_S)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("read replica unreachable (%s): reading the primary", type(exc).__name__)
                self._away_until = loop.time() + REPLICA_RETRY_S
                return self._count(primary, "primary", "unreachable")
            if found is None:
                log.error("DATABASE_READ_URL is not a server in recovery (a streaming replica): reading the primary")
                return self._count(primary, "primary", "not_a_replica")
            self.replayed = max(self.replayed, int(found))
            if self.replayed >= needed:
                return self._count(self.pool, "replica", "waited")
            if loop.time() >= deadline:
                return self._count(primary, "primary", "lagging")
            await asyncio.sleep(REPLAY_POLL_S)

    def forget_position(self) -> None:
        self.replayed = -1

    def _count(self, pool: asyncpg.Pool, served: str, why: str) -> asyncpg.Pool:
        self.served[served, why] = self.served.get((served, why), 0) + 1
        return pool

    async def lag(self, primary: asyncpg.Pool) -> tuple[int, float]:
        """(bytes, seconds) the replica is behind the primary (for ``/metrics``)."""
        ahead = int(await primary.fetchval(PRIMARY_LSN))
        async with self.pool.acquire(timeout=REPLICA_PROBE_TIMEOUT_S) as conn:
            replayed = await conn.fetchval(REPLAYED_LSN)
            age = await conn.fetchval(REPLAY_AGE)
        if replayed is None:
            raise StoreUnavailable("postgres", "DATABASE_READ_URL is not a streaming replica")
        self.replayed = max(self.replayed, int(replayed))
        return max(0, ahead - int(replayed)), float(age or 0.0)


async def open_replica(dsn: str | None, *, max_size: int, max_wait_s: float) -> ReadReplica | None:
    """The read replica's pool (None without ``DATABASE_READ_URL``). It opens no connection
    up front: a process starts while its replica is away, and reads the primary meanwhile."""
    if not dsn:
        return None
    replica = ReadReplica(max_wait_s=max_wait_s)
    replica.pool = await create_pool(dsn, min_size=0, max_size=max_size, on_connect=replica.forget_position)
    return replica


async def read_pool(primary: asyncpg.Pool, replica: ReadReplica | None) -> asyncpg.Pool:
    """Where a read that must be fresh but may leave the primary goes: the replica when one
    is configured and has replayed the primary's current position (:class:`ReadReplica`),
    else the primary."""
    return primary if replica is None else await replica.choose(primary)
