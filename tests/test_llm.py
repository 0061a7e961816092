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
        svc = Service(stack, extra_env={
            "OPENAI_API_KEY": "test-key-not-secret", "OPENAI_BASE_URL": fake.base_url,
            "LOFT_LLM_MODEL": "loft-test-model", "LOFT_EXTRACTOR": "llm",
        })
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
    assert stack.cypher("MATCH (c:Customer {user_id: $u})-[:PREFERS]->(m:Material) RETURN c.name AS n, m.name AS m", u=user) == [{"n": "Noor", "m": "boucle"}]
    memories = [r["content"] for r in stack.sql("SELECT content FROM long_term_memories WHERE user_identifier = $1", user)]
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
