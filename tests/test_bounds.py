"""Every per-customer read is bounded: a listing shows a bounded number of turns per session
and pages the rest, a summary reads a session's newest turns, and the context searches a
customer's newest turns, memories and summaries, however long their history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

from vectors import search

LISTED = 20  # LOFT_SESSION_LIST_MESSAGES's default


def _import(api, user: str, texts: list[str], *, session_id: str | None = None, day: str = "2024-03-01") -> dict:
    body = {
        "messages": [
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": t,
                "created_at": f"{day}T10:{i // 60:02d}:{i % 60:02d}Z",
            }
            for i, t in enumerate(texts)
        ]
    } | ({"session_id": session_id} if session_id else {})
    r = api.post(f"/v1/sessions/{user}/messages", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_listing_shows_each_sessions_newest_turns_and_pages_the_rest(api, loft, user):
    texts = [f"turn number {i}" for i in range(45)]
    long = _import(api, user, texts)["session_id"]
    short = _import(api, user, ["just one turn"], day="2024-02-01")["session_id"]
    page = api.get(f"/v1/sessions/{user}").json()
    by_id = {s["id"]: s for s in page["sessions"]}
    assert [m["content"] for m in by_id[long]["messages"]] == texts[-LISTED:]  # the newest, in order
    assert by_id[long]["messages_cursor"]
    assert [m["content"] for m in by_id[short]["messages"]] == ["just one turn"]
    assert by_id[short]["messages_cursor"] is None  # the whole session is listed
    # the older turns, a page at a time, from the listing's cursor back to the session's start
    seen, cursor = [], by_id[long]["messages_cursor"]
    while cursor:
        older = api.get(f"/v1/sessions/{user}/{long}/messages", params={"limit": 10, "cursor": cursor}).json()
        assert len(older["messages"]) <= 10 and older["session_id"] == long
        seen = [m["content"] for m in older["messages"]] + seen
        cursor = older["next_cursor"]
    assert seen + texts[-LISTED:] == texts
    # without a cursor: the newest page; the typed client reads the same
    newest = loft.session_messages(user, uuid.UUID(long), limit=5)
    assert [m.content for m in newest.messages] == texts[-5:] and newest.next_cursor
    assert [m.content for m in loft.session_messages(user, uuid.UUID(long), cursor=newest.next_cursor).messages] == (
        texts[:-5]
    )


def test_another_customers_session_is_not_found_like_one_that_does_not_exist(api, user):
    theirs = _import(api, f"{user}-other", ["a private note"])["session_id"]
    _import(api, user, ["my own note"])
    for session in (theirs, str(uuid.uuid4())):
        r = api.get(f"/v1/sessions/{user}/{session}/messages")
        assert r.status_code == 404 and r.json()["detail"] == f"session {session} does not exist", r.text
        assert "private" not in r.text


def test_a_summary_reads_a_long_sessions_newest_turns(service, api, user, stack):
    texts = [f"Message {i}: I keep talking about the walnut sideboard" for i in range(510)]
    sid = _import(api, user, texts)["session_id"]
    service.wait_idle(timeout=300)
    (row,) = stack.sql(
        "SELECT message_count, summary, source_message_ids FROM conversation_summaries WHERE session_id = $1",
        uuid.UUID(sid),
    )
    assert row["message_count"] == 500 and "the last 500 messages" in row["summary"]
    first_ten = {
        r["id"]
        for r in stack.sql(
            "SELECT id FROM messages WHERE session_id = $1 ORDER BY created_at, id LIMIT 10", uuid.UUID(sid)
        )
    }
    assert not first_ten & set(row["source_message_ids"])  # read from the newest 500 only


async def _hybrid(stack, user: str, window: int, period: tuple[datetime, datetime] | None, text: str):
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        await register_vector(conn)
        vector = await conn.fetchval(
            "SELECT embedding FROM messages WHERE user_identifier = $1 ORDER BY created_at LIMIT 1", user
        )
        limits = {"messages_vector": 50, "messages_text": 50, "messages_period": 50}
        return await search.hybrid(
            conn, user, np.asarray(vector.to_list(), dtype=np.float32), text, limits, period=period, window=window
        )
    finally:
        await conn.close()


def test_the_context_searches_the_newest_turns_and_a_named_period_still_reaches_older_ones(service, api, user, stack):
    days = [(datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=d)) for d in range(12)]
    for d in days:
        _import(api, user, [f"walnut sideboard note from {d:%B %-d}"], day=f"{d:%Y-%m-%d}")
    service.wait_idle()
    newest = {
        r["id"]
        for r in stack.sql("SELECT id FROM messages WHERE user_identifier = $1 ORDER BY created_at DESC LIMIT 4", user)
    }
    everything = stack.run(_hybrid(stack, user, 10**6, None, "walnut sideboard"))
    assert len(everything.rows["messages_vector"]) == 12 and len(everything.rows["messages_text"]) == 12
    windowed = stack.run(_hybrid(stack, user, 4, None, "walnut sideboard"))
    for source in ("messages_vector", "messages_text"):
        assert {int(r["id"]) for r in windowed.rows[source]} == newest, source
    assert windowed.latest == everything.latest
    # the first days lie before the window; a question about them still finds them
    period = (days[0], days[2])
    found = stack.run(_hybrid(stack, user, 4, period, "walnut sideboard"))
    assert sorted(r["content"] for r in found.rows["messages_period"]) == [
        "walnut sideboard note from January 1",
        "walnut sideboard note from January 2",
    ]
