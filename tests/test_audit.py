"""The audit trail: every context read, memory deletion and erasure is an entry naming the
key and its role, the customer only by their keyed hash, and the request; entries outlive
the customer's erasure, cannot be changed, and are listed for admins with filters and
signed cursors."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from tests.conftest import keyed_service

CHAT_KEY = "chat-" + uuid.uuid4().hex
ADMIN_KEY = "admin-" + uuid.uuid4().hex
CUSTOMER_KEY = "cust-" + uuid.uuid4().hex


def _hash(stack, user: str) -> str:
    from service.keys import erasure_key

    return hmac.new(erasure_key(stack.settings), user.encode(), hashlib.sha256).hexdigest()


def _client(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"})


def _trail(client: httpx.Client, count: int, **params) -> httpx.Response:
    """The trail's page once it holds ``count`` entries: a context read's entry is written
    just after its answer is sent."""
    for _ in range(200):
        page = client.get("/memory/audit", params=params)
        assert page.status_code == 200, page.text
        if len(page.json()["entries"]) >= count:
            return page
        time.sleep(0.1)
    raise AssertionError(f"the trail never reached {count} entries: {page.text}")


def _memory_of(stack, user: str) -> str:
    (row,) = stack.sql(
        "INSERT INTO long_term_memories (user_identifier, kind, content, embedding, content_hash) "
        "VALUES ($1, 'fact', 'a note to delete', array_fill(0.1::real, ARRAY[384])::vector, $2) RETURNING id",
        user,
        uuid.uuid4().hex,
    )
    return str(row["id"])


@pytest.fixture(scope="module")
def keyed(stack, service, tmp_path_factory):
    mine = f"au-{uuid.uuid4().hex[:8]}"
    svc = keyed_service(
        stack,
        tmp_path_factory.mktemp("audit-keys"),
        chat=CHAT_KEY,
        admin=ADMIN_KEY,
        customer=mine,
        secret=CUSTOMER_KEY,
        name="page-au",
    )
    try:
        yield svc, mine
    finally:
        svc.stop()


def test_reads_deletions_and_erasures_are_audited_by_key_and_survive_the_erasure(keyed, service, stack):
    svc, user = keyed
    chat, admin, mine = _client(svc.base, CHAT_KEY), _client(svc.base, ADMIN_KEY), _client(svc.base, CUSTOMER_KEY)
    assert chat.post("/v1/chat", json={"user_identifier": user, "message": "I love oak shelves."}).status_code == 200
    service.wait_idle()

    read = chat.get(f"/memory/context/{user}", params={"query": "shelves"}, headers={"X-Request-ID": "rid-read-1"})
    assert read.status_code == 200, read.text
    own = mine.get(f"/memory/context/{user}", params={"query": "oak"})
    assert own.status_code == 200, own.text
    memory = _memory_of(stack, user)
    gone = mine.delete(f"/memory/user/{user}/memories/{memory}", headers={"X-Request-ID": "rid-forget-1"})
    assert gone.status_code == 200, gone.text
    erased = admin.delete(f"/memory/user/{user}", headers={"X-Request-ID": "rid-erase-1"})
    assert erased.status_code == 200, erased.text
    receipt = erased.json()

    page = _trail(admin, 4, customer=user)
    entries = page.json()["entries"]
    got = [(e["action"], e["key_name"], e["key_role"], e["request_id"]) for e in entries]
    # newest first; the erased customer's entries are all still there
    assert got == [
        ("erase", "ops", "admin", "rid-erase-1"),
        ("delete_memory", "page-au", "customer", "rid-forget-1"),
        ("context", "page-au", "customer", own.headers["x-request-id"]),
        ("context", "backend", "chat", "rid-read-1"),
    ]
    assert entries[0]["detail"] == {"receipt_id": receipt["receipt_id"], "status": "complete"}
    assert entries[1]["detail"] == {"memory_id": memory}
    assert {e["subject_hash"] for e in entries} == {_hash(stack, user)}
    # the identifier is nowhere in the trail, in any column
    rows = stack.sql("SELECT t::text AS row FROM audit_events t")
    assert rows and not [r for r in rows if user in r["row"]]
    assert user not in page.text

    # only admins read the trail
    for client in (chat, mine):
        refused = client.get("/memory/audit", params={"customer": user})
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"


def test_filters_by_action_and_time_and_pages_with_signed_cursors(service, api, stack, user):
    assert api.post("/v1/chat", json={"user_identifier": user, "message": "I like linen."}).status_code == 200
    service.wait_idle()
    before = datetime.now(UTC)
    for _ in range(5):
        assert api.get(f"/memory/context/{user}", params={"query": "linen"}).status_code == 200
    assert api.delete(f"/memory/user/{user}").status_code == 200

    reads = _trail(api, 5, customer=user, action="context").json()["entries"]
    assert len(reads) == 5 and {e["action"] for e in reads} == {"context"}
    assert {(e["key_name"], e["key_role"]) for e in reads} == {("local", "admin")}  # no keys: the local operator
    assert api.get("/memory/audit", params={"customer": user, "until": before.isoformat()}).json()["entries"] == []
    after = api.get("/memory/audit", params={"customer": user, "since": before.isoformat()}).json()["entries"]
    assert [e["action"] for e in after] == ["erase"] + ["context"] * 5

    # two at a time: every entry once, in order, and the cursor is bound to its filters
    seen, cursor, pages = [], None, 0
    while True:
        params = {"customer": user, "limit": 2} | ({"cursor": cursor} if cursor else {})
        body = api.get("/memory/audit", params=params).json()
        seen += [e["id"] for e in body["entries"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert (
            api.get(
                "/memory/audit", params={"customer": user, "limit": 2, "action": "erase", "cursor": cursor}
            ).status_code
            == 422
        )
        assert (
            api.get("/memory/audit", params={"customer": f"{user}x", "limit": 2, "cursor": cursor}).status_code == 422
        )
    assert seen == [e["id"] for e in after] and pages == 3
    forged = api.get(
        "/memory/audit", params={"customer": user, "cursor": "MjAyNi0wMS0wMVQwMDowMDowMCswMDowMHwxfGFiYw=="}
    )
    assert forged.status_code == 422

    naive = api.get("/memory/audit", params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and "time zone" in naive.json()["detail"]
    assert api.get("/memory/audit", params={"action": "read_everything"}).status_code == 422
    assert api.get("/memory/audit", params={"limit": 501}).status_code == 422


def test_entries_cannot_be_changed_or_removed(stack, service, api, user):
    assert api.get(f"/memory/context/{user}", params={"query": "anything"}).status_code == 200
    _trail(api, 1, customer=user)
    subject = _hash(stack, user)
    for statement in (
        "UPDATE audit_events SET key_name = 'nobody' WHERE subject_hash = $1",
        "DELETE FROM audit_events WHERE subject_hash = $1",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            stack.sql(statement, subject)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        stack.sql("TRUNCATE audit_events")
    (row,) = stack.sql("SELECT key_name, action FROM audit_events WHERE subject_hash = $1", subject)
    assert dict(row) == {"key_name": "local", "action": "context"}


def test_the_cli_erasure_is_audited_as_the_operator(stack, service, api, user):
    assert api.post("/v1/chat", json={"user_identifier": user, "message": "I like jute rugs."}).status_code == 200
    service.wait_idle()
    done = stack.loftmem("erase", user, "--yes")
    assert done.returncode == 0, done.stderr
    receipt = json.loads(done.stdout)
    (entry,) = api.get("/memory/audit", params={"customer": user, "action": "erase"}).json()["entries"]
    assert (entry["key_name"], entry["key_role"], entry["detail"]["receipt_id"]) == (
        "cli",
        "admin",
        receipt["receipt_id"],
    )
