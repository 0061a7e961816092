"""The PostgreSQL connection type every table owner accepts.

A function that runs statements takes ``Conn``: a plain connection or one borrowed from the
pool (``async with pool.acquire() as conn``), which asyncpg types as a proxy class.
"""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
# a connection or the pool itself (the pool runs one statement on any free connection)
Executor: TypeAlias = "Conn | asyncpg.Pool[asyncpg.Record]"
