"""The LLM path against a local OpenAI-compatible server: replies carry the memory context,
extraction and summaries come from the model, validated."""

from __future__ import annotations

import signal

import pytest

from tests.conftest import Service, free_port
from tests.fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def llm_service(stack, service):
    # workers are interchangeable: pause the suite's rules-only worker so that this
    # module's jobs go to the LLM-configured one
    service.wait_idle()
    service.worker.send_signal(signal.SIGSTOP)
    with FakeOpenAI(free_port()) as fake:
        svc = Service(
            stack,
            extra_env={
                "OPENAI_API_KEY": "test-key-not-secret",
                "OPENAI_BASE_URL": fake.base_url,
                "LOFT_LLM_MODEL": "loft-test-model",
                "LOFT_EXTRACTOR": "llm",
            },
        )
        try:
            yield svc, fake
        finally:
            svc.stop()
            service.worker.send_signal(signal.SIGCONT)


def test_llm_reply_extraction_and_summary(llm_service, user, stack):
    svc, fake = llm_service
    api = svc.http
    status = api.get("/memory/status").json()
    assert status["llm"] == {"enabled": True, "model": "loft-test-model"}

    first = api.post("/v1/chat", json={"user_identifier": user, "message": "Hi, I'm Noor and I adore boucle."})
    assert first.status_code == 200, first.text
    assert first.json()["llm"] is True
    assert first.json()["reply"].startswith("(llm)")
    svc.wait_idle()

    # extraction came from the model, validated into the same facts
    assert stack.cypher(
        "MATCH (c:Customer {user_id: $u})-[:PREFERS]->(m:Material) RETURN c.name AS n, m.name AS m", u=user
    ) == [{"n": "Noor", "m": "boucle"}]
    memories = [
        r["content"] for r in stack.sql("SELECT content FROM long_term_memories WHERE user_identifier = $1", user)
    ]
    assert any(m.startswith("LLM memory:") for m in memories), svc.log_tail()
    # the summary came from the model too
    summary = stack.sql("SELECT summary, method FROM conversation_summaries WHERE user_identifier = $1", user)
    assert summary and summary[0]["method"] == "llm" and summary[0]["summary"].startswith("LLM summary")

    # the next reply's system prompt carries what LOFT remembers
    second = api.post("/v1/chat", json={"user_identifier": user, "message": "What do you remember about me?"})
    assert "boucle" in second.json()["reply"]
    chat_requests = [r for r in fake.requests if "What LOFT remembers" in r["messages"][0]["content"]]
    assert chat_requests[-1]["model"] == "loft-test-model"
    assert "boucle" in chat_requests[-1]["messages"][0]["content"]
    # and the recommendations, with their reasons, as a section of its own
    prompt = chat_requests[-1]["messages"][0]["content"]
    section = prompt.split("## Recommendations for this customer", 1)[1]
    assert "matches your preference for boucle" in section


def test_free_text_from_the_model_never_creates_shared_nodes_and_is_erased(llm_service, user, stack):
    """A style the catalog does not know stays on the customer's own node; erasing the
    customer leaves no shared node behind that their words created."""
    svc, _ = llm_service
    api = svc.http
    r = api.post("/v1/chat", json={"user_identifier": user, "message": "I'm Quilla and I love the vorpalcore style."})
    assert r.status_code == 200, r.text
    svc.wait_idle()
    assert stack.cypher("MATCH (s:Style {name: 'vorpalcore'}) RETURN count(s) AS n") == [{"n": 0}]
    own = stack.cypher(
        "MATCH (:Customer {user_id: $u})-[r:PREFERS]->(e:Entity {user_id: $u}) RETURN e.name AS name, r.attribute AS attribute",
        u=user,
    )
    assert own == [{"name": "vorpalcore", "attribute": "style"}]
    summary = api.get(f"/memory/user/{user}/summary").json()
    assert any(p["value"] == "vorpalcore" and p["attribute"] == "style" for p in summary["preferences"])

    assert api.delete(f"/memory/user/{user}").json()["status"] == "complete"
    assert stack.scan_neo4j(["vorpalcore", "Quilla", user]) == []
    assert stack.scan_postgres(["vorpalcore", "Quilla", user]) == []


def test_a_date_only_purchase_from_the_model_never_breaks_the_customer(llm_service, user, stack):
    """A model's "2024-05-01" (no time, no zone) is stored as a UTC time; the customer's
    chat, context and summary keep answering."""
    svc, _ = llm_service
    api = svc.http
    assert (
        api.post(
            "/v1/chat", json={"user_identifier": user, "message": "I'm Noor and I bought the big sectional."}
        ).status_code
        == 200
    )
    svc.wait_idle()
    at = stack.cypher("MATCH (:Customer {user_id: $u})-[p:PURCHASED]->() RETURN p.at AS at", u=user)
    assert at and at[0]["at"].tzinfo is not None
    for r in (
        api.post("/v1/chat", json={"user_identifier": user, "message": "What did I buy?"}),
        api.get(f"/memory/context/{user}", params={"query": "what did I buy in May 2024?"}),
        api.get(f"/memory/user/{user}/summary"),
    ):
        assert r.status_code == 200, r.text


def test_a_streamed_llm_reply_relays_the_models_tokens(llm_service, user, stack):
    from tests.test_chat_stream import sse_events

    svc, fake = llm_service
    r = svc.http.post("/v1/chat", json={"user_identifier": user, "message": "Hello, I'm Ravi.", "stream": True})
    assert r.status_code == 200, r.text
    events = sse_events(r.text)
    assert events[0][0] == "start" and events[0][1]["llm"] is True
    tokens = [d["text"] for e, d in events if e == "token"]
    assert len(tokens) > 3  # the model's chunks, relayed as they came
    done = events[-1][1]
    assert events[-1][0] == "done" and done["llm"] is True
    assert "".join(tokens).strip() == done["reply"] and done["reply"].startswith("(llm) Based on memory")
    replies = [r for r in fake.requests if "What LOFT remembers" in r["messages"][0]["content"]]
    assert replies[-1].get("stream") is True and replies[-1]["messages"][-1]["content"] == "Hello, I'm Ravi."
    (stored,) = stack.sql("SELECT content FROM messages WHERE id = $1", done["reply_message_id"])
    assert stored["content"] == done["reply"]
