"""The retriever: budgets, provenance, isolation, supersession, time, access tracking."""

from __future__ import annotations

import time

import pytest


def _import(api, user, messages):
    r = api.post(f"/v1/sessions/{user}/messages", json={"messages": messages})
    assert r.status_code == 201, r.text
    return r.json()["message_ids"]


@pytest.fixture
def history(service, api, user):
    ids = _import(
        api,
        user,
        [
            {
                "role": "user",
                "content": "My name is Harriet and I love japandi furniture.",
                "created_at": "2023-05-02T10:00:00Z",
            },
            {
                "role": "user",
                "content": "I bought a rattan armchair for the sunroom last week.",
                "created_at": "2023-05-20T10:00:00Z",
            },
            {
                "role": "user",
                "content": "Our cat Pixel keeps scratching the linen sofa.",
                "created_at": "2023-09-03T10:00:00Z",
            },
            {
                "role": "user",
                "content": "We are hosting a housewarming party in the new flat next Saturday.",
                "created_at": "2024-01-10T10:00:00Z",
            },
            {
                "role": "user",
                "content": "I bought a walnut sideboard for the dining room yesterday.",
                "created_at": "2024-01-15T10:00:00Z",
            },
        ],
    )
    service.wait_idle()
    return ids


@pytest.mark.parametrize("budget", [50, 120, 300, 1000, 4000])
def test_budget_is_never_exceeded(api, user, history, budget):
    ctx = api.get(f"/memory/context/{user}", params={"query": "what furniture did she buy?", "budget": budget}).json()
    assert len(ctx["text"]) <= budget * 4
    assert ctx["tokens"] <= budget


def test_items_carry_correct_provenance(api, user, history, stack):
    ctx = api.get(f"/memory/context/{user}", params={"query": "what did I buy for the sunroom?", "budget": 1000}).json()
    assert ctx["items"]
    own = {
        r["id"]: r["content"] for r in stack.sql("SELECT id, content FROM messages WHERE user_identifier = $1", user)
    }
    for item in ctx["items"]:
        for mid in item["provenance"]["message_ids"]:
            assert mid in own, item
        if item["kind"] == "message":
            (mid,) = item["provenance"]["message_ids"]
            assert item["text"].split(": ", 1)[1].rstrip("…")[:40] in own[mid]
        if item["kind"] == "memory":
            row = stack.sql(
                "SELECT user_identifier, source_message_ids FROM long_term_memories WHERE id = $1::uuid",
                item["provenance"]["memory_id"],
            )
            assert row[0]["user_identifier"] == user
            assert list(row[0]["source_message_ids"]) == item["provenance"]["message_ids"]
    # the answer is in the context, with the turn it came from
    sunroom = [i for i in ctx["items"] if "sunroom" in i["text"]]
    assert sunroom and history[1] in sunroom[0]["provenance"]["message_ids"]


def test_a_customers_context_never_contains_another_customers_data(service, api, user, stack):
    other = user + "-b"
    _import(
        api, user, [{"role": "user", "content": "I love teak garden benches.", "created_at": "2024-02-01T10:00:00Z"}]
    )
    _import(
        api,
        other,
        [
            {
                "role": "user",
                "content": "My secret: I adore teak and my PIN is 4321.",
                "created_at": "2024-02-01T10:00:00Z",
            }
        ],
    )
    service.wait_idle()
    theirs = {r["id"] for r in stack.sql("SELECT id FROM messages WHERE user_identifier = $1", other)}
    ctx = api.get(f"/memory/context/{user}", params={"query": "teak secret PIN 4321", "budget": 2000}).json()
    assert "4321" not in ctx["text"] and "secret" not in ctx["text"]
    assert not any(set(i["provenance"]["message_ids"]) & theirs for i in ctx["items"])


def test_a_superseded_preference_is_not_presented_as_current(service, api, user):
    for text in ("I prefer oak for the dining table.", "Actually I prefer walnut now."):
        api.post("/v1/chat", json={"user_identifier": user, "message": text})
        service.wait_idle()
    ctx = api.get(f"/memory/context/{user}", params={"query": "which wood does she prefer?", "budget": 1000}).json()
    current = [i for i in ctx["items"] if i["kind"] in ("preference", "memory")]
    assert any("walnut" in i["text"] for i in current)
    assert not any("oak" in i["text"] for i in current), current


def test_items_show_dates_and_a_named_period_is_boosted(api, user, history):
    ctx = api.get(
        f"/memory/context/{user}", params={"query": "what did I buy in May 2023?", "budget": 1000, "explain": True}
    ).json()
    assert "2023" in ctx["text"]
    assert all(i["timestamp"] for i in ctx["items"] if i["kind"] in ("message", "memory"))
    purchases = [i for i in ctx["items"] if "bought" in i["text"].lower() or "purchase" in i["kind"]]
    assert purchases
    top = max(purchases, key=lambda i: i["score"])
    assert top["timestamp"].startswith("2023-05"), top
    assert "period" in top["score_parts"]


def test_serving_a_memory_updates_its_access_count(api, user, history, stack):
    ctx = api.get(f"/memory/context/{user}", params={"query": "cat scratching the sofa", "budget": 1000}).json()
    served = [i["provenance"]["memory_id"] for i in ctx["items"] if i["provenance"]["memory_id"]]
    assert served
    deadline = time.monotonic() + 5
    while True:
        rows = stack.sql("SELECT access_count, last_accessed_at FROM long_term_memories WHERE id = $1::uuid", served[0])
        if rows[0]["access_count"] >= 1:
            break
        assert time.monotonic() < deadline, "access was never recorded"
        time.sleep(0.1)
    assert rows[0]["last_accessed_at"] is not None


def test_presets_and_explain(api, user, history):
    for preset in ("default", "fast", "deep", "profile"):
        r = api.get(f"/memory/context/{user}", params={"query": "sofa", "preset": preset})
        assert r.status_code == 200 and r.json()["preset"] == preset
    bad = api.get(f"/memory/context/{user}", params={"query": "sofa", "preset": "nope"})
    assert bad.status_code == 422 and "unknown preset" in bad.json()["detail"]
    explained = api.get(f"/memory/context/{user}", params={"query": "sofa", "explain": True}).json()
    assert "timings_ms" in explained and all("score_parts" in i for i in explained["items"])
    plain = api.get(f"/memory/context/{user}", params={"query": "sofa"}).json()
    assert all("score_parts" not in i for i in plain["items"])


def test_context_answers_from_postgres_when_neo4j_is_down(stack, service, api, user, history):
    """The graph tier is unreachable. The customer's graph facts still come from their
    snapshot at the current graph version (no Neo4j read is needed); without one, the
    context answers from PostgreSQL alone and says so."""
    from tests.conftest import Service

    params = {"query": "which style do I like? what did I buy?", "budget": 500}
    # an import leaves the snapshot to the first context, which reads the graph and writes it back
    assert api.get(f"/memory/context/{user}", params=params).status_code == 200
    version = stack.sql("SELECT graph_version FROM users WHERE user_identifier = $1", user)[0]["graph_version"]
    deadline = time.monotonic() + 10
    while not stack.sql("SELECT 1 FROM graph_snapshots WHERE user_identifier = $1 AND version = $2", user, version):
        assert time.monotonic() < deadline, "the first context never wrote the snapshot back"
        time.sleep(0.1)
    broken = Service(stack, extra_env={"NEO4J_URI": "bolt://127.0.0.1:1"}, worker=False)
    try:
        ctx = broken.http.get(f"/memory/context/{user}", params=params).json()
        assert ctx["tiers"] == {"postgres": True, "neo4j": True, "vectors": True} and not ctx["errors"], ctx
        assert any(i["kind"] == "preference" and "japandi" in i["text"].lower() for i in ctx["items"]), ctx["items"]

        stack.sql("DELETE FROM graph_snapshots WHERE user_identifier = $1", user)
        stack.sql("UPDATE users SET graph_version = nextval('graph_version_seq') WHERE user_identifier = $1", user)
        ctx = broken.http.get(f"/memory/context/{user}", params=params).json()
        assert ctx["tiers"]["neo4j"] is False and ctx["tiers"]["postgres"] is True
        assert "graph" in ctx["errors"]
        assert not any(i["kind"] == "preference" for i in ctx["items"])
        assert any("bought" in i["text"] for i in ctx["items"])
    finally:
        broken.stop()


def test_cached_graph_facts_never_go_stale(service, api, user, stack):
    """The API caches a customer's graph facts per graph_version; a worker write bumps the
    version, so the very next context shows the new fact."""
    api.post("/v1/chat", json={"user_identifier": user, "message": "I love coastal furniture."})
    service.wait_idle()
    first = api.get(f"/memory/context/{user}", params={"query": "style", "explain": True}).json()
    assert "coastal" in first["text"]  # the graph facts are now cached at this version
    version = stack.sql("SELECT graph_version FROM users WHERE user_identifier = $1", user)[0]["graph_version"]
    assert not any(i["kind"] == "purchase" for i in first["items"])
    api.post("/v1/chat", json={"user_identifier": user, "message": "I bought the Sloane Chaise Sectional yesterday."})
    service.wait_idle()
    assert stack.sql("SELECT graph_version FROM users WHERE user_identifier = $1", user)[0]["graph_version"] > version
    second = api.get(f"/memory/context/{user}", params={"query": "what did I buy?", "explain": True}).json()
    purchases = [i for i in second["items"] if i["kind"] == "purchase"]  # read from the graph, not from memories
    assert purchases and "Sloane Chaise Sectional" in purchases[0]["text"], second["items"]


def test_relative_dates_resolve_against_as_of(api, user, history):
    # asked in June 2023, "last month" is May 2023: the rattan armchair, not the walnut sideboard
    ctx = api.get(
        f"/memory/context/{user}",
        params={
            "query": "what did I buy last month?",
            "budget": 1000,
            "explain": True,
            "as_of": "2023-06-10T12:00:00Z",
        },
    ).json()
    dated = [i for i in ctx["items"] if i["kind"] == "message"]
    top = max(dated, key=lambda i: i["score"])
    assert top["timestamp"].startswith("2023-05"), top
    assert "period" in top["score_parts"]


def test_as_of_needs_a_time_zone(api, user):
    r = api.get(f"/memory/context/{user}", params={"query": "sofa", "as_of": "2023-06-10T12:00:00"})
    assert r.status_code == 422 and "time zone" in r.json()["detail"], r.text


def test_a_question_about_now_prefers_the_newest_of_conflicting_turns(service, api, user):
    _import(
        api,
        user,
        [
            {
                "role": "user",
                "content": "Where do we live? In a small flat in Bristol.",
                "created_at": "2023-01-05T10:00:00Z",
            },
            {
                "role": "user",
                "content": "We moved and now live in a house in Leeds.",
                "created_at": "2024-06-05T10:00:00Z",
            },
            {"role": "user", "content": "The sofa arrived scratched.", "created_at": "2024-07-05T10:00:00Z"},
        ],
    )
    service.wait_idle()
    ctx = api.get(
        f"/memory/context/{user}", params={"query": "where do we live now?", "budget": 1000, "explain": True}
    ).json()

    def best(word: str) -> float:
        return max((i["score"] for i in ctx["items"] if word in i["text"]), default=0.0)

    assert best("Leeds") > best("Bristol") > 0, ctx["items"]


def test_a_question_naming_a_speaker_prefers_what_that_speaker_said(service, api, user):
    # a shared household account: two people chat, each turn names its speaker
    _import(
        api,
        user,
        [
            {
                "role": "user",
                "speaker": "Tom",
                "content": "I really like green velvet for the sofa.",
                "created_at": "2024-03-01T10:00:00Z",
            },
            {
                "role": "user",
                "speaker": "Anna",
                "content": "For me a sofa should be soft blue linen.",
                "created_at": "2024-03-01T10:01:00Z",
            },
            {
                "role": "user",
                "speaker": "Tom",
                "content": "Anna, the rug in the hall is worn out.",
                "created_at": "2024-03-02T10:00:00Z",
            },
        ],
    )
    service.wait_idle()

    def items(query: str) -> list[dict]:
        ctx = api.get(f"/memory/context/{user}", params={"query": query, "budget": 1000, "explain": True}).json()
        return list(ctx["items"])

    def best(found: list[dict], word: str) -> float:
        return max((i["score"] for i in found if word in i["text"]), default=0.0)

    anna = items("What sofa does Anna like?")
    assert best(anna, "blue linen") > best(anna, "green velvet") > 0, anna
    tom = items("What sofa does Tom like?")
    assert best(tom, "green velvet") > best(tom, "blue linen") > 0, tom
    # a speaker's name in a turn mostly addresses them: the turns' full-text search leaves it out
    named = items("Anna")
    assert not [i for i in named if i["kind"] == "message" and "messages_text" in i["score_parts"]], named


def test_a_question_is_embedded_without_the_speakers_it_names(service, api, user, stack):
    # who said it is weighed separately (above); the embedding is asked what was said, so a
    # speaker's name does not pull in everything they said ("Anna: thanks!")
    _import(
        api,
        user,
        [
            {
                "role": "user",
                "speaker": "Tom",
                "content": "Anna loves the walnut bookcase.",
                "created_at": "2024-03-01T10:00:00Z",
            },
            {
                "role": "user",
                "speaker": "Anna",
                "content": "Thanks Tom, it fits the study.",
                "created_at": "2024-03-01T10:01:00Z",
            },
            {
                "role": "user",
                "speaker": "Tom",
                "content": "The study gets the morning sun.",
                "created_at": "2024-03-01T10:02:00Z",
            },
        ],
    )
    service.wait_idle()
    assert stack.sql("SELECT speakers FROM users WHERE user_identifier = $1", user)[0]["speakers"] == ["Anna", "Tom"]

    def nearness(query: str) -> dict[str, float]:
        ctx = api.get(f"/memory/context/{user}", params={"query": query, "explain": True}).json()
        return {
            i["text"]: i["score_parts"]["raw_messages_vector"]
            for i in ctx["items"]
            if "raw_messages_vector" in i["score_parts"]
        }

    named, unnamed = nearness("Which bookcase does Anna's study have?"), nearness("Which bookcase does study have?")
    assert named and named == unnamed, (named, unnamed)
    # a name nobody in the history has stays in the question
    assert nearness("Which bookcase does Zoe's study have?") != named
    # the turns themselves are embedded as said, without "Tom: " in front: asked in its own
    # words, a turn is as near as the int8 question model gets to the fp32 vector of those
    # words (0.99+; with "Tom: " stored it would be ~0.80)
    said = "The study gets the morning sun."
    assert nearness(said)[f"Tom: {said}"] >= 0.99
