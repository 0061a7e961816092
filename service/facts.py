"""What the service knows about a customer: one read, at one version, for every door.

The worker files a turn's facts in Neo4j first, then, in one PostgreSQL transaction, moves
the customer's ``users.graph_version`` on and stores the graph snapshot at that version
(:mod:`service.pipeline`). Between the two, Neo4j holds facts the version does not name
yet. A door that read Neo4j directly (the summary did) would show a fact that a door
reading the version (the context, the chat reply) does not show for a moment longer: the
customer is told "I don't know your name yet" right after the summary named her.

So every door that shows what the service knows about a customer (the context, the chat
reply and the LLM's prompt, the summary, the graph view, entity search, the MCP tools)
takes the customer's facts from :func:`read`: the version from PostgreSQL, then this
process's cached copy at that version, else the snapshot at it, else one Cypher read
(behind the circuit breaker, with a timeout), written back as the snapshot. Once any door
shows a fact, the version that holds it has committed, and every door reads at least it.

Some doors show more than the snapshot holds: the summary's relationships between the
people and things a customer mentioned and, with ``include_history``, closed preferences;
the graph view's category and style nodes. They still read Neo4j for those, but show only
what hangs off the facts read here (:func:`Known.knows_fact`, :func:`Known.knows_entity`):
a fact Neo4j holds ahead of the version waits, in every door, until the version names it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg

from graph import reads as graph_reads
from graph.cache import CustomerGraph
from graph.facts import CustomerFacts
from loft_memory.models import EntityFact
from service.errors import StoreUnavailable
from service.outages import is_outage
from service.postgres import graph_snapshots
from service.runtime import Runtime

log = logging.getLogger("loft.facts")

# how long a door waits for Neo4j (a cold cache and no snapshot) before answering without the graph
GRAPH_TIMEOUT_S = 1.5


def unreachable(exc: BaseException) -> bool:
    """A store that is away or too slow to answer (rather than a bug)."""
    return is_outage(exc) or isinstance(exc, TimeoutError)


def describe(exc: BaseException) -> str:
    """What a client may read about a failed graph tier: the kind of failure, not its internals."""
    if isinstance(exc, StoreUnavailable):
        return exc.detail
    if isinstance(exc, TimeoutError):
        return "Neo4j did not answer in time"
    return f"Neo4j is unavailable ({type(exc).__name__})"


NO_FACTS = CustomerFacts()


@dataclass(frozen=True)
class Known:
    """A customer's facts at one graph version. ``graph`` is None when there is no such
    customer (``version`` None too) or the graph tier could not be read (``error`` says why)."""

    version: int | None
    graph: CustomerGraph | None
    error: str | None = None

    @property
    def facts(self) -> CustomerFacts:
        """The facts (empty when there are none to show)."""
        held = self.graph.customer if self.graph is not None else None
        return held if held is not None else NO_FACTS

    @property
    def name(self) -> str | None:
        return self.facts.name or None

    @property
    def entities(self) -> list[EntityFact]:
        return self.graph.entities if self.graph is not None else []

    def knows_fact(self, rel: str, key: object) -> bool:
        """Whether a current fact of type ``rel`` reaching ``key`` (a product's sku, or a
        vocabulary node's name) is among these facts."""
        return (rel, str(key)) in self._fact_keys()

    def knows_entity(self, key: object) -> bool:
        return any(e.key == key for e in self.entities)

    def _fact_keys(self) -> set[tuple[str, str]]:
        keys: set[tuple[str, str]] = set()
        for p in self.facts.preferences:
            keys |= {(p.rel, str(v)) for v in (p.value, p.sku) if v is not None}
        keys |= {("PURCHASED", str(p.sku)) for p in self.facts.purchases if p.sku}
        for i in self.facts.interests:
            keys |= {(i.rel, str(v)) for v in (i.sku, i.name) if v is not None}
        return keys


async def state(rt: Runtime, user: str, pool: asyncpg.Pool | None = None) -> graph_snapshots.GraphState:
    """The customer's graph version (None: no such customer), and the snapshot at it when
    this process's cached copy is not at it (read from ``pool``, the primary by default)."""
    cached = rt.graph_cache.latest(user)
    return await graph_snapshots.state(
        pool or rt.pool, user, cached.version if cached else None, with_snapshot=rt.settings.graph_snapshots
    )


async def graph_at(rt: Runtime, user: str, at: graph_snapshots.GraphState) -> CustomerGraph | None:
    """The customer's facts at ``at.version``: the cache, else the snapshot, else Neo4j
    (then cached and written back as the snapshot). None for no such customer; raises
    when the graph tier cannot answer (StoreUnavailable while the breaker is open)."""
    if at.version is None:
        return None
    entry = rt.graph_cache.get(user, at.version)
    if entry is None and at.snapshot is not None:
        entry = rt.graph_cache.put_entry(user, at.snapshot)
    if entry is not None:
        return entry
    breaker = rt.graph_breaker
    if not breaker.allow():
        raise StoreUnavailable("neo4j", "Neo4j was unreachable moments ago (circuit open); skipped")
    try:
        facts = await asyncio.wait_for(graph_reads.customer_facts(rt.graph_store, user), GRAPH_TIMEOUT_S)
    except Exception as exc:
        if is_outage(exc):
            breaker.failure()  # the store is away; a timeout of one slow read is not
        raise
    breaker.success()
    entry = rt.graph_cache.put(user, at.version, facts)
    if rt.settings.graph_snapshots:
        _write_back(rt, user, entry)
    return entry


async def read(rt: Runtime, user: str, at: graph_snapshots.GraphState | None = None) -> Known:
    """:func:`graph_at`, with a graph tier that cannot answer reported in ``error`` rather
    than raised (PostgreSQL failing still raises: without it there is no version)."""
    at = at if at is not None else await state(rt, user)
    try:
        return Known(at.version, await graph_at(rt, user, at))
    except Exception as exc:
        if not unreachable(exc):
            log.error("graph read failed (%s)", type(exc).__name__)
        return Known(at.version, None, describe(exc))


_write_backs: set[asyncio.Task[None]] = set()


def _write_back(rt: Runtime, user: str, entry: CustomerGraph) -> None:
    """Store a graph read as the customer's snapshot, off the hot path."""

    async def run() -> None:
        try:
            await graph_snapshots.write_back(rt.pool, user, entry)
        except Exception as exc:  # an optimisation: the next cold read goes to the graph again
            log.warning("could not store a graph snapshot: %r", exc)

    task = asyncio.create_task(run())
    _write_backs.add(task)
    task.add_done_callback(_write_backs.discard)
