"""Bad input: a readable 422 (or 404/403) and nothing lost; one bad message never blocks others."""

from __future__ import annotations

import uuid

import pytest


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"user_identifier": "u1", "message": ""}, "empty"),
        ({"user_identifier": "u1", "message": "   \n\t "}, "empty"),
        ({"user_identifier": "u1", "message": "x" * (32 * 1024 + 1)}, "32 KB"),
        ({"user_identifier": "bad id with spaces", "message": "hi"}, "user_identifier"),
        ({"user_identifier": "x" * 129, "message": "hi"}, "user_identifier"),
        ({"user_identifier": "u1;DROP", "message": "hi"}, "user_identifier"),
        ({"user_identifier": "u1", "message": "hi", "session_id": "not-a-uuid"}, "session_id"),
        ({"message": "hi"}, "user_identifier"),
    ],
)
def test_chat_rejects_bad_input_with_a_readable_422(api, body, needle):
    r = api.post("/v1/chat", json=body)
    assert r.status_code == 422
    payload = r.json()
    assert payload["error"] == "validation_error"
    assert needle in payload["detail"]


def test_unknown_session_is_404(api, user):
    r = api.post("/v1/chat", json={"user_identifier": user, "message": "hi", "session_id": str(uuid.uuid4())})
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_another_customers_session_is_404_and_reveals_nothing(api, user):
    theirs = api.post("/v1/chat", json={"user_identifier": user, "message": "hello"}).json()["session_id"]
    r = api.post("/v1/chat", json={"user_identifier": user + "-other", "message": "hi", "session_id": theirs})
    assert r.status_code == 404


def test_unknown_memory_is_404(api, user):
    assert api.get(f"/memory/user/{user}/memories/{uuid.uuid4()}/history").status_code == 404
    assert api.get(f"/memory/user/{user}/memories/{uuid.uuid4()}").status_code == 404
    assert api.get(f"/memory/user/{user}/memories/not-a-uuid/history").status_code == 422


@pytest.mark.parametrize(
    ("message", "needle"),
    [
        ({"role": "robot", "content": "hi"}, "role"),
        ({"role": "user", "content": "hi", "created_at": "last tuesday"}, "created_at"),
        ({"role": "user", "content": "hi", "created_at": "2024-05-01T10:00:00"}, "timezone"),
        ({"role": "user", "content": ""}, "empty"),
    ],
)
def test_import_rejects_bad_messages_and_stores_none_of_the_batch(api, user, message, needle):
    good = {"role": "user", "content": "this one is fine", "created_at": "2024-05-01T10:00:00Z"}
    r = api.post(f"/v1/sessions/{user}/messages", json={"messages": [good, message]})
    assert r.status_code == 422 and needle in r.json()["detail"]
    assert api.get(f"/v1/sessions/{user}").json()["sessions"] == []


def test_unknown_route_and_bad_user_in_path_are_clear(api):
    assert api.get("/nope").json()["error"] == "not_found"
    r = api.get("/v1/sessions/bad user")
    assert r.status_code == 422 and "user_identifier" in r.json()["detail"]


def test_a_job_that_breaks_the_pipeline_is_parked_and_does_not_block_the_queue(service, api, user, stack):
    """A job the pipeline cannot process is recorded as failed with its error; work queued
    after it is processed."""
    # a corrupt job (its payload is not a message id): every attempt fails the same way
    stack.sql(
        "INSERT INTO jobs (kind, user_identifier, dedupe_key, payload, max_attempts) "
        "VALUES ('ingest_message', $1, $2, '{\"message_id\": \"not-a-number\"}'::jsonb, 1)",
        user,
        f"ingest:poison-{user}",
    )
    ok = api.post("/v1/chat", json={"user_identifier": user, "message": "My name is Theo and I love teak."})
    assert ok.status_code == 200
    service.wait_idle()
    failed = stack.sql("SELECT status, last_error FROM jobs WHERE dedupe_key = $1", f"ingest:poison-{user}")
    assert failed[0]["status"] == "failed" and failed[0]["last_error"]
    assert stack.cypher("MATCH (c:Customer {user_id: $u}) RETURN c.name AS name", u=user) == [{"name": "Theo"}]
    # failed jobs are visible in the status
    assert api.get("/memory/status").json()["stats"]["jobs"]["failed"] >= 1
