"""The short-term tier: sessions and messages in PostgreSQL.

Storing a message and queueing its ingestion job happen in one transaction, so the
chat call can return at once without ever losing what the customer said.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from loft_memory.models import Session, SessionMessage
from service.errors import NotFound
from service.pagination import decode_cursor, encode_cursor
from service.postgres import queue, tombstones, users
from service.settings import DEFAULT_MAX_SPEAKERS
from vectors.pg import Conn

CREATE_SESSION = """
INSERT INTO sessions (id, user_identifier, channel, started_at, last_message_at, metadata)
VALUES ($1, $2, $3, $4, $4, $5::jsonb)
ON CONFLICT (id) DO NOTHING
"""

SESSION_OWNER = "SELECT user_identifier FROM sessions WHERE id = $1"
SESSION_OF_USER = "SELECT 1 FROM sessions WHERE id = $1 AND user_identifier = $2 FOR KEY SHARE"

# the names of the people who speak in the customer's history (users.speakers), oldest first: the
# names not there yet are added at the end in the order given, and only the last $3 are kept
ADD_SPEAKERS = """
UPDATE users SET speakers = (
  SELECT grown[greatest(1, cardinality(grown) - $3 + 1):]
  FROM (SELECT speakers || ARRAY(SELECT s FROM unnest($2::text[]) WITH ORDINALITY AS n(s, i)
                                 WHERE s <> ALL(speakers) ORDER BY i) AS grown) added
)
WHERE user_identifier = $1 AND NOT speakers @> $2::text[]
"""
INSERT_MESSAGE = """
INSERT INTO messages (session_id, user_identifier, role, speaker, content, external_id, created_at, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
ON CONFLICT (user_identifier, external_id) DO NOTHING
RETURNING id, created_at
"""

TOUCH_SESSION = """
UPDATE sessions SET last_message_at = greatest(last_message_at, $2),
                    started_at = least(started_at, $2)
WHERE id = $1
"""

LIST_SESSIONS = """
SELECT id, channel, started_at, last_message_at, metadata
FROM sessions
WHERE user_identifier = $1
  AND ($2::timestamptz IS NULL OR (last_message_at, id) < ($2, $3::uuid))
ORDER BY last_message_at DESC, id DESC
LIMIT $4
"""

# the newest turns of each listed session (one more than shown: whether older ones exist)
SESSION_MESSAGES = """
SELECT s.id AS session_id, m.id, m.role, m.speaker, m.content, m.external_id, m.created_at
FROM unnest($1::uuid[]) AS s(id)
CROSS JOIN LATERAL (
  SELECT id, role, speaker, content, external_id, created_at FROM messages
  WHERE session_id = s.id AND user_identifier = $2
  ORDER BY created_at DESC, id DESC LIMIT $3
) m
"""

SESSION_OF = "SELECT 1 FROM sessions WHERE id = $1 AND user_identifier = $2"
# a session's turns older than a cursor, newest first (the page is put in order afterwards)
SESSION_PAGE = """
SELECT id, role, speaker, content, external_id, created_at FROM messages
WHERE session_id = $1 AND user_identifier = $2
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::bigint))
ORDER BY created_at DESC, id DESC
LIMIT $5
"""

RECENT_TURNS = """
SELECT id, role, speaker, content, created_at FROM (
  SELECT id, role, speaker, content, created_at FROM messages
  WHERE session_id = $1 AND user_identifier = $2 ORDER BY created_at DESC, id DESC LIMIT $3
) t ORDER BY created_at, id
"""

# -- the worker's reads and writes -------------------------------------------------------------

STORED_BY_EXTERNAL_ID = "SELECT id, created_at FROM messages WHERE user_identifier = $1 AND external_id = $2"
BY_ID = """
SELECT id, session_id, user_identifier, role, speaker, content, created_at
FROM messages WHERE id = ANY($1::bigint[]) ORDER BY id
"""
# the newest only: any ingestion still pending re-arms the summary when it completes anyway
SESSION_UNEMBEDDED = "SELECT id FROM messages WHERE session_id = $1 AND embedding IS NULL ORDER BY id DESC LIMIT $2"
# the messages of a batch that still exist, locked until the worker's transaction ends
# (an erasure, which deletes them, waits for it)
LOCK_LIVE = "SELECT id FROM messages WHERE id = ANY($1::bigint[]) FOR KEY SHARE"
UNEMBEDDED = "SELECT id FROM messages WHERE id = ANY($1::bigint[]) AND embedding IS NULL FOR UPDATE"
SET_EMBEDDING = "UPDATE messages SET embedding = $2 WHERE id = $1"
# document frequencies for BM25 (``user_terms``), counted once per message: when it is
# first embedded
COUNT_TERMS = """
INSERT INTO user_terms (user_identifier, lexeme, ndoc)
SELECT m.user_identifier, t.lexeme, count(*)
FROM messages m, unnest(m.tsv) AS t(lexeme, positions, weights)
WHERE m.id = ANY($1::bigint[])
GROUP BY 1, 2
ON CONFLICT (user_identifier, lexeme) DO UPDATE SET ndoc = user_terms.ndoc + excluded.ndoc
"""

# -- what a session summary reads and marks ------------------------------------------------

SESSION_TURNS = """
SELECT id, role, speaker, content, created_at, embedding FROM (
  SELECT id, role, speaker, content, created_at, embedding FROM messages
  WHERE session_id = $1 AND user_identifier = $2 ORDER BY created_at DESC, id DESC LIMIT $3
) t ORDER BY created_at, id
"""
MARK_SUMMARIZED = "UPDATE sessions SET summarized_at = now() WHERE id = $1"
RECENT_USER_MESSAGES = """
SELECT content, created_at FROM messages WHERE user_identifier = $1 AND role = 'user'
ORDER BY created_at DESC, id DESC LIMIT $2
"""
COUNTS_FOR_USER = """
SELECT (SELECT count(*) FROM sessions WHERE user_identifier = $1) AS sessions,
       (SELECT count(*) FROM messages WHERE user_identifier = $1) AS messages
"""
COUNTS = "SELECT (SELECT count(*) FROM sessions) AS sessions, (SELECT count(*) FROM messages) AS messages"

LATEST_SESSION = """
SELECT id FROM sessions WHERE user_identifier = $1 ORDER BY last_message_at DESC LIMIT 1
"""

# -- forgetting a session or one of its turns (service.core.erasure runs these under its fence) --

LOCK_SESSION = "SELECT 1 FROM sessions WHERE id = $1 AND user_identifier = $2 FOR UPDATE"
SESSION_MESSAGE_IDS = "SELECT id FROM messages WHERE session_id = $1 AND user_identifier = $2"
LOCK_MESSAGE = """
SELECT id, role, speaker, content, external_id, created_at FROM messages
WHERE id = $1 AND session_id = $2 AND user_identifier = $3 FOR UPDATE
"""
# the turns' share of the customer's BM25 document frequencies (counted once per turn, when
# it was first embedded): a lexeme only they contained goes, the others count them no more
UNCOUNT_TERMS = """
WITH gone AS (
  SELECT t.lexeme, count(*) AS n
  FROM messages m, unnest(m.tsv) AS t(lexeme, positions, weights)
  WHERE m.id = ANY($2::bigint[]) AND m.user_identifier = $1 AND m.embedding IS NOT NULL
  GROUP BY 1
),
dropped AS (
  DELETE FROM user_terms u USING gone
  WHERE u.user_identifier = $1 AND u.lexeme = gone.lexeme AND u.ndoc <= gone.n
  RETURNING 1
)
UPDATE user_terms u SET ndoc = u.ndoc - gone.n FROM gone
WHERE u.user_identifier = $1 AND u.lexeme = gone.lexeme AND u.ndoc > gone.n
"""
DELETE_MESSAGES = """
WITH d AS (DELETE FROM messages WHERE id = ANY($1::bigint[]) AND user_identifier = $2 RETURNING 1)
SELECT count(*) FROM d
"""
DELETE_SESSION = "DELETE FROM sessions WHERE id = $1 AND user_identifier = $2"
# after a turn went: the session's newest remaining turn (None when it has none)
NEWEST_TURN_AT = "SELECT max(created_at) FROM messages WHERE session_id = $1 AND user_identifier = $2"
RESET_LAST_MESSAGE_AT = "UPDATE sessions SET last_message_at = $2 WHERE id = $1"


@dataclass(frozen=True)
class NewMessage:
    role: str
    content: str
    created_at: datetime | None = None
    speaker: str | None = None
    external_id: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class QueuedMessage:
    """A stored message as the worker files it (:data:`BY_ID`'s columns)."""

    id: int
    session_id: uuid.UUID
    user_identifier: str
    role: str
    speaker: str | None
    content: str
    created_at: datetime


@dataclass(frozen=True)
class StoredMessage:
    id: int
    created_at: datetime
    created: bool  # False when an import re-sent a message already stored


async def ensure_session(
    conn: Conn,
    user_identifier: str,
    session_id: uuid.UUID | None,
    *,
    at: datetime,
    channel: str = "chat",
    tombstone_key: bytes | None = None,
) -> uuid.UUID:
    """The customer (created if new) and their session: ``session_id`` must be theirs, or
    None for a new one. With ``tombstone_key`` (the erasure key; the API's routes pass it),
    a session of this customer that was erased answers 410 rather than 404."""
    await users.ensure(conn, user_identifier)
    if session_id is None:
        session_id = uuid.uuid4()
        await conn.execute(CREATE_SESSION, session_id, user_identifier, channel, at, "{}")
        return session_id
    owner = await conn.fetchval(SESSION_OWNER, session_id)
    if owner is None:
        if tombstone_key is not None:
            await tombstones.refuse_replays(conn, tombstone_key, user_identifier, sessions=[session_id])
        raise NotFound(f"session {session_id} does not exist")
    if owner != user_identifier:
        # do not reveal that another customer's session exists
        raise NotFound(f"session {session_id} does not exist")
    return session_id


async def create_session(
    conn: Conn,
    user_identifier: str,
    session_id: uuid.UUID,
    *,
    at: datetime,
    channel: str,
    tombstone_key: bytes | None = None,
) -> None:
    """Create a session with a client-chosen id (imports); an existing one must be the user's.
    With ``tombstone_key``, an id this customer's erased history used is refused (410)."""
    await users.ensure(conn, user_identifier)
    if tombstone_key is not None:
        await tombstones.refuse_replays(conn, tombstone_key, user_identifier, sessions=[session_id])
    await conn.execute(CREATE_SESSION, session_id, user_identifier, channel, at, "{}")
    owner = await conn.fetchval(SESSION_OWNER, session_id)
    if owner != user_identifier:
        # the same answer as for a session that does not exist: reveal nothing
        raise NotFound(f"session {session_id} does not exist")


async def add_messages(
    conn: Conn,
    user_identifier: str,
    session_id: uuid.UUID,
    messages: list[NewMessage],
    *,
    summary_idle_s: float,
    lane: queue.Lane = "live",
    tombstone_key: bytes | None = None,
    max_speakers: int = DEFAULT_MAX_SPEAKERS,
) -> list[StoredMessage]:
    """Store messages and queue their ingestion (call inside a transaction). With
    ``tombstone_key`` (the erasure key: every route a client calls passes it), messages
    whose ``external_id`` this customer's erased history used are refused with 410 and
    nothing is stored; without it (demo, sample data and benchmark loaders) they are not
    checked.

    The names of the people who speak in them join the customer's ``speakers``, of which the
    ``max_speakers`` most recently introduced are kept (in one batch, the last to speak count
    as the most recent): every context matches its question against them, so an import of
    thousands of made-up speakers must not make every context of that customer slow."""
    await _claim_session(conn, user_identifier, session_id, messages, tombstone_key)
    stored: list[StoredMessage] = []
    now = datetime.now(UTC)
    latest = None
    for message in messages:
        at = message.created_at or now
        one = await _insert(conn, user_identifier, session_id, message, at, lane)
        stored.append(one)
        if one.created:
            latest = max(latest, at) if latest else at
    await _add_speakers(conn, user_identifier, messages, max_speakers)
    if latest is not None:
        await conn.execute(TOUCH_SESSION, session_id, latest)
        await arm_summary(conn, user_identifier, session_id, latest, summary_idle_s)
    return stored


async def _claim_session(
    conn: Conn, user_identifier: str, session_id: uuid.UUID, messages: list[NewMessage], tombstone_key: bytes | None
) -> None:
    """The session must still be the customer's (it may have been erased meanwhile): the
    key-share lock keeps it until this transaction commits. With ``tombstone_key``, an
    ``external_id`` of the customer's erased history is refused (410)."""
    await users.lock_shared(conn, user_identifier)
    if await conn.fetchval(SESSION_OF_USER, session_id, user_identifier) is None:
        raise NotFound(f"session {session_id} does not exist (or the customer was erased meanwhile)")
    if tombstone_key is not None:
        await tombstones.refuse_replays(
            conn, tombstone_key, user_identifier, messages=[m.external_id for m in messages]
        )


async def _insert(
    conn: Conn, user_identifier: str, session_id: uuid.UUID, message: NewMessage, at: datetime, lane: queue.Lane
) -> StoredMessage:
    """Store one message and queue its ingestion; one whose ``external_id`` is stored
    already is found (``created`` False) and not queued again."""
    row = await conn.fetchrow(
        INSERT_MESSAGE,
        session_id,
        user_identifier,
        message.role,
        message.speaker,
        message.content,
        message.external_id,
        at,
        json.dumps(message.metadata or {}),
    )
    if row is None:  # duplicate external_id: already stored and queued
        existing = await conn.fetchrow(STORED_BY_EXTERNAL_ID, user_identifier, message.external_id)
        assert existing is not None  # the conflict that skipped the insert is this row
        return StoredMessage(existing["id"], existing["created_at"], False)
    await queue.enqueue(
        conn, "ingest_message", user_identifier, ingest_key(row["id"]), {"message_id": row["id"]}, lane=lane
    )
    return StoredMessage(row["id"], row["created_at"], True)


async def _add_speakers(conn: Conn, user_identifier: str, messages: list[NewMessage], max_speakers: int) -> None:
    """The names of the people who speak in ``messages`` join the customer's ``speakers``
    (the last to speak count as the most recently introduced)."""
    last_said = {m.speaker: i for i, m in enumerate(messages) if m.speaker}
    if last_said:
        speakers = sorted(last_said, key=last_said.__getitem__)[-max_speakers:]
        await conn.execute(ADD_SPEAKERS, user_identifier, speakers, max_speakers)


def ingest_key(message_id: int) -> str:
    """The queue's key of a message's ingestion job."""
    return f"ingest:{message_id}"


def summary_key(session_id: uuid.UUID) -> str:
    """The queue's key of a session's summary job."""
    return f"summary:{session_id}"


async def arm_summary(
    conn: Conn, user_identifier: str, session_id: uuid.UUID, latest: datetime, summary_idle_s: float
) -> None:
    """(Re)arm the session's summary: it runs once the session has been quiet for a while.

    Armed when messages arrive and again when the worker has ingested them, so a summary that
    ran while some of its messages were still being ingested is written again with them."""
    await arm_summaries(conn, {(user_identifier, session_id): latest}, summary_idle_s)


async def arm_summaries(conn: Conn, sessions: Mapping[tuple[str, uuid.UUID], datetime], summary_idle_s: float) -> None:
    """:func:`arm_summary` for many sessions ((customer, session) -> its latest message's
    time) in one statement: the worker re-arms a whole batch's sessions at once."""
    now, idle = datetime.now(UTC), timedelta(seconds=summary_idle_s)
    jobs = [
        queue.Debounced(user, summary_key(session_id), {"session_id": str(session_id)}, max(now, latest + idle))
        for (user, session_id), latest in sessions.items()
    ]
    await queue.enqueue_debounced(conn, "summarize_session", jobs)


async def unembedded_ids(conn: Conn, session_id: uuid.UUID, limit: int = 50) -> list[int]:
    """The session's newest messages that have no embedding (yet)."""
    return [r["id"] for r in await conn.fetch(SESSION_UNEMBEDDED, session_id, limit)]


async def ingestion_pending(conn: Conn, message_ids: list[int]) -> bool:
    """Whether any of these messages still waits for (or is in) its ingestion job."""
    return await queue.any_pending(conn, [ingest_key(i) for i in message_ids])


BY_EXTERNAL_ID = """
SELECT id, session_id, role, content, created_at FROM messages WHERE user_identifier = $1 AND external_id = $2
"""


NEWEST_MESSAGE_ID = "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('messages', 'id')), 0)"


async def newest_message_id(conn: Conn) -> int:
    """The id of the newest message stored so far, any customer's (ids only grow): every
    message stored before this call has an id at or below it."""
    return int(await conn.fetchval(NEWEST_MESSAGE_ID))


def reply_key(message_id: int) -> str:
    """The external id of the assistant's reply to a stored turn (one reply per turn)."""
    return f"reply:{message_id}"


@dataclass(frozen=True)
class ClientTurn:
    """A message stored under a client's id (:data:`BY_EXTERNAL_ID`'s columns)."""

    id: int
    session_id: uuid.UUID
    role: str
    content: str
    created_at: datetime


async def message_by_external_id(conn: Conn, user_identifier: str, external_id: str) -> ClientTurn | None:
    row = await conn.fetchrow(BY_EXTERNAL_ID, user_identifier, external_id)
    return ClientTurn(**row) if row else None


async def session_owner(conn: Conn, session_id: uuid.UUID) -> str | None:
    owner = await conn.fetchval(SESSION_OWNER, session_id)
    return None if owner is None else str(owner)


async def session_messages(conn: Conn, user_identifier: str, session_id: uuid.UUID, limit: int) -> list[asyncpg.Record]:
    """A session's newest ``limit`` turns, in order, with their embeddings."""
    return await conn.fetch(SESSION_TURNS, session_id, user_identifier, limit)


async def mark_summarized(conn: Conn, session_id: uuid.UUID) -> None:
    await conn.execute(MARK_SUMMARIZED, session_id)


async def recent_user_messages(conn: Conn, user_identifier: str, limit: int = 10) -> list[asyncpg.Record]:
    return await conn.fetch(RECENT_USER_MESSAGES, user_identifier, limit)


async def counts_for_user(conn: Conn, user_identifier: str) -> dict[str, int]:
    return _counts(await conn.fetchrow(COUNTS_FOR_USER, user_identifier))


async def counts(conn: Conn) -> dict[str, int]:
    return _counts(await conn.fetchrow(COUNTS))


async def messages_by_id(conn: Conn, ids: list[int]) -> list[QueuedMessage]:
    """The messages of ``ids`` that still exist, in order (an erased one is simply missing)."""
    return [QueuedMessage(**r) for r in await conn.fetch(BY_ID, ids)]


async def lock_live_messages(conn: Conn, ids: list[int]) -> set[int]:
    return {r["id"] for r in await conn.fetch(LOCK_LIVE, ids)}


async def store_embeddings(conn: Conn, vectors: list[tuple[int, Any]]) -> None:
    """Set message embeddings (idempotent) and count the terms of newly embedded ones."""
    if not vectors:
        return
    fresh = [r["id"] for r in await conn.fetch(UNEMBEDDED, [mid for mid, _ in vectors])]
    await conn.executemany(SET_EMBEDDING, vectors)
    if fresh:
        await conn.execute(COUNT_TERMS, fresh)


async def list_sessions(
    pool: asyncpg.Pool,
    user_identifier: str,
    *,
    limit: int,
    cursor: str | None,
    key: bytes,
    per_session: int,
) -> tuple[list[Session], str | None]:
    """A page of the customer's sessions, newest first, each with its newest ``per_session``
    turns (in order) and, when it has older ones, the cursor of :func:`session_page` that
    reads them: one listing never holds more than ``limit * per_session`` turns."""
    before_at, before_id = (
        decode_cursor(key, _sessions_list(user_identifier), cursor, uuid.UUID) if cursor else (None, None)
    )
    async with pool.acquire() as conn:
        sessions = await conn.fetch(LIST_SESSIONS, user_identifier, before_at, before_id, limit + 1)
        page, more = sessions[:limit], len(sessions) > limit
        messages = (
            await conn.fetch(SESSION_MESSAGES, [s["id"] for s in page], user_identifier, per_session + 1)
            if page
            else []
        )
    by_session: dict[uuid.UUID, list[asyncpg.Record]] = {}
    for m in messages:
        by_session.setdefault(m["session_id"], []).append(m)
    out = []
    for s in page:
        newest = by_session.get(s["id"], [])
        shown = newest[:per_session][::-1]
        out.append(
            Session(
                id=s["id"],
                channel=s["channel"],
                started_at=s["started_at"],
                last_message_at=s["last_message_at"],
                messages=[_message(m) for m in shown],
                messages_cursor=_older(key, user_identifier, s["id"], shown[0]) if len(newest) > per_session else None,
            )
        )
    next_cursor = (
        encode_cursor(key, _sessions_list(user_identifier), page[-1]["last_message_at"], page[-1]["id"])
        if more
        else None
    )
    return out, next_cursor


async def session_page(
    pool: asyncpg.Pool, user_identifier: str, session_id: uuid.UUID, *, limit: int, cursor: str | None, key: bytes
) -> tuple[list[SessionMessage], str | None]:
    """A session's turns older than ``cursor`` (its newest without one), at most ``limit``,
    in order, and the cursor of the page before them (None at the session's start).
    Another customer's session is not found, exactly as a session that does not exist."""
    before_at, before_id = (
        decode_cursor(key, _session_turns(user_identifier, session_id), cursor, int) if cursor else (None, None)
    )
    async with pool.acquire() as conn:
        if await conn.fetchval(SESSION_OF, session_id, user_identifier) is None:
            raise NotFound(f"session {session_id} does not exist")
        rows = await conn.fetch(SESSION_PAGE, session_id, user_identifier, before_at, before_id, limit + 1)
    shown = list(rows[:limit])[::-1]
    older = _older(key, user_identifier, session_id, shown[0]) if len(rows) > limit else None
    return [_message(m) for m in shown], older


def _sessions_list(user_identifier: str) -> str:
    return f"sessions\x00{user_identifier}"


def _session_turns(user_identifier: str, session_id: uuid.UUID) -> str:
    return f"session-messages\x00{user_identifier}\x00{session_id}"


def _older(key: bytes, user_identifier: str, session_id: uuid.UUID, oldest_shown: asyncpg.Record) -> str:
    """The cursor of a session's turns before ``oldest_shown``."""
    return encode_cursor(
        key, _session_turns(user_identifier, session_id), oldest_shown["created_at"], oldest_shown["id"]
    )


def _message(m: asyncpg.Record) -> SessionMessage:
    return SessionMessage(
        id=m["id"],
        role=m["role"],
        speaker=m["speaker"],
        content=m["content"],
        external_id=m["external_id"],
        created_at=m["created_at"],
    )


async def recent_turns(conn: Conn, user_identifier: str, session_id: uuid.UUID, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(RECENT_TURNS, session_id, user_identifier, limit)


def _counts(row: asyncpg.Record | None) -> dict[str, int]:
    return {k: int(v) for k, v in (row or {}).items()}


async def lock_session(conn: Conn, user_identifier: str, session_id: uuid.UUID) -> list[int] | None:
    """Lock the customer's session for deletion (a turn being added to it waits, then finds
    it gone) and return its turns' ids; None when it is not theirs."""
    if await conn.fetchval(LOCK_SESSION, session_id, user_identifier) is None:
        return None
    return [r["id"] for r in await conn.fetch(SESSION_MESSAGE_IDS, session_id, user_identifier)]


async def lock_message(
    conn: Conn, user_identifier: str, session_id: uuid.UUID, message_id: int
) -> SessionMessage | None:
    """Lock one turn of the customer's session for deletion; None when there is no such turn."""
    row = await conn.fetchrow(LOCK_MESSAGE, message_id, session_id, user_identifier)
    return None if row is None else _message(row)


async def delete_messages(conn: Conn, user_identifier: str, message_ids: list[int]) -> int:
    """Delete turns (locked by :func:`lock_session` or :func:`lock_message`) and their share
    of the customer's term statistics; returns how many went. Their passages go with them
    (``ON DELETE CASCADE``; :mod:`vectors.passages` counts them first)."""
    if not message_ids:
        return 0
    await conn.execute(UNCOUNT_TERMS, user_identifier, message_ids)
    return int(await conn.fetchval(DELETE_MESSAGES, message_ids, user_identifier))


async def delete_session(conn: Conn, user_identifier: str, session_id: uuid.UUID) -> None:
    """Delete the (emptied) session row; its summary goes with it (``ON DELETE CASCADE``)."""
    await conn.execute(DELETE_SESSION, session_id, user_identifier)


async def newest_turn_at(conn: Conn, user_identifier: str, session_id: uuid.UUID) -> datetime | None:
    """When the session's newest turn was said, after a turn was deleted (moves the session's
    ``last_message_at`` back to it); None when the session has no turns left."""
    at: datetime | None = await conn.fetchval(NEWEST_TURN_AT, session_id, user_identifier)
    if at is not None:
        await conn.execute(RESET_LAST_MESSAGE_AT, session_id, at)
    return at
