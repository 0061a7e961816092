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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from vectors.pg import Conn, Executor

NEAR_DUPLICATE = 0.93

# the memory a new one would join, in one round trip: the customer's memory with the same
# content hash, else (unless $4: a replacing memory never merges by similarity) their
# nearest current memory if it is a near-duplicate. MATERIALIZED keeps the planner on the
# per-user rows instead of the global HNSW index.
FIND_SAME_OR_NEAR = """
WITH forgotten AS (
  SELECT 1 FROM memory_events
  WHERE user_identifier = $1 AND event = 'delete' AND detail ? 'forgotten'
    AND (detail->'forgotten'->>'through_message_id')::bigint >= $6
    AND (detail->'forgotten'->>'content_hash' = $2 OR detail->'forgotten'->'facts' ?| $7::text[])
  LIMIT 1
),
same AS (
  SELECT id, content, source_message_ids FROM long_term_memories
  WHERE user_identifier = $1 AND content_hash = $2 LIMIT 1
),
mine AS MATERIALIZED (
  SELECT id, content, source_message_ids, embedding FROM long_term_memories
  WHERE user_identifier = $1 AND valid_to IS NULL AND NOT $4 AND NOT EXISTS (SELECT 1 FROM same)
),
near AS (
  SELECT id, content, source_message_ids, 1 - (embedding <=> $3) AS similarity FROM mine
  ORDER BY embedding <=> $3 LIMIT 1
)
SELECT NULL::uuid AS id, NULL AS content, NULL::bigint[] AS source_message_ids, 'forgotten' AS reason FROM forgotten
UNION ALL
SELECT id, content, source_message_ids, 'duplicate' AS reason FROM same
UNION ALL
SELECT id, content, source_message_ids, 'near_duplicate' FROM near WHERE similarity >= $5
"""

# a new memory and its ``add`` event, in one round trip
INSERT = """
WITH added AS (
  INSERT INTO long_term_memories (id, user_identifier, kind, content, subject, embedding, importance,
                                  valid_from, source_message_ids, content_hash, metadata)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)
  RETURNING id, user_identifier, content
)
INSERT INTO memory_events (memory_id, user_identifier, event, old_content, new_content, detail)
SELECT id, user_identifier, 'add', NULL, content, $12::jsonb FROM added
"""

# a repeated statement strengthens the memory; it is current again only if it was said
# at or after the time it had been superseded (an older replay never re-opens it). Its
# ``update`` event goes in the same round trip.
ABSORB = """
WITH absorbed AS (
  UPDATE long_term_memories
  SET source_message_ids = (SELECT array_agg(DISTINCT x ORDER BY x) FROM unnest(source_message_ids || $2::bigint[]) x),
      importance = greatest(importance, $3), updated_at = now(),
      superseded_by = CASE WHEN valid_to IS NOT NULL AND $4 >= valid_to THEN NULL ELSE superseded_by END,
      valid_to = CASE WHEN valid_to IS NOT NULL AND $4 >= valid_to THEN NULL ELSE valid_to END
  WHERE id = $1
  RETURNING id
)
INSERT INTO memory_events (memory_id, user_identifier, event, old_content, new_content, detail)
SELECT id, $5, 'update', $6, $6, $7::jsonb FROM absorbed
"""

# what a replacing memory closes: the current memories of its subject that are older
CURRENT_OF_SUBJECT = """
SELECT id, content FROM long_term_memories
WHERE user_identifier = $1 AND subject = $2 AND valid_to IS NULL AND id <> $3 AND valid_from < $4
"""

# a memory replayed late: the newer replacing memory of its subject that had already
# superseded what it says, if any
NEWER_REPLACEMENT = """
SELECT id, content, valid_from FROM long_term_memories
WHERE user_identifier = $1 AND subject = $2 AND valid_to IS NULL AND valid_from > $3
  AND (metadata->>'replaces')::boolean
ORDER BY valid_from LIMIT 1
"""

SUPERSEDE = """
UPDATE long_term_memories SET valid_to = $2, superseded_by = $3, updated_at = now() WHERE id = $1
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
    metadata: dict[str, Any] = field(default_factory=dict)


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


async def add_memory(conn: Conn, user_identifier: str, memory: NewMemory) -> tuple[uuid.UUID | None, str]:
    """Add, absorb or supersede (call inside a transaction). Returns (id, what happened);
    (None, "forgotten") for a memory the customer had deleted, from a message sent before."""
    digest = content_hash(memory.content)
    rows = await conn.fetch(
        FIND_SAME_OR_NEAR,
        user_identifier,
        digest,
        memory.embedding,
        memory.replaces,
        NEAR_DUPLICATE,
        max(memory.source_message_ids, default=0),
        [fact_hash(k) for k in memory.metadata.get("fact_keys") or []],
    )
    if any(r["reason"] == "forgotten" for r in rows):
        return None, "forgotten"
    same = rows[0] if rows else None
    if same is not None:
        reason = same["reason"]  # "duplicate" or "near_duplicate"
        if set(memory.source_message_ids) <= set(same["source_message_ids"]):
            return same["id"], "unchanged"  # a retried job: this message was already absorbed
        await conn.execute(
            ABSORB,
            same["id"],
            memory.source_message_ids,
            memory.importance,
            memory.valid_from,
            user_identifier,
            same["content"],
            json.dumps(
                {"reason": reason, "candidate": memory.content, "source_message_ids": memory.source_message_ids}
            ),
        )
        closed = await _supersede(conn, user_identifier, same["id"], memory) if memory.replaces else 0
        return same["id"], "updated" if not closed else "superseded"

    memory_id = uuid.uuid4()
    metadata = memory.metadata | ({"replaces": True} if memory.replaces else {})
    await conn.execute(
        INSERT,
        memory_id,
        user_identifier,
        memory.kind,
        memory.content,
        memory.subject,
        memory.embedding,
        memory.importance,
        memory.valid_from,
        memory.source_message_ids,
        digest,
        json.dumps(metadata),
        json.dumps({"source_message_ids": memory.source_message_ids}),
    )
    if memory.subject:
        newer = await conn.fetchrow(NEWER_REPLACEMENT, user_identifier, memory.subject, memory.valid_from)
        if newer is not None:  # said before a change of mind that was filed first
            await conn.execute(SUPERSEDE, memory_id, newer["valid_from"], newer["id"])
            await conn.execute(
                EVENT,
                memory_id,
                user_identifier,
                "supersede",
                memory.content,
                newer["content"],
                json.dumps({"superseded_by": str(newer["id"]), "replayed": True}),
            )
            return memory_id, "added_superseded"
    closed = await _supersede(conn, user_identifier, memory_id, memory) if memory.replaces else 0
    return memory_id, "superseded" if closed else "added"


async def _supersede(conn: Conn, user_identifier: str, new_id: uuid.UUID, memory: NewMemory) -> int:
    if not memory.subject:
        return 0
    old = await conn.fetch(CURRENT_OF_SUBJECT, user_identifier, memory.subject, new_id, memory.valid_from)
    for row in old:
        await conn.execute(SUPERSEDE, row["id"], memory.valid_from, new_id)
        await conn.execute(
            EVENT,
            row["id"],
            user_identifier,
            "supersede",
            row["content"],
            memory.content,
            json.dumps({"superseded_by": str(new_id), "source_message_ids": memory.source_message_ids}),
        )
    return len(old)


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
