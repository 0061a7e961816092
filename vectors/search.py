"""Vector and full-text search over a customer's long-term tier and message history.

Per-customer searches are exact: the customer's rows are selected first through the
btree on ``user_identifier`` (MATERIALIZED CTEs, so the planner cannot switch to the
global HNSW index and post-filter), then ranked by cosine distance. At a few hundred to
a few thousand rows per customer this is ~1 ms and never misses a row.

Full-text search matches an OR of the query's lexemes (``plainto_tsquery`` would AND
them, which natural questions rarely satisfy) and ranks hits by BM25 with binary term
frequency, using per-customer document frequencies (``user_terms``, kept by the worker).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import numpy as np

from vectors.embedder import DIM
from vectors.pg import Conn

# -- every per-customer search in one round trip ---------------------------------------------
# The hot path asks PostgreSQL once: the customer's current memories, turns and summaries are
# selected through their btrees into MATERIALIZED CTEs (only referenced parts are computed),
# then each source ranks them. One statement instead of seven keeps the API's CPU per
# request down; a source with limit 0 costs nothing.

HYBRID = """
WITH terms AS (SELECT DISTINCT t.lexeme FROM unnest(to_tsvector('english', $3)) AS t(lexeme, positions, weights)),
q AS (SELECT CASE WHEN count(*) = 0 THEN NULL
                  ELSE to_tsquery('english', string_agg(quote_literal(lexeme), ' | ')) END AS query FROM terms),
mem AS MATERIALIZED (
  SELECT id, kind, content, embedding, importance, valid_from, source_message_ids, metadata, tsv
  FROM long_term_memories WHERE user_identifier = $1 AND valid_to IS NULL
),
msg AS MATERIALIZED (
  SELECT id, session_id, role, speaker, content, created_at, external_id, embedding, tsv, length(tsv) AS len
  FROM messages WHERE user_identifier = $1
),
summ AS MATERIALIZED (
  SELECT id, session_id, summary, first_message_at, source_message_ids, embedding, tsv
  FROM conversation_summaries WHERE user_identifier = $1
),
corpus AS (SELECT greatest(count(*), 1) AS n, greatest(avg(len), 1) AS avglen FROM msg),
-- BM25 inverse document frequency of each query lexeme over this customer's messages
idf AS MATERIALIZED (
  SELECT t.lexeme, ln(1 + (c.n - coalesce(u.ndoc, 0) + 0.5) / (coalesce(u.ndoc, 0) + 0.5)) AS w
  FROM terms t CROSS JOIN corpus c
  LEFT JOIN user_terms u ON u.user_identifier = $1 AND u.lexeme = t.lexeme
)
(SELECT 'memories_vector' AS source, id::text AS id, kind, content, NULL::text AS speaker, NULL::text AS role,
        valid_from AS ts, importance, source_message_ids, metadata::text AS metadata, 1 - (embedding <=> $2) AS score,
        NULL::uuid AS session_id
 FROM mem ORDER BY embedding <=> $2 LIMIT $4)
UNION ALL
(SELECT 'memories_text', m.id::text, m.kind, m.content, NULL, NULL, m.valid_from, m.importance, m.source_message_ids,
        m.metadata::text, (SELECT sum(w) FROM idf WHERE idf.lexeme = ANY(tsvector_to_array(m.tsv))), NULL
 FROM mem m, q WHERE q.query IS NOT NULL AND m.tsv @@ q.query ORDER BY 11 DESC, 2 LIMIT $5)
UNION ALL
(SELECT 'messages_vector', id::text, 'message', content, speaker, role, created_at, 0.5, ARRAY[id], NULL,
        1 - (embedding <=> $2), session_id
 FROM msg WHERE embedding IS NOT NULL ORDER BY embedding <=> $2 LIMIT $6)
UNION ALL
-- BM25 with binary term frequency (k1 = 1.2, b = 0.75)
(SELECT 'messages_text', m.id::text, 'message', m.content, m.speaker, m.role, m.created_at, 0.5, ARRAY[m.id], NULL,
        (SELECT sum(w) FROM idf WHERE idf.lexeme = ANY(tsvector_to_array(m.tsv)))
          * 2.2 / (1 + 1.2 * (0.25 + 0.75 * m.len / c.avglen)), m.session_id
 FROM msg m, q, corpus c WHERE q.query IS NOT NULL AND m.tsv @@ q.query ORDER BY 11 DESC, 2 LIMIT $7)
UNION ALL
(SELECT 'summaries_vector', id::text, 'summary', summary, NULL, NULL, first_message_at, 0.5, source_message_ids, NULL,
        1 - (embedding <=> $2), session_id
 FROM summ ORDER BY embedding <=> $2 LIMIT $8)
UNION ALL
(SELECT 'summaries_text', s.id::text, 'summary', s.summary, NULL, NULL, s.first_message_at, 0.5, s.source_message_ids,
        NULL, (SELECT sum(w) FROM idf WHERE idf.lexeme = ANY(tsvector_to_array(s.tsv))), s.session_id
 FROM summ s, q WHERE q.query IS NOT NULL AND s.tsv @@ q.query ORDER BY 11 DESC, 2 LIMIT $9)
UNION ALL
(SELECT 'recent_turns', id::text, 'message', content, speaker, role, created_at, 0.5, ARRAY[id], NULL, 0, session_id
 FROM msg WHERE session_id = $10 ORDER BY created_at DESC, id DESC LIMIT $11)
UNION ALL
(SELECT 'latest', NULL, NULL, NULL, NULL, NULL, max(created_at), NULL, NULL, NULL, 0, NULL FROM msg)
"""

HYBRID_SOURCES = (
    "memories_vector",
    "memories_text",
    "messages_vector",
    "messages_text",
    "summaries_vector",
    "summaries_text",
    "recent_turns",
)


@dataclass
class Hybrid:
    """What ``hybrid`` found: rows per source, and the customer's newest turn's time."""

    rows: dict[str, list[asyncpg.Record]]
    latest: datetime | None = None


async def hybrid(
    conn: Conn,
    user: str,
    embedding: np.ndarray | None,
    text: str,
    limits: dict[str, int],
    session_id: uuid.UUID | None = None,
) -> Hybrid:
    """Every per-customer source in one statement: each source's rows, best first."""
    vector_ok = embedding is not None
    rows = await conn.fetch(
        HYBRID,
        user,
        embedding if vector_ok else np.zeros(DIM, dtype=np.float32),
        text,
        limits.get("memories_vector", 0) if vector_ok else 0,
        limits.get("memories_text", 0) if text else 0,
        limits.get("messages_vector", 0) if vector_ok else 0,
        limits.get("messages_text", 0) if text else 0,
        limits.get("summaries_vector", 0) if vector_ok else 0,
        limits.get("summaries_text", 0) if text else 0,
        session_id,
        limits.get("recent_turns", 0) if session_id is not None else 0,
    )
    out = Hybrid({name: [] for name in HYBRID_SOURCES})
    for row in rows:
        if row["source"] == "latest":
            out.latest = row["ts"]
        else:
            out.rows[row["source"]].append(row)
    out.rows["recent_turns"].reverse()  # oldest first
    return out


EXPAND = """
(SELECT n.id, n.session_id, n.role, n.speaker, n.content, n.created_at, h.id AS anchor
 FROM messages h
 JOIN LATERAL (
   (SELECT * FROM messages p WHERE p.session_id = h.session_id AND p.user_identifier = $1
      AND (p.created_at, p.id) < (h.created_at, h.id)
    ORDER BY p.created_at DESC, p.id DESC LIMIT $3)
   UNION ALL
   (SELECT * FROM messages f WHERE f.session_id = h.session_id AND f.user_identifier = $1
      AND (f.created_at, f.id) > (h.created_at, h.id)
    ORDER BY f.created_at, f.id LIMIT $3)
 ) n ON true
 WHERE h.id = ANY($2::bigint[]) AND h.user_identifier = $1)
UNION ALL
(SELECT id, session_id, role, speaker, content, created_at, NULL FROM messages
 WHERE user_identifier = $1 AND id = ANY($4::bigint[]))
"""


async def expand(conn: Conn, user: str, anchors: list[int], width: int, extra_ids: list[int]) -> list[asyncpg.Record]:
    """Neighbouring turns of ``anchors`` (``anchor`` set) and the turns ``extra_ids`` (``anchor`` NULL)."""
    if not (anchors and width) and not extra_ids:
        return []
    return await conn.fetch(EXPAND, user, anchors if width else [], width, extra_ids)
