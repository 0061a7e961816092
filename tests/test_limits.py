"""No caller can take more than their share: each key has a request budget (429 with
Retry-After), a cap on streamed replies in progress, and anyone's status request costs a
probe, never the statistics."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import asyncpg
import httpx
import pytest

from tests.conftest import Service, free_port
from tests.fake_openai import FakeOpenAI

CHAT_KEY = "lim-chat-" + uuid.uuid4().hex
ADMIN_KEY = "lim-admin-" + uuid.uuid4().hex
CUSTOMER_KEY = "lim-cust-" + uuid.uuid4().hex
CUSTOMER_BUDGET = 3  # requests per minute of the customer key


@pytest.fixture(scope="module")
def limited(stack, tmp_path_factory):
    """An API with keys and small budgets (no worker: the suite's does the ingestion), its
    replies from a local OpenAI-compatible server that can hold a streamed reply."""
    customer = f"lim-{uuid.uuid4().hex[:8]}"
    keys_file = tmp_path_factory.mktemp("limits") / "keys.toml"
    keys_file.write_text(
        f'[[keys]]\nname = "page"\nrole = "customer"\ncustomer = "{customer}"\nsecret = "{CUSTOMER_KEY}"\n'
    )
    with FakeOpenAI(free_port()) as fake:
        svc = Service(
            stack,
            worker=False,
            extra_env={
                "OPENAI_API_KEY": "test-key-not-secret",
                "OPENAI_BASE_URL": fake.base_url,
                "LOFT_API_KEYS": f"backend:chat:{CHAT_KEY}, ops:admin:{ADMIN_KEY}",
                "LOFT_API_KEYS_FILE": str(keys_file),
                "LOFT_CUSTOMER_RATE_LIMIT_PER_MIN": str(CUSTOMER_BUDGET),
                "LOFT_STREAMS_PER_KEY": "1",
                "LOFT_STATUS_STATS_TTL_S": "600",
            },
        )
        try:
            yield svc, fake, customer
        finally:
            fake.gate.set()
            svc.stop()


def _client(svc: Service, key: str | None) -> httpx.Client:
    return httpx.Client(
        base_url=svc.base, timeout=60, headers={"Authorization": f"Bearer {key}"} if key is not None else {}
    )


class _Locked:
    """``messages`` locked ACCESS EXCLUSIVE by another session until the block ends: any
    statement that reads the table waits."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.held = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._hold()), daemon=True)

    async def _hold(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
                self.held.set()
                await asyncio.to_thread(self.release.wait, 60)
        finally:
            await conn.close()

    def __enter__(self) -> _Locked:
        self.thread.start()
        assert self.held.wait(60), "could not lock messages"
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.thread.join(60)


def test_anyones_status_is_a_probe_and_never_waits_for_the_statistics(limited, stack):
    svc, _, _ = limited
    with _Locked(stack.settings.database_url), _client(svc, None) as anyone, _client(svc, ADMIN_KEY) as admin:
        # counting messages would wait for the lock; the probe does not read a table
        r = anyone.get("/memory/status")
        assert r.status_code == 200 and r.json() == {"status": "ok"}, r.text
        # an admin's statistics that cannot be counted in time are said to be missing, and a
        # store that answered is not called down for it
        r = admin.get("/memory/status")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "ok" and body["stores"]["postgres"]["ok"] is True
        assert "jobs" in body["stats"]
        assert "stats_error" in body["stores"]["postgres"] or body["stats"].get("postgres")
    with _client(svc, ADMIN_KEY) as admin, _client(svc, CHAT_KEY) as chat:
        # the lock gone, the statistics are counted again (a count that failed is not reused)
        counted = admin.get("/memory/status").json()["stats"]
        assert counted["postgres"]["messages"] >= 1 and "customers" in counted["neo4j"], counted
        # and reused for LOFT_STATUS_STATS_TTL_S (the queue's counts are read on every call)
        r = chat.post(
            f"/v1/sessions/{uuid.uuid4().hex}/messages", json={"messages": [{"role": "user", "content": "x"}]}
        )
        assert r.status_code == 201, r.text
        again = admin.get("/memory/status").json()["stats"]
        assert again["postgres"] == counted["postgres"] and set(again["jobs"]) >= {"ready", "running"}


def test_a_key_over_its_budget_gets_429_with_retry_after_and_others_go_on(limited):
    svc, _, customer = limited
    with _client(svc, CUSTOMER_KEY) as mine, _client(svc, CHAT_KEY) as chat, _client(svc, ADMIN_KEY) as admin:
        answers = [mine.get(f"/v1/sessions/{customer}") for _ in range(CUSTOMER_BUDGET + 3)]
        codes = [r.status_code for r in answers]
        assert codes[0] == 200 and 429 in codes, codes
        refused = answers[codes.index(429)]
        assert codes.index(429) >= CUSTOMER_BUDGET, codes  # the budget was spent first
        body = refused.json()
        assert body["error"] == "rate_limited" and f"more than {CUSTOMER_BUDGET} requests" in body["detail"]
        assert int(refused.headers["retry-after"]) >= 1 and body["request_id"] == refused.headers["x-request-id"]
        # a refused request is refused before it does anything: a chat turn is not stored
        turn = mine.post("/v1/chat", json={"user_identifier": customer, "message": "refused turn"})
        assert turn.status_code == 429
        # other keys have their own budgets; admin keys have none
        assert chat.get(f"/v1/sessions/{customer}").status_code == 200
        assert all(admin.get("/v1/whoami").status_code == 200 for _ in range(CUSTOMER_BUDGET * 3))


def test_a_key_streams_at_most_its_cap_of_replies_even_after_its_clients_leave(limited, user, stack):
    svc, fake, _ = limited
    fake.gate.clear()  # streamed replies hold after their first chunk
    try:
        with _client(svc, CHAT_KEY) as chat:
            body = {"user_identifier": user, "message": "Show me sofas", "stream": True, "message_id": uuid.uuid4().hex}
            with chat.stream("POST", "/v1/chat", json=body) as first:
                assert first.status_code == 200
                assert next(first.iter_lines()) == "event: start"
                second = chat.post("/v1/chat", json={"user_identifier": user, "message": "second turn", "stream": True})
                assert second.status_code == 429 and second.json()["error"] == "rate_limited", second.text
                assert "streamed replies in progress" in second.json()["detail"] and second.headers["retry-after"]
                # refused before anything was stored
                assert not stack.sql(
                    "SELECT 1 FROM messages WHERE content = 'second turn' AND user_identifier = $1", user
                )
                # replies that are not streamed are not capped
                plain = chat.post("/v1/chat", json={"user_identifier": user, "message": "a plain turn"})
                assert plain.status_code == 200, plain.text
            # the client left; its reply goes on (and is stored), so it still counts
            left = chat.post("/v1/chat", json={"user_identifier": user, "message": "third turn", "stream": True})
            assert left.status_code == 429, left.text
    finally:
        fake.gate.set()
    with _client(svc, CHAT_KEY) as chat:
        again = None
        for _ in range(300):  # a wait, not a timing: the held reply is finishing
            again = chat.post("/v1/chat", json=body | {"stream": False})
            if again.status_code != 409:
                break
            time.sleep(0.1)
        assert again is not None and again.status_code == 200 and again.json()["replayed"] is True, again.text
        for _ in range(300):
            r = chat.post("/v1/chat", json={"user_identifier": user, "message": "fourth turn", "stream": True})
            if r.status_code != 429:
                break
            time.sleep(0.1)
        assert r.status_code == 200 and r.text.rstrip().splitlines()[-2] == "event: done", r.text[-500:]
