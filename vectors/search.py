"""Vector and full-text search over a customer's long-term tier and message history.

Per-customer searches are exact: the customer's rows are selected first through the
btree on ``user_identifier`` (MATERIALIZED CTEs, so the planner cannot switch to the
global HNSW index and post-filter), then ranked by cosine distance. At a few hundred to
a few thousand rows per customer this is ~1 ms and never misses a row.

Full-text search matches an OR of the query's lexemes (``plainto_tsquery`` would AND
them, which natural questions rarely satisfy) and ranks hits by BM25 with binary term
frequency, using per-customer document frequencies (``user_terms``, kept by the worker).

A long message is also searched passage by passage (``vectors.passages``; the passages
of the head its own embedding covers have no embedding: the message's stands for them): it
ranks by its best passage when that beats the whole, and the row says which passage it was
(``passage_start``/``passage_end``, NULL when the message ranked as a whole), so its
text can be clipped around it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
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
                  -- 'simple': the lexemes are stemmed already; stemming them again ('japanes' -> 'japan')
                  -- would match words whose IDF was never looked up
                  ELSE to_tsquery('simple', string_agg(quote_literal(lexeme), ' | ')) END AS query FROM terms),
-- the customer's newest $17 memories, turns and summaries (through their btrees): however long
-- a history, one context reads a bounded part of it
mem AS MATERIALIZED (
  SELECT id, kind, content, embedding, importance, valid_from, source_message_ids, metadata, tsv
  FROM long_term_memories WHERE user_identifier = $1 AND valid_to IS NULL
  ORDER BY created_at DESC LIMIT $17
),
msg AS MATERIALIZED (
  SELECT id, session_id, role, speaker, content, created_at, external_id, embedding, tsv, length(tsv) AS len
  FROM messages WHERE user_identifier = $1
  ORDER BY created_at DESC LIMIT $17
),
pas AS MATERIALIZED (
  SELECT message_id, start_char, end_char, embedding, tsv, length(tsv) AS len
  FROM message_passages WHERE user_identifier = $1 AND message_id IN (SELECT id FROM msg)
),
summ AS MATERIALIZED (
  SELECT id, session_id, summary, first_message_at, source_message_ids, embedding, tsv
  FROM conversation_summaries WHERE user_identifier = $1
  ORDER BY last_message_at DESC LIMIT $17
),
corpus AS (SELECT greatest(count(*), 1) AS n, greatest(avg(len), 1) AS avglen FROM msg),
-- the speakers' names: in a turn they mostly address the other speaker ("Thanks, Melanie!"), so
-- a question naming someone matches the turns said *to* them; the turns' full-text search
-- leaves them out (memories, written in the third person, keep them); users.speakers, passed in
spk AS (SELECT DISTINCT t.lexeme FROM unnest($16::text[]) AS s(speaker),
        unnest(to_tsvector('english', s.speaker)) AS t(lexeme, positions, weights)),
qm AS (SELECT CASE WHEN count(*) = 0 THEN NULL
                   ELSE to_tsquery('simple', string_agg(quote_literal(lexeme), ' | ')) END AS query
       FROM terms WHERE lexeme NOT IN (SELECT lexeme FROM spk)),
-- BM25 inverse document frequency of each query lexeme over this customer's messages (a count
-- over their whole history, so at most the window's size when the window is not all of it), the
-- lexeme as a one-term tsquery (a text holds it when ``tsv @@ one``: a binary search in the
-- sorted tsvector, not an unnest of a long message's every lexeme) and whether it is a
-- speaker's name (left out of the turns' scores)
idf AS MATERIALIZED (
  SELECT t.lexeme, ln(1 + (c.n - d.df + 0.5) / (d.df + 0.5)) AS w,
         quote_literal(t.lexeme)::tsquery AS one, t.lexeme IN (SELECT lexeme FROM spk) AS named
  FROM terms t CROSS JOIN corpus c
  LEFT JOIN user_terms u ON u.user_identifier = $1 AND u.lexeme = t.lexeme
  CROSS JOIN LATERAL (SELECT least(coalesce(u.ndoc, 0), c.n) AS df) d
)
(SELECT 'memories_vector' AS source, id::text AS id, kind, content, NULL::text AS speaker, NULL::text AS role,
        valid_from AS ts, importance, source_message_ids, metadata::text AS metadata, 1 - (embedding <=> $2) AS score,
        NULL::uuid AS session_id, NULL::int AS passage_start, NULL::int AS passage_end,
        CASE WHEN $15 THEN embedding END AS embedding
 FROM mem ORDER BY embedding <=> $2, valid_from, content LIMIT $4)
UNION ALL
(SELECT 'memories_text', m.id::text, m.kind, m.content, NULL, NULL, m.valid_from, m.importance, m.source_message_ids,
        m.metadata::text, (SELECT sum(w) FROM idf WHERE m.tsv @@ idf.one), NULL, NULL, NULL,
        CASE WHEN $15 THEN m.embedding END
 FROM mem m, q WHERE q.query IS NOT NULL AND m.tsv @@ q.query ORDER BY 11 DESC, m.valid_from, m.content LIMIT $5)
UNION ALL
-- a message scores as its own embedding or its best passage's, whichever is nearer (a head
-- passage has no embedding of its own, or, written before 0023, a copy of the message's:
-- on a tie the message itself wins)
(SELECT 'messages_vector', m.id::text, 'message', m.content, m.speaker, m.role, m.created_at, 0.5, ARRAY[m.id], NULL,
        v.score, m.session_id, v.start_char, v.end_char, CASE WHEN $15 THEN m.embedding END
 FROM (SELECT DISTINCT ON (id) id, score, start_char, end_char FROM (
         SELECT id, 1 - (embedding <=> $2) AS score, NULL::int AS start_char, NULL::int AS end_char
         FROM msg WHERE embedding IS NOT NULL
         UNION ALL
         SELECT message_id, 1 - (embedding <=> $2), start_char, end_char FROM pas WHERE embedding IS NOT NULL
       ) s ORDER BY id, score DESC, start_char NULLS FIRST) v
 JOIN msg m ON m.id = v.id
 WHERE $6 > 0 ORDER BY v.score DESC, m.id LIMIT $6)
UNION ALL
-- BM25 with binary term frequency (k1 = 1.2, b = 0.75)
-- (a long message also as each of its passages, scored by the best)
(SELECT 'messages_text', m.id::text, 'message', m.content, m.speaker, m.role, m.created_at, 0.5, ARRAY[m.id], NULL,
        t.score, m.session_id, t.start_char, t.end_char, CASE WHEN $15 THEN m.embedding END
 FROM (SELECT DISTINCT ON (id) id, score, start_char, end_char FROM (
         SELECT m.id, (SELECT sum(w) FROM idf WHERE NOT idf.named AND m.tsv @@ idf.one)
                        * 2.2 / (1 + 1.2 * (0.25 + 0.75 * m.len / c.avglen)) AS score,
                NULL::int AS start_char, NULL::int AS end_char
         FROM msg m, qm, corpus c WHERE qm.query IS NOT NULL AND m.tsv @@ qm.query
         UNION ALL
         SELECT p.message_id, (SELECT sum(w) FROM idf WHERE NOT idf.named AND p.tsv @@ idf.one)
                               * 2.2 / (1 + 1.2 * (0.25 + 0.75 * p.len / c.avglen)),
                p.start_char, p.end_char
         FROM pas p, qm, corpus c WHERE qm.query IS NOT NULL AND p.tsv @@ qm.query
       ) s ORDER BY id, score DESC) t
 JOIN msg m ON m.id = t.id
 WHERE $7 > 0 ORDER BY t.score DESC, m.id LIMIT $7)
UNION ALL
-- the turns inside the period the question names, nearest first: the period's newest $17 turns,
-- read through the time index (a period before the window is searched all the same)
(SELECT 'messages_period', id::text, 'message', content, speaker, role, created_at, 0.5, ARRAY[id], NULL,
        1 - (embedding <=> $2), session_id, NULL, NULL, CASE WHEN $15 THEN embedding END
 FROM (SELECT id, session_id, role, speaker, content, created_at, embedding FROM messages
       WHERE user_identifier = $1 AND created_at >= $12 AND created_at < $13 AND $14 > 0
       ORDER BY created_at DESC LIMIT $17) p
 WHERE embedding IS NOT NULL
 ORDER BY embedding <=> $2, id LIMIT $14)
UNION ALL
(SELECT 'summaries_vector', id::text, 'summary', summary, NULL, NULL, first_message_at, 0.5, source_message_ids, NULL,
        1 - (embedding <=> $2), session_id, NULL, NULL, CASE WHEN $15 THEN embedding END
 FROM summ ORDER BY embedding <=> $2, first_message_at LIMIT $8)
UNION ALL
(SELECT 'summaries_text', s.id::text, 'summary', s.summary, NULL, NULL, s.first_message_at, 0.5, s.source_message_ids,
        NULL, (SELECT sum(w) FROM idf WHERE s.tsv @@ idf.one), s.session_id, NULL, NULL,
        CASE WHEN $15 THEN s.embedding END
 FROM summ s, q WHERE q.query IS NOT NULL AND s.tsv @@ q.query ORDER BY 11 DESC, s.first_message_at LIMIT $9)
UNION ALL
(SELECT 'recent_turns', id::text, 'message', content, speaker, role, created_at, 0.5, ARRAY[id], NULL, 0, session_id,
        NULL, NULL, CASE WHEN $15 THEN embedding END
 FROM messages WHERE session_id = $10 AND user_identifier = $1 ORDER BY created_at DESC, id DESC LIMIT $11)
UNION ALL
(SELECT 'latest', NULL, NULL, NULL, NULL, NULL, max(created_at), NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL::vector
 FROM msg)
"""

# the customer's newest rows of each kind a context searches (LOFT_SEARCH_WINDOW)
WINDOW = 2000

HYBRID_SOURCES = (
    "memories_vector",
    "memories_text",
    "messages_vector",
    "messages_text",
    "messages_period",
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
    period: tuple[datetime, datetime] | None = None,
    with_embeddings: bool = False,
    speakers: Sequence[str] = (),
    window: int = WINDOW,
) -> Hybrid:
    """Every per-customer source in one statement: each source's rows, best first.
    ``period``: the [start, end) the question names, for ``messages_period``;
    ``with_embeddings``: each row's stored embedding in ``embedding`` (else NULL), for
    packing that leaves out near-duplicates; ``speakers``: the names of the people who speak
    in the history (``users.speakers``), left out of the turns' full-text search (each is
    ``to_tsvector``-ed by this statement: the retriever passes at most ``LOFT_MAX_SPEAKERS``);
    ``window``: how many of the customer's newest memories, turns and summaries are searched
    (and of the turns in the period)."""
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
        period[0] if period else None,
        period[1] if period else None,
        limits.get("messages_period", 0) if vector_ok and period else 0,
        with_embeddings,
        list(speakers),
        window,
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
