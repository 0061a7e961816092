"""A per-process cache of each customer's graph facts, consistent by construction.

The worker bumps ``users.graph_version`` in PostgreSQL after every graph write for a
customer. The retriever reads that version (before it embeds the query, with the speakers) and
uses a cached copy only if it was read at the same version, so an API process never
serves facts older than the last committed graph write, whichever process made it. A
hit saves the Neo4j round trip on the hot path; the customer's entities nearest the
query are then ranked in-process from their cached embeddings. A miss is filled from the
customer's snapshot in PostgreSQL when it is at the same version
(:mod:`service.graph_snapshots`), else from Neo4j.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from vectors.embedder import DIM


@dataclass(frozen=True)
class CustomerGraph:
    version: int
    facts: dict[str, Any] | None  # None: no Customer node yet
    entities: list[dict[str, Any]]
    matrix: np.ndarray  # entity embeddings, one row each (normalised)

    @classmethod
    def build(cls, version: int, facts: dict[str, Any] | None) -> CustomerGraph:
        entities = list((facts or {}).get("entities") or [])
        if entities:
            matrix = np.asarray([e.pop("embedding") for e in entities], dtype=np.float32)
            matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        else:
            matrix = np.zeros((0, DIM), dtype=np.float32)
        return cls(version, facts, entities, matrix)

    def view(self, embedding: np.ndarray | None, hits: int) -> dict[str, Any] | None:
        """The facts plus the ``hits`` entities nearest the query (what the retriever reads)."""
        if self.facts is None:
            return None
        matched: list[dict[str, Any]] = []
        if embedding is not None and hits and len(self.entities):
            scores = self.matrix @ embedding.astype(np.float32)
            for i in np.argsort(-scores)[:hits]:
                matched.append(self.entities[int(i)] | {"score": float(scores[i])})
        return {k: v for k, v in self.facts.items() if k != "entities"} | {"matched": matched}


class GraphCache:
    def __init__(self, size: int = 10_000) -> None:
        self._entries: OrderedDict[str, CustomerGraph] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, user: str, version: int) -> CustomerGraph | None:
        with self._lock:
            entry = self._entries.get(user)
            if entry is None or entry.version != version:
                return None
            self._entries.move_to_end(user)
            return entry

    def put(self, user: str, version: int, facts: dict[str, Any] | None) -> CustomerGraph:
        return self.put_entry(user, CustomerGraph.build(version, facts))

    def put_entry(self, user: str, entry: CustomerGraph) -> CustomerGraph:
        """Keep ``entry`` (built from a graph read or a snapshot) unless a newer copy is held."""
        with self._lock:
            current = self._entries.get(user)
            if current is None or current.version <= entry.version:
                self._entries[user] = entry
                self._entries.move_to_end(user)
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
        return entry

    def forget(self, user: str) -> int:
        with self._lock:
            return 1 if self._entries.pop(user, None) is not None else 0

    def clear(self) -> int:
        with self._lock:
            n = len(self._entries)
            self._entries.clear()
        return n

    def latest(self, user: str) -> CustomerGraph | None:
        """Whatever copy this process holds, at any version (a fallback while Neo4j is away)."""
        with self._lock:
            return self._entries.get(user)
