"""Passages of long messages: how a message is split, and the ``message_passages`` table.

A turn embedded whole is seen only up to the model's ~256 word pieces (about 1,000
characters: ``Embedder.covered`` says exactly how many), and its full-text score is
diluted by its length: the answer at the end of a pasted 20,000-character e-mail is
invisible to both. So a message its embedding does not cover whole is split on sentence
boundaries into passages of about ``PASSAGE_CHARS`` (:func:`for_message`), each full-text
indexed on its own; the retriever scores the message by its best passage and clips its
text around that passage (``vectors.search`` reads this table in its hybrid statement).

Only the passages that reach past the covered head are embedded. The head's passages
(``Split.head`` of them) are stored without an embedding (NULL): the message's own already
stands for that text, so a copy could never win the vector ranking. They cost no model
call, keep the head addressable for clipping, and let full-text ranking per passage cover
the whole message. (Rows written before migration 0023 hold a copy of the message's
embedding instead; on a tie the retriever prefers the message itself, so the results are
the same.)

Every statement on ``message_passages`` lives here. Rows index into ``messages.content``
(``start_char``/``end_char``) instead of copying it; they go with their message
(``ON DELETE CASCADE``) and their customer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from vectors.pg import Conn

# the target length of a passage: a few sentences, well inside the model's window
PASSAGE_CHARS = 400

# what ends a sentence: one of these marks and the blanks after it, or a line break (and
# the blanks after it); the retriever clips around passages by the same definition
END_MARKS = ".!?…"
SENTENCE_END = re.compile(rf"(?<=[{END_MARKS}])\s+|\n\s*")

INSERT = """
INSERT INTO message_passages (message_id, ordinal, user_identifier, start_char, end_char, embedding, tsv)
VALUES ($1, $2, $3, $4, $5, $6, to_tsvector('english', $7))
ON CONFLICT (message_id, ordinal) DO NOTHING
"""
COUNT_FOR_USER = "SELECT count(*) FROM message_passages WHERE user_identifier = $1"
DELETE_FOR_MESSAGES = """
WITH d AS (DELETE FROM message_passages WHERE message_id = ANY($1::bigint[]) AND user_identifier = $2 RETURNING 1)
SELECT count(*) FROM d
"""
OF_MESSAGE = """
SELECT ordinal, start_char, end_char FROM message_passages WHERE message_id = $1 AND user_identifier = $2
ORDER BY ordinal
"""


@dataclass(frozen=True)
class Passage:
    ordinal: int
    start: int  # character offsets into the message's content
    end: int


@dataclass(frozen=True)
class Split:
    """A message's passages; the first ``head`` of them lie inside the text its own
    embedding covers, so they store no vector: the message's stands for them."""

    passages: list[Passage] = field(default_factory=list)
    head: int = 0

    @property
    def to_embed(self) -> list[Passage]:
        return self.passages[self.head :]


def for_message(text: str, covered: int, size: int = PASSAGE_CHARS) -> Split:
    """The passages of a message whose embedding sees its first ``covered`` characters:
    none when that is all of it (its own embedding and tsv serve), else all of them
    (full-text ranking covers the whole message), the head ones marked."""
    if covered >= len(text.rstrip()):
        return Split()
    passages = split(text, size)
    return Split(passages, sum(1 for p in passages if p.end <= covered))


def split(text: str, size: int = PASSAGE_CHARS) -> list[Passage]:
    """``text`` in passages: runs of whole sentences of about ``size`` characters; a
    sentence longer than ``size`` is cut at word boundaries. The spans cover the text
    without overlap, whitespace between them left out."""
    pieces: list[tuple[int, int]] = []  # sentences (or cut parts of long ones)
    start = 0
    for m in SENTENCE_END.finditer(text):
        pieces += _cut(text, start, m.start(), size)
        start = m.end()
    pieces += _cut(text, start, len(text), size)
    spans: list[tuple[int, int]] = []
    for s, e in pieces:
        if spans and e - spans[-1][0] <= size:
            spans[-1] = (spans[-1][0], e)
        else:
            spans.append((s, e))
    return [Passage(i, s, e) for i, (s, e) in enumerate(spans)]


def _cut(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """``text[start:end]`` (stripped) in parts of at most ``size`` characters, cut at spaces."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    out: list[tuple[int, int]] = []
    while end - start > size:
        cut = text.rfind(" ", start + size // 2, start + size)
        cut = cut if cut > start else start + size
        out.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        out.append((start, end))
    return out


def embedding_text(content: str, p: Passage) -> str:
    """What a passage is embedded as: its text, as its message is (without the speaker)."""
    return content[p.start : p.end]


async def store(conn: Conn, user: str, message_id: int, content: str, split: Split, vectors: np.ndarray) -> None:
    """Write a message's passages: the head ones without an embedding, the others with one
    row of ``vectors`` each, in order (idempotent: a retried job adds nothing)."""
    if not split.passages:
        return
    own: list[np.ndarray | None] = [None] * split.head + list(vectors)
    await conn.executemany(
        INSERT,
        [
            (message_id, p.ordinal, user, p.start, p.end, v, content[p.start : p.end])
            for p, v in zip(split.passages, own, strict=True)
        ],
    )


async def count_for_user(conn: Conn, user: str) -> int:
    return int(await conn.fetchval(COUNT_FOR_USER, user))


async def of_message(conn: Conn, user: str, message_id: int) -> list[Passage]:
    return [
        Passage(r["ordinal"], r["start_char"], r["end_char"]) for r in await conn.fetch(OF_MESSAGE, message_id, user)
    ]


async def delete_for_messages(conn: Conn, user: str, message_ids: list[int]) -> int:
    """Delete the passages of turns about to be deleted (they would go with them; this counts them)."""
    if not message_ids:
        return 0
    return int(await conn.fetchval(DELETE_FOR_MESSAGES, message_ids, user))
