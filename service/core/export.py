"""A customer's export: everything both stores hold about them, as one streamed JSON document.

What is exported is what an erasure deletes, read from the same lists: every table in
:data:`service.core.erasure.TABLES` (and any table with a ``user_identifier`` column that it
does not list, as erasure finds them in the catalog), the customer's queued jobs, and in
Neo4j the nodes of every label in :data:`graph.erasure.PER_USER_LABELS` with every
relationship touching them (:mod:`graph.export`). The document's ``manifest`` counts
what the document holds, per table and per label, under the same keys as the erasure
receipt's ``counts``: an erasure right after an export reports the same numbers.

The document (``docs/export.schema.json``)::

    {"format": "loft-export/1", "user_identifier": …, "exported_at": …,
     "omitted": {table: [columns]},
     "postgres": {table: [row, …], …, "jobs": [row, …]},
     "neo4j": {"nodes": [{id, labels, properties}, …],
               "relationships": [{id, type, start, end, properties, …}, …]},
     "manifest": {"postgres": {table: n, …}, "neo4j": {"nodes": n, "relationships": n,
                  "labels": {label: n}}}}

Derived search data is left out and named in ``omitted``: vectors (embeddings), full-text
vectors and packed caches are computed from the exported text.

**Streaming.** PostgreSQL rows are read through a server-side cursor in one REPEATABLE
READ, read-only transaction (every table from the same snapshot) on a connection of the
export's own, so a slow reader never holds one of the pool's; Neo4j records arrive in
fetch-size batches. Rows are encoded batch by batch in a worker thread and sent as they
are ready: memory stays flat however large the customer. The manifest comes last, as
the trailer of what was sent.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import decimal
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from graph import export as graph_export
from graph.erasure import PER_USER_LABELS
from service.core.erasure import TABLES, unlisted_tables
from service.postgres.db import IDLE_IN_TRANSACTION
from service.runtime import Runtime

FORMAT = "loft-export/1"
BATCH_ROWS = 1000
# derived search data, computed from the exported text: never exported
OMITTED_TYPES = frozenset({"vector", "tsvector", "bytea"})
# the customer's queued work: counted by erasure as "jobs" (its own erase_user job aside)
QUEUE_TABLE = "jobs"

# a table's row, a node or a relationship: column or property -> what the driver returned
Row = dict[str, object]

# every column of these tables with its type, in one catalog read (information_schema
# costs a query plan per table)
COLUMNS = """
SELECT c.relname AS table_name, a.attname AS column_name, t.typname AS udt_name
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_type t ON t.oid = a.atttypid
WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1::text[])
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


@dataclass
class Table:
    name: str
    columns: list[str]
    json_columns: frozenset[str]
    omitted: list[str] = field(default_factory=list)

    @property
    def select(self) -> str:
        listed = ", ".join(f'"{c}"' for c in self.columns)
        where = "user_identifier = $1" + (" AND kind <> 'erase_user'" if self.name == QUEUE_TABLE else "")
        return f'SELECT {listed} FROM "{self.name}" WHERE {where}'


async def tables(conn: asyncpg.Connection) -> list[Table]:
    """The tables an export reads: erasure's list (parents first), any per-customer table
    it does not list, then the queue."""
    listed = [t.name for t in reversed(TABLES)]
    names = listed + await unlisted_tables(conn, set(listed)) + [QUEUE_TABLE]
    columns = await conn.fetch(COLUMNS, names)
    found = []
    for name in names:
        cols = [c for c in columns if c["table_name"] == name]
        kept = [c["column_name"] for c in cols if c["udt_name"] not in OMITTED_TYPES]
        omitted = [c["column_name"] for c in cols if c["udt_name"] in OMITTED_TYPES]
        jsons = frozenset(c["column_name"] for c in cols if c["udt_name"] in ("json", "jsonb"))
        found.append(Table(name, kept, jsons, omitted))
    return found


async def stream(rt: Runtime, user: str, *, exported_at: dt.datetime | None = None) -> AsyncIterator[bytes]:
    """The export document of ``user``, in pieces."""
    at = exported_at or dt.datetime.now(dt.UTC)
    rows: dict[str, int] = {}
    async with aclosing(_postgres(rt, user, at, rows)) as pieces:
        async for piece in pieces:
            yield piece
    database = rt.settings.neo4j_database
    labels = dict.fromkeys(PER_USER_LABELS, 0)
    nodes, relationships = _Tally(), _Tally()
    yield b'}, "neo4j": {"nodes": ['
    found = _counting_labels(graph_export.nodes(rt.graph, user, database=database), labels)
    async with aclosing(_encoded(found, frozenset(), nodes)) as pieces:
        async for piece in pieces:
            yield piece
    yield b'], "relationships": ['
    touching = graph_export.relationships(rt.graph, user, database=database)
    async with aclosing(_encoded(touching, frozenset(), relationships)) as pieces:
        async for piece in pieces:
            yield piece
    manifest = {
        "postgres": rows,
        "neo4j": {"nodes": nodes.n, "relationships": relationships.n, "labels": labels},
    }
    yield b']}, "manifest": ' + json.dumps(manifest).encode() + b"}\n"


async def _postgres(rt: Runtime, user: str, at: dt.datetime, counts: dict[str, int]) -> AsyncGenerator[bytes]:
    """The document's head and its ``postgres`` member (open: the graph's follows), every
    table from one snapshot; ``counts`` gets the rows sent per table."""
    conn = await asyncpg.connect(
        rt.settings.database_url,
        timeout=10,
        # a reader that stops reading must not hold its snapshot (and vacuum) for ever
        server_settings={"idle_in_transaction_session_timeout": IDLE_IN_TRANSACTION},
    )
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            listed = await tables(conn)
            head = {
                "format": FORMAT,
                "user_identifier": user,
                "exported_at": at.isoformat(),
                "omitted": {t.name: t.omitted for t in listed if t.omitted},
            }
            yield json.dumps(head)[:-1].encode() + b', "postgres": {'
            for i, table in enumerate(listed):
                yield (b", " if i else b"") + json.dumps(table.name).encode() + b": ["
                sent = _Tally()
                records = (dict(r) async for r in conn.cursor(table.select, user, prefetch=BATCH_ROWS))
                async with aclosing(_encoded(records, table.json_columns, sent)) as pieces:
                    async for piece in pieces:
                        yield piece
                counts[table.name] = sent.n
                yield b"]"
    finally:
        await conn.close()


@dataclass
class _Tally:
    """How many rows a part of the document holds, counted as they are sent."""

    n: int = 0


async def _encoded(rows: AsyncIterable[Row], json_columns: frozenset[str], sent: _Tally) -> AsyncGenerator[bytes]:
    """``rows`` as the members of a JSON array, encoded a batch at a time in a worker thread."""
    batch: list[Row] = []
    async for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            yield await asyncio.to_thread(_encode_rows, batch, json_columns, sent.n == 0)
            sent.n, batch = sent.n + len(batch), []
    if batch:
        yield await asyncio.to_thread(_encode_rows, batch, json_columns, sent.n == 0)
        sent.n += len(batch)


async def _counting_labels(nodes: AsyncIterable[tuple[str, Row]], labels: dict[str, int]) -> AsyncIterator[Row]:
    async for label, node in nodes:
        labels[label] += 1
        yield node


def _encode_rows(rows: Iterable[Row], json_columns: frozenset[str], first: bool) -> bytes:
    """Rows as the comma-separated members of a JSON array (a leading comma unless first)."""
    parts = []
    for row in rows:
        for column in json_columns & row.keys():
            value = row[column]
            if isinstance(value, str):
                row[column] = json.loads(value)
        parts.append(json.dumps(row, default=_plain, ensure_ascii=False))
    return (b"" if first else b", ") + ", ".join(parts).encode()


def _plain(value: Any) -> Any:
    """JSON for what the drivers return: times as ISO 8601, ids and amounts as strings."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    iso = getattr(value, "iso_format", None)  # neo4j.time types
    if callable(iso):
        return iso()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot export a {type(value).__name__}")
