"""Conversation summaries in pgvector: one per session, refreshed when it goes quiet.

Every statement on ``conversation_summaries`` lives here (the retriever's search reads
them in the hybrid statement of :mod:`vectors.search`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import numpy as np

from vectors.pg import Conn, Executor

UPSERT = """
INSERT INTO conversation_summaries (session_id, user_identifier, summary, key_entities, embedding, message_count,
                                    first_message_at, last_message_at, source_message_ids, method)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (session_id) DO UPDATE
SET summary = excluded.summary, key_entities = excluded.key_entities, embedding = excluded.embedding,
    message_count = excluded.message_count, first_message_at = excluded.first_message_at,
    last_message_at = excluded.last_message_at, source_message_ids = excluded.source_message_ids,
    method = excluded.method, updated_at = now()
"""
RECENT_FOR_USER = """
SELECT session_id, summary, key_entities, last_message_at FROM conversation_summaries
WHERE user_identifier = $1 ORDER BY last_message_at DESC LIMIT $2
"""
# a session's summary, or only if it was written from (and so may quote) one of these turns
DELETE_FOR_SESSION = """
WITH d AS (
  DELETE FROM conversation_summaries
  WHERE session_id = $1 AND user_identifier = $2 AND ($3::bigint[] IS NULL OR source_message_ids && $3::bigint[])
  RETURNING 1
)
SELECT count(*) FROM d
"""
COUNT_FOR_USER = "SELECT count(*) FROM conversation_summaries WHERE user_identifier = $1"
COUNT = "SELECT count(*) FROM conversation_summaries"


@dataclass(frozen=True)
class Summary:
    session_id: uuid.UUID
    user_identifier: str
    text: str
    key_entities: list[str]
    embedding: np.ndarray
    message_count: int
    first_message_at: datetime
    last_message_at: datetime
    source_message_ids: list[int]
    method: str  # "llm" | "extractive"


async def upsert(conn: Conn, s: Summary) -> None:
    await conn.execute(
        UPSERT,
        s.session_id,
        s.user_identifier,
        s.text,
        s.key_entities,
        s.embedding,
        s.message_count,
        s.first_message_at,
        s.last_message_at,
        s.source_message_ids,
        s.method,
    )


async def recent_for_user(conn: Executor, user: str, limit: int = 3) -> list[asyncpg.Record]:
    return await conn.fetch(RECENT_FOR_USER, user, limit)


async def count_for_user(conn: Executor, user: str) -> int:
    return int(await conn.fetchval(COUNT_FOR_USER, user))


async def count(conn: Executor) -> int:
    return int(await conn.fetchval(COUNT))


async def delete_for_session(conn: Conn, user: str, session_id: uuid.UUID, *, citing: list[int] | None = None) -> int:
    """Delete a session's summary; with ``citing``, only if it was written from one of those
    turns. Returns how many went (0 or 1)."""
    return int(await conn.fetchval(DELETE_FOR_SESSION, session_id, user, citing))
