"""The ``graph_snapshots`` table: what the retriever reads from a customer's graph, in PostgreSQL.

The context's hot path needs the customer's current graph facts (preferences, purchases,
interests, the entities they mentioned with their embeddings). An API process caches
them per customer and version (:mod:`graph.cache`), but with many customers most
requests meet a customer the process has not cached yet, and reading the graph then
costs a Neo4j round trip plus unpacking every entity embedding in Python: about a third
of a context request's CPU across the API and Neo4j (``python -m bench.latency``).

So the facts are also kept here, beside the ``users.graph_version`` they were read at:

- the worker writes a snapshot right after each graph write of chat turns (the live
  lane: that customer is about to ask) and of orders, inside the same fence (the
  customer's row is locked: no other graph write and no erasure can come between the
  graph write, the read and this row), one Neo4j read for the whole batch. Imports (the
  bulk lane) leave it to the customer's first context: on a fresh stack the read-back
  cost an import 0.67x its messages per second (``bench.ingest``), for snapshots most
  imported customers would not use before their next batch replaced them;
- the retriever reads the customer's version and, when its process has no copy at that
  version, the snapshot in the same statement; a snapshot at another version is never
  used;
- when there is none at the current version (data written before this table, a graph
  write that does not refresh it, a failed refresh), the retriever reads Neo4j as before
  and writes the snapshot back off the hot path, so it heals itself.

Facts are the JSON of :class:`graph.facts.CustomerFacts` (timestamps as ISO 8601, read
back as aware datetimes); the entity embeddings a float32 matrix in one ``bytea``, one
384-wide row per entity in the facts' order. The rows are derived data about one customer and are erased with them
(``service.core.erasure.TABLES``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from graph import reads as graph_reads
from graph.cache import CustomerGraph
from graph.driver import GraphStore
from graph.facts import CustomerFacts
from vectors.embedder import DIM
from vectors.pg import Conn, Executor

log = logging.getLogger("loft.graph_snapshots")

# the version, and the snapshot only when it is at that version and the caller's copy is
# not: one round trip either way, and no payload when the caller's cache is current
STATE = """
SELECT u.graph_version AS version, u.speakers, s.facts, s.entities
FROM users u
LEFT JOIN graph_snapshots s
  ON s.user_identifier = u.user_identifier AND s.version = u.graph_version AND u.graph_version <> $2
WHERE u.user_identifier = $1
"""
VERSION = "SELECT graph_version AS version, speakers FROM users WHERE user_identifier = $1"
# never replaces a newer snapshot with an older one
UPSERT = """
INSERT INTO graph_snapshots (user_identifier, version, facts, entities)
VALUES ($1, $2, $3::jsonb, $4)
ON CONFLICT (user_identifier) DO UPDATE
SET version = EXCLUDED.version, facts = EXCLUDED.facts, entities = EXCLUDED.entities, updated_at = now()
WHERE graph_snapshots.version <= EXCLUDED.version
"""
# the retriever's write-back: only while the version it read is still the customer's
WRITE_BACK = """
INSERT INTO graph_snapshots (user_identifier, version, facts, entities)
SELECT user_identifier, graph_version, $3::jsonb, $4 FROM users WHERE user_identifier = $1 AND graph_version = $2
ON CONFLICT (user_identifier) DO UPDATE
SET version = EXCLUDED.version, facts = EXCLUDED.facts, entities = EXCLUDED.entities, updated_at = now()
WHERE graph_snapshots.version < EXCLUDED.version
"""
COUNT = "SELECT count(*) FROM graph_snapshots"


@dataclass(frozen=True)
class GraphState:
    """A customer's graph version (None: no such customer) and, when the caller's copy is
    not at that version, the snapshot at it if there is one; read with them, the names of
    the people who speak in the customer's history (``users.speakers``)."""

    version: int | None
    snapshot: CustomerGraph | None = None
    speakers: tuple[str, ...] = ()


async def state(conn: Executor, user: str, cached_version: int | None, *, with_snapshot: bool = True) -> GraphState:
    """``cached_version``: the version of the caller's copy, if any (no snapshot is sent at it)."""
    if not with_snapshot:
        row = await conn.fetchrow(VERSION, user)
    else:
        row = await conn.fetchrow(STATE, user, -1 if cached_version is None else cached_version)
    if row is None:
        return GraphState(None)
    version, speakers = int(row["version"]), tuple(row["speakers"])
    if not with_snapshot or row["facts"] is None:
        return GraphState(version, None, speakers)
    try:
        snapshot = decode(version, row["facts"], row["entities"])
    except ValueError as exc:  # a snapshot this code cannot read: the graph is read instead
        log.warning("graph snapshot not readable: %r", exc)
        return GraphState(version, None, speakers)
    return GraphState(version, snapshot, speakers)


def encode(graph: CustomerGraph) -> tuple[str, bytes]:
    """The snapshot's ``facts`` (JSON; entities without their embeddings) and ``entities`` columns."""
    facts = "null" if graph.customer is None else graph.customer.model_dump_json()
    return facts, graph.matrix.astype("<f4").tobytes()


def decode(version: int, facts_json: str, entities: bytes) -> CustomerGraph:
    """A snapshot's columns back as the cache entry the graph read would have built."""
    facts = None if facts_json == "null" else CustomerFacts.model_validate_json(facts_json)
    matrix = np.frombuffer(entities, dtype="<f4").reshape(-1, DIM)
    listed = facts.entities if facts is not None else []
    if len(listed) != len(matrix):
        raise ValueError(f"graph snapshot: {len(listed)} entities but {len(matrix)} embeddings")
    return CustomerGraph(version, facts, matrix)


async def refresh(conn: Conn, store: GraphStore, versions: Mapping[str, int]) -> int:
    """Read the graph facts of these customers (one Neo4j read) and store them at their new
    versions. Call inside the transaction that bumped the versions, after the graph write.
    A failed read is logged and leaves the old snapshots (at an older version, so unused):
    the retriever then reads the graph itself. Returns how many snapshots were written."""
    if not versions:
        return 0
    try:
        found = await graph_reads.customers_facts(store, sorted(versions))
    except Exception as exc:  # the graph write committed; the snapshot is only an optimisation
        log.warning("graph snapshots not refreshed for %d customers: %r", len(versions), exc)
        return 0
    rows = []
    for user, read in found.items():
        payload, matrix = encode(CustomerGraph.build(versions[user], read))
        rows.append((user, versions[user], payload, matrix))
    await conn.executemany(UPSERT, rows)
    return len(rows)


async def write_back(conn: Executor, user: str, graph: CustomerGraph) -> None:
    """Store what a process read from the graph itself, if that version is still current
    (and above 0: version 0 is a customer no graph write has reached)."""
    if graph.version <= 0:
        return
    payload, matrix = encode(graph)
    await conn.execute(WRITE_BACK, user, graph.version, payload, matrix)


async def count(conn: Executor) -> int:
    return int(await conn.fetchval(COUNT))
