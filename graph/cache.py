"""A per-process cache of each customer's graph facts, consistent by construction.

The worker bumps ``users.graph_version`` in PostgreSQL after every graph write for a
customer. The retriever reads that version (before it embeds the query, with the speakers) and
uses a cached copy only if it was read at the same version, so an API process never
serves facts older than the last committed graph write, whichever process made it. A
hit saves the Neo4j round trip on the hot path; the customer's entities nearest the
query are then ranked in-process from their cached embeddings. A miss is filled from the
customer's snapshot in PostgreSQL when it is at the same version
(:mod:`service.postgres.graph_snapshots`), else from Neo4j.

The cache is bounded by bytes (``LOFT_GRAPH_CACHE_MB``), not by customers: an entry
holds every mentioned entity's embedding, from a few KB to ~1 MB, so a count bound would
allow anything from megabytes to ~10 GB. Sizes are estimated when an entry is stored
(:func:`approximate_bytes`: the embedding matrix exactly, a fixed figure per fact).

An erasure drops the customer (:meth:`GraphCache.forget`) with a *floor*: a graph version
read before the erasure is below it, any version of a customer created again under the
same identifier is above it (versions come from one sequence). A request that read the
customer's version before the erasure and stores its copy afterwards is refused, so no
copy of an erased customer comes back.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from graph.facts import CustomerFacts, FactsRead
from loft_memory.models import EntityFact
from vectors.embedder import DIM


@dataclass(frozen=True)
class CustomerGraph:
    """A customer's facts at one graph version, with their entities' embeddings as one
    matrix (a row per ``customer.entities`` item, normalised)."""

    version: int
    customer: CustomerFacts | None  # None: no Customer node yet
    matrix: np.ndarray

    @classmethod
    def build(cls, version: int, read: FactsRead | None) -> CustomerGraph:
        if read is None:
            return cls(version, None, np.zeros((0, DIM), dtype=np.float32))
        if read.embeddings:
            matrix = np.asarray(read.embeddings, dtype=np.float32)
            matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        else:
            matrix = np.zeros((0, DIM), dtype=np.float32)
        return cls(version, read.facts, matrix)

    @property
    def entities(self) -> list[EntityFact]:
        return self.customer.entities if self.customer is not None else []

    def nearest(self, embedding: np.ndarray | None, hits: int) -> list[tuple[EntityFact, float]]:
        """The ``hits`` entities nearest the query, best first, with their cosine scores."""
        if embedding is None or not hits or not len(self.entities):
            return []
        scores = self.matrix @ embedding.astype(np.float32)
        return [(self.entities[int(i)], float(scores[i])) for i in np.argsort(-scores)[:hits]]


MAX_FLOORS = 4096  # erasures remembered; a racing request lasts seconds, not thousands of erasures


# one entity or fact row in memory: a dict of about a dozen fields with up to 50 source
# message ids (``sys.getsizeof`` of one and its values: 0.7 to 2.6 KB); a fixed figure
# keeps sizing O(1) on the hot path (walking 500 entities' values took 12 ms)
ITEM_BYTES = 2048


def approximate_bytes(entry: CustomerGraph) -> int:
    """What ``entry`` holds in memory, roughly: the embedding matrix exactly, and
    ``ITEM_BYTES`` per entity and per fact."""
    facts = entry.customer
    rows = len(facts.preferences) + len(facts.purchases) + len(facts.interests) + len(facts.entities) if facts else 0
    return entry.matrix.nbytes + ITEM_BYTES * (rows + 1)


class GraphCache:
    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self._entries: OrderedDict[str, tuple[CustomerGraph, int]] = OrderedDict()  # entry, its bytes
        self._bytes = 0
        self._max_bytes = max_bytes
        self._floors: OrderedDict[str, int] = OrderedDict()  # erased customers: versions below are refused
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, user: str, version: int) -> CustomerGraph | None:
        with self._lock:
            held = self._entries.get(user)
            if held is None or held[0].version != version:
                return None
            self._entries.move_to_end(user)
            return held[0]

    def put(self, user: str, version: int, read: FactsRead | None) -> CustomerGraph:
        return self.put_entry(user, CustomerGraph.build(version, read))

    def put_entry(self, user: str, entry: CustomerGraph) -> CustomerGraph:
        """Keep ``entry`` (built from a graph read or a snapshot) unless a newer copy is held,
        the customer was erased since that version was read, or it alone is over the bound.
        Returns ``entry`` either way (the caller serves it)."""
        size = approximate_bytes(entry)
        with self._lock:
            if entry.version < self._floors.get(user, -1) or size > self._max_bytes:
                return entry
            held = self._entries.get(user)
            if held is None or held[0].version <= entry.version:
                if held is not None:
                    self._bytes -= held[1]
                self._entries[user] = (entry, size)
                self._entries.move_to_end(user)
                self._bytes += size
                while self._bytes > self._max_bytes:
                    _, (_, dropped) = self._entries.popitem(last=False)
                    self._bytes -= dropped
        return entry

    def forget(self, user: str, *, floor: int | None = None) -> int:
        """Drop ``user``; with ``floor`` (an erasure's), refuse their copies at versions below it."""
        with self._lock:
            if floor is not None:
                self._floors[user] = max(floor, self._floors.get(user, floor))
                self._floors.move_to_end(user)
                while len(self._floors) > MAX_FLOORS:
                    self._floors.popitem(last=False)
            held = self._entries.pop(user, None)
            if held is None:
                return 0
            self._bytes -= held[1]
            return 1

    def clear(self) -> int:
        with self._lock:
            n = len(self._entries)
            self._entries.clear()
            self._bytes = 0
        return n

    def latest(self, user: str) -> CustomerGraph | None:
        """Whatever copy this process holds, at any version (callers check the version)."""
        with self._lock:
            held = self._entries.get(user)
            return held[0] if held else None
