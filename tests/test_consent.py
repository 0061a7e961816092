"""Consent: a customer's memory mode. 'session' keeps a conversation for its own context
and extracts nothing (and the session goes once idle); 'off' answers and stores nothing;
lowering the mode erases, with a receipt; every change is audited."""

from __future__ import annotations

import asyncio

import pytest

from tests.test_erasure import _runtime

WORDS = ["Dovrenkast", "Yellaquorn", "Pimbletoft"]  # only these tests say these


def _chat(api, user, text, session=None):
    r = api.post("/v1/chat", json={"user_identifier": user, "message": text, "session_id": session})
    assert r.status_code == 200, r.text
    return r.json()


def _derived(stack, user: str) -> dict[str, int]:
    """What extraction would have made of the customer, in both stores."""
    counts = {
        table: stack.sql(f"SELECT count(*) AS n FROM {table} WHERE user_identifier = $1", user)[0]["n"]
        for table in ("long_term_memories", "conversation_summaries", "memory_events", "message_passages")
    }
    counts["graph_nodes"] = stack.cypher("MATCH (n) WHERE n.user_id = $u RETURN count(n) AS n", u=user)[0]["n"]
    return counts


def _talk(api, user: str, session=None) -> str:
    first, sister, city = WORDS
    s = _chat(api, user, f"Hi, my name is {first} and I love walnut furniture.", session)["session_id"]
    _chat(api, user, f"My sister {sister} lives in {city} and hates glass tables.", s)
    return s


def test_session_mode_keeps_the_conversation_for_its_context_extracts_nothing_and_forgets_it_idle(
    service, api, stack, user
):
    put = api.put(f"/memory/user/{user}/consent", json={"mode": "session"})
    assert put.status_code == 200, put.text
    assert put.json()["mode"] == "session"
    assert api.get(f"/memory/user/{user}/consent").json() == {
        "user_identifier": user,
        "mode": "session",
        "receipt": None,
    }

    session = _talk(api, user)
    third = _chat(api, user, "What did I say about my sister?", session)
    assert third["memory_mode"] == "session" and third["message_id"] is not None
    assert WORDS[1] in third["context"]["text"]  # the session's own turns are its context
    service.wait_idle()
    assert _derived(stack, user) == dict.fromkeys(
        ("long_term_memories", "conversation_summaries", "memory_events", "message_passages", "graph_nodes"), 0
    )
    assert stack.sql("SELECT count(*) AS n FROM messages WHERE user_identifier = $1", user)[0]["n"] == 6

    async def sweep() -> int:
        from service.core import consent

        rt = await _runtime(stack)
        try:
            return await consent.remove_idle_sessions(rt, 0.0)
        finally:
            await rt.close()

    assert asyncio.run(sweep()) >= 1
    assert stack.sql("SELECT count(*) AS n FROM messages WHERE user_identifier = $1", user)[0]["n"] == 0
    assert stack.sql("SELECT count(*) AS n FROM sessions WHERE user_identifier = $1", user)[0]["n"] == 0
    # the conversation goes on: a turn naming the removed session starts a new one
    again = _chat(api, user, "Hello again", session)
    assert again["session_id"] != session and again["memory_mode"] == "session"


def test_off_mode_answers_and_stores_nothing(service, api, stack, user):
    assert api.put(f"/memory/user/{user}/consent", json={"mode": "off"}).status_code == 200
    answer = _chat(api, user, f"Hi, my name is {WORDS[0]} and I love walnut furniture.")
    assert answer["memory_mode"] == "off" and answer["reply"]
    assert answer["message_id"] is None and answer["reply_message_id"] is None
    streamed = api.post(
        "/v1/chat", json={"user_identifier": user, "message": f"My sister {WORDS[1]} says hi.", "stream": True}
    )
    assert streamed.status_code == 200 and "event: done" in streamed.text
    refused = api.post(
        f"/v1/sessions/{user}/messages",
        json={"messages": [{"role": "user", "content": f"{WORDS[2]} note", "created_at": "2024-01-01T10:00:00Z"}]},
    )
    assert refused.status_code == 409 and "memory mode 'off'" in refused.json()["detail"]
    service.wait_idle()
    assert stack.scan_postgres([user, *WORDS]) == []  # the mode itself is kept under a keyed hash only
    assert stack.scan_neo4j([user, *WORDS]) == []


def test_lowering_the_mode_erases_with_a_receipt_and_raising_it_erases_nothing(service, api, stack, user):
    _talk(api, user)
    service.wait_idle()
    before = _derived(stack, user)
    assert before["long_term_memories"] > 0 and before["graph_nodes"] > 0

    lowered = api.put(f"/memory/user/{user}/consent", json={"mode": "session"}, headers={"X-Request-ID": "rid-c1"})
    assert lowered.status_code == 200, lowered.text
    receipt = lowered.json()["receipt"]
    assert receipt["status"] == "complete"
    assert receipt["counts"]["postgres"]["long_term_memories"] == before["long_term_memories"]
    assert receipt["counts"]["neo4j"]["nodes"] == before["graph_nodes"]
    assert stack.scan_postgres([user, *WORDS]) == [] and stack.scan_neo4j([user, *WORDS]) == []
    assert api.get(f"/memory/erasures/{receipt['receipt_id']}").json()["status"] == "complete"

    # session -> off lowers again (nothing left to erase); off -> full raises: no erasure
    assert api.put(f"/memory/user/{user}/consent", json={"mode": "off"}).json()["receipt"]["status"] == "complete"
    raised = api.put(f"/memory/user/{user}/consent", json={"mode": "full"})
    assert raised.status_code == 200 and raised.json()["receipt"] is None
    _talk(api, user)
    service.wait_idle()
    assert _derived(stack, user)["long_term_memories"] > 0  # remembered again

    trail = api.get("/memory/audit", params={"customer": user, "action": "consent"}).json()["entries"]
    assert [(e["detail"]["from"], e["detail"]["to"]) for e in trail] == [
        ("off", "full"),
        ("session", "off"),
        ("full", "session"),
    ]
    assert trail[-1]["request_id"] == "rid-c1" and trail[-1]["detail"]["receipt_id"] == receipt["receipt_id"]
    assert "receipt_id" not in trail[0]["detail"]
    assert user not in str(trail)


@pytest.mark.parametrize("mode", ["everything", "", None])
def test_an_unknown_mode_is_refused_and_changes_nothing(api, user, mode):
    r = api.put(f"/memory/user/{user}/consent", json={"mode": mode})
    assert r.status_code == 422
    assert api.get(f"/memory/user/{user}/consent").json()["mode"] == "full"


def test_a_pending_erasure_refuses_consent_changes(api, stack, user):
    import uuid

    _chat(api, user, "I like cane chairs.")
    stack.sql(
        "INSERT INTO jobs (kind, user_identifier, dedupe_key, payload, run_after) "
        "VALUES ('erase_user', $1, $2, '{}'::jsonb, now() + interval '1 hour')",
        user,
        f"erase:test-{uuid.uuid4()}",
    )
    try:
        assert api.put(f"/memory/user/{user}/consent", json={"mode": "off"}).status_code == 409
        assert api.get(f"/memory/user/{user}/consent").status_code == 409
    finally:
        stack.sql("DELETE FROM jobs WHERE user_identifier = $1 AND kind = 'erase_user'", user)
    assert api.get(f"/memory/user/{user}/consent").json()["mode"] == "full"


def test_an_agent_reads_and_changes_the_mode_over_mcp(service, api, stack, user):
    from tests.test_mcp import data_of, over_stdio, text_of

    async def flow() -> dict:
        async with over_stdio(service, user) as client:
            assert data_of(await client.call_tool("get_memory_mode", {})) == {"mode": "full", "erased": None}
            data_of(await client.call_tool("add_memory", {"content": "My sister Brindlecotta loves walnut."}))
            await asyncio.to_thread(service.wait_idle)
            refused = await client.call_tool("set_memory_mode", {"mode": "off"})
            assert refused.is_error and "confirm=true" in text_of(refused)
            assert api.get(f"/memory/user/{user}/consent").json()["mode"] == "full"  # nothing changed
            return data_of(await client.call_tool("set_memory_mode", {"mode": "off", "confirm": True}))

    lowered = asyncio.run(flow())
    assert lowered["mode"] == "off" and lowered["erased"]["status"] == "complete"
    assert lowered["erased"]["counts"]["postgres"]["messages"] == 1
    assert stack.scan_postgres([user, "Brindlecotta"]) == [] and stack.scan_neo4j([user, "Brindlecotta"]) == []
    (entry,) = api.get("/memory/audit", params={"customer": user, "action": "consent"}).json()["entries"]
    assert (entry["key_name"], entry["detail"]["to"], entry["detail"]["tool"]) == ("stdio", "off", "set_memory_mode")
