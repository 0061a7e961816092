"""Session summaries: written (or refreshed) once a session has been quiet for a while.

The LLM writes them when one is configured; otherwise, and whenever the LLM fails, an
extractive summary: the turns closest to the session's centroid, in order, under a line
that says when, who and what was mentioned. Either way the summary carries its source
message ids and an embedding, so the retriever can find it and cite its turns.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from collections import Counter
from typing import Any

import numpy as np

from service.core import consent
from service.postgres import history
from service.runtime import Runtime
from service.text import NOT_NAMES
from vectors import summaries
from vectors.embedder import as_array

log = logging.getLogger("loft.summaries")

PROMPT = """Summarise this conversation between a furniture store's assistant and a customer in
2-4 sentences for the store's memory: who the customer is, what they want, what they decided or
bought, with dates. Plain text only."""

_CAPITALISED = re.compile(r"\b([A-Z][a-z]{2,}(?:\s[A-Z][a-z]{2,})?)\b")


async def summarize_session(rt: Runtime, session_id: str) -> bool:
    """Write (or refresh) a session's summary. False when the session no longer exists."""
    (outcome,) = await summarize_sessions(rt, [session_id])
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


async def summarize_sessions(rt: Runtime, session_ids: list[str]) -> list[bool | Exception]:
    """Write (or refresh) the summaries of several sessions, their embeddings in one model
    call (one call per summary cost more than the summaries themselves: a single short text
    pays the model's whole per-call overhead). One outcome per session, in order: True
    (written, or not due yet), False (the session no longer exists), or the exception that
    session met; one session failing never fails the others."""
    outcomes: list[bool | Exception] = []
    drafts: list[tuple[int, summaries.Summary, int]] = []  # (position, summary without its vector, first message id)
    for position, session_id in enumerate(session_ids):
        try:
            draft = await _draft(rt, uuid.UUID(session_id))
        except Exception as exc:  # reported to the worker, which retries this job alone
            outcomes.append(exc)
            continue
        if isinstance(draft, bool):
            outcomes.append(draft)
        else:
            outcomes.append(True)
            drafts.append((position, *draft))
    if not drafts:
        return outcomes
    vectors = await rt.embedder.aembed([summary.text for _, summary, _ in drafts])
    for (position, summary, first_id), vector in zip(drafts, vectors, strict=True):
        try:
            outcomes[position] = await _write(rt, dataclasses.replace(summary, embedding=vector), first_id)
        except Exception as exc:
            outcomes[position] = exc
    return outcomes


async def _draft(rt: Runtime, sid: uuid.UUID) -> bool | tuple[summaries.Summary, int]:
    """A session's summary, not embedded yet, with the id of its first message read; or the
    outcome when there is nothing to write (False: the session is gone; True: not yet)."""
    async with rt.pool.acquire() as conn:
        user = await history.session_owner(conn, sid)
        if user is None:
            return False
        if await history.ingestion_pending(conn, await history.unembedded_ids(conn, sid)):
            # not yet (an import is being ingested): the worker re-arms this summary when it has
            # ingested the session's messages
            return True
        # a session of any length costs at most its newest summary_turns turns (one more: whether
        # there are older ones)
        rows = await history.session_messages(conn, user, sid, rt.settings.summary_turns + 1)
    if not rows:
        return True
    partial = len(rows) > rt.settings.summary_turns
    rows = rows[-rt.settings.summary_turns :]
    first_id: int = rows[0]["id"]
    rows = [r for r in rows if r["embedding"] is not None] or list(rows)
    # a session's text can be megabytes (an import): read in the CPU pool, not on the event loop
    mentioned = await rt.cpu_long(key_entities, [r["content"] for r in rows])
    text, sources, method = None, [r["id"] for r in rows], "extractive"
    if rt.llm is not None:
        try:
            text, method = await _llm_summary(rt, rows), "llm"
        except Exception as exc:  # the extractive summary stands in; nothing is lost
            log.warning("LLM summary failed for session %s (%s); using the extractive summary", sid, exc)
    if text is None:
        extractive, sources = await rt.cpu_long(_extractive_summary, rows, mentioned, partial=partial)
        text = extractive
    empty = np.zeros(0, dtype=np.float32)  # the vector comes with the batch's one model call
    summary = summaries.Summary(
        sid, user, text, mentioned, empty, len(rows), rows[0]["created_at"], rows[-1]["created_at"], sources, method
    )
    return summary, first_id


async def _write(rt: Runtime, summary: summaries.Summary, first_id: int) -> bool:
    async with rt.pool.acquire() as conn, conn.transaction():
        # fence: the customer and the first turn read must still be there (erased
        # meanwhile: write nothing)
        remembered = await consent.lock_remembered(conn, rt.erasure_key, [summary.user_identifier])
        if not remembered or not await history.lock_live_messages(conn, [first_id]):
            return False
        await summaries.upsert(conn, summary)
        await history.mark_summarized(conn, summary.session_id)
    return True


async def _llm_summary(rt: Runtime, rows: list[Any]) -> str:
    assert rt.llm is not None
    transcript = "\n".join(
        f"[{r['created_at']:%Y-%m-%d %H:%M}] {r['speaker'] or r['role']}: {r['content']}" for r in rows[-200:]
    )
    response = await rt.llm.chat.completions.create(
        model=rt.settings.llm_model,
        messages=[{"role": "system", "content": PROMPT}, {"role": "user", "content": transcript[-24000:]}],
        temperature=0.2,
    )
    text = (response.choices[0].message.content or "").strip()
    if not text:
        raise ValueError("empty summary")
    return text


def key_entities(texts: list[str], limit: int = 8) -> list[str]:
    """The capitalised words and pairs the session mentions most: names, places, titles. A
    word counts only if it is capitalised somewhere inside a sentence at least once: a
    capital at a sentence's start says nothing ("Yep!", "Congrats on the move")."""
    found = [(m.group(1), _opens_sentence(t, m.start())) for t in texts for m in _CAPITALISED.finditer(t)]
    named = {name for name, opening in found if not opening}
    counts = Counter(name for name, _ in found if name in named and name.split()[0] not in NOT_NAMES)
    return [name for name, _ in counts.most_common(limit)]


def _opens_sentence(text: str, at: int) -> bool:
    """Whether ``text[at]`` starts a sentence: nothing but quotes, brackets and spaces
    between it and the text's start or the end of the sentence before (read back from
    ``at``: not the text from its start again for every word)."""
    i = at
    while i > 0 and text[i - 1] in " \t\"'“‘([":
        i -= 1
    return i == 0 or text[i - 1] in ".!?…:\n"


def _extractive_summary(
    rows: list[Any], key_entities: list[str], picks: int = 4, max_chars: int = 180, *, partial: bool = False
) -> tuple[str, list[int]]:
    """The turns closest to the session's centroid, in order: a cheap, faithful summary
    (``partial``: ``rows`` are the newest turns of a longer session, and it says so)."""
    with_vec = [r for r in rows if r["embedding"] is not None and len(r["content"]) > 20]
    if with_vec:
        matrix = np.stack([as_array(r["embedding"]) for r in with_vec])
        centroid = matrix.mean(axis=0)
        order = np.argsort(-(matrix @ centroid))[:picks]
        chosen = sorted((with_vec[i] for i in order), key=lambda r: (r["created_at"], r["id"]))
    else:
        chosen = rows[:picks]
    day = rows[0]["created_at"].strftime("%-d %B %Y")
    speakers = sorted({r["speaker"] or r["role"] for r in rows})
    parts = [f"{(r['speaker'] or r['role'])}: {_clip(r['content'], max_chars)}" for r in chosen]
    counted = f"the last {len(rows)} messages" if partial else f"{len(rows)} messages"
    head = f"Conversation on {day} between {', '.join(speakers)} ({counted})"
    if key_entities:
        head += f"; mentions {', '.join(key_entities[:6])}"
    return head + ". " + " | ".join(parts), [r["id"] for r in chosen]


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
