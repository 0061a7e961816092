"""`POST /v1/chat` with `"stream": true`: the reply as server-sent events, ending with the
very JSON the non-streaming call returns; retries stay idempotent; errors that have a
status come before the stream starts."""

from __future__ import annotations

import json
import time
import uuid

import httpx


def sse_events(text: str) -> list[tuple[str, dict]]:
    """``event:``/``data:`` blocks of a text/event-stream body, in order."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_a_streamed_reply_arrives_in_pieces_and_ends_with_the_json_answer(api, user, stack):
    r = api.post(
        "/v1/chat",
        json={"user_identifier": user, "message": "Hi, my name is Sarah and I love modern furniture", "stream": True},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    names = [e for e, _ in events]
    assert names[0] == "start" and names[-1] == "done"
    assert set(names[1:-1]) == {"token"} and len(names) > 4, names  # the offline answer in several pieces
    start, done = events[0][1], events[-1][1]
    assert start["session_id"] == done["session_id"] and start["message_id"] == done["message_id"]
    assert start["llm"] is False and start["replayed"] is False
    streamed = "".join(d["text"] for e, d in events if e == "token")
    assert streamed.strip() == done["reply"]
    assert "Sarah" in done["reply"] and "No language model is configured" in done["reply"]
    # `done` is the non-streaming answer's JSON, and the reply is stored as sent
    assert set(done) == {
        "session_id",
        "message_id",
        "reply",
        "reply_message_id",
        "context",
        "llm",
        "replayed",
        "memory_mode",
    }
    assert done["memory_mode"] == "full"
    (stored,) = stack.sql("SELECT content FROM messages WHERE id = $1", done["reply_message_id"])
    assert stored["content"] == done["reply"]


def test_a_streamed_turn_is_idempotent(api, user, stack):
    body = {"user_identifier": user, "message": "Show me sectionals", "stream": True, "message_id": uuid.uuid4().hex}
    first = sse_events(api.post("/v1/chat", json=body).text)[-1][1]
    again = sse_events(api.post("/v1/chat", json=body).text)
    assert [e for e, _ in again] == ["start", "token", "done"]
    assert again[0][1]["replayed"] is True and again[-1][1]["replayed"] is True
    assert again[1][1]["text"] == first["reply"] == again[-1][1]["reply"]
    # a plain retry of the same turn gets the same stored reply
    plain = api.post("/v1/chat", json=body | {"stream": False}).json()
    assert plain["replayed"] is True and plain["reply"] == first["reply"]
    rows = stack.sql("SELECT role FROM messages WHERE user_identifier = $1", user)
    assert sorted(r["role"] for r in rows) == ["assistant", "user"]


def test_errors_before_the_stream_are_plain_json(api, user):
    bad = api.post("/v1/chat", json={"user_identifier": "no spaces allowed", "message": "hi", "stream": True})
    assert bad.status_code == 422 and bad.json()["error"] == "validation_error"
    key = uuid.uuid4().hex
    api.post("/v1/chat", json={"user_identifier": user, "message": "first words", "message_id": key})
    clash = api.post(
        "/v1/chat", json={"user_identifier": user, "message": "other words", "message_id": key, "stream": True}
    )
    assert clash.status_code == 409 and clash.json()["error"] == "conflict"


def test_a_client_that_leaves_mid_stream_still_finds_the_stored_reply(service, user, stack):
    body = {"user_identifier": user, "message": "Show me sofas", "stream": True, "message_id": uuid.uuid4().hex}
    with httpx.Client(base_url=service.base, timeout=30) as client, client.stream("POST", "/v1/chat", json=body) as r:
        assert r.status_code == 200
        first_line = next(r.iter_lines())
        assert first_line == "event: start"
    # the connection is gone; the reply was made and stored all the same
    retry = None
    for _ in range(300):  # a wait, not a timing: the reply task may still be working
        retry = service.http.post("/v1/chat", json=body | {"stream": False})
        if retry.status_code != 409:
            break
        time.sleep(0.1)
    assert retry is not None and retry.status_code == 200, retry.text + service.log_tail("api", 6000)
    assert retry.json()["replayed"] is True and "sofas" in retry.json()["reply"].lower()
