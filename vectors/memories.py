"""The long-term tier: memories in pgvector, with dedupe, supersession and history.

A memory is added unless the customer already has it: the same content (``content_hash``
of the normalised text) or a near-duplicate (cosine similarity ≥ ``NEAR_DUPLICATE``
among the customer's current memories), in which case the existing memory absorbs the
new sources. A memory with a ``subject`` that *replaces* (e.g. "actually I prefer walnut
now") closes the customer's current memories of that subject: ``valid_to`` and
``superseded_by`` are set, nothing is deleted. Every change is written to
``memory_events`` in the same transaction.

A memory deleted on request (:func:`delete`) leaves a marker on its ``delete`` event:
its content hash, the hashes of the fact keys it stated, and the newest message id at
the time. A memory candidate from a message at or below that id with the same content or
one of those facts is not added again (a retried or late job), nor is such a preference
written to the graph (:func:`forgotten_facts`); anything said afterwards is. The hashes
are of text the source turns still hold in full, and say nothing the history does not.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

import asyncpg
import numpy as np
from pgvector import Vector

from vectors.pg import Conn, Executor

NEAR_DUPLICATE = 0.93
NEAR_ROWS = 16  # a candidate's memories at or above NEAR_DUPLICATE looked at, nearest first

# What a batch of candidates (``$1``: their order) would join or close, in one round trip:
#   forgotten    the candidate repeats a memory the customer deleted, from a message sent before;
#   duplicate    the customer's memory with the same content hash (current or not);
#   near         the customer's memories at or above ``$9`` of similarity, current or not (a
#                memory the batch re-opens counts again), unless the candidate replaces;
#   subject      the current memories of every subject the batch names (ord NULL).
# Whether a memory is current is decided as the batch is filed (:class:`_Filing`), in order.
# The near scan reads the customer's rows (``ltm_user_idx``): ordering by the similarity
# expression, not by ``embedding <=> x``, keeps the planner off the global HNSW index.
LOOK_UP = """
WITH c AS (
  SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::vector[], $5::bool[], $6::bigint[], $7::text[],
                       $8::text[])
    AS c(ord, user_identifier, content_hash, embedding, replaces, through, facts, subject)
)
SELECT c.ord, 'forgotten' AS reason, NULL::uuid AS id, NULL AS user_identifier, NULL AS content,
       NULL::bigint[] AS source_message_ids, NULL::timestamptz AS valid_from, NULL::timestamptz AS valid_to,
       NULL AS subject, false AS replaces, NULL::float8 AS similarity
FROM c
WHERE EXISTS (
  SELECT 1 FROM memory_events e
  WHERE e.user_identifier = c.user_identifier AND e.event = 'delete' AND e.detail ? 'forgotten'
    AND (e.detail->'forgotten'->>'through_message_id')::bigint >= c.through
    AND (e.detail->'forgotten'->>'content_hash' = c.content_hash OR e.detail->'forgotten'->'facts' ?| c.facts::text[])
)
UNION ALL
SELECT c.ord, 'duplicate', m.id, m.user_identifier, m.content, m.source_message_ids, m.valid_from, m.valid_to,
       m.subject, coalesce((m.metadata->>'replaces')::boolean, false), NULL
FROM c JOIN long_term_memories m ON m.user_identifier = c.user_identifier AND m.content_hash = c.content_hash
UNION ALL
SELECT c.ord, 'near', n.* FROM c CROSS JOIN LATERAL (
  SELECT m.id, m.user_identifier, m.content, m.source_message_ids, m.valid_from, m.valid_to, m.subject,
         coalesce((m.metadata->>'replaces')::boolean, false), 1 - (m.embedding <=> c.embedding) AS similarity
  FROM long_term_memories m
  WHERE m.user_identifier = c.user_identifier AND NOT c.replaces AND 1 - (m.embedding <=> c.embedding) >= $9
  ORDER BY similarity DESC LIMIT $10
) n
UNION ALL
SELECT NULL, 'subject', m.id, m.user_identifier, m.content, m.source_message_ids, m.valid_from, m.valid_to,
       m.subject, coalesce((m.metadata->>'replaces')::boolean, false), NULL
FROM (SELECT DISTINCT user_identifier, subject FROM c WHERE subject IS NOT NULL) s
JOIN long_term_memories m ON m.user_identifier = s.user_identifier AND m.subject = s.subject AND m.valid_to IS NULL
"""

# What a filed batch changes, in one round trip: its new memories (as the batch leaves
# them), the changes to the customer's other memories (sources joined, importance raised,
# closed or re-opened), and every history event, in the order they happened.
WRITE = """
WITH added AS (
  INSERT INTO long_term_memories (id, user_identifier, kind, content, subject, embedding, importance, valid_from,
                                  valid_to, superseded_by, source_message_ids, content_hash, metadata)
  SELECT id, user_identifier, kind, content, subject, embedding, importance, valid_from, valid_to, superseded_by,
         source_message_ids::bigint[], content_hash, metadata::jsonb
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::vector[], $7::real[],
              $8::timestamptz[], $9::timestamptz[], $10::uuid[], $11::text[], $12::text[], $13::text[])
    AS n(id, user_identifier, kind, content, subject, embedding, importance, valid_from, valid_to, superseded_by,
         source_message_ids, content_hash, metadata)
),
changed AS (
  UPDATE long_term_memories m
  SET source_message_ids = (SELECT array_agg(DISTINCT x ORDER BY x)
                            FROM unnest(m.source_message_ids || u.source_message_ids::bigint[]) x),
      importance = greatest(m.importance, u.importance), updated_at = now(),
      valid_to = u.valid_to, superseded_by = u.superseded_by
  FROM unnest($14::uuid[], $15::text[], $16::real[], $17::timestamptz[], $18::uuid[])
    AS u(id, source_message_ids, importance, valid_to, superseded_by)
  WHERE m.id = u.id
)
INSERT INTO memory_events (memory_id, user_identifier, event, old_content, new_content, detail)
SELECT memory_id, user_identifier, event, old_content, new_content, detail::jsonb
FROM unnest($19::uuid[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[]) WITH ORDINALITY
  AS e(memory_id, user_identifier, event, old_content, new_content, detail, ord)
ORDER BY ord
"""

EVENT = """
INSERT INTO memory_events (memory_id, user_identifier, event, old_content, new_content, detail)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
"""

HISTORY = """
SELECT e.id, e.memory_id, e.event, e.old_content, e.new_content, e.detail, e.created_at
FROM memory_events e WHERE e.memory_id = $1 AND e.user_identifier = $2 ORDER BY e.id
"""

_COLUMNS = """id, user_identifier, kind, content, subject, importance, access_count, last_accessed_at, created_at,
       updated_at, valid_from, valid_to, superseded_by, source_message_ids, metadata"""
# every read by id is scoped by the customer in the query itself
GET = f"SELECT {_COLUMNS} FROM long_term_memories WHERE id = $1 AND user_identifier = $2"

PAGE = f"""
SELECT {_COLUMNS} FROM long_term_memories
WHERE user_identifier = $1 AND ($2 OR valid_to IS NULL)
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC LIMIT $5
"""

DELETE = """
DELETE FROM long_term_memories WHERE id = $1 AND user_identifier = $2
RETURNING content_hash, metadata->'fact_keys' AS fact_keys
"""
# the preferences forgotten with deleted memories: (customer, fact hash, newest message id then)
FORGOTTEN_FACTS = """
SELECT user_identifier, f.fact, max((detail->'forgotten'->>'through_message_id')::bigint) AS through
FROM memory_events, jsonb_array_elements_text(detail->'forgotten'->'facts') AS f(fact)
WHERE user_identifier = ANY($1::text[]) AND event = 'delete' AND detail ? 'forgotten'
GROUP BY 1, 2
"""
# the deleted memory's words leave its history too (and the supersede entries of the
# memories it replaced, which quote it); the trail of what happened stays
SCRUB_EVENTS = """
UPDATE memory_events
SET old_content = CASE WHEN memory_id = $1 THEN NULL ELSE old_content END,
    new_content = NULL, detail = detail - 'candidate'
WHERE user_identifier = $2 AND (memory_id = $1 OR detail->>'superseded_by' = $1::text)
"""

LIST_FOR_USER = """
SELECT id, kind, content, subject, importance, access_count, created_at, valid_from, valid_to, superseded_by,
       source_message_ids
FROM long_term_memories WHERE user_identifier = $1 AND ($2 OR valid_to IS NULL)
ORDER BY valid_from DESC, created_at DESC LIMIT $3
"""

COUNTS_FOR_USER = """
SELECT count(*) FILTER (WHERE valid_to IS NULL) AS memories,
       count(*) FILTER (WHERE valid_to IS NOT NULL) AS superseded_memories
FROM long_term_memories WHERE user_identifier = $1
"""
COUNTS = """
SELECT count(*) FILTER (WHERE valid_to IS NULL) AS memories_current, count(*) AS memories_total FROM long_term_memories
"""

# how often each memory was served since the last flush, many customers in one statement
TOUCH = """
UPDATE long_term_memories m SET access_count = m.access_count + t.n, last_accessed_at = now()
FROM unnest($1::text[], $2::uuid[], $3::int[]) AS t (user_identifier, id, n)
WHERE m.user_identifier = t.user_identifier AND m.id = t.id
"""


class MemoryMetadata(TypedDict, total=False):
    fact_keys: list[str]  # the preferences the memory states (``graph.schema.fact_key``)
    session_id: str  # the session it was said in
    replaces: bool  # set when it is stored: an explicit change of mind


@dataclass
class NewMemory:
    kind: str
    content: str
    embedding: np.ndarray
    importance: float
    valid_from: datetime
    source_message_ids: list[int]
    subject: str | None = None
    replaces: bool = False
    metadata: MemoryMetadata = field(default_factory=lambda: MemoryMetadata())


def content_hash(text: str) -> str:
    normalised = re.sub(r"[\W_]+", " ", text.lower()).strip()
    return hashlib.sha256(normalised.encode()).hexdigest()[:32]


def fact_hash(key: str) -> str:
    """A fact key (``graph.schema.fact_key``) as a deleted memory's marker keeps it."""
    return hashlib.sha256(" ".join(key.lower().split()).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Deleted:
    events_scrubbed: int
    fact_keys: list[str]  # the preferences the memory stated


Outcome = tuple[uuid.UUID | None, str]


async def add_memory(conn: Conn, user_identifier: str, memory: NewMemory) -> Outcome:
    """Add, absorb or supersede one memory (call inside a transaction); see :func:`add_memories`."""
    (outcome,) = await add_memories(conn, [(user_identifier, memory)])
    return outcome


async def add_memories(conn: Conn, batch: Sequence[tuple[str, NewMemory]]) -> list[Outcome]:
    """File a batch of customers' memory candidates, in order, as if one by one: each is
    added, joins the memory it repeats (absorbed) or supersedes the memories it replaces,
    seeing what the ones before it did. Call inside a transaction. Two round trips for the
    whole batch: what the candidates could join or close is read first (``LOOK_UP``), the
    batch is filed in memory (:class:`_Filing`), and its rows and history go in one statement
    (``WRITE``). Returns (id, what happened) per candidate: "added", "added_superseded" (said
    before a change of mind filed first), "superseded" (it closed others), "updated",
    "unchanged" (a retried job), or (None, "forgotten") for a memory the customer had
    deleted, from a message sent before."""
    if not batch:
        return []
    filing = _Filing(await _look_up(conn, batch))
    outcomes = [filing.file(i, user, memory) for i, (user, memory) in enumerate(batch)]
    await _write(conn, filing)
    return outcomes


@dataclass
class _Stored:
    """A memory as the batch being filed leaves it."""

    id: uuid.UUID
    user_identifier: str
    content: str
    source_message_ids: list[int]
    valid_from: datetime
    valid_to: datetime | None
    subject: str | None
    replaces: bool
    superseded_by: uuid.UUID | None = None
    importance: float | None = None  # raised to (None: unchanged)
    new: NewMemory | None = None  # a memory this batch adds
    digest: str = ""
    changed: bool = False


@dataclass(frozen=True)
class _Event:
    memory_id: uuid.UUID
    user_identifier: str
    event: str
    old_content: str | None
    new_content: str | None
    detail: Mapping[str, object]


@dataclass
class _Found:
    """What ``LOOK_UP`` found for a batch."""

    forgotten: set[int] = field(default_factory=set)
    duplicate: dict[int, uuid.UUID] = field(default_factory=dict)
    near: dict[int, list[tuple[uuid.UUID, float]]] = field(default_factory=dict)
    stored: dict[uuid.UUID, _Stored] = field(default_factory=dict)
    digests: list[str] = field(default_factory=list)


async def _look_up(conn: Conn, batch: Sequence[tuple[str, NewMemory]]) -> _Found:
    found = _Found(digests=[content_hash(m.content) for _, m in batch])
    rows = await conn.fetch(
        LOOK_UP,
        list(range(len(batch))),
        [user for user, _ in batch],
        found.digests,
        [Vector(m.embedding) for _, m in batch],  # an array inside an array would be read as rows
        [m.replaces for _, m in batch],
        [max(m.source_message_ids, default=0) for _, m in batch],
        [_pg_array(fact_hash(k) for k in m.metadata.get("fact_keys") or []) for _, m in batch],
        [m.subject for _, m in batch],
        NEAR_DUPLICATE,
        NEAR_ROWS,
    )
    for r in rows:
        if r["reason"] == "forgotten":
            found.forgotten.add(r["ord"])
            continue
        found.stored.setdefault(
            r["id"],
            _Stored(
                r["id"],
                r["user_identifier"],
                r["content"],
                list(r["source_message_ids"]),
                r["valid_from"],
                r["valid_to"],
                r["subject"],
                r["replaces"],
            ),
        )
        if r["reason"] == "duplicate":
            found.duplicate[r["ord"]] = r["id"]
        elif r["reason"] == "near":
            found.near.setdefault(r["ord"], []).append((r["id"], float(r["similarity"])))
    return found


class _Filing:
    """A batch filed in order against what ``LOOK_UP`` found and what the batch did so far."""

    def __init__(self, found: _Found) -> None:
        self.found = found
        self.stored = found.stored
        self.events: list[_Event] = []

    def file(self, i: int, user: str, memory: NewMemory) -> Outcome:
        if i in self.found.forgotten:
            return None, "forgotten"
        digest = self.found.digests[i]
        same, reason = self._same(user, digest, i), "duplicate"
        if same is None and not memory.replaces:
            same, reason = self._near(user, memory, i), "near_duplicate"
        if same is None:
            return self._add(user, memory, digest)
        if set(memory.source_message_ids) <= set(same.source_message_ids):
            return same.id, "unchanged"  # a retried job: this message was already absorbed
        self._absorb(same, memory, reason)
        closed = self._supersede(same.id, memory) if memory.replaces else 0
        return same.id, "updated" if not closed else "superseded"

    def _same(self, user: str, digest: str, i: int) -> _Stored | None:
        if i in self.found.duplicate:
            return self.stored[self.found.duplicate[i]]
        for row in self.stored.values():
            if row.new is not None and row.user_identifier == user and row.digest == digest:
                return row
        return None

    def _near(self, user: str, memory: NewMemory, i: int) -> _Stored | None:
        """The customer's nearest current memory, if it is a near-duplicate."""
        scored = [(self.stored[mid], sim) for mid, sim in self.found.near.get(i, [])]
        for row in self.stored.values():
            if row.new is not None and row.user_identifier == user:
                scored.append((row, _cosine(memory.embedding, row.new.embedding)))
        current = [(row, sim) for row, sim in scored if row.valid_to is None and sim >= NEAR_DUPLICATE]
        return max(current, key=lambda x: x[1])[0] if current else None

    def _absorb(self, row: _Stored, memory: NewMemory, reason: str) -> None:
        """A repeated statement strengthens the memory; it is current again only if it was said
        at or after the time it had been superseded (an older replay never re-opens it)."""
        detail = {"reason": reason, "candidate": memory.content, "source_message_ids": memory.source_message_ids}
        self.events.append(_Event(row.id, row.user_identifier, "update", row.content, row.content, detail))
        row.source_message_ids = sorted(set(row.source_message_ids) | set(memory.source_message_ids))
        row.importance = max(row.importance or 0.0, memory.importance)
        if row.valid_to is not None and memory.valid_from >= row.valid_to:
            row.valid_to, row.superseded_by = None, None
        row.changed = True

    def _add(self, user: str, memory: NewMemory, digest: str) -> Outcome:
        row = _Stored(
            uuid.uuid4(),
            user,
            memory.content,
            sorted(set(memory.source_message_ids)),
            memory.valid_from,
            None,
            memory.subject,
            memory.replaces,
            importance=memory.importance,
            new=memory,
            digest=digest,
        )
        self.stored[row.id] = row
        added = {"source_message_ids": memory.source_message_ids}
        self.events.append(_Event(row.id, user, "add", None, memory.content, added))
        newer = self._newer_replacement(row) if memory.subject else None
        if newer is not None:  # said before a change of mind that was filed first
            row.valid_to, row.superseded_by = newer.valid_from, newer.id
            replayed = {"superseded_by": str(newer.id), "replayed": True}
            self.events.append(_Event(row.id, user, "supersede", memory.content, newer.content, replayed))
            return row.id, "added_superseded"
        closed = self._supersede(row.id, memory) if memory.replaces else 0
        return row.id, "superseded" if closed else "added"

    def _of_subject(self, user: str, subject: str | None) -> list[_Stored]:
        return [
            r for r in self.stored.values() if r.user_identifier == user and r.subject == subject and r.valid_to is None
        ]

    def _newer_replacement(self, row: _Stored) -> _Stored | None:
        """The newer replacing memory of its subject that had already superseded what it says."""
        newer = [
            r
            for r in self._of_subject(row.user_identifier, row.subject)
            if r.id != row.id and r.replaces and r.valid_from > row.valid_from
        ]
        return min(newer, key=lambda r: r.valid_from) if newer else None

    def _supersede(self, new_id: uuid.UUID, memory: NewMemory) -> int:
        """Close the current memories of the subject that are older than ``memory``."""
        if not memory.subject:
            return 0
        user = self.stored[new_id].user_identifier
        old = sorted(
            (r for r in self._of_subject(user, memory.subject) if r.id != new_id and r.valid_from < memory.valid_from),
            key=lambda r: (r.valid_from, str(r.id)),
        )
        for row in old:
            row.valid_to, row.superseded_by, row.changed = memory.valid_from, new_id, True
            detail = {"superseded_by": str(new_id), "source_message_ids": memory.source_message_ids}
            self.events.append(_Event(row.id, user, "supersede", row.content, memory.content, detail))
        return len(old)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b)) / norms if norms else 0.0


def _pg_array(values: Iterable[object]) -> str:
    """A PostgreSQL array literal of numbers or hex digests (nothing that needs quoting)."""
    return "{" + ",".join(str(v) for v in values) + "}"


async def _write(conn: Conn, filing: _Filing) -> None:
    added = [r for r in filing.stored.values() if r.new is not None]
    changed = [r for r in filing.stored.values() if r.new is None and r.changed]
    if not filing.events:
        return
    await conn.execute(WRITE, *_added_columns(added), *_changed_columns(changed), *_event_columns(filing.events))


def _added_columns(rows: list[_Stored]) -> list[list[object]]:
    news = [(r, r.new) for r in rows if r.new is not None]
    return [
        [r.id for r, _ in news],
        [r.user_identifier for r, _ in news],
        [m.kind for _, m in news],
        [m.content for _, m in news],
        [m.subject for _, m in news],
        [Vector(m.embedding) for _, m in news],
        [r.importance for r, _ in news],
        [m.valid_from for _, m in news],
        [r.valid_to for r, _ in news],
        [r.superseded_by for r, _ in news],
        [_pg_array(r.source_message_ids) for r, _ in news],
        [r.digest for r, _ in news],
        [json.dumps(m.metadata | ({"replaces": True} if m.replaces else {})) for _, m in news],
    ]


def _changed_columns(rows: list[_Stored]) -> list[list[object]]:
    return [
        [r.id for r in rows],
        [_pg_array(r.source_message_ids) for r in rows],
        [r.importance for r in rows],
        [r.valid_to for r in rows],
        [r.superseded_by for r in rows],
    ]


def _event_columns(events: list[_Event]) -> list[list[object]]:
    return [
        [e.memory_id for e in events],
        [e.user_identifier for e in events],
        [e.event for e in events],
        [e.old_content for e in events],
        [e.new_content for e in events],
        [json.dumps(e.detail) for e in events],
    ]


async def history(conn: Executor, user_identifier: str, memory_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(HISTORY, memory_id, user_identifier)


async def get(conn: Executor, user_identifier: str, memory_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(GET, memory_id, user_identifier)


async def page(
    conn: Executor,
    user_identifier: str,
    *,
    include_superseded: bool,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[asyncpg.Record]:
    """Newest first; ``before`` is the (created_at, id) of the previous page's last row."""
    at, mid = before if before else (None, None)
    return await conn.fetch(PAGE, user_identifier, include_superseded, at, mid, limit)


async def delete(conn: Conn, user_identifier: str, memory_id: uuid.UUID, *, through_message_id: int) -> Deleted | None:
    """Delete one memory and scrub its words from the history (call inside a transaction);
    records a ``delete`` event whose marker keeps candidates from messages up to
    ``through_message_id`` from bringing it back (module docstring). None when the customer
    has no such memory."""
    row = await conn.fetchrow(DELETE, memory_id, user_identifier)
    if row is None:
        return None
    fact_keys = [str(k) for k in _list(row["fact_keys"])]
    scrubbed = await conn.execute(SCRUB_EVENTS, memory_id, user_identifier)
    marker = {
        "through_message_id": through_message_id,
        "content_hash": row["content_hash"],
        "facts": [fact_hash(k) for k in fact_keys],
    }
    await conn.execute(EVENT, memory_id, user_identifier, "delete", None, None, json.dumps({"forgotten": marker}))
    return Deleted(int(scrubbed.split()[-1]), fact_keys)


async def forgotten_facts(conn: Conn, users: list[str]) -> dict[str, dict[str, int]]:
    """The preferences these customers had forgotten with deleted memories: per customer,
    fact hash (:func:`fact_hash`) -> the newest message id when it was forgotten."""
    out: dict[str, dict[str, int]] = {}
    for r in await conn.fetch(FORGOTTEN_FACTS, sorted(set(users))):
        out.setdefault(r["user_identifier"], {})[r["fact"]] = int(r["through"])
    return out


def _list(value: object) -> list[object]:
    loaded = json.loads(value) if isinstance(value, str) else value
    return list(loaded) if isinstance(loaded, list) else []


async def list_for_user(
    conn: Executor, user_identifier: str, *, include_superseded: bool = False, limit: int = 100
) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_FOR_USER, user_identifier, include_superseded, limit)


async def touch(conn: Conn, served: dict[tuple[str, uuid.UUID], int]) -> None:
    """Count accesses to memories served in contexts: ``(customer, memory) -> times``."""
    if served:
        keys = sorted(served, key=lambda k: k[1])  # the same order in every process
        await conn.execute(TOUCH, [u for u, _ in keys], [m for _, m in keys], [served[k] for k in keys])


async def counts_for_user(conn: Conn, user_identifier: str) -> dict[str, int]:
    return _counts(await conn.fetchrow(COUNTS_FOR_USER, user_identifier))


async def counts(conn: Conn) -> dict[str, int]:
    return _counts(await conn.fetchrow(COUNTS))


def _counts(row: asyncpg.Record | None) -> dict[str, int]:
    return {k: int(v) for k, v in (row or {}).items()}
