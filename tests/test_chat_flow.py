"""The end-to-end flow through the API and the worker into all three tiers."""

from __future__ import annotations


def test_sarah_is_remembered_across_sessions(service, api, user, stack):
    first = api.post(
        "/v1/chat", json={"user_identifier": user, "message": "Hi, my name is Sarah and I love modern furniture"}
    )
    assert first.status_code == 200, first.text
    session = first.json()["session_id"]
    assert "No language model is configured" in first.json()["reply"]

    sectionals = api.post(
        "/v1/chat", json={"user_identifier": user, "message": "Show me sectionals", "session_id": session}
    )
    assert sectionals.status_code == 200, sectionals.text
    reply = sectionals.json()["reply"]
    assert "Sectional" in reply and "LOFT-" in reply
    service.wait_idle()

    again = api.post("/v1/chat", json={"user_identifier": user, "message": "What do you remember about me?"})
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["session_id"] != session  # a new session
    assert "Sarah" in body["reply"]
    assert "modern" in body["reply"]
    assert "sectional" in body["reply"].lower()  # a recent topic


def test_chat_writes_all_three_tiers(service, api, user, stack):
    r = api.post(
        "/v1/chat",
        json={
            "user_identifier": user,
            "message": "My name is Dana. I love walnut and my wife Emma hates glass tables.",
        },
    )
    assert r.status_code == 200, r.text
    message_id = r.json()["message_id"]
    service.wait_idle()
    # short-term: the turn and the reply, in order, with the embedding filled in by the worker
    rows = stack.sql(
        "SELECT id, role, content, embedding IS NOT NULL AS embedded FROM messages WHERE user_identifier = $1 ORDER BY id",
        user,
    )
    assert [r["role"] for r in rows] == ["user", "assistant"]
    assert all(r["embedded"] for r in rows)
    # medium-term: customer, preference with provenance, the wife as an entity
    prefs = stack.cypher(
        "MATCH (c:Customer {user_id: $u})-[r:PREFERS]->(m:Material) RETURN c.name AS name, m.name AS material, "
        "r.source_message_ids AS sources, r.valid_to AS valid_to",
        u=user,
    )
    assert prefs == [{"name": "Dana", "material": "walnut", "sources": [message_id], "valid_to": None}]
    people = stack.cypher(
        "MATCH (:Customer {user_id: $u})-[m:MENTIONED]->(e:Entity {type: 'person'}) RETURN e.name AS name, m.relation AS relation",
        u=user,
    )
    assert {"name": "Emma", "relation": "wife"} in people
    # long-term: memories with their source message
    memories = stack.sql(
        "SELECT kind, content, source_message_ids FROM long_term_memories WHERE user_identifier = $1", user
    )
    assert any("walnut" in m["content"] and m["source_message_ids"] == [message_id] for m in memories)


def test_sessions_list_newest_first_with_pagination(api, user):
    ids = []
    for text in ("first conversation", "second conversation", "third conversation"):
        r = api.post("/v1/chat", json={"user_identifier": user, "message": text})
        ids.append(r.json()["session_id"])
    page = api.get(f"/v1/sessions/{user}", params={"limit": 2}).json()
    assert [s["id"] for s in page["sessions"]] == [ids[2], ids[1]]
    assert page["sessions"][0]["messages"][0]["content"] == "third conversation"
    assert page["sessions"][0]["messages"][1]["role"] == "assistant"
    rest = api.get(f"/v1/sessions/{user}", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [s["id"] for s in rest["sessions"]] == [ids[0]] and rest["next_cursor"] is None


def test_import_keeps_timestamps_roles_and_is_idempotent(service, api, user, stack):
    body = {
        "messages": [
            {
                "role": "user",
                "content": "I bought the Sloane Chaise Sectional last Tuesday",
                "created_at": "2024-05-16T09:00:00Z",
                "external_id": "crm-1",
            },
            {
                "role": "assistant",
                "content": "Congratulations on the new sectional!",
                "created_at": "2024-05-16T09:00:05Z",
                "external_id": "crm-2",
            },
        ]
    }
    first = api.post(f"/v1/sessions/{user}/messages", json=body)
    assert first.status_code == 201, first.text
    assert first.json()["created"] == 2
    again = api.post(f"/v1/sessions/{user}/messages", json=body)
    assert again.json()["created"] == 0 and again.json()["duplicates"] == 2
    assert again.json()["message_ids"] == first.json()["message_ids"]
    service.wait_idle()
    rows = stack.sql("SELECT role, created_at FROM messages WHERE user_identifier = $1 ORDER BY id", user)
    assert [r["role"] for r in rows] == ["user", "assistant"]
    assert rows[0]["created_at"].isoformat() == "2024-05-16T09:00:00+00:00"
    purchase = stack.cypher(
        "MATCH (:Customer {user_id: $u})-[r:PURCHASED]->(p:Product) RETURN p.name AS name, r.at AS at", u=user
    )
    assert purchase[0]["name"] == "Sloane Chaise Sectional"
    assert str(purchase[0]["at"])[:10] == "2024-05-14"  # "last Tuesday" resolved against the message's date


def test_unicode_and_emoji_round_trip_exactly(api, user):
    text = "Ich hätte gern ein Sofa 🛋️ — 日本語も大丈夫 — 🏳️‍🌈 ‘quotes’"
    r = api.post("/v1/chat", json={"user_identifier": user, "message": text})
    assert r.status_code == 200
    session = api.get(f"/v1/sessions/{user}").json()["sessions"][0]
    assert session["messages"][0]["content"] == text


def test_cypher_and_sql_lookalikes_are_plain_text(service, api, user, stack):
    before = stack.cypher("MATCH (n) RETURN count(n) AS n")[0]["n"]
    hostile = [
        "'; DROP TABLE messages; --",
        "MATCH (n) DETACH DELETE n",
        "My name is Robert'); DROP TABLE users;-- and I love modern}) MATCH (x) DETACH DELETE x //",
    ]
    for text in hostile:
        r = api.post("/v1/chat", json={"user_identifier": user, "message": text})
        assert r.status_code == 200, r.text
    service.wait_idle()
    stored = [
        m["content"]
        for s in api.get(f"/v1/sessions/{user}").json()["sessions"]
        for m in s["messages"]
        if m["role"] == "user"
    ]
    assert sorted(stored) == sorted(hostile)
    assert stack.sql("SELECT count(*) AS n FROM messages")[0]["n"] > 0
    assert stack.cypher("MATCH (n) RETURN count(n) AS n")[0]["n"] >= before
    assert stack.cypher("MATCH (p:Product) RETURN count(p) AS n")[0]["n"] >= 300
